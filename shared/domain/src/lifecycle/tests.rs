//! The lifecycle rules: examples, and properties over arbitrary sequences of steps.
use super::*;
use proptest::prelude::*;

fn id<T: TryFrom<String>>(s: &str) -> T
where
    T::Error: std::fmt::Debug,
{
    T::try_from(s.to_owned()).unwrap()
}

fn earned(amount: i64, bps: u32, matures_at: i64) -> Earned {
    Earned {
        order_amount: Money::from_minor(amount),
        currency: Currency::parse("USD").unwrap(),
        commission_bps: Bps::new(bps).unwrap(),
        reward: commission(Money::from_minor(amount), Bps::new(bps).unwrap()).unwrap(),
        earned_at: Timestamp::from_millis(0),
        matures_at: Timestamp::from_millis(matures_at),
        source_event_id: id("ev"),
        level: 1,
        level_earners: Vec::new(),
        hold: None,
        terms: None,
    }
}

fn refund(n: u32, amount: i64) -> Refund {
    Refund { refund_id: id(&format!("r{n}")), amount: Money::from_minor(amount), reason: RefundReason::Refund, at: Timestamp::from_millis(1), event_id: id("e") }
}

fn fresh() -> Commission {
    Commission::new(id("inviter"), id("o1"), id("buyer"))
}

const NOW: Timestamp = Timestamp::from_millis(10);

#[test]
fn an_ancestor_level_earns_its_own_floor_net_of_the_same_refunds() {
    // Level 2 at 5 %: 9 999 → 499; a refund of 1 999 recorded before the reward (inherited
    // from level 1) leaves floor(8 000 × 5 %) = 400, the difference reversed once.
    let mut level2 = Commission::new(id("grand"), id("o1"), id("buyer"));
    level2.refunds = vec![refund(1, 1999)];
    let e = Earned { level: 2, ..earned(9999, 500, 100) };
    let c = level2.earn(e, NOW).unwrap();
    assert_eq!(c.after.amount(), Money::from_minor(400));
    assert_eq!(c.stats, StatsDelta { pending: 400, total_earned: 499, reversed_total: 99, rewarded_orders: 1, earned_by_level: [0, 499, 0], ..Default::default() });
    assert!(matches!(&c.entries[0], LedgerEntry::Reward { level: Some(2), .. }), "{:?}", c.entries[0]);
    // Another refund after the reward: its own floor again.
    let r = c.after.refund(refund(2, 4000), NOW).unwrap();
    assert_eq!(r.after.amount(), Money::from_minor(200));
    assert_eq!(r.stats.reversed_total, 200);
}

fn review(approved: bool) -> Review {
    Review { approved, note: "checked".into(), by: "admin:a".into(), at: NOW }
}

#[test]
fn a_held_reward_waits_for_review_then_is_approved_once() {
    let held = Earned { hold: Some(HoldReason::FastFirstOrder), ..earned(1000, 1000, 100) };
    let c = fresh().earn(held, Timestamp::from_millis(200)).unwrap();
    assert_eq!(c.stats, StatsDelta { held: 100, total_earned: 100, rewarded_orders: 1, earned_by_level: [100, 0, 0], ..Default::default() });
    let c1 = c.after;
    // Past its holding period it still neither matures nor counts as pending.
    assert_eq!(c1.status(Timestamp::from_millis(500)), Some(CommissionStatus::HeldForReview));
    assert_eq!(c1.mature(Timestamp::from_millis(500)), Err(Refused::NotDue));
    assert_eq!(c1.pending_until(), None);
    assert!(c1.awaits_review());
    // A refund while held shrinks the held amount.
    let r = c1.refund(refund(1, 500), NOW).unwrap();
    assert_eq!(r.stats, StatsDelta { held: -50, reversed_total: 50, ..Default::default() });
    assert!(matches!(&r.entries[0], LedgerEntry::Reversal { from: Bucket::Held, .. }));
    // Approved before its holding period ends: pending, with its maturity back in the index.
    let a = r.after.review(review(true), Timestamp::from_millis(50)).unwrap();
    assert_eq!(a.stats, StatsDelta { held: -50, pending: 50, ..Default::default() });
    assert!(a.entries.is_empty());
    assert_eq!(a.after.pending_until(), Some(Timestamp::from_millis(100)));
    assert_eq!(a.after.status(Timestamp::from_millis(50)), Some(CommissionStatus::PartiallyReversed));
    assert_eq!(a.after.review(review(false), NOW), Err(Refused::AlreadyReviewed { approved: true }));
    // Approved after it: available at once.
    let late = fresh().earn(Earned { hold: Some(HoldReason::ReferralVelocity), ..earned(1000, 1000, 100) }, NOW).unwrap().after;
    let a = late.review(review(true), Timestamp::from_millis(100)).unwrap();
    assert_eq!(a.stats, StatsDelta { held: -100, available: 100, ..Default::default() });
    assert!(a.after.matured);
}

