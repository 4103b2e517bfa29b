//! The module configuration: one JSON document (in Redis, written by the Manage module).
//! Every field has a built-in default so a partial or missing document still works.

use serde::{Deserialize, Serialize};

use crate::error::MarketError;
use crate::money::{Bps, Currency, Money};
use crate::limits::{TriggerLimit, MAX_ACTIVE_CODES_CAP};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MarketConfig {
    /// The document's version: each change through the admin API writes the next, only over
    /// the version it read, and its audit records (requested, then changed) name it, so every
    /// version in the store has its audit record written first. 0 = never changed through it.
    pub version: u64,
    /// Master switch: when off, no rewards are earned and no codes are created.
    pub enabled: bool,
    pub default_commission_bps: Bps,
    pub default_trigger_limit: TriggerLimit,
    pub max_active_codes: u32,
    pub min_withdraw_amount: Money,
    pub currency: Currency,
    /// 0 = codes never expire.
    pub code_expiry_days: u32,
    /// How long a deactivated code is kept before DynamoDB TTL removes it.
    pub code_retention_days: u32,
    /// Days a reward stays `pending` before it can be withdrawn (0 = available at once).
    /// The period in force when a reward is earned is the one that applies to it.
    pub holding_period_days: u32,
    /// The share of an order paid to the inviter's inviter (level 2) and to theirs (level
    /// 3), e.g. `[500, 200]`; empty = single level. Level 1 is the inviter's own rate.
    pub level_bps: Vec<Bps>,
    /// `ResolveInviteCode` checks allowed per caller address per hour (a token bucket of
    /// [`RESOLVE_BURST`] refilled at this rate); 0 = no limit of our own (API Gateway's
    /// route throttling still applies).
    pub resolve_per_hour: u32,
    /// Code churn: invite codes one user may create per UTC day (deleted ones count);
    /// 0 = no limit. Over it, `RESOURCE_EXHAUSTED` until the next UTC day.
    pub codes_created_per_day: u32,
    /// Referral velocity: an inviter's referrals beyond this many in one UTC hour are
    /// flagged, and the rewards their orders bring are held for review; 0 = off.
    pub review_referrals_per_hour: u32,
    /// Orders paid within this many seconds of the buyer's registration bring rewards held
    /// for review; 0 = off.
    pub review_min_seconds: u32,
    /// How long an order or refund of a buyer whose registration the market has not seen
    /// waits for it (arrival order: the events travel on different queues). After it, the
    /// event is dropped, audited on the buyer and counted (users who never register with
    /// the market, e.g. from before its deployment). 0 = do not wait.
    pub registration_wait_days: u32,
    /// Publish the commission lifecycle (earned, matured, reversed, approved, adjusted; a
    /// withdrawal's event always goes out) with each affiliate's gap-free sequence. Off, an
    /// affiliate's rewards spread over the statistics shards instead of queueing on the
    /// sequence: for a programme whose busiest affiliate earns more than ~50 rewards a second.
    pub lifecycle_events: bool,
}

/// Checks one address may make back to back before the hourly rate applies.
pub const RESOLVE_BURST: u32 = 10;

/// Levels paid above the inviter (`level_bps` holds at most this many rates).
pub const MAX_EXTRA_LEVELS: usize = 2;

/// Default of `registration_wait_days`: SQS's longest retention, so a registration the
/// platform's own queue could still hold is still waited for.
pub const DEFAULT_REGISTRATION_WAIT_DAYS: u32 = 14;

/// Upper bound of `registration_wait_days`.
pub const MAX_REGISTRATION_WAIT_DAYS: u32 = 90;

/// Upper bound of `holding_period_days`.
pub const MAX_HOLDING_PERIOD_DAYS: u32 = 365;

impl Default for MarketConfig {
    fn default() -> Self {
        MarketConfig {
            version: 0,
            enabled: true,
            default_commission_bps: Bps::from_const(1000),
            default_trigger_limit: TriggerLimit::Unlimited,
            max_active_codes: 5,
            min_withdraw_amount: Money::from_minor(100),
            currency: Currency::usd(),
            code_expiry_days: 0,
            code_retention_days: 30,
            holding_period_days: 0,
            level_bps: Vec::new(),
            resolve_per_hour: 60,
            codes_created_per_day: 0,
            review_referrals_per_hour: 0,
            review_min_seconds: 0,
            registration_wait_days: DEFAULT_REGISTRATION_WAIT_DAYS,
            lifecycle_events: true,
        }
    }
}

