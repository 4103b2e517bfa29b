//! Reward rules on DynamoDB Local, through the processors the hooks run (decision, reward,
//! refund): every rule kind and modifier kind, caps across a UTC midnight, a duration
//! boundary, tiers crossing during a stream of orders, a sign-up bounty voided by a full
//! refund, a group changed mid-stream (each reward under its own version), both arrival
//! orders of refunds, and redelivery under a cap. Every test uses groups of its own (the
//! `default` group is the configuration's and stays so: tests share the stack).

use market_domain::admin::{AdminRequest, PolicyChange, PolicyField, UpdateUserPolicy};
use market_domain::admin_groups::{GroupChange, ListRewardGroups, PutRewardGroup};
use market_domain::config::MarketConfig;
use market_domain::group::{Bounty, BountyTrigger, Cap, CapInterval, Condition, GroupName, Modifier, Payout, RewardGroup, RewardRules};
use market_domain::ids::{EventId, OrderId, ProductId, UserId};
use market_domain::inbound::OrderKind;
use market_domain::lifecycle::Commission;
use market_domain::model::HistoryItem;
use market_domain::money::{Bps, Money};
use market_domain::policy::TriggerLimit;
use market_domain::ports::prelude::*;
use market_domain::ports::{PolicyOverrides, RewardOutcome};
use market_domain::processors::*;
use market_domain::time::Timestamp;
use market_domain::MarketError;
use market_tests::{assert_money_invariants, event_id, order, referred_user, user, TestDeps};

const DAY: i64 = Timestamp::MS_PER_DAY;
/// 2026-03-01T00:00:00Z, a Sunday: days, a month and (on Monday) a week turn over here.
const MIDNIGHT: i64 = 1_772_323_200_000;

fn config() -> MarketConfig {
    MarketConfig { min_withdraw_amount: Money::from_minor(1), ..MarketConfig::default() }
}

fn pct(bps: u32) -> Payout {
    Payout::Percentage { bps: Bps::new(bps).unwrap() }
}

fn flat(amount: i64) -> Payout {
    Payout::Flat { amount: Money::from_minor(amount) }
}

fn rules(payout: Payout) -> RewardRules {
    RewardRules { payout, trigger_limit: TriggerLimit::Unlimited, duration_months: None, cap: None, modifiers: vec![], bounty: None, level_bps: vec![] }
}

/// A percentage capped per referred user per interval.
fn capped(bps: u32, interval: CapInterval, amount: i64) -> RewardRules {
    RewardRules { cap: Some(Cap { interval, amount: Money::from_minor(amount) }), ..rules(pct(bps)) }
}

fn admin() -> UserId {
    UserId::parse("admin-rules").unwrap()
}

/// A group name no other test (or earlier run) uses.
fn group_name() -> GroupName {
    GroupName::parse(format!("t-{}", nanoid::nanoid!(10, &nanoid::alphabet::SAFE).to_lowercase())).unwrap()
}

/// Defines (expected 0) or changes a group through the admin processor.
async fn put_group(d: &TestDeps, name: &GroupName, rules: RewardRules, expected_version: u64) -> Result<RewardGroup, MarketError> {
    let change = GroupChange { name: name.clone(), rules, description: "test".into(), expected_version };
    PutRewardGroup(d.clone()).process(AdminRequest { admin: admin(), request_id: event_id().to_string(), body: change }).await
}

/// Moves `user` into `group` through the admin processor.
async fn move_to(d: &TestDeps, u: &UserId, group: &GroupName) -> Result<(), MarketError> {
    let values = PolicyOverrides { group: Some(group.clone()), ..PolicyOverrides::default() };
    let change = PolicyChange { user: u.clone(), values, fields: vec![PolicyField::Group] };
    UpdateUserPolicy(d.clone()).process(AdminRequest { admin: admin(), request_id: event_id().to_string(), body: change }).await.map(|_| ())
}

/// An affiliate in a new group of `rules`.
async fn affiliate(d: &TestDeps, rules: RewardRules) -> (UserId, GroupName) {
    let (inviter, name) = (user("aff"), group_name());
    put_group(d, &name, rules, 0).await.expect("group defined");
    move_to(d, &inviter, &name).await.expect("moved");
    (inviter, name)
}

