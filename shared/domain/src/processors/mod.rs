//! One processor per business operation, as in the original market module. Each takes a
//! validated request (the caller already authenticated by the transport), applies the rules
//! and asks the store to apply the decision atomically.

use std::future::Future;
use std::sync::Arc;

use tracing::{info, warn};

use serde_json::json;

mod balance;
mod history;
mod maturity;
mod refunds;
mod resolve;
mod reversal;
mod review;
mod rewards;

pub use balance::*;
pub use history::*;
pub use maturity::*;
pub use refunds::*;
pub use resolve::*;
pub use reversal::*;
pub use review::*;
pub use rewards::*;

use crate::audit::{Actor, AuditAction, AuditRecord};
use crate::code::InviteCode;
use crate::error::MarketError;
use crate::ids::{EventId, IdempotencyKey, UserId};
use crate::model::{AffiliateStats, InviteCodeRecord};
use crate::policy::EffectivePolicy;
use crate::model::HoldReason;
use crate::ports::{
    ConfigSource, Deactivation, MarketStore, NewCode, Referral, ReferralRejection, Registration,
    RegistrationOutcome, VelocityCount,
};
use crate::time::{Clock, SystemClock, Timestamp};

/// How many due-but-not-yet-folded commissions a read counts (the scheduled catch-up keeps
/// this small; it bounds the read, not correctness of money movements).
pub const DUE_READ_LIMIT: usize = 1000;

/// The interface every operation implements.
pub trait Processor: Send + Sync {
    type Request: Send;
    type Response: Send;
    fn process(&self, request: Self::Request) -> impl Future<Output = Result<Self::Response, MarketError>> + Send;
}

/// What every processor is built from: built once per cold start, cloned cheaply.
pub struct Deps<S, C> {
    pub store: Arc<S>,
    pub config: Arc<C>,
    pub clock: Arc<dyn Clock>,
}

impl<S, C> Clone for Deps<S, C> {
    fn clone(&self) -> Self {
        Deps { store: self.store.clone(), config: self.config.clone(), clock: self.clock.clone() }
    }
}

impl<S: MarketStore, C: ConfigSource> Deps<S, C> {
    pub fn new(store: S, config: C) -> Self {
        Deps { store: Arc::new(store), config: Arc::new(config), clock: Arc::new(SystemClock) }
    }
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

// ---------------------------------------------------------------- GetAffiliateStats

pub struct AffiliateOverview {
    /// Exact at the moment of the call: matured rewards count as available.
    pub stats: AffiliateStats,
    /// When the next pending reward becomes available.
    pub next_release_at: Option<Timestamp>,
    pub policy: EffectivePolicy,
    /// Usable (active, unexpired) codes, newest first.
    pub codes: Vec<InviteCodeRecord>,
    /// The deployment's currency the amounts are in.
    pub currency: crate::money::Currency,
    /// The smallest withdrawal the market accepts (a form checks it before sending).
    pub min_withdraw_amount: crate::money::Money,
}

pub struct GetAffiliateStats<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> Processor for GetAffiliateStats<S, C> {
    type Request = UserId;
    type Response = AffiliateOverview;

    async fn process(&self, caller: UserId) -> Result<AffiliateOverview, MarketError> {
        let d = &self.0;
        let now = d.clock.now();
        // One parallel round trip of three requests (each opens a connection on a cold start).
        let (stats_and_policy, codes, config, pending) = futures::join!(
            d.store.get_stats_and_policy(&caller),
            d.store.list_active_codes(&caller),
            d.config.current(),
            d.store.pending_commissions(&caller, now, DUE_READ_LIMIT)
        );
        let ((stats, policy), pending) = (stats_and_policy?, pending?);
        Ok(AffiliateOverview {
            stats: stats.live(&pending.due),
            next_release_at: pending.next_release,
            policy: EffectivePolicy::resolve(policy.as_ref(), &config),
            codes: codes?.into_iter().filter(|c| c.is_usable(now)).collect(),
            currency: config.currency,
            min_withdraw_amount: config.min_withdraw_amount,
        })
    }
}

// ---------------------------------------------------------------- ListInviteCodes

pub struct ListInviteCodes<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> Processor for ListInviteCodes<S, C> {
    type Request = UserId;
    type Response = Vec<InviteCodeRecord>;

