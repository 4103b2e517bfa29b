//! The outbound path under failure (its own test binary: it stops shared processes and the
//! broker, so nothing else runs meanwhile). Kill the relay's event source, kill the bridge,
//! take RabbitMQ's AMQP side down: withdrawals keep succeeding and every event arrives,
//! a redelivery carrying the same id.

use std::collections::HashSet;
use std::process::Command;

use market_domain::config::MarketConfig;
use market_proto::v1::WithdrawAffiliateRewardRequest;
use market_tests::amqp::{counts, eventually, market_events, MarketQueue};
use market_tests::rpc::Rpc;

fn kill(process: &str) {
    let dir = std::env::var("MARKET_STACK_DIR").unwrap();
    let pid = std::fs::read_to_string(format!("{dir}/pids/{process}.pid")).unwrap().trim().to_owned();
    assert!(Command::new("kill").args(["-KILL", &pid]).status().unwrap().success(), "{process} killed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_relay_killed_bridge_and_broker_outage_lose_no_event() {
    let queue = MarketQueue::bind().await;
    let d = market_tests::deps(MarketConfig::default()).await;
    let a = market_tests::user("a");
    market_tests::fund(&d, &a, 100_000).await;
    let rpc = Rpc::from_env().unwrap();
    let token = rpc.token(a.as_str());
    let mut ids = HashSet::new();
    let withdraw = |i: usize| {
        let (rpc, token) = (&rpc, token.clone());
        async move {
            let request = WithdrawAffiliateRewardRequest { amount: 10, idempotency_key: format!("k{i}") };
            rpc.client().withdraw_affiliate_reward(Rpc::authed(request, &token)).await.expect("withdrawal succeeds").into_inner().withdrawal_id
        }
    };

    // The relay's event source SIGKILLed a third of the way in, restarted after.
    for i in 0..30 {
        if i == 10 {
            kill("event-sources");
        }
        ids.insert(withdraw(i).await);
    }
    market_tests::stack("sources", &[]);
    // The bridge SIGKILLed while events flow.
    for i in 30..60 {
        if i == 40 {
            kill("bridge");
        }
        ids.insert(withdraw(i).await);
    }
    market_tests::stack("bridge", &[]);

    // RabbitMQ down: withdrawals still succeed, their events wait in SQS.
    market_tests::stack("rabbitmq", &["stop"]);
    let mut during = HashSet::new();
    for i in 60..80 {
        during.insert(withdraw(i).await);
    }
    let store = market_tests::store().await;
    eventually("events of the outage relayed to SQS", 60, || async {
        for id in &during {
            if !store.outbox_record(id).await.ok().flatten().is_some_and(|r| r.relayed_at.is_some()) {
                return false;
            }
        }
        true
    })
    .await;
    let early = queue.drain().await; // the broker is down: nothing can be read...
    assert!(early.is_empty());
    market_tests::stack("rabbitmq", &["start"]);
    ids.extend(during);
    assert_eq!(ids.len(), 80);

    // ...and once it is back, every event arrives; a redelivered one has the same id and body.
    let received = market_events(&queue, &ids, &[a.as_str()], 180).await;
    let counts = counts(&received);
    assert_eq!(counts.keys().cloned().collect::<HashSet<_>>(), ids, "every event, and only these");
    for r in &received {
        let id = r.message_id.as_deref().unwrap();
        assert_eq!(r.body["withdrawal_id"], id, "the message id is the withdrawal id");
    }
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    eprintln!("80 withdrawals, {} events received, {duplicates} redelivered duplicates (same id)", received.len());
    let stats = market_tests::assert_money_invariants(&store, &a).await;
    assert_eq!(stats.withdrawn_total.minor(), 800);

    // Nothing was dead-lettered on the way.
    let sqs = aws_sdk_sqs::Client::new(&market_storage::aws_config().await);
    let dlq = std::env::var("QUEUE_URL_MarketEventsDLQ").unwrap();
    let out = sqs.receive_message().queue_url(&dlq).max_number_of_messages(10).visibility_timeout(0).send().await.unwrap();
    assert!(out.messages().iter().all(|m| !m.body().unwrap_or("").contains(a.as_str())), "no event in the DLQ");
    queue.delete().await;
}
