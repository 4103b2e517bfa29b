//! What the processors need from the outside world. Adapters (DynamoDB, Redis) implement
//! these; the processors decide, the store only applies a decision atomically, with
//! conditions that make it safe to repeat and that re-check the rules under concurrency.

use std::collections::BTreeMap;
use std::future::Future;

use crate::audit::AuditRecord;
use crate::code::InviteCode;
use crate::config::MarketConfig;
use crate::error::MarketError;
use crate::group::GroupName;
use crate::ids::{AdjustmentId, EventId, IdempotencyKey, OrderId, UserId, WithdrawalId};
use crate::lifecycle::events::Publication;
use crate::lifecycle::{Change, Commission, StatsDelta};
use crate::model::{AffiliateStats, HistoryItem, InviteCodeRecord, LedgerEntry, WithdrawalRecord};
use crate::money::{Bps, Money};
use crate::policy::{AffiliatePolicy, TriggerLimit};
use crate::time::Timestamp;

pub type Result<T> = std::result::Result<T, MarketError>;

mod groups;
mod parked;
mod personal_data;
pub use crate::referral::ReferralRejection;
pub use groups::{GroupStore, GroupWrite};
pub use parked::{ParkOutcome, ParkedEvent, ParkedStore, Parking};
pub use personal_data::{Erased, Erasure, ErasureStore, PersonalDataStore};

/// A code to create, with the limit it must respect and expired codes whose slots it frees.
#[derive(Debug, Clone)]
pub struct NewCode {
    pub record: InviteCodeRecord,
    /// The request's idempotency key: the creation is recorded under it, exactly once.
    pub request_key: Option<IdempotencyKey>,
    pub max_active: u32,
    /// Still-active but expired codes of the owner: deactivated in the same transaction.
    pub release_expired: Vec<InviteCode>,
    /// When deactivated codes are purged (TTL).
    pub purge_at: Timestamp,
    /// Written with the change: the creation and each released expired code.
    pub audit: Vec<AuditRecord>,
    /// Code churn: at most this many creations by the owner on the UTC day of `created_at`
    /// (counted in the same transaction); `None` = no limit.
    pub per_day: Option<u32>,
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
    /// The registration event; kept on the policy so its retry can replay the first outcome.
    pub event_id: EventId,
    pub at: Timestamp,
    pub referral: Option<Referral>,
    /// Why the event's code did not give a referral (kept with the registration).
    pub rejected: Option<ReferralRejection>,
    /// Written with the registration (referral recorded/gained, or registered/rejected).
    pub audit: Vec<AuditRecord>,
    /// Referral velocity: count this referral on the inviter's counter of its UTC hour.
    pub velocity: Option<VelocityCount>,
    /// Flag the referred user: the rewards of their orders are held for review.
    pub review: Option<crate::model::HoldReason>,
    /// The user's pseudonym (where the function has the erasure key): an erased user is
    /// registered already, as it, so the registration must not write their id again.
    pub pseudonym: Option<UserId>,
}

/// A referral counted on its inviter's counter of one UTC hour (`review_referrals_per_hour`).
#[derive(Debug, Clone)]
pub struct VelocityCount {
    /// `yyyy-mm-ddThh` (UTC) of the registration.
    pub hour: String,
    /// Count only while under this many (else the write fails with `VelocityExceeded` and
    /// the referral is retried flagged); `None` = count unconditionally.
    pub under: Option<u32>,
    /// When the counter is purged (TTL).
    pub purge_at: Timestamp,
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
    /// The inviter's referrals this hour reached the velocity limit: nothing was written.
    VelocityExceeded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewardOutcome {
    Applied,
    /// This very event (same source event id) was applied before — a redelivery, or a retry
    /// after a lost response: its first outcome, `Applied`, replayed; nothing changed.
    Replayed,
    /// This order was rewarded before by another event (a reused order id).
    Duplicate,
    /// The buyer reached the trigger limit.
    LimitReached,
}

/// A user's policy overrides; `None` = the global default applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyOverrides {
    pub commission_bps: Option<Bps>,
    pub trigger_limit: Option<TriggerLimit>,
    pub max_active_codes: Option<u32>,
    pub affiliate_enabled: Option<bool>,
    /// The reward group (`None`: the default group).
    pub group: Option<GroupName>,
}

