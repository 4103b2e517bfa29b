//! Conversions of reward groups and their rules: domain -> proto for responses, proto ->
//! domain with validation for `PutRewardGroup` (a bad value is INVALID_ARGUMENT).

use market_domain::group::{Bounty, BountyTrigger, Cap, CapInterval, Condition, GroupName, Modifier, Payout, RewardGroup, RewardRules};
use market_domain::ids::ProductId;
use market_domain::inbound::OrderKind;
use market_domain::money::{Bps, Money};
use market_domain::rules::{Performance, TierStanding};
use market_domain::MarketError;

use crate::admin::{limit_from_proto, limit_to_proto};
use crate::{timestamp, v1};

fn invalid(msg: &str) -> MarketError {
    MarketError::InvalidArgument(msg.into())
}

fn payout_to_proto(p: Payout) -> v1::Payout {
    use v1::payout::Payout as P;
    v1::Payout {
        payout: Some(match p {
            Payout::Percentage { bps } => P::PercentageBps(bps.into()),
            Payout::Flat { amount } => P::FlatAmount(amount.minor()),
        }),
    }
}

fn payout_from_proto(p: Option<&v1::Payout>, what: &str) -> Result<Payout, MarketError> {
    use v1::payout::Payout as P;
    match p.and_then(|p| p.payout.as_ref()) {
        Some(P::PercentageBps(bps)) => Ok(Payout::Percentage { bps: Bps::new(*bps)? }),
        Some(P::FlatAmount(amount)) => Ok(Payout::Flat { amount: Money::from_minor(*amount) }),
        None => Err(MarketError::InvalidArgument(format!("{what}: a payout (percentage_bps or flat_amount) is required"))),
    }
}

fn interval_to_proto(i: CapInterval) -> v1::CapInterval {
    match i {
        CapInterval::Day => v1::CapInterval::Day,
        CapInterval::Week => v1::CapInterval::Week,
        CapInterval::Month => v1::CapInterval::Month,
        CapInterval::AllTime => v1::CapInterval::AllTime,
    }
}

fn interval_from_proto(i: i32) -> Result<CapInterval, MarketError> {
    match v1::CapInterval::try_from(i) {
        Ok(v1::CapInterval::Day) => Ok(CapInterval::Day),
        Ok(v1::CapInterval::Week) => Ok(CapInterval::Week),
        Ok(v1::CapInterval::Month) => Ok(CapInterval::Month),
        Ok(v1::CapInterval::AllTime) => Ok(CapInterval::AllTime),
        _ => Err(invalid("a cap's interval is day, week, month or all_time")),
    }
}

fn kind_to_proto(k: OrderKind) -> v1::OrderKind {
    match k {
        OrderKind::New => v1::OrderKind::New,
        OrderKind::Renewal => v1::OrderKind::Renewal,
    }
}

fn condition_to_proto(c: &Condition) -> v1::RuleCondition {
    use v1::rule_condition::Condition as C;
    v1::RuleCondition {
        condition: Some(match c {
            Condition::ProductIn { products } => C::ProductIn(v1::ProductSet { products: products.iter().map(ToString::to_string).collect() }),
            Condition::AmountAtLeast { amount } => C::AmountAtLeast(amount.minor()),
            Condition::AmountAtMost { amount } => C::AmountAtMost(amount.minor()),
            Condition::Kind { kind } => C::Kind(kind_to_proto(*kind).into()),
            Condition::PayingReferralsAtLeast { count } => C::PayingReferralsAtLeast(*count),
            Condition::EarnedRecentlyAtLeast { amount } => C::EarnedRecentlyAtLeast(amount.minor()),
        }),
    }
}

fn condition_from_proto(c: &v1::RuleCondition) -> Result<Condition, MarketError> {
    use v1::rule_condition::Condition as C;
    Ok(match c.condition.as_ref() {
        Some(C::ProductIn(set)) => Condition::ProductIn { products: set.products.iter().map(|p| ProductId::parse(p.as_str())).collect::<Result<_, _>>()? },
        Some(C::AmountAtLeast(a)) => Condition::AmountAtLeast { amount: Money::from_minor(*a) },
        Some(C::AmountAtMost(a)) => Condition::AmountAtMost { amount: Money::from_minor(*a) },
        Some(C::Kind(k)) => Condition::Kind {
            kind: match v1::OrderKind::try_from(*k) {
                Ok(v1::OrderKind::New) => OrderKind::New,
                Ok(v1::OrderKind::Renewal) => OrderKind::Renewal,
                _ => return Err(invalid("an order kind is new or renewal")),
            },
        },
        Some(C::PayingReferralsAtLeast(n)) => Condition::PayingReferralsAtLeast { count: *n },
        Some(C::EarnedRecentlyAtLeast(a)) => Condition::EarnedRecentlyAtLeast { amount: Money::from_minor(*a) },
        None => return Err(invalid("a condition must be set")),
    })
}