    async fn process(&self, caller: UserId) -> Result<Vec<InviteCodeRecord>, MarketError> {
        let now = self.0.clock.now();
        let codes = self.0.store.list_active_codes(&caller).await?;
        Ok(codes.into_iter().filter(|c| c.is_usable(now)).collect())
    }
}

// ---------------------------------------------------------------- CreateInviteCode

/// Attempts for a fresh code or after losing a race on an expired code's slot.
const CREATE_ATTEMPTS: usize = 5;

pub type CodeGenerator = Arc<dyn Fn() -> InviteCode + Send + Sync>;

pub struct CreateInviteCode<S, C> {
    deps: Deps<S, C>,
    generate: CodeGenerator,
}

impl<S, C> CreateInviteCode<S, C> {
    pub fn new(deps: Deps<S, C>) -> Self {
        CreateInviteCode { deps, generate: Arc::new(InviteCode::generate) }
    }
    /// Tests use this to force collisions.
    pub fn with_generator(mut self, generate: CodeGenerator) -> Self {
        self.generate = generate;
        self
    }
}

/// A code for `owner`; with a key, a retry gets the code the first request created.
#[derive(Debug, Clone)]
pub struct NewCodeRequest {
    pub owner: UserId,
    pub idempotency_key: Option<IdempotencyKey>,
}

impl From<UserId> for NewCodeRequest {
    fn from(owner: UserId) -> Self {
        NewCodeRequest { owner, idempotency_key: None }
    }
}

impl<S: MarketStore, C: ConfigSource> CreateInviteCode<S, C> {
    /// The first outcome of a keyed request: the code it created, as it is now.
    async fn replay(&self, code: &InviteCode) -> Result<InviteCodeRecord, MarketError> {
        self.deps.store.get_code(code).await?.ok_or_else(|| MarketError::internal("a keyed request's code is missing"))
    }
}

impl<S: MarketStore, C: ConfigSource> Processor for CreateInviteCode<S, C> {
    type Request = NewCodeRequest;
    type Response = InviteCodeRecord;

    async fn process(&self, req: NewCodeRequest) -> Result<InviteCodeRecord, MarketError> {
        let d = &self.deps;
        let caller = req.owner;
        // One parallel round trip of reads (SPEC §7); only a retry re-reads the codes.
        let earlier = async {
            match &req.idempotency_key {
                Some(key) => d.store.code_for_request(&caller, key).await,
                None => Ok(None),
            }
        };
        let (policy, config, active, earlier) =
            futures::join!(d.store.get_policy(&caller), d.config.current(), d.store.list_active_codes(&caller), earlier);
        if let Some(code) = earlier? {
            return self.replay(&code).await;
        }
        let policy = EffectivePolicy::resolve(policy?.as_ref(), &config);
        if !config.enabled {
            return Err(MarketError::MarketDisabled);
        }
        if !policy.affiliate_enabled {
            return Err(MarketError::AffiliateDisabled);
        }
        let mut active = Some(active?);
        let mut last_error = MarketError::Contention;
        for _ in 0..CREATE_ATTEMPTS {
            let now = d.clock.now();
            let active = match active.take() {
                Some(codes) => codes,
                None => d.store.list_active_codes(&caller).await?,
            };
            let release_expired: Vec<InviteCode> =
                active.iter().filter(|c| c.is_expired(now)).map(|c| c.code.clone()).collect();
            // Fast path only; the store's condition on the slot counter is what holds the limit.
            if active.len() - release_expired.len() >= policy.max_active_codes as usize {
                return Err(MarketError::CodeLimitReached);
            }
            let record = InviteCodeRecord {
                code: (self.generate)(),
                owner_id: caller.clone(),
                active: true,
                created_at: now,
                expires_at: (config.code_expiry_days > 0).then(|| now.plus_days(config.code_expiry_days)),
                registrations: 0,
                deactivated_at: None,
            };
            let actor = Actor::User(caller.clone());
            let mut audit = Vec::new();
            if !release_expired.is_empty() {
                // One record for all: a transaction holds at most 100 items.
                audit.push(AuditRecord::new(&caller, now, AuditAction::CodeExpired, Actor::System("market".into()), record.code.as_str(), json!({
                    "codes": release_expired, "released_for": record.code,
                })));
            }
            audit.push(AuditRecord::new(&caller, now, AuditAction::CodeCreated, actor, record.code.as_str(), json!({
                "code": record.code, "expires_at": record.expires_at, "max_active_codes": policy.max_active_codes,
            })));
            let new = NewCode {
                record,
                request_key: req.idempotency_key.clone(),
                max_active: policy.max_active_codes,
                release_expired,
                purge_at: now.plus_days(config.code_retention_days),
                audit,
                per_day: (config.codes_created_per_day > 0).then_some(config.codes_created_per_day),
            };
            match d.store.create_code(&new).await {
                Ok(Some(first)) => return self.replay(&first).await,
                Ok(None) => {
                    info!(user_id = %caller, code = %new.record.code, "invite code created");
                    return Ok(new.record);
                }
                Err(MarketError::RateLimited { .. }) => {
                    // Until the next UTC day; audited (nothing else is written), anchored on
                    // the code that was not created (each refusal its own record).
                    let retry_after = std::time::Duration::from_millis(u64::try_from(now.next_utc_day().millis() - now.millis()).unwrap_or(0));
                    let record = AuditRecord::new(&caller, now, AuditAction::LimitReached, Actor::User(caller.clone()), new.record.code.as_str(), json!({
                        "rule": "codes_created_per_day", "limit": config.codes_created_per_day, "retry_after_s": retry_after.as_secs(),
                    }));
                    d.store.put_audit(&record).await?;
                    warn!(user_id = %caller, limit = config.codes_created_per_day, "code churn limit reached");
                    return Err(MarketError::RateLimited { retry_after });
                }
                Err(e @ (MarketError::CodeCollision | MarketError::Contention)) => {
                    warn!(user_id = %caller, error = %e, "retrying code creation");
                    last_error = e;
                }
                Err(e) => return Err(e),
            }
        }
        Err(match last_error {
            MarketError::CodeCollision => MarketError::internal("no free invite code after retries"),
            e => e,
        })
    }
}

// ---------------------------------------------------------------- DeleteInviteCode

pub struct DeleteInviteCodeRequest {
    pub caller: UserId,
    pub code: String,
}

pub struct DeleteInviteCode<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> Processor for DeleteInviteCode<S, C> {
    type Request = DeleteInviteCodeRequest;
    type Response = Deactivation;

