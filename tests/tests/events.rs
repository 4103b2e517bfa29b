//! The event pipeline end to end on real services: RabbitMQ -> bridge -> SQS -> local event
//! sources -> hooks under `cargo lambda watch` -> reward queue -> reward processor -> DynamoDB.

use aws_sdk_dynamodb::types::AttributeValue;
use market_domain::config::MarketConfig;
use market_domain::ids::UserId;
use market_domain::ports::prelude::*;
use market_domain::processors::{CreateInviteCode, Processor};
use market_proto::v1::GetAffiliateStatsRequest;
use market_tests::amqp::{eventually, Publisher};
use market_tests::rpc::Rpc;

/// How long an event may take to be applied. These tests run at once, and
/// `a_killed_bridge_loses_nothing` puts 1 000 orders in the same queues: an event published
/// meanwhile waits behind them (in CI one took 66 s, over the 60 s this used to be).
const QUEUED: u64 = 240;

fn id(prefix: &str) -> String {
    format!("{prefix}-{}", nanoid::nanoid!(10))
}

async fn code_for(user: &UserId) -> String {
    let d = market_tests::deps(MarketConfig::default()).await;
    CreateInviteCode::new(d).process(user.clone().into()).await.unwrap().code.to_string()
}

async fn set_trigger_limit(user: &UserId, limit: i64) {
    let store = market_tests::store().await;
    store
        .client()
        .update_item()
        .table_name(&store.tables().policy)
        .key("user_id", AttributeValue::S(user.to_string()))
        .update_expression("SET trigger_limit = :l")
        .expression_attribute_values(":l", AttributeValue::N(limit.to_string()))
        .send()
        .await
        .unwrap();
}

async fn inviter_of(user: &UserId) -> Option<UserId> {
    market_tests::store().await.get_policy(user).await.unwrap().and_then(|p| p.inviter)
}

async fn registered(user: &UserId) -> bool {
    market_tests::store().await.get_policy(user).await.unwrap().is_some_and(|p| p.registered_at.is_some())
}

#[tokio::test]
async fn registration_and_paid_orders_reach_the_inviters_stats() {
    let publisher = Publisher::connect().await;
    let (a, b) = (market_tests::user("a"), market_tests::user("b"));
    let code = code_for(&a).await;
    publisher.user_registered(&id("ev"), b.as_str(), Some(&code.to_lowercase())).await;
    eventually("B referred by A", QUEUED, || async { inviter_of(&b).await.as_ref() == Some(&a) }).await;

    publisher.order_paid(&id("ev"), &id("order"), b.as_str(), 1999).await;
    publisher.order_paid(&id("ev"), &id("order"), b.as_str(), 500).await;
    let store = market_tests::store().await;
    eventually("two rewards", QUEUED, || async { store.get_stats(&a).await.unwrap().rewarded_orders == 2 }).await;

    let rpc = Rpc::from_env().unwrap();
    let stats = rpc.client().get_affiliate_stats(Rpc::authed(GetAffiliateStatsRequest {}, &rpc.token(a.as_str()))).await.unwrap().into_inner();
    let s = stats.stats.unwrap();
    assert_eq!((s.invited_count, s.rewarded_orders, s.total_earned, s.available), (1, 2, 199 + 50, 249));
    market_tests::assert_money_invariants(&store, &a).await;
}

