//! Reward processor: apply each internal reward event in one transaction (exactly one
//! reward per order, however often the event is delivered).

use market_domain::model::RewardEvent;
use market_domain::processors::{ApplyReward, Processor};
use market_domain::MarketError;
use market_lambda::{sqs, Market};

#[tokio::main]
async fn main() -> Result<(), market_lambda::Error> {
    let market = Market::init().await?;
    let apply = std::sync::Arc::new(ApplyReward(market.deps));
    sqs::run(move |message| {
        let apply = apply.clone();
        async move {
            let event: RewardEvent = serde_json::from_str(sqs::body(&message)?)
                .map_err(|e| MarketError::InvalidArgument(format!("invalid reward event: {e}")))?;
            let reward = event.reward.minor();
            let result = apply.process(event).await;
            market_lambda::metrics::reward(&result, reward);
            result.map(|_| ())
        }
    })
    .await
}
