//! Arrival order: `user.registered`, `order.paid` and `order.refunded` travel on different
//! queues, so an order or refund may arrive before its buyer's registration. Such an event
//! is not decided yet: it waits (parked in the store, keyed by buyer) until the registration
//! arrives, and is then decided by the same processors as if the events had come in order —
//! its own (clamped) time counts, not the time it was finally decided. A registration that
//! never comes ends the wait after `registration_wait_days`: the scheduled expiry drops the
//! event, audited on the buyer and counted.

use serde_json::json;
use tracing::{info, warn};

use crate::audit::{Actor, AuditAction, AuditRecord};
use crate::config::MarketConfig;
use crate::error::MarketError;
use crate::ids::UserId;
use crate::inbound::WaitingEvent;
use crate::policy::AffiliatePolicy;
use crate::ports::{ConfigSource, MarketStore, ParkOutcome, ParkedEvent, Parking};
use super::{ApplyRefund, ApplyReward, DecideOrderReward, Deps, OrderDecision, Processor, RefundResult, ARRIVAL_SOURCE};

/// How long after its wait ended DynamoDB's TTL removes a waiting event the scheduled
/// expiry never reached (a backstop: the expiry is what audits it).
const PURGE_AFTER_EXPIRY_DAYS: u32 = 7;

/// Waiting events decided per page, and pages per registration: beyond them the
/// registration fails and comes back (SQS), continuing where it stopped.
const DECIDE_PAGE: usize = 25;
const DECIDE_PAGES: usize = 4;

/// How far back the scheduled expiry looks for expiry days it may have missed.
pub const EXPIRY_CATCH_UP_DAYS: u32 = 7;

/// What became of an event whose buyer the market has not seen register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// It waits for the registration.
    Waiting,
    /// The registration committed meanwhile: decide it now.
    Registered,
    /// Waiting is off (`registration_wait_days` = 0), or its wait is over already: dropped
    /// (audited) as a buyer who never registered.
    Expired,
}

/// Parks `event` until its buyer's registration, conditional on the buyer still not being
/// registered (the store checks it in the same transaction).
async fn wait_for_registration<S: MarketStore, C: ConfigSource>(
    d: &Deps<S, C>,
    event: WaitingEvent,
    config: &MarketConfig,
) -> Result<Arrival, MarketError> {
    let now = d.clock.now();
    let expires_at = event.occurred_at().plus_days(config.registration_wait_days);
    let details = details(&event, json!({"expires_at": expires_at}));
    if expires_at <= now {
        // Dated by the event, so a redelivery rewrites the same record.
        let audit = AuditRecord::new(event.buyer(), event.occurred_at(), AuditAction::WaitingEventExpired, actor(), event.key(), details);
        d.store.put_audit(&audit).await?;
        warn!(buyer = %event.buyer(), order_id = %event.order_id(), kind = event.kind(), "an event of a buyer the market has not seen register, not waited for");
        return Ok(Arrival::Expired);
    }
    let audit = AuditRecord::new(event.buyer(), now, AuditAction::WaitingForRegistration, actor(), event.key(), details);
    let pseudonym = match crate::personal_data::is_pseudonym(event.buyer()) {
        true => None,
        false => super::personal_data::pseudonym_of(d, event.buyer()).await?,
    };
    let parking = Parking { purge_at: expires_at.plus_days(PURGE_AFTER_EXPIRY_DAYS), event, parked_at: now, expires_at, audit, pseudonym };
    Ok(match d.store.park(&parking).await? {
        ParkOutcome::Parked | ParkOutcome::AlreadyWaiting => {
            info!(buyer = %parking.event.buyer(), order_id = %parking.event.order_id(), kind = parking.event.kind(), "waiting for the buyer's registration");
            Arrival::Waiting
        }
        ParkOutcome::BuyerRegistered => Arrival::Registered,
    })
}

/// Whether an event's buyer is registered: then their policy and the configuration to decide
/// the event with; else what became of the event (waiting, or dropped).
// One per event, returned once and matched at once: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(super) enum Buyer {
    Registered(AffiliatePolicy, MarketConfig),
    NotYet(Arrival),
}

/// Reads the event's buyer; a buyer the market has not seen register gets the event parked
/// (twice at most: a registration that commits while the event parks is seen on the second
/// read).
pub(super) async fn registered_buyer<S: MarketStore, C: ConfigSource>(d: &Deps<S, C>, mut event: WaitingEvent) -> Result<Buyer, MarketError> {
    for _ in 0..2 {
        let (buyer, config) = futures::join!(d.store.get_policy(event.buyer()), d.config.current());
        // A buyer the store does not know may have been erased: their records are the
        // pseudonym's (the caller takes the buyer's id from the policy returned), and so is
        // the wait for a registration that has not come.
        let buyer = match buyer? {
            Some(policy) => Some(policy),
            None => match super::personal_data::erased(d, event.buyer()).await? {
                Some(erased) => {
                    event = event.with_buyer(erased.user_id.clone());
                    Some(erased)
                }
                None => None,
            },
        };
        match buyer.filter(|b| b.registered_at.is_some()) {
            Some(buyer) => return Ok(Buyer::Registered(buyer, config)),
            None => match wait_for_registration(d, event.clone(), &config).await? {
                Arrival::Registered => continue,
                other => return Ok(Buyer::NotYet(other)),
            },
        }
    }
    Err(MarketError::Contention)
}

