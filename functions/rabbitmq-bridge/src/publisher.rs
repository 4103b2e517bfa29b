//! Publishing outbound events to RabbitMQ: persistent, `mandatory`, with publisher confirms.
//! A message counts as published only when the broker confirmed it *and* did not return it
//! as unroutable; only then may its SQS message be deleted.

use std::time::{SystemTime, UNIX_EPOCH};

use futures::future::join_all;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::Confirmation;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use market_messaging::OutboundMessage;
use market_storage::tables::MARKET_EXCHANGE;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The connection or channel failed: reconnect, then retry.
    #[error("broker connection: {0}")]
    Connection(#[from] lapin::Error),
    #[error("the broker refused the message (nack)")]
    Nacked,
    /// `mandatory` and no queue is bound for the routing key: retry later, never drop.
    #[error("unroutable: no queue bound to {exchange}/{routing_key}")]
    Unroutable { exchange: String, routing_key: String },
}

pub struct Publisher {
    connection: Connection,
    channel: Channel,
    declared: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Publisher {
    pub async fn connect(url: &str) -> Result<Self, lapin::Error> {
        let connection = Connection::connect(url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        let publisher = Publisher { connection, channel, declared: Default::default() };
        // Local stacks only: a durable queue standing in for the balance owner's, so that
        // outbound events are routable (and visible) without the balance module.
        if let Ok(queue) = std::env::var("OUTBOUND_BIND_QUEUE") {
            if !queue.is_empty() {
                publisher.declare(MARKET_EXCHANGE).await?;
                let durable = QueueDeclareOptions { durable: true, ..Default::default() };
                publisher.channel.queue_declare(queue.as_str().into(), durable, FieldTable::default()).await?;
                publisher
                    .channel
                    .queue_bind(queue.as_str().into(), MARKET_EXCHANGE.into(), "#".into(), QueueBindOptions::default(), FieldTable::default())
                    .await?;
            }
        }
        Ok(publisher)
    }

    pub fn is_connected(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }

    /// The exchange is a durable topic exchange; declaring it is idempotent and makes a
    /// fresh broker work without manual set-up.
    async fn declare(&self, exchange: &str) -> Result<(), lapin::Error> {
        if self.declared.lock().map(|d| d.contains(exchange)).unwrap_or(false) {
            return Ok(());
        }
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        self.channel.exchange_declare(exchange.into(), ExchangeKind::Topic, durable, FieldTable::default()).await?;
        if let Ok(mut d) = self.declared.lock() {
            d.insert(exchange.to_owned());
        }
        Ok(())
    }

    /// Publishes all messages, then waits for every confirm; one result per message, in order.
    pub async fn publish_all(&self, messages: &[OutboundMessage]) -> Vec<Result<(), PublishError>> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let mut pending = Vec::with_capacity(messages.len());
        for m in messages {
            let published = async {
                self.declare(&m.exchange).await?;
                let properties = BasicProperties::default()
                    .with_delivery_mode(2) // persistent
                    .with_content_type("application/json".into())
                    .with_message_id(m.message_id.as_str().into())
                    .with_type(m.routing_key.as_str().into())
                    .with_app_id("helium-market".into())
                    .with_timestamp(now);
                let options = BasicPublishOptions { mandatory: true, ..Default::default() };
                self.channel
                    .basic_publish(m.exchange.as_str().into(), m.routing_key.as_str().into(), options, m.body.as_bytes(), properties)
                    .await
            };
            pending.push(published.await);
        }
        // Wait for every confirm. A returned (unroutable) message is matched by its message id,
        // not by the confirm that happens to carry it: with `multiple` acks the client may
        // attach a return to another message of the batch.
        let confirms = join_all(pending.into_iter().map(|p| async move { p?.await })).await;
        let returned: std::collections::HashSet<String> = confirms
            .iter()
            .filter_map(|c| match c {
                Ok(Confirmation::Ack(Some(r)) | Confirmation::Nack(Some(r))) => {
                    r.delivery.properties.message_id().as_ref().map(|id| id.as_str().to_owned())
                }
                _ => None,
            })
            .collect();
        confirms
            .into_iter()
            .zip(messages)
            .map(|(confirm, m)| match confirm? {
                _ if returned.contains(&m.message_id) => {
                    Err(PublishError::Unroutable { exchange: m.exchange.clone(), routing_key: m.routing_key.clone() })
                }
                Confirmation::Ack(_) => Ok(()),
                Confirmation::Nack(_) | Confirmation::NotRequested => Err(PublishError::Nacked),
            })
            .collect()
    }

    pub async fn close(&self) {
        let _ = self.channel.close(200, "shutdown".into()).await;
        let _ = self.connection.close(200, "shutdown".into()).await;
    }
}
