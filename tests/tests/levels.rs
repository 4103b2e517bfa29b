//! Revenue distribution across levels on DynamoDB Local, through the processors the
//! functions run: a three-level chain paid exactly once under concurrent redelivery (one
//! transaction, the buyer's trigger count once), refunds reversing every level in either
//! arrival order, a disabled ancestor skipped (never re-routed), and a cycle in stored data.

use aws_sdk_dynamodb::types::AttributeValue;
use market_domain::config::MarketConfig;
use market_domain::ids::{EventId, OrderId, UserId};
use market_domain::model::HistoryItem;
use market_domain::money::{Bps, Money};
use market_domain::policy::TriggerLimit;
use market_domain::ports::prelude::*;
use market_domain::ports::RewardOutcome;
use market_domain::processors::*;
use market_tests::{assert_money_invariants, chain, event_id, order, refer, user, TestDeps};

fn config(limit: TriggerLimit) -> MarketConfig {
    MarketConfig {
        level_bps: vec![Bps::new(500).unwrap(), Bps::new(200).unwrap()],
        default_trigger_limit: limit,
        min_withdraw_amount: Money::from_minor(1),
        ..MarketConfig::default()
    }
}

fn paid(buyer: &UserId, order: &OrderId, amount: i64, event: &EventId) -> OrderPaid {
    OrderPaid { event_id: event.clone(), order_id: order.clone(), buyer: buyer.clone(), amount: Money::from_minor(amount), currency: "USD".into(), occurred_at: market_domain::time::Timestamp::from_millis(1_700_000_000_000), product_id: None, kind: None }
}

async fn decide(d: &TestDeps, ev: OrderPaid) -> OrderDecision {
    DecideOrderReward(d.clone()).process(ev).await.unwrap()
}

/// The same order.paid delivered three times at once, each through decision and reward.
async fn pay_3x(d: &TestDeps, buyer: &UserId, o: &OrderId, amount: i64) -> Vec<RewardOutcome> {
    let event = event_id();
    let runs = (0..3).map(|_| async {
        match decide(d, paid(buyer, o, amount, &event)).await {
            OrderDecision::Reward(ev) => ApplyReward(d.clone()).process(ev).await.unwrap(),
            other => panic!("no reward: {other:?}"),
        }
    });
    let mut outcomes = futures::future::join_all(runs).await;
    outcomes.sort_by_key(|o| format!("{o:?}"));
    outcomes
}

async fn refund(d: &TestDeps, buyer: &UserId, o: &OrderId, id: &str, amount: i64) -> RefundResult {
    ApplyRefund(d.clone()).process(market_tests::refund_event(buyer, o, id, amount, d.clock.now())).await.unwrap()
}

/// (total earned, earned by level, what is left = pending + available) of each earner.
async fn figures(d: &TestDeps, earners: &[UserId]) -> Vec<(i64, [i64; 3], i64)> {
    let mut out = Vec::new();
    for u in earners {
        let s = assert_money_invariants(&d.store, u).await;
        out.push((s.total_earned.minor(), s.earned_by_level().map(|m| m.minor()), s.pending.minor() + s.available.minor()));
    }
    out
}

