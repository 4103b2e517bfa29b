//! What the processors need from the outside world. Adapters (DynamoDB, Redis) implement
//! these; the processors decide, the store only applies a decision atomically, with
//! conditions that make it safe to repeat and that re-check the rules under concurrency.

use std::future::Future;

use crate::audit::AuditRecord;
use crate::code::InviteCode;
use crate::config::MarketConfig;
use crate::error::MarketError;
use crate::ids::{UserId, WithdrawalId};
use crate::model::{AffiliateStats, InviteCodeRecord, LedgerEntry, RewardEvent, WithdrawalRecord};
use crate::money::{Bps, Money};
use crate::policy::{AffiliatePolicy, TriggerLimit};
use crate::time::Timestamp;

pub type Result<T> = std::result::Result<T, MarketError>;

/// A code to create, with the limit it must respect and expired codes whose slots it frees.
#[derive(Debug, Clone)]
pub struct NewCode {
    pub record: InviteCodeRecord,
    pub max_active: u32,
    /// Still-active but expired codes of the owner: deactivated in the same transaction.
    pub release_expired: Vec<InviteCode>,
    /// When deactivated codes are purged (TTL).
    pub purge_at: Timestamp,
    /// Written with the change: the creation and each released expired code.
    pub audit: Vec<AuditRecord>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deactivation {
    Deactivated,
    AlreadyInactive,
}

#[derive(Debug, Clone)]
pub struct Referral {
    pub inviter: UserId,
    pub code: InviteCode,
}

#[derive(Debug, Clone)]
pub struct Registration {
    pub user: UserId,
    pub at: Timestamp,
    pub referral: Option<Referral>,
    /// Written with the registration (referral recorded/gained, or registered/rejected).
    pub audit: Vec<AuditRecord>,
}

/// Why a registration did not record a referral.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferralRejection {
    InvalidCode,
    UnknownCode,
    InactiveCode,
    ExpiredCode,
    SelfReferral,
    InviterDisabled,
    AlreadyRegistered,
}

