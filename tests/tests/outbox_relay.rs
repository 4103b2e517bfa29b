//! The relay function's handler in-process against the real DynamoDB and SQS: records are
//! handled in stream order, MODIFY/REMOVE are skipped, and the first record that cannot be
//! relayed is the one reported, so the stream retries from it and skips nothing.

use aws_lambda_events::dynamodb::Event;
use market_messaging::{OutboundMessage, Sqs};
use publish_market_events::OutboxRelay;
use serde_json::json;

fn record(seq: &str, name: &str, image: serde_json::Value) -> serde_json::Value {
    json!({"eventID": seq, "eventName": name, "eventVersion": "1.1", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
           "dynamodb": {"ApproximateCreationDateTime": 1795000000.0, "Keys": {}, "NewImage": image,
                        "SequenceNumber": seq, "SizeBytes": 10, "StreamViewType": "NEW_IMAGE"}})
}

fn outbox_image(id: &str) -> serde_json::Value {
    json!({"event_id": {"S": id}, "exchange": {"S": "market"}, "routing_key": {"S": "affiliate.withdrawn"},
           "payload": {"S": format!("{{\"withdrawal_id\":\"{id}\"}}")}, "created_at": {"N": "1795000000000"}})
}

#[tokio::test]
async fn relays_in_order_and_reports_the_first_failure() {
    let store = market_tests::store().await;
    let aws = market_storage::aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let queue_url = sqs.create_queue().queue_name(format!("relay-test-{}", nanoid::nanoid!(8))).send().await.unwrap().queue_url.unwrap();
    let relay = OutboxRelay { store: store.clone(), sqs: Sqs::new(sqs.clone()), queue_url: queue_url.clone(), retention_days: 7 };
    let (first, third) = (format!("wd_{}", nanoid::nanoid!(8)), format!("wd_{}", nanoid::nanoid!(8)));

    let event: Event = serde_json::from_value(json!({"Records": [
        record("100", "INSERT", outbox_image(&first)),
        record("101", "MODIFY", outbox_image(&first)),
        record("102", "INSERT", json!({"event_id": {"S": "broken"}})),
        record("103", "INSERT", outbox_image(&third)),
    ]}))
    .unwrap();
    let response = relay.handle(event).await;
    let failed: Vec<_> = response.batch_item_failures.iter().filter_map(|f| f.item_identifier.clone()).collect();
    assert_eq!(failed, vec!["102".to_owned()], "retry starts at the malformed record");

    // The valid records were sent with the event id as the AMQP message id.
    let out = sqs.receive_message().queue_url(&queue_url).max_number_of_messages(10).message_attribute_names("All").send().await.unwrap();
    let sent: Vec<OutboundMessage> = out
        .messages()
        .iter()
        .map(|m| {
            let attribute = |n: &str| m.message_attributes().and_then(|a| a.get(n)).and_then(|v| v.string_value());
            OutboundMessage::from_sqs(m.body(), attribute).unwrap()
        })
        .collect();
    let mut ids: Vec<_> = sent.iter().map(|m| m.message_id.clone()).collect();
    ids.sort();
    let mut expected = vec![first.clone(), third.clone()];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(sent.iter().all(|m| m.exchange == "market" && m.routing_key == "affiliate.withdrawn"));

    // SQS unreachable: nothing is marked and the first record is reported.
    let dead = OutboxRelay { store, sqs: Sqs::new(sqs), queue_url: format!("{queue_url}-missing"), retention_days: 7 };
    let event: Event = serde_json::from_value(json!({"Records": [record("200", "INSERT", outbox_image(&first))]})).unwrap();
    let response = dead.handle(event).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(response.batch_item_failures[0].item_identifier.as_deref(), Some("200"));
}
