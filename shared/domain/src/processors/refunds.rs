//! Refunds and chargebacks of a paid order: each shrinks the order's commissions (every
//! level) exactly once per refund id, in one transaction; before the reward it is recorded.

use serde_json::json;
use tracing::{info, warn};

use crate::audit::{Actor, AuditAction, AuditRecord};
use crate::error::MarketError;
use crate::lifecycle::events::{LifecycleEvent, Publication};
use crate::config::MarketConfig;
use crate::ids::UserId;
use crate::inbound::{event_time, OrderRefunded, WaitingEvent};
use crate::lifecycle::{Change, Commission, Refund, Refused};
use crate::money::Money;
use crate::ports::{CommissionOutcome, CommissionWrite, ConfigSource, MarketStore, ReferralCheck};
use crate::time::Timestamp;

use super::arrival::{registered_buyer, Arrival, Buyer};
use super::personal_data::settled_earner;
use super::rewards::{reversal_audits, COMMISSION_ATTEMPTS};
use super::{Deps, Processor, REFUND_SOURCE};

// ---------------------------------------------------------------- order.refunded

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundResult {
    /// The commission shrank by `reversed` (0 when the refund did not change the floor).
    Applied { reversed: Money },
    /// Recorded before the order's reward: applied when the reward arrives.
    RecordedBeforeReward,
    /// This refund was applied before.
    Duplicate,
    /// The buyer has no inviter: nothing to reverse (audited on the buyer).
    NoInviter,
    /// The buyer's registration has not arrived: the refund waits for it.
    Waiting,
    /// The market never saw the buyer register, and waiting for it is off or over.
    NotRegistered,
}

/// Applies a refund or chargeback to the order's commission, exactly once per refund id.
pub struct ApplyRefund<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> ApplyRefund<S, C> {
    /// A refund that changes nothing is still on a trail. Its time is the event's, so a
    /// redelivery rewrites the same record instead of adding one.
    /// A refusal, on the inviter's trail (the buyer's without one), as long as the buyer's
    /// referral is as read (an erasure meanwhile: decided again).
    async fn reject(&self, inviter: Option<&UserId>, ev: &OrderRefunded, reason: &str, extra: serde_json::Value) -> Result<(), MarketError> {
        let subject = inviter.unwrap_or(&ev.buyer);
        let record = AuditRecord::new(subject, ev.occurred_at, AuditAction::RefundRejected, Actor::System(REFUND_SOURCE.into()), ev.event_id.as_str(), json!({
            "order_id": ev.order_id, "refund_id": ev.refund_id, "amount": ev.amount, "currency": ev.currency,
            "reason": reason, "detail": extra,
        }));
        self.0.store.put_referral_audit(&record, &ev.buyer, inviter).await
    }
}

impl<S: MarketStore, C: ConfigSource> ApplyRefund<S, C> {
    /// The refund's steps on the commissions of levels 2 and 3 written with level 1's
    /// reward (read in one parallel round trip). Before the reward there are none: the
    /// refund recorded on level 1 is inherited by the levels when the reward arrives.
    async fn levels(&self, level1: &Commission, ev: &OrderRefunded, refund: &Refund, now: Timestamp) -> Result<Vec<Change>, MarketError> {
        let Some(earned) = &level1.earned else { return Ok(Vec::new()) };
        let store = &self.0.store;
        let read = futures::future::try_join_all(earned.level_earners.iter().map(|e| store.get_commission(e, &ev.order_id))).await?;
        let mut changes = Vec::new();
        for (earner, commission) in earned.level_earners.iter().zip(read) {
            let Some(commission) = commission else {
                // An earner's erasure under way: their commission is not under the pseudonym yet.
                settled_earner(&self.0, earner).await?;
                warn!(order_id = %ev.order_id, earner = %earner, "a level's commission is missing: nothing to reverse there");
                continue;
            };
            match commission.refund(refund.clone(), now) {
                Ok(change) => changes.push(change),
                Err(Refused::Duplicate) => {}
                Err(e) => {
                    warn!(order_id = %ev.order_id, earner = %earner, refused = ?e, "a level's commission refuses the refund level 1 accepts");
                }
            }
        }
        Ok(changes)
    }
}

impl<S: MarketStore, C: ConfigSource> Processor for ApplyRefund<S, C> {
    type Request = OrderRefunded;
    type Response = RefundResult;

    async fn process(&self, mut ev: OrderRefunded) -> Result<RefundResult, MarketError> {
        let d = &self.0;
        ev.occurred_at = event_time(ev.occurred_at, d.clock.now());
        // Again when an erasure moved the buyer or their inviter after they were read.
        for _ in 0..RESOLVE_ATTEMPTS {
            match registered_buyer(d, WaitingEvent::Refund(ev.clone())).await? {
                Buyer::Registered(buyer, config) => {
                    // The buyer as stored: their pseudonym if they were erased.
                    let mut ev = ev.clone();
                    ev.buyer = buyer.user_id.clone();
                    if let Some(result) = self.apply(ev, buyer.inviter, config).await? {
                        return Ok(result);
                    }
                }
                Buyer::NotYet(Arrival::Waiting) => return Ok(RefundResult::Waiting),
                Buyer::NotYet(_) => return Ok(RefundResult::NotRegistered),
            }
        }
        Err(MarketError::Contention)
    }
}

