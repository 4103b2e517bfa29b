//! The commission lifecycle on DynamoDB Local, through the processors the functions run:
//! the holding period (a test clock), every refund scenario in both arrival orders with
//! each event delivered three times, a randomized race of orders, refunds and withdrawals
//! for one inviter, and the admin's adjustments and reversals.

use std::sync::Arc;

use market_domain::admin::AdminRequest;
use market_domain::audit::AuditAction;
use market_domain::config::MarketConfig;
use market_domain::ids::{IdempotencyKey, OrderId, UserId};
use market_domain::lifecycle::CommissionStatus;
use market_domain::model::{AffiliateStats, HistoryItem, LedgerEntry};
use market_domain::money::{commission, Bps, Money};
use market_domain::ports::prelude::*;
use market_domain::ports::RewardOutcome;
use market_domain::processors::*;
use market_domain::time::Timestamp;
use market_domain::MarketError;
use market_tests::{assert_money_invariants, event_id, order, pay, referred_user, user, ManualClock, TestDeps};

/// 2001-01-01T00:00:00Z: far from the real clock every other test uses, so the scheduled
/// catch-up below only ever sees this file's commissions.
const PAST: i64 = 978_307_200_000;
const DAY: i64 = Timestamp::MS_PER_DAY;

fn config(holding_period_days: u32) -> MarketConfig {
    MarketConfig { holding_period_days, min_withdraw_amount: Money::from_minor(1), ..MarketConfig::default() }
}

async fn deps(holding: u32, clock: Arc<ManualClock>) -> TestDeps {
    market_tests::deps(config(holding)).await.with_clock(clock)
}

async fn refund(d: &TestDeps, buyer: &UserId, order: &OrderId, id: &str, amount: i64) -> Result<RefundResult, MarketError> {
    ApplyRefund(d.clone()).process(market_tests::refund_event(buyer, order, id, amount, d.clock.now())).await
}

async fn withdraw(d: &TestDeps, user: &UserId, amount: i64, key: &str) -> Result<WithdrawResult, MarketError> {
    WithdrawAffiliateReward(d.clone())
        .process(WithdrawRequest { caller: user.clone(), amount: Money::from_minor(amount), idempotency_key: IdempotencyKey::parse(key).unwrap() })
        .await
}

fn figures(s: &AffiliateStats) -> (i64, i64, i64, i64, i64) {
    (s.total_earned.minor(), s.pending.minor(), s.available.minor(), s.withdrawn_total.minor(), s.reversed_total.minor())
}

fn rate(amount: i64) -> i64 {
    commission(Money::from_minor(amount), Bps::new(1000).unwrap()).unwrap().minor()
}