async fn rewards_triggered(d: &TestDeps, buyer: &UserId) -> u32 {
    d.store.get_policy(buyer).await.unwrap().unwrap().rewards_triggered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_levels_are_paid_once_each_under_concurrent_redelivery() {
    let d = market_tests::deps(config(TriggerLimit::Unlimited)).await;
    let (buyer, earners) = chain(&d).await;
    let o = order();
    let outcomes = pay_3x(&d, &buyer, &o, 9_999).await;
    assert_eq!(outcomes.iter().filter(|o| **o == RewardOutcome::Applied).count(), 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(o, RewardOutcome::Applied | RewardOutcome::Replayed)), "{outcomes:?}");
    // 10 %, 5 %, 2 % of 9 999, each floored.
    assert_eq!(figures(&d, &earners).await, vec![(999, [999, 0, 0], 999), (499, [0, 499, 0], 499), (199, [0, 0, 199], 199)]);
    assert_eq!(rewards_triggered(&d, &buyer).await, 1, "the trigger limit counts the order once, not per level");

    // Each earner has its own reward entry and commission for the order, with its level.
    for (i, u) in earners.iter().enumerate() {
        let history = d.store.history(u).await.unwrap();
        let levels: Vec<u8> = history.iter().filter_map(|h| match h { HistoryItem::Commission(c) => c.earned.as_ref().map(|e| e.level), _ => None }).collect();
        assert_eq!(levels, [i as u8 + 1], "{u}");
        let overview = GetAffiliateStats(d.clone()).process(u.clone()).await.unwrap();
        assert_eq!(overview.stats.rewarded_orders, 1);
    }
    let client = aws_sdk_dynamodb::Client::new(&market_storage::aws_config().await);
    let entry = client
        .get_item()
        .table_name(std::env::var("LEDGER_TABLE").unwrap())
        .key("user_id", AttributeValue::S(earners[1].to_string()))
        .key("entry_key", AttributeValue::S(format!("reward#{o}")))
        .send()
        .await
        .unwrap()
        .item
        .expect("the level-2 earner's reward entry");
    assert_eq!((entry["level"].as_n().unwrap().as_str(), entry["reward"].as_n().unwrap().as_str()), ("2", "499"));
    let trail = d.store.list_audit(earners[2].as_str(), None, 10).await.unwrap().items;
    assert!(trail.iter().any(|r| r.details["level"] == 3 && r.details["order_id"] == o.as_str()), "audited on the level-3 earner's trail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refunds_reverse_every_level_in_proportion_in_either_order() {
    for refund_first in [false, true] {
        let d = market_tests::deps(config(TriggerLimit::Unlimited)).await;
        let (buyer, earners) = chain(&d).await;
        let o = order();
        if refund_first {
            for _ in 0..3 {
                let r = refund(&d, &buyer, &o, "r1", 4_000).await;
                assert!(matches!(r, RefundResult::RecordedBeforeReward | RefundResult::Duplicate), "{r:?}");
            }
        }
        pay_3x(&d, &buyer, &o, 10_000).await;
        for _ in 0..3 {
            let r = refund(&d, &buyer, &o, if refund_first { "r2" } else { "r1" }, if refund_first { 1_000 } else { 4_000 }).await;
            assert!(matches!(r, RefundResult::Applied { .. } | RefundResult::Duplicate), "{r:?}");
        }
        if !refund_first {
            for _ in 0..3 {
                refund(&d, &buyer, &o, "r2", 1_000).await;
            }
        }
        // 5 000 of 10 000 refunded in both runs: each level keeps floor(5 000 × its rate).
        assert_eq!(
            figures(&d, &earners).await,
            vec![(1000, [1000, 0, 0], 500), (500, [0, 500, 0], 250), (200, [0, 0, 200], 100)],
            "refund first: {refund_first}"
        );
    }
}

#[tokio::test]
async fn the_trigger_limit_counts_the_buyers_orders_not_levels() {
    let d = market_tests::deps(config(TriggerLimit::limited(1).unwrap())).await;
    let (buyer, earners) = chain(&d).await;
    pay_3x(&d, &buyer, &order(), 1_000).await;
    assert_eq!(decide(&d, paid(&buyer, &order(), 1_000, &event_id())).await, OrderDecision::NoReward(NoReward::TriggerLimitReached));
    assert_eq!(rewards_triggered(&d, &buyer).await, 1);
    assert_eq!(figures(&d, &earners).await.iter().map(|f| f.0).collect::<Vec<_>>(), [100, 50, 20]);
}

/// Writes a policy item as an operator's tool (or a bug) could: the inviter link and switch.
async fn put_policy(user: &UserId, inviter: Option<&UserId>, enabled: Option<bool>) {
    let client = aws_sdk_dynamodb::Client::new(&market_storage::aws_config().await);
    let mut put = client.put_item().table_name(std::env::var("POLICY_TABLE").unwrap()).item("user_id", AttributeValue::S(user.to_string()));
    if let Some(i) = inviter {
        put = put.item("inviter", AttributeValue::S(i.to_string()));
    }
    if let Some(e) = enabled {
        put = put.item("affiliate_enabled", AttributeValue::Bool(e));
    }
    put.send().await.unwrap();
}

#[tokio::test]
async fn a_disabled_ancestor_is_skipped_and_its_share_goes_to_nobody() {
    let d = market_tests::deps(config(TriggerLimit::Unlimited)).await;
    let (buyer, earners) = chain(&d).await;
    let grand_policy = d.store.get_policy(&earners[1]).await.unwrap().unwrap();
    put_policy(&earners[1], grand_policy.inviter.as_ref(), Some(false)).await;
    let OrderDecision::Reward(ev) = decide(&d, paid(&buyer, &order(), 10_000, &event_id())).await else { panic!("a reward") };
    assert_eq!(ev.levels.iter().map(|l| (l.level, l.earner.clone())).collect::<Vec<_>>(), [(3, earners[2].clone())], "level 3 still paid, not moved down");
    assert_eq!(ApplyReward(d.clone()).process(ev).await.unwrap(), RewardOutcome::Applied);
    assert_eq!(figures(&d, &earners).await.iter().map(|f| f.0).collect::<Vec<_>>(), [1000, 0, 200]);
}

#[tokio::test]
async fn a_cycle_in_stored_data_stops_the_walk() {
    let d = market_tests::deps(config(TriggerLimit::Unlimited)).await;
    let (a, b, buyer) = (user("cyc-a"), user("cyc-b"), user("buyer"));
    refer(&d, &a, &buyer).await;
    // a's inviter is b and b's is a: registration never writes this; stored data might.
    put_policy(&a, Some(&b), None).await;
    put_policy(&b, Some(&a), None).await;
    let decision = tokio::time::timeout(std::time::Duration::from_secs(10), decide(&d, paid(&buyer, &order(), 10_000, &event_id()))).await.expect("no loop");
    let OrderDecision::Reward(ev) = decision else { panic!("a reward") };
    assert_eq!(ev.levels.iter().map(|l| l.earner.clone()).collect::<Vec<_>>(), std::slice::from_ref(&b), "a is not paid twice");
    assert_eq!(ApplyReward(d.clone()).process(ev).await.unwrap(), RewardOutcome::Applied);
    assert_eq!(figures(&d, &[a, b]).await.iter().map(|f| f.0).collect::<Vec<_>>(), [1000, 500]);
}

#[tokio::test]
async fn without_level_rates_only_the_inviter_is_paid() {
    let d = market_tests::deps(MarketConfig { min_withdraw_amount: Money::from_minor(1), ..MarketConfig::default() }).await;
    let (buyer, earners) = chain(&d).await;
    pay_3x(&d, &buyer, &order(), 10_000).await;
    assert_eq!(figures(&d, &earners).await.iter().map(|f| f.0).collect::<Vec<_>>(), [1000, 0, 0]);
}
