//! Lambda entry point (DynamoDB stream event source): clients are built once per cold start.

use std::sync::Arc;

use lambda_runtime::{service_fn, LambdaEvent};
use aws_lambda_events::dynamodb::Event;
use publish_market_events::OutboxRelay;

#[tokio::main]
async fn main() -> Result<(), market_lambda::Error> {
    market_lambda::init_tracing();
    market_lambda::metrics::init();
    let aws = market_lambda::aws::sdk_config()?;
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
        async move {
            let response = relay.handle(event.payload).await;
            market_lambda::metrics::flush(&[("RequestId", event.context.request_id.clone().into())]);
            Ok::<_, lambda_runtime::Error>(response)
        }
    }))
    .await
}