fn actor() -> Actor {
    Actor::System(ARRIVAL_SOURCE.into())
}

/// An audit record's details of a waiting event: what it is, and `extra` (an object).
fn details(event: &WaitingEvent, extra: serde_json::Value) -> serde_json::Value {
    let mut d = json!({"kind": event.kind(), "order_id": event.order_id(), "event_id": event.event_id(), "occurred_at": event.occurred_at()});
    if let (Some(d), serde_json::Value::Object(extra)) = (d.as_object_mut(), extra) {
        d.extend(extra);
    }
    d
}

/// Decides the events that waited for `buyer`'s registration, oldest first (an order before
/// a refund of the same instant), each with the processor that would have decided it, and
/// removes each with an audit record of its outcome. Runs after the registration committed,
/// on every delivery of it, so a crash half way is finished by the redelivery (each
/// decision is idempotent). Returns how many were decided.
pub struct DecideWaitingEvents<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> DecideWaitingEvents<S, C> {
    /// The outcome as the audit record states it; a permanent refusal (an over-refund, a
    /// foreign currency) is an outcome too, transient failures are errors (retried).
    async fn decide(&self, event: &WaitingEvent) -> Result<String, MarketError> {
        let d = &self.0;
        let outcome = match event {
            WaitingEvent::Order(order) => match DecideOrderReward(d.clone()).process(order.clone()).await {
                Ok(OrderDecision::Reward(reward)) => ApplyReward(d.clone()).process(reward).await.map(|o| format!("reward: {o:?}")),
                Ok(OrderDecision::NoReward(reason)) => Ok(format!("no reward: {reason:?}")),
                // The buyer is registered (this runs after the registration committed).
                Ok(OrderDecision::Waiting) => Err(MarketError::Contention),
                Err(e) => Err(e),
            },
            WaitingEvent::Refund(refund) => match ApplyRefund(d.clone()).process(refund.clone()).await {
                Ok(RefundResult::Waiting) => Err(MarketError::Contention),
                Ok(result) => Ok(format!("refund: {result:?}")),
                Err(e) => Err(e),
            },
        };
        match outcome {
            Err(e) if !e.is_transient() && !matches!(e, MarketError::Internal(_)) => Ok(format!("refused: {e}")),
            other => other,
        }
    }
}

impl<S: MarketStore, C: ConfigSource> Processor for DecideWaitingEvents<S, C> {
    type Request = UserId;
    type Response = usize;

    async fn process(&self, buyer: UserId) -> Result<usize, MarketError> {
        let store = &self.0.store;
        let mut decided = 0;
        for _ in 0..DECIDE_PAGES {
            let mut waiting = store.parked_events(&buyer, DECIDE_PAGE).await?;
            if waiting.is_empty() {
                return Ok(decided);
            }
            waiting.sort_by_key(|p| p.event.decision_order());
            let full = waiting.len() == DECIDE_PAGE;
            for ParkedEvent { event, parked_at, .. } in waiting {
                let outcome = self.decide(&event).await?;
                let now = self.0.clock.now();
                let waited_ms = now.millis().saturating_sub(parked_at.millis());
                let extra = json!({"parked_at": parked_at, "waited_ms": waited_ms, "outcome": outcome});
                let audit = AuditRecord::new(&buyer, now, AuditAction::WaitingEventDecided, actor(), event.key(), details(&event, extra));
                if store.unpark(&buyer, &event.key(), &audit).await? {
                    decided += 1;
                    info!(buyer = %buyer, order_id = %event.order_id(), kind = event.kind(), waited_ms, outcome = %outcome, "decided after the buyer's registration");
                }
            }
            if !full {
                return Ok(decided);
            }
        }
        // More waited than one delivery decides: the registration comes back for the rest.
        warn!(buyer = %buyer, decided, "more events waited for this registration than one delivery decides");
        Err(MarketError::Contention)
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryReport {
    pub expired: usize,
    pub failed: usize,
}

/// The scheduled expiry: waiting events whose wait ended (from the expiry index, by day)
/// are dropped, each with an audit record on its buyer. Cost follows the expired events,
/// not the table.
pub struct ExpireWaitingEvents<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> Processor for ExpireWaitingEvents<S, C> {
    type Request = ();
    type Response = ExpiryReport;

    async fn process(&self, _: ()) -> Result<ExpiryReport, MarketError> {
        let d = &self.0;
        let now = d.clock.now();
        let mut report = ExpiryReport::default();
        for day in now.utc_days_back(EXPIRY_CATCH_UP_DAYS) {
            for ParkedEvent { event, parked_at, expires_at } in d.store.expired_events(&day, now).await? {
                let buyer = event.buyer().clone();
                let extra = json!({"parked_at": parked_at, "expires_at": expires_at});
                let audit = AuditRecord::new(&buyer, now, AuditAction::WaitingEventExpired, actor(), event.key(), details(&event, extra));
                match d.store.unpark(&buyer, &event.key(), &audit).await {
                    Ok(true) => {
                        report.expired += 1;
                        warn!(buyer = %buyer, order_id = %event.order_id(), kind = event.kind(), "the buyer never registered: the waiting event expired");
                    }
                    // Decided by a registration since the index was read.
                    Ok(false) => {}
                    Err(e) => {
                        warn!(buyer = %buyer, error = %e, "a waiting event could not be expired; the next run retries");
                        report.failed += 1;
                    }
                }
            }
        }
        Ok(report)
    }
}
