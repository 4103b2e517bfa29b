//! Arrival order: an order or refund that overtakes its buyer's registration waits for it and
//! is then decided as if the events had come in order. Through RabbitMQ, the bridge and the
//! hooks (each event delivered 3×), and in process against DynamoDB for the race between a
//! registration and its orders, the rules' clocks, and the expiry of what never registers.

use market_domain::audit::{AuditAction, AuditRecord};
use market_domain::config::MarketConfig;
use market_domain::ids::{OrderId, UserId};
use market_domain::lifecycle::CommissionStatus;
use market_domain::model::HoldReason;
use market_domain::money::Money;
use market_domain::ports::prelude::*;
use market_domain::ports::{ParkedEvent, RewardOutcome};
use market_domain::processors::*;
use market_domain::time::{Clock, SystemClock, Timestamp};
use market_storage::DynamoStore;
use market_tests::amqp::{eventually, Publisher};
use market_tests::{assert_money_invariants, event_id, order, user, ManualClock, TestDeps};

/// How long an event may take to be applied (other suites fill the same queues meanwhile).
const QUEUED: u64 = 240;
const MINUTE: i64 = 60_000;

fn id(prefix: &str) -> String {
    format!("{prefix}-{}", nanoid::nanoid!(10))
}

fn now_ms() -> i64 {
    SystemClock.now().millis()
}

async fn code_for(user: &UserId) -> String {
    let d = market_tests::deps(MarketConfig::default()).await;
    CreateInviteCode::new(d).process(user.clone().into()).await.unwrap().code.to_string()
}

async fn waiting(store: &DynamoStore, buyer: &UserId) -> Vec<ParkedEvent> {
    store.parked_events(buyer, 100).await.unwrap()
}

async fn trail(store: &DynamoStore, subject: &UserId, action: AuditAction) -> Vec<AuditRecord> {
    store.list_audit(subject.as_str(), None, 100).await.unwrap().items.into_iter().filter(|r| r.action == action).collect()
}

/// Three deliveries of one event (same event id), as SQS and the platform may redeliver.
async fn publish_3x(publisher: &Publisher, exchange: &str, key: &str, event_id: &str, body: &str) {
    for _ in 0..3 {
        publisher.publish(exchange, key, event_id, body).await;
    }
}

async fn order_3x(publisher: &Publisher, buyer: &UserId, order: &str, amount: i64, at_ms: i64) {
    let ev = id("ev");
    publish_3x(publisher, "shop", "order.paid", &ev, &Publisher::order_paid_body_at(&ev, order, buyer.as_str(), amount, at_ms)).await;
}

async fn refund_3x(publisher: &Publisher, buyer: &UserId, order: &str, refund_id: &str, amount: i64, at_ms: i64) {
    let ev = id("ev");
    let body = Publisher::order_refunded_body_at(&ev, refund_id, order, buyer.as_str(), amount, "refund", at_ms);
    publish_3x(publisher, "shop", "order.refunded", &ev, &body).await;
}

async fn register_3x(publisher: &Publisher, buyer: &UserId, code: Option<&str>, at_ms: i64) {
    let ev = id("ev");
    publish_3x(publisher, "auth", "user.registered", &ev, &Publisher::user_registered_body_at(&ev, buyer.as_str(), code, at_ms)).await;
}

#[tokio::test]
async fn an_order_milliseconds_ahead_of_its_registration_earns_the_reward_once() {
    let publisher = Publisher::connect().await;
    let store = market_tests::store().await;
    let (a, b) = (user("a"), user("b"));
    let code = code_for(&a).await;
    let (o, at) = (id("order"), now_ms());
    order_3x(&publisher, &b, &o, 1999, at).await;
    register_3x(&publisher, &b, Some(&code), at - 5).await;
    eventually("the reward, and nothing left waiting", QUEUED, || async {
        store.get_stats(&a).await.unwrap().rewarded_orders == 1 && waiting(&store, &b).await.is_empty()
    })
    .await;
    let s = assert_money_invariants(&store, &a).await;
    assert_eq!((s.total_earned.minor(), s.available.minor()), (199, 199));
    assert_eq!(store.get_policy(&b).await.unwrap().unwrap().rewards_triggered, 1);
    let c = store.get_commission(&a, &OrderId::parse(o).unwrap()).await.unwrap().unwrap();
    assert_eq!(c.earned.unwrap().earned_at.millis(), at, "the order's own time");
}