struct Order<'a> {
    buyer: &'a UserId,
    order: OrderId,
    amount: i64,
    at: i64,
    product: Option<&'a str>,
    kind: Option<OrderKind>,
    event: EventId,
}

fn paid<'a>(buyer: &'a UserId, amount: i64, at: i64) -> Order<'a> {
    Order { buyer, order: order(), amount, at, product: None, kind: None, event: event_id() }
}

impl Order<'_> {
    fn event(&self) -> OrderPaid {
        OrderPaid {
            event_id: self.event.clone(),
            order_id: self.order.clone(),
            buyer: self.buyer.clone(),
            amount: Money::from_minor(self.amount),
            currency: "USD".into(),
            occurred_at: Timestamp::from_millis(self.at),
            product_id: self.product.map(|p| ProductId::parse(p).unwrap()),
            kind: self.kind,
        }
    }
}

/// Decides and applies the order as the hooks do; the decision when it pays nothing.
async fn pay(d: &TestDeps, o: &Order<'_>) -> Result<RewardOutcome, OrderDecision> {
    match DecideOrderReward(d.clone()).process(o.event()).await.unwrap() {
        OrderDecision::Reward(ev) => Ok(ApplyReward(d.clone()).process(ev).await.unwrap()),
        other => Err(other),
    }
}

async fn commission(d: &TestDeps, earner: &UserId, o: &OrderId) -> Commission {
    d.store.get_commission(earner, o).await.unwrap().expect("a commission")
}

/// What the order earned its inviter, and the rule it recorded.
async fn earned(d: &TestDeps, earner: &UserId, o: &OrderId) -> (i64, String) {
    let c = commission(d, earner, o).await;
    let e = c.earned.expect("earned");
    (e.reward.minor(), e.terms.map(|t| t.describe()).unwrap_or_default())
}

async fn refund(d: &TestDeps, buyer: &UserId, o: &OrderId, id: &str, amount: i64) -> RefundResult {
    ApplyRefund(d.clone()).process(market_tests::refund_event(buyer, o, id, amount, d.clock.now())).await.unwrap()
}

#[tokio::test]
async fn percentage_and_flat_groups_record_group_and_version() {
    let d = market_tests::deps(config()).await;
    let (a, g) = affiliate(&d, rules(pct(2000))).await;
    let (buyer, _) = referred_user(&d, &a).await;
    let o = paid(&buyer, 1_999, d.clock.now().millis());
    assert_eq!(pay(&d, &o).await, Ok(RewardOutcome::Applied));
    assert_eq!(earned(&d, &a, &o.order).await, (399, format!("group {g} v1")));

    let (b, g2) = affiliate(&d, rules(flat(500))).await;
    let (buyer, _) = referred_user(&d, &b).await;
    let big = paid(&buyer, 10_000, d.clock.now().millis());
    let small = paid(&buyer, 300, d.clock.now().millis());
    pay(&d, &big).await.unwrap();
    pay(&d, &small).await.unwrap();
    assert_eq!(earned(&d, &b, &big.order).await, (500, format!("group {g2} v1")));
    assert_eq!(earned(&d, &b, &small.order).await.0, 300, "a flat reward is at most the order");
    // The affiliate's own rate wins over the group.
    let values = PolicyOverrides { commission_bps: Some(Bps::new(1500).unwrap()), ..PolicyOverrides::default() };
    let change = PolicyChange { user: b.clone(), values, fields: vec![PolicyField::CommissionBps] };
    UpdateUserPolicy(d.clone()).process(AdminRequest { admin: admin(), request_id: "r".into(), body: change }).await.unwrap();
    let own = paid(&buyer, 10_000, d.clock.now().millis());
    pay(&d, &own).await.unwrap();
    assert_eq!(earned(&d, &b, &own.order).await, (1_500, format!("group {g2} v1 · own rate")));
    for u in [&a, &b] {
        assert_money_invariants(&d.store, u).await;
    }
}