#[tokio::test]
async fn a_reward_is_pending_then_available_at_the_exact_moment() {
    let clock = ManualClock::at(PAST);
    let d = deps(1, clock.clone()).await;
    let inviter = user("hold");
    let (buyer, _) = referred_user(&d, &inviter).await;
    let (o1, o2) = (order(), order());
    assert_eq!(pay(&d, &buyer, &o1, 1000).await, RewardOutcome::Applied);
    clock.set(PAST + 1000);
    assert_eq!(pay(&d, &buyer, &o2, 2000).await, RewardOutcome::Applied);

    let overview = GetAffiliateStats(d.clone()).process(inviter.clone()).await.unwrap();
    assert_eq!((overview.stats.pending.minor(), overview.stats.available.minor()), (300, 0));
    assert_eq!(overview.next_release_at, Some(Timestamp::from_millis(PAST + DAY)));
    assert!(matches!(withdraw(&d, &inviter, 1, "early").await, Err(MarketError::InsufficientBalance)));

    // One millisecond before: still pending. At the exact moment: available, and withdrawable
    // at once although no catch-up has run (the stored figures still say pending).
    clock.set(PAST + DAY - 1);
    let s = GetAffiliateStats(d.clone()).process(inviter.clone()).await.unwrap().stats;
    assert_eq!((s.pending.minor(), s.available.minor()), (300, 0));
    clock.set(PAST + DAY);
    let s = GetAffiliateStats(d.clone()).process(inviter.clone()).await.unwrap().stats;
    assert_eq!((s.pending.minor(), s.available.minor()), (200, 100));
    assert_eq!(figures(&d.store.get_stats(&inviter).await.unwrap()), (300, 300, 0, 0, 0), "stored: still pending");
    let w = withdraw(&d, &inviter, 60, "now").await.unwrap();
    assert_eq!(w.record.available_after.minor(), 40);
    // The withdrawal folded the matured reward into the stored figures in its transaction.
    assert_eq!(figures(&assert_money_invariants(&d.store, &inviter).await), (300, 200, 40, 60, 0));

    // The scheduled catch-up stores the second one once it is due, without any user action.
    clock.set(PAST + DAY + 1000);
    let report = CatchUpMaturity(d.clone()).process(()).await.unwrap();
    assert!(report.users >= 1 && report.matured >= 1, "{report:?}");
    assert_eq!(figures(&assert_money_invariants(&d.store, &inviter).await), (300, 0, 240, 60, 0));
    assert_eq!(CatchUpMaturity(d.clone()).process(()).await.unwrap().matured, 0, "nothing twice");
    let trail = d.store.list_audit(inviter.as_str(), None, 100).await.unwrap().items;
    assert_eq!(trail.iter().filter(|r| r.action == AuditAction::RewardsMatured).count(), 2, "one record per maturation batch");
    assert!(trail.iter().any(|r| r.action == AuditAction::RewardsMatured && r.actor.to_string() == "system:market/maturation"));
}

/// The overview's one read of pending commissions: the due ones and the next release; when
/// due ones fill its page, the next release still comes from past them.
#[tokio::test]
async fn pending_commissions_give_the_due_ones_and_the_next_release() {
    // 100 days before `PAST`: outside the window of the catch-up the test above runs.
    let start = PAST - 100 * DAY;
    let clock = ManualClock::at(start);
    let d = deps(1, clock.clone()).await;
    let inviter = user("pending");
    let (buyer, _) = referred_user(&d, &inviter).await;
    for i in 0..3 {
        clock.set(start + i * 1000);
        assert_eq!(pay(&d, &buyer, &order(), 1000).await, RewardOutcome::Applied);
    }
    let at = |ms: i64| Timestamp::from_millis(start + ms);
    let read = |now: i64, limit: usize| {
        let (d, inviter) = (d.clone(), inviter.clone());
        async move { d.store.pending_commissions(&inviter, at(now), limit).await.unwrap() }
    };
    let p = read(0, 10).await;
    assert_eq!((p.due.len(), p.next_release), (0, Some(at(DAY))));
    let p = read(DAY + 1000, 10).await;
    assert_eq!((p.due.len(), p.next_release), (2, Some(at(DAY + 2000))));
    assert!(p.due[0].order_id != p.due[1].order_id);
    let p = read(DAY + 1000, 1).await;
    assert_eq!((p.due.len(), p.next_release), (1, Some(at(DAY + 2000))), "past the limit");
    let p = read(DAY + 2000, 10).await;
    assert_eq!((p.due.len(), p.next_release), (3, None));
    // The same figures the overview shows.
    clock.set(start + DAY + 1000);
    let overview = GetAffiliateStats(d.clone()).process(inviter.clone()).await.unwrap();
    assert_eq!((overview.stats.pending.minor(), overview.stats.available.minor()), (100, 200));
    assert_eq!(overview.next_release_at, Some(at(DAY + 2000)));
}

