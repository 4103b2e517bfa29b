//! `order.paid` hook: parse, decide the reward, forward it to the internal reward queue
//! (the reward processor applies it exactly once). A batch's rewards go out in one
//! `SendMessageBatch` ([`sqs::run_forwarding`]).

use market_domain::events::OrderPaidEvent;
use market_domain::processors::{DecideOrderReward, OrderDecision, Processor};
use market_lambda::{env, sqs, Market};
use market_messaging::outbound::ATTR_MESSAGE_ID;
use market_messaging::Outgoing;
use std::sync::Arc;

use tracing::info;

#[tokio::main]
async fn main() -> Result<(), market_lambda::Error> {
    let market = Market::init().await?.warm_config();
    let reward_queue = env("REWARD_QUEUE_URL")?;
    let sqs_client = market.sqs();
    let decide = Arc::new(DecideOrderReward(market.deps));
    sqs::run_forwarding(sqs_client, reward_queue, move |message| {
        let decide = decide.clone();
        async move {
            let event = OrderPaidEvent::parse(sqs::body(&message)?)?;
            let order_id = event.order_id.clone();
            let decision = decide.process(event).await;
            market_lambda::metrics::order(&decision);
            match decision? {
                OrderDecision::Reward(reward) => {
                    // The platform's event id travels on: the reward processor's logs and
                    // metrics carry it too, so one order can be followed end to end.
                    let attributes = vec![(ATTR_MESSAGE_ID.to_owned(), reward.source_event_id.to_string())];
                    Outgoing::json(&reward, attributes).map(Some)
                }
                OrderDecision::NoReward(reason) => {
                    info!(order_id = %order_id, ?reason, "no reward");
                    Ok(None)
                }
                // Decided when the buyer's registration arrives (on-user-registered).
                OrderDecision::Waiting => Ok(None),
            }
        }
    })
    .await
}
