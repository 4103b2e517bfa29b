//! Publishing outbound events to RabbitMQ: persistent, `mandatory`, with publisher confirms.
//! A message counts as published only when the broker confirmed it *and* did not return it
//! as unroutable; only then may its SQS message be deleted.
//!
//! Every wait on the broker is bounded: when RabbitMQ closes a connection under a publish
//! (`stop_app`, a node restart), lapin may leave the publish or its confirm pending forever
//! (amqp-rs/lapin#409). A publisher that timed out counts as broken and is rebuilt.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    /// No publish or confirm within [`BROKER_TIMEOUT`]: the connection is taken as lost.
    #[error("no answer from the broker in {} s", BROKER_TIMEOUT.as_secs())]
    Timeout,
}

impl PublishError {
    /// The connection is unusable: reconnect before publishing again.
    pub fn needs_reconnect(&self) -> bool {
        matches!(self, PublishError::Connection(_) | PublishError::Timeout)
    }
}

/// How long one batch may wait for the broker (publishes and confirms together). A healthy
/// broker confirms in milliseconds; this only ends a wait on a connection that is gone.
pub const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Publisher {
    connection: Connection,
    channel: Channel,
    declared: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Set when a wait timed out: lapin may still report the connection as up.
    broken: AtomicBool,
}

impl Publisher {
    /// Connects and sets up the channel, within [`BROKER_TIMEOUT`] (a broker that is still
    /// starting may accept the socket and not answer yet).
    pub async fn connect(url: &str) -> Result<Self, PublishError> {
        tokio::time::timeout(BROKER_TIMEOUT, Self::open(url)).await.map_err(|_| PublishError::Timeout)?.map_err(PublishError::from)
    }

    async fn open(url: &str) -> Result<Self, lapin::Error> {
        let connection = Connection::connect(url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        let publisher = Publisher { connection, channel, declared: Default::default(), broken: AtomicBool::new(false) };
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
        !self.broken.load(Ordering::Relaxed) && self.connection.status().connected() && self.channel.status().connected()
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
    /// Whatever is not answered within [`BROKER_TIMEOUT`] is a [`PublishError::Timeout`] and
    /// marks the publisher broken.
    pub async fn publish_all(&self, messages: &[OutboundMessage]) -> Vec<Result<(), PublishError>> {
        let deadline = tokio::time::Instant::now() + BROKER_TIMEOUT;
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
            // After one publish timed out the connection is gone: do not wait again per message.
            let published = if self.broken.load(Ordering::Relaxed) {
                Err(PublishError::Timeout)
            } else {
                match tokio::time::timeout_at(deadline, published).await {
                    Ok(r) => r.map_err(PublishError::from),
                    Err(_) => {
                        self.broken.store(true, Ordering::Relaxed);
                        Err(PublishError::Timeout)
                    }
                }
            };
            pending.push(published);
        }
        // Wait for every confirm. A returned (unroutable) message is matched by its message id,
        // not by the confirm that happens to carry it: with `multiple` acks the client may
        // attach a return to another message of the batch.
        let confirms = join_all(pending.into_iter().map(|p| async move {
            match tokio::time::timeout_at(deadline, async { Ok::<_, PublishError>(p?.await?) }).await {
                Ok(r) => r,
                Err(_) => {
                    self.broken.store(true, Ordering::Relaxed);
                    Err(PublishError::Timeout)
                }
            }
        }))
        .await;
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
        close_bounded(&self.channel, &self.connection).await;
    }
}

/// Closes politely, bounded: a dead connection's close may never be answered.
pub async fn close_bounded(channel: &Channel, connection: &Connection) {
    let _ = tokio::time::timeout(BROKER_TIMEOUT, async {
        let _ = channel.close(200, "shutdown".into()).await;
        let _ = connection.close(200, "shutdown".into()).await;
    })
    .await;
}