/// Runs the same events in both arrival orders (refunds before / after the reward), each
/// delivered three times, and returns the inviter's figures of each run.
async fn both_orders(holding: u32, amount: i64, refunds: &[(&str, i64)]) -> [(i64, i64, i64, i64, i64); 2] {
    let mut out = [(0, 0, 0, 0, 0); 2];
    for (run, refunds_first) in [false, true].into_iter().enumerate() {
        let d = deps(holding, ManualClock::starting_now()).await;
        let inviter = user("inv");
        let (buyer, _) = referred_user(&d, &inviter).await;
        let o = order();
        if refunds_first {
            for (id, a) in refunds {
                for _ in 0..3 {
                    let r = refund(&d, &buyer, &o, id, *a).await.unwrap();
                    assert!(matches!(r, RefundResult::RecordedBeforeReward | RefundResult::Duplicate), "{r:?}");
                }
            }
        }
        for i in 0..3 {
            let outcome = pay(&d, &buyer, &o, amount).await;
            assert_eq!(outcome, if i == 0 { RewardOutcome::Applied } else { RewardOutcome::Duplicate });
        }
        if !refunds_first {
            for (id, a) in refunds {
                let mut applied = 0;
                for _ in 0..3 {
                    match refund(&d, &buyer, &o, id, *a).await.unwrap() {
                        RefundResult::Applied { .. } => applied += 1,
                        RefundResult::Duplicate => {}
                        other => panic!("{other:?}"),
                    }
                }
                assert_eq!(applied, 1, "each refund applies once");
            }
        }
        let stats = assert_money_invariants(&d.store, &inviter).await;
        assert_eq!(d.store.get_policy(&buyer).await.unwrap().unwrap().rewards_triggered, 1, "a refunded order still counts");
        out[run] = figures(&stats);
    }
    assert_eq!(out[0], out[1], "same result in either order of arrival");
    out
}

#[tokio::test]
async fn a_refund_voids_a_pending_reward_in_either_order() {
    // 1000 at 10 %, 400 refunded: floor(600 × 10 %) = 60 stays pending, 40 voided.
    let [r, _] = both_orders(1, 1000, &[("r1", 400)]).await;
    assert_eq!(r, (100, 60, 0, 0, 40));
}

#[tokio::test]
async fn a_refund_claws_back_an_available_reward_in_either_order() {
    let [r, _] = both_orders(0, 999, &[("r1", 9)]).await;
    assert_eq!(r, (99, 0, rate(990), 0, 99 - rate(990)));
}

#[tokio::test]
async fn partial_refunds_summing_to_the_order_reverse_all_of_it() {
    let [r, _] = both_orders(0, 1001, &[("p1", 333), ("p2", 334), ("p3", 334)]).await;
    assert_eq!(r, (100, 0, 0, 0, 100));
}

#[tokio::test]
async fn a_refund_of_a_withdrawn_reward_makes_available_negative_until_rewards_pay_it() {
    let d = deps(0, ManualClock::starting_now()).await;
    let inviter = user("debt");
    let (buyer, _) = referred_user(&d, &inviter).await;
    let o = order();
    pay(&d, &buyer, &o, 1000).await;
    withdraw(&d, &inviter, 100, "all").await.unwrap();
    for _ in 0..3 {
        refund(&d, &buyer, &o, "chargeback-1", 1000).await.unwrap();
    }
    let s = assert_money_invariants(&d.store, &inviter).await;
    assert_eq!(figures(&s), (100, 0, -100, 100, 100));
    assert!(matches!(withdraw(&d, &inviter, 1, "while-negative").await, Err(MarketError::InsufficientBalance)));
    // The next rewards pay the debt off first.
    pay(&d, &buyer, &order(), 1500).await;
    let s = assert_money_invariants(&d.store, &inviter).await;
    assert_eq!(s.available.minor(), 50);
    assert_eq!(withdraw(&d, &inviter, 50, "after").await.unwrap().record.available_after.minor(), 0);
    let history = d.store.history(&inviter).await.unwrap();
    assert!(history.iter().any(|h| matches!(h, HistoryItem::Entry(LedgerEntry::Reversal { amount, from: market_domain::model::Bucket::Available, .. }) if amount.minor() == 100)));
}