    async fn process(&self, req: DeleteInviteCodeRequest) -> Result<Deactivation, MarketError> {
        let d = &self.0;
        let code = InviteCode::parse(&req.code)?;
        let config = d.config.current().await;
        let now = d.clock.now();
        let audit = AuditRecord::new(&req.caller, now, AuditAction::CodeDeactivated, Actor::User(req.caller.clone()), code.as_str(), json!({"code": code}));
        let outcome =
            d.store.deactivate_code(&req.caller, &code, now, now.plus_days(config.code_retention_days), &audit).await?;
        info!(user_id = %req.caller, code = %code, ?outcome, "invite code deactivated");
        Ok(outcome)
    }
}

// ---------------------------------------------------------------- user.registered

#[derive(Debug, Clone)]
pub struct UserRegistered {
    pub event_id: EventId,
    pub user: UserId,
    pub invite_code: Option<String>,
    pub occurred_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationResult {
    Referred { inviter: UserId },
    /// Registered without a referral (no code, or the code did not qualify).
    Registered { rejected: Option<ReferralRejection> },
    AlreadyRegistered,
}

/// The actor of changes made on behalf of platform events.
pub const REGISTRATION_SOURCE: &str = "auth/user.registered";
pub const ORDER_SOURCE: &str = "shop/order.paid";
pub const REFUND_SOURCE: &str = "shop/order.refunded";
/// The actor of the scheduled catch-up of matured rewards.
pub const MATURATION_SOURCE: &str = "market/maturation";

pub struct RegisterUser<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> RegisterUser<S, C> {
    /// Checks the code as read; the store re-checks code and inviter at write time.
    async fn referral_for(&self, user: &UserId, code: &str, now: Timestamp) -> Result<Result<Referral, ReferralRejection>, MarketError> {
        let Ok(code) = InviteCode::parse(code) else { return Ok(Err(ReferralRejection::InvalidCode)) };
        let Some(record) = self.0.store.get_code(&code).await? else {
            return Ok(Err(ReferralRejection::UnknownCode));
        };
        if !record.active {
            return Ok(Err(ReferralRejection::InactiveCode));
        }
        if record.is_expired(now) {
            return Ok(Err(ReferralRejection::ExpiredCode));
        }
        if &record.owner_id == user {
            return Ok(Err(ReferralRejection::SelfReferral));
        }
        Ok(Ok(Referral { inviter: record.owner_id, code }))
    }

