//! Conversions for `MarketAdminService`: domain -> proto for responses, and proto -> domain
//! with validation for requests (a bad value is INVALID_ARGUMENT, nothing written).

use market_domain::admin::{ConfigField, PolicyField, UserPolicyView};
use market_domain::audit::AuditRecord;
use market_domain::config::MarketConfig;
use market_domain::group::GroupName;
use market_domain::lifecycle::Commission;
use market_domain::model::{HistoryItem, LedgerEntry};
use market_domain::time::Timestamp;
use market_domain::money::{Bps, Currency, Money};
use market_domain::policy::TriggerLimit;
use market_domain::ports::PolicyOverrides;
use market_domain::MarketError;

use crate::timestamp;
use crate::{history, v1};

pub(crate) fn limit_to_proto(l: Option<TriggerLimit>) -> Option<v1::TriggerLimit> {
    use v1::trigger_limit::Limit;
    l.map(|l| v1::TriggerLimit {
        limit: Some(match l {
            TriggerLimit::Limited(n) => Limit::Count(n.get()),
            TriggerLimit::Unlimited => Limit::Unlimited(true),
        }),
    })
}

/// `None` = not set (a cleared override); a count of 0 is rejected, never "unlimited".
pub(crate) fn limit_from_proto(l: Option<&v1::TriggerLimit>) -> Result<Option<TriggerLimit>, MarketError> {
    use v1::trigger_limit::Limit;
    match l.and_then(|l| l.limit.as_ref()) {
        None | Some(Limit::Unlimited(false)) => Ok(None),
        Some(Limit::Unlimited(true)) => Ok(Some(TriggerLimit::Unlimited)),
        Some(Limit::Count(n)) => TriggerLimit::limited(*n).map(Some),
    }
}

pub fn user_policy(v: &UserPolicyView) -> v1::UserPolicy {
    let o = &v.overrides;
    v1::UserPolicy {
        user_id: v.user.to_string(),
        overrides: Some(v1::PolicyOverrides {
            commission_bps: o.commission_bps.map(u32::from),
            trigger_limit: limit_to_proto(o.trigger_limit),
            max_active_codes: o.max_active_codes,
            affiliate_enabled: o.affiliate_enabled,
            group: o.group.as_ref().map(ToString::to_string),
        }),
        effective: Some((&v.effective).into()),
        inviter: v.policy.as_ref().and_then(|p| p.inviter.as_ref()).map(ToString::to_string).unwrap_or_default(),
        rewards_triggered: v.policy.as_ref().map_or(0, |p| p.rewards_triggered),
        registered_at: v.policy.as_ref().and_then(|p| p.registered_at).map(timestamp),
    }
}

/// The listed fields' new values (unlisted ones are ignored).
pub fn policy_change(o: Option<&v1::PolicyOverrides>, fields: &[String]) -> Result<(PolicyOverrides, Vec<PolicyField>), MarketError> {
    let fields = fields.iter().map(|f| PolicyField::parse(f)).collect::<Result<Vec<_>, _>>()?;
    let default = v1::PolicyOverrides::default();
    let o = o.unwrap_or(&default);
    let values = PolicyOverrides {
        commission_bps: o.commission_bps.map(Bps::new).transpose()?,
        trigger_limit: limit_from_proto(o.trigger_limit.as_ref())?,
        max_active_codes: o.max_active_codes,
        affiliate_enabled: o.affiliate_enabled,
        group: o.group.as_deref().filter(|g| !g.is_empty()).map(GroupName::parse).transpose()?,
    };
    Ok((values, fields))
}

pub fn market_config(c: &MarketConfig) -> v1::MarketConfig {
    v1::MarketConfig {
        enabled: c.enabled,
        default_commission_bps: c.default_commission_bps.into(),
        default_trigger_limit: limit_to_proto(Some(c.default_trigger_limit)),
        max_active_codes: c.max_active_codes,
        min_withdraw_amount: c.min_withdraw_amount.minor(),
        currency: c.currency.to_string(),
        code_expiry_days: c.code_expiry_days,
        code_retention_days: c.code_retention_days,
        holding_period_days: c.holding_period_days,
        level_bps: c.level_bps.iter().map(|b| u32::from(b.get())).collect(),
        resolve_per_hour: c.resolve_per_hour,
        codes_created_per_day: c.codes_created_per_day,
        review_referrals_per_hour: c.review_referrals_per_hour,
        review_min_seconds: c.review_min_seconds,
        registration_wait_days: c.registration_wait_days,
        version: c.version,
        lifecycle_events: c.lifecycle_events,
    }
}

