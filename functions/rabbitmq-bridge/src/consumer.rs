//! The standalone consumer: durable queues bound to the routes, manual acks only after SQS
//! accepted the message (a batch's acks written while the next batch goes to SQS), bounded
//! prefetch, reconnect with backoff, and on SIGTERM/Ctrl-C: finish the batch in flight
//! (send, ack), then close — the broker requeues whatever was
//! prefetched but not acked. A killed bridge loses nothing: unacked messages are redelivered
//! (duplicates are harmless downstream).
//!
//! Waits on the broker are bounded ([`BROKER_TIMEOUT`]), and an idle consumer checks its
//! connection every second: a connection the broker closed must end the session even when
//! lapin leaves a future pending (amqp-rs/lapin#409).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use market_domain::MarketError;
use market_messaging::{InboundMessage, Relay};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::publisher::{close_bounded, BROKER_TIMEOUT};

/// Messages per SQS batch, and how long to wait for more before sending a partial one.
const BATCH: usize = 10;
const LINGER: Duration = Duration::from_millis(5);
/// How long a batch SQS did not take waits before it is requeued: the broker redelivers a
/// requeued message at once, and without a pause the bridge would retry a struggling SQS in
/// a tight loop.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

enum End {
    Shutdown,
}

pub async fn run(relay: Arc<Relay>, url: String, prefetch: u16, stop: watch::Receiver<bool>) -> Result<(), market_lambda::Error> {
    let mut backoff = Duration::from_millis(200);
    loop {
        match session(&relay, &url, prefetch, stop.clone(), &mut backoff).await {
            Ok(End::Shutdown) => return Ok(()),
            Err(e) => warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "broker session ended"),
        }
        let mut stop = stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn session(
    relay: &Relay,
    url: &str,
    prefetch: u16,
    mut stop: watch::Receiver<bool>,
    backoff: &mut Duration,
) -> Result<End, market_lambda::Error> {
    let (connection, channel, consumers) =
        tokio::time::timeout(BROKER_TIMEOUT, subscribe(relay, url, prefetch)).await.map_err(|_| "broker did not answer the set-up")??;
    info!(routes = relay.routes.0.len(), prefetch, "bridge consuming");
    *backoff = Duration::from_millis(200);
    let mut deliveries = futures::stream::select_all(consumers);
    let mut check = tokio::time::interval(Duration::from_secs(1));
    // The previous batch's acks, on the wire while the next batch goes to SQS: the broker's
    // answer no longer adds to every batch. One batch's acks at a time, each only after SQS
    // took its messages; a crash meanwhile leaves them unacked, and the broker redelivers.
    let mut settling: Option<tokio::task::JoinHandle<Result<(), market_lambda::Error>>> = None;
    loop {
        let first = tokio::select! {
            d = deliveries.next() => d,
            _ = check.tick() => {
                if connection.status().connected() && channel.status().connected() {
                    continue;
                }
                return Err("broker connection lost".into());
            }
            _ = stop.wait_for(|s| *s) => {
                // Only the last batch's acks can be in flight: finish them, then closing
                // returns every unacked message to the queue.
                if let Some(previous) = settling.take() {
                    let _ = previous.await;
                }
                close_bounded(&channel, &connection).await;
                info!("inbound consumer stopped");
                return Ok(End::Shutdown);
            }
        };
        let Some(first) = first else { return Err("consumer stream ended".into()) };
        let mut batch = vec![first?];
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, deliveries.next()).await {
                Ok(Some(d)) => batch.push(d?),
                _ => break,
            }
        }
        let messages: Vec<InboundMessage> = batch.iter().map(inbound).collect();
        let results = relay.relay(&messages).await;
        if results.iter().any(|r| matches!(r, Err(e) if !matches!(e, MarketError::InvalidArgument(_)))) {
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        if let Some(previous) = settling.take() {
            previous.await??;
        }
        // The broker answers acks at once; an ack that hangs means the connection is gone (what
        // was not acked is redelivered after the reconnect).
        settling = Some(tokio::spawn(async move {
            tokio::time::timeout(BROKER_TIMEOUT, settle(&batch, results)).await.map_err(|_| "broker did not take the acks")??;
            Ok(())
        }));
    }
}

/// Acks what SQS accepted; the rest is dropped (unroutable) or requeued. The batch's acks
/// and nacks are handed to the connection together (each resolves once written), not one
/// awaited after another: settling ten one by one cost several times the SQS call itself.
async fn settle(batch: &[Delivery], results: Vec<Result<(), MarketError>>) -> Result<(), lapin::Error> {
    let settled = batch.iter().zip(results).map(|(delivery, result)| async move {
        match result {
            Ok(()) => delivery.ack(BasicAckOptions::default()).await,
            // Unroutable: it would never succeed; let the broker dead-letter or drop it.
            Err(MarketError::InvalidArgument(reason)) => {
                warn!(%reason, "message dropped");
                delivery.nack(BasicNackOptions { requeue: false, ..Default::default() }).await
            }
            Err(e) => {
                warn!(error = %e, "SQS did not accept the message, requeued");
                delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await
            }
        }
    });
    futures::future::try_join_all(settled).await.map(|_| ())
}