#[test]
fn a_rejected_review_reverses_what_is_held_once() {
    let held = fresh().earn(Earned { hold: Some(HoldReason::ReferralVelocity), ..earned(1000, 1000, 100) }, NOW).unwrap().after;
    let r = held.review(review(false), NOW).unwrap();
    assert_eq!(r.stats, StatsDelta { held: -100, reversed_total: 100, ..Default::default() });
    assert!(matches!(&r.entries[..], [LedgerEntry::Reversal { cause: ReversalCause::ReviewRejected, from: Bucket::Held, .. }]));
    assert_eq!(r.after.amount(), Money::ZERO);
    assert_eq!(r.after.status(NOW), Some(CommissionStatus::Reversed));
    assert_eq!(r.after.review(review(false), NOW), Err(Refused::AlreadyReviewed { approved: false }));
    // Never held: nothing to review.
    let plain = fresh().earn(earned(1000, 1000, 100), NOW).unwrap().after;
    assert_eq!(plain.review(review(true), NOW), Err(Refused::NotHeld));
}

#[test]
fn pending_then_available_at_the_exact_moment() {
    let c = fresh().earn(earned(1000, 1000, 100), NOW).unwrap();
    assert_eq!(c.stats, StatsDelta { pending: 100, total_earned: 100, rewarded_orders: 1, earned_by_level: [100, 0, 0], ..Default::default() });
    let c1 = c.after;
    assert_eq!(c1.status(Timestamp::from_millis(99)), Some(CommissionStatus::Pending));
    assert_eq!(c1.status(Timestamp::from_millis(100)), Some(CommissionStatus::Available));
    assert_eq!(c1.mature(Timestamp::from_millis(99)), Err(Refused::NotDue));
    let m = c1.mature(Timestamp::from_millis(100)).unwrap();
    assert_eq!(m.stats, StatsDelta { pending: -100, available: 100, ..Default::default() });
    assert_eq!(m.after.mature(Timestamp::from_millis(200)), Err(Refused::NotDue), "once");
    assert_eq!(m.after.pending_until(), None);
}

#[test]
fn zero_holding_is_available_at_once() {
    let c = fresh().earn(earned(1000, 1000, 0), NOW).unwrap();
    assert_eq!(c.stats.available, 100);
    assert!(c.after.matured);
    assert_eq!(c.after.pending_until(), None);
}

#[test]
fn partial_refunds_reverse_the_exact_difference() {
    // 999 at 10 %: 99; after 1 refunded: floor(998 × 0.1) = 99 (nothing); after 9: 99 -> 98.
    let c = fresh().earn(earned(999, 1000, 0), NOW).unwrap().after;
    let a = c.refund(refund(1, 1), NOW).unwrap();
    assert_eq!((a.stats.reversed_total, a.entries.len()), (0, 0));
    let b = a.after.refund(refund(2, 9), NOW).unwrap();
    assert_eq!(b.stats, StatsDelta { available: -1, reversed_total: 1, ..Default::default() });
    assert_eq!(b.after.amount().minor(), 98);
    assert_eq!(b.after.refund(refund(2, 9), NOW), Err(Refused::Duplicate));
    assert_eq!(b.after.refund(refund(3, 990), NOW), Err(Refused::OverRefund { left: Money::from_minor(989) }));
    let all = b.after.refund(refund(3, 989), NOW).unwrap();
    assert_eq!(all.after.amount(), Money::ZERO);
    assert_eq!(all.after.status(NOW), Some(CommissionStatus::Reversed));
}

