//! One processor per business operation, as in the original market module. Each takes a
//! validated request (the caller already authenticated by the transport), applies the rules
//! and asks the store to apply the decision atomically.

use std::future::Future;
use std::sync::Arc;

use tracing::{info, warn};

use serde_json::json;

use crate::audit::{Actor, AuditAction, AuditRecord};
use crate::code::InviteCode;
use crate::error::MarketError;
use crate::ids::{EventId, IdempotencyKey, OrderId, UserId, WithdrawalId};
use crate::model::{AffiliateStats, InviteCodeRecord, RewardEvent, WithdrawalRecord};
use crate::money::{commission, Money};
use crate::policy::EffectivePolicy;
use crate::ports::{
    ConfigSource, Deactivation, MarketStore, NewCode, Referral, ReferralRejection, Registration,
    RegistrationOutcome, RewardOutcome, WithdrawOutcome, WithdrawalRequest,
};
use crate::time::{Clock, SystemClock, Timestamp};

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
    pub stats: AffiliateStats,
    pub policy: EffectivePolicy,
    /// Usable (active, unexpired) codes, newest first.
    pub codes: Vec<InviteCodeRecord>,
    /// The deployment's currency the amounts are in.
    pub currency: crate::money::Currency,
}

pub struct GetAffiliateStats<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> Processor for GetAffiliateStats<S, C> {
    type Request = UserId;
    type Response = AffiliateOverview;

