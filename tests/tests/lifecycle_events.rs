//! The commission lifecycle on the wire: each money transition of an affiliate reaches
//! RabbitMQ (exchange `market`) once, through the outbox written in the transition's own
//! transaction, the relay function under `cargo lambda watch` and the bridge, valid against
//! its schema (`docs/events`) and numbered in the affiliate's gap-free sequence. The
//! transitions run through the processors the hooks run (a test clock makes the holding
//! period pass) and the withdrawal through its RPC.

use std::collections::HashSet;

use market_domain::admin::AdminRequest;
use market_domain::config::MarketConfig;
use market_domain::ids::{IdempotencyKey, OrderId, UserId};
use market_domain::money::Money;
use market_domain::ports::BalanceStore;
use market_domain::processors::*;
use market_domain::time::Timestamp;
use market_proto::v1::WithdrawAffiliateRewardRequest;
use market_tests::amqp::{market_events, Received, MarketQueue};
use market_tests::event_schemas::by_affiliate;
use market_tests::rpc::Rpc;
use market_tests::{assert_money_invariants, event_id, order, pay, referred_user, user, ManualClock, TestDeps};

/// 2002-01-01T00:00:00Z: apart from the real clock and from the other files' test clocks.
const PAST: i64 = 1_009_843_200_000;

async fn adjust(d: &TestDeps, target: &UserId, amount: i64) -> String {
    let req = AdminRequest {
        admin: user("admin"),
        request_id: "r1".into(),
        body: Adjustment {
            user: target.clone(),
            amount: Money::from_minor(amount),
            reason: "goodwill".into(),
            idempotency_key: IdempotencyKey::parse("adj-1").unwrap(),
            allow_negative: false,
        },
    };
    match AdjustBalance(d.clone()).process(req).await.expect("adjusted").entry {
        market_domain::model::LedgerEntry::Adjustment { adjustment_id, .. } => adjustment_id.to_string(),
        other => panic!("not an adjustment: {other:?}"),
    }
}

async fn withdraw_rpc(user: &UserId, amount: i64) -> String {
    let rpc = Rpc::from_env().unwrap();
    let request = WithdrawAffiliateRewardRequest { amount, idempotency_key: "w-1".into() };
    rpc.client().withdraw_affiliate_reward(Rpc::authed(request, &rpc.token(user.as_str()))).await.expect("withdrawn").into_inner().withdrawal_id
}

fn config(lifecycle_events: bool) -> MarketConfig {
    MarketConfig { holding_period_days: 1, min_withdraw_amount: Money::from_minor(1), lifecycle_events, ..MarketConfig::default() }
}

fn field(r: &Received, name: &str) -> i64 {
    r.body[name].as_i64().unwrap_or_else(|| panic!("{name} in {}", r.body))
}

#[tokio::test]
async fn an_order_its_maturity_a_refund_an_adjustment_and_a_withdrawal_are_events_one_to_five() {
    let queue = MarketQueue::bind_key("affiliate.#").await;
    let clock = ManualClock::at(PAST);
    let d = market_tests::deps(config(true)).await.with_clock(clock.clone());
    let inviter = user("seq");
    let (buyer, _) = referred_user(&d, &inviter).await;
    let o = order();

    pay(&d, &buyer, &o, 10_000).await; // 10 %: 1 000, pending for a day
    clock.advance_days(2);
    assert_eq!(MatureRewards(d.clone()).process(inviter.clone()).await.unwrap(), 1);
    let refund = market_tests::refund_event(&buyer, &o, "rf-1", 2_500, d.clock.now());
    ApplyRefund(d.clone()).process(refund).await.expect("refunded"); // 1 000 → 750: 250 back
    let adjustment = adjust(&d, &inviter, 300).await;
    let withdrawal = withdraw_rpc(&inviter, 500).await;

    let expected: HashSet<String> = [
        format!("{inviter}#earned#{o}"),
        format!("{inviter}#matured#{o}"),
        format!("{inviter}#reversed#{o}#rf-1"),
        format!("{inviter}#adjusted#{adjustment}"),
        withdrawal.clone(),
    ]
    .into();
    let received = market_events(&queue, &expected, &[inviter.as_str()], 90).await;
    queue.delete().await;
    let (by, violations) = by_affiliate(&received);
    assert!(violations.is_empty(), "{violations:#?}");
    let mine = &by[inviter.as_str()];
    let keys: Vec<(u64, &str)> = mine.iter().map(|(n, r)| (*n, r.routing_key.as_str())).collect();
    assert_eq!(
        keys,
        [
            (1, "affiliate.reward.earned"),
            (2, "affiliate.reward.matured"),
            (3, "affiliate.reward.reversed"),
            (4, "affiliate.balance.adjusted"),
            (5, "affiliate.withdrawn"),
        ]
    );
    let ids: HashSet<String> = mine.values().filter_map(|r| r.body["event_id"].as_str().map(str::to_owned)).collect();
    assert_eq!(ids, expected, "each transition once, under its id");
    let (earned, matured, reversed, adjusted, withdrawn) = (&mine[&1], &mine[&2], &mine[&3], &mine[&4], &mine[&5]);
    assert_eq!((field(earned, "amount"), earned.body["status"].as_str(), field(earned, "order_amount")), (1_000, Some("pending"), 10_000));
    assert_eq!(field(earned, "matures_at"), PAST + Timestamp::MS_PER_DAY);
    assert_eq!((field(matured, "amount"), matured.body["rewards"][0]["order_id"].as_str()), (1_000, Some(o.as_str())));
    assert_eq!((field(reversed, "amount"), reversed.body["from"].as_str(), reversed.body["cause"].as_str()), (250, Some("available"), Some("refund")));
    assert_eq!(field(reversed, "available_after"), 750);
    assert_eq!((field(adjusted, "amount"), field(adjusted, "available_after")), (300, 1_050));
    assert_eq!((field(withdrawn, "amount"), field(withdrawn, "available_after")), (500, 550));
    assert_eq!(withdrawn.body["withdrawal_id"].as_str(), Some(withdrawal.as_str()));
    // No buyer in any event.
    assert!(received.iter().all(|r| !r.body.to_string().contains(buyer.as_str())));
    let stats = assert_money_invariants(&d.store, &inviter).await;
    assert_eq!(stats.available.minor(), 550);
}

