//! Abuse controls on DynamoDB Local, through the processors the functions run: code churn
//! (`codes_created_per_day`) fires exactly at its threshold under concurrent creations,
//! deleting does not give creations back, and each refusal is audited with its retry time.
//! Referral velocity and fast first orders hold rewards for review exactly at their
//! thresholds; held money is not withdrawable; the review queue lists oldest first and each
//! held reward is approved or rejected exactly once.

use market_domain::admin::AdminRequest;
use market_domain::audit::AuditAction;
use market_domain::config::MarketConfig;
use market_domain::ids::{EventId, IdempotencyKey, OrderId, UserId};
use market_domain::lifecycle::CommissionStatus;
use market_domain::model::{HistoryItem, HoldReason, LedgerEntry, ReversalCause};
use market_domain::money::{Bps, Money};
use market_domain::ports::prelude::*;
use market_domain::ports::RewardOutcome;
use market_domain::processors::*;
use market_domain::time::{Clock, Timestamp};
use market_domain::MarketError;
use market_tests::{assert_money_invariants, event_id, order, user, ManualClock, TestDeps};

/// 2030-01-01T10:30:00Z.
const T0: i64 = 1_893_493_800_000;

fn paid(buyer: &UserId, order: &OrderId, amount: i64, event: &EventId, at: i64) -> OrderPaid {
    OrderPaid { event_id: event.clone(), order_id: order.clone(), buyer: buyer.clone(), amount: Money::from_minor(amount), currency: "USD".into(), occurred_at: Timestamp::from_millis(at), product_id: None, kind: None }
}

/// Decides and applies one paid order; returns the decision's hold.
async fn pay(d: &TestDeps, buyer: &UserId, amount: i64, at: i64) -> (OrderId, Option<HoldReason>) {
    let o = order();
    let OrderDecision::Reward(ev) = DecideOrderReward(d.clone()).process(paid(buyer, &o, amount, &event_id(), at)).await.unwrap() else { panic!("no reward") };
    let hold = ev.hold;
    assert_eq!(ApplyReward(d.clone()).process(ev).await.unwrap(), RewardOutcome::Applied);
    (o, hold)
}

async fn register(d: &TestDeps, u: &UserId, code: &str) -> RegistrationResult {
    RegisterUser(d.clone()).process(UserRegistered { event_id: event_id(), user: u.clone(), invite_code: Some(code.into()), occurred_at: d.clock.now() }).await.unwrap()
}

async fn withdraw(d: &TestDeps, u: &UserId, amount: i64) -> Result<WithdrawResult, MarketError> {
    let req = WithdrawRequest { caller: u.clone(), amount: Money::from_minor(amount), idempotency_key: IdempotencyKey::parse(nanoid::nanoid!(8)).unwrap() };
    WithdrawAffiliateReward(d.clone()).process(req).await
}

fn review(d: &TestDeps, u: &UserId, o: &OrderId, approve: bool) -> impl std::future::Future<Output = Result<ReviewResult, MarketError>> {
    let req = AdminRequest { admin: UserId::parse("ops-1").unwrap(), request_id: nanoid::nanoid!(8), body: ReviewRequest { user: u.clone(), order_id: o.clone(), approve, note: "checked the orders".into() } };
    let p = ReviewReward(d.clone());
    async move { p.process(req).await }
}

/// The same review three times at once: exactly one decides, the others replay it.
async fn review_3x(d: &TestDeps, u: &UserId, o: &OrderId, approve: bool) -> Money {
    let results = futures::future::join_all((0..3).map(|_| review(d, u, o, approve))).await;
    let results: Vec<ReviewResult> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(results.iter().filter(|r| !r.replayed).count(), 1, "decided once");
    assert!(results.iter().all(|r| r.approved == approve && r.amount == results[0].amount));
    results[0].amount
}

