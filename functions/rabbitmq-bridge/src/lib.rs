//! The RabbitMQ bridge, both directions:
//! - inbound, RabbitMQ -> SQS: the platform's auth/shop events through one relay core
//!   (`market_messaging::Relay`);
//! - outbound, SQS -> RabbitMQ: the market's own events (the outbox relay's queue),
//!   published with confirms ([`outbound`]).
//!
//! Two entry points: on Lambda, one function takes both the Amazon MQ event source (inbound)
//! and the outbound queue's SQS event source; elsewhere a long-running process runs the
//! inbound consumer ([`consumer`]) and the outbound loop side by side.

pub mod consumer;
pub mod outbound;
pub mod publisher;

use aws_lambda_events::rabbitmq::RabbitMqEvent;
use base64::Engine;
use market_messaging::{InboundMessage, Relay};
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

#[cfg(test)]
mod tests {
    #[test]
    fn userinfo_is_percent_encoded() {
        assert_eq!(super::encode("a b@c:d/é"), "a%20b%40c%3Ad%2F%C3%A9");
    }
}