/// Only the listed fields are read (and must be valid); the rest of the result is unused.
pub fn config_change(c: Option<&v1::MarketConfig>, fields: &[String]) -> Result<(MarketConfig, Vec<ConfigField>), MarketError> {
    let fields = fields.iter().map(|f| ConfigField::parse(f)).collect::<Result<Vec<_>, _>>()?;
    let default = v1::MarketConfig::default();
    let c = c.unwrap_or(&default);
    let mut values = MarketConfig::default();
    for field in &fields {
        match field {
            ConfigField::Enabled => values.enabled = c.enabled,
            ConfigField::DefaultCommissionBps => values.default_commission_bps = Bps::new(c.default_commission_bps)?,
            ConfigField::DefaultTriggerLimit => {
                values.default_trigger_limit = limit_from_proto(c.default_trigger_limit.as_ref())?
                    .ok_or_else(|| MarketError::InvalidArgument("default_trigger_limit must be a count or unlimited".into()))?
            }
            ConfigField::MaxActiveCodes => values.max_active_codes = c.max_active_codes,
            ConfigField::MinWithdrawAmount => values.min_withdraw_amount = Money::from_minor(c.min_withdraw_amount),
            ConfigField::Currency => values.currency = Currency::parse(&c.currency)?,
            ConfigField::CodeExpiryDays => values.code_expiry_days = c.code_expiry_days,
            ConfigField::CodeRetentionDays => values.code_retention_days = c.code_retention_days,
            ConfigField::HoldingPeriodDays => values.holding_period_days = c.holding_period_days,
            ConfigField::ResolvePerHour => values.resolve_per_hour = c.resolve_per_hour,
            ConfigField::CodesCreatedPerDay => values.codes_created_per_day = c.codes_created_per_day,
            ConfigField::ReviewReferralsPerHour => values.review_referrals_per_hour = c.review_referrals_per_hour,
            ConfigField::ReviewMinSeconds => values.review_min_seconds = c.review_min_seconds,
            ConfigField::RegistrationWaitDays => values.registration_wait_days = c.registration_wait_days,
            ConfigField::LifecycleEvents => values.lifecycle_events = c.lifecycle_events,
            ConfigField::LevelBps => values.level_bps = c.level_bps.iter().map(|b| Bps::new(*b)).collect::<Result<_, _>>()?,
        }
    }
    Ok((values, fields))
}

/// A reward with its state now, as the admin sees it (with the referred user).
pub fn reward_entry(c: &Commission, now: Timestamp) -> Option<v1::RewardEntry> {
    let r = history::reward(c, now)?;
    Some(v1::RewardEntry {
        order_id: r.order_id,
        referred_user_id: c.buyer.to_string(),
        order_amount: r.order_amount,
        commission_bps: r.commission_bps,
        reward: r.reward,
        currency: r.currency,
        at: r.earned_at,
        amount: r.amount,
        status: r.status,
        pending_until: r.pending_until,
        refunded_amount: r.refunded_amount,
        level: r.level,
        rule: r.rule,
        bounty: r.bounty,
    })
}

/// A commission in the review queue: its earner, its state now and why it is held.
pub fn held_reward(c: &Commission, now: Timestamp) -> Option<v1::HeldReward> {
    let reason = c.earned.as_ref()?.hold?;
    Some(v1::HeldReward { user_id: c.user_id.to_string(), reward: reward_entry(c, now), reason: reason.as_str().to_owned() })
}

/// One row of the admin's `ListLedger` (`None`: not shown, e.g. a refund-only commission).
pub fn ledger_entry(item: &HistoryItem, now: Timestamp) -> Option<v1::LedgerEntry> {
    use v1::ledger_entry::Entry;
    let entry = match item {
        HistoryItem::Commission(c) => Entry::Reward(reward_entry(c, now)?),
        HistoryItem::Entry(e @ LedgerEntry::Withdrawal { .. }) => Entry::Withdrawal(history::withdrawal(e)?),
        HistoryItem::Entry(e @ LedgerEntry::Reversal { .. }) => Entry::Reversal(history::reversal(e)?),
        HistoryItem::Entry(e @ LedgerEntry::Adjustment { .. }) => Entry::Adjustment(history::adjustment(e)?),
        HistoryItem::Entry(LedgerEntry::Reward { .. }) => return None,
    };
    Some(v1::LedgerEntry { entry: Some(entry) })
}

pub fn audit_record(r: &AuditRecord) -> v1::AuditRecord {
    v1::AuditRecord {
        at: Some(timestamp(r.at)),
        action: r.action.as_str().to_owned(),
        actor: r.actor.to_string(),
        request_id: r.request_id.clone(),
        details_json: r.details.to_string(),
    }
}
