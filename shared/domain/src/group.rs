//! A reward group: a named, versioned set of reward rules every affiliate of the group earns
//! under (value types and their validation; what an order pays under them is
//! [`crate::rules`]). The `default` group holds every affiliate not moved elsewhere; until
//! an admin defines it, its rules are the configuration's (`default_commission_bps`,
//! `default_trigger_limit`, `level_bps`), version 0.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::error::MarketError;
use crate::ids::ProductId;
use crate::inbound::OrderKind;
use crate::limits::TriggerLimit;
use crate::money::{Bps, Money};
use crate::time::Timestamp;

/// The group of every affiliate nobody moved.
pub const DEFAULT_GROUP: &str = "default";

/// Modifiers one group may hold (each is evaluated per order).
pub const MAX_MODIFIERS: usize = 10;
/// Conditions of one modifier, and products one condition may list.
pub const MAX_CONDITIONS: usize = 5;
pub const MAX_PRODUCTS: usize = 50;
/// Longest duration window, in months.
pub const MAX_DURATION_MONTHS: u32 = 120;

/// A group's name: 1–40 of `a-z`, `0-9`, `-`, `_` (a key part, shown in histories).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GroupName(String);

impl GroupName {
    pub fn parse(value: impl Into<String>) -> Result<Self, MarketError> {
        let value = value.into();
        let ok = (1..=40).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !ok {
            return Err(MarketError::InvalidArgument("a group name is 1 to 40 of a-z, 0-9, '-' and '_'".into()));
        }
        Ok(GroupName(value))
    }
    pub fn default_group() -> Self {
        GroupName(DEFAULT_GROUP.into())
    }
    pub fn is_default(&self) -> bool {
        self.0 == DEFAULT_GROUP
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for GroupName {
    type Error = MarketError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<GroupName> for String {
    fn from(value: GroupName) -> String {
        value.0
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a sale pays: a share of the order, or a fixed amount (at most the order's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Payout {
    Percentage { bps: Bps },
    Flat { amount: Money },
}

impl Payout {
    /// How a history names it: "25 %" / "12.50 flat" (minor units as a decimal with 2 places).
    pub fn describe(&self) -> String {
        match self {
            Payout::Percentage { bps } => {
                let b = bps.get();
                if b % 100 == 0 { format!("{} %", b / 100) } else { format!("{}.{:02} %", b / 100, b % 100) }
            }
            Payout::Flat { amount } => format!("{} flat", amount.minor()),
        }
    }
}

/// The interval a cap counts in, in UTC: a calendar day, an ISO week (from Monday), a
/// calendar month, or ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapInterval {
    Day,
    Week,
    Month,
    AllTime,
}

/// At most `amount` earned from one referred user's orders per interval (everything earned
/// in it counts, whatever has happened to it since).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cap {
    pub interval: CapInterval,
    pub amount: Money,
}

/// One condition of a modifier: on the order, or on the affiliate's performance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Condition {
    /// The order's `product_id` is one of these (an order without one never matches).
    ProductIn { products: Vec<ProductId> },
    AmountAtLeast { amount: Money },
    AmountAtMost { amount: Money },
    /// The order's `kind` (an order without one never matches).
    Kind { kind: OrderKind },
    /// The affiliate's referred users who brought at least one reward (a tier).
    PayingReferralsAtLeast { count: u64 },
    /// What the affiliate earned (as earned, every level) in the [`RECENT_DAYS`] UTC days up
    /// to the order's (a tier).
    EarnedRecentlyAtLeast { amount: Money },
}

/// The window of [`Condition::EarnedRecentlyAtLeast`]: the order's UTC day and the 29 before.
pub const RECENT_DAYS: u32 = 30;

/// Evaluated in order; the first whose conditions all hold replaces the base payout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Modifier {
    /// What a history shows when it decided a reward ("tier 2", "first order").
    pub name: String,
    pub when: Vec<Condition>,
    pub payout: Payout,
}

/// When a sign-up bounty is earned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BountyTrigger {
    /// With the referred user's first rewarded order (no bounty for a sign-up that never pays).
    FirstPayment,
}

