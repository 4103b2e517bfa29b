//! Withdrawals reach RabbitMQ: withdrawal transaction -> outbox -> stream -> relay function
//! (under `cargo lambda watch`, fed by the local stream event source) -> outbound SQS queue
//! -> bridge -> exchange `market`, routing key `affiliate.withdrawn`, on real services.

use std::collections::HashSet;

use market_domain::config::MarketConfig;
use market_domain::ports::prelude::*;
use market_proto::v1::WithdrawAffiliateRewardRequest;
use market_tests::amqp::{counts, market_events, MarketQueue};
use market_tests::rpc::Rpc;

async fn withdraw(rpc: &Rpc, user: &str, amount: i64, key: &str) -> Result<market_proto::v1::WithdrawAffiliateRewardResponse, tonic::Status> {
    let request = WithdrawAffiliateRewardRequest { amount, idempotency_key: key.to_owned() };
    rpc.client().withdraw_affiliate_reward(Rpc::authed(request, &rpc.token(user))).await.map(|r| r.into_inner())
}

#[tokio::test]
async fn a_withdrawal_is_published_once_with_its_id() {
    let queue = MarketQueue::bind().await;
    let d = market_tests::deps(MarketConfig::default()).await;
    let a = market_tests::user("a");
    market_tests::fund(&d, &a, 500).await;
    let rpc = Rpc::from_env().unwrap();

    let first = withdraw(&rpc, a.as_str(), 200, "k1").await.unwrap();
    let id = first.withdrawal_id.clone();
    let received = market_events(&queue, &HashSet::from([id.clone()]), &[a.as_str()], 60).await;
    assert_eq!(counts(&received), [(id.clone(), 1)].into(), "exactly one event");
    let event = &received[0];
    assert_eq!((event.exchange.as_str(), event.routing_key.as_str()), ("market", "affiliate.withdrawn"));
    assert_eq!(event.delivery_mode, Some(2), "persistent");
    assert_eq!(event.content_type.as_deref(), Some("application/json"));
    let body = &event.body;
    assert_eq!(body["type"], "affiliate.withdrawn");
    assert_eq!(body["withdrawal_id"], id.as_str());
    assert_eq!(body["user_id"], a.as_str());
    assert_eq!((body["amount"].as_i64(), body["currency"].as_str()), (Some(200), Some("USD")));
    assert!(body["occurred_at"].as_i64().is_some_and(|t| t > 0));

    // The amount left `available` once; a retry with the same key moves nothing and sends nothing.
    let retry = withdraw(&rpc, a.as_str(), 200, "k1").await.unwrap();
    assert!(retry.replayed);
    assert_eq!(retry.withdrawal_id, id);
    let store = market_tests::store().await;
    let stats = market_tests::assert_money_invariants(&store, &a).await;
    assert_eq!((stats.available.minor(), stats.withdrawn_total.minor()), (300, 200));
    let again = market_events(&queue, &HashSet::new(), &[a.as_str()], 60).await;
    assert!(again.is_empty(), "a replay publishes nothing: {again:?}");

    // The outbox record is marked and has its TTL; it is not deleted.
    let record = store.outbox_record(&id).await.unwrap().expect("outbox record kept");
    assert!(record.relayed_at.is_some());
    let raw = store
        .client()
        .get_item()
        .table_name(&store.tables().outbox)
        .key("event_id", aws_sdk_dynamodb::types::AttributeValue::S(id.clone()))
        .send()
        .await
        .unwrap();
    let purge_at: i64 = raw.item().and_then(|i| i.get("purge_at")).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).expect("purge_at");
    let days = (purge_at - record.relayed_at.unwrap().epoch_seconds()) / 86_400;
    assert_eq!(days, 7, "TTL = relay time + retention");
    queue.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_withdrawals_publish_one_event_per_distinct_withdrawal() {
    let queue = MarketQueue::bind().await;
    let d = market_tests::deps(MarketConfig::default()).await;
    let a = market_tests::user("a");
    market_tests::fund(&d, &a, 300).await;
    let rpc = Rpc::from_env().unwrap();

    // 35 distinct keys, 15 of them sent twice; 300 available covers 15 withdrawals of 20.
    let keys: Vec<String> = (0..50).map(|i| format!("key-{}", if i < 35 { i } else { i - 35 })).collect();
    let results = futures::future::join_all(keys.iter().map(|k| withdraw(&rpc, a.as_str(), 20, k))).await;
    let mut succeeded = HashSet::new();
    for r in &results {
        match r {
            Ok(w) => {
                succeeded.insert(w.withdrawal_id.clone());
            }
            Err(s) => assert_eq!(s.code(), tonic::Code::FailedPrecondition, "{s:?}"),
        }
    }
    assert_eq!(succeeded.len(), 15, "every unit of balance withdrawn once");

    let received = market_events(&queue, &succeeded, &[a.as_str()], 120).await;
    let counts = counts(&received);
    assert_eq!(counts.keys().cloned().collect::<HashSet<_>>(), succeeded, "one event per distinct successful withdrawal, none else");
    assert!(counts.values().all(|&c| c == 1), "no duplicates: {counts:?}");
    let store = market_tests::store().await;
    let stats = market_tests::assert_money_invariants(&store, &a).await;
    assert_eq!((stats.available.minor(), stats.withdrawn_total.minor()), (0, 300));
    assert_eq!(store.get_stats(&a).await.unwrap().withdrawn_total.minor(), 20 * succeeded.len() as i64);
    queue.delete().await;
}
