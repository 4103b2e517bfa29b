//! Dead letters: list, show and redrive what SQS moved to a queue's DLQ.
//!
//! SQS has no "peek": listing receives every message with a short visibility timeout and
//! then makes each visible again at once, so the queue is left as it was found (the receive
//! count grows by one per listing). Redrive sends each message to its source queue with its
//! body and attributes and then deletes it from the DLQ: at least once (a crash between the
//! two leaves a copy in both), which the consumers absorb (SPEC §6, invariant 8).

use std::collections::BTreeMap;

use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName};
use aws_sdk_sqs::Client;
use market_domain::events::{OrderPaidEvent, OrderRefundedEvent, UserRegisteredEvent};
use market_domain::model::RewardEvent;
use market_messaging::outbound::OutboundMessage;
use serde_json::{json, Value};

use crate::render::iso8601_ms;

/// How long a listed message stays hidden while the listing runs.
const PEEK_VISIBILITY_SECONDS: i32 = 30;

/// The template's dead-letter queues (logical ids) and the queue each one catches for.
/// `OutboxRelayFailures` is the outbox stream's on-failure destination: no queue to redrive to.
pub const DEAD_LETTER_QUEUES: [(&str, Option<&str>); 6] = [
    ("UserRegisteredDLQ", Some("UserRegisteredQueue")),
    ("OrderPaidDLQ", Some("OrderPaidQueue")),
    ("OrderRefundedDLQ", Some("OrderRefundedQueue")),
    ("RewardDLQ", Some("RewardQueue")),
    ("MarketEventsDLQ", Some("MarketEventsQueue")),
    ("OutboxRelayFailures", None),
];

/// `order-paid`, `OrderPaid`, `orderpaiddlq` -> `OrderPaidDLQ`.
pub fn dead_letter_queue(name: &str) -> Option<(&'static str, Option<&'static str>)> {
    let wanted: String = name.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
    DEAD_LETTER_QUEUES.into_iter().find(|(id, _)| {
        let id = id.to_ascii_lowercase();
        id == wanted || id.strip_suffix("dlq") == Some(wanted.as_str())
    })
}

/// Queue URLs by logical id, from the local stack's env (`QUEUE_URL_<id>`) or a deployed
/// stack's outputs (`<id>Url`).
pub struct QueueUrls(pub BTreeMap<String, String>);

impl QueueUrls {
    pub fn url(&self, logical_id: &str) -> Result<&str, String> {
        self.0.get(logical_id).map(String::as_str).ok_or_else(|| {
            format!("no URL for {logical_id}: source the local stack's env, or pass --outputs with the stack's outputs (`{logical_id}Url`)")
        })
    }
}

/// Why a dead letter did not go through, as far as its bytes tell: the consumer's own
/// decoder is run on it. A message that decodes failed for another reason (a dependency
/// down, a rule): its logs are found by its message id.
pub fn reason(logical_id: &str, message: &Message) -> String {
    let body = message.body().unwrap_or_default();
    let decoded: Result<&str, String> = match logical_id {
        "UserRegisteredDLQ" => UserRegisteredEvent::parse(body).map(|_| "user.registered").map_err(|e| e.to_string()),
        "OrderPaidDLQ" => OrderPaidEvent::parse(body).map(|_| "order.paid").map_err(|e| e.to_string()),
        "OrderRefundedDLQ" => OrderRefundedEvent::parse(body).map(|_| "order.refunded").map_err(|e| e.to_string()),
        "RewardDLQ" => serde_json::from_str::<RewardEvent>(body).map(|_| "reward event").map_err(|e| format!("invalid reward event: {e}")),
        "MarketEventsDLQ" => OutboundMessage::from_sqs(message.body(), |name| string_attribute(message, name))
            .map(|_| "outbound event")
            .map_err(|e| e.to_string()),
        _ => Ok("outbox stream record"),
    };
    match decoded {
        Ok(kind) => format!("decodes as {kind}: failed downstream (a dependency or a rule); find its logs by message id"),
        Err(e) => format!("poison: {e}"),
    }
}

fn string_attribute<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message.message_attributes()?.get(name)?.string_value()
}

fn system_attribute(message: &Message, name: MessageSystemAttributeName) -> Option<&str> {
    message.attributes()?.get(&name).map(String::as_str)
}

fn millis(message: &Message, name: MessageSystemAttributeName) -> Option<String> {
    system_attribute(message, name)?.parse::<i64>().ok().map(iso8601_ms)
}

/// One dead letter as the CLI prints it (`--json` prints this object).
pub fn describe(logical_id: &str, message: &Message, with_body: bool) -> Value {
    let attributes: BTreeMap<&str, &str> = message
        .message_attributes()
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.as_str(), v.string_value()?))).collect())
        .unwrap_or_default();
    let mut out = json!({
        "message_id": message.message_id().unwrap_or_default(),
        "receive_count": system_attribute(message, MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|n| n.parse::<u64>().ok()),
        "sent_at": millis(message, MessageSystemAttributeName::SentTimestamp),
        "first_received_at": millis(message, MessageSystemAttributeName::ApproximateFirstReceiveTimestamp),
        "attributes": attributes,
        "body_bytes": message.body().map_or(0, str::len),
        "reason": reason(logical_id, message),
    });
    if with_body {
        let body = message.body().unwrap_or_default();
        out["body"] = serde_json::from_str::<Value>(body).unwrap_or_else(|_| Value::String(body.to_owned()));
    }
    out
}