impl PolicyOverrides {
    pub fn of(policy: Option<&AffiliatePolicy>) -> Self {
        policy.map_or_else(PolicyOverrides::default, |p| PolicyOverrides {
            commission_bps: p.commission_bps,
            trigger_limit: p.trigger_limit,
            max_active_codes: p.max_active_codes,
            affiliate_enabled: p.affiliate_enabled,
            group: p.group.clone(),
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

/// A lifecycle step of one order's commissions (level 1 first, then the levels above it,
/// each a different earner), to write in one transaction: each commission as after the
/// step (conditional on the version read), the ledger entries it appends, its earner's
/// statistics, the audit records, what it checks of the buyer's referral, and the
/// lifecycle events of the step (each earner's sequenced in the same transaction).
#[derive(Debug, Clone)]
pub struct CommissionWrite {
    pub changes: Vec<Change>,
    pub referral: ReferralCheck,
    pub audit: Vec<AuditRecord>,
    pub publish: Publication,
    /// An admin's step read its earner's sequence with the commission: its events number on
    /// that read (`None`: the store reads the sequence before writing).
    pub sequence_as_read: Option<(UserId, SequenceAsRead)>,
    pub at: Timestamp,
}

/// What a commission step checks of the buyer's referral, so that a step decided before an
/// erasure moved the buyer or an earner fails ([`CommissionOutcome::Moved`]) instead of
/// writing under the old id.
#[derive(Debug, Clone)]
pub enum ReferralCheck {
    /// Nothing: the step changes commissions that exist (their versions guard them).
    None,
    /// The buyer still names the earner as inviter: a refund recorded before its reward
    /// creates the commission.
    Named { buyer: UserId, inviter: UserId },
    /// A reward: `rewards_triggered += 1` on the buyer, who must still be the earner's
    /// referral and under the limit; its levels' links must still hold.
    Counted(TriggerCount),
}

/// `rewards_triggered += 1` on the buyer, who must still be the earner's referral and
/// under the limit.
#[derive(Debug, Clone)]
pub struct TriggerCount {
    pub buyer: UserId,
    pub inviter: UserId,
    pub limit: TriggerLimit,
    /// The buyer's `rewards_triggered` as the step read it, where the step depends on it:
    /// the count must still be it (another reward of the buyer first: `Conflict`, read
    /// again), so that "the referred user's first rewarded order" (bounty, paying referrals)
    /// and a cap's usage are exact. `None`: only under the limit (a later order of an
    /// uncapped group), so a buyer's orders at once do not queue on each other.
    pub as_read: Option<u32>,
    /// The buyer's cap usage after this reward (a capped group), set with the count.
    pub cap_used: Option<BTreeMap<String, i64>>,
    /// The levels' links as decided, (user, their inviter) up from the inviter: each must
    /// still hold, so that no level is paid under an id an erasure moved meanwhile.
    pub chain: Vec<(UserId, UserId)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommissionOutcome {
    Written,
    /// The commission changed since it was read: read again and redo the step.
    Conflict,
    /// One of the step's ledger entries exists already (a duplicate delivery).
    Duplicate,
    /// The buyer reached the trigger limit.
    LimitReached,
    /// A user the step names was erased after it read them (the buyer's policy is gone or
    /// names the inviter's pseudonym, a level's earner is gone): decide again under the
    /// pseudonyms.
    Moved,
}

/// Commissions of one user whose holding period is over, moved to available together.
#[derive(Debug, Clone)]
pub struct Maturation {
    pub user: UserId,
    pub changes: Vec<Change>,
    pub audit: AuditRecord,
    pub publish: Publication,
    pub at: Timestamp,
}

/// An affiliate's event sequence and stored `available` (main statistics and every part) as
/// a processor read them: a change's first attempt numbers its events on them instead of
/// reading them again (SPEC §7: one sequential read before the write); a sequence moved
/// since makes the store rebuild on the number it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceAsRead {
    pub event_seq: u64,
    pub available: Money,
    /// Of `available`, what is held apart from the main statistics
    /// ([`AffiliateStats::credited_apart`]).
    pub apart: Money,
}

impl SequenceAsRead {
    pub fn of(stats: &AffiliateStats) -> Self {
        SequenceAsRead { event_seq: stats.event_seq, available: stats.available, apart: stats.credited_apart }
    }
}

/// A debit or credit of `available` (a withdrawal, an admin adjustment), conditional on the
/// `available` read, with the matured commissions it spends folded into the same
/// transaction. `available` changes by `ADD` (so rewards landing meanwhile commute with it
/// instead of cancelling it), conditional on the result staying ≥ 0 unless allowed.
#[derive(Debug, Clone)]
pub struct BalanceChange {
    pub user: UserId,
    /// `balance_changes` as read: withdrawals and adjustments apply one after another.
    pub expected_changes: u64,
    /// Only an admin debit with the explicit flag may leave `available` negative.
    pub allow_negative: bool,
    /// [`AffiliateStats::credited_apart`] as read: `available` held apart from the main
    /// statistics, which only grows, so the condition on the main item counts on it.
    pub credited_apart: Money,
    pub matured: Vec<Change>,
    /// Every figure, `ADD`ed: `available` (+ folded ± amount), `withdrawn_total`,
    /// `total_earned`, `reversed_total`, and `pending` of the folded commissions.
    pub stats: StatsDelta,
    pub entry: LedgerEntry,
    /// A withdrawal's event (always), and with lifecycle events on the folded maturity's
    /// and an adjustment's.
    pub publish: Publication,
    /// The user's sequence and stored `available` from the processor's read.
    pub sequence_as_read: SequenceAsRead,
    pub audit: Vec<AuditRecord>,
    pub at: Timestamp,
}

#[derive(Debug, Clone)]
pub enum BalanceOutcome {
    Done,
    /// The entry exists already (same idempotency key): it, as first written.
    Replayed(LedgerEntry),
    /// Another withdrawal or adjustment applied, `available` fell below what the change
    /// needs, or a folded commission changed, since it was read: read again.
    Changed,
}

/// At most this many matured commissions are folded into one transaction (DynamoDB takes
/// 100 items; the rest of the transaction needs a few).
pub const MAX_FOLD_PER_TRANSACTION: usize = 50;

pub trait CodeStore: Send + Sync + 'static {
    fn get_code(&self, code: &InviteCode) -> impl Future<Output = Result<Option<InviteCodeRecord>>> + Send;
    /// Codes not deactivated (expired ones included), newest first.
    fn list_active_codes(&self, owner: &UserId) -> impl Future<Output = Result<Vec<InviteCodeRecord>>> + Send;
    /// `Some(code)` when a twin request with the same key created `code` first (nothing
    /// written). Errors: `CodeCollision`, `CodeLimitReached`, `AffiliateDisabled`, `Contention`.
    fn create_code(&self, new: &NewCode) -> impl Future<Output = Result<Option<InviteCode>>> + Send;
    /// The code a request with this key created, if any.
    fn code_for_request(&self, owner: &UserId, key: &IdempotencyKey) -> impl Future<Output = Result<Option<InviteCode>>> + Send;
    /// Errors: `NotFound` (missing or someone else's code).
    fn deactivate_code(
        &self,
        owner: &UserId,
        code: &InviteCode,
        now: Timestamp,
        purge_at: Timestamp,
        audit: &AuditRecord,
    ) -> impl Future<Output = Result<Deactivation>> + Send;
}

pub trait PolicyStore: Send + Sync + 'static {
    fn get_policy(&self, user: &UserId) -> impl Future<Output = Result<Option<AffiliatePolicy>>> + Send;
    /// `Ok(false)`: the overrides changed since they were read (nothing written).
    fn update_policy(&self, update: &PolicyUpdate) -> impl Future<Output = Result<bool>> + Send;
    fn register_user(&self, registration: &Registration) -> impl Future<Output = Result<RegistrationOutcome>> + Send;
}

/// A user's pending commissions as an overview needs them.
#[derive(Debug, Clone, Default)]
pub struct PendingCommissions {
    /// Due at the time asked (oldest first, at most the limit asked).
    pub due: Vec<Commission>,
    /// When the first pending commission not yet due matures.
    pub next_release: Option<Timestamp>,
}

pub trait CommissionStore: Send + Sync + 'static {
    /// What `earner` earned (rewards as earned, every level) on the UTC days `first` to
    /// `last` (`YYYY-MM-DD`), from their daily earnings (strongly consistent).
    fn earned_between(&self, earner: &UserId, first: &str, last: &str) -> impl Future<Output = Result<Money>> + Send;
    fn get_commission(&self, earner: &UserId, order: &OrderId) -> impl Future<Output = Result<Option<Commission>>> + Send;
    /// The commission with its earner's event sequence and stored `available`, in one read
    /// (an admin's step with lifecycle events on: SPEC §7's one sequential read).
    fn get_commission_sequenced(&self, earner: &UserId, order: &OrderId)
        -> impl Future<Output = Result<(Option<Commission>, SequenceAsRead)>> + Send;
    fn write_commission(&self, write: &CommissionWrite) -> impl Future<Output = Result<CommissionOutcome>> + Send;
    /// Up to `limit` of the user's pending commissions due at `now` (matures_at <= now),
    /// oldest first: one strongly consistent `Query`.
    fn due_commissions(&self, user: &UserId, now: Timestamp, limit: usize) -> impl Future<Output = Result<Vec<Commission>>> + Send;
    /// The due commissions as [`CommissionStore::due_commissions`] reads them, and when the
    /// next one after `now` matures: one small `Query` unless a backlog of due commissions
    /// fills it (then those two queries, in parallel).
    fn pending_commissions(&self, user: &UserId, now: Timestamp, limit: usize)
        -> impl Future<Output = Result<PendingCommissions>> + Send;
    /// `Ok(false)`: a commission changed since it was read (nothing written).
    fn mature(&self, maturation: &Maturation) -> impl Future<Output = Result<bool>> + Send;
    /// Users with commissions due at `now` that mature on `day` (`YYYY-MM-DD`, UTC), from
    /// the maturity index (the scheduled catch-up; never a Scan).
    fn due_earners(&self, day: &str, now: Timestamp) -> impl Future<Output = Result<Vec<UserId>>> + Send;
    /// Commissions waiting for an admin's review, oldest first (a sparse index, no Scan).
    /// Errors: `InvalidArgument` for a bad page token.
    fn held_commissions(&self, page_token: Option<&str>, limit: u32) -> impl Future<Output = Result<Page<Commission>>> + Send;
}

pub trait BalanceStore: Send + Sync + 'static {
    /// Zero statistics for a user who has none yet.
    fn get_stats(&self, user: &UserId) -> impl Future<Output = Result<AffiliateStats>> + Send;
    /// The statistics and the user's policy in one round trip (an overview shows both).
    fn get_stats_and_policy(&self, user: &UserId)
        -> impl Future<Output = Result<(AffiliateStats, Option<AffiliatePolicy>)>> + Send;
    fn get_withdrawal(&self, user: &UserId, id: &WithdrawalId)
        -> impl Future<Output = Result<Option<WithdrawalRecord>>> + Send;
    fn get_adjustment(&self, user: &UserId, id: &AdjustmentId) -> impl Future<Output = Result<Option<LedgerEntry>>> + Send;
    fn change_balance(&self, change: &BalanceChange) -> impl Future<Output = Result<BalanceOutcome>> + Send;
}

