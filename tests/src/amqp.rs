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
        let url = std::env::var("AMQP_URL").expect("AMQP_URL: run inside `make test`");
        let connection = Connection::connect(&url, ConnectionProperties::default()).await.expect("amqp connect");
        let channel = connection.create_channel().await.expect("channel");
        channel.confirm_select(ConfirmSelectOptions::default()).await.expect("confirms");
        for (exchange, key) in [("auth", "user.registered"), ("shop", "order.paid")] {
            let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
            channel.exchange_declare(exchange.into(), ExchangeKind::Topic, durable, FieldTable::default()).await.expect("exchange");
            let queue = format!("helium-market.{exchange}.{key}");
            let options = QueueDeclareOptions { durable: true, ..Default::default() };
            channel.queue_declare(queue.as_str().into(), options, FieldTable::default()).await.expect("queue");
            channel
                .queue_bind(queue.as_str().into(), exchange.into(), key.into(), QueueBindOptions::default(), FieldTable::default())
                .await
                .expect("bind");
        }
        Publisher { _connection: connection, channel }
    }

    pub async fn publish(&self, exchange: &str, routing_key: &str, message_id: &str, body: &str) {
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(message_id.into());
        self.channel
            .basic_publish(exchange.into(), routing_key.into(), BasicPublishOptions::default(), body.as_bytes(), properties)
            .await
            .expect("publish")
            .await
            .expect("confirm");
    }

    pub async fn user_registered(&self, event_id: &str, user: &str, code: Option<&str>) {
        let body = serde_json::json!({"event_id": event_id, "user_id": user, "invite_code": code,
                                      "occurred_at": "2026-11-24T12:00:00Z"});
        self.publish("auth", "user.registered", event_id, &body.to_string()).await;
    }

    pub async fn order_paid(&self, event_id: &str, order: &str, user: &str, amount: i64) {
        let body = serde_json::json!({"event_id": event_id, "order_id": order, "user_id": user, "amount": amount,
                                      "currency": "USD", "occurred_at": 1795000000000i64});
        self.publish("shop", "order.paid", event_id, &body.to_string()).await;
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
