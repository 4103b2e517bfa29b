//! The bridge's Lambda entry points in-process, against the local RabbitMQ and SQS (an
//! Amazon MQ event source cannot run here): outbound SQS events are published with
//! confirms and every message that is not confirmed — malformed, unroutable (`mandatory`),
//! broker unreachable — is reported for retry; an Amazon MQ batch is relayed to SQS with its
//! AMQP message id. A broker that stops answering mid-batch costs one bounded wait, never a
//! hung relay: the batch is reported and the next one reconnects. The forwarding hooks'
//! batch (decide each message, send what is forwarded ten per call) retries only what failed.

use std::collections::HashMap;

use aws_lambda_events::sqs::SqsEvent;
use base64::Engine;
use market_messaging::{Relay, Route, Routes, Sqs};
use market_tests::amqp::{Received, MarketQueue};
use rabbitmq_bridge::outbound::LambdaOutbound;
use serde_json::{json, Value};

fn record(message_id: &str, body: &str, attributes: &[(&str, &str)]) -> Value {
    let attrs: serde_json::Map<String, Value> = attributes
        .iter()
        .map(|(k, v)| (k.to_string(), json!({"stringValue": v, "dataType": "String", "stringListValues": [], "binaryListValues": []})))
        .collect();
    json!({"messageId": message_id, "receiptHandle": "rh", "body": body, "md5OfBody": "", "attributes": {},
           "messageAttributes": attrs, "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:q", "awsRegion": "us-east-1"})
}

fn failures(response: &aws_lambda_events::sqs::SqsBatchResponse) -> Vec<String> {
    let mut ids: Vec<String> = response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn outbound_sqs_events_are_published_with_confirms_and_failures_reported() {
    let queue = MarketQueue::bind().await;
    let user = market_tests::user("lambda");
    let (a, b) = (format!("wd_a{}", nanoid::nanoid!(8)), format!("wd_b{}", nanoid::nanoid!(8)));
    let body = |id: &str| json!({"type": "affiliate.withdrawn", "withdrawal_id": id, "user_id": user.as_str(), "amount": 5, "currency": "USD", "occurred_at": 1}).to_string();
    // An exchange without bindings (on `market` the local stack binds a stand-in queue to `#`).
    let unbound = format!("market-unbound-{}", nanoid::nanoid!(6));
    let event: SqsEvent = serde_json::from_value(json!({"Records": [
        record("m1", &body(&a), &[("amqp_exchange", "market"), ("amqp_routing_key", "affiliate.withdrawn"), ("amqp_message_id", &a)]),
        record("m2", &body(&b), &[("amqp_exchange", "market"), ("amqp_routing_key", "affiliate.withdrawn"), ("amqp_message_id", &b)]),
        record("m3", &body("wd_x"), &[]),
        record("m4", &body("wd_y"), &[("amqp_exchange", &unbound), ("amqp_routing_key", "affiliate.withdrawn"), ("amqp_message_id", "wd_y")]),
    ]}))
    .unwrap();
    let outbound = LambdaOutbound::new(std::env::var("AMQP_URL").unwrap());
    let response = outbound.handle(event).await;
    assert_eq!(failures(&response), ["m3", "m4"], "malformed and unroutable are retried, never dropped");

    let mut got: Vec<Received> = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while got.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "both events published within 30 s: {got:?}");
        got.extend(queue.drain().await.into_iter().filter(|r| r.body["user_id"] == user.as_str()));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut ids: Vec<_> = got.iter().map(|r| r.message_id.clone().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, [a.clone(), b.clone()]);
    assert!(got.iter().all(|r| r.delivery_mode == Some(2)));

    // Broker unreachable: everything is reported.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = LambdaOutbound::new(format!("amqp://guest:guest@127.0.0.1:{port}/%2f"));
    let event: SqsEvent = serde_json::from_value(json!({"Records": [
        record("m5", &body(&a), &[("amqp_exchange", "market"), ("amqp_routing_key", "affiliate.withdrawn"), ("amqp_message_id", &a)]),
    ]}))
    .unwrap();
    assert_eq!(failures(&dead.handle(event).await), ["m5"]);
    queue.delete().await;
}

