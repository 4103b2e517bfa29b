//! SQS-triggered hooks: every message of a batch is handled concurrently, each in its own
//! span; failures are reported per message (`ReportBatchItemFailures`), so one bad message
//! never fails its siblings. A failed message is retried by SQS after its visibility
//! timeout and moves to the DLQ after `maxReceiveCount` — for a transient error that is a
//! retry, for an unparseable message the way to the DLQ.
//!
//! A hook that forwards to another queue ([`run_forwarding`]) decides every message first,
//! then sends what it forwards in `SendMessageBatch`es of ten: one SQS call per ten
//! messages instead of one per message, and a message whose entry SQS refused is retried
//! alone.

use std::future::Future;
use std::sync::Arc;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::future::{join_all, BoxFuture, FutureExt};
use lambda_runtime::{service_fn, LambdaEvent};
use market_domain::MarketError;
use market_messaging::sqs::{Outgoing, Sqs};
use tracing::{error, info_span, warn, Instrument, Span};

fn attribute<'a>(m: &'a SqsMessage, name: &str) -> Option<&'a str> {
    m.message_attributes.get(name).and_then(|a| a.string_value.as_deref())
}

/// The message's id and its span (the ids that follow one event through the system).
fn message_span(message: &SqsMessage) -> (String, Span) {
    let id = message.message_id.clone().unwrap_or_default();
    let span = info_span!(
        "sqs_message",
        message_id = %id,
        amqp_message_id = attribute(message, "amqp_message_id").unwrap_or(""),
        receive_count = message.attributes.get("ApproximateReceiveCount").map(String::as_str).unwrap_or(""),
    );
    (id, span)
}

fn log_failure(e: &MarketError) {
    if e.is_transient() {
        warn!(error = %e, cause = ?std::error::Error::source(e), "message failed, will be retried");
    } else {
        error!(error = %e, "message rejected, it will reach the DLQ after maxReceiveCount");
    }
}

/// The batch response: the ids of the messages to retry.
fn failures(outcomes: impl IntoIterator<Item = (String, bool)>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for (id, ok) in outcomes {
        if !ok {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// Handles one batch; the response lists the messages to retry.
pub async fn handle_batch<H, F>(handler: &H, event: SqsEvent) -> SqsBatchResponse
where
    H: Fn(SqsMessage) -> F,
    F: Future<Output = Result<(), MarketError>>,
{
    let work = event.records.into_iter().map(|message| {
        let (id, span) = message_span(&message);
        let fut = handler(message);
        async move {
            let result = fut.await;
            if let Err(e) = &result {
                log_failure(e);
            }
            (id, result.is_ok())
        }
        .instrument(span)
    });
    failures(join_all(work).await)
}

/// What became of one message of a forwarding batch.
enum Decided {
    Failed(MarketError),
    Done,
    /// Its message is the n-th of those sent.
    Forwarded(usize),
}

/// Handles one batch of a forwarding hook: each message decided concurrently (a message to
/// forward, or nothing), then everything to forward sent to `queue_url` in batches of ten.
/// A message is retried when its decision failed or SQS did not accept its entry.
pub async fn handle_forwarding_batch<H, F>(handler: &H, sqs: &Sqs, queue_url: &str, event: SqsEvent) -> SqsBatchResponse
where
    H: Fn(SqsMessage) -> F,
    F: Future<Output = Result<Option<Outgoing>, MarketError>>,
{
    let work = event.records.into_iter().map(|message| {
        let (id, span) = message_span(&message);
        let fut = handler(message);
        let outer = span.clone();
        async move { (id, fut.await, span) }.instrument(outer)
    });
    let mut outgoing = Vec::new();
    let decided: Vec<(String, Decided, Span)> = join_all(work)
        .await
        .into_iter()
        .map(|(id, result, span)| {
            let decided = match result {
                Err(e) => Decided::Failed(e),
                Ok(None) => Decided::Done,
                Ok(Some(message)) => {
                    outgoing.push(message);
                    Decided::Forwarded(outgoing.len() - 1)
                }
            };
            (id, decided, span)
        })
        .collect();
    let mut sent = sqs.send_all(queue_url, &outgoing).await;
    let outcomes = decided.into_iter().map(|(id, decided, span)| {
        let result = match decided {
            Decided::Failed(e) => Err(e),
            Decided::Done => Ok(()),
            Decided::Forwarded(n) => sent.get_mut(n).map_or_else(
                || Err(MarketError::internal("no send result")),
                |r| std::mem::replace(r, Ok(())),
            ),
        };
        if let Err(e) = &result {
            span.in_scope(|| log_failure(e));
        }
        (id, result.is_ok())
    });
    failures(outcomes)
}

/// Serves batches as this Lambda's handler: metrics per batch (messages ok and failed),
/// flushed with the ids of the batch. (The batch's future is boxed: nested in the runtime's,
/// its type would otherwise exceed the compiler's depth limit.)
async fn serve_batches<B>(batch: B) -> Result<(), lambda_runtime::Error>
where
    B: Fn(SqsEvent) -> BoxFuture<'static, SqsBatchResponse> + Send + Sync + 'static,
{
    let batch = Arc::new(batch);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let batch = batch.clone();
        async move {
            let ids: Vec<serde_json::Value> = event.payload.records.iter().map(|m| m.message_id.clone().unwrap_or_default().into()).collect();
            let amqp_ids: Vec<serde_json::Value> =
                event.payload.records.iter().filter_map(|m| attribute(m, "amqp_message_id")).map(|id| id.to_owned().into()).collect();
            let total = ids.len();
            let response = batch(event.payload).await;
            let failed = response.batch_item_failures.len();
            crate::metrics::count(crate::metrics::names::MESSAGES, "ok", total.saturating_sub(failed) as u64);
            crate::metrics::count(crate::metrics::names::MESSAGES, "failed", failed as u64);
            crate::metrics::flush(&[
                ("RequestId", event.context.request_id.clone().into()),
                ("MessageIds", serde_json::Value::Array(ids)),
                ("AmqpMessageIds", serde_json::Value::Array(amqp_ids)),
            ]);
            Ok::<_, lambda_runtime::Error>(response)
        }
    }))
    .await
}

