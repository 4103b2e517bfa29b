//! Entry point of the bridge (see the library's documentation): Lambda or standalone.

use std::sync::Arc;

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{service_fn, LambdaEvent};
use market_messaging::{Relay, Routes, Sqs};
use rabbitmq_bridge::{amazon_mq, broker_url, consumer, outbound, shutdown_signal};
use serde_json::Value;
use tracing::info;

#[tokio::main]
async fn main() -> Result<(), market_lambda::Error> {
    market_lambda::init_tracing();
    market_lambda::metrics::init();
    let aws = market_storage::aws_config().await;
    let relay = Arc::new(Relay::new(Routes::from_env()?, Sqs::new(aws_sdk_sqs::Client::new(&aws))));
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
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
    } else {
        let url = market_lambda::env("AMQP_URL")?;
        let prefetch = std::env::var("BRIDGE_PREFETCH").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
        let stop = shutdown_signal()?;
        let outbound = match std::env::var("MARKET_EVENTS_QUEUE_URL") {
            Ok(queue) if !queue.is_empty() => {
                // Long polls need more room than the request paths' timeouts (2 s per attempt,
                // 5 s in all): with the shared 2 s attempt timeout every idle 2 s poll timed out
                // and dropped its connection.
                let timeouts = aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(std::time::Duration::from_secs(1))
                    .operation_attempt_timeout(std::time::Duration::from_secs(10))
                    .operation_timeout(std::time::Duration::from_secs(30))
                    .build();
                let sqs = aws_sdk_sqs::Client::from_conf(aws_sdk_sqs::config::Builder::from(&aws).timeout_config(timeouts).build());
                Some(tokio::spawn(outbound::run(url.clone(), sqs, queue, stop.clone())))
            }
            _ => None,
        };
        let inbound = consumer::run(relay, url, prefetch, stop).await;
        if let Some(task) = outbound {
            let _ = task.await;
        }
        info!("bridge stopped");
        inbound
    }
}

