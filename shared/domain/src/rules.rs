//! What an order pays: the one place that answers it. A paid order of a referred user pays
//! their inviter under the inviter's group (or the affiliate's own rate), within the
//! group's duration and trigger limit, the first matching modifier replacing the base
//! payout; the cap and the sign-up bounty are settled when the reward is written (they
//! depend on what the referred user brought before, read in that transaction's round):
//! [`capped`] and [`bounty_for`]. Refunds follow what the reward recorded
//! ([`crate::lifecycle`]'s `net`). Also here: the policy in effect for a user
//! ([`EffectivePolicy`]) and the default group as the configuration defines it.

use std::collections::BTreeMap;

use crate::config::MarketConfig;
use crate::error::MarketError;
use crate::group::{Cap, CapInterval, Condition, EarnedTerms, GroupName, Modifier, Payout, RewardGroup, RewardRules, RECENT_DAYS};
use crate::inbound::OrderPaid;
use crate::limits::{TriggerLimit, MAX_ACTIVE_CODES_CAP};
use crate::money::{commission, Bps, Money};
use crate::policy::AffiliatePolicy;
use crate::time::Timestamp;

/// The policy that applies to a user as an inviter, after defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectivePolicy {
    pub commission_bps: Bps,
    pub trigger_limit: TriggerLimit,
    pub max_active_codes: u32,
    pub affiliate_enabled: bool,
}

impl EffectivePolicy {
    pub fn resolve(policy: Option<&AffiliatePolicy>, config: &MarketConfig) -> Self {
        EffectivePolicy {
            commission_bps: policy.and_then(|p| p.commission_bps).unwrap_or(config.default_commission_bps),
            trigger_limit: policy.and_then(|p| p.trigger_limit).unwrap_or(config.default_trigger_limit),
            max_active_codes: policy
                .and_then(|p| p.max_active_codes)
                .unwrap_or(config.max_active_codes)
                .clamp(1, MAX_ACTIVE_CODES_CAP),
            affiliate_enabled: policy.and_then(|p| p.affiliate_enabled).unwrap_or(true),
        }
    }
}

/// The `default` group before an admin defines it: the configuration's rates, version 0.
pub fn default_group(config: &MarketConfig) -> RewardGroup {
    RewardGroup {
        name: GroupName::default_group(),
        version: 0,
        rules: RewardRules {
            payout: Payout::Percentage { bps: config.default_commission_bps },
            trigger_limit: config.default_trigger_limit,
            duration_months: None,
            cap: None,
            modifiers: Vec::new(),
            bounty: None,
            level_bps: config.level_bps.clone(),
        },
        description: String::new(),
        updated_at: None,
        updated_by: None,
    }
}

/// What a payout is worth on an amount: `floor(amount × bps / 10000)`, or the flat amount
/// but at most the order's.
pub fn payout_on(payout: Payout, amount: Money) -> Result<Money, MarketError> {
    match payout {
        Payout::Percentage { bps } => commission(amount, bps),
        Payout::Flat { amount: flat } => Ok(flat.min(amount).max(Money::ZERO)),
    }
}

/// Why a paid order earns nothing under the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unpaid {
    TriggerLimitReached,
    /// Paid after the group's duration since the referral.
    OutsideDuration,
    ZeroReward,
}

/// A sale's reward as decided when the order is paid (the cap and the bounty are settled
/// when it is written). It travels with the reward event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SaleReward {
    pub payout: Payout,
    /// The sale part before the cap.
    pub reward: Money,
    pub trigger_limit: TriggerLimit,
    pub cap: Option<Cap>,
    /// The group's sign-up bounty, paid if this turns out to be the referred user's first
    /// rewarded order.
    pub bounty: Option<Money>,
    pub group: GroupName,
    pub version: u64,
    pub modifier: Option<String>,
    pub own_rate: bool,
    pub level_bps: Vec<Bps>,
}

/// The affiliate's performance tiers look at (each read only when a modifier asks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Performance {
    /// Referred users who brought at least one reward.
    pub paying_referrals: u64,
    /// Earned (as earned, every level) in the [`RECENT_DAYS`] UTC days up to the order's.
    pub earned_recently: Money,
}