/// Off (configuration `lifecycle_events`): a withdrawal still reaches the balance owner,
/// unsequenced; nothing else is published, and rewards spread over the statistics shards.
#[tokio::test]
async fn switched_off_only_the_withdrawal_is_published() {
    let queue = MarketQueue::bind_key("affiliate.#").await;
    let clock = ManualClock::at(PAST);
    let d = market_tests::deps(config(false)).await.with_clock(clock.clone());
    let inviter = user("quiet");
    let (buyer, _) = referred_user(&d, &inviter).await;
    pay(&d, &buyer, &order(), 10_000).await;
    clock.advance_days(2);
    assert_eq!(MatureRewards(d.clone()).process(inviter.clone()).await.unwrap(), 1);
    let w = WithdrawAffiliateReward(d.clone())
        .process(WithdrawRequest { caller: inviter.clone(), amount: Money::from_minor(400), idempotency_key: IdempotencyKey::parse("w").unwrap() })
        .await
        .unwrap();
    let id = w.record.withdrawal_id.to_string();
    let received = market_events(&queue, &HashSet::from([id.clone()]), &[inviter.as_str()], 90).await;
    queue.delete().await;
    assert_eq!(received.len(), 1, "{received:#?}");
    assert_eq!((received[0].routing_key.as_str(), received[0].body["withdrawal_id"].as_str()), ("affiliate.withdrawn", Some(id.as_str())));
    assert!(received[0].body.get("sequence").is_none());
    assert_eq!(market_tests::event_schemas::violation(&received[0]), None);
}