#[test]
fn void_takes_the_rest_once() {
    let c = fresh().earn(earned(1000, 1000, 100), NOW).unwrap().after;
    let c = c.refund(refund(1, 300), NOW).unwrap().after;
    let v = VoidRequest { reversal_id: id("rev_1"), note: "fraud".into(), by: "admin:root".into() };
    let voided = c.void(v.clone(), NOW).unwrap();
    assert_eq!(voided.stats, StatsDelta { pending: -70, reversed_total: 70, ..Default::default() });
    assert_eq!(voided.after.void(v, NOW), Err(Refused::NothingLeft));
    // A later refund is recorded once and reverses nothing more.
    let later = voided.after.refund(refund(2, 100), NOW).unwrap();
    assert!(later.stats.is_zero());
    assert_eq!(fresh().void(VoidRequest { reversal_id: id("x"), note: String::new(), by: String::new() }, NOW), Err(Refused::NotEarned));
}

#[derive(Debug, Clone)]
enum Step {
    Earn,
    Refund(u32, i64),
    Mature,
    Review(bool),
}

/// Applies steps, skipping refused ones (as the processors do); returns the final state
/// and the summed stats deltas.
fn run(steps: &[Step], e: &Earned) -> (Commission, StatsDelta, Vec<LedgerEntry>) {
    let (mut c, mut total, mut entries) = (fresh(), StatsDelta::default(), Vec::new());
    for s in steps {
        let r = match s {
            Step::Earn => c.earn(e.clone(), NOW),
            Step::Refund(n, a) => c.refund(refund(*n, *a), NOW),
            Step::Mature => c.mature(Timestamp::from_millis(1_000)),
            Step::Review(approved) => c.review(review(*approved), NOW),
        };
        if let Ok(ch) = r {
            total = total.plus(ch.stats).unwrap();
            entries.extend(ch.entries);
            c = ch.after;
        }
    }
    (c, total, entries)
}

/// Refunds of the drawn parts that fit the order (the over-refund rule is tested above),
/// and what is left of it after them.
fn fitting_refunds(amount: i64, parts: &[i64]) -> (Vec<Step>, i64) {
    let mut left = amount;
    let refunds = parts
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let p = (*p).min(left);
            left -= p;
            (p > 0).then_some(Step::Refund(i as u32, p))
        })
        .collect();
    (refunds, left)
}

fn stats_sum_invariant(total: StatsDelta) -> bool {
    total.total_earned == total.pending + total.available + total.held + total.reversed_total
}

