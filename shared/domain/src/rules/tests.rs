use proptest::prelude::*;

use super::*;
use crate::group::{Bounty, BountyTrigger};
use crate::ids::{EventId, OrderId, ProductId, UserId};
use crate::inbound::OrderKind;
use crate::config::MarketConfig as Config;

const DAY: i64 = Timestamp::MS_PER_DAY;
/// 2026-01-31T12:00:00Z
const JAN31: i64 = 1_769_860_800_000;

fn group(rules: RewardRules) -> RewardGroup {
    RewardGroup { name: GroupName::parse("g").unwrap(), version: 3, rules, description: String::new(), updated_at: None, updated_by: None }
}

fn pct(bps: u32) -> Payout {
    Payout::Percentage { bps: Bps::new(bps).unwrap() }
}

fn base() -> RewardRules {
    RewardRules { payout: pct(1000), trigger_limit: TriggerLimit::Unlimited, duration_months: None, cap: None, modifiers: vec![], bounty: None, level_bps: vec![] }
}

fn buyer(triggered: u32) -> AffiliatePolicy {
    let mut p = AffiliatePolicy::new(UserId::parse("b").unwrap());
    p.registered_at = Some(Timestamp::from_millis(JAN31));
    p.rewards_triggered = triggered;
    p
}

fn order(amount: i64, at: i64) -> OrderPaid {
    OrderPaid {
        event_id: EventId::parse("e").unwrap(),
        order_id: OrderId::parse("o").unwrap(),
        buyer: UserId::parse("b").unwrap(),
        amount: Money::from_minor(amount),
        currency: "USD".into(),
        occurred_at: Timestamp::from_millis(at),
        product_id: None,
        kind: None,
    }
}

#[test]
fn percentage_and_flat() {
    let g = group(base());
    let r = sale_reward(&g, None, Performance::default(), &buyer(0), &order(1999, JAN31)).unwrap().unwrap();
    assert_eq!((r.reward.minor(), r.group.as_str(), r.version, r.modifier.as_deref()), (199, "g", 3, None));
    let flat = group(RewardRules { payout: Payout::Flat { amount: Money::from_minor(500) }, ..base() });
    assert_eq!(sale_reward(&flat, None, Performance::default(), &buyer(0), &order(1999, JAN31)).unwrap().unwrap().reward.minor(), 500);
    // A flat reward is at most the order.
    assert_eq!(sale_reward(&flat, None, Performance::default(), &buyer(0), &order(300, JAN31)).unwrap().unwrap().reward.minor(), 300);
    // The affiliate's own rate wins over the group and its modifiers.
    let mut own = AffiliatePolicy::new(UserId::parse("i").unwrap());
    own.commission_bps = Some(Bps::new(2500).unwrap());
    let r = sale_reward(&flat, Some(&own), Performance::default(), &buyer(0), &order(1000, JAN31)).unwrap().unwrap();
    assert_eq!((r.reward.minor(), r.own_rate), (250, true));
}

#[test]
fn duration_counts_calendar_months_from_the_referral() {
    let g = group(RewardRules { duration_months: Some(1), ..base() });
    // Jan 31 + 1 month = Feb 28, same time of day.
    let end = plus_months(Timestamp::from_millis(JAN31), 1);
    assert_eq!(end.utc_day(), "2026-02-28");
    assert_eq!(end.millis() % DAY, JAN31 % DAY);
    assert!(sale_reward(&g, None, Performance::default(), &buyer(0), &order(1000, end.millis() - 1)).unwrap().is_ok());
    assert_eq!(sale_reward(&g, None, Performance::default(), &buyer(0), &order(1000, end.millis())).unwrap(), Err(Unpaid::OutsideDuration));
    assert_eq!(plus_months(Timestamp::from_millis(JAN31), 13).utc_day(), "2027-02-28");
    assert_eq!(plus_months(Timestamp::from_millis(JAN31), 0), Timestamp::from_millis(JAN31));
    // 0 months: the first rewarded order only (the trigger count holds it).
    let first = group(RewardRules { duration_months: Some(0), ..base() });
    assert_eq!(sale_reward(&first, None, Performance::default(), &buyer(0), &order(1000, JAN31)).unwrap().unwrap().trigger_limit, TriggerLimit::limited(1).unwrap());
    assert_eq!(sale_reward(&first, None, Performance::default(), &buyer(1), &order(1000, JAN31)).unwrap(), Err(Unpaid::TriggerLimitReached));
}

