//! Personal-data requests (admin): a user's export (GDPR art. 15) and erasure (art. 17), and
//! how the event processors find an erased user's records (under their pseudonym). The
//! transport checks the admin claim; both requests are audited.

use serde_json::json;
use tracing::info;

use crate::request::AdminRequest;
use crate::audit::{Actor, AuditAction, AuditRecord};
use crate::error::MarketError;
use crate::ids::UserId;
use crate::personal_data::DataRecord;
use crate::ports::{ConfigSource, MarketStore, Page};

use super::{Deps, Processor};

/// Records of each section per export page (nine sections: at most 450 records, typically
/// under 2 KB each: far below a Lambda response's 6 MB).
pub const EXPORT_RECORDS_PER_SECTION: u32 = 50;

pub struct ExportRequest {
    pub user: UserId,
    pub page_token: Option<String>,
}

/// One page of everything stored about a user.
pub struct ExportUserData<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> Processor for ExportUserData<S, C> {
    type Request = AdminRequest<ExportRequest>;
    type Response = Page<DataRecord>;

    async fn process(&self, req: AdminRequest<ExportRequest>) -> Result<Page<DataRecord>, MarketError> {
        let d = &self.0;
        let r = &req.body;
        if r.page_token.is_none() {
            // Who read whose data, when: on the user's own trail (written before the first
            // page is read, so the export holds it).
            let now = d.clock.now();
            let record = AuditRecord::new(&r.user, now, AuditAction::DataExported, Actor::Admin(req.admin.clone()), &req.request_id, json!({}));
            d.store.put_audit(&record).await?;
            info!(admin = %req.admin, user_id = %r.user, "personal data export started");
        }
        d.store.personal_data(&r.user, r.page_token.as_deref(), EXPORT_RECORDS_PER_SECTION).await
    }
}

// ---------------------------------------------------------------- EraseUser (admin)

/// Where the erasure key comes from (a secret, read once per container): object-safe, so a
/// function and a test can each bring their own.
pub trait ErasureKey: Send + Sync + 'static {
    fn key(&self) -> KeyFuture<'_>;
}

/// What [`ErasureKey::key`] answers: the key's bytes, once read.
pub type KeyFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<std::sync::Arc<[u8]>, MarketError>> + Send + 'a>>;

pub struct EraseRequest {
    pub user: UserId,
    /// Debit a positive `available` (an adjustment on the pseudonym); without it such an
    /// erasure is refused.
    pub forfeit_balance: bool,
}

#[derive(Debug)]
pub struct EraseResult {
    pub pseudonym: UserId,
    pub erased: crate::ports::Erased,
    pub forfeited: crate::money::Money,
}

/// Replaces a user by their pseudonym everywhere (GDPR art. 17), keeping every amount, order
/// id and time, so every sum holds before and after; events naming the user meanwhile wait
/// (the store's fence) and apply to the pseudonym's records after it.
pub struct EraseUser<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> Processor for EraseUser<S, C> {
    type Request = AdminRequest<EraseRequest>;
    type Response = EraseResult;

