//! What the processors need from the outside world. Adapters (DynamoDB, Redis) implement
//! these; the processors decide, the store only applies a decision atomically, with
//! conditions that make it safe to repeat and that re-check the rules under concurrency.

use std::future::Future;

use crate::code::InviteCode;
use crate::config::MarketConfig;
use crate::error::MarketError;
use crate::ids::{UserId, WithdrawalId};
use crate::model::{AffiliateStats, InviteCodeRecord, RewardEvent, WithdrawalRecord};
use crate::money::Money;
use crate::policy::AffiliatePolicy;
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
    ) -> impl Future<Output = Result<Deactivation>> + Send;
    fn register_user(&self, registration: &Registration) -> impl Future<Output = Result<RegistrationOutcome>> + Send;
    fn apply_reward(&self, event: &RewardEvent) -> impl Future<Output = Result<RewardOutcome>> + Send;
    fn get_withdrawal(&self, user: &UserId, id: &WithdrawalId)
        -> impl Future<Output = Result<Option<WithdrawalRecord>>> + Send;
    fn withdraw(&self, request: &WithdrawalRequest) -> impl Future<Output = Result<WithdrawOutcome>> + Send;
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
