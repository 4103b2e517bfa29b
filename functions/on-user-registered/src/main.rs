//! `user.registered` hook: parse, register (idempotent), report per-message failures.

use market_domain::events::UserRegisteredEvent;
use market_domain::processors::{Processor, RegisterUser};
use market_lambda::{sqs, Market};

#[tokio::main]
async fn main() -> Result<(), market_lambda::Error> {
    let market = Market::init().await?.warm_config();
    let register = std::sync::Arc::new(RegisterUser(market.deps));
    sqs::run(move |message| {
        let register = register.clone();
        async move {
            let event = UserRegisteredEvent::parse(sqs::body(&message)?)?;
            let result = register.process(event).await;
            market_lambda::metrics::registration(&result);
            result.map(|_| ())
        }
    })
    .await
}