/// The registration's queue stands still for minutes of event time: the buyer's orders and a
/// refund arrive and wait (observed waiting, nothing earned), then the registration comes.
/// Every rule takes each event at its own time, as if they had come in order.
#[tokio::test]
async fn a_registration_held_back_for_minutes_decides_its_orders_as_if_in_order() {
    let publisher = Publisher::connect().await;
    let store = market_tests::store().await;
    let (a, b) = (user("a"), user("b"));
    let code = code_for(&a).await;
    let registered = now_ms() - 10 * MINUTE;
    let (o1, o2) = (id("order"), id("order"));
    order_3x(&publisher, &b, &o1, 1000, registered + MINUTE).await;
    order_3x(&publisher, &b, &o2, 2000, registered + 2 * MINUTE).await;
    refund_3x(&publisher, &b, &o1, "rf-1", 400, registered + 3 * MINUTE).await;
    eventually("two orders and a refund waiting", QUEUED, || async { waiting(&store, &b).await.len() == 3 }).await;
    assert_eq!(trail(&store, &b, AuditAction::WaitingForRegistration).await.len(), 3, "each waits once, however often delivered");
    assert_eq!(store.get_stats(&a).await.unwrap().rewarded_orders, 0);

    register_3x(&publisher, &b, Some(&code), registered).await;
    eventually("both rewards, nothing waiting", QUEUED, || async {
        store.get_stats(&a).await.unwrap().rewarded_orders == 2 && waiting(&store, &b).await.is_empty()
    })
    .await;
    let s = assert_money_invariants(&store, &a).await;
    // Order 1: 100 earned, 40 reversed by its refund (floor((1000 − 400) × 10 %) = 60 left).
    assert_eq!((s.total_earned.minor(), s.reversed_total.minor(), s.available.minor()), (300, 40, 260));
    let policy = store.get_policy(&b).await.unwrap().unwrap();
    assert_eq!(policy.registered_at.map(Timestamp::millis), Some(registered), "the registration's own time");
    assert_eq!(policy.rewards_triggered, 2);
    let c1 = store.get_commission(&a, &OrderId::parse(o1).unwrap()).await.unwrap().unwrap();
    assert_eq!((c1.amount().minor(), c1.earned.unwrap().earned_at.millis()), (60, registered + MINUTE));
    let decided = trail(&store, &b, AuditAction::WaitingEventDecided).await;
    assert_eq!(decided.len(), 3, "{decided:?}");
    assert!(decided.iter().all(|r| r.details["waited_ms"].as_i64().is_some_and(|ms| ms >= 0)));
}

#[tokio::test]
async fn a_refund_ahead_of_its_registration_and_of_its_order_reverses_exactly_once() {
    let publisher = Publisher::connect().await;
    let store = market_tests::store().await;
    let (a, b) = (user("a"), user("b"));
    let code = code_for(&a).await;
    let (o, at) = (id("order"), now_ms() - MINUTE);
    refund_3x(&publisher, &b, &o, "cb-1", 500, at + 1000).await;
    eventually("the refund waiting", QUEUED, || async { waiting(&store, &b).await.len() == 1 }).await;
    register_3x(&publisher, &b, Some(&code), at - 1000).await;
    let order_id = OrderId::parse(o.clone()).unwrap();
    eventually("the refund recorded on the commission", QUEUED, || async {
        waiting(&store, &b).await.is_empty() && store.get_commission(&a, &order_id).await.unwrap().is_some()
    })
    .await;
    order_3x(&publisher, &b, &o, 2000, at).await;
    eventually("the reward net of the refund", QUEUED, || async { store.get_stats(&a).await.unwrap().rewarded_orders == 1 }).await;
    let s = assert_money_invariants(&store, &a).await;
    assert_eq!((s.total_earned.minor(), s.reversed_total.minor(), s.available.minor()), (200, 50, 150));
}

