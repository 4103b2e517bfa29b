//! Publishing the platform's events to the local RabbitMQ, as the auth and shop modules do:
//! persistent messages with a message id, confirmed by the broker.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

pub struct Publisher {
    _connection: Connection,
    channel: Channel,
}

impl Publisher {
    /// Connects and declares what the bridge consumes (idempotent, same arguments), so a
    /// message published before the bridge's first connection is still queued.
    pub async fn connect() -> Publisher {
        Publisher::try_connect().await.expect("amqp connect")
    }

    /// As [`Publisher::connect`], an unreachable broker being an error (chaos runs retry).
    pub async fn try_connect() -> Result<Publisher, lapin::Error> {
        let url = std::env::var("AMQP_URL").expect("AMQP_URL: run inside `make test`");
        let connection = Connection::connect(&url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        for (exchange, key) in [("auth", "user.registered"), ("shop", "order.paid"), ("shop", "order.refunded")] {
            let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
            channel.exchange_declare(exchange.into(), ExchangeKind::Topic, durable, FieldTable::default()).await?;
            let queue = format!("helium-market.{exchange}.{key}");
            let options = QueueDeclareOptions { durable: true, ..Default::default() };
            channel.queue_declare(queue.as_str().into(), options, FieldTable::default()).await?;
            channel.queue_bind(queue.as_str().into(), exchange.into(), key.into(), QueueBindOptions::default(), FieldTable::default()).await?;
        }
        Ok(Publisher { _connection: connection, channel })
    }

    pub async fn publish(&self, exchange: &str, routing_key: &str, message_id: &str, body: &str) {
        self.try_publish(exchange, routing_key, message_id, body).await.expect("publish confirmed");
    }

    /// Publishes and waits for the broker's confirm (a nack is an error too).
    pub async fn try_publish(&self, exchange: &str, routing_key: &str, message_id: &str, body: &str) -> Result<(), lapin::Error> {
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(message_id.into());
        let confirm = self
            .channel
            .basic_publish(exchange.into(), routing_key.into(), BasicPublishOptions::default(), body.as_bytes(), properties)
            .await?
            .await?;
        if confirm.is_nack() {
            return Err(lapin::Error::from(lapin::ErrorKind::InvalidChannelState(lapin::ChannelState::Error, "publish nacked")));
        }
        Ok(())
    }

    /// The three platform events' bodies, as the auth and shop modules publish them.
    pub fn user_registered_body(event_id: &str, user: &str, code: Option<&str>) -> String {
        serde_json::json!({"event_id": event_id, "user_id": user, "invite_code": code, "occurred_at": "2026-11-24T12:00:00Z"}).to_string()
    }

    pub fn order_paid_body(event_id: &str, order: &str, user: &str, amount: i64) -> String {
        serde_json::json!({"event_id": event_id, "order_id": order, "user_id": user, "amount": amount,
                           "currency": "USD", "occurred_at": 1795000000000i64})
        .to_string()
    }

    pub fn order_refunded_body(event_id: &str, refund_id: &str, order: &str, user: &str, amount: i64, reason: &str) -> String {
        serde_json::json!({
            "event_id": event_id, "refund_id": refund_id, "order_id": order, "user_id": user, "amount": amount,
            "currency": "USD", "reason": reason, "occurred_at": crate::rpc::now_secs() * 1000,
        })
        .to_string()
    }

    pub async fn user_registered(&self, event_id: &str, user: &str, code: Option<&str>) {
        self.publish("auth", "user.registered", event_id, &Self::user_registered_body(event_id, user, code)).await;
    }

    pub async fn order_paid(&self, event_id: &str, order: &str, user: &str, amount: i64) {
        self.publish("shop", "order.paid", event_id, &Self::order_paid_body(event_id, order, user, amount)).await;
    }

    /// `shop/order.refunded` (reason `refund` or `chargeback`).
    pub async fn order_refunded(&self, event_id: &str, refund_id: &str, order: &str, user: &str, amount: i64, reason: &str) {
        self.publish("shop", "order.refunded", event_id, &Self::order_refunded_body(event_id, refund_id, order, user, amount, reason)).await;
    }
}

/// Polls `check` until it holds or the deadline passes (no blind sleeps).
pub async fn eventually<F, Fut>(what: &str, seconds: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out after {seconds} s waiting for: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// One outbound event as a consumer bound to exchange `market` receives it.
#[derive(Debug, Clone)]
pub struct Received {
    pub exchange: String,
    pub routing_key: String,
    pub message_id: Option<String>,
    pub delivery_mode: Option<u8>,
    pub content_type: Option<String>,
    pub body: serde_json::Value,
}

/// A durable queue bound to exchange `market`, key `affiliate.withdrawn`, as the balance
/// owner would bind one. Each read opens its own connection, so reads survive a broker
/// outage in between.
pub struct WithdrawnQueue {
    pub name: String,
}

async fn amqp_channel() -> Result<(Connection, Channel), lapin::Error> {
    let url = std::env::var("AMQP_URL").expect("AMQP_URL: run inside `make test`");
    let connection = Connection::connect(&url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    Ok((connection, channel))
}

/// Ready messages in these queues (a passive declare each); an unreachable broker is an error.
pub async fn queued(names: &[&str]) -> Result<u64, lapin::Error> {
    let (connection, channel) = amqp_channel().await?;
    let mut n = 0;
    for name in names {
        let options = QueueDeclareOptions { passive: true, ..Default::default() };
        n += u64::from(channel.queue_declare((*name).into(), options, FieldTable::default()).await?.message_count());
    }
    let _ = connection.close(200, "done".into()).await;
    Ok(n)
}

impl WithdrawnQueue {
    pub async fn bind() -> WithdrawnQueue {
        let name = format!("test.withdrawn.{}", nanoid::nanoid!(8));
        let (connection, channel) = amqp_channel().await.expect("amqp connect");
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        channel.exchange_declare("market".into(), ExchangeKind::Topic, durable, FieldTable::default()).await.expect("exchange");
        let options = QueueDeclareOptions { durable: true, ..Default::default() };
        channel.queue_declare(name.as_str().into(), options, FieldTable::default()).await.expect("queue");
        channel
            .queue_bind(name.as_str().into(), "market".into(), "affiliate.withdrawn".into(), QueueBindOptions::default(), FieldTable::default())
            .await
            .expect("bind");
        let _ = connection.close(200, "done".into()).await;
        WithdrawnQueue { name }
    }

    /// Takes every message currently in the queue (acked); an unreachable broker reads as empty.
    pub async fn drain(&self) -> Vec<Received> {
        let Ok((connection, channel)) = amqp_channel().await else { return vec![] };
        let mut out = Vec::new();
        while let Ok(Some(m)) = channel.basic_get(self.name.as_str().into(), lapin::options::BasicGetOptions { no_ack: true }).await {
            let d = &m.delivery;
            out.push(Received {
                exchange: d.exchange.as_str().to_owned(),
                routing_key: d.routing_key.as_str().to_owned(),
                message_id: d.properties.message_id().as_ref().map(|s| s.as_str().to_owned()),
                delivery_mode: *d.properties.delivery_mode(),
                content_type: d.properties.content_type().as_ref().map(|s| s.as_str().to_owned()),
                body: serde_json::from_slice(&d.data).unwrap_or(serde_json::Value::Null),
            });
        }
        let _ = connection.close(200, "done".into()).await;
        out
    }

    pub async fn delete(self) {
        if let Ok((connection, channel)) = amqp_channel().await {
            let _ = channel.queue_delete(self.name.as_str().into(), Default::default()).await;
            let _ = connection.close(200, "done".into()).await;
        }
    }
}

/// Waits until every id in `expected` has arrived on `queue`, then until nothing more can
/// arrive (each expected outbox record relayed and the outbound SQS queue empty: the bridge
/// deletes a message only after its confirm, and a confirmed persistent message is already
/// in every bound queue). Returns what arrived for `users`, whatever its id.
pub async fn withdrawn_events(queue: &WithdrawnQueue, expected: &std::collections::HashSet<String>, users: &[&str], seconds: u64) -> Vec<Received> {
    let mine = |r: &Received| r.body["user_id"].as_str().is_some_and(|u| users.contains(&u));
    let mut got: Vec<Received> = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        got.extend(queue.drain().await.into_iter().filter(|r| mine(r)));
        let ids: std::collections::HashSet<&str> = got.iter().filter_map(|r| r.message_id.as_deref()).collect();
        let missing = expected.iter().filter(|e| !ids.contains(e.as_str())).count();
        if missing == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {seconds} s: {missing} of {} events missing", expected.len());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let store = crate::store().await;
    let sqs = aws_sdk_sqs::Client::new(&market_storage::aws_config().await);
    let url = std::env::var("MARKET_EVENTS_QUEUE_URL").expect("MARKET_EVENTS_QUEUE_URL");
    eventually("outbox relayed and the outbound queue drained", 60, || {
        let (store, sqs, url) = (&store, &sqs, &url);
        async move {
            for id in expected {
                match store.outbox_record(id).await {
                    Ok(Some(r)) if r.relayed_at.is_some() => {}
                    _ => return false,
                }
            }
            let Ok(out) = sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                .send()
                .await
            else {
                return false;
            };
            out.attributes().is_some_and(|a| a.values().all(|v| v == "0"))
        }
    })
    .await;
    got.extend(queue.drain().await.into_iter().filter(|r| mine(r)));
    got
}

/// How often each message id arrived.
pub fn counts(received: &[Received]) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for r in received {
        *counts.entry(r.message_id.clone().unwrap_or_default()).or_insert(0) += 1;
    }
    counts
}