impl ReferralRejection {
    pub fn as_str(self) -> &'static str {
        match self {
            ReferralRejection::InvalidCode => "invalid_code",
            ReferralRejection::UnknownCode => "unknown_code",
            ReferralRejection::InactiveCode => "inactive_code",
            ReferralRejection::ExpiredCode => "expired_code",
            ReferralRejection::SelfReferral => "self_referral",
            ReferralRejection::InviterDisabled => "inviter_disabled",
            ReferralRejection::AlreadyRegistered => "already_registered",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationOutcome {
    /// Policy created; `referred` tells whether the referral was recorded with it.
    Registered { referred: bool },
    /// The user was registered before (redelivery or a second event): nothing changed.
    AlreadyRegistered,
    /// The referral's conditions failed at write time (code deactivated or inviter disabled
    /// concurrently): nothing was written.
    ReferralRejected(ReferralRejection),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewardOutcome {
    Applied,
    /// This order was rewarded before.
    Duplicate,
    /// The buyer reached the trigger limit (or is no longer this inviter's referral).
    LimitReached,
}

#[derive(Debug, Clone)]
pub struct WithdrawalRequest {
    pub record: WithdrawalRecord,
    /// `available` as read before; the write is conditional on it (optimistic concurrency),
    /// which is what lets the ledger record the exact balance after the withdrawal.
    pub expected_available: Money,
    pub audit: AuditRecord,
}

/// A user's policy overrides; `None` = the global default applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyOverrides {
    pub commission_bps: Option<Bps>,
    pub trigger_limit: Option<TriggerLimit>,
    pub max_active_codes: Option<u32>,
    pub affiliate_enabled: Option<bool>,
}

impl PolicyOverrides {
    pub fn of(policy: Option<&AffiliatePolicy>) -> Self {
        policy.map_or_else(PolicyOverrides::default, |p| PolicyOverrides {
            commission_bps: p.commission_bps,
            trigger_limit: p.trigger_limit,
            max_active_codes: p.max_active_codes,
            affiliate_enabled: p.affiliate_enabled,
        })
    }
}

/// An admin's change of a user's overrides, conditional on the overrides as read.
#[derive(Debug, Clone)]
pub struct PolicyUpdate {
    pub user: UserId,
    pub before: PolicyOverrides,
    pub after: PolicyOverrides,
    pub audit: AuditRecord,
}

/// One page of a listing, newest first; `next` is the opaque token of the next page.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

#[derive(Debug, Clone)]
pub enum WithdrawOutcome {
    Done(WithdrawalRecord),
    /// A withdrawal with this id exists already: the first result.
    Replayed(WithdrawalRecord),
    /// `available` changed since it was read; here is the current value.
    BalanceChanged(Money),
}

/// Storage port.
pub trait MarketStore: Send + Sync + 'static {
    fn get_policy(&self, user: &UserId) -> impl Future<Output = Result<Option<AffiliatePolicy>>> + Send;
    /// Zero statistics for a user who has none yet.
    fn get_stats(&self, user: &UserId) -> impl Future<Output = Result<AffiliateStats>> + Send;
    fn get_code(&self, code: &InviteCode) -> impl Future<Output = Result<Option<InviteCodeRecord>>> + Send;
    /// Codes not deactivated (expired ones included), newest first.
    fn list_active_codes(&self, owner: &UserId) -> impl Future<Output = Result<Vec<InviteCodeRecord>>> + Send;
    /// Errors: `CodeCollision`, `CodeLimitReached`, `AffiliateDisabled`, `Contention`.
    fn create_code(&self, new: &NewCode) -> impl Future<Output = Result<()>> + Send;
    /// Errors: `NotFound` (missing or someone else's code).
    fn deactivate_code(
        &self,
        owner: &UserId,
        code: &InviteCode,
        now: Timestamp,
        purge_at: Timestamp,
        audit: &AuditRecord,
    ) -> impl Future<Output = Result<Deactivation>> + Send;
    fn register_user(&self, registration: &Registration) -> impl Future<Output = Result<RegistrationOutcome>> + Send;
    fn apply_reward(&self, event: &RewardEvent, audit: &AuditRecord) -> impl Future<Output = Result<RewardOutcome>> + Send;
    fn get_withdrawal(&self, user: &UserId, id: &WithdrawalId)
        -> impl Future<Output = Result<Option<WithdrawalRecord>>> + Send;
    fn withdraw(&self, request: &WithdrawalRequest) -> impl Future<Output = Result<WithdrawOutcome>> + Send;
    /// `Ok(false)`: the overrides changed since they were read (nothing written).
    fn update_policy(&self, update: &PolicyUpdate) -> impl Future<Output = Result<bool>> + Send;
    /// A user's ledger, newest first. Errors: `InvalidArgument` for a bad page token.
    fn list_ledger(&self, user: &UserId, page_token: Option<&str>, limit: u32)
        -> impl Future<Output = Result<Page<LedgerEntry>>> + Send;
    /// A subject's audit trail, newest first.
    fn list_audit(&self, subject: &str, page_token: Option<&str>, limit: u32)
        -> impl Future<Output = Result<Page<AuditRecord>>> + Send;
    /// For changes that are not DynamoDB transactions (the configuration in Redis).
    fn put_audit(&self, record: &AuditRecord) -> impl Future<Output = Result<()>> + Send;
}

/// The configuration document as stored, for the admin API (no cache: the truth).
pub trait ConfigStore: Send + Sync + 'static {
    /// `None` when no document is stored.
    fn read(&self) -> impl Future<Output = Result<Option<MarketConfig>>> + Send;
    fn write(&self, config: &MarketConfig) -> impl Future<Output = Result<()>> + Send;
}

/// Configuration port. Never fails: an adapter falls back to its last good value or the
/// built-in defaults (and logs it), so RPCs keep working when Redis is down.
pub trait ConfigSource: Send + Sync + 'static {
    fn current(&self) -> impl Future<Output = MarketConfig> + Send;
}

/// A fixed configuration (tests, and deployments without Redis).
#[derive(Debug, Clone, Default)]
pub struct StaticConfig(pub MarketConfig);

impl ConfigSource for StaticConfig {
    async fn current(&self) -> MarketConfig {
        self.0.clone()
    }
}