/// A flat amount per referred user, paid once with their first rewarded order and voided
/// with that order's full refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bounty {
    pub amount: Money,
    pub on: BountyTrigger,
}

/// A group's rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardRules {
    pub payout: Payout,
    pub trigger_limit: TriggerLimit,
    /// Only orders paid within this many calendar months of the referral earn; 0 = only the
    /// referred user's first rewarded order; absent = no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_months: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<Cap>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modifiers: Vec<Modifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounty: Option<Bounty>,
    /// The shares of levels 2 and 3 (at most 2 rates).
    #[serde(default)]
    pub level_bps: Vec<Bps>,
}

/// A group as stored: its rules at a version (1, 2, ... each change the next; 0 = the
/// default group as the configuration defines it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardGroup {
    pub name: GroupName,
    pub version: u64,
    pub rules: RewardRules,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
}

/// What a reward records of the rule that paid it (with the reward, in its one
/// transaction): refunds follow it, histories explain it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarnedTerms {
    pub group: GroupName,
    pub version: u64,
    /// The modifier that replaced the base payout (`None`: the base payout, or the
    /// affiliate's own rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modifier: Option<String>,
    /// The affiliate's own `commission_bps` paid, not the group's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub own_rate: bool,
    /// A flat sale reward (at most the order amount): kept whole until a full refund.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flat: Option<Money>,
    /// The most the sale part may be: what the cap allowed when it was earned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capped_at: Option<Money>,
    /// A sign-up bounty paid with this order (voided by its full refund).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounty: Option<Money>,
}

impl EarnedTerms {
    /// What a history shows: "group vip v3 · tier 2", "default · sign-up bounty".
    pub fn describe(&self) -> String {
        let mut parts = vec![if self.version == 0 { format!("group {}", self.group) } else { format!("group {} v{}", self.group, self.version) }];
        if let Some(m) = &self.modifier {
            parts.push(m.clone());
        }
        if self.own_rate {
            parts.push("own rate".into());
        }
        if self.capped_at.is_some() {
            parts.push("capped".into());
        }
        if self.bounty.is_some() {
            parts.push("sign-up bounty".into());
        }
        parts.join(" · ")
    }
}

fn invalid(msg: impl Into<String>) -> MarketError {
    MarketError::InvalidArgument(msg.into())
}

impl Payout {
    fn validate(&self, what: &str) -> Result<(), MarketError> {
        match self {
            Payout::Flat { amount } if !amount.is_positive() => Err(invalid(format!("{what}: a flat reward must be positive"))),
            _ => Ok(()),
        }
    }
}

