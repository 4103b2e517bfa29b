//! An affiliate's invite codes: list, create (within the active-code and churn limits),
//! delete.

use std::sync::Arc;

use serde_json::json;
use tracing::{info, warn};

use super::{Deps, Processor};
use crate::audit::{Actor, AuditAction, AuditRecord};
use crate::code::InviteCode;
use crate::error::MarketError;
use crate::ids::{IdempotencyKey, UserId};
use crate::model::InviteCodeRecord;
use crate::rules::EffectivePolicy;
use crate::ports::{ConfigSource, Deactivation, MarketStore, NewCode};

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
                    info!(user_id = %caller, code_fp = %new.record.code.fingerprint(), "invite code created");
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
        info!(user_id = %req.caller, code_fp = %code.fingerprint(), ?outcome, "invite code deactivated");
        Ok(outcome)
    }
}