#[tokio::test]
async fn an_order_before_a_registration_without_a_code_pays_nothing_and_leaves_nothing_waiting() {
    let publisher = Publisher::connect().await;
    let store = market_tests::store().await;
    let b = user("b");
    let at = now_ms() - MINUTE;
    order_3x(&publisher, &b, &id("order"), 1000, at).await;
    eventually("the order waiting", QUEUED, || async { waiting(&store, &b).await.len() == 1 }).await;
    register_3x(&publisher, &b, None, at - 1000).await;
    eventually("decided: no inviter", QUEUED, || async { waiting(&store, &b).await.is_empty() }).await;
    let policy = store.get_policy(&b).await.unwrap().unwrap();
    assert!(policy.inviter.is_none() && policy.registered_at.is_some());
    let decided = trail(&store, &b, AuditAction::WaitingEventDecided).await;
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0].details["outcome"], "no reward: NoInviter");
}

/// Users who never register with the market (e.g. from before its deployment): an order older
/// than the wait is not kept at all; a waiting one is dropped when its wait ends. Both are
/// audited on the buyer; a registration after that pays nothing for them.
#[tokio::test]
async fn an_order_whose_registration_never_comes_expires_audited() {
    let publisher = Publisher::connect().await;
    let store = market_tests::store().await;
    let wait = i64::from(MarketConfig::default().registration_wait_days) * Timestamp::MS_PER_DAY;
    let (a, x, y) = (user("a"), user("x"), user("y"));

    order_3x(&publisher, &x, &id("order"), 1000, now_ms() - wait - MINUTE).await;
    eventually("the stale order audited as not waited for", QUEUED, || async {
        !trail(&store, &x, AuditAction::WaitingEventExpired).await.is_empty()
    })
    .await;
    assert!(waiting(&store, &x).await.is_empty());

    let o = id("order");
    order_3x(&publisher, &y, &o, 1000, now_ms() - wait + 60 * MINUTE).await;
    eventually("the order waiting", QUEUED, || async { waiting(&store, &y).await.len() == 1 }).await;
    let expires_at = waiting(&store, &y).await[0].expires_at;
    // The scheduled expiry, run at the end of the wait (only events whose wait ended by then
    // are dropped: the other tests' waiting events end days later).
    let clock = ManualClock::at(expires_at.millis() + 1);
    let d = market_tests::deps(MarketConfig::default()).await.with_clock(clock);
    let report = ExpireWaitingEvents(d.clone()).process(()).await.unwrap();
    assert!(report.expired >= 1 && report.failed == 0, "{report:?}");
    assert!(waiting(&store, &y).await.is_empty());
    let expired = trail(&store, &y, AuditAction::WaitingEventExpired).await;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].details["order_id"], o.as_str());
    // A second run finds nothing more of it.
    ExpireWaitingEvents(d).process(()).await.unwrap();
    assert_eq!(trail(&store, &y, AuditAction::WaitingEventExpired).await.len(), 1);

    // The registration that finally comes records the referral, and no reward.
    let code = code_for(&a).await;
    register_3x(&publisher, &y, Some(&code), now_ms()).await;
    eventually("y referred", QUEUED, || async { store.get_stats(&a).await.unwrap().invited_count == 1 }).await;
    let s = assert_money_invariants(&store, &a).await;
    assert_eq!((s.rewarded_orders, s.total_earned.minor()), (0, 0));
}

// ---------------------------------------------------------------- in process, on DynamoDB

async fn decide_and_apply(d: &TestDeps, paid: OrderPaid) -> Result<(), market_domain::MarketError> {
    if let OrderDecision::Reward(ev) = DecideOrderReward(d.clone()).process(paid).await? {
        ApplyReward(d.clone()).process(ev).await?;
    }
    Ok(())
}

