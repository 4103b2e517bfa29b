//! The ports of events that wait for their buyer's registration (SPEC: arrival order).

use std::future::Future;

use crate::audit::AuditRecord;
use crate::ids::UserId;
use crate::inbound::WaitingEvent;
use crate::time::Timestamp;

use super::Result;

/// An order or refund to keep until its buyer's registration arrives.
#[derive(Debug, Clone)]
pub struct Parking {
    pub event: WaitingEvent,
    pub parked_at: Timestamp,
    /// When it stops waiting: the scheduled expiry drops it (audited) after this.
    pub expires_at: Timestamp,
    /// When DynamoDB's TTL removes it if the expiry never ran (a backstop, later).
    pub purge_at: Timestamp,
    /// On the buyer's trail, written with it.
    pub audit: AuditRecord,
    /// The buyer's pseudonym (where the function has the erasure key): an erasure that
    /// completed since the buyer was read must not find the event parked under their id.
    pub pseudonym: Option<UserId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParkOutcome {
    Parked,
    /// It waits already (a redelivery, or the order under another event id): nothing written.
    AlreadyWaiting,
    /// The buyer's registration committed meanwhile: nothing written, decide it now.
    BuyerRegistered,
}

/// An event waiting for its buyer's registration, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedEvent {
    pub event: WaitingEvent,
    pub parked_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Events that arrived before their buyer's registration. Parking is conditional on the
/// buyer's policy not being registered, in one transaction; the registration reads the
/// buyer's waiting events after its own transaction committed. DynamoDB serializes the two,
/// so every event is either parked before the registration (and found by it) or refused
/// parking (and decided at once): none is lost in between.
pub trait ParkedStore: Send + Sync + 'static {
    fn park(&self, parking: &Parking) -> impl Future<Output = Result<ParkOutcome>> + Send;
    /// Up to `limit` of the buyer's waiting events: one strongly consistent `Query`.
    fn parked_events(&self, buyer: &UserId, limit: usize) -> impl Future<Output = Result<Vec<ParkedEvent>>> + Send;
    /// Removes one waiting event (by [`WaitingEvent::key`]) with its audit record, in one
    /// transaction. `Ok(false)`: it was removed before (nothing written).
    fn unpark(&self, buyer: &UserId, key: &str, audit: &AuditRecord) -> impl Future<Output = Result<bool>> + Send;
    /// Waiting events whose wait ended by `now`, of those expiring on `day` (`YYYY-MM-DD`,
    /// UTC): from the expiry index (the scheduled expiry; never a Scan). The index may lag:
    /// [`ParkedStore::unpark`] decides.
    fn expired_events(&self, day: &str, now: Timestamp) -> impl Future<Output = Result<Vec<ParkedEvent>>> + Send;
}
