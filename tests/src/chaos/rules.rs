//! The reward rules of a chaos run: the rule sets its group changes between, and the model
//! the checker recomputes each order's commission with — from the rule version the reward
//! recorded, read back from the store, and what was sent (never from the domain's rules).

use std::collections::HashMap;

use market_domain::group::{Bounty, BountyTrigger, Cap, CapInterval, Condition, EarnedTerms, Modifier, Payout, RewardRules};
use market_domain::ids::ProductId;
use market_domain::inbound::OrderKind;
use market_domain::lifecycle::Earned;
use market_domain::money::{Bps, Money};
use market_domain::policy::TriggerLimit;

use super::world::OrderSent;

fn pct(bps: u32) -> Payout {
    Payout::Percentage { bps: Bps::new(bps).expect("rate") }
}

fn flat(amount: i64) -> Payout {
    Payout::Flat { amount: Money::from_minor(amount) }
}

/// The rule sets (every payout positive: an order of the run always earns something, so a
/// missing commission is never explained by the rules).
pub fn variant(v: usize) -> RewardRules {
    let base = |payout| RewardRules { payout, trigger_limit: TriggerLimit::Unlimited, duration_months: None, cap: None, modifiers: vec![], bounty: None, level_bps: vec![] };
    let first_payment = |amount| Some(Bounty { amount: Money::from_minor(amount), on: BountyTrigger::FirstPayment });
    match v % super::workload::GROUP_VARIANTS {
        0 => base(pct(2000)),
        1 => base(flat(300)),
        2 => RewardRules { cap: Some(Cap { interval: CapInterval::Day, amount: Money::from_minor(400) }), ..base(pct(1500)) },
        3 => RewardRules {
            modifiers: vec![
                Modifier { name: "renewals".into(), when: vec![Condition::Kind { kind: OrderKind::Renewal }], payout: pct(500) },
                Modifier { name: "pro".into(), when: vec![Condition::ProductIn { products: vec![ProductId::parse("pro").expect("id")] }], payout: flat(250) },
                Modifier { name: "tier".into(), when: vec![Condition::PayingReferralsAtLeast { count: 2 }], payout: pct(2500) },
                Modifier { name: "earner".into(), when: vec![Condition::EarnedRecentlyAtLeast { amount: Money::from_minor(5_000) }], payout: pct(1800) },
                Modifier { name: "big".into(), when: vec![Condition::AmountAtLeast { amount: Money::from_minor(8_000) }], payout: pct(3000) },
            ],
            ..base(pct(1000))
        },
        4 => RewardRules { bounty: first_payment(100), cap: Some(Cap { interval: CapInterval::Week, amount: Money::from_minor(900) }), ..base(flat(200)) },
        _ => RewardRules { bounty: first_payment(150), ..base(pct(1200)) },
    }
}

/// `floor(amount × bps / 10000)`, computed here rather than trusted from the domain.
pub fn percent(amount: i64, bps: u32) -> i64 {
    (i128::from(amount) * i128::from(bps) / 10_000) as i64
}

fn pays(p: Payout, amount: i64) -> i64 {
    match p {
        Payout::Percentage { bps } => percent(amount, u32::from(bps.get())),
        Payout::Flat { amount: f } => f.minor().min(amount),
    }
}

/// Whether a condition on the order holds for what was sent (`None`: a condition on the
/// affiliate's performance, which the model does not know).
fn holds(c: &Condition, o: &OrderSent) -> Option<bool> {
    Some(match c {
        Condition::ProductIn { products } => o.product.is_some_and(|p| products.iter().any(|x| x.as_str() == p)),
        Condition::AmountAtLeast { amount } => o.amount >= amount.minor(),
        Condition::AmountAtMost { amount } => o.amount <= amount.minor(),
        Condition::Kind { kind } => o.kind == Some(*kind),
        Condition::PayingReferralsAtLeast { .. } | Condition::EarnedRecentlyAtLeast { .. } => return None,
    })
}

