//! Per-user affiliate policy and its resolution against the global configuration.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::num::NonZeroU32;

use crate::code::InviteCode;
use crate::config::MarketConfig;
use crate::error::MarketError;
use crate::ids::{EventId, UserId};
use crate::money::Bps;
use crate::time::Timestamp;

/// Upper bound for any `max_active_codes`: keeps a code-creation transaction (which may also
/// release expired codes) far inside DynamoDB's 100-item transaction limit.
pub const MAX_ACTIVE_CODES_CAP: u32 = 50;

/// How many paid orders of each referred user reward the inviter. "Unlimited" is its own
/// value; a count is at least 1, so a stray 0 can never mean "unlimited" (or "never").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TriggerLimit {
    Limited(NonZeroU32),
    Unlimited,
}

impl TriggerLimit {
    pub fn limited(n: u32) -> Result<Self, MarketError> {
        NonZeroU32::new(n)
            .map(TriggerLimit::Limited)
            .ok_or_else(|| MarketError::InvalidArgument("trigger limit must be at least 1 or unlimited".into()))
    }
    /// Whether a user who already triggered `triggered` rewards may trigger one more.
    pub fn allows_another(self, triggered: u32) -> bool {
        match self {
            TriggerLimit::Limited(n) => triggered < n.get(),
            TriggerLimit::Unlimited => true,
        }
    }
}

/// Wire/storage form: a positive number, or the string `"unlimited"`.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum TriggerLimitRepr {
    Count(u64),
    Word(String),
}

impl Serialize for TriggerLimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TriggerLimit::Limited(n) => TriggerLimitRepr::Count(u64::from(n.get())),
            TriggerLimit::Unlimited => TriggerLimitRepr::Word("unlimited".into()),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for TriggerLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match TriggerLimitRepr::deserialize(d)? {
            TriggerLimitRepr::Word(w) if w == "unlimited" => Ok(TriggerLimit::Unlimited),
            TriggerLimitRepr::Word(_) => Err(D::Error::custom("trigger limit must be a number or \"unlimited\"")),
            TriggerLimitRepr::Count(n) => u32::try_from(n)
                .ok()
                .and_then(NonZeroU32::new)
                .map(TriggerLimit::Limited)
                .ok_or_else(|| D::Error::custom("trigger limit must be at least 1 or \"unlimited\"")),
        }
    }
}

/// A user's stored policy. `None` overrides mean "use the global default".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AffiliatePolicy {
    pub user_id: UserId,
    /// Who referred this user; written once, at registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inviter: Option<UserId>,
    /// The code this user registered with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_code: Option<InviteCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commission_bps: Option<Bps>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_limit: Option<TriggerLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active_codes: Option<u32>,
    /// Absent = enabled; an admin switches it off explicitly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affiliate_enabled: Option<bool>,
    /// How many of this user's orders already rewarded their inviter.
    #[serde(default)]
    pub rewards_triggered: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_at: Option<Timestamp>,
    /// The event that registered this user, and why its code gave no referral: a retry of
    /// that event (a lost response) gets the first outcome again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_event: Option<EventId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_rejected: Option<crate::ports::ReferralRejection>,
    /// Set at registration when an abuse rule flagged this referral: the rewards of this
    /// user's orders are held for review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_reason: Option<crate::model::HoldReason>,
    /// On an erased user's policy (under their pseudonym): when the erasure completed, and
    /// the user's `available` then (what a forfeit debits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_at_erasure: Option<crate::money::Money>,
}

impl AffiliatePolicy {
    pub fn new(user_id: UserId) -> Self {
        AffiliatePolicy {
            user_id,
            inviter: None,
            invite_code: None,
            commission_bps: None,
            trigger_limit: None,
            max_active_codes: None,
            affiliate_enabled: None,
            rewards_triggered: 0,
            registered_at: None,
            registration_event: None,
            registration_rejected: None,
            review_reason: None,
            erased_at: None,
            available_at_erasure: None,
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_limit_serde_distinguishes_unlimited_from_zero() {
        assert_eq!(serde_json::from_str::<TriggerLimit>("\"unlimited\"").unwrap(), TriggerLimit::Unlimited);
        assert_eq!(serde_json::from_str::<TriggerLimit>("3").unwrap(), TriggerLimit::limited(3).unwrap());
        assert!(serde_json::from_str::<TriggerLimit>("0").is_err());
        assert!(serde_json::from_str::<TriggerLimit>("\"lots\"").is_err());
        assert_eq!(serde_json::to_string(&TriggerLimit::Unlimited).unwrap(), "\"unlimited\"");
        assert!(TriggerLimit::limited(0).is_err());
    }

    #[test]
    fn limits_count_correctly() {
        let one = TriggerLimit::limited(1).unwrap();
        assert!(one.allows_another(0));
        assert!(!one.allows_another(1));
        assert!(TriggerLimit::Unlimited.allows_another(u32::MAX));
    }

    #[test]
    fn overrides_win_over_defaults() {
        let config = MarketConfig::default();
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
}