/// One receive of up to 10 messages (with every attribute), hidden while we look at them.
async fn receive(sqs: &Client, url: &str) -> Result<Vec<Message>, String> {
    let batch = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .visibility_timeout(PEEK_VISIBILITY_SECONDS)
        .wait_time_seconds(0)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .map_err(|e| format!("receiving from the queue failed: {}", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
    Ok(batch.messages.unwrap_or_default())
}

/// Every message now in the queue, each received once and made visible again before return.
pub async fn peek(sqs: &Client, url: &str) -> Result<Vec<Message>, String> {
    let mut seen: Vec<Message> = Vec::new();
    loop {
        let messages = receive(sqs, url).await?;
        if messages.is_empty() {
            break;
        }
        seen.extend(messages);
    }
    for message in &seen {
        if let Some(handle) = message.receipt_handle() {
            // Visible again now, not in 30 s; if this fails the message is back in 30 s anyway.
            let _ = sqs.change_message_visibility().queue_url(url).receipt_handle(handle).visibility_timeout(0).send().await;
        }
    }
    Ok(seen)
}

/// Moves messages (all, or those with the given ids) from the DLQ to its source queue;
/// returns the ids moved.
pub async fn redrive(sqs: &Client, dlq_url: &str, source_url: &str, only: &[String], max: usize) -> Result<Vec<String>, String> {
    let mut moved = Vec::new();
    // Messages not asked for stay hidden until the end, so each round sees new ones.
    let mut passed = Vec::new();
    while moved.len() < max {
        let messages = receive(sqs, dlq_url).await?;
        if messages.is_empty() {
            break;
        }
        for message in messages {
            let id = message.message_id().unwrap_or_default().to_owned();
            let handle = message.receipt_handle().unwrap_or_default().to_owned();
            if moved.len() >= max || (!only.is_empty() && !only.contains(&id)) {
                passed.push(handle);
                continue;
            }
            let mut send = sqs.send_message().queue_url(source_url).message_body(message.body().unwrap_or_default());
            for (name, value) in message.message_attributes().into_iter().flatten() {
                let value = MessageAttributeValue::builder()
                    .data_type(value.data_type())
                    .set_string_value(value.string_value().map(str::to_owned))
                    .set_binary_value(value.binary_value().cloned())
                    .build()
                    .map_err(|e| format!("attribute {name}: {e}"))?;
                send = send.message_attributes(name, value);
            }
            send.send().await.map_err(|e| format!("sending {id} to the source queue failed: {}", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
            sqs.delete_message()
                .queue_url(dlq_url)
                .receipt_handle(handle)
                .send()
                .await
                .map_err(|e| format!("{id} was sent but not deleted from the DLQ (it will be redriven again: harmless): {}", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
            moved.push(id);
        }
    }
    for handle in passed {
        let _ = sqs.change_message_visibility().queue_url(dlq_url).receipt_handle(handle).visibility_timeout(0).send().await;
    }
    Ok(moved)
}

/// Deletes the message with this id; false when it is not (or no longer) in the queue.
pub async fn delete(sqs: &Client, url: &str, message_id: &str) -> Result<bool, String> {
    // Others received on the way are hidden until the end, so each round sees new ones.
    let mut passed = Vec::new();
    let mut outcome = Ok(false);
    for _ in 0..100 {
        let messages = receive(sqs, url).await?;
        if messages.is_empty() {
            break;
        }
        let mut done = false;
        for message in messages {
            let handle = message.receipt_handle().unwrap_or_default().to_owned();
            if message.message_id() == Some(message_id) {
                outcome = sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map(|_| true)
                    .map_err(|e| format!("deleting failed: {}", aws_sdk_sqs::error::DisplayErrorContext(e)));
                done = true;
            } else {
                passed.push(handle);
            }
        }
        if done {
            break;
        }
    }
    for handle in passed {
        let _ = sqs.change_message_visibility().queue_url(url).receipt_handle(handle).visibility_timeout(0).send().await;
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::dead_letter_queue;

    #[test]
    fn queue_names_resolve_loosely() {
        assert_eq!(dead_letter_queue("order-paid").map(|q| q.0), Some("OrderPaidDLQ"));
        assert_eq!(dead_letter_queue("OrderPaidDLQ").map(|q| q.1), Some(Some("OrderPaidQueue")));
        assert_eq!(dead_letter_queue("outbox-relay-failures").map(|q| q.1), Some(None));
        assert_eq!(dead_letter_queue("nope"), None);
    }
}