/// What a commission is worth after `refunded` of its order, by the terms it recorded:
/// the sale part (flat until the full refund, or the percentage of what is left), at most
/// what the cap allowed, plus a bounty until the full refund.
pub fn net(e: &Earned, refunded: i64) -> i64 {
    let rest = e.order_amount.minor() - refunded;
    let t = e.terms.as_ref();
    let sale = match t.and_then(|t| t.flat) {
        Some(f) if rest > 0 => f.minor(),
        Some(_) => 0,
        None => percent(rest, u32::from(e.commission_bps.get())),
    };
    let sale = t.and_then(|t| t.capped_at).map_or(sale, |c| sale.min(c.minor()));
    sale + t.and_then(|t| t.bounty).filter(|_| rest > 0).map_or(0, |b| b.minor())
}

/// The model's view of one group-decided commission: what its recorded version says it
/// pays for the order as sent. Violations as text; the cap's use is added to `cap_use`
/// per (buyer, window) for the run-wide check.
pub fn check_terms(o: &OrderSent, e: &Earned, t: &EarnedTerms, rules: &RewardRules, cap_use: &mut HashMap<(String, String), (i64, i64)>) -> Vec<String> {
    let mut v = Vec::new();
    let order = &o.order;
    // Which payout: the affiliate's own rate, the modifier it names, or the base.
    let payout = if t.own_rate {
        pct(u32::from(e.commission_bps.get()))
    } else if let Some(name) = &t.modifier {
        match rules.modifiers.iter().position(|m| &m.name == name) {
            Some(i) => {
                let m = &rules.modifiers[i];
                if m.when.iter().any(|c| holds(c, o) == Some(false)) {
                    v.push(format!("order {order}: modifier {name} paid, but its conditions do not hold for {:?}/{:?}/{}", o.product, o.kind, o.amount));
                }
                // The first match wins: no earlier modifier on the order alone may hold.
                if rules.modifiers[..i].iter().any(|m| m.when.iter().all(|c| holds(c, o) == Some(true))) {
                    v.push(format!("order {order}: modifier {name} paid, an earlier one matches"));
                }
                m.payout
            }
            None => {
                v.push(format!("order {order}: modifier {name} not in {} v{}", t.group, t.version));
                return v;
            }
        }
    } else {
        if rules.modifiers.iter().any(|m| m.when.iter().all(|c| holds(c, o) == Some(true))) {
            v.push(format!("order {order}: the base paid, a modifier on the order matches"));
        }
        rules.payout
    };
    let sale = pays(payout, o.amount);
    match (payout, t.flat) {
        (Payout::Flat { .. }, Some(f)) if f.minor() == sale => {}
        (Payout::Percentage { bps }, None) if bps == e.commission_bps => {}
        other => v.push(format!("order {order}: recorded {:?} at {}, the rule pays {sale} ({other:?})", t.flat, e.commission_bps.get())),
    }
    match (rules.cap, t.capped_at) {
        (None, None) => {}
        (Some(cap), Some(allowed)) if allowed.minor() <= sale && allowed.minor() >= 0 => {
            let window = market_domain::rules::cap_window(cap.interval, e.earned_at);
            let used = cap_use.entry((o.buyer.to_string(), window)).or_insert((0, 0));
            used.0 += allowed.minor();
            used.1 = used.1.max(cap.amount.minor());
        }
        other => v.push(format!("order {order}: cap {other:?} on a sale of {sale}")),
    }
    match (rules.bounty, t.bounty) {
        (_, None) => {}
        (Some(b), Some(paid)) if b.amount == paid => {}
        other => v.push(format!("order {order}: bounty {other:?}")),
    }
    let gross = net(e, 0);
    if e.reward.minor() != gross {
        v.push(format!("order {order}: reward {} recorded, its terms give {gross}", e.reward.minor()));
    }
    v
}
