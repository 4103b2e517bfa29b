//! The outbox relay. The outbox table's stream delivers each new outbox record (INSERT; the
//! event source mapping filters out the MODIFY our own marking causes); the relay puts the
//! event on the outbound SQS queue — the event id as `amqp_message_id` — and then marks the
//! record relayed with a TTL. Records are handled in stream order: the first one that fails
//! is reported (`ReportBatchItemFailures`), so Lambda retries from it and nothing after it
//! is skipped. A retry may send an event again; it carries the same id.

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::future::join_all;
use market_domain::time::{Clock, SystemClock};
use market_domain::MarketError;
use market_messaging::{OutboundMessage, Sqs};
use market_storage::{DynamoStore, OutboxRecord};
use tracing::{error, info, info_span, warn, Instrument};

pub struct OutboxRelay {
    pub store: DynamoStore,
    pub sqs: Sqs,
    pub queue_url: String,
    /// How long a relayed record stays before its TTL removes it.
    pub retention_days: u32,
}

fn parse(record: &EventRecord) -> Result<OutboxRecord, MarketError> {
    serde_dynamo::from_item(record.change.new_image.clone())
        .map_err(|e| MarketError::InvalidArgument(format!("not an outbox record: {e}")))
}

impl OutboxRelay {
    pub async fn handle(&self, event: Event) -> DynamoDbEventResponse {
        // (sequence number, parsed record) of the records to relay, in stream order.
        let mut work = Vec::new();
        for record in &event.records {
            if record.event_name != "INSERT" {
                continue; // our own marking (MODIFY) or a TTL removal (REMOVE)
            }
            let seq = record.change.sequence_number.clone().unwrap_or_default();
            work.push((seq, parse(record)));
        }
        let messages: Vec<(usize, OutboundMessage)> = work
            .iter()
            .enumerate()
            .filter_map(|(i, (_, r))| r.as_ref().ok().map(|r| (i, to_message(r))))
            .collect();
        let outgoing: Vec<_> = messages.iter().map(|(_, m)| m.to_sqs()).collect();
        let sent = self.sqs.send_all(&self.queue_url, &outgoing).await;
        let now = SystemClock.now();
        let purge_at = now.plus_days(self.retention_days);
        let marks = messages.iter().zip(sent).map(|((i, m), sent)| {
            let span = info_span!("outbox_record", event_id = %m.message_id, sequence_number = %work[*i].0);
            async move {
                let result = match sent {
                    Ok(()) => self.store.mark_relayed(&m.message_id, now, purge_at).await.map(|_| ()),
                    Err(e) => Err(e),
                };
                match &result {
                    Ok(()) => info!(routing_key = %m.routing_key, "event relayed"),
                    Err(e) => warn!(error = %e, "relay failed, the stream retries from this record"),
                }
                (*i, result.is_ok())
            }
            .instrument(span)
        });
        let mut ok = vec![false; work.len()];
        for (i, relayed) in join_all(marks).await {
            ok[i] = relayed;
        }
        let relayed = ok.iter().filter(|r| **r).count() as u64;
        let name = market_lambda::metrics::names::OUTBOUND_EVENTS;
        market_lambda::metrics::count(name, "relayed", relayed);
        market_lambda::metrics::count(name, "retried", ok.len() as u64 - relayed);
        let mut response = DynamoDbEventResponse::default();
        if let Some(first) = ok.iter().position(|relayed| !relayed) {
            if let (seq, Err(e)) = &work[first] {
                error!(sequence_number = %seq, error = %e, "outbox record cannot be relayed");
            }
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(work[first].0.clone());
            response.batch_item_failures.push(failure);
        }
        response
    }
}

pub fn to_message(record: &OutboxRecord) -> OutboundMessage {
    OutboundMessage {
        exchange: record.exchange.clone(),
        routing_key: record.routing_key.clone(),
        message_id: record.event_id.clone(),
        body: record.payload.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_dynamo::AttributeValue;

    fn any_attribute() -> impl Strategy<Value = AttributeValue> {
        let leaf = prop_oneof![
            ".{0,24}".prop_map(AttributeValue::S),
            prop_oneof!["-?[0-9]{1,20}(\\.[0-9]{0,4})?", ".{0,8}"].prop_map(AttributeValue::N),
            any::<bool>().prop_map(AttributeValue::Bool),
            Just(AttributeValue::Null(true)),
            proptest::collection::vec(any::<u8>(), 0..16).prop_map(AttributeValue::B),
        ];
        leaf.prop_recursive(2, 12, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(AttributeValue::L),
                proptest::collection::hash_map("[a-z_]{1,10}", inner, 0..3).prop_map(AttributeValue::M),
            ]
        })
    }

    const FIELDS: [&str; 8] = ["event_id", "routing_key", "exchange", "payload", "created_at", "relayed_at", "purge_at", "user_id"];

    proptest! {
        /// Stream records with any image (the outbox's fields and others, any attribute
        /// types), and whole stream events as free-form JSON: parsed or a typed error.
        #[test]
        fn fuzz_stream_records(
            fields in proptest::collection::vec((prop_oneof![proptest::sample::select(FIELDS.to_vec()).prop_map(str::to_owned), "[a-z_]{1,10}"], any_attribute()), 0..10),
            raw in ".{0,200}",
        ) {
            let mut record = EventRecord::default();
            record.change.new_image = serde_dynamo::Item::from(fields.into_iter().collect::<std::collections::HashMap<_, _>>());
            match parse(&record) {
                Ok(_) => {}
                Err(e) => prop_assert!(matches!(e, MarketError::InvalidArgument(_))),
            }
            if let Ok(event) = serde_json::from_str::<Event>(&raw) {
                for r in &event.records {
                    let _ = parse(r);
                }
            }
        }
    }
}
