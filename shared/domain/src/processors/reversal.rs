//! The admin's void of one commission (`ReverseReward`), exactly once per idempotency key.

use serde_json::json;
use tracing::info;

use crate::audit::Actor;
use crate::error::MarketError;
use crate::lifecycle::events::{LifecycleEvent, Publication};
use crate::ids::{OrderId, UserId};
use crate::lifecycle::Commission;
use crate::money::Money;
use crate::ports::{CommissionOutcome, CommissionWrite, ConfigSource, MarketStore, ReferralCheck, SequenceAsRead};
use crate::time::Timestamp;

use super::rewards::{reversal_audits, COMMISSION_ATTEMPTS};
use super::{Deps, Processor};

// ---------------------------------------------------------------- ReverseReward (admin)

pub struct ReverseRequest {
    /// The earner whose commission is voided.
    pub user: UserId,
    pub order_id: OrderId,
    /// Why (fraud, duplicate, ...): on the reversal entry and the audit record.
    pub note: String,
    pub idempotency_key: crate::ids::IdempotencyKey,
}

pub struct ReverseResult {
    pub reversed: Money,
    pub commission: Commission,
    pub replayed: bool,
    /// The moment the commission's status is shown for.
    pub now: Timestamp,
}

/// Voids the rest of one commission, exactly once per key.
pub struct ReverseReward<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> Processor for ReverseReward<S, C> {
    type Request = crate::request::AdminRequest<ReverseRequest>;
    type Response = ReverseResult;

    async fn process(&self, req: crate::request::AdminRequest<ReverseRequest>) -> Result<ReverseResult, MarketError> {
        let d = &self.0;
        let r = &req.body;
        let note = super::balance::admin_reason("note", &r.note)?;
        let id = crate::ids::ReversalId::derive(&r.user, &r.order_id, &r.idempotency_key);
        let actor = Actor::Admin(req.admin.clone());
        let publish = d.config.current().await.lifecycle_events;
        for _ in 0..COMMISSION_ATTEMPTS {
            let now = d.clock.now();
            let (current, as_read) = read_commission(d, &r.user, &r.order_id, publish).await?;
            let Some(current) = current.filter(|c| c.earned.is_some()) else {
                return Err(MarketError::NotFound);
            };
            if let Some(void) = current.voided.as_ref().filter(|v| v.reversal_id == id) {
                return Ok(ReverseResult { reversed: void.amount, replayed: true, commission: current, now });
            }
            let request = crate::lifecycle::VoidRequest { reversal_id: id.clone(), note: note.to_owned(), by: actor.to_string() };
            let change = match current.void(request, now) {
                Ok(change) => change,
                Err(_) => return Err(MarketError::NothingToReverse),
            };
            let reversed = Money::from_minor(change.stats.reversed_total);
            let mut audit = reversal_audits(&change.entries, now, &actor);
            for a in &mut audit {
                a.details["request_id"] = json!(req.request_id);
            }
            let after = change.after.clone();
            let changes = vec![change];
            let publish = Publication::lifecycle(publish, LifecycleEvent::of_entries(&changes));
            let sequence_as_read = as_read.map(|s| (r.user.clone(), s));
            match d.store.write_commission(&CommissionWrite { changes, referral: ReferralCheck::None, audit, publish, sequence_as_read, at: now }).await? {
                CommissionOutcome::Written => {
                    info!(admin = %req.admin, user_id = %r.user, order_id = %r.order_id, reversed = %reversed, "reward reversed");
                    return Ok(ReverseResult { reversed, commission: after, replayed: false, now });
                }
                // A twin with the same key won: the next read replays it.
                CommissionOutcome::Duplicate | CommissionOutcome::Conflict | CommissionOutcome::LimitReached | CommissionOutcome::Moved => continue,
            }
        }
        Err(MarketError::Contention)
    }
}

/// An admin step's commission, with lifecycle events on together with its earner's event
/// sequence (one read: the write numbers its events on it).
pub(super) async fn read_commission<S: MarketStore, C>(
    d: &Deps<S, C>,
    earner: &crate::ids::UserId,
    order: &OrderId,
    lifecycle_events: bool,
) -> Result<(Option<Commission>, Option<SequenceAsRead>), MarketError> {
    if lifecycle_events {
        let (commission, as_read) = d.store.get_commission_sequenced(earner, order).await?;
        Ok((commission, Some(as_read)))
    } else {
        Ok((d.store.get_commission(earner, order).await?, None))
    }
}