#[tokio::test]
async fn modifiers_on_the_order_replace_the_base_in_order() {
    let d = market_tests::deps(config()).await;
    let mut r = rules(pct(1000));
    r.modifiers = vec![
        Modifier {
            name: "pro renewals".into(),
            when: vec![Condition::ProductIn { products: vec![ProductId::parse("pro").unwrap()] }, Condition::Kind { kind: OrderKind::Renewal }],
            payout: pct(500),
        },
        Modifier { name: "first orders".into(), when: vec![Condition::Kind { kind: OrderKind::New }], payout: pct(2000) },
        Modifier { name: "big".into(), when: vec![Condition::AmountAtLeast { amount: Money::from_minor(50_000) }], payout: flat(3_000) },
        Modifier { name: "tiny".into(), when: vec![Condition::AmountAtMost { amount: Money::from_minor(100) }], payout: pct(0) },
    ];
    let (a, g) = affiliate(&d, r).await;
    let (buyer, _) = referred_user(&d, &a).await;
    let now = d.clock.now().millis();
    let mut renewal = paid(&buyer, 10_000, now);
    (renewal.product, renewal.kind) = (Some("pro"), Some(OrderKind::Renewal));
    let mut other_renewal = paid(&buyer, 10_000, now);
    (other_renewal.product, other_renewal.kind) = (Some("basic"), Some(OrderKind::Renewal));
    let mut new = paid(&buyer, 10_000, now);
    (new.product, new.kind) = (Some("pro"), Some(OrderKind::New));
    let big = paid(&buyer, 60_000, now);
    let tiny = paid(&buyer, 100, now);
    for o in [&renewal, &other_renewal, &new, &big] {
        assert_eq!(pay(&d, o).await, Ok(RewardOutcome::Applied));
    }
    assert_eq!(pay(&d, &tiny).await, Err(OrderDecision::NoReward(NoReward::ZeroReward)));
    assert_eq!(earned(&d, &a, &renewal.order).await, (500, format!("group {g} v1 · pro renewals")));
    assert_eq!(earned(&d, &a, &other_renewal.order).await, (1_000, format!("group {g} v1")));
    assert_eq!(earned(&d, &a, &new.order).await, (2_000, format!("group {g} v1 · first orders")));
    assert_eq!(earned(&d, &a, &big.order).await, (3_000, format!("group {g} v1 · big")));
    assert_money_invariants(&d.store, &a).await;
}

#[tokio::test]
async fn tiers_cross_during_a_stream_of_orders() {
    let d = market_tests::deps(config()).await;
    let mut r = rules(pct(1000));
    r.modifiers = vec![
        Modifier { name: "tier 3".into(), when: vec![Condition::PayingReferralsAtLeast { count: 4 }], payout: pct(3000) },
        Modifier { name: "tier 2".into(), when: vec![Condition::PayingReferralsAtLeast { count: 2 }], payout: pct(2000) },
    ];
    let (a, g) = affiliate(&d, r).await;
    let mut got = Vec::new();
    for _ in 0..5 {
        let (buyer, _) = referred_user(&d, &a).await;
        // Two orders per referred user: only the first makes them a paying referral.
        for _ in 0..2 {
            let o = paid(&buyer, 1_000, d.clock.now().millis());
            pay(&d, &o).await.unwrap();
            got.push(earned(&d, &a, &o.order).await);
        }
    }
    let tier = |t: &str| if t.is_empty() { format!("group {g} v1") } else { format!("group {g} v1 · {t}") };
    // A referred user counts from their first reward on: the order after the one that made
    // the 2nd (4th) paying referral is the first at tier 2 (3).
    let expected = [(100, ""), (100, ""), (100, ""), (200, "tier 2"), (200, "tier 2"), (200, "tier 2"), (200, "tier 2"), (300, "tier 3"), (300, "tier 3"), (300, "tier 3")];
    assert_eq!(got, expected.iter().map(|(r, t)| (*r, tier(t))).collect::<Vec<_>>());
    let stats = assert_money_invariants(&d.store, &a).await;
    assert_eq!(stats.paying_referrals, 5);
    // What the affiliate's overview shows of it.
    let overview = GetAffiliateStats(d.clone()).process(a.clone()).await.unwrap();
    assert_eq!((overview.group.name, overview.tier.current.as_deref(), overview.tier.next), (g, Some("tier 3"), None));
    assert_eq!(overview.performance.paying_referrals, 5);
}

