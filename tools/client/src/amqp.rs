//! RabbitMQ as the platform sees it: publishing the auth and shop modules' events
//! (persistent, with a message id, confirmed by the broker), and reading what the market
//! publishes from a queue bound to its exchange.
//!
//! Every wait on the broker is bounded by [`BROKER_TIMEOUT`]: when RabbitMQ closes a
//! connection under a publish, lapin may leave the publish or its confirm pending forever
//! (amqp-rs/lapin#409), and a client that waits forever stalls whoever shares it.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

/// How long one broker operation (connect and set up, or publish and confirm) may take.
pub const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error(transparent)]
    Broker(#[from] lapin::Error),
    #[error("the broker refused the message (nack)")]
    Nacked,
    #[error("no answer from the broker in {} s", BROKER_TIMEOUT.as_secs())]
    Timeout,
}

async fn bounded<T>(f: impl std::future::Future<Output = Result<T, AmqpError>>) -> Result<T, AmqpError> {
    tokio::time::timeout(BROKER_TIMEOUT, f).await.map_err(|_| AmqpError::Timeout)?
}

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
    pub async fn try_connect() -> Result<Publisher, AmqpError> {
        bounded(Self::open()).await
    }

    async fn open() -> Result<Publisher, AmqpError> {
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

    /// Publishes and waits for the broker's confirm (a nack is an error too). After a
    /// timeout, drop this publisher and connect again.
    pub async fn try_publish(&self, exchange: &str, routing_key: &str, message_id: &str, body: &str) -> Result<(), AmqpError> {
        bounded(self.publish_confirmed(exchange, routing_key, message_id, body)).await
    }

    async fn publish_confirmed(&self, exchange: &str, routing_key: &str, message_id: &str, body: &str) -> Result<(), AmqpError> {
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
            return Err(AmqpError::Nacked);
        }
        Ok(())
    }

    /// The three platform events' bodies, as the auth and shop modules publish them, dated
    /// now (the rules take an event at its own time: a fixed date in the past would make an
    /// order that overtakes its registration too old to wait for it).
    pub fn user_registered_body(event_id: &str, user: &str, code: Option<&str>) -> String {
        Self::user_registered_body_at(event_id, user, code, now_millis())
    }

    pub fn user_registered_body_at(event_id: &str, user: &str, code: Option<&str>, occurred_ms: i64) -> String {
        serde_json::json!({"event_id": event_id, "user_id": user, "invite_code": code, "occurred_at": occurred_ms}).to_string()
    }

    pub fn order_paid_body(event_id: &str, order: &str, user: &str, amount: i64) -> String {
        Self::order_paid_body_at(event_id, order, user, amount, now_millis())
    }

    pub fn order_paid_body_at(event_id: &str, order: &str, user: &str, amount: i64, occurred_ms: i64) -> String {
        serde_json::json!({"event_id": event_id, "order_id": order, "user_id": user, "amount": amount,
                           "currency": "USD", "occurred_at": occurred_ms})
        .to_string()
    }

    /// With the optional fields reward rules read: what was bought, and whether it is a new
    /// subscription or a renewal.
    pub fn order_paid_body_of(event_id: &str, order: &str, user: &str, amount: i64, product_id: Option<&str>, kind: Option<&str>) -> String {
        let mut body = serde_json::json!({"event_id": event_id, "order_id": order, "user_id": user, "amount": amount,
                                          "currency": "USD", "occurred_at": now_millis()});
        if let Some(p) = product_id {
            body["product_id"] = p.into();
        }
        if let Some(k) = kind {
            body["kind"] = k.into();
        }
        body.to_string()
    }

    pub fn order_refunded_body(event_id: &str, refund_id: &str, order: &str, user: &str, amount: i64, reason: &str) -> String {
        Self::order_refunded_body_at(event_id, refund_id, order, user, amount, reason, now_millis())
    }

    pub fn order_refunded_body_at(event_id: &str, refund_id: &str, order: &str, user: &str, amount: i64, reason: &str, occurred_ms: i64) -> String {
        serde_json::json!({
            "event_id": event_id, "refund_id": refund_id, "order_id": order, "user_id": user, "amount": amount,
            "currency": "USD", "reason": reason, "occurred_at": occurred_ms,
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

/// A durable queue bound to exchange `market` (key `affiliate.withdrawn` as the balance owner
/// would bind one, or any pattern: [`MarketQueue::bind_key`]). Each read opens its own connection, so reads survive a broker
/// outage in between.
pub struct MarketQueue {
    pub name: String,
}

pub async fn amqp_channel() -> Result<(Connection, Channel), lapin::Error> {
    let url = std::env::var("AMQP_URL").expect("AMQP_URL: run inside `make test`");
    let connection = Connection::connect(&url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    Ok((connection, channel))
}

/// Ready messages in these queues (a passive declare each); an unreachable broker is an error.
pub async fn queued(names: &[&str]) -> Result<u64, AmqpError> {
    bounded(count_ready(names)).await
}

async fn count_ready(names: &[&str]) -> Result<u64, AmqpError> {
    let (connection, channel) = amqp_channel().await?;
    let mut n = 0;
    for name in names {
        let options = QueueDeclareOptions { passive: true, ..Default::default() };
        n += u64::from(channel.queue_declare((*name).into(), options, FieldTable::default()).await?.message_count());
    }
    let _ = connection.close(200, "done".into()).await;
    Ok(n)
}

impl MarketQueue {
    pub async fn bind() -> MarketQueue {
        Self::bind_key("affiliate.withdrawn").await
    }

    /// A queue bound to exchange `market` with this routing key (a topic pattern: `affiliate.#`
    /// takes every lifecycle event, as a notification service or finance would bind).
    pub async fn bind_key(routing_key: &str) -> MarketQueue {
        let name = format!("test.market.{}", nanoid::nanoid!(8));
        let (connection, channel) = amqp_channel().await.expect("amqp connect");
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        channel.exchange_declare("market".into(), ExchangeKind::Topic, durable, FieldTable::default()).await.expect("exchange");
        let options = QueueDeclareOptions { durable: true, ..Default::default() };
        channel.queue_declare(name.as_str().into(), options, FieldTable::default()).await.expect("queue");
        channel
            .queue_bind(name.as_str().into(), "market".into(), routing_key.into(), QueueBindOptions::default(), FieldTable::default())
            .await
            .expect("bind");
        let _ = connection.close(200, "done".into()).await;
        MarketQueue { name }
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

fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