/// Invariant 11 under concurrency: three levels of earners (each with its own sequence), 30
/// orders paid at once (each delivered twice), half refunded in part at once (twice), and
/// withdrawals racing them: every committed transition of each earner is on RabbitMQ once,
/// each sequence is 1..N without a gap, and the events add up to each earner's `available`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_transitions_of_three_earners_publish_each_once_in_gap_free_sequences() {
    use market_domain::money::Bps;
    use market_tests::chaos::lifecycle::{check, expected_ids, Books};
    let queue = MarketQueue::bind_key("affiliate.#").await;
    let levels = vec![Bps::new(500).unwrap(), Bps::new(200).unwrap()];
    let d = market_tests::deps(MarketConfig { level_bps: levels, min_withdraw_amount: Money::from_minor(1), ..MarketConfig::default() }).await;
    let (buyer, earners) = market_tests::chain(&d).await;
    let orders: Vec<OrderId> = (0..30).map(|_| order()).collect();
    let paid: Vec<_> = orders
        .iter()
        .flat_map(|o| {
            let ev = OrderPaid { event_id: event_id(), order_id: o.clone(), buyer: buyer.clone(), amount: Money::from_minor(10_000), currency: "USD".into(), occurred_at: d.clock.now(), product_id: None, kind: None };
            [ev.clone(), ev]
        })
        .map(|ev| {
            let d = d.clone();
            tokio::spawn(async move {
                if let OrderDecision::Reward(r) = DecideOrderReward(d.clone()).process(ev).await.expect("decided") {
                    ApplyReward(d).process(r).await.expect("applied");
                }
            })
        })
        .collect();
    let refunds: Vec<_> = orders
        .iter()
        .step_by(2)
        .flat_map(|o| [o.clone(), o.clone()])
        .map(|o| {
            let (d, buyer) = (d.clone(), buyer.clone());
            tokio::spawn(async move {
                // Before or after its reward, whichever comes first: both are exact.
                let _ = ApplyRefund(d.clone()).process(market_tests::refund_event(&buyer, &o, "rf", 4_000, d.clock.now())).await;
            })
        })
        .collect();
    let withdrawals: Vec<_> = (0..6)
        .map(|i| {
            let (d, who) = (d.clone(), earners[i % 3].clone());
            tokio::spawn(async move {
                let key = IdempotencyKey::parse(format!("w-{i}")).unwrap();
                let _ = WithdrawAffiliateReward(d).process(WithdrawRequest { caller: who, amount: Money::from_minor(50), idempotency_key: key }).await;
            })
        })
        .collect();
    for t in paid.into_iter().chain(refunds).chain(withdrawals) {
        t.await.unwrap();
    }

    let mut books = std::collections::HashMap::new();
    let mut expected = HashSet::new();
    for e in &earners {
        let (stats, history, violations) = market_tests::money_violations(&d.store, e).await.unwrap();
        assert!(violations.is_empty(), "{violations:?}");
        expected.extend(expected_ids(e, &history));
        books.insert(e.clone(), Books { stats, history });
    }
    let names: Vec<&str> = earners.iter().map(|e| e.as_str()).collect();
    let received = market_events(&queue, &expected, &names, 120).await;
    queue.delete().await;
    let (violations, events) = check(&books, &received);
    assert!(violations.is_empty(), "{violations:#?}");
    // Each earner: 30 rewards, 15 reversals, and what they withdrew.
    assert!(events >= 3 * 45, "{events} events");
}