/// What the inviter's paid order from `buyer` earns under `group`, given the inviter's
/// performance.
pub fn sale_reward(group: &RewardGroup, inviter: Option<&AffiliatePolicy>, performance: Performance, buyer: &AffiliatePolicy, order: &OrderPaid) -> Result<Result<SaleReward, Unpaid>, MarketError> {
    let rules = &group.rules;
    let mut limit = inviter.and_then(|p| p.trigger_limit).unwrap_or(rules.trigger_limit);
    match rules.duration_months {
        // The first order only: the trigger count holds it, in the reward's transaction.
        Some(0) => limit = TriggerLimit::limited(1)?,
        Some(months) => {
            if let Some(referred) = buyer.registered_at {
                if order.occurred_at >= plus_months(referred, months) {
                    return Ok(Err(Unpaid::OutsideDuration));
                }
            }
        }
        None => {}
    }
    if !limit.allows_another(buyer.rewards_triggered) {
        return Ok(Err(Unpaid::TriggerLimitReached));
    }
    let own = inviter.and_then(|p| p.commission_bps);
    let (payout, modifier) = match own {
        Some(bps) => (Payout::Percentage { bps }, None),
        None => match rules.modifiers.iter().find(|m| matches(m, order, performance)) {
            Some(m) => (m.payout, Some(m.name.clone())),
            None => (rules.payout, None),
        },
    };
    let reward = payout_on(payout, order.amount)?;
    let bounty = rules.bounty.map(|b| b.amount).filter(|_| buyer.rewards_triggered == 0);
    if !reward.is_positive() && bounty.is_none() {
        return Ok(Err(Unpaid::ZeroReward));
    }
    Ok(Ok(SaleReward {
        payout,
        reward,
        trigger_limit: limit,
        cap: rules.cap,
        bounty,
        group: group.name.clone(),
        version: group.version,
        modifier,
        own_rate: own.is_some(),
        level_bps: rules.level_bps.clone(),
    }))
}

/// Whether every condition of a modifier holds for the order.
fn matches(m: &Modifier, order: &OrderPaid, performance: Performance) -> bool {
    m.when.iter().all(|c| match c {
        Condition::ProductIn { products } => order.product_id.as_ref().is_some_and(|p| products.contains(p)),
        Condition::AmountAtLeast { amount } => order.amount >= *amount,
        Condition::AmountAtMost { amount } => order.amount <= *amount,
        Condition::Kind { kind } => order.kind == Some(*kind),
        Condition::PayingReferralsAtLeast { count } => performance.paying_referrals >= *count,
        Condition::EarnedRecentlyAtLeast { amount } => performance.earned_recently >= *amount,
    })
}

/// `at` plus whole calendar months in UTC, the day clamped to the month's last (Jan 31 + 1
/// month = Feb 28/29), the time of day kept.
pub fn plus_months(at: Timestamp, months: u32) -> Timestamp {
    let Ok(dt) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.millis()) * 1_000_000) else { return at };
    let index = i64::from(dt.year()) * 12 + i64::from(u8::from(dt.month())) - 1 + i64::from(months);
    let (Ok(year), Ok(month)) = (i32::try_from(index.div_euclid(12)), u8::try_from(index.rem_euclid(12) + 1)) else { return Timestamp::from_millis(i64::MAX) };
    let Ok(month) = time::Month::try_from(month) else { return at };
    let day = dt.day().min(month.length(year));
    match time::Date::from_calendar_date(year, month, day) {
        Ok(date) => {
            let ms = date.with_time(dt.time()).assume_utc().unix_timestamp_nanos() / 1_000_000;
            Timestamp::from_millis(i64::try_from(ms).unwrap_or(i64::MAX))
        }
        Err(_) => Timestamp::from_millis(i64::MAX),
    }
}

/// The cap's interval an order paid at `at` counts in: `day:2026-12-07`,
/// `week:2026-W50` (ISO weeks, from Monday), `month:2026-12`, `all`. UTC throughout.
pub fn cap_window(interval: CapInterval, at: Timestamp) -> String {
    match interval {
        CapInterval::Day => format!("day:{}", at.utc_day()),
        CapInterval::Month => format!("month:{}", &at.utc_day()[..7]),
        CapInterval::AllTime => "all".into(),
        CapInterval::Week => match time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.millis()) * 1_000_000) {
            Ok(dt) => {
                let (year, week, _) = dt.to_iso_week_date();
                format!("week:{year:04}-W{week:02}")
            }
            Err(_) => "week:?".into(),
        },
    }
}

/// Windows of a referred user's cap usage kept on their policy, per interval: the newest
/// (a month of daily windows and then some; an order older than those by its window counts
/// from 0). Every interval's windows are kept apart, so a group changed from a daily to a
/// weekly cap and back finds the day's usage again.
pub const CAP_WINDOWS_KEPT: usize = 40;

/// A referred user's cap usage: what their orders earned the inviter per window.
pub type CapUsage = BTreeMap<String, i64>;

