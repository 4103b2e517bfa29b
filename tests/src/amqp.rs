//! RabbitMQ in the tests: the client (publisher, outbound queue) from `market-client`, and
//! waiting for what must arrive.

pub use market_client::amqp::*;

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

/// Waits until every id in `expected` has arrived on `queue`, then until nothing more can
/// arrive (each expected outbox record relayed and the outbound SQS queue empty: the bridge
/// deletes a message only after its confirm, and a confirmed persistent message is already
/// in every bound queue). Returns what arrived for `users` (as `affiliate_id` or `user_id`),
/// whatever its id; panics on an event that does not match its schema.
pub async fn market_events(queue: &MarketQueue, expected: &std::collections::HashSet<String>, users: &[&str], seconds: u64) -> Vec<Received> {
    let mine = |r: &Received| r.body["affiliate_id"].as_str().or(r.body["user_id"].as_str()).is_some_and(|u| users.contains(&u));
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
    // Every event the suite receives matches its routing key's schema (docs/events).
    let invalid: Vec<String> = got.iter().filter_map(crate::event_schemas::violation).collect();
    assert!(invalid.is_empty(), "events that do not match their schema: {invalid:#?}");
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
