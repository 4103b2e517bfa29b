//! The RabbitMQ bridge, both directions:
//! - inbound, RabbitMQ -> SQS: the platform's auth/shop events through one relay core
//!   (`market_messaging::Relay`);
//! - outbound, SQS -> RabbitMQ: the market's own events (the outbox relay's queue),
//!   published with confirms ([`outbound`]).
//!
//! Two binaries: on Lambda, `rabbitmq-bridge` takes both the Amazon MQ event source
//! (inbound) and the outbound queue's SQS event source; elsewhere the long-running
//! `rabbitmq-bridge-service` runs the inbound consumer ([`consumer`]) and the outbound loop
//! side by side.

pub mod consumer;
pub mod outbound;
pub mod publisher;

use aws_lambda_events::rabbitmq::RabbitMqEvent;
use base64::Engine;
use market_messaging::{InboundMessage, Relay, Routes};
use serde_json::Value;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tracing::info;

/// SIGTERM or Ctrl-C flips the returned flag; both directions finish what is in flight.
pub fn shutdown_signal() -> Result<watch::Receiver<bool>, market_lambda::Error> {
    let (stop_tx, stop) = watch::channel(false);
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        info!("shutdown requested");
        let _ = stop_tx.send(true);
    });
    Ok(stop)
}

/// The broker URL on Lambda: `AMQP_URL`, or `AMQP_ENDPOINT` (`amqps://host:5671`) with the
/// username and password from the Secrets Manager secret `AMQP_SECRET_ARN` (the same
/// secret the Amazon MQ event source uses) — read once per cold start, never logged.
pub async fn broker_url(aws: &aws_config::SdkConfig) -> Result<String, market_lambda::Error> {
    if let Ok(url) = std::env::var("AMQP_URL") {
        return Ok(url);
    }
    let endpoint = market_lambda::env("AMQP_ENDPOINT")?;
    let secret_arn = market_lambda::env("AMQP_SECRET_ARN")?;
    let secret = aws_sdk_secretsmanager::Client::new(aws).get_secret_value().secret_id(secret_arn).send().await?;
    let doc: Value = serde_json::from_str(secret.secret_string().unwrap_or("{}"))?;
    let field = |k: &str| doc.get(k).and_then(Value::as_str).map(encode).ok_or_else(|| format!("broker secret has no {k}"));
    let (user, password) = (field("username")?, field("password")?);
    let (scheme, rest) = endpoint.split_once("://").ok_or("AMQP_ENDPOINT is not a URL")?;
    Ok(format!("{scheme}://{user}:{password}@{rest}"))
}

/// Percent-encoding for URL userinfo.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Amazon MQ delivers messages grouped by source queue (`name::vhost`), base64-encoded.
pub async fn amazon_mq(relay: &Relay, event: RabbitMqEvent) -> Result<(), market_lambda::Error> {
    let messages = amazon_mq_messages(&relay.routes, event)?;
    let failed = relay.relay(&messages).await.into_iter().filter(Result::is_err).count();
    info!(relayed = messages.len() - failed, failed, "amazon mq batch");
    if failed > 0 {
        return Err(format!("{failed} of {} messages not accepted by SQS", messages.len()).into());
    }
    Ok(())
}

/// Decodes an Amazon MQ event (untrusted bytes): a queue without a route or a body that is
/// not base64 is an error, never a panic.
pub fn amazon_mq_messages(routes: &Routes, event: RabbitMqEvent) -> Result<Vec<InboundMessage>, market_lambda::Error> {
    let mut messages = Vec::new();
    for (queue, list) in event.messages_by_queue {
        let route = routes.for_amqp_queue(&queue).ok_or_else(|| format!("no route for queue {queue}"))?;
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
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_percent_encoded() {
        assert_eq!(super::encode("a b@c:d/é"), "a%20b%40c%3Ad%2F%C3%A9");
    }

    use proptest::prelude::*;

    fn any_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            ".{0,24}".prop_map(serde_json::Value::from),
            "[A-Za-z0-9+/=]{0,24}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("[a-zA-Z:]{0,12}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Amazon MQ events, structured (the event's shape with random queues, bodies and
        /// properties) and free-form JSON: a typed error or messages, never a panic.
        #[test]
        fn fuzz_amazon_mq_events(
            queue in prop_oneof![Just("helium-market.shop.order.paid::/".to_owned()), ".{0,30}"],
            data in prop_oneof!["[A-Za-z0-9+/=]{0,40}", ".{0,40}"],
            message_id in proptest::option::of(".{0,20}"),
            headers in proptest::collection::btree_map("[a-z-]{1,10}", any_json(), 0..4),
            free in any_json(),
        ) {
            let route = |e: &str, k: &str| market_messaging::Route { exchange: e.into(), routing_key: k.into(), queue_url: format!("http://q/{k}") };
            let routes = Routes(vec![route("shop", "order.paid"), route("auth", "user.registered")]);
            let structured = serde_json::json!({
                "eventSource": "aws:rmq",
                "rmqMessagesByQueue": { queue: [{ "basicProperties": { "messageId": message_id, "headers": headers }, "data": data, "redelivered": false }] },
            });
            for doc in [structured, free] {
                if let Ok(event) = serde_json::from_value::<RabbitMqEvent>(doc) {
                    let _ = amazon_mq_messages(&routes, event);
                }
            }
        }
    }
}
