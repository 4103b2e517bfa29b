//! RabbitMQ -> SQS bridge. One relay core (`market_messaging::Relay`), two entry points:
//! - on Lambda (an Amazon MQ for RabbitMQ event source): relay the event's messages; any
//!   failure fails the invocation and the event source redelivers the batch;
//! - elsewhere: a long-running consumer for a self-hosted broker ([`consumer`]).

mod consumer;

use std::sync::Arc;

use aws_lambda_events::rabbitmq::RabbitMqEvent;
use base64::Engine;
use lambda_runtime::{service_fn, LambdaEvent};
use market_messaging::{InboundMessage, Relay, Routes, Sqs};
use tracing::info;

#[tokio::main]
async fn main() -> Result<(), market_lambda::Error> {
    market_lambda::init_tracing();
    let aws = market_storage::aws_config().await;
    let relay = Arc::new(Relay::new(Routes::from_env()?, Sqs::new(aws_sdk_sqs::Client::new(&aws))));
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        lambda_runtime::run(service_fn(move |event: LambdaEvent<RabbitMqEvent>| {
            let relay = relay.clone();
            async move { amazon_mq(&relay, event.payload).await }
        }))
        .await
    } else {
        let url = market_lambda::env("AMQP_URL")?;
        let prefetch = std::env::var("BRIDGE_PREFETCH").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
        consumer::run(relay, url, prefetch).await
    }
}

/// Amazon MQ delivers messages grouped by source queue (`name::vhost`), base64-encoded.
async fn amazon_mq(relay: &Relay, event: RabbitMqEvent) -> Result<(), market_lambda::Error> {
    let mut messages = Vec::new();
    for (queue, list) in event.messages_by_queue {
        let route = relay.routes.for_amqp_queue(&queue).ok_or_else(|| format!("no route for queue {queue}"))?;
        for m in list {
            let body = base64::engine::general_purpose::STANDARD.decode(m.data.unwrap_or_default())?;
            messages.push(InboundMessage {
                exchange: route.exchange.clone(),
                routing_key: route.routing_key.clone(),
                body,
                message_id: m.basic_properties.message_id.clone(),
                headers: m.basic_properties.headers.into_iter().collect(),
            });
        }
    }
    let failed = relay.relay(&messages).await.into_iter().filter(Result::is_err).count();
    info!(relayed = messages.len() - failed, failed, "amazon mq batch");
    if failed > 0 {
        return Err(format!("{failed} of {} messages not accepted by SQS", messages.len()).into());
    }
    Ok(())
}