/// Connects, declares each route's durable queue and binding, and starts its consumer.
async fn subscribe(relay: &Relay, url: &str, prefetch: u16) -> Result<(Connection, lapin::Channel, Vec<lapin::Consumer>), lapin::Error> {
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel.basic_qos(prefetch, BasicQosOptions::default()).await?;
    let mut consumers = Vec::new();
    for route in &relay.routes.0 {
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        channel.exchange_declare(route.exchange.as_str().into(), ExchangeKind::Topic, durable, FieldTable::default()).await?;
        let queue = route.amqp_queue();
        let options = QueueDeclareOptions { durable: true, ..Default::default() };
        channel.queue_declare(queue.as_str().into(), options, FieldTable::default()).await?;
        channel
            .queue_bind(
                queue.as_str().into(),
                route.exchange.as_str().into(),
                route.routing_key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let consumer = channel
            .basic_consume(queue.as_str().into(), format!("helium-market-bridge/{queue}").as_str().into(), BasicConsumeOptions::default(), FieldTable::default())
            .await?;
        consumers.push(consumer);
    }
    Ok((connection, channel, consumers))
}

fn json(value: &AMQPValue) -> serde_json::Value {
    match value {
        AMQPValue::LongString(s) => serde_json::Value::String(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => serde_json::Value::String(s.as_str().to_owned()),
        AMQPValue::Boolean(b) => serde_json::Value::Bool(*b),
        other => serde_json::to_value(other).unwrap_or(serde_json::Value::Null),
    }
}

fn inbound(d: &Delivery) -> InboundMessage {
    inbound_parts(d.exchange.as_str(), d.routing_key.as_str(), &d.data, &d.properties)
}

/// A delivery's parts as the relay takes them: any properties a publisher sets (ids that are
/// not UTF-8, nested or binary headers) map to a message, never a panic.
fn inbound_parts(exchange: &str, routing_key: &str, data: &[u8], properties: &BasicProperties) -> InboundMessage {
    InboundMessage {
        exchange: exchange.to_owned(),
        routing_key: routing_key.to_owned(),
        body: data.to_vec(),
        message_id: properties.message_id().as_ref().map(|m| m.as_str().to_owned()),
        headers: properties
            .headers()
            .as_ref()
            .map(|h| h.inner().iter().map(|(k, v)| (k.as_str().to_owned(), json(v))).collect())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::{ByteArray, FieldArray, LongString, ShortString};
    use proptest::prelude::*;

    fn any_amqp() -> impl Strategy<Value = AMQPValue> {
        let leaf = prop_oneof![
            any::<bool>().prop_map(AMQPValue::Boolean),
            any::<i8>().prop_map(AMQPValue::ShortShortInt),
            any::<i64>().prop_map(AMQPValue::LongLongInt),
            any::<f32>().prop_map(AMQPValue::Float),
            any::<f64>().prop_map(AMQPValue::Double),
            any::<u64>().prop_map(AMQPValue::Timestamp),
            ".{0,20}".prop_map(|s| AMQPValue::ShortString(ShortString::from(s))),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(|b| AMQPValue::LongString(LongString::from(b))),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(|b| AMQPValue::ByteArray(ByteArray::from(b))),
            Just(AMQPValue::Void),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(|v| AMQPValue::FieldArray(FieldArray::from(v))),
                proptest::collection::btree_map("[a-z]{1,8}", inner, 0..4).prop_map(|m| {
                    let mut t = FieldTable::default();
                    for (k, v) in m {
                        t.insert(ShortString::from(k), v);
                    }
                    AMQPValue::FieldTable(t)
                }),
            ]
        })
    }

    proptest! {
        /// AMQP properties as any publisher may set them: every header value type, nested
        /// tables, binary strings, NaN floats, ids of any text — mapped, never a panic.
        #[test]
        fn fuzz_amqp_properties(
            message_id in proptest::option::of(".{0,40}"),
            headers in proptest::option::of(proptest::collection::btree_map("[a-zA-Z-]{1,12}", any_amqp(), 0..6)),
            body in proptest::collection::vec(any::<u8>(), 0..64),
            exchange in ".{0,12}",
            routing_key in ".{0,20}",
        ) {
            let mut properties = BasicProperties::default();
            if let Some(id) = message_id.clone() {
                properties = properties.with_message_id(ShortString::from(id));
            }
            if let Some(h) = headers {
                let mut t = FieldTable::default();
                for (k, v) in h {
                    t.insert(ShortString::from(k), v);
                }
                properties = properties.with_headers(t);
            }
            let m = inbound_parts(&exchange, &routing_key, &body, &properties);
            prop_assert_eq!(m.message_id, message_id);
            prop_assert_eq!(m.body, body);
            prop_assert!(serde_json::to_string(&m.headers).is_ok());
        }
    }
}