/// Held for review and reviewed: a held reward is `earned` with status `held`; approving it
/// publishes `approved` (what is left, now available), rejecting it a `reversed` with cause
/// `review_rejected` from `held` — each once, in the affiliate's sequence.
#[tokio::test]
async fn held_rewards_publish_their_review() {
    let queue = MarketQueue::bind_key("affiliate.#").await;
    let config = MarketConfig { review_min_seconds: 3600, ..MarketConfig::default() };
    let d = market_tests::deps(config).await;
    let inviter = user("held");
    let (buyer, _) = referred_user(&d, &inviter).await;
    let (kept, dropped) = (order(), order());
    pay(&d, &buyer, &kept, 10_000).await; // paid at once after the registration: held
    pay(&d, &buyer, &dropped, 5_000).await;
    let review = |order: &OrderId, approve: bool| {
        let req = AdminRequest {
            admin: user("admin"),
            request_id: "r".into(),
            body: ReviewRequest { user: inviter.clone(), order_id: order.clone(), approve, note: "checked".into() },
        };
        let d = d.clone();
        async move { ReviewReward(d).process(req).await.expect("reviewed") }
    };
    review(&kept, true).await;
    review(&dropped, false).await;
    review(&kept, true).await; // a retry of the same decision: nothing new

    let expected: HashSet<String> = [
        format!("{inviter}#earned#{kept}"),
        format!("{inviter}#earned#{dropped}"),
        format!("{inviter}#approved#{kept}"),
        format!("{inviter}#reversed#{dropped}#{}", market_domain::ids::ReversalId::review(&inviter, &dropped)),
    ]
    .into();
    let received = market_events(&queue, &expected, &[inviter.as_str()], 60).await;
    queue.delete().await;
    let (by, violations) = by_affiliate(&received);
    assert!(violations.is_empty(), "{violations:#?}");
    let mine: Vec<(&str, &str, &str)> = by[inviter.as_str()]
        .values()
        .map(|r| (r.routing_key.as_str(), r.body["status"].as_str().or(r.body["cause"].as_str()).unwrap_or(""), r.body["event_id"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(mine.len(), 4, "{mine:#?}");
    assert_eq!((mine[0].0, mine[0].1), ("affiliate.reward.earned", "held"));
    assert_eq!((mine[1].0, mine[1].1), ("affiliate.reward.earned", "held"));
    let approved = by[inviter.as_str()].values().find(|r| r.routing_key == "affiliate.reward.approved").expect("approved");
    assert_eq!((approved.body["status"].as_str(), field(approved, "amount")), (Some("available"), 1_000));
    let rejected = by[inviter.as_str()].values().find(|r| r.routing_key == "affiliate.reward.reversed").expect("rejected");
    assert_eq!((rejected.body["cause"].as_str(), rejected.body["from"].as_str(), field(rejected, "amount")), (Some("review_rejected"), Some("held"), 500));
    // Approved first (sequence 3): its 1 000 is available when the rejection (4) takes nothing from it.
    assert_eq!((mine[2].0, mine[3].0), ("affiliate.reward.approved", "affiliate.reward.reversed"));
    assert_eq!(field(rejected, "available_after"), 1_000);
}

/// SPEC §7 with events on: a withdrawal reads its record, balance (with the event sequence)
/// and due rewards in one parallel round trip, then writes: no second read for the sequence.
/// A reward landing between its read and its write moves the sequence: it rebuilds on a
/// fresh read, and the events still number on exactly.
#[tokio::test]
async fn a_withdrawal_and_a_reversal_number_their_events_on_their_own_read() {
    let d = market_tests::deps(MarketConfig { holding_period_days: 0, max_active_codes: 10, ..config(true) }).await;
    let inviter = user("oneread");
    let (buyer, _) = referred_user(&d, &inviter).await;
    pay(&d, &buyer, &order(), 10_000).await; // 1 000 available: event 1
    let withdraw = |key: &str, amount: i64| WithdrawRequest { caller: inviter.clone(), amount: Money::from_minor(amount), idempotency_key: IdempotencyKey::parse(key).unwrap() };
    let trips = d.store.usage().round_trips();
    let first = WithdrawAffiliateReward(d.clone()).process(withdraw("w-a", 300)).await.expect("withdrawn");
    assert_eq!(d.store.usage().round_trips() - trips, 4, "record, balance and due rewards (in parallel), then the transaction");
    let payload = |id: String| {
        let store = d.store.clone();
        async move {
            let key = std::collections::HashMap::from([("event_id".to_owned(), aws_sdk_dynamodb::types::AttributeValue::S(id))]);
            let item = store.client().get_item().table_name(&store.tables().outbox).set_key(Some(key)).consistent_read(true).send().await.unwrap().item.expect("outbox record");
            serde_json::from_str::<serde_json::Value>(item["payload"].as_s().unwrap()).unwrap()
        }
    };
    let event = payload(first.record.withdrawal_id.to_string()).await;
    assert_eq!((event["sequence"].as_i64(), event["available_after"].as_i64()), (Some(2), Some(700)));

    // Rewards racing withdrawals: one landing between a withdrawal's read and its write moves
    // the sequence, and the withdrawal rebuilds on a fresh read. Every event still numbers on
    // exactly: gap-free, each `available_after` the running sum of what the events did.
    let mut events: Vec<(String, i64)> = Vec::new();
    for i in 0..6 {
        let (buyer, _) = referred_user(&d, &inviter).await;
        let o = order();
        let key = format!("w-race-{i}");
        let withdrawal = WithdrawAffiliateReward(d.clone());
        let (w, _) = tokio::join!(withdrawal.process(withdraw(&key, 100)), pay(&d, &buyer, &o, 2_000));
        events.push((w.expect("withdrawn").record.withdrawal_id.to_string(), -100));
        events.push((format!("{inviter}#earned#{o}"), 200));
    }
    let mut numbered = Vec::new();
    for (id, delta) in events {
        let e = payload(id).await;
        // A reward's event does not report the balance; a withdrawal's does.
        numbered.push((e["sequence"].as_i64().expect("sequenced"), e["available_after"].as_i64(), delta));
    }
    numbered.sort_unstable();
    let mut available = 700;
    for (i, (seq, after, delta)) in numbered.iter().enumerate() {
        available += delta;
        assert_eq!(*seq, i as i64 + 3, "gap-free: {numbered:?}");
        if let Some(after) = after {
            assert_eq!(*after, available, "the balance after event {seq}: {numbered:?}");
        }
    }
    // An admin's reversal reads the commission with the sequence: one read, one write.
    let (buyer, _) = referred_user(&d, &inviter).await;
    let o = order();
    pay(&d, &buyer, &o, 1_000).await;
    let trips = d.store.usage().round_trips();
    let body = ReverseRequest { user: inviter.clone(), order_id: o.clone(), note: "duplicate".into(), idempotency_key: IdempotencyKey::parse("rev-1").unwrap() };
    let reversed = ReverseReward(d.clone()).process(AdminRequest { admin: user("admin"), request_id: "r-rev".into(), body }).await.expect("reversed");
    assert_eq!(d.store.usage().round_trips() - trips, 2, "the commission with the sequence, then the transaction");
    let reversal = reversed.commission.voided.expect("voided").reversal_id;
    let event = payload(format!("{inviter}#reversed#{o}#{reversal}")).await;
    let stats = d.store.get_stats(&inviter).await.unwrap();
    assert_eq!((event["sequence"].as_u64(), event["available_after"].as_i64()), (Some(stats.event_seq), Some(stats.available.minor())), "the last event: {event}");
    assert_money_invariants(&d.store, &inviter).await;
}