#[tokio::test]
async fn a_broker_that_stops_answering_fails_the_batch_in_bounded_time_and_the_next_reconnects() {
    let queue = MarketQueue::bind().await;
    let user = market_tests::user("silent");
    let amqp = std::env::var("AMQP_URL").unwrap();
    let upstream = amqp.split('@').nth(1).and_then(|h| h.split('/').next()).unwrap().to_owned();
    let proxy = market_tests::silent_proxy::SilentProxy::start(upstream.clone()).await;
    let outbound = LambdaOutbound::new(amqp.replace(&upstream, &proxy.addr.to_string()));
    let event = |n: u32| -> (SqsEvent, String) {
        let id = format!("wd_s{n}{}", nanoid::nanoid!(8));
        let body = json!({"type": "affiliate.withdrawn", "withdrawal_id": id, "user_id": user.as_str(), "amount": 5, "currency": "USD", "occurred_at": 1});
        let record = record(&format!("m{n}"), &body.to_string(), &[("amqp_exchange", "market"), ("amqp_routing_key", "affiliate.withdrawn"), ("amqp_message_id", &id)]);
        (serde_json::from_value(json!({"Records": [record]})).unwrap(), id)
    };
    let (first, first_id) = event(1);
    assert!(failures(&outbound.handle(first).await).is_empty(), "published through the proxy");

    // The connection goes silent: no reset, no confirm. The batch fails within the broker
    // timeout (10 s) instead of waiting forever (amqp-rs/lapin#409).
    proxy.cut();
    let (second, _) = event(2);
    let started = std::time::Instant::now();
    let response = tokio::time::timeout(std::time::Duration::from_secs(30), outbound.handle(second)).await;
    let response = response.expect("a silent broker must not hang the relay");
    assert_eq!(failures(&response), ["m2"], "unconfirmed: reported for retry");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "bounded by the broker timeout: {:?}", started.elapsed());

    // The next batch does not reuse the dead connection.
    let (third, third_id) = event(3);
    let response = tokio::time::timeout(std::time::Duration::from_secs(30), outbound.handle(third)).await.expect("answered");
    assert!(failures(&response).is_empty(), "reconnected and published");
    let mut got: Vec<String> = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !(got.contains(&first_id) && got.contains(&third_id)) {
        assert!(tokio::time::Instant::now() < deadline, "both confirmed events arrive: {got:?}");
        got.extend(queue.drain().await.into_iter().filter(|r| r.body["user_id"] == user.as_str()).filter_map(|r| r.message_id));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    queue.delete().await;
}

#[tokio::test]
async fn an_amazon_mq_batch_is_relayed_to_sqs_with_its_message_id() {
    let sqs = aws_sdk_sqs::Client::new(&market_storage::aws_config().await);
    let url = sqs.create_queue().queue_name(format!("mq-test-{}", nanoid::nanoid!(8))).send().await.unwrap().queue_url.unwrap();
    let relay = Relay::new(
        Routes(vec![Route { exchange: "shop".into(), routing_key: "order.paid".into(), queue_url: url.clone() }]),
        Sqs::new(sqs.clone()),
    );
    let id = format!("mq-{}", nanoid::nanoid!(8));
    let body = r#"{"event_id":"e1","order_id":"o1","user_id":"u1","amount":100,"currency":"USD","occurred_at":1}"#;
    let message = json!({
        "basicProperties": {"contentType": "application/json", "headers": {"source": "shop"}, "deliveryMode": 2, "priority": 0,
                            "messageId": id, "bodySize": body.len()},
        "redelivered": false,
        "data": base64::engine::general_purpose::STANDARD.encode(body),
    });
    let event = serde_json::from_value(json!({"eventSource": "aws:rmq", "eventSourceArn": "arn:aws:mq:us-east-1:1:broker:b",
        "rmqMessagesByQueue": {"helium-market.shop.order.paid::/": [message]}}))
    .unwrap();
    rabbitmq_bridge::amazon_mq(&relay, event).await.unwrap();
    let out = sqs.receive_message().queue_url(&url).message_attribute_names("All").send().await.unwrap();
    let m = &out.messages()[0];
    assert_eq!(m.body(), Some(body));
    let attrs: HashMap<_, _> = m.message_attributes().unwrap().iter().map(|(k, v)| (k.clone(), v.string_value().unwrap_or("").to_owned())).collect();
    assert_eq!(attrs["amqp_message_id"], id);
    assert_eq!((attrs["amqp_exchange"].as_str(), attrs["amqp_routing_key"].as_str()), ("shop", "order.paid"));

    // A queue without a route fails the whole invocation (the event source redelivers it).
    let unknown = serde_json::from_value(json!({"eventSource": "aws:rmq", "rmqMessagesByQueue": {"someone.else::/": []}})).unwrap();
    assert!(rabbitmq_bridge::amazon_mq(&relay, unknown).await.is_err());
}