#[test]
fn the_first_matching_modifier_replaces_the_base() {
    let product = ProductId::parse("pro").unwrap();
    let rules = RewardRules {
        modifiers: vec![
            Modifier { name: "tier 2".into(), when: vec![Condition::PayingReferralsAtLeast { count: 50 }], payout: pct(2500) },
            Modifier { name: "pro renewals".into(), when: vec![Condition::ProductIn { products: vec![product.clone()] }, Condition::Kind { kind: OrderKind::Renewal }], payout: pct(500) },
            Modifier { name: "big".into(), when: vec![Condition::AmountAtLeast { amount: Money::from_minor(10_000) }], payout: Payout::Flat { amount: Money::from_minor(700) } },
            Modifier { name: "small".into(), when: vec![Condition::AmountAtMost { amount: Money::from_minor(99) }], payout: pct(0) },
        ],
        ..base()
    };
    let g = group(rules);
    let decide = |o: &OrderPaid, paying| sale_reward(&g, None, Performance { paying_referrals: paying, ..Performance::default() }, &buyer(0), o).unwrap();
    let mut renewal = order(1000, JAN31);
    renewal.product_id = Some(product);
    renewal.kind = Some(OrderKind::Renewal);
    assert_eq!(decide(&renewal, 49).unwrap().modifier.as_deref(), Some("pro renewals"));
    assert_eq!(decide(&renewal, 49).unwrap().reward.minor(), 50);
    assert_eq!(decide(&renewal, 50).unwrap().modifier.as_deref(), Some("tier 2"));
    let mut new = renewal.clone();
    new.kind = Some(OrderKind::New);
    assert_eq!(decide(&new, 0).unwrap().modifier, None);
    assert_eq!(decide(&order(10_000, JAN31), 0).unwrap().reward.minor(), 700);
    assert_eq!(decide(&order(99, JAN31), 0), Err(Unpaid::ZeroReward));
    // A bounty still pays on a first order whose sale part is 0.
    let with_bounty = group(RewardRules { bounty: Some(Bounty { amount: Money::from_minor(500), on: BountyTrigger::FirstPayment }), ..g.rules.clone() });
    let r = sale_reward(&with_bounty, None, Performance::default(), &buyer(0), &order(99, JAN31)).unwrap().unwrap();
    assert_eq!((r.reward.minor(), bounty_for(&r, 0).map(Money::minor), bounty_for(&r, 1)), (0, Some(500), None));
    assert_eq!(sale_reward(&with_bounty, None, Performance::default(), &buyer(1), &order(99, JAN31)).unwrap(), Err(Unpaid::ZeroReward));
}

#[test]
fn cap_windows_are_utc_calendar_intervals() {
    let midnight = Timestamp::from_millis(JAN31 - JAN31 % DAY + DAY); // 2026-02-01T00:00Z
    let before = Timestamp::from_millis(midnight.millis() - 1);
    assert_eq!(cap_window(CapInterval::Day, before), "day:2026-01-31");
    assert_eq!(cap_window(CapInterval::Day, midnight), "day:2026-02-01");
    assert_eq!(cap_window(CapInterval::Month, before), "month:2026-01");
    assert_eq!(cap_window(CapInterval::Month, midnight), "month:2026-02");
    // 2026-02-01 is a Sunday: the ISO week changes at Monday's midnight.
    assert_eq!(cap_window(CapInterval::Week, midnight), "week:2026-W05");
    assert_eq!(cap_window(CapInterval::Week, Timestamp::from_millis(midnight.millis() + DAY)), "week:2026-W06");
    assert_eq!(cap_window(CapInterval::AllTime, midnight), "all");
}

#[test]
fn a_cap_lets_through_what_is_left_of_its_window() {
    let cap = Cap { interval: CapInterval::Day, amount: Money::from_minor(1000) };
    let at = Timestamp::from_millis(JAN31);
    let (a, used) = capped(cap, &CapUsage::new(), at, Money::from_minor(700)).unwrap();
    let (b, used) = capped(cap, &used, at, Money::from_minor(700)).unwrap();
    let (c, used) = capped(cap, &used, at, Money::from_minor(700)).unwrap();
    assert_eq!((a.minor(), b.minor(), c.minor()), (700, 300, 0));
    // The next UTC day starts afresh.
    let (d, used) = capped(cap, &used, Timestamp::from_millis(JAN31 + DAY), Money::from_minor(700)).unwrap();
    assert_eq!(d.minor(), 700);
    assert_eq!(used.len(), 2);
    // Another interval's windows are kept apart: back to the daily cap, the day's usage holds.
    let month = Cap { interval: CapInterval::Month, ..cap };
    let (_, used) = capped(month, &used, at, Money::from_minor(1)).unwrap();
    assert_eq!(used.keys().collect::<Vec<_>>(), ["day:2026-01-31", "day:2026-02-01", "month:2026-01"]);
    let (e, _) = capped(cap, &used, at, Money::from_minor(700)).unwrap();
    assert_eq!(e.minor(), 0, "the day's cap was used up before the monthly version");
    // The kept windows of one interval are bounded, the newest kept.
    let mut used = CapUsage::new();
    for day in 0..100 {
        used = capped(cap, &used, Timestamp::from_millis(JAN31 + day * DAY), Money::from_minor(1)).unwrap().1;
    }
    used = capped(month, &used, at, Money::from_minor(1)).unwrap().1;
    assert_eq!(used.len(), CAP_WINDOWS_KEPT + 1);
    assert!(used.contains_key(&cap_window(CapInterval::Day, Timestamp::from_millis(JAN31 + 99 * DAY))));
}

