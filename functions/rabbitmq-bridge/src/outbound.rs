//! SQS -> RabbitMQ: the market's outbound events (the outbox relay's queue) published with
//! confirms; an SQS message is deleted only after the broker confirmed its event. Anything
//! not confirmed stays in SQS and comes back (standalone: at once when the broker is back;
//! Lambda: after the visibility timeout), so an outage of RabbitMQ delays events and loses
//! none. Redeliveries carry the same message id.

use std::time::Duration;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message};
use market_messaging::OutboundMessage;
use tokio::sync::watch;
use tracing::{info, info_span, warn, Instrument};

use crate::publisher::{PublishError, Publisher};

/// The standalone loop: connect to the broker first, then poll SQS; never takes messages off
/// the queue while it cannot publish them.
pub async fn run(url: String, sqs: aws_sdk_sqs::Client, queue_url: String, mut stop: watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        if *stop.borrow() {
            return;
        }
        match Publisher::connect(&url).await {
            Ok(publisher) => {
                backoff = Duration::from_millis(200);
                info!(queue = %queue_url, "publishing outbound events");
                let ended = session(&publisher, &sqs, &queue_url, &mut stop).await;
                publisher.close().await;
                match ended {
                    Ok(()) => {
                        info!("outbound publisher stopped");
                        return;
                    }
                    Err(e) => warn!(error = %e, "outbound session ended"),
                }
            }
            Err(e) => warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "broker unreachable for outbound events"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn session(
    publisher: &Publisher,
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    loop {
        if !publisher.is_connected() {
            return Err("broker connection lost".into());
        }
        let received = tokio::select! {
            r = sqs.receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(2)
                .message_attribute_names("All")
                .send() => r,
            _ = stop.wait_for(|s| *s) => return Ok(()),
        };
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                warn!(error = %e, "receive from the outbound queue failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let results = publish(publisher, &messages).await;
        let mut done = Vec::new();
        let mut retry_now = Vec::new();
        let mut lost_connection = false;
        for (i, (m, result)) in messages.iter().zip(&results).enumerate() {
            let Some(handle) = m.receipt_handle() else { continue };
            match result {
                Ok(()) => done.push(DeleteMessageBatchRequestEntry::builder().id(i.to_string()).receipt_handle(handle).build()),
                Err(Failure::Publish(e)) if e.needs_reconnect() => {
                    lost_connection = true;
                    // Back as soon as we are reconnected, not after the visibility timeout.
                    retry_now.push(
                        ChangeMessageVisibilityBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(handle)
                            .visibility_timeout(0)
                            .build(),
                    );
                }
                Err(_) => {} // stays invisible until its timeout, then retried; DLQ after maxReceiveCount
            }
        }
        let done: Vec<_> = done.into_iter().filter_map(Result::ok).collect();
        if !done.is_empty() {
            if let Err(e) = sqs.delete_message_batch().queue_url(queue_url).set_entries(Some(done)).send().await {
                // Published but not deleted: it will be published again, with the same id.
                warn!(error = %e, "delete after confirm failed");
            }
        }
        let retry_now: Vec<_> = retry_now.into_iter().filter_map(Result::ok).collect();
        if !retry_now.is_empty() {
            let _ = sqs.change_message_visibility_batch().queue_url(queue_url).set_entries(Some(retry_now)).send().await;
        }
        if lost_connection {
            return Err("broker connection lost while publishing".into());
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Invalid(#[from] market_domain::MarketError),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

fn parse(m: &Message) -> Result<OutboundMessage, Failure> {
    let attribute = |name: &str| m.message_attributes().and_then(|a| a.get(name)).and_then(|v| v.string_value());
    Ok(OutboundMessage::from_sqs(m.body(), attribute)?)
}

/// Publishes what parses; one result per message, each logged in its own span.
async fn publish(publisher: &Publisher, messages: &[Message]) -> Vec<Result<(), Failure>> {
    let parsed: Vec<Result<OutboundMessage, Failure>> = messages.iter().map(parse).collect();
    publish_parsed(publisher, parsed, messages.iter().map(|m| m.message_id().unwrap_or("").to_owned()).collect()).await
}

async fn publish_parsed(
    publisher: &Publisher,
    parsed: Vec<Result<OutboundMessage, Failure>>,
    sqs_ids: Vec<String>,
) -> Vec<Result<(), Failure>> {
    let valid: Vec<OutboundMessage> = parsed.iter().filter_map(|p| p.as_ref().ok().cloned()).collect();
    let mut published = publisher.publish_all(&valid).await.into_iter();
    let mut results = Vec::with_capacity(parsed.len());
    for (p, sqs_id) in parsed.into_iter().zip(sqs_ids) {
        let result = match p {
            Ok(m) => {
                let r = published.next().unwrap_or(Err(PublishError::Nacked));
                let outcome = match &r {
                    Ok(()) => "published",
                    Err(PublishError::Unroutable { .. }) => "returned",
                    Err(PublishError::Nacked) => "nacked",
                    Err(PublishError::Connection(_) | PublishError::Timeout) => "broker_unreachable",
                };
                market_lambda::metrics::outcome(market_lambda::metrics::names::OUTBOUND_EVENTS, outcome);
                let r = r.map_err(Failure::from);
                let span = info_span!("outbound_event", message_id = %m.message_id, sqs_message_id = %sqs_id);
                async {
                    match &r {
                        Ok(()) => info!(exchange = %m.exchange, routing_key = %m.routing_key, "event published"),
                        Err(e) => warn!(error = %e, "event not published, will be retried"),
                    }
                }
                .instrument(span)
                .await;
                r
            }
            Err(e) => {
                market_lambda::metrics::outcome(market_lambda::metrics::names::OUTBOUND_EVENTS, "malformed");
                warn!(sqs_message_id = %sqs_id, error = %e, "outbound message malformed, it will reach the DLQ");
                Err(e)
            }
        };
        results.push(result);
    }
    results
}

/// On Lambda (SQS event source on the outbound queue): the broker connection is built on the
/// first event and kept for the container's life; a broken one is rebuilt.
pub struct LambdaOutbound {
    url: String,
    publisher: tokio::sync::Mutex<Option<Publisher>>,
}

impl LambdaOutbound {
    pub fn new(url: String) -> Self {
        LambdaOutbound { url, publisher: tokio::sync::Mutex::new(None) }
    }

    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let ids: Vec<String> = event.records.iter().map(|r| r.message_id.clone().unwrap_or_default()).collect();
        let parsed: Vec<Result<OutboundMessage, Failure>> = event
            .records
            .iter()
            .map(|r| {
                let attribute = |name: &str| r.message_attributes.get(name).and_then(|a| a.string_value.as_deref());
                OutboundMessage::from_sqs(r.body.as_deref(), attribute).map_err(Failure::from)
            })
            .collect();
        let mut guard = self.publisher.lock().await;
        if guard.as_ref().is_some_and(|p| !p.is_connected()) {
            *guard = None;
        }
        if guard.is_none() {
            match Publisher::connect(&self.url).await {
                Ok(p) => *guard = Some(p),
                Err(e) => warn!(error = %e, "broker unreachable; the batch will be retried"),
            }
        }
        let results = match guard.as_ref() {
            Some(publisher) => publish_parsed(publisher, parsed, ids.clone()).await,
            None => ids.iter().map(|_| Err(Failure::Publish(PublishError::Nacked))).collect(),
        };
        let mut response = SqsBatchResponse::default();
        for (id, result) in ids.into_iter().zip(results) {
            if result.is_err() {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
        response
    }
}