#[tokio::test]
async fn trigger_limit_one_rewards_only_the_first_order() {
    let publisher = Publisher::connect().await;
    let (a, b) = (market_tests::user("a"), market_tests::user("b"));
    let code = code_for(&a).await;
    set_trigger_limit(&a, 1).await;
    publisher.user_registered(&id("ev"), b.as_str(), Some(&code)).await;
    eventually("B referred", QUEUED, || async { inviter_of(&b).await.is_some() }).await;
    let first = id("order");
    publisher.order_paid(&id("ev"), &first, b.as_str(), 1000).await;
    let store = market_tests::store().await;
    eventually("first reward", QUEUED, || async { store.get_stats(&a).await.unwrap().rewarded_orders == 1 }).await;
    let second_event = id("ev");
    publisher.order_paid(&second_event, &id("order"), b.as_str(), 1000).await;
    // A marker order of another referral, published after the second: once it is rewarded,
    // the second order has been processed too (same queue, same path).
    let (c, d) = (market_tests::user("c"), market_tests::user("d"));
    let code_c = code_for(&c).await;
    publisher.user_registered(&id("ev"), d.as_str(), Some(&code_c)).await;
    eventually("D referred", QUEUED, || async { inviter_of(&d).await.is_some() }).await;
    publisher.order_paid(&id("ev"), &id("order"), d.as_str(), 1000).await;
    eventually("marker reward", QUEUED, || async { store.get_stats(&c).await.unwrap().rewarded_orders == 1 }).await;
    let stats = store.get_stats(&a).await.unwrap();
    assert_eq!((stats.rewarded_orders, stats.total_earned.minor()), (1, 100));
    assert_eq!(store.get_policy(&b).await.unwrap().unwrap().rewards_triggered, 1);
}

#[tokio::test]
async fn redelivered_and_invalid_referrals_change_nothing_twice() {
    let publisher = Publisher::connect().await;
    let (a, b) = (market_tests::user("a"), market_tests::user("b"));
    let code = code_for(&a).await;
    publisher.user_registered(&id("ev"), b.as_str(), Some(&code)).await;
    eventually("B referred", QUEUED, || async { inviter_of(&b).await.is_some() }).await;

    // The same order three times.
    let (event, order) = (id("ev"), id("order"));
    for _ in 0..3 {
        publisher.order_paid(&event, &order, b.as_str(), 1000).await;
    }
    // Self-referral, unknown code, second registration of B with another code.
    let other = market_tests::user("other");
    let other_code = code_for(&other).await;
    publisher.user_registered(&id("ev"), a.as_str(), Some(&code)).await;
    let stranger = market_tests::user("stranger");
    publisher.user_registered(&id("ev"), stranger.as_str(), Some("ZZZZZZZZ")).await;
    publisher.user_registered(&id("ev"), b.as_str(), Some(&other_code)).await;
    // Inactive code.
    let (g, h) = (market_tests::user("g"), market_tests::user("h"));
    let g_code = code_for(&g).await;
    let d = market_tests::deps(MarketConfig::default()).await;
    let request = market_domain::processors::DeleteInviteCodeRequest { caller: g.clone(), code: g_code.clone() };
    market_domain::processors::DeleteInviteCode(d).process(request).await.unwrap();
    publisher.user_registered(&id("ev"), h.as_str(), Some(&g_code)).await;

    let store = market_tests::store().await;
    eventually("registrations processed", QUEUED, || async {
        registered(&a).await && registered(&stranger).await && registered(&h).await
    })
    .await;
    eventually("the order rewarded", QUEUED, || async { store.get_stats(&a).await.unwrap().rewarded_orders >= 1 }).await;
    // A marker published last on the same queue: once it is applied, the duplicates were seen.
    let marker_event = id("ev");
    publisher.order_paid(&marker_event, &id("order"), b.as_str(), 10).await;
    eventually("marker reward", QUEUED, || async { store.get_stats(&a).await.unwrap().rewarded_orders == 2 }).await;

    let stats = store.get_stats(&a).await.unwrap();
    assert_eq!((stats.rewarded_orders, stats.total_earned.minor(), stats.invited_count), (2, 101, 1));
    assert_eq!(inviter_of(&a).await, None, "never one's own inviter");
    assert_eq!(inviter_of(&stranger).await, None);
    assert_eq!(inviter_of(&h).await, None);
    assert_eq!(inviter_of(&b).await, Some(a.clone()), "the first inviter stays");
    assert_eq!(store.get_stats(&other).await.unwrap().invited_count, 0);
    assert_eq!(store.get_stats(&g).await.unwrap().invited_count, 0);
    market_tests::assert_money_invariants(&store, &a).await;
}