fn paid(buyer: &UserId, o: &OrderId, amount: i64, at: Timestamp) -> OrderPaid {
    OrderPaid { event_id: event_id(), order_id: o.clone(), buyer: buyer.clone(), amount: Money::from_minor(amount), currency: "USD".into(), occurred_at: at, product_id: None, kind: None }
}

fn registered(buyer: &UserId, code: &str, at: Timestamp) -> UserRegistered {
    UserRegistered { event_id: event_id(), user: buyer.clone(), invite_code: Some(code.to_owned()), occurred_at: at }
}

/// Registrations racing their own orders and refunds (each delivered 3× at once): whichever
/// commits first, every order is rewarded exactly once, net of its refund, and nothing waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registrations_racing_their_orders_lose_none() {
    let d = market_tests::deps(MarketConfig::default()).await;
    let inviter = user("inviter");
    let code = CreateInviteCode::new(d.clone()).process(inviter.clone().into()).await.unwrap().code.to_string();
    let buyers: Vec<UserId> = (0..24).map(|_| user("racer")).collect();
    let now = d.clock.now();
    let mut tasks = Vec::new();
    for buyer in &buyers {
        let (o, reg) = (order(), registered(buyer, &code, now));
        let (pay, refund) = (paid(buyer, &o, 1000, now), market_tests::refund_event(buyer, &o, "rf", 300, now));
        for _ in 0..3 {
            let (d1, d2, d3) = (d.clone(), d.clone(), d.clone());
            let (reg, pay, refund) = (reg.clone(), pay.clone(), refund.clone());
            tasks.push(tokio::spawn(async move { RegisterUser(d1).process(reg).await.map(|_| ()) }));
            tasks.push(tokio::spawn(async move { decide_and_apply(&d2, pay).await }));
            tasks.push(tokio::spawn(async move { ApplyRefund(d3).process(refund).await.map(|_| ()) }));
        }
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for buyer in &buyers {
        assert!(waiting(&d.store, buyer).await.is_empty(), "{buyer}: still waiting");
        assert_eq!(d.store.get_policy(buyer).await.unwrap().unwrap().rewards_triggered, 1, "{buyer}");
    }
    let s = assert_money_invariants(&d.store, &inviter).await;
    // 24 orders of 1000 at 10 %: 100 each, 30 reversed by each refund of 300.
    assert_eq!((s.rewarded_orders, s.total_earned.minor(), s.reversed_total.minor()), (24, 2400, 720));
}

/// The rules' clocks: the holding period runs from the order's time and the review window
/// from the registration's, so a registration that arrives late decides as if on time. An
/// order dated in the future is taken as dated now.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn late_registrations_keep_the_holding_period_and_the_review_window_of_the_events() {
    const T0: i64 = 1_800_000_000_000;
    let clock = ManualClock::at(T0 + 30 * MINUTE);
    let config = MarketConfig { holding_period_days: 1, review_min_seconds: 120, ..MarketConfig::default() };
    let d = market_tests::deps(config).await.with_clock(clock.clone());
    let inviter = user("inviter");
    let code = CreateInviteCode::new(d.clone()).process(inviter.clone().into()).await.unwrap().code.to_string();
    let buyer = user("late");
    let (fast, slow, future) = (order(), order(), order());
    // Paid 60 s and 180 s after the sign-up (at T0); one dated two days ahead.
    for (o, at) in [(&fast, T0 + MINUTE), (&slow, T0 + 3 * MINUTE), (&future, T0 + 2 * Timestamp::MS_PER_DAY)] {
        decide_and_apply(&d, paid(&buyer, o, 1000, Timestamp::from_millis(at))).await.unwrap();
    }
    assert_eq!(waiting(&d.store, &buyer).await.len(), 3);
    // The sign-up arrives two days late.
    clock.set(T0 + 2 * Timestamp::MS_PER_DAY);
    RegisterUser(d.clone()).process(registered(&buyer, &code, Timestamp::from_millis(T0))).await.unwrap();
    assert!(waiting(&d.store, &buyer).await.is_empty());
    let now = clock.now();
    let get = |o: OrderId| {
        let (store, inviter) = (d.store.clone(), inviter.clone());
        async move { store.get_commission(&inviter, &o).await.unwrap().unwrap() }
    };
    let (fast, slow, future) = (get(fast).await, get(slow).await, get(future).await);
    assert_eq!(fast.earned.as_ref().unwrap().hold, Some(HoldReason::FastFirstOrder), "60 s after the sign-up");
    assert_eq!(slow.earned.as_ref().unwrap().hold, None, "180 s after the sign-up");
    assert_eq!(slow.status(now), Some(CommissionStatus::Available), "its holding period ended a day ago");
    let e = future.earned.as_ref().unwrap();
    assert_eq!((e.earned_at.millis(), e.matures_at.millis()), (T0 + 30 * MINUTE, T0 + 30 * MINUTE + Timestamp::MS_PER_DAY), "dated when it arrived");
    let s = assert_money_invariants(&d.store, &inviter).await;
    assert_eq!((s.held.minor(), s.total_earned.minor()), (100, 300));
}