#[tokio::test]
async fn an_over_refund_is_rejected_audited_and_changes_nothing() {
    let d = deps(0, ManualClock::starting_now()).await;
    let inviter = user("over");
    let (buyer, _) = referred_user(&d, &inviter).await;
    let o = order();
    pay(&d, &buyer, &o, 1000).await;
    refund(&d, &buyer, &o, "r1", 600).await.unwrap();
    let before = figures(&d.store.get_stats(&inviter).await.unwrap());
    for _ in 0..3 {
        let e = refund(&d, &buyer, &o, "r2", 401).await.unwrap_err();
        assert!(matches!(e, MarketError::InvalidArgument(_)), "to the DLQ path: {e:?}");
    }
    assert_eq!(figures(&assert_money_invariants(&d.store, &inviter).await), before);
    let trail = d.store.list_audit(inviter.as_str(), None, 100).await.unwrap().items;
    let rejected: Vec<_> = trail.iter().filter(|r| r.action == AuditAction::RefundRejected).collect();
    assert_eq!(rejected.len(), 1, "one record however often it is delivered");
    assert_eq!(rejected[0].details["reason"], "over_refund");
    assert_eq!(rejected[0].actor.to_string(), "system:shop/order.refunded");
    // What is left can still be refunded.
    assert!(matches!(refund(&d, &buyer, &o, "r3", 400).await.unwrap(), RefundResult::Applied { .. }));
    assert_eq!(d.store.get_stats(&inviter).await.unwrap().available.minor(), 0);
}