    /// The user is registered: by this very event (a redelivery, or a retry after a lost
    /// response) → its first outcome, from the policy; by another event → `AlreadyRegistered`.
    async fn already_registered(&self, ev: &UserRegistered) -> Result<RegistrationResult, MarketError> {
        let policy = self.0.store.get_policy(&ev.user).await?;
        Ok(match policy {
            Some(p) if p.registration_event.as_ref() == Some(&ev.event_id) => match p.inviter {
                Some(inviter) => RegistrationResult::Referred { inviter },
                None => RegistrationResult::Registered { rejected: p.registration_rejected },
            },
            _ => RegistrationResult::AlreadyRegistered,
        })
    }
}

impl<S: MarketStore, C: ConfigSource> Processor for RegisterUser<S, C> {
    type Request = UserRegistered;
    type Response = RegistrationResult;

    async fn process(&self, ev: UserRegistered) -> Result<RegistrationResult, MarketError> {
        let store = &self.0.store;
        let now = self.0.clock.now();
        let mut rejected = None;
        if let Some(code) = ev.invite_code.as_deref().filter(|c| !c.trim().is_empty()) {
            match self.referral_for(&ev.user, code, now).await? {
                Ok(referral) => {
                    let inviter = referral.inviter.clone();
                    let actor = Actor::System(REGISTRATION_SOURCE.into());
                    let audit = vec![
                        AuditRecord::new(&ev.user, now, AuditAction::ReferralRecorded, actor.clone(), ev.event_id.as_str(), json!({
                            "inviter": inviter, "code": referral.code,
                        })),
                        AuditRecord::new(&inviter, now, AuditAction::ReferralGained, actor.clone(), ev.event_id.as_str(), json!({
                            "user": ev.user, "code": referral.code,
                        })),
                    ];
                    // Referral velocity: counted per inviter and UTC hour in the same
                    // transaction; beyond the limit the referral is recorded flagged.
                    let per_hour = self.0.config.current().await.review_referrals_per_hour;
                    let velocity = (per_hour > 0).then(|| VelocityCount { hour: now.utc_hour(), under: Some(per_hour), purge_at: now.plus_days(2) });
                    let mut reg = Registration { user: ev.user.clone(), event_id: ev.event_id.clone(), at: now, referral: Some(referral), rejected: None, audit, velocity, review: None };
                    let mut outcome = store.register_user(&reg).await?;
                    if outcome == RegistrationOutcome::VelocityExceeded {
                        reg.review = Some(HoldReason::ReferralVelocity);
                        if let Some(v) = reg.velocity.as_mut() {
                            v.under = None;
                        }
                        reg.audit.push(AuditRecord::new(&inviter, now, AuditAction::HeldForReview, actor, ev.event_id.as_str(), json!({
                            "rule": "review_referrals_per_hour", "limit": per_hour, "hour": now.utc_hour(), "user": ev.user,
                        })));
                        warn!(event_id = %ev.event_id, user_id = %ev.user, inviter = %inviter, limit = per_hour, "referral velocity: the referral's rewards will be held for review");
                        outcome = store.register_user(&reg).await?;
                    }
                    match outcome {
                        RegistrationOutcome::Registered { .. } => {
                            info!(event_id = %ev.event_id, user_id = %ev.user, inviter = %inviter, "referral recorded");
                            return Ok(RegistrationResult::Referred { inviter });
                        }
                        RegistrationOutcome::AlreadyRegistered => return self.already_registered(&ev).await,
                        RegistrationOutcome::ReferralRejected(reason) => rejected = Some(reason),
                        // Counted unconditionally on the second attempt: not reachable.
                        RegistrationOutcome::VelocityExceeded => return Err(MarketError::Contention),
                    }
                }
                Err(reason) => rejected = Some(reason),
            }
        }
        if let Some(reason) = rejected {
            warn!(event_id = %ev.event_id, user_id = %ev.user, reason = reason.as_str(), "referral rejected");
        }
        let (action, details) = match rejected {
            Some(reason) => (AuditAction::ReferralRejected, json!({"code": ev.invite_code, "reason": reason.as_str()})),
            None => (AuditAction::Registered, json!({})),
        };
        let audit = vec![AuditRecord::new(&ev.user, now, action, Actor::System(REGISTRATION_SOURCE.into()), ev.event_id.as_str(), details)];
        let reg = Registration { user: ev.user.clone(), event_id: ev.event_id.clone(), at: now, referral: None, rejected, audit, velocity: None, review: None };
        match store.register_user(&reg).await? {
            RegistrationOutcome::AlreadyRegistered => self.already_registered(&ev).await,
            _ => Ok(RegistrationResult::Registered { rejected }),
        }
    }
}