    async fn process(&self, caller: UserId) -> Result<AffiliateOverview, MarketError> {
        let d = &self.0;
        // One parallel round trip.
        let (policy, stats, codes, config) = futures::join!(
            d.store.get_policy(&caller),
            d.store.get_stats(&caller),
            d.store.list_active_codes(&caller),
            d.config.current()
        );
        let now = d.clock.now();
        Ok(AffiliateOverview {
            stats: stats?,
            policy: EffectivePolicy::resolve(policy?.as_ref(), &config),
            codes: codes?.into_iter().filter(|c| c.is_usable(now)).collect(),
            currency: config.currency,
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

impl<S: MarketStore, C: ConfigSource> Processor for CreateInviteCode<S, C> {
    type Request = UserId;
    type Response = InviteCodeRecord;

    async fn process(&self, caller: UserId) -> Result<InviteCodeRecord, MarketError> {
        let d = &self.deps;
        // One parallel round trip of reads (SPEC §7); only a retry re-reads the codes.
        let (policy, config, active) =
            futures::join!(d.store.get_policy(&caller), d.config.current(), d.store.list_active_codes(&caller));
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
                max_active: policy.max_active_codes,
                release_expired,
                purge_at: now.plus_days(config.code_retention_days),
                audit,
            };
            match d.store.create_code(&new).await {
                Ok(()) => {
                    info!(user_id = %caller, code = %new.record.code, "invite code created");
                    return Ok(new.record);
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

// ---------------------------------------------------------------- WithdrawAffiliateReward

pub struct WithdrawRequest {
    pub caller: UserId,
    pub amount: Money,
    pub idempotency_key: IdempotencyKey,
}

pub struct WithdrawResult {
    pub record: WithdrawalRecord,
    /// True when this is a retry answered with the first result.
    pub replayed: bool,
}

/// Optimistic-concurrency rounds; each lost round means another write to this user's
/// balance succeeded, so this bounds only pathological contention.
const WITHDRAW_ATTEMPTS: usize = 64;

pub struct WithdrawAffiliateReward<S, C>(pub Deps<S, C>);

fn replay(existing: WithdrawalRecord, amount: Money) -> Result<WithdrawResult, MarketError> {
    if existing.amount != amount {
        return Err(MarketError::IdempotencyConflict);
    }
    Ok(WithdrawResult { record: existing, replayed: true })
}

impl<S: MarketStore, C: ConfigSource> Processor for WithdrawAffiliateReward<S, C> {
    type Request = WithdrawRequest;
    type Response = WithdrawResult;

    async fn process(&self, req: WithdrawRequest) -> Result<WithdrawResult, MarketError> {
        let d = &self.0;
        if !req.amount.is_positive() {
            return Err(MarketError::InvalidArgument("amount must be positive".into()));
        }
        let id = WithdrawalId::derive(&req.caller, &req.idempotency_key);
        let (existing, stats, config) =
            futures::join!(d.store.get_withdrawal(&req.caller, &id), d.store.get_stats(&req.caller), d.config.current());
        if let Some(existing) = existing? {
            return replay(existing, req.amount);
        }
        if req.amount < config.min_withdraw_amount {
            return Err(MarketError::BelowMinimum);
        }
        let mut available = stats?.available;
        for _ in 0..WITHDRAW_ATTEMPTS {
            if available < req.amount {
                return Err(MarketError::InsufficientBalance);
            }
            let record = WithdrawalRecord {
                withdrawal_id: id.clone(),
                user_id: req.caller.clone(),
                amount: req.amount,
                currency: config.currency.clone(),
                available_after: available.checked_sub(req.amount)?,
                at: d.clock.now(),
            };
            let audit = AuditRecord::new(&req.caller, record.at, AuditAction::Withdrawal, Actor::User(req.caller.clone()), id.as_str(), json!({
                "withdrawal_id": id, "amount": record.amount, "currency": record.currency,
                "available_before": available, "available_after": record.available_after,
                "idempotency_key": req.idempotency_key,
            }));
            match d.store.withdraw(&WithdrawalRequest { record, expected_available: available, audit }).await? {
                WithdrawOutcome::Done(record) => {
                    info!(user_id = %req.caller, withdrawal_id = %record.withdrawal_id, amount = %record.amount, "withdrawn");
                    return Ok(WithdrawResult { record, replayed: false });
                }
                WithdrawOutcome::Replayed(existing) => return replay(existing, req.amount),
                WithdrawOutcome::BalanceChanged(current) => available = current,
            }
        }
        Err(MarketError::Contention)
    }
}

// ---------------------------------------------------------------- user.registered

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
                        AuditRecord::new(&inviter, now, AuditAction::ReferralGained, actor, ev.event_id.as_str(), json!({
                            "user": ev.user, "code": referral.code,
                        })),
                    ];
                    let reg = Registration { user: ev.user.clone(), at: now, referral: Some(referral), audit };
                    match store.register_user(&reg).await? {
                        RegistrationOutcome::Registered { .. } => {
                            info!(event_id = %ev.event_id, user_id = %ev.user, inviter = %inviter, "referral recorded");
                            return Ok(RegistrationResult::Referred { inviter });
                        }
                        RegistrationOutcome::AlreadyRegistered => return Ok(RegistrationResult::AlreadyRegistered),
                        RegistrationOutcome::ReferralRejected(reason) => rejected = Some(reason),
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
        let reg = Registration { user: ev.user.clone(), at: now, referral: None, audit };
        Ok(match store.register_user(&reg).await? {
            RegistrationOutcome::AlreadyRegistered => RegistrationResult::AlreadyRegistered,
            _ => RegistrationResult::Registered { rejected },
        })
    }
}

// ---------------------------------------------------------------- order.paid

pub struct OrderPaid {
    pub event_id: EventId,
    pub order_id: OrderId,
    pub buyer: UserId,
    pub amount: Money,
    pub currency: String,
    pub occurred_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoReward {
    NoInviter,
    MarketDisabled,
    NonPositiveAmount,
    OtherCurrency,
    InviterDisabled,
    TriggerLimitReached,
    ZeroReward,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderDecision {
    Reward(RewardEvent),
    NoReward(NoReward),
}

/// Decides the reward for a paid order; the reward processor applies it.
pub struct DecideOrderReward<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> Processor for DecideOrderReward<S, C> {
    type Request = OrderPaid;
    type Response = OrderDecision;

    async fn process(&self, ev: OrderPaid) -> Result<OrderDecision, MarketError> {
        let d = &self.0;
        let (buyer, config) = futures::join!(d.store.get_policy(&ev.buyer), d.config.current());
        let no = |r| Ok(OrderDecision::NoReward(r));
        let Some(buyer) = buyer? else { return no(NoReward::NoInviter) };
        let Some(inviter) = buyer.inviter.clone() else { return no(NoReward::NoInviter) };
        if !config.enabled {
            return no(NoReward::MarketDisabled);
        }
        if !ev.amount.is_positive() {
            return no(NoReward::NonPositiveAmount);
        }
        if ev.currency != config.currency.as_str() {
            return no(NoReward::OtherCurrency);
        }
        let policy = EffectivePolicy::resolve(d.store.get_policy(&inviter).await?.as_ref(), &config);
        if !policy.affiliate_enabled {
            return no(NoReward::InviterDisabled);
        }
        if !policy.trigger_limit.allows_another(buyer.rewards_triggered) {
            return no(NoReward::TriggerLimitReached);
        }
        let reward = commission(ev.amount, policy.commission_bps)?;
        if !reward.is_positive() {
            return no(NoReward::ZeroReward);
        }
        Ok(OrderDecision::Reward(RewardEvent {
            order_id: ev.order_id,
            buyer: ev.buyer,
            inviter,
            order_amount: ev.amount,
            currency: config.currency,
            commission_bps: policy.commission_bps,
            reward,
            trigger_limit: policy.trigger_limit,
            occurred_at: ev.occurred_at,
            source_event_id: ev.event_id,
        }))
    }
}

// ---------------------------------------------------------------- reward processor

pub struct ApplyReward<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> Processor for ApplyReward<S, C> {
    type Request = RewardEvent;
    type Response = RewardOutcome;

    async fn process(&self, ev: RewardEvent) -> Result<RewardOutcome, MarketError> {
        let audit = AuditRecord::new(&ev.inviter, self.0.clock.now(), AuditAction::RewardEarned, Actor::System(ORDER_SOURCE.into()), ev.source_event_id.as_str(), json!({
            "order_id": ev.order_id, "buyer": ev.buyer, "order_amount": ev.order_amount, "currency": ev.currency,
            "commission_bps": ev.commission_bps, "reward": ev.reward,
        }));
        let outcome = self.0.store.apply_reward(&ev, &audit).await?;
        info!(order_id = %ev.order_id, inviter = %ev.inviter, reward = %ev.reward, ?outcome, "reward processed");
        Ok(outcome)
    }
}