#[tokio::test]
async fn refunds_of_unknown_orders_wait_for_their_reward_or_are_no_ops() {
    let d = deps(0, ManualClock::starting_now()).await;
    // A buyer without inviter: a no-op, recorded on the buyer's trail.
    let loner = user("loner");
    market_domain::processors::RegisterUser(d.clone())
        .process(UserRegistered { event_id: event_id(), user: loner.clone(), invite_code: None, occurred_at: d.clock.now() })
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(refund(&d, &loner, &order(), "r", 100).await.unwrap(), RefundResult::NoInviter);
    }
    let trail = d.store.list_audit(loner.as_str(), None, 10).await.unwrap().items;
    assert!(trail.iter().any(|r| r.action == AuditAction::RefundRejected && r.details["reason"] == "no_inviter"));
    // A buyer with an inviter, the refund first: kept and applied when the reward arrives.
    let inviter = user("early");
    let (buyer, _) = referred_user(&d, &inviter).await;
    let o = order();
    assert_eq!(refund(&d, &buyer, &o, "r", 500).await.unwrap(), RefundResult::RecordedBeforeReward);
    assert_eq!(figures(&d.store.get_stats(&inviter).await.unwrap()).0, 0, "nothing credited yet");
    pay(&d, &buyer, &o, 2000).await;
    assert_eq!(figures(&assert_money_invariants(&d.store, &inviter).await), (200, 0, 150, 0, 50));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_refunds_and_withdrawals_racing_for_one_inviter_keep_every_invariant() {
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::env::var("SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let d = deps(0, ManualClock::starting_now()).await;
    let inviter = user("race");
    let mut buyers = Vec::new();
    for _ in 0..4 {
        buyers.push(referred_user(&d, &inviter).await.0);
    }
    // 40 orders; refunds that never exceed their order (so the expected commission of each
    // order is known); each event delivered 1-3 times; 30 withdrawals with repeated keys.
    let mut expected = std::collections::HashMap::new();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let buyer = buyers[i % buyers.len()].clone();
        let o = order();
        // At 10 % an order under 10 minor units earns nothing and is declined (ZeroReward).
        let amount = rng.gen_range(10..5_000i64);
        let mut left = amount;
        let mut refunds = Vec::new();
        for r in 0..rng.gen_range(0..3) {
            let part = rng.gen_range(0..=left);
            if part > 0 {
                left -= part;
                refunds.push((format!("r{r}"), part));
            }
        }
        expected.insert(o.to_string(), rate(left));
        for _ in 0..rng.gen_range(1..=3) {
            let (d, buyer, o) = (d.clone(), buyer.clone(), o.clone());
            tasks.push(tokio::spawn(async move {
                pay(&d, &buyer, &o, amount).await;
            }));
        }
        for (id, part) in refunds {
            for _ in 0..rng.gen_range(1..=3) {
                let (d, buyer, o, id) = (d.clone(), buyer.clone(), o.clone(), id.clone());
                tasks.push(tokio::spawn(async move {
                    refund(&d, &buyer, &o, &id, part).await.expect("refund applies");
                }));
            }
        }
    }
    for i in 0..30 {
        let (d, inviter, amount, key) = (d.clone(), inviter.clone(), rng.gen_range(1..200), format!("w{}", i % 20));
        tasks.push(tokio::spawn(async move {
            match withdraw(&d, &inviter, amount, &key).await {
                Ok(_) | Err(MarketError::InsufficientBalance | MarketError::IdempotencyConflict) => {}
                Err(e) => panic!("withdrawal: {e:?}"),
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stats = assert_money_invariants(&d.store, &inviter).await;
    let history = d.store.history(&inviter).await.unwrap();
    let mut seen = 0;
    for h in &history {
        if let HistoryItem::Commission(c) = h {
            assert_eq!(c.amount().minor(), expected[c.order_id.as_str()], "order {} (seed {seed})", c.order_id);
            seen += 1;
        }
    }
    assert_eq!(seen, 40, "one reward per order");
    let remaining: i64 = expected.values().sum();
    assert_eq!(stats.available.minor() + stats.withdrawn_total.minor(), remaining, "money = what the orders still earn (seed {seed})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_adjustments_and_reversals_happen_once_per_key_and_are_audited() {
    let d = deps(1, ManualClock::starting_now()).await;
    let (admin, target) = (user("admin"), user("target"));
    let adjust = |amount: i64, key: &str, allow_negative: bool| {
        let d = d.clone();
        let req = AdminRequest {
            admin: admin.clone(),
            request_id: format!("req-{key}"),
            body: Adjustment {
                user: target.clone(),
                amount: Money::from_minor(amount),
                reason: "goodwill".into(),
                idempotency_key: IdempotencyKey::parse(key).unwrap(),
                allow_negative,
            },
        };
        async move { AdjustBalance(d).process(req).await }
    };
    let results = futures::future::join_all((0..8).map(|_| adjust(500, "credit-1", false))).await;
    assert_eq!(results.iter().filter(|r| matches!(r, Ok(a) if !a.replayed)).count(), 1, "exactly one applied");
    assert!(results.iter().all(|r| r.is_ok()), "the others replay the first");
    assert_eq!(figures(&assert_money_invariants(&d.store, &target).await), (500, 0, 500, 0, 0));
    assert!(matches!(adjust(-600, "debit-1", false).await, Err(MarketError::InsufficientBalance)));
    assert!(matches!(adjust(-400, "credit-1", false).await, Err(MarketError::IdempotencyConflict)));
    let debit = adjust(-600, "debit-2", true).await.unwrap();
    assert!(matches!(debit.entry, LedgerEntry::Adjustment { available_after, .. } if available_after.minor() == -100));
    assert_eq!(figures(&assert_money_invariants(&d.store, &target).await), (500, 0, -100, 0, 600));

    // ReverseReward: voids the rest of a pending reward once per key.
    let (buyer, _) = referred_user(&d, &target).await;
    let o = order();
    pay(&d, &buyer, &o, 3000).await;
    refund(&d, &buyer, &o, "r1", 1000).await.unwrap();
    let reverse = |key: &str| {
        let req = AdminRequest {
            admin: admin.clone(),
            request_id: format!("req-{key}"),
            body: ReverseRequest { user: target.clone(), order_id: o.clone(), note: "fraud ring".into(), idempotency_key: IdempotencyKey::parse(key).unwrap() },
        };
        let d = d.clone();
        async move { ReverseReward(d).process(req).await }
    };
    let results = futures::future::join_all((0..5).map(|_| reverse("void-1"))).await;
    assert!(results.iter().all(|r| matches!(r, Ok(v) if v.reversed.minor() == 200)), "{:?}", results.iter().map(|r| r.as_ref().map(|v| v.reversed)).collect::<Vec<_>>());
    assert_eq!(results.iter().filter(|r| matches!(r, Ok(v) if !v.replayed)).count(), 1);
    assert!(matches!(reverse("void-2").await, Err(MarketError::NothingToReverse)));
    let c = d.store.get_commission(&target, &o).await.unwrap().unwrap();
    assert_eq!(c.status(d.clock.now()), Some(CommissionStatus::Reversed));
    assert_eq!(figures(&assert_money_invariants(&d.store, &target).await), (800, 0, -100, 0, 900));
    let unknown = AdminRequest {
        admin: admin.clone(),
        request_id: "x".into(),
        body: ReverseRequest { user: target.clone(), order_id: order(), note: "x".into(), idempotency_key: IdempotencyKey::parse("k").unwrap() },
    };
    assert!(matches!(ReverseReward(d.clone()).process(unknown).await, Err(MarketError::NotFound)));
    let trail = d.store.list_audit(target.as_str(), None, 100).await.unwrap().items;
    let by_admin = format!("admin:{admin}");
    assert_eq!(trail.iter().filter(|r| r.action == AuditAction::BalanceAdjusted && r.actor.to_string() == by_admin).count(), 2);
    assert_eq!(trail.iter().filter(|r| r.action == AuditAction::RewardReversed && r.actor.to_string() == by_admin).count(), 1);
}

/// A popular affiliate's withdrawal is not starved by its own reward stream: rewards keep
/// landing on its stats item (8 writers, until the withdrawals are done or 3 000 rewards),
/// and each of 5 withdrawals succeeds meanwhile. With lifecycle events on (the default) the
/// rewards and the withdrawals also take turns on the affiliate's event sequence: a reward
/// that gives up (`Contention`) is delivered again, as SQS would. (Before the debit became a conditional
/// `ADD`, every reward between a withdrawal's read and write cancelled it: one withdrawal
/// in a 38 s stream.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn withdrawals_are_not_starved_by_a_stream_of_rewards() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    const CAP: usize = 3000;
    // A day ahead of the rewards' event times: each is available at once.
    let clock = ManualClock::starting_now();
    clock.advance_days(1);
    let d = deps(0, clock).await;
    let inviter = user("hot");
    let (buyer, _) = referred_user(&d, &inviter).await;
    let first = market_tests::reward_event(&buyer, &inviter, 100, market_domain::policy::TriggerLimit::Unlimited);
    assert_eq!(ApplyReward(d.clone()).process(first).await.unwrap(), RewardOutcome::Applied);
    let (done, applied) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let (d, buyer, inviter, done, applied) = (d.clone(), buyer.clone(), inviter.clone(), done.clone(), applied.clone());
            tokio::spawn(async move {
                while !done.load(Ordering::SeqCst) && applied.load(Ordering::SeqCst) < CAP {
                    let ev = market_tests::reward_event(&buyer, &inviter, 10, market_domain::policy::TriggerLimit::Unlimited);
                    loop {
                        match ApplyReward(d.clone()).process(ev.clone()).await {
                            Err(MarketError::Contention) => continue,
                            outcome => {
                                assert!(matches!(outcome, Ok(RewardOutcome::Applied | RewardOutcome::Replayed)), "{outcome:?}");
                                break;
                            }
                        }
                    }
                    applied.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    // Let the stream get going first.
    while applied.load(Ordering::SeqCst) < 20 {
        tokio::task::yield_now().await;
    }
    for i in 0..5 {
        withdraw(&d, &inviter, 1, &format!("hot-{i}")).await.expect("a withdrawal during the stream succeeds");
    }
    let during = applied.load(Ordering::SeqCst);
    done.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    assert!(during < CAP, "the withdrawals finished while rewards were still landing ({during} applied)");
    let stats = assert_money_invariants(&d.store, &inviter).await;
    assert_eq!(stats.withdrawn_total.minor(), 5);
}