/// Reads of the buyer a refund makes when erasures move them or their inviter meanwhile.
const RESOLVE_ATTEMPTS: usize = 3;

impl<S: MarketStore, C: ConfigSource> ApplyRefund<S, C> {
    /// The refund of a registered buyer's order; `None`: a user it names was erased after
    /// they were read (read them again).
    async fn apply(&self, ev: OrderRefunded, inviter: Option<UserId>, config: MarketConfig) -> Result<Option<RefundResult>, MarketError> {
        let d = &self.0;
        let Some(inviter) = inviter else {
            self.reject(None, &ev, "no_inviter", json!(null)).await?;
            info!(event_id = %ev.event_id, order_id = %ev.order_id, "refund of an order without inviter: nothing to reverse");
            return Ok(Some(RefundResult::NoInviter));
        };
        // An erased inviter's commissions are theirs once their erasure is complete.
        settled_earner(d, &inviter).await?;
        if ev.currency != config.currency.as_str() {
            self.reject(Some(&inviter), &ev, "other_currency", json!({"expected": config.currency})).await?;
            return Err(MarketError::InvalidArgument(format!("refund in {} but the market pays in {}", ev.currency, config.currency)));
        }
        let actor = Actor::System(REFUND_SOURCE.into());
        let refund = Refund { refund_id: ev.refund_id.clone(), amount: ev.amount, reason: ev.reason, at: ev.occurred_at, event_id: ev.event_id.clone() };
        for _ in 0..COMMISSION_ATTEMPTS {
            let now = d.clock.now();
            let stored = d.store.get_commission(&inviter, &ev.order_id).await?;
            // A commission this refund creates (recorded before its reward): the buyer must
            // still be the inviter's referral when it is written.
            let referral = match &stored {
                Some(_) => ReferralCheck::None,
                None => ReferralCheck::Named { buyer: ev.buyer.clone(), inviter: inviter.clone() },
            };
            let current = stored.unwrap_or_else(|| Commission::new(inviter.clone(), ev.order_id.clone(), ev.buyer.clone()));
            let change = match current.refund(refund.clone(), now) {
                Ok(change) => change,
                Err(Refused::Duplicate) => return Ok(Some(RefundResult::Duplicate)),
                Err(Refused::OverRefund { left }) => {
                    self.reject(Some(&inviter), &ev, "over_refund", json!({"left_of_order": left})).await?;
                    warn!(event_id = %ev.event_id, order_id = %ev.order_id, refund_id = %ev.refund_id, left = %left, "refund exceeds what is left of the order");
                    return Err(MarketError::InvalidArgument("refund exceeds what is left of the order".into()));
                }
                Err(_) => return Err(MarketError::Overflow),
            };
            let earned = change.after.earned.is_some();
            let reversed = Money::from_minor(change.stats.reversed_total);
            let mut audit = reversal_audits(&change.entries, now, &actor);
            if audit.is_empty() {
                let action = if earned { AuditAction::RewardReversed } else { AuditAction::RefundRecorded };
                audit.push(AuditRecord::new(&inviter, now, action, actor.clone(), ev.refund_id.as_str(), json!({
                    "order_id": ev.order_id, "refund_id": ev.refund_id, "refund_amount": ev.amount, "reason": ev.reason,
                    "amount": reversed, "event_id": ev.event_id,
                })));
            }
            // The levels above paid for the same order shrink by the same refund, each at
            // its own rate, in the same transaction.
            let mut changes = vec![change];
            for level in self.levels(&current, &ev, &refund, now).await? {
                audit.extend(reversal_audits(&level.entries, now, &actor));
                changes.push(level);
            }
            let levels = changes.len() - 1;
            let publish = Publication::lifecycle(config.lifecycle_events, LifecycleEvent::of_entries(&changes));
            match d.store.write_commission(&CommissionWrite { changes, referral, audit, publish, sequence_as_read: None, at: now }).await? {
                CommissionOutcome::Written => {
                    info!(event_id = %ev.event_id, order_id = %ev.order_id, refund_id = %ev.refund_id, reversed = %reversed, earned, levels, "refund applied");
                    return Ok(Some(if earned { RefundResult::Applied { reversed } } else { RefundResult::RecordedBeforeReward }));
                }
                CommissionOutcome::Duplicate => return Ok(Some(RefundResult::Duplicate)),
                CommissionOutcome::Moved => return Ok(None),
                CommissionOutcome::Conflict | CommissionOutcome::LimitReached => continue,
            }
        }
        Err(MarketError::Contention)
    }
}