/// The sale part a cap lets through (`reward` at most what is left of the window), and the
/// usage after it.
pub fn capped(cap: Cap, used: &CapUsage, at: Timestamp, reward: Money) -> Result<(Money, CapUsage), MarketError> {
    let window = cap_window(cap.interval, at);
    let so_far = used.get(&window).copied().unwrap_or(0);
    let left = cap.amount.minor().saturating_sub(so_far).max(0);
    let allowed = reward.minor().clamp(0, left);
    let total = so_far.checked_add(allowed).ok_or(MarketError::Overflow)?;
    let mut after = used.clone();
    let interval = |k: &str| k.split(':').next().unwrap_or_default().to_owned();
    let mine = interval(&window);
    after.insert(window, total);
    // The oldest of this interval's windows beyond the bound (keys sort by date within one).
    let kept: Vec<String> = after.keys().filter(|k| interval(k) == mine).cloned().collect();
    for old in kept.iter().take(kept.len().saturating_sub(CAP_WINDOWS_KEPT)) {
        after.remove(old);
    }
    Ok((Money::from_minor(allowed), after))
}

/// The bounty a reward carries: the group's, on the referred user's first rewarded order
/// (their trigger count as the reward's transaction reads it).
pub fn bounty_for(sale: &SaleReward, triggered_before: u32) -> Option<Money> {
    sale.bounty.filter(|_| triggered_before == 0)
}

/// What the reward records of its rule, once the cap and the bounty are settled.
pub fn earned_terms(sale: &SaleReward, capped_at: Option<Money>, bounty: Option<Money>) -> EarnedTerms {
    EarnedTerms {
        group: sale.group.clone(),
        version: sale.version,
        modifier: sale.modifier.clone(),
        own_rate: sale.own_rate,
        flat: match sale.payout {
            Payout::Flat { .. } => Some(sale.reward),
            Payout::Percentage { .. } => None,
        },
        capped_at,
        bounty,
    }
}

/// A level's commission records its share under the same group and version.
pub fn level_terms(sale: &SaleReward) -> EarnedTerms {
    EarnedTerms { group: sale.group.clone(), version: sale.version, modifier: None, own_rate: false, flat: None, capped_at: None, bounty: None }
}

/// The UTC days a recent-earnings tier sums for an order paid at `at`, first and last.
pub fn recent_days(at: Timestamp) -> (String, String) {
    let days = at.utc_days_back(RECENT_DAYS - 1);
    (days.first().cloned().unwrap_or_default(), at.utc_day())
}

/// An affiliate's standing in their group's tiers (the modifiers whose conditions are all
/// on the affiliate's performance): the first that holds (the one that pays), and the next
/// one up (listed just before it; with none reached, the last listed), with what it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierStanding {
    pub current: Option<String>,
    pub next: Option<NextTier>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextTier {
    pub name: String,
    /// How many more paying referred users, and how much more recent earnings, it takes.
    pub more_referrals: u64,
    pub more_earned: Money,
}

pub fn tier_standing(rules: &RewardRules, p: Performance) -> TierStanding {
    let tier = |m: &Modifier| m.when.iter().all(|c| matches!(c, Condition::PayingReferralsAtLeast { .. } | Condition::EarnedRecentlyAtLeast { .. }));
    let tiers: Vec<&Modifier> = rules.modifiers.iter().filter(|m| tier(m)).collect();
    let reached = |m: &Modifier| {
        m.when.iter().all(|c| match c {
            Condition::PayingReferralsAtLeast { count } => p.paying_referrals >= *count,
            Condition::EarnedRecentlyAtLeast { amount } => p.earned_recently >= *amount,
            _ => false,
        })
    };
    let current = tiers.iter().position(|m| reached(m));
    let next = match current {
        Some(i) => tiers[..i].iter().rev().find(|m| !reached(m)),
        None => tiers.last(),
    };
    TierStanding {
        current: current.map(|i| tiers[i].name.clone()),
        next: next.map(|m| {
            let (mut more_referrals, mut more_earned) = (0, 0);
            for c in &m.when {
                match c {
                    Condition::PayingReferralsAtLeast { count } => more_referrals = more_referrals.max(count.saturating_sub(p.paying_referrals)),
                    Condition::EarnedRecentlyAtLeast { amount } => more_earned = more_earned.max(amount.minor().saturating_sub(p.earned_recently.minor()).max(0)),
                    _ => {}
                }
            }
            NextTier { name: m.name.clone(), more_referrals, more_earned: Money::from_minor(more_earned) }
        }),
    }
}

#[cfg(test)]
mod tests;