pub trait HistoryStore: Send + Sync + 'static {
    /// A user's history, newest first. Errors: `InvalidArgument` for a bad page token.
    fn list_history(&self, user: &UserId, page_token: Option<&str>, limit: u32)
        -> impl Future<Output = Result<Page<HistoryItem>>> + Send;
    /// A subject's audit trail, newest first.
    fn list_audit(&self, subject: &str, page_token: Option<&str>, limit: u32)
        -> impl Future<Output = Result<Page<AuditRecord>>> + Send;
    /// For changes that are not DynamoDB transactions (the configuration in Redis) and
    /// for refusals that change nothing else.
    fn put_audit(&self, record: &AuditRecord) -> impl Future<Output = Result<()>> + Send;
    /// A refusal of an event about `buyer`'s referral (on the buyer's trail without an
    /// inviter, else on the inviter's): written only while the buyer's policy is still as
    /// read — stored under that id, not being erased, naming that inviter — so that no record
    /// lands on an id an erasure moved meanwhile (`Contention`: decide again).
    fn put_referral_audit(&self, record: &AuditRecord, buyer: &UserId, inviter: Option<&UserId>) -> impl Future<Output = Result<()>> + Send;
}

/// Storage port: every aggregate's store.
pub trait MarketStore: CodeStore + PolicyStore + CommissionStore + BalanceStore + HistoryStore + ParkedStore + PersonalDataStore + ErasureStore + GroupStore {}