proptest! {
    /// Refunds before or after the reward, redelivered or not: the same commission, the
    /// same statistics and the same reversal amounts per refund.
    #[test]
    fn order_of_arrival_does_not_matter(
        amount in 1i64..1_000_000, bps in 0u32..=10_000,
        parts in proptest::collection::vec(1i64..400_000, 0..5),
        earn_at in 0usize..6, seed in any::<u64>(),
    ) {
        let e = earned(amount, bps, 0);
        let (refunds, left) = fitting_refunds(amount, &parts);
        let mut reference = vec![Step::Earn];
        reference.extend(refunds.iter().cloned());
        let mut shuffled = refunds.clone();
        // A deterministic shuffle of the refunds and a redelivery of each.
        let n = shuffled.len();
        for i in 0..n { shuffled.swap(i, (seed as usize).wrapping_add(i * 7) % n.max(1)); }
        let mut steps: Vec<Step> = shuffled.iter().flat_map(|s| [s.clone(), s.clone()]).collect();
        steps.insert(earn_at.min(steps.len()), Step::Earn);
        steps.push(Step::Earn);
        let (a, sa, ea) = run(&reference, &e);
        let (b, sb, eb) = run(&steps, &e);
        prop_assert_eq!(a.amount(), b.amount());
        let rest = commission(Money::from_minor(amount - (amount - left)), Bps::new(bps).unwrap()).unwrap();
        prop_assert_eq!(a.amount(), rest, "floor((A - R) x bps / 10000)");
        prop_assert_eq!(sa, sb);
        prop_assert!(stats_sum_invariant(sb));
        let reversed = |es: &[LedgerEntry]| es.iter().filter_map(|x| match x { LedgerEntry::Reversal { amount, .. } => Some(amount.minor()), _ => None }).sum::<i64>();
        prop_assert_eq!(reversed(&ea), reversed(&eb));
        prop_assert_eq!(reversed(&eb), sb.reversed_total);
    }

    /// Whatever happens (held or not, reviewed either way), earned = pending + available +
    /// held + reversed, the whole rest sits in exactly one bucket, and a review is made once.
    #[test]
    fn stats_always_add_up(amount in 1i64..1_000_000, bps in 0u32..=10_000, on_hold in any::<bool>(), ops in proptest::collection::vec((0u8..5, 0i64..500_000), 0..12)) {
        let hold = on_hold.then_some(HoldReason::ReferralVelocity);
        let e = Earned { hold, ..earned(amount, bps, 500) };
        let steps: Vec<Step> = ops.iter().enumerate().map(|(i, (k, a))| match k {
            0 => Step::Earn, 1 => Step::Refund(i as u32, *a), 2 => Step::Mature, 3 => Step::Review(true), _ => Step::Review(false),
        }).collect();
        let (c, total, _) = run(&steps, &e);
        prop_assert!(stats_sum_invariant(total));
        if c.earned.is_some() {
            let bucket = match c.bucket() { Bucket::Held => total.held, Bucket::Available => total.available, Bucket::Pending => total.pending };
            prop_assert_eq!(bucket, c.amount().minor());
            prop_assert_eq!(total.pending + total.available + total.held, c.amount().minor());
            prop_assert!(total.pending >= 0 && total.available >= 0 && total.held >= 0);
            if !on_hold {
                prop_assert!(c.review.is_none(), "only a held reward is reviewed");
            }
        }
    }
}

#[test]
fn only_a_change_that_only_grows_is_a_credit() {
    use crate::lifecycle::StatsDelta;
    assert!(StatsDelta { pending: 100, total_earned: 100, rewarded_orders: 1, ..StatsDelta::default() }.is_credit_only());
    assert!(!StatsDelta::default().is_credit_only(), "nothing to credit");
    assert!(!StatsDelta { available: -5, reversed_total: 5, ..StatsDelta::default() }.is_credit_only());
}

#[test]
fn statistics_kept_apart_add_up() {
    use crate::ids::UserId;
    use crate::model::AffiliateStats;
    use crate::money::Money;
    let user = UserId::parse("u").unwrap();
    let mut main = AffiliateStats::empty(user.clone());
    main.available = Money::from_minor(-30);
    main.balance_changes = 2;
    let mut shard = AffiliateStats::empty(user);
    shard.available = Money::from_minor(100);
    shard.total_earned = Money::from_minor(100);
    shard.rewarded_orders = 1;
    main.absorb(&shard).unwrap();
    main.absorb(&shard).unwrap();
    assert_eq!((main.available.minor(), main.credited_apart.minor(), main.total_earned.minor()), (170, 200, 200));
    assert_eq!((main.rewarded_orders, main.balance_changes), (2, 2));
}