#[test]
fn tiers() {
    let tier = |name: &str, count| Modifier { name: name.into(), when: vec![Condition::PayingReferralsAtLeast { count }], payout: pct(2000) };
    let rules = RewardRules { modifiers: vec![tier("tier 3", 100), tier("tier 2", 50)], ..base() };
    let paying = |n| Performance { paying_referrals: n, ..Performance::default() };
    let next = |name: &str, more_referrals| Some(NextTier { name: name.into(), more_referrals, more_earned: Money::ZERO });
    assert_eq!(tier_standing(&rules, paying(10)), TierStanding { current: None, next: next("tier 2", 40) });
    assert_eq!(tier_standing(&rules, paying(60)), TierStanding { current: Some("tier 2".into()), next: next("tier 3", 40) });
    assert_eq!(tier_standing(&rules, paying(100)), TierStanding { current: Some("tier 3".into()), next: None });
    // A tier on recent earnings, and one on both.
    let earned = |name: &str, amount| Modifier { name: name.into(), when: vec![Condition::EarnedRecentlyAtLeast { amount: Money::from_minor(amount) }], payout: pct(3000) };
    let both = Modifier { name: "gold".into(), when: vec![Condition::PayingReferralsAtLeast { count: 5 }, Condition::EarnedRecentlyAtLeast { amount: Money::from_minor(10_000) }], payout: pct(4000) };
    let rules = RewardRules { modifiers: vec![both, earned("silver", 5_000)], ..base() };
    let p = Performance { paying_referrals: 7, earned_recently: Money::from_minor(6_000) };
    assert_eq!(tier_standing(&rules, p), TierStanding { current: Some("silver".into()), next: Some(NextTier { name: "gold".into(), more_referrals: 0, more_earned: Money::from_minor(4_000) }) });
    let g = group(rules);
    let o = order(1_000, JAN31);
    assert_eq!(sale_reward(&g, None, p, &buyer(0), &o).unwrap().unwrap().modifier.as_deref(), Some("silver"));
    let rich = Performance { earned_recently: Money::from_minor(10_000), ..p };
    assert_eq!(sale_reward(&g, None, rich, &buyer(0), &o).unwrap().unwrap().reward.minor(), 400);
    assert_eq!(recent_days(Timestamp::from_millis(JAN31)), ("2026-01-02".to_owned(), "2026-01-31".to_owned()));
}

#[test]
    fn overrides_win_over_defaults() {
        let config = Config::default();
        let user = UserId::parse("u").unwrap();
        let default = EffectivePolicy::resolve(None, &config);
        assert_eq!(default.commission_bps, config.default_commission_bps);
        assert!(default.affiliate_enabled);

        let mut p = AffiliatePolicy::new(user);
        p.commission_bps = Some(Bps::new(2500).unwrap());
        p.trigger_limit = Some(TriggerLimit::Unlimited);
        p.max_active_codes = Some(2);
        p.affiliate_enabled = Some(false);
        let eff = EffectivePolicy::resolve(Some(&p), &config);
        assert_eq!(eff.commission_bps.get(), 2500);
        assert_eq!(eff.trigger_limit, TriggerLimit::Unlimited);
        assert_eq!(eff.max_active_codes, 2);
        assert!(!eff.affiliate_enabled);
    }

proptest! {
    /// A cap never lets more through in a window than the cap, whatever the orders.
    #[test]
    fn a_window_never_earns_more_than_its_cap(cap in 1i64..10_000, rewards in proptest::collection::vec((0i64..5_000, 0i64..3), 1..40)) {
        let cap = Cap { interval: CapInterval::Day, amount: Money::from_minor(cap) };
        let mut used = CapUsage::new();
        let mut per_day = [0i64; 3];
        for (reward, day) in rewards {
            let (allowed, after) = capped(cap, &used, Timestamp::from_millis(JAN31 + day * DAY), Money::from_minor(reward)).unwrap();
            prop_assert!(allowed.minor() <= reward && allowed.minor() >= 0);
            per_day[day as usize] += allowed.minor();
            used = after;
        }
        prop_assert!(per_day.iter().all(|d| *d <= cap.amount.minor()));
    }

    /// Months added are a calendar month each: never fewer than 28 days, never more than 31.
    #[test]
    fn months_are_calendar_months(at in 0i64..4_000_000_000_000, months in 0u32..120) {
        let start = Timestamp::from_millis(at);
        let end = plus_months(start, months);
        let days = (end.millis() - start.millis()) as f64 / DAY as f64;
        prop_assert!(days >= 28.0 * f64::from(months) - 3.0 * f64::from(months.min(1)));
        prop_assert!(days <= 31.0 * f64::from(months));
        prop_assert_eq!(end.millis().rem_euclid(DAY), at.rem_euclid(DAY));
    }
}
