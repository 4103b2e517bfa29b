//! Limits every layer names: how many orders of a referred user pay, and the bound of any
//! code limit.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::num::NonZeroU32;

use crate::error::MarketError;

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
}