impl RewardRules {
    /// Rules serde cannot express.
    pub fn validate(&self, max_levels: usize) -> Result<(), MarketError> {
        self.payout.validate("payout")?;
        if self.duration_months.is_some_and(|m| m > MAX_DURATION_MONTHS) {
            return Err(invalid(format!("duration_months must be 0 to {MAX_DURATION_MONTHS}")));
        }
        if self.cap.is_some_and(|c| !c.amount.is_positive()) {
            return Err(invalid("a cap must be positive"));
        }
        if self.bounty.is_some_and(|b| !b.amount.is_positive()) {
            return Err(invalid("a bounty must be positive"));
        }
        if self.level_bps.len() > max_levels {
            return Err(invalid(format!("level_bps holds at most {max_levels} rates (levels 2 and 3)")));
        }
        if self.modifiers.len() > MAX_MODIFIERS {
            return Err(invalid(format!("a group holds at most {MAX_MODIFIERS} modifiers")));
        }
        for m in &self.modifiers {
            let name_ok = (1..=40).contains(&m.name.chars().count()) && !m.name.chars().any(char::is_control);
            if !name_ok {
                return Err(invalid("a modifier's name is 1 to 40 characters"));
            }
            if m.when.is_empty() || m.when.len() > MAX_CONDITIONS {
                return Err(invalid(format!("modifier {:?}: 1 to {MAX_CONDITIONS} conditions", m.name)));
            }
            m.payout.validate(&m.name)?;
            for c in &m.when {
                match c {
                    Condition::ProductIn { products } if products.is_empty() || products.len() > MAX_PRODUCTS => {
                        return Err(invalid(format!("modifier {:?}: product_in lists 1 to {MAX_PRODUCTS} products", m.name)));
                    }
                    Condition::AmountAtLeast { amount } | Condition::AmountAtMost { amount } | Condition::EarnedRecentlyAtLeast { amount } if amount.minor() < 0 => {
                        return Err(invalid(format!("modifier {:?}: an amount bound is at least 0", m.name)));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Whether a modifier looks at the affiliate's paying referrals (the decision then reads
    /// the affiliate's statistics).
    pub fn needs_paying_referrals(&self) -> bool {
        self.modifiers.iter().flat_map(|m| &m.when).any(|c| matches!(c, Condition::PayingReferralsAtLeast { .. }))
    }

    /// Whether a modifier looks at what the affiliate earned recently (the decision then reads
    /// their daily earnings).
    pub fn needs_recent_earnings(&self) -> bool {
        self.modifiers.iter().flat_map(|m| &m.when).any(|c| matches!(c, Condition::EarnedRecentlyAtLeast { .. }))
    }
}

impl RewardGroup {
    pub fn validate(&self, max_levels: usize) -> Result<(), MarketError> {
        if self.description.chars().count() > 200 {
            return Err(invalid("a group's description is at most 200 characters"));
        }
        self.rules.validate(max_levels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> RewardRules {
        RewardRules {
            payout: Payout::Percentage { bps: Bps::from_const(1000) },
            trigger_limit: TriggerLimit::Unlimited,
            duration_months: None,
            cap: None,
            modifiers: Vec::new(),
            bounty: None,
            level_bps: Vec::new(),
        }
    }

    #[test]
    fn names() {
        assert!(GroupName::parse("vip-2026_a").is_ok());
        for bad in ["", "VIP", "a b", "x#y", &"a".repeat(41)] {
            assert!(GroupName::parse(bad).is_err(), "{bad}");
        }
        assert!(GroupName::default_group().is_default());
    }

    #[test]
    fn rules_round_trip_as_json() {
        let mut r = rules();
        r.cap = Some(Cap { interval: CapInterval::Month, amount: Money::from_minor(5000) });
        r.modifiers.push(Modifier {
            name: "tier 2".into(),
            when: vec![Condition::PayingReferralsAtLeast { count: 50 }, Condition::Kind { kind: OrderKind::Renewal }],
            payout: Payout::Percentage { bps: Bps::from_const(2500) },
        });
        r.bounty = Some(Bounty { amount: Money::from_minor(500), on: BountyTrigger::FirstPayment });
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""type":"paying_referrals_at_least","count":50"#), "{json}");
        assert_eq!(serde_json::from_str::<RewardRules>(&json).unwrap(), r);
        assert!(r.needs_paying_referrals() && !r.needs_recent_earnings());
        assert!(r.validate(2).is_ok());
    }

    #[test]
    fn invalid_rules_are_refused() {
        let flat0 = RewardRules { payout: Payout::Flat { amount: Money::ZERO }, ..rules() };
        let long = RewardRules { duration_months: Some(121), ..rules() };
        let cap0 = RewardRules { cap: Some(Cap { interval: CapInterval::Day, amount: Money::ZERO }), ..rules() };
        let levels = RewardRules { level_bps: vec![Bps::from_const(1); 3], ..rules() };
        let empty = RewardRules { modifiers: vec![Modifier { name: "x".into(), when: vec![], payout: Payout::Percentage { bps: Bps::from_const(1) } }], ..rules() };
        let products = RewardRules {
            modifiers: vec![Modifier { name: "x".into(), when: vec![Condition::ProductIn { products: vec![] }], payout: Payout::Percentage { bps: Bps::from_const(1) } }],
            ..rules()
        };
        for r in [flat0, long, cap0, levels, empty, products] {
            assert!(r.validate(2).is_err(), "{r:?}");
        }
        assert_eq!(Payout::Percentage { bps: Bps::from_const(2550) }.describe(), "25.50 %");
        assert_eq!(Payout::Percentage { bps: Bps::from_const(2500) }.describe(), "25 %");
    }
}
