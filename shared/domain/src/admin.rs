//! Administrative operations (the admin API): read and change a user's policy overrides and
//! the global configuration, list a user's ledger and audit trail. The transport checks the
//! admin claim; these processors validate, apply, and audit with the admin as actor.

use std::sync::Arc;

use serde_json::json;
use tracing::info;

use crate::audit::{Actor, AuditAction, AuditRecord, MARKET_SUBJECT};
use crate::config::MarketConfig;
use crate::error::MarketError;
use crate::ids::UserId;
use crate::policy::{AffiliatePolicy, MAX_ACTIVE_CODES_CAP};
use crate::rules::EffectivePolicy;
use crate::ports::{ConfigSource, ConfigStore, MarketStore, Page, PolicyOverrides, PolicyUpdate};
use crate::processors::{Deps, Processor};

pub use crate::request::{AdminRequest, ListRequest, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::request::page_size;

pub struct UserPolicyView {
    pub user: UserId,
    /// The stored policy (absent for a user never registered nor configured).
    pub policy: Option<AffiliatePolicy>,
    pub overrides: PolicyOverrides,
    pub effective: EffectivePolicy,
}

fn view(user: UserId, policy: Option<AffiliatePolicy>, overrides: PolicyOverrides, config: &MarketConfig) -> UserPolicyView {
    let mut effective_source = policy.clone().unwrap_or_else(|| AffiliatePolicy::new(user.clone()));
    effective_source.commission_bps = overrides.commission_bps;
    effective_source.trigger_limit = overrides.trigger_limit;
    effective_source.max_active_codes = overrides.max_active_codes;
    effective_source.affiliate_enabled = overrides.affiliate_enabled;
    effective_source.group = overrides.group.clone();
    let effective = EffectivePolicy::resolve(Some(&effective_source), config);
    UserPolicyView { user, policy, overrides, effective }
}

// ---------------------------------------------------------------- policy

pub struct GetUserPolicy<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> Processor for GetUserPolicy<S, C> {
    type Request = UserId;
    type Response = UserPolicyView;

    async fn process(&self, user: UserId) -> Result<UserPolicyView, MarketError> {
        let (policy, config) = futures::join!(self.0.store.get_policy(&user), self.0.config.current());
        let policy = policy?;
        let overrides = PolicyOverrides::of(policy.as_ref());
        Ok(view(user, policy, overrides, &config))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyField {
    CommissionBps,
    TriggerLimit,
    MaxActiveCodes,
    AffiliateEnabled,
    /// The reward group (cleared: the default group).
    Group,
}

impl PolicyField {
    pub fn parse(name: &str) -> Result<Self, MarketError> {
        Ok(match name {
            "commission_bps" => PolicyField::CommissionBps,
            "trigger_limit" => PolicyField::TriggerLimit,
            "max_active_codes" => PolicyField::MaxActiveCodes,
            "affiliate_enabled" => PolicyField::AffiliateEnabled,
            "group" => PolicyField::Group,
            other => return Err(MarketError::InvalidArgument(format!("unknown policy field {other:?}"))),
        })
    }
}

pub struct PolicyChange {
    pub user: UserId,
    /// New values of the listed fields (`None` = clear: the global default applies).
    pub values: PolicyOverrides,
    pub fields: Vec<PolicyField>,
}

/// Rounds of read-compare-write before giving up on a policy another writer keeps changing.
const POLICY_ATTEMPTS: usize = 5;

pub struct UpdateUserPolicy<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> Processor for UpdateUserPolicy<S, C> {
    type Request = AdminRequest<PolicyChange>;
    type Response = UserPolicyView;

    async fn process(&self, req: AdminRequest<PolicyChange>) -> Result<UserPolicyView, MarketError> {
        let change = &req.body;
        if change.fields.is_empty() {
            return Err(MarketError::InvalidArgument("no fields to update".into()));
        }
        if let Some(n) = change.values.max_active_codes {
            if !(1..=MAX_ACTIVE_CODES_CAP).contains(&n) {
                return Err(MarketError::InvalidArgument(format!("max_active_codes must be 1 to {MAX_ACTIVE_CODES_CAP}")));
            }
        }
        let d = &self.0;
        if let Some(group) = change.values.group.as_ref().filter(|g| !g.is_default() && change.fields.contains(&PolicyField::Group)) {
            // Groups are never deleted, so one that exists now still does when the move lands.
            if d.store.get_group(group).await?.is_none() {
                return Err(MarketError::InvalidArgument(format!("no reward group {group:?}")));
            }
        }
        for _ in 0..POLICY_ATTEMPTS {
            let (policy, config) = futures::join!(d.store.get_policy(&change.user), d.config.current());
            let policy = policy?;
            let before = PolicyOverrides::of(policy.as_ref());
            let mut after = before.clone();
            for field in &change.fields {
                match field {
                    PolicyField::CommissionBps => after.commission_bps = change.values.commission_bps,
                    PolicyField::TriggerLimit => after.trigger_limit = change.values.trigger_limit,
                    PolicyField::MaxActiveCodes => after.max_active_codes = change.values.max_active_codes,
                    PolicyField::AffiliateEnabled => after.affiliate_enabled = change.values.affiliate_enabled,
                    // The default group is the absence of one.
                    PolicyField::Group => after.group = change.values.group.clone().filter(|g| !g.is_default()),
                }
            }
            if after == before {
                return Ok(view(change.user.clone(), policy, after, &config));
            }
            let audit = AuditRecord::new(
                &change.user,
                d.clock.now(),
                AuditAction::PolicyChanged,
                Actor::Admin(req.admin.clone()),
                req.request_id.clone(),
                json!({"before": overrides_json(&before), "after": overrides_json(&after)}),
            );
            let update = PolicyUpdate { user: change.user.clone(), before, after: after.clone(), audit };
            if d.store.update_policy(&update).await? {
                info!(admin = %req.admin, user_id = %change.user, request_id = %req.request_id, "policy changed");
                return Ok(view(change.user.clone(), policy, after, &config));
            }
        }
        Err(MarketError::Contention)
    }
}

fn overrides_json(o: &PolicyOverrides) -> serde_json::Value {
    json!({
        "commission_bps": o.commission_bps, "trigger_limit": o.trigger_limit,
        "max_active_codes": o.max_active_codes, "affiliate_enabled": o.affiliate_enabled, "group": o.group,
    })
}

// ---------------------------------------------------------------- configuration

/// The configuration processors also need the configuration's store (Redis).
pub struct ConfigDeps<S, C, K> {
    pub deps: Deps<S, C>,
    pub configs: Arc<K>,
}

impl<S, C, K> Clone for ConfigDeps<S, C, K> {
    fn clone(&self) -> Self {
        ConfigDeps { deps: self.deps.clone(), configs: self.configs.clone() }
    }
}

impl<S: MarketStore, C: ConfigSource, K: ConfigStore> ConfigDeps<S, C, K> {
    /// The stored document, or what the functions use without one.
    async fn stored_or_current(&self) -> Result<MarketConfig, MarketError> {
        Ok(self.stored().await?.1)
    }

    /// Whether a document is stored, and the configuration in force (that document, or what
    /// the functions use without one).
    async fn stored(&self) -> Result<(bool, MarketConfig), MarketError> {
        Ok(match self.configs.read().await? {
            Some(config) => (true, config),
            None => (false, self.deps.config.current().await),
        })
    }
}

pub struct GetMarketConfig<S, C, K>(pub ConfigDeps<S, C, K>);

impl<S: MarketStore, C: ConfigSource, K: ConfigStore> Processor for GetMarketConfig<S, C, K> {
    type Request = ();
    type Response = MarketConfig;

    async fn process(&self, _: ()) -> Result<MarketConfig, MarketError> {
        self.0.stored_or_current().await
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigField {
    Enabled,
    DefaultCommissionBps,
    DefaultTriggerLimit,
    MaxActiveCodes,
    MinWithdrawAmount,
    Currency,
    CodeExpiryDays,
    CodeRetentionDays,
    HoldingPeriodDays,
    LevelBps,
    ResolvePerHour,
    CodesCreatedPerDay,
    ReviewReferralsPerHour,
    ReviewMinSeconds,
    RegistrationWaitDays,
    LifecycleEvents,
}

impl ConfigField {
    pub fn parse(name: &str) -> Result<Self, MarketError> {
        Ok(match name {
            "enabled" => ConfigField::Enabled,
            "default_commission_bps" => ConfigField::DefaultCommissionBps,
            "default_trigger_limit" => ConfigField::DefaultTriggerLimit,
            "max_active_codes" => ConfigField::MaxActiveCodes,
            "min_withdraw_amount" => ConfigField::MinWithdrawAmount,
            "currency" => ConfigField::Currency,
            "code_expiry_days" => ConfigField::CodeExpiryDays,
            "code_retention_days" => ConfigField::CodeRetentionDays,
            "holding_period_days" => ConfigField::HoldingPeriodDays,
            "level_bps" => ConfigField::LevelBps,
            "resolve_per_hour" => ConfigField::ResolvePerHour,
            "codes_created_per_day" => ConfigField::CodesCreatedPerDay,
            "review_referrals_per_hour" => ConfigField::ReviewReferralsPerHour,
            "review_min_seconds" => ConfigField::ReviewMinSeconds,
            "registration_wait_days" => ConfigField::RegistrationWaitDays,
            "lifecycle_events" => ConfigField::LifecycleEvents,
            other => return Err(MarketError::InvalidArgument(format!("unknown config field {other:?}"))),
        })
    }
}

pub struct ConfigChange {
    /// New values of the listed fields (the others are ignored).
    pub values: MarketConfig,
    pub fields: Vec<ConfigField>,
}

pub struct UpdateMarketConfig<S, C, K>(pub ConfigDeps<S, C, K>);

impl<S: MarketStore, C: ConfigSource, K: ConfigStore> Processor for UpdateMarketConfig<S, C, K> {
    type Request = AdminRequest<ConfigChange>;
    type Response = MarketConfig;

    async fn process(&self, req: AdminRequest<ConfigChange>) -> Result<MarketConfig, MarketError> {
        let change = &req.body;
        if change.fields.is_empty() {
            return Err(MarketError::InvalidArgument("no fields to update".into()));
        }
        let (stored, before) = self.0.stored().await?;
        let mut after = before.clone();
        let v = &change.values;
        for field in &change.fields {
            match field {
                ConfigField::Enabled => after.enabled = v.enabled,
                ConfigField::DefaultCommissionBps => after.default_commission_bps = v.default_commission_bps,
                ConfigField::DefaultTriggerLimit => after.default_trigger_limit = v.default_trigger_limit,
                ConfigField::MaxActiveCodes => after.max_active_codes = v.max_active_codes,
                ConfigField::MinWithdrawAmount => after.min_withdraw_amount = v.min_withdraw_amount,
                ConfigField::Currency => after.currency = v.currency.clone(),
                ConfigField::CodeExpiryDays => after.code_expiry_days = v.code_expiry_days,
                ConfigField::CodeRetentionDays => after.code_retention_days = v.code_retention_days,
                ConfigField::HoldingPeriodDays => after.holding_period_days = v.holding_period_days,
                ConfigField::LevelBps => after.level_bps = v.level_bps.clone(),
                ConfigField::ResolvePerHour => after.resolve_per_hour = v.resolve_per_hour,
                ConfigField::CodesCreatedPerDay => after.codes_created_per_day = v.codes_created_per_day,
                ConfigField::ReviewReferralsPerHour => after.review_referrals_per_hour = v.review_referrals_per_hour,
                ConfigField::ReviewMinSeconds => after.review_min_seconds = v.review_min_seconds,
                ConfigField::RegistrationWaitDays => after.registration_wait_days = v.registration_wait_days,
                ConfigField::LifecycleEvents => after.lifecycle_events = v.lifecycle_events,
            }
        }
        // Nothing is written unless the whole document is valid.
        after.validate()?;
        // Unchanged: nothing to write, unless no document is stored (Redis restarted empty):
        // then `before` is only this container's last good value and the write must happen.
        if stored && after == before {
            return Ok(after);
        }
        // Redis has no transactions with DynamoDB, so no change may reach the store before
        // its record: the intent is recorded first, with the version it will write; the write
        // takes only over the version read; its outcome is recorded after.
        after.version = before.version.checked_add(1).ok_or(MarketError::Overflow)?;
        let record = |action: AuditAction, details: serde_json::Value| AuditRecord {
            subject: MARKET_SUBJECT.to_owned(),
            at: self.0.deps.clock.now(),
            action,
            actor: Actor::Admin(req.admin.clone()),
            request_id: req.request_id.clone(),
            details,
            about: None,
        };
        let change = json!({"version": after.version, "before": before, "after": after});
        self.0.deps.store.put_audit(&record(AuditAction::ConfigChangeRequested, change.clone())).await?;
        let failed = |reason: &str| record(AuditAction::ConfigChangeFailed, json!({"version": after.version, "reason": reason}));
        match self.0.configs.write(&after, before.version).await {
            Ok(true) => self.0.deps.store.put_audit(&record(AuditAction::ConfigChanged, change)).await?,
            Ok(false) => {
                // Best effort: the request record already says nothing was written over it.
                let _ = self.0.deps.store.put_audit(&failed("conflict")).await;
                return Err(MarketError::Contention);
            }
            Err(e) => {
                // Unknown whether the store took it; the stored version will say.
                let _ = self.0.deps.store.put_audit(&failed("unavailable")).await;
                return Err(e);
            }
        }
        info!(admin = %req.admin, request_id = %req.request_id, "market config changed");
        Ok(after)
    }
}

// ---------------------------------------------------------------- listings

/// Whose trail to list.
pub enum TrailOf {
    User(UserId),
    MarketConfig,
}

pub struct ListAuditTrail<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> Processor for ListAuditTrail<S, C> {
    type Request = ListRequest<TrailOf>;
    type Response = Page<AuditRecord>;

    async fn process(&self, req: ListRequest<TrailOf>) -> Result<Page<AuditRecord>, MarketError> {
        let size = page_size(req.page_size)?;
        let subject = match &req.of {
            TrailOf::User(u) => u.as_str(),
            TrailOf::MarketConfig => MARKET_SUBJECT,
        };
        self.0.store.list_audit(subject, req.page_token.as_deref(), size).await
    }
}