impl<T: CodeStore + PolicyStore + CommissionStore + BalanceStore + HistoryStore + ParkedStore + PersonalDataStore + ErasureStore + GroupStore> MarketStore for T {}

/// The configuration document as stored, for the admin API (no cache: the truth).
pub trait ConfigStore: Send + Sync + 'static {
    /// `None` when no document is stored.
    fn read(&self) -> impl Future<Output = Result<Option<MarketConfig>>> + Send;
    /// Writes `config` unless the stored document's version is no longer `replaces` (another
    /// change came first: `Ok(false)`, nothing written). No document stored counts as any.
    fn write(&self, config: &MarketConfig, replaces: u64) -> impl Future<Output = Result<bool>> + Send;
}

/// Configuration port. Never fails: an adapter falls back to its last good value or the
/// built-in defaults (and logs it), so RPCs keep working when Redis is down.
pub trait ConfigSource: Send + Sync + 'static {
    fn current(&self) -> impl Future<Output = MarketConfig> + Send;
}

/// A token bucket per key (the public code check's per-address limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Tokens a full bucket holds: requests allowed back to back.
    pub burst: u32,
    /// Tokens added per hour (continuously).
    pub per_hour: u32,
}

pub trait RateLimiter: Send + Sync + 'static {
    /// Takes one token from `key`'s bucket, atomically. `Ok(None)`: allowed;
    /// `Ok(Some(wait))`: limited, a token is back after `wait`; `Err`: the limiter is
    /// unreachable (callers fail open: a limit must never take the service down).
    fn take(&self, key: &str, limit: RateLimit) -> impl Future<Output = Result<Option<std::time::Duration>>> + Send;
}

/// A fixed configuration (tests, and deployments without Redis).
#[derive(Debug, Clone, Default)]
pub struct StaticConfig(pub MarketConfig);

impl ConfigSource for StaticConfig {
    async fn current(&self) -> MarketConfig {
        self.0.clone()
    }
}

/// The store traits, for callers holding a concrete store (`use ports::prelude::*`).
pub mod prelude {
    pub use super::{BalanceStore, CodeStore, CommissionStore, GroupStore, HistoryStore, MarketStore, ParkedStore, PolicyStore};
}