#[tokio::test]
async fn a_poison_message_goes_to_the_dlq_and_its_siblings_are_applied() {
    let publisher = Publisher::connect().await;
    let (a, b) = (market_tests::user("a"), market_tests::user("b"));
    let code = code_for(&a).await;
    publisher.user_registered(&id("ev"), b.as_str(), Some(&code)).await;
    eventually("B referred", QUEUED, || async { inviter_of(&b).await.is_some() }).await;

    let marker = id("poison");
    publisher.publish("shop", "order.paid", &marker, &format!("{{\"event_id\":\"{marker}\",\"amount\":\"lots\"}}")).await;
    for _ in 0..3 {
        publisher.order_paid(&id("ev"), &id("order"), b.as_str(), 1000).await;
    }
    let store = market_tests::store().await;
    eventually("the three valid orders", QUEUED, || async { store.get_stats(&a).await.unwrap().rewarded_orders == 3 }).await;

    let sqs = aws_sdk_sqs::Client::new(&market_storage::aws_config().await);
    let dlq = std::env::var("QUEUE_URL_OrderPaidDLQ").unwrap();
    eventually("the poison message in the DLQ", QUEUED + 30, || {
        let (sqs, dlq, marker) = (sqs.clone(), dlq.clone(), marker.clone());
        async move {
            let out = sqs
                .receive_message()
                .queue_url(&dlq)
                .max_number_of_messages(10)
                .visibility_timeout(0)
                .message_attribute_names("All")
                .send()
                .await
                .unwrap();
            // The AMQP message id travelled with it as an SQS message attribute.
            out.messages().iter().any(|m| {
                m.body().is_some_and(|b| b.contains(&marker))
                    && m.message_attributes().and_then(|a| a.get("amqp_message_id")).and_then(|v| v.string_value())
                        == Some(marker.as_str())
            })
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_bridge_loses_nothing() {
    let publisher = Publisher::connect().await;
    let (a, b) = (market_tests::user("a"), market_tests::user("b"));
    let code = code_for(&a).await;
    publisher.user_registered(&id("ev"), b.as_str(), Some(&code)).await;
    eventually("B referred", QUEUED, || async { inviter_of(&b).await.is_some() }).await;

    let stack_dir = std::env::var("MARKET_STACK_DIR").unwrap();
    let pid = std::fs::read_to_string(format!("{stack_dir}/pids/bridge.pid")).unwrap().trim().to_owned();
    const ORDERS: usize = 1000;
    for i in 0..ORDERS {
        if i == ORDERS / 3 {
            let status = std::process::Command::new("kill").args(["-KILL", &pid]).status().unwrap();
            assert!(status.success(), "bridge killed");
        }
        publisher.order_paid(&id("ev"), &format!("{}-{i}", b.as_str()), b.as_str(), 100).await;
    }
    market_tests::stack("bridge", &[]);

    let store = market_tests::store().await;
    eventually("every order rewarded", 240, || async { store.get_stats(&a).await.unwrap().rewarded_orders as usize >= ORDERS }).await;
    let stats = market_tests::assert_money_invariants(&store, &a).await;
    assert_eq!(stats.rewarded_orders as usize, ORDERS, "exactly once");
    assert_eq!(stats.total_earned.minor(), (ORDERS * 10) as i64);
    assert_eq!(store.get_policy(&b).await.unwrap().unwrap().rewards_triggered as usize, ORDERS);

    // SIGTERM: the bridge finishes what is in flight and exits on its own; then back up.
    let pid = std::fs::read_to_string(format!("{stack_dir}/pids/bridge.pid")).unwrap().trim().to_owned();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    eventually("the bridge exits after SIGTERM", 15, || {
        let pid = pid.clone();
        async move {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            state.is_empty() || state.split(' ').nth(2) == Some("Z")
        }
    })
    .await;
    let log = std::fs::read_to_string(format!("{stack_dir}/logs/bridge.log")).unwrap_or_default();
    assert!(log.contains("bridge stopped"), "graceful shutdown logged: {log}");
    market_tests::stack("bridge", &[]);
}
