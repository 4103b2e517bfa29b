//! The bridge as a long-running process (systemd, ECS, a container, the local stack): the
//! inbound consumer (`rabbitmq_bridge::consumer`) and, with `MARKET_EVENTS_QUEUE_URL`, the outbound loop
//! side by side, until SIGTERM. Outside Lambda, so the SDK's full credential chains.

use std::sync::Arc;

use market_messaging::{Relay, Routes, Sqs};
use rabbitmq_bridge::{consumer, outbound, shutdown_signal};
use tracing::info;

#[tokio::main]
async fn main() -> Result<(), market_lambda::Error> {
    market_lambda::init_tracing();
    market_lambda::metrics::init();
    let aws = market_storage::aws_config().await;
    let relay = Arc::new(Relay::new(Routes::from_env()?, Sqs::new(aws_sdk_sqs::Client::new(&aws))));
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