fn reviews_on_trail(trail: &[market_domain::audit::AuditRecord], o: &OrderId) -> usize {
    trail.iter().filter(|r| r.action == AuditAction::RewardReviewed && r.details["order_id"] == o.as_str()).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn referral_velocity_holds_the_rewards_of_referrals_beyond_the_hourly_limit() {
    let clock = ManualClock::at(T0);
    let config = MarketConfig { review_referrals_per_hour: 3, min_withdraw_amount: Money::from_minor(1), ..MarketConfig::default() };
    let d = market_tests::deps(config).await.with_clock(clock.clone());
    let inviter = user("fast");
    let code = CreateInviteCode::new(d.clone()).process(inviter.clone().into()).await.unwrap().code;

    // Six registrations at once: all are referrals, exactly the three beyond the limit flagged.
    let buyers: Vec<UserId> = (0..6).map(|_| user("ring")).collect();
    let results = futures::future::join_all(buyers.iter().map(|b| register(&d, b, code.as_str()))).await;
    assert!(results.iter().all(|r| *r == RegistrationResult::Referred { inviter: inviter.clone() }), "{results:?}");
    let mut flagged = Vec::new();
    for b in &buyers {
        if d.store.get_policy(b).await.unwrap().unwrap().review_reason == Some(HoldReason::ReferralVelocity) {
            flagged.push(b.clone());
        }
    }
    assert_eq!(flagged.len(), 3, "exactly the referrals beyond 3 in the hour");
    let trail = d.store.list_audit(inviter.as_str(), None, 100).await.unwrap().items;
    assert_eq!(trail.iter().filter(|r| r.action == AuditAction::HeldForReview && r.details["rule"] == "review_referrals_per_hour").count(), 3);
    assert_eq!(d.store.get_stats(&inviter).await.unwrap().invited_count, 6);

    // The next UTC hour counts again: the first referral of it is not flagged.
    clock.set(T0 + 30 * 60_000);
    let next = user("calm");
    register(&d, &next, code.as_str()).await;
    assert_eq!(d.store.get_policy(&next).await.unwrap().unwrap().review_reason, None);

    // Each buyer pays 1 000 (10 % → 100): the flagged three's rewards are held.
    let mut held_orders = Vec::new();
    for b in &buyers {
        let (o, hold) = pay(&d, b, 1000, clock.now().millis()).await;
        assert_eq!(hold.is_some(), flagged.contains(b));
        if hold.is_some() {
            held_orders.push(o);
        }
    }
    let s = assert_money_invariants(&d.store, &inviter).await;
    assert_eq!((s.held.minor(), s.available.minor(), s.total_earned.minor()), (300, 300, 600));
    // Held money is invisible to withdrawal.
    assert!(matches!(withdraw(&d, &inviter, 301).await, Err(MarketError::InsufficientBalance)));
    // Approved (holding period 0): available at once, and withdrawable.
    assert_eq!(review_3x(&d, &inviter, &held_orders[0], true).await, Money::from_minor(100));
    assert!(withdraw(&d, &inviter, 400).await.is_ok());
    let s = assert_money_invariants(&d.store, &inviter).await;
    assert_eq!((s.held.minor(), s.available.minor(), s.withdrawn_total.minor()), (200, 0, 400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_within_review_min_seconds_of_registration_is_held_and_at_it_is_not() {
    let clock = ManualClock::at(T0);
    let config = MarketConfig { review_min_seconds: 60, ..MarketConfig::default() };
    let d = market_tests::deps(config).await.with_clock(clock.clone());
    let inviter = user("shop");
    let (early, _) = market_tests::referred_user(&d, &inviter).await;
    let (on_time, _) = market_tests::referred_user(&d, &inviter).await;
    let registered = d.store.get_policy(&early).await.unwrap().unwrap().registered_at.unwrap().millis();
    assert_eq!(registered, T0, "the registration event's time");
    clock.set(T0 + 60_000);
    let (_, hold) = pay(&d, &early, 1000, T0 + 59_999).await;
    assert_eq!(hold, Some(HoldReason::FastFirstOrder));
    let (_, hold) = pay(&d, &on_time, 1000, T0 + 60_000).await;
    assert_eq!(hold, None);
    let s = assert_money_invariants(&d.store, &inviter).await;
    assert_eq!((s.held.minor(), s.available.minor()), (100, 100));
    let trail = d.store.list_audit(inviter.as_str(), None, 100).await.unwrap().items;
    assert_eq!(trail.iter().filter(|r| r.action == AuditAction::HeldForReview && r.details["rule"] == "fast_first_order").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn held_rewards_are_listed_oldest_first_and_reviewed_exactly_once_at_every_level() {
    let clock = ManualClock::at(T0);
    let config = MarketConfig {
        review_min_seconds: 3600,
        holding_period_days: 1,
        level_bps: vec![Bps::new(500).unwrap(), Bps::new(200).unwrap()],
        ..MarketConfig::default()
    };
    let d = market_tests::deps(config).await.with_clock(clock.clone());
    let (buyer, [inviter, grand, great]) = market_tests::chain(&d).await;

    // One order, delivered three times at once: every level held once.
    let o = order();
    let event = event_id();
    let runs = (0..3).map(|_| async {
        let OrderDecision::Reward(ev) = DecideOrderReward(d.clone()).process(paid(&buyer, &o, 10_000, &event, T0 + 1_000)).await.unwrap() else { panic!() };
        assert_eq!(ev.hold, Some(HoldReason::FastFirstOrder));
        ApplyReward(d.clone()).process(ev).await.unwrap()
    });
    let outcomes = futures::future::join_all(runs).await;
    assert_eq!(outcomes.iter().filter(|o| **o == RewardOutcome::Applied).count(), 1, "{outcomes:?}");
    let held: Vec<i64> = futures::future::join_all([&inviter, &grand, &great].map(|u| d.store.get_stats(u))).await.into_iter().map(|s| s.unwrap().held.minor()).collect();
    assert_eq!(held, [1000, 500, 200]);
    let c = d.store.get_commission(&inviter, &o).await.unwrap().unwrap();
    assert_eq!(c.status(clock.now()), Some(CommissionStatus::HeldForReview));

    // The queue: oldest first, across pages, ours among them; a page token works.
    let admin = UserId::parse("ops-1").unwrap();
    let list = |token: Option<String>, size: u32| {
        let req = AdminRequest { admin: admin.clone(), request_id: "r".into(), body: HeldPageRequest { page_size: size, page_token: token } };
        let p = ListHeldRewards(d.clone());
        async move { p.process(req).await.unwrap().page }
    };
    let first = list(None, 2).await;
    assert!(!first.items.is_empty() && first.items.len() <= 2);
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let page = list(token, 100).await;
        all.extend(page.items);
        token = page.next;
        if token.is_none() {
            break;
        }
    }
    let times: Vec<i64> = all.iter().map(|c| c.earned.as_ref().unwrap().earned_at.millis()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first");
    for u in [&inviter, &grand, &great] {
        assert_eq!(all.iter().filter(|c| &c.user_id == u && c.order_id == o).count(), 1, "{u} listed once");
    }

    // Level 1 approved three times at once: decided once, pending (its holding period runs).
    assert_eq!(review_3x(&d, &inviter, &o, true).await, Money::from_minor(1000));
    assert!(matches!(review(&d, &inviter, &o, false).await, Err(MarketError::AlreadyReviewed)));
    let s = assert_money_invariants(&d.store, &inviter).await;
    assert_eq!((s.held.minor(), s.pending.minor(), s.available.minor()), (0, 1000, 0));
    // Level 2 rejected three times at once: reversed once, cause review_rejected.
    assert_eq!(review_3x(&d, &grand, &o, false).await, Money::from_minor(500));
    assert!(matches!(review(&d, &grand, &o, true).await, Err(MarketError::AlreadyReviewed)));
    let s = assert_money_invariants(&d.store, &grand).await;
    assert_eq!((s.held.minor(), s.reversed_total.minor(), s.total_earned.minor()), (0, 500, 500));
    let history = d.store.history(&grand).await.unwrap();
    let rejected: Vec<_> = history.iter().filter(|h| matches!(h, HistoryItem::Entry(LedgerEntry::Reversal { cause: ReversalCause::ReviewRejected, .. }))).collect();
    assert_eq!(rejected.len(), 1);
    // Level 3 still waits; the reviewed ones left the queue.
    let left = list(None, 100).await.items;
    assert!(!left.iter().any(|c| c.order_id == o && c.user_id != great));
    // Each decision is audited once, with the admin as actor.
    for u in [&inviter, &grand] {
        let trail = d.store.list_audit(u.as_str(), None, 100).await.unwrap().items;
        assert_eq!(reviews_on_trail(&trail, &o), 1, "{u}");
        assert!(trail.iter().any(|r| r.action == AuditAction::RewardReviewed && r.actor.to_string() == "admin:ops-1"));
    }
    // A refund while held shrinks what is held; a reward never held is not reviewable.
    ApplyRefund(d.clone()).process(market_tests::refund_event(&buyer, &o, "r1", 5_000, clock.now())).await.unwrap();
    let s = assert_money_invariants(&d.store, &great).await;
    assert_eq!(s.held.minor(), 100);
    let (plain, _) = market_tests::referred_user(&d, &great).await;
    // Two hours later (an order is never dated after the market's clock).
    clock.set(T0 + 7_200_000);
    let (plain_order, hold) = pay(&d, &plain, 1000, T0 + 7_200_000).await;
    assert_eq!(hold, None);
    assert!(matches!(review(&d, &great, &plain_order, true).await, Err(MarketError::NotHeldForReview)));
    assert!(matches!(review(&d, &great, &order(), true).await, Err(MarketError::NotFound)));
    assert!(matches!(review(&d, &great, &o, true).await, Ok(ReviewResult { replayed: false, .. })));
    for u in [&inviter, &grand, &great] {
        assert_money_invariants(&d.store, u).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn code_churn_is_limited_per_user_and_utc_day() {
    // 2030-01-01T23:00:00Z: one hour before the next UTC day.
    let clock = ManualClock::at(1_893_538_800_000);
    let config = MarketConfig { codes_created_per_day: 3, max_active_codes: 50, ..MarketConfig::default() };
    let d = market_tests::deps(config).await.with_clock(clock.clone());
    let (churner, neighbour) = (user("churn"), user("calm"));
    let create = CreateInviteCode::new(d.clone());

    // Six at once: exactly three are created, the others are told when to retry.
    let results = futures::future::join_all((0..6).map(|_| create.process(churner.clone().into()))).await;
    let created: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(created.len(), 3, "{results:?}");
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        let MarketError::RateLimited { retry_after } = r else { panic!("{r:?}") };
        assert_eq!(retry_after.as_secs(), 3600, "until the next UTC day");
    }
    // Deleting does not give a creation back; another user is not affected.
    DeleteInviteCode(d.clone()).process(DeleteInviteCodeRequest { caller: churner.clone(), code: created[0].code.as_str().into() }).await.unwrap();
    assert!(matches!(create.process(churner.clone().into()).await, Err(MarketError::RateLimited { .. })));
    assert!(create.process(neighbour.clone().into()).await.is_ok());
    assert_eq!(d.store.get_stats(&churner).await.unwrap().active_codes, 2, "refusals changed nothing");

    // Each refusal is on the user's trail.
    let trail = d.store.list_audit(churner.as_str(), None, 50).await.unwrap().items;
    let refusals: Vec<_> = trail.iter().filter(|r| r.action == AuditAction::LimitReached).collect();
    assert_eq!(refusals.len(), 4);
    assert_eq!((refusals[0].details["rule"].as_str(), refusals[0].details["limit"].as_u64()), (Some("codes_created_per_day"), Some(3)));

    // The next UTC day starts a new count.
    clock.set(Timestamp::from_millis(1_893_538_800_000).next_utc_day().millis());
    assert!(create.process(churner.clone().into()).await.is_ok());
}