#[tokio::test]
async fn a_tier_on_recent_earnings_counts_the_last_30_utc_days() {
    let d = market_tests::deps(config()).await;
    let mut r = rules(pct(1000));
    r.modifiers = vec![Modifier { name: "earner".into(), when: vec![Condition::EarnedRecentlyAtLeast { amount: Money::from_minor(1_000) }], payout: pct(3000) }];
    let (a, g) = affiliate(&d, r).await;
    let (buyer, _) = referred_user(&d, &a).await;
    let day0 = MIDNIGHT - 60 * DAY + 3_600_000;
    // 500 and 500 earned on day 0 reach the tier: the third order of the day pays 30 %.
    let orders = [paid(&buyer, 5_000, day0), paid(&buyer, 5_000, day0 + 1), paid(&buyer, 5_000, day0 + 2)];
    let mut got = Vec::new();
    for o in &orders {
        pay(&d, o).await.unwrap();
        got.push(earned(&d, &a, &o.order).await);
    }
    let base = format!("group {g} v1");
    assert_eq!(got, vec![(500, base.clone()), (500, base.clone()), (1_500, format!("{base} · earner"))]);
    // Day 29 still counts day 0; day 30 does not (the window is the order's day and 29 before).
    let day29 = paid(&buyer, 5_000, day0 + 29 * DAY);
    let day31 = paid(&buyer, 5_000, day0 + 31 * DAY);
    pay(&d, &day29).await.unwrap();
    pay(&d, &day31).await.unwrap();
    assert_eq!(earned(&d, &a, &day29.order).await.0, 1_500);
    assert_eq!(earned(&d, &a, &day31.order).await.0, 1_500, "day 29's 1 500 is in day 31's window");
    let day61 = paid(&buyer, 5_000, day0 + 61 * DAY);
    pay(&d, &day61).await.unwrap();
    assert_eq!(earned(&d, &a, &day61.order).await.0, 500, "nothing earned in the 30 days before day 61");
    assert_eq!(d.store.earned_between(&a, &Timestamp::from_millis(day0).utc_day(), &Timestamp::from_millis(day0).utc_day()).await.unwrap().minor(), 2_500);
    assert_money_invariants(&d.store, &a).await;
    // The overview: what was earned in the last 30 days (day 61's order, dated in the past, is
    // older than that), and what the tier takes.
    let overview = GetAffiliateStats(d.clone()).process(a.clone()).await.unwrap();
    assert_eq!(overview.tier.current, None);
    assert_eq!(overview.tier.next.map(|n| (n.name, n.more_earned.minor())), Some(("earner".to_owned(), 1_000 - overview.performance.earned_recently.minor())));
}

#[tokio::test]
async fn a_cap_counts_per_referred_user_per_utc_interval() {
    let d = market_tests::deps(config()).await;
    let (a, g) = affiliate(&d, capped(2000, CapInterval::Day, 500)).await;
    let (buyer, _) = referred_user(&d, &a).await;
    let (other, _) = referred_user(&d, &a).await;
    // Each 2 000 order pays 20 % = 400, at most 500 a UTC day per referred user.
    let before = [paid(&buyer, 2_000, MIDNIGHT - 60_000), paid(&buyer, 2_000, MIDNIGHT - 1), paid(&buyer, 2_000, MIDNIGHT - 1)];
    let after = [paid(&buyer, 2_000, MIDNIGHT), paid(&other, 2_000, MIDNIGHT - 1)];
    for o in before.iter().chain(&after) {
        pay(&d, o).await.unwrap();
    }
    let mut got = Vec::new();
    for o in before.iter().chain(&after) {
        got.push(earned(&d, &a, &o.order).await);
    }
    let rule = format!("group {g} v1 · capped");
    assert_eq!(got, vec![(400, rule.clone()), (100, rule.clone()), (0, rule.clone()), (400, rule.clone()), (400, rule)]);
    // A capped reward refunded is min(rule(A − R), what the cap allowed): 20 % of 1 500 = 300 > 100.
    refund(&d, &buyer, &before[1].order, "r1", 500).await;
    assert_eq!(commission(&d, &a, &before[1].order).await.amount().minor(), 100);
    refund(&d, &buyer, &before[1].order, "r2", 1_000).await;
    assert_eq!(commission(&d, &a, &before[1].order).await.amount().minor(), 100, "20 % of 500 = 100");
    refund(&d, &buyer, &before[0].order, "r3", 1_000).await;
    assert_eq!(commission(&d, &a, &before[0].order).await.amount().minor(), 200, "a refund does not give the cap back");
    assert_money_invariants(&d.store, &a).await;

    // Weekly and monthly windows turn over at Monday's and the 1st's midnight (UTC).
    let (m, _) = affiliate(&d, capped(2000, CapInterval::Month, 500)).await;
    let (buyer, _) = referred_user(&d, &m).await;
    let month = [paid(&buyer, 2_000, MIDNIGHT - 20 * DAY), paid(&buyer, 2_000, MIDNIGHT - 1), paid(&buyer, 2_000, MIDNIGHT + 20 * DAY)];
    for o in &month {
        pay(&d, o).await.unwrap();
    }
    let mut got = Vec::new();
    for o in &month {
        got.push(earned(&d, &m, &o.order).await.0);
    }
    assert_eq!(got, [400, 100, 400]);
    assert_money_invariants(&d.store, &m).await;
}