    async fn process(&self, req: AdminRequest<EraseRequest>) -> Result<EraseResult, MarketError> {
        let d = &self.0;
        let r = &req.body;
        if crate::personal_data::is_pseudonym(&r.user) {
            return Err(MarketError::InvalidArgument("user_id is a pseudonym already".into()));
        }
        let pseudonym = pseudonym_of(d, &r.user).await?.ok_or_else(|| MarketError::internal("no erasure key in this function"))?;
        let stats = d.store.get_stats(&r.user).await?;
        let available = stats.available;
        if available.is_positive() && !r.forfeit_balance {
            return Err(MarketError::BalanceNotSettled);
        }
        let now = d.clock.now();
        let details = json!({"forfeit_balance": r.forfeit_balance, "request_id": req.request_id});
        let audit = AuditRecord::new(&pseudonym, now, AuditAction::UserErased, Actor::Admin(req.admin.clone()), &req.request_id, details);
        let erasure = crate::ports::Erasure { user: r.user.clone(), pseudonym: pseudonym.clone(), at: now, audit, refuse_positive_balance: !r.forfeit_balance };
        let erased = d.store.erase(&erasure).await?;
        // The balance as the erasure found it goes with an adjustment on the pseudonym (once:
        // its key and amount are fixed, so a repeat replays it); what refunds take back after
        // it comes off the pseudonym's balance as after a withdrawal.
        let mut forfeited = crate::money::Money::ZERO;
        if r.forfeit_balance {
            let at_erasure = d.store.get_policy(&pseudonym).await?.and_then(|p| p.available_at_erasure).unwrap_or_default();
            if at_erasure.is_positive() {
                let body = super::Adjustment {
                    user: pseudonym.clone(),
                    amount: crate::money::Money::from_minor(-at_erasure.minor()),
                    reason: "forfeited at erasure".into(),
                    idempotency_key: crate::ids::IdempotencyKey::parse("erasure-forfeit")?,
                    allow_negative: true,
                };
                let adjusted = super::AdjustBalance(d.clone()).process(AdminRequest { admin: req.admin.clone(), request_id: req.request_id.clone(), body }).await?;
                if !adjusted.replayed {
                    forfeited = at_erasure;
                }
            }
        }
        info!(admin = %req.admin, pseudonym = %pseudonym, moved = erased.moved, rewritten = erased.rewritten, "user erased");
        Ok(EraseResult { pseudonym, erased, forfeited })
    }
}

/// The pseudonym `user` has (or would have) under this function's erasure key (`None`: the
/// function has no key).
pub(super) async fn pseudonym_of<S, C>(d: &Deps<S, C>, user: &UserId) -> Result<Option<UserId>, MarketError> {
    let Some(source) = &d.erasure_key else { return Ok(None) };
    let key = source.key().await?;
    Ok(Some(crate::personal_data::pseudonym(&key, user)?))
}

/// `user`'s pseudonym if they were erased (their pseudonym's policy exists: the erasure's last
/// write); `None` if not, or if this function has no key. One read: for a registration, and
/// for a step that met a moved item ([`crate::ports::CommissionOutcome::Moved`]).
pub(super) async fn erased_as<S: MarketStore, C>(d: &Deps<S, C>, user: &UserId) -> Result<Option<UserId>, MarketError> {
    if crate::personal_data::is_pseudonym(user) {
        return Ok(None);
    }
    Ok(erased(d, user).await?.map(|p| p.user_id))
}

/// A pseudonym named as an earner must be settled: its erasure complete (the policy moved,
/// marked `erased_at`). Mid-erasure its items are not all there yet (an override not yet
/// moved would decide the wrong rate): `Contention`, retried later.
pub(super) fn settled(user: &UserId, policy: Option<&crate::policy::AffiliatePolicy>) -> Result<(), MarketError> {
    if crate::personal_data::is_pseudonym(user) && !policy.is_some_and(|p| p.erased_at.is_some()) {
        return Err(MarketError::Contention);
    }
    Ok(())
}

/// [`settled`] for an earner whose policy the caller has not read (read only for a pseudonym).
pub(super) async fn settled_earner<S: MarketStore, C>(d: &Deps<S, C>, user: &UserId) -> Result<(), MarketError> {
    if crate::personal_data::is_pseudonym(user) {
        settled(user, d.store.get_policy(user).await?.as_ref())?;
    }
    Ok(())
}

/// An erased user's policy (under their pseudonym), if `user` was erased. Only for an id the
/// store does not know: the one extra read falls on unknown buyers, never on the usual path.
pub(super) async fn erased<S: MarketStore, C>(d: &Deps<S, C>, user: &UserId) -> Result<Option<crate::policy::AffiliatePolicy>, MarketError> {
    match pseudonym_of(d, user).await? {
        Some(p) => d.store.get_policy(&p).await,
        None => Ok(None),
    }
}