/// Runs an SQS hook as this Lambda's handler.
pub async fn run<H, F>(handler: H) -> Result<(), lambda_runtime::Error>
where
    H: Fn(SqsMessage) -> F + Send + Sync + 'static,
    F: Future<Output = Result<(), MarketError>> + Send + 'static,
{
    let handler = Arc::new(handler);
    serve_batches(move |event| {
        let handler = handler.clone();
        async move { handle_batch(handler.as_ref(), event).await }.boxed()
    })
    .await
}

/// Runs a hook that forwards messages to `queue_url` (see [`handle_forwarding_batch`]).
pub async fn run_forwarding<H, F>(sqs: Sqs, queue_url: String, handler: H) -> Result<(), lambda_runtime::Error>
where
    H: Fn(SqsMessage) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Option<Outgoing>, MarketError>> + Send + 'static,
{
    let shared = Arc::new((handler, sqs, queue_url));
    serve_batches(move |event| {
        let shared = shared.clone();
        async move {
            let (handler, sqs, queue_url) = shared.as_ref();
            handle_forwarding_batch(handler, sqs, queue_url, event).await
        }
        .boxed()
    })
    .await
}

/// The message body, or a permanent error (an SQS message always has one).
pub fn body(message: &SqsMessage) -> Result<&str, MarketError> {
    message.body.as_deref().ok_or_else(|| MarketError::InvalidArgument("message without body".into()))
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(ProptestConfig::default().cases.max(2000)))]
        /// SQS event envelopes as Lambda could hand them over (any text; records with odd
        /// fields): the envelope is parsed or refused, and a batch answers every message it
        /// could not handle, never panics.
        #[test]
        fn fuzz_sqs_envelopes(raw in ".{0,200}", ids in proptest::collection::vec(proptest::option::of(".{0,12}"), 0..6),
                              bodies in proptest::collection::vec(proptest::option::of(".{0,40}"), 0..6)) {
            let _ = serde_json::from_str::<SqsEvent>(&raw);
            let records: Vec<_> = ids.iter().zip(bodies.iter().chain(std::iter::repeat(&None))).map(|(id, body)| json!({
                "messageId": id, "body": body, "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                "eventSource": "aws:sqs",
            })).collect();
            let Ok(event) = serde_json::from_value::<SqsEvent>(json!({"Records": records})) else { return Ok(()) };
            let n = event.records.len();
            let response = tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(handle_batch(
                &|m: SqsMessage| async move { body(&m).and_then(|b| if b.starts_with('{') { Ok(()) } else { Err(MarketError::InvalidArgument("x".into())) }) },
                event,
            ));
            prop_assert!(response.batch_item_failures.len() <= n);
        }
    }
}