pub fn rules_to_proto(r: &RewardRules) -> v1::RewardRules {
    v1::RewardRules {
        payout: Some(payout_to_proto(r.payout)),
        trigger_limit: limit_to_proto(Some(r.trigger_limit)),
        duration_months: r.duration_months,
        cap: r.cap.map(|c| v1::RewardCap { interval: interval_to_proto(c.interval).into(), amount: c.amount.minor() }),
        modifiers: r
            .modifiers
            .iter()
            .map(|m| v1::RewardModifier { name: m.name.clone(), when: m.when.iter().map(condition_to_proto).collect(), payout: Some(payout_to_proto(m.payout)) })
            .collect(),
        bounty: r.bounty.map(|b| v1::SignUpBounty {
            amount: b.amount.minor(),
            on: match b.on {
                BountyTrigger::FirstPayment => v1::BountyTrigger::FirstPayment.into(),
            },
        }),
        level_bps: r.level_bps.iter().map(|b| u32::from(b.get())).collect(),
    }
}

/// A group's rules as an admin sent them (validated by the processor).
pub fn rules_from_proto(r: Option<&v1::RewardRules>) -> Result<RewardRules, MarketError> {
    let r = r.ok_or_else(|| invalid("a group needs rules"))?;
    Ok(RewardRules {
        payout: payout_from_proto(r.payout.as_ref(), "payout")?,
        trigger_limit: limit_from_proto(r.trigger_limit.as_ref())?.ok_or_else(|| invalid("trigger_limit must be a count or unlimited"))?,
        duration_months: r.duration_months,
        cap: r.cap.as_ref().map(|c| Ok::<_, MarketError>(Cap { interval: interval_from_proto(c.interval)?, amount: Money::from_minor(c.amount) })).transpose()?,
        modifiers: r
            .modifiers
            .iter()
            .map(|m| {
                Ok(Modifier {
                    name: m.name.clone(),
                    when: m.when.iter().map(condition_from_proto).collect::<Result<_, MarketError>>()?,
                    payout: payout_from_proto(m.payout.as_ref(), &m.name)?,
                })
            })
            .collect::<Result<_, MarketError>>()?,
        bounty: r
            .bounty
            .as_ref()
            .map(|b| match v1::BountyTrigger::try_from(b.on) {
                Ok(v1::BountyTrigger::FirstPayment) => Ok(Bounty { amount: Money::from_minor(b.amount), on: BountyTrigger::FirstPayment }),
                _ => Err(invalid("a bounty is paid on first_payment")),
            })
            .transpose()?,
        level_bps: r.level_bps.iter().map(|b| Bps::new(*b)).collect::<Result<_, _>>()?,
    })
}

pub fn group_to_proto(g: &RewardGroup) -> v1::RewardGroup {
    v1::RewardGroup {
        name: g.name.to_string(),
        version: g.version,
        rules: Some(rules_to_proto(&g.rules)),
        description: g.description.clone(),
        updated_at: g.updated_at.map(timestamp),
        updated_by: g.updated_by.clone().unwrap_or_default(),
    }
}

/// A group as an admin sent it: its name, rules and description.
pub fn group_from_proto(g: Option<&v1::RewardGroup>) -> Result<(GroupName, RewardRules, String), MarketError> {
    let g = g.ok_or_else(|| invalid("a group is required"))?;
    Ok((GroupName::parse(g.name.as_str())?, rules_from_proto(g.rules.as_ref())?, g.description.clone()))
}

/// The caller's group as `GetAffiliateStats` shows it.
pub fn affiliate_group(group: &RewardGroup, own_bps: Option<Bps>, performance: Performance, tier: &TierStanding) -> v1::AffiliateGroup {
    v1::AffiliateGroup {
        group: Some(group_to_proto(group)),
        own_commission_bps: own_bps.map(u32::from),
        paying_referrals: performance.paying_referrals,
        current_tier: tier.current.clone().unwrap_or_default(),
        next_tier: tier.next.as_ref().map(|n| n.name.clone()).unwrap_or_default(),
        paying_referrals_to_next_tier: tier.next.as_ref().map_or(0, |n| n.more_referrals),
        earned_to_next_tier: tier.next.as_ref().map_or(0, |n| n.more_earned.minor()),
        earned_recently: performance.earned_recently.minor(),
    }
}