/// Waiting off (`registration_wait_days` = 0): an order of an unseen buyer is dropped at once,
/// audited, and its later registration changes nothing about it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_waiting_off_an_unseen_buyers_order_is_dropped_audited() {
    let d = market_tests::deps(MarketConfig { registration_wait_days: 0, ..MarketConfig::default() }).await;
    let buyer = user("unseen");
    let decision = DecideOrderReward(d.clone()).process(paid(&buyer, &order(), 1000, d.clock.now())).await.unwrap();
    assert_eq!(decision, OrderDecision::NoReward(NoReward::NotRegistered));
    assert!(waiting(&d.store, &buyer).await.is_empty());
    assert_eq!(trail(&d.store, &buyer, AuditAction::WaitingEventExpired).await.len(), 1);
}

/// A registration's redelivery after a crash half way through its waiting orders finishes
/// them: each decision is idempotent, each waiting event removed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redelivered_registration_finishes_what_waited_and_repeats_nothing() {
    let d = market_tests::deps(MarketConfig::default()).await;
    let inviter = user("inviter");
    let code = CreateInviteCode::new(d.clone()).process(inviter.clone().into()).await.unwrap().code.to_string();
    let buyer = user("buyer");
    let now = d.clock.now();
    let orders: Vec<OrderId> = (0..3).map(|_| order()).collect();
    for o in &orders {
        decide_and_apply(&d, paid(&buyer, o, 1000, now)).await.unwrap();
    }
    // "Crash": the first order was decided (the reward applied) but not removed.
    let first = paid(&buyer, &orders[0], 1000, now);
    let reg = registered(&buyer, &code, now);
    let store = &d.store;
    store.register_user(&market_domain::ports::Registration { pseudonym: None,
        user: buyer.clone(), event_id: reg.event_id.clone(), at: now,
        referral: Some(market_domain::ports::Referral { inviter: inviter.clone(), code: market_domain::code::InviteCode::parse(&code).unwrap() }),
        rejected: None, audit: vec![], velocity: None, review: None,
    }).await.unwrap();
    let OrderDecision::Reward(ev) = DecideOrderReward(d.clone()).process(first).await.unwrap() else { panic!("a reward") };
    assert_eq!(ApplyReward(d.clone()).process(ev).await.unwrap(), RewardOutcome::Applied);
    assert_eq!(waiting(store, &buyer).await.len(), 3);
    // The redelivery: the registration answers its first outcome, and decides the rest.
    let result = RegisterUser(d.clone()).process(reg.clone()).await.unwrap();
    assert_eq!(result, RegistrationResult::Referred { inviter: inviter.clone() });
    assert!(waiting(store, &buyer).await.is_empty());
    RegisterUser(d.clone()).process(reg).await.unwrap();
    let s = assert_money_invariants(store, &inviter).await;
    assert_eq!((s.rewarded_orders, s.total_earned.minor()), (3, 300));
    assert_eq!(trail(store, &buyer, AuditAction::WaitingEventDecided).await.len(), 3);
}