/// The forwarding hooks' batch (`on-order-paid`'s shape), in-process against the local SQS:
/// twelve messages decided concurrently (a failed decision, one with nothing to forward, ten
/// forwarded) go out as `SendMessageBatch`es; only the failed decision is retried and the
/// ten arrive with their attributes. To a queue that does not exist exactly the forwarded
/// messages are retried, and the one with nothing to forward is not.
#[tokio::test]
async fn a_forwarding_hook_sends_in_batches_and_retries_only_what_failed() {
    use aws_lambda_events::sqs::SqsMessage;
    use market_domain::MarketError;
    use market_lambda::sqs::handle_forwarding_batch;
    use market_messaging::Outgoing;

    let sqs = aws_sdk_sqs::Client::new(&market_storage::aws_config().await);
    let url = sqs.create_queue().queue_name(format!("forward-test-{}", nanoid::nanoid!(8))).send().await.unwrap().queue_url.unwrap();
    let event = |n: usize| -> SqsEvent {
        let records: Vec<Value> = (0..n).map(|i| record(&format!("m{i:02}"), &format!("body-{i:02}"), &[])).collect();
        serde_json::from_value(json!({"Records": records})).unwrap()
    };
    let handler = |m: SqsMessage| async move {
        let body = m.body.unwrap_or_default();
        match body.as_str() {
            "body-00" => Err(MarketError::InvalidArgument("undecidable".into())),
            "body-01" => Ok(None),
            _ => Ok(Some(Outgoing { body: format!("fwd-{body}"), attributes: vec![("amqp_message_id".into(), m.message_id.unwrap_or_default())] })),
        }
    };
    let response = handle_forwarding_batch(&handler, &Sqs::new(sqs.clone()), &url, event(12)).await;
    assert_eq!(failures(&response), vec!["m00"]);
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while got.len() < 10 {
        assert!(std::time::Instant::now() < deadline, "only {} of 10 forwarded messages arrived", got.len());
        let out = sqs.receive_message().queue_url(&url).max_number_of_messages(10).wait_time_seconds(1).message_attribute_names("All").send().await.unwrap();
        for m in out.messages() {
            let id = m.message_attributes().and_then(|a| a.get("amqp_message_id")).and_then(|v| v.string_value()).unwrap_or("").to_owned();
            got.push((m.body().unwrap_or("").to_owned(), id));
            sqs.delete_message().queue_url(&url).receipt_handle(m.receipt_handle().unwrap()).send().await.unwrap();
        }
    }
    got.sort();
    let expected: Vec<(String, String)> = (2..12).map(|i| (format!("fwd-body-{i:02}"), format!("m{i:02}"))).collect();
    assert_eq!(got, expected);

    let response = handle_forwarding_batch(&handler, &Sqs::new(sqs.clone()), &format!("{url}-missing"), event(3)).await;
    assert_eq!(failures(&response), vec!["m00", "m02"]);
    let _ = sqs.delete_queue().queue_url(&url).send().await;
}
