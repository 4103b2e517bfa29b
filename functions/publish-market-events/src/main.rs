//! Lambda entry point (DynamoDB stream event source): clients are built once per cold start.

use std::sync::Arc;

use lambda_runtime::{service_fn, LambdaEvent};
use aws_lambda_events::dynamodb::Event;
use publish_market_events::OutboxRelay;

#[tokio::main]
async fn main() -> Result<(), market_lambda::Error> {
    market_lambda::init_tracing();
    let aws = market_storage::aws_config().await;
    let relay = Arc::new(OutboxRelay {
        store: market_storage::DynamoStore::from_env(&aws).await?,
        sqs: market_messaging::Sqs::new(aws_sdk_sqs::Client::new(&aws)),
        queue_url: market_lambda::env("MARKET_EVENTS_QUEUE_URL")?,
        retention_days: match std::env::var("OUTBOX_RETENTION_DAYS") {
            Ok(v) => v.parse().map_err(|_| "OUTBOX_RETENTION_DAYS is not a number of days")?,
            Err(_) => 7,
        },
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| {
        let relay = relay.clone();
        async move { Ok::<_, lambda_runtime::Error>(relay.handle(event.payload).await) }
    }))
    .await
}