#[tokio::test]
async fn a_cap_holds_under_concurrent_orders_and_redelivery() {
    let d = market_tests::deps(config()).await;
    let (a, _) = affiliate(&d, capped(2000, CapInterval::AllTime, 1_000)).await;
    let (buyer, _) = referred_user(&d, &a).await;
    let now = d.clock.now().millis();
    let orders: Vec<Order> = (0..6).map(|_| paid(&buyer, 2_000, now)).collect();
    // Every order delivered twice, all at once.
    let runs = orders.iter().chain(&orders).map(|o| pay(&d, o));
    let outcomes = futures::future::join_all(runs).await;
    assert_eq!(outcomes.iter().filter(|o| **o == Ok(RewardOutcome::Applied)).count(), 6, "{outcomes:?}");
    let stats = assert_money_invariants(&d.store, &a).await;
    assert_eq!(stats.total_earned.minor(), 1_000, "six rewards of 400 capped at 1 000 in all");
    assert_eq!((stats.rewarded_orders, stats.paying_referrals), (6, 1));
    assert_eq!(d.store.get_policy(&buyer).await.unwrap().unwrap().rewards_triggered, 6);
}

#[tokio::test]
async fn the_duration_ends_a_calendar_span_after_the_referral() {
    let clock = market_tests::ManualClock::at(MIDNIGHT - 31 * DAY); // 2026-01-29T00:00Z
    let d = market_tests::deps(config()).await.with_clock(clock.clone());
    let mut r = rules(pct(1000));
    r.duration_months = Some(1);
    let (a, _) = affiliate(&d, r).await;
    let (buyer, _) = referred_user(&d, &a).await;
    // Registered 2026-01-29: one month later is 2026-02-28 00:00 (the day clamped? no: 28 < 29).
    let end = market_domain::rules::plus_months(Timestamp::from_millis(MIDNIGHT - 31 * DAY), 1).millis();
    clock.set(end + DAY);
    let inside = paid(&buyer, 1_000, end - 1);
    let outside = paid(&buyer, 1_000, end);
    assert_eq!(pay(&d, &inside).await, Ok(RewardOutcome::Applied));
    assert_eq!(pay(&d, &outside).await, Err(OrderDecision::NoReward(NoReward::OutsideDuration)));
    // 0 months: the first rewarded order only.
    let mut r = rules(pct(1000));
    r.duration_months = Some(0);
    let (f, _) = affiliate(&d, r).await;
    let (buyer, _) = referred_user(&d, &f).await;
    assert_eq!(pay(&d, &paid(&buyer, 1_000, end)).await, Ok(RewardOutcome::Applied));
    assert_eq!(pay(&d, &paid(&buyer, 1_000, end)).await, Err(OrderDecision::NoReward(NoReward::TriggerLimitReached)));
}