impl MarketConfig {
    /// Parses and validates a configuration document.
    pub fn from_json(doc: &str) -> Result<Self, MarketError> {
        let config: MarketConfig = serde_json::from_str(doc)
            .map_err(|e| MarketError::InvalidArgument(format!("invalid market config: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    /// The document as stored.
    pub fn to_json(&self) -> Result<String, MarketError> {
        serde_json::to_string(self).map_err(|e| MarketError::Internal(Box::new(e)))
    }

    /// Rules serde cannot express (rates and trigger limits validate while parsing).
    pub fn validate(&self) -> Result<(), MarketError> {
        if !(1..=MAX_ACTIVE_CODES_CAP).contains(&self.max_active_codes) {
            return Err(MarketError::InvalidArgument(format!(
                "max_active_codes must be 1 to {MAX_ACTIVE_CODES_CAP}"
            )));
        }
        if self.min_withdraw_amount.minor() < 0 {
            return Err(MarketError::InvalidArgument("min_withdraw_amount must be at least 0".into()));
        }
        if self.code_retention_days == 0 {
            return Err(MarketError::InvalidArgument("code_retention_days must be at least 1".into()));
        }
        if self.holding_period_days > MAX_HOLDING_PERIOD_DAYS {
            return Err(MarketError::InvalidArgument(format!(
                "holding_period_days must be 0 to {MAX_HOLDING_PERIOD_DAYS}"
            )));
        }
        if self.registration_wait_days > MAX_REGISTRATION_WAIT_DAYS {
            return Err(MarketError::InvalidArgument(format!(
                "registration_wait_days must be 0 to {MAX_REGISTRATION_WAIT_DAYS}"
            )));
        }
        if self.level_bps.len() > MAX_EXTRA_LEVELS {
            return Err(MarketError::InvalidArgument(format!(
                "level_bps holds at most {MAX_EXTRA_LEVELS} rates (levels 2 and 3)"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_a_partial_document() {
        let c = MarketConfig::from_json(r#"{"currency":"EUR","default_trigger_limit":2}"#).unwrap();
        assert_eq!(c.currency.as_str(), "EUR");
        assert_eq!(c.default_trigger_limit, TriggerLimit::limited(2).unwrap());
        assert_eq!(c.max_active_codes, 5);
        assert!(MarketConfig::default().validate().is_ok());
        let levels = MarketConfig::from_json(r#"{"level_bps":[500,200]}"#).unwrap();
        assert_eq!(levels.level_bps.iter().map(|b| b.get()).collect::<Vec<_>>(), [500, 200]);
        assert!(MarketConfig::default().level_bps.is_empty(), "single level unless configured");
    }

    #[test]
    fn invalid_documents_are_rejected() {
        for doc in [
            r#"{"default_commission_bps":10001}"#,
            r#"{"default_trigger_limit":0}"#,
            r#"{"max_active_codes":0}"#,
            r#"{"min_withdraw_amount":-1}"#,
            r#"{"currency":"euro"}"#,
            r#"{"code_retention_days":0}"#,
            r#"{"holding_period_days":366}"#,
            r#"{"level_bps":[500,200,100]}"#,
            r#"{"level_bps":[10001]}"#,
            r#"not json"#,
        ] {
            assert!(MarketConfig::from_json(doc).is_err(), "{doc}");
        }
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(ProptestConfig::default().cases.max(2000)))]
        /// The Redis document is untrusted too: any text is a valid config or InvalidArgument.
        #[test]
        fn fuzz_config_document(raw in ".{0,200}", bps in any::<i64>(), limit in any::<i64>(), codes in any::<i64>(), holding in any::<i64>(), cur in ".{0,5}") {
            let structured = serde_json::json!({"default_commission_bps": bps, "default_trigger_limit": limit, "max_active_codes": codes,
                                                "holding_period_days": holding, "currency": cur}).to_string();
            for doc in [raw, structured] {
                match MarketConfig::from_json(&doc) {
                    Ok(c) => prop_assert!(c.validate().is_ok()),
                    Err(e) => prop_assert!(matches!(e, MarketError::InvalidArgument(_))),
                }
            }
        }
    }
}

