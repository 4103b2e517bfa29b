//! The review queue (admin): rewards held because an abuse rule fired when they were earned
//! (`ListHeldRewards`, oldest first), and the decision on one of them (`ReviewReward`),
//! made exactly once per commission.

use serde_json::json;
use tracing::info;

use crate::request::AdminRequest;
use crate::audit::{Actor, AuditAction, AuditRecord};
use crate::error::MarketError;
use crate::lifecycle::events::{LifecycleEvent, Publication};
use crate::ids::{OrderId, UserId};
use crate::lifecycle::{Commission, Refused, Review};
use crate::money::Money;
use crate::ports::{CommissionOutcome, CommissionWrite, ConfigSource, MarketStore, ReferralCheck, Page};
use crate::time::Timestamp;

use super::rewards::{reversal_audits, COMMISSION_ATTEMPTS};
use super::{Deps, Processor};

// ---------------------------------------------------------------- ListHeldRewards (admin)

pub struct HeldPageRequest {
    pub page_size: u32,
    pub page_token: Option<String>,
}

pub struct HeldPage {
    pub page: Page<Commission>,
    /// The moment the commissions' statuses are shown for.
    pub now: Timestamp,
}

pub struct ListHeldRewards<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> Processor for ListHeldRewards<S, C> {
    type Request = AdminRequest<HeldPageRequest>;
    type Response = HeldPage;

    async fn process(&self, req: AdminRequest<HeldPageRequest>) -> Result<HeldPage, MarketError> {
        let size = crate::request::page_size(req.body.page_size)?;
        let mut page = self.0.store.held_commissions(req.body.page_token.as_deref(), size).await?;
        // The index is eventually consistent: a commission reviewed a moment ago may still be
        // listed; show only what still waits.
        page.items.retain(Commission::awaits_review);
        Ok(HeldPage { page, now: self.0.clock.now() })
    }
}

// ---------------------------------------------------------------- ReviewReward (admin)

pub struct ReviewRequest {
    /// The earner of the held commission.
    pub user: UserId,
    pub order_id: OrderId,
    pub approve: bool,
    /// Why: on the audit record (and on the reversal entry when rejected).
    pub note: String,
}

pub struct ReviewResult {
    pub commission: Commission,
    pub approved: bool,
    /// This decision was made before: nothing changed now.
    pub replayed: bool,
    /// What moved: out of `held` into pending/available (approved) or reversed (rejected).
    pub amount: Money,
    pub now: Timestamp,
}

pub struct ReviewReward<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> Processor for ReviewReward<S, C> {
    type Request = AdminRequest<ReviewRequest>;
    type Response = ReviewResult;

    async fn process(&self, req: AdminRequest<ReviewRequest>) -> Result<ReviewResult, MarketError> {
        let d = &self.0;
        let r = &req.body;
        let note = super::balance::admin_reason("reason", &r.note)?;
        let actor = Actor::Admin(req.admin.clone());
        let publish = d.config.current().await.lifecycle_events;
        for _ in 0..COMMISSION_ATTEMPTS {
            let now = d.clock.now();
            let (current, as_read) = super::reversal::read_commission(d, &r.user, &r.order_id, publish).await?;
            let Some(current) = current.filter(|c| c.earned.is_some()) else {
                return Err(MarketError::NotFound);
            };
            let review = Review { approved: r.approve, note: note.to_owned(), by: actor.to_string(), at: now };
            let change = match current.review(review, now) {
                Ok(change) => change,
                // The same decision again (a retry, or a twin that won): its outcome, unchanged.
                Err(Refused::AlreadyReviewed { approved }) if approved == r.approve => {
                    let amount = current.voided.as_ref().map_or_else(|| current.amount(), |v| v.amount);
                    return Ok(ReviewResult { commission: current, approved, replayed: true, amount, now });
                }
                Err(Refused::AlreadyReviewed { .. }) => return Err(MarketError::AlreadyReviewed),
                Err(_) => return Err(MarketError::NotHeldForReview),
            };
            let amount = Money::from_minor(-change.stats.held);
            let mut audit = vec![AuditRecord::new(&r.user, now, AuditAction::RewardReviewed, actor.clone(), req.request_id.as_str(), json!({
                "order_id": r.order_id, "approved": r.approve, "note": note, "amount": amount,
                "status": change.after.status(now), "request_id": req.request_id,
            }))];
            audit.extend(reversal_audits(&change.entries, now, &actor));
            let after = change.after.clone();
            // Approved: what is left moves on; rejected: a reversal (cause review_rejected).
            let events = if r.approve { LifecycleEvent::approved(&change, now).into_iter().collect() } else { LifecycleEvent::of_entries(std::slice::from_ref(&change)) };
            let publish = Publication::lifecycle(publish, events);
            let sequence_as_read = as_read.map(|s| (r.user.clone(), s));
            match d.store.write_commission(&CommissionWrite { changes: vec![change], referral: ReferralCheck::None, audit, publish, sequence_as_read, at: now }).await? {
                CommissionOutcome::Written => {
                    info!(admin = %req.admin, user_id = %r.user, order_id = %r.order_id, approved = r.approve, amount = %amount, "held reward reviewed");
                    return Ok(ReviewResult { commission: after, approved: r.approve, replayed: false, amount, now });
                }
                // Another change of this commission (a refund, a twin review) won: re-read.
                CommissionOutcome::Duplicate | CommissionOutcome::Conflict | CommissionOutcome::LimitReached | CommissionOutcome::Moved => continue,
            }
        }
        Err(MarketError::Contention)
    }
}