#[tokio::test]
async fn a_bounty_comes_with_the_first_payment_and_goes_with_its_full_refund() {
    let d = market_tests::deps(config()).await;
    let mut r = rules(pct(1000));
    r.bounty = Some(Bounty { amount: Money::from_minor(500), on: BountyTrigger::FirstPayment });
    let (a, g) = affiliate(&d, r).await;
    let (buyer, _) = referred_user(&d, &a).await;
    let now = d.clock.now().millis();
    let first = paid(&buyer, 2_000, now);
    let second = paid(&buyer, 2_000, now);
    pay(&d, &first).await.unwrap();
    pay(&d, &second).await.unwrap();
    assert_eq!(earned(&d, &a, &first.order).await, (700, format!("group {g} v1 · sign-up bounty")));
    assert_eq!(earned(&d, &a, &second.order).await, (200, format!("group {g} v1")));
    // A partial refund keeps the bounty; the full refund takes it back with the rest.
    refund(&d, &buyer, &first.order, "r1", 1_000).await;
    assert_eq!(commission(&d, &a, &first.order).await.amount().minor(), 600);
    refund(&d, &buyer, &first.order, "r2", 1_000).await;
    assert_eq!(commission(&d, &a, &first.order).await.amount().minor(), 0);
    let stats = assert_money_invariants(&d.store, &a).await;
    assert_eq!((stats.total_earned.minor(), stats.reversed_total.minor()), (900, 700));
    // The history says which rule paid.
    let history = d.store.history(&a).await.unwrap();
    let rules_shown: Vec<String> = history
        .iter()
        .filter_map(|h| match h {
            HistoryItem::Commission(c) => c.earned.as_ref().and_then(|e| e.terms.as_ref()).map(|t| t.describe()),
            _ => None,
        })
        .collect();
    assert!(rules_shown.contains(&format!("group {g} v1 · sign-up bounty")), "{rules_shown:?}");
}

#[tokio::test]
async fn refunds_before_the_reward_give_the_same_flat_and_capped_rewards() {
    let d = market_tests::deps(config()).await;
    let mut r = rules(flat(700));
    r.cap = Some(Cap { interval: CapInterval::AllTime, amount: Money::from_minor(1_000) });
    r.bounty = Some(Bounty { amount: Money::from_minor(200), on: BountyTrigger::FirstPayment });
    // Two affiliates of the same rules: one sees the refunds after the reward, the other before.
    let mut amounts = Vec::new();
    for refunds_first in [false, true] {
        let (a, _) = affiliate(&d, r.clone()).await;
        let (buyer, _) = referred_user(&d, &a).await;
        let now = d.clock.now().millis();
        let orders = [paid(&buyer, 5_000, now), paid(&buyer, 5_000, now)];
        if refunds_first {
            refund(&d, &buyer, &orders[0].order, "r1", 2_000).await;
            refund(&d, &buyer, &orders[1].order, "r2", 5_000).await;
        }
        for o in &orders {
            pay(&d, o).await.unwrap();
        }
        if !refunds_first {
            refund(&d, &buyer, &orders[0].order, "r1", 2_000).await;
            refund(&d, &buyer, &orders[1].order, "r2", 5_000).await;
        }
        let mut mine = Vec::new();
        for o in &orders {
            let c = commission(&d, &a, &o.order).await;
            mine.push((c.earned.as_ref().unwrap().reward.minor(), c.amount().minor()));
        }
        let stats = assert_money_invariants(&d.store, &a).await;
        mine.push((stats.total_earned.minor(), stats.reversed_total.minor()));
        amounts.push(mine);
    }
    // First: 700 flat + 200 bounty, partly refunded: kept whole. Second: the cap's 300 left, voided in full.
    assert_eq!(amounts[0], vec![(900, 900), (300, 0), (1_200, 300)]);
    assert_eq!(amounts[0], amounts[1], "either arrival order");
}

