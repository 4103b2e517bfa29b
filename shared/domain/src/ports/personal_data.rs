//! The ports of personal-data requests (GDPR): a user's export and erasure.

use std::future::Future;

use crate::audit::AuditRecord;
use crate::ids::UserId;
use crate::personal_data::DataRecord;
use crate::time::Timestamp;

use super::{Page, Result};

/// Everything stored about one user, for a personal-data export (GDPR art. 15).
pub trait PersonalDataStore: Send + Sync + 'static {
    /// One page of the user's data: at most `limit` records of each section not finished
    /// yet, read at once, in [`DataSection::ALL`]'s order; `next` continues each section
    /// where it stopped. Found by key, or through an index
    /// on the user (the referrals, the codes, the purchases: eventually consistent, so
    /// a change of the last second may be missing). Errors: `InvalidArgument` for a bad
    /// page token.
    fn personal_data(&self, user: &UserId, page_token: Option<&str>, limit: u32)
        -> impl Future<Output = Result<Page<DataRecord>>> + Send;
}

/// An erasure (GDPR art. 17): `user` becomes `pseudonym` in every item that names them.
#[derive(Debug, Clone)]
pub struct Erasure {
    pub user: UserId,
    pub pseudonym: UserId,
    pub at: Timestamp,
    /// On the pseudonym's trail, written last.
    pub audit: AuditRecord,
    /// Refuse (`BalanceNotSettled`, nothing changed) if the user's `available`, read once
    /// nothing can change it any more, is positive.
    pub refuse_positive_balance: bool,
}

/// What an erasure changed (all zero: erased before).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    /// Items of the user moved to the pseudonym (policy, statistics, ledger, audit trail).
    pub moved: usize,
    /// Items of others rewritten (referrals, commissions on their orders, records naming
    /// them, codes) and short-lived items deleted (waiting events, counters).
    pub rewritten: usize,
}

pub trait ErasureStore: Send + Sync + 'static {
    /// Replaces the user everywhere while events naming them go on arriving (each write of
    /// the user's items waits meanwhile: `Contention`, retried). Idempotent: a repeat finds
    /// nothing left to change, an interrupted one finishes. Errors: `BalanceNotSettled` (see
    /// [`Erasure::refuse_positive_balance`]), `Contention` (an index still lags, a write lost
    /// a race: ask again).
    fn erase(&self, e: &Erasure) -> impl Future<Output = Result<Erased>> + Send;
}
