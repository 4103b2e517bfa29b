//! Lambda entry point of the bridge (see the library's documentation): the Amazon MQ event
//! source (inbound) and the outbound queue's SQS event source. The long-running process is
//! `rabbitmq-bridge-service` (src/service.rs), a binary of its own so that this one, which
//! Lambda loads on every cold start, links only Lambda's SDK configuration.

use std::sync::Arc;

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{service_fn, LambdaEvent};
use market_messaging::{Relay, Routes, Sqs};
use rabbitmq_bridge::{amazon_mq, broker_url, outbound};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), market_lambda::Error> {
    market_lambda::init_tracing();
    market_lambda::metrics::init();
    let aws = market_lambda::aws::sdk_config()?;
    let relay = Arc::new(Relay::new(Routes::from_env()?, Sqs::new(aws_sdk_sqs::Client::new(&aws))));
    let outbound = Arc::new(outbound::LambdaOutbound::new(broker_url(&aws).await?));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (relay, outbound) = (relay.clone(), outbound.clone());
        async move {
            if event.payload.get("eventSource").and_then(Value::as_str) == Some("aws:rmq") {
                amazon_mq(&relay, serde_json::from_value(event.payload)?).await?;
                Ok::<Value, market_lambda::Error>(Value::Null)
            } else {
                let batch: SqsEvent = serde_json::from_value(event.payload)?;
                let response = outbound.handle(batch).await;
                market_lambda::metrics::flush(&[("RequestId", event.context.request_id.clone().into())]);
                Ok(serde_json::to_value(response)?)
            }
        }
    }))
    .await
}