/// A reward earned under a group's rule: the sale part as flat or percentage, capped, with
/// a bounty (what `RewardEvent::earned` builds: `reward` = its gross).
fn earned_under(amount: i64, bps: u32, flat: Option<i64>, cap: Option<i64>, bounty: Option<i64>) -> Earned {
    let terms = crate::group::EarnedTerms {
        group: crate::group::GroupName::parse("g").unwrap(),
        version: 2,
        modifier: None,
        own_rate: false,
        flat: flat.map(|f| Money::from_minor(f.min(amount))),
        capped_at: cap.map(Money::from_minor),
        bounty: bounty.map(Money::from_minor),
    };
    let mut e = Earned { terms: Some(Box::new(terms)), ..earned(amount, bps, 0) };
    e.reward = e.gross().unwrap();
    e
}

#[test]
fn a_flat_reward_and_a_bounty_are_kept_until_a_full_refund() {
    let e = earned_under(10_000, 0, Some(500), None, Some(300));
    assert_eq!(e.reward.minor(), 800);
    let (c, total, _) = run(&[Step::Earn, Step::Refund(1, 9_999)], &e);
    assert_eq!((c.amount().minor(), total.reversed_total), (800, 0), "a partial refund leaves a flat reward whole");
    let (c, total, _) = run(&[Step::Earn, Step::Refund(1, 9_999), Step::Refund(2, 1)], &e);
    assert_eq!((c.amount().minor(), total.reversed_total), (0, 800), "the full refund voids it and the bounty");
    // A capped percentage: min(floor((A − R) × bps), what the cap allowed).
    let e = earned_under(10_000, 2_000, None, Some(1_500), None);
    assert_eq!(e.reward.minor(), 1_500);
    let (c, _, _) = run(&[Step::Refund(1, 2_000), Step::Earn], &e);
    assert_eq!(c.amount().minor(), 1_500, "floor(8 000 × 20 %) = 1 600, capped at 1 500");
    let (c, _, _) = run(&[Step::Refund(1, 5_000), Step::Earn], &e);
    assert_eq!(c.amount().minor(), 1_000);
    // A reward the cap took to 0 is worth 0 and is not shown as reversed.
    let e = earned_under(10_000, 2_000, None, Some(0), None);
    let (c, _, _) = run(&[Step::Earn], &e);
    assert_eq!(c.status(NOW), Some(CommissionStatus::Available));
}

proptest! {
    /// Under any rule kind (flat or percentage, capped or not, with a bounty or not),
    /// refunds before or after the reward give the same commission and statistics, and the
    /// commission is the rule's formula on A − R.
    #[test]
    fn every_rule_kind_follows_refunds_in_any_order(
        amount in 1i64..1_000_000, bps in 0u32..=10_000, flat in proptest::option::of(1i64..2_000_000),
        cap in proptest::option::of(0i64..100_000), bounty in proptest::option::of(1i64..10_000),
        parts in proptest::collection::vec(1i64..400_000, 0..5), earn_at in 0usize..6,
    ) {
        let e = earned_under(amount, bps, flat, cap, bounty);
        let (refunds, left) = fitting_refunds(amount, &parts);
        let mut reference = vec![Step::Earn];
        reference.extend(refunds.iter().cloned());
        let mut steps: Vec<Step> = refunds.iter().rev().flat_map(|s| [s.clone(), s.clone()]).collect();
        steps.insert(earn_at.min(steps.len()), Step::Earn);
        let (a, sa, _) = run(&reference, &e);
        let (b, sb, _) = run(&steps, &e);
        prop_assert_eq!(a.amount(), b.amount());
        prop_assert_eq!(sa, sb);
        prop_assert!(stats_sum_invariant(sb));
        let sale = match flat {
            Some(f) if left > 0 => f.min(amount),
            Some(_) => 0,
            None => commission(Money::from_minor(left), Bps::new(bps).unwrap()).unwrap().minor(),
        };
        let sale = cap.map_or(sale, |c| sale.min(c));
        let expected = sale + if left > 0 { bounty.unwrap_or(0) } else { 0 };
        prop_assert_eq!(b.amount().minor(), expected);
        prop_assert!(b.amount() <= e.reward);
    }
}