#[tokio::test]
async fn a_group_change_applies_to_rewards_decided_after_it() {
    let d = market_tests::deps(config()).await;
    let (a, g) = affiliate(&d, rules(pct(1000))).await;
    let (buyer, _) = referred_user(&d, &a).await;
    let now = d.clock.now().millis();
    let before = paid(&buyer, 1_000, now);
    pay(&d, &before).await.unwrap();
    // A stale change is refused; the current one takes.
    let mut v2 = rules(pct(2500));
    v2.level_bps = vec![Bps::new(100).unwrap()];
    assert!(matches!(put_group(&d, &g, v2.clone(), 0).await, Err(MarketError::VersionConflict { current: 1 })));
    // Decided before the change, applied after: under the version it was decided by.
    let decided = match DecideOrderReward(d.clone()).process(paid(&buyer, 1_000, now).event()).await.unwrap() {
        OrderDecision::Reward(ev) => ev,
        other => panic!("{other:?}"),
    };
    assert_eq!(put_group(&d, &g, v2, 1).await.unwrap().version, 2);
    ApplyReward(d.clone()).process(decided.clone()).await.unwrap();
    let after = paid(&buyer, 1_000, now);
    pay(&d, &after).await.unwrap();
    assert_eq!(earned(&d, &a, &before.order).await, (100, format!("group {g} v1")));
    assert_eq!(earned(&d, &a, &decided.order_id).await, (100, format!("group {g} v1")));
    assert_eq!(earned(&d, &a, &after.order).await, (250, format!("group {g} v2")));
    // Each version stays readable as it was.
    let v1 = d.store.get_group_version(&g, 1).await.unwrap().unwrap();
    assert_eq!(v1.rules.payout, pct(1000));
    // The change is audited with before and after.
    let trail = d.store.list_audit(market_domain::audit::MARKET_SUBJECT, None, 100).await.unwrap().items;
    let record = trail.iter().find(|r| r.details["group"] == g.as_str() && r.details["version"] == 2).expect("audited");
    assert_eq!(record.details["before"]["payout"]["bps"], 1000);
    assert_eq!(record.details["after"]["payout"]["bps"], 2500);
    // The listing shows it at its current version, and the default group as configured.
    let listed = ListRewardGroups(d.clone()).process(()).await.unwrap();
    assert!(listed.iter().any(|l| l.name.is_default()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        // The listing reads an index (it may lag a change by a moment).
        let listed = ListRewardGroups(d.clone()).process(()).await.unwrap();
        if listed.iter().any(|l| l.name == g && l.version == 2) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the listing never showed version 2");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_group_of_levels_pays_its_own_level_rates() {
    let d = market_tests::deps(config()).await;
    let mut r = rules(pct(1000));
    r.level_bps = vec![Bps::new(300).unwrap()];
    let (buyer, [inviter, grand, _great]) = market_tests::chain(&d).await;
    let g = group_name();
    put_group(&d, &g, r, 0).await.unwrap();
    move_to(&d, &inviter, &g).await.unwrap();
    let o = paid(&buyer, 10_000, d.clock.now().millis());
    pay(&d, &o).await.unwrap();
    assert_eq!(earned(&d, &inviter, &o.order).await, (1_000, format!("group {g} v1")));
    assert_eq!(earned(&d, &grand, &o.order).await, (300, format!("group {g} v1")), "level 2 at the group's 3 %");
    assert_eq!(d.store.get_commission(&_great, &o.order).await.unwrap(), None, "the group pays one level above");
}

#[tokio::test]
async fn groups_are_validated_and_moves_need_a_defined_group() {
    let d = market_tests::deps(config()).await;
    let u = user("aff");
    assert!(matches!(move_to(&d, &u, &group_name()).await, Err(MarketError::InvalidArgument(_))), "no such group");
    let mut bad = rules(pct(1000));
    bad.level_bps = vec![Bps::new(1).unwrap(); 3];
    assert!(matches!(put_group(&d, &group_name(), bad, 0).await, Err(MarketError::InvalidArgument(_))));
    assert!(matches!(put_group(&d, &group_name(), rules(flat(0)), 0).await, Err(MarketError::InvalidArgument(_))));
    // Moving back to the default group clears the override.
    let (a, _) = affiliate(&d, rules(pct(1000))).await;
    move_to(&d, &a, &GroupName::default_group()).await.unwrap();
    assert_eq!(d.store.get_policy(&a).await.unwrap().unwrap().group, None);
}
