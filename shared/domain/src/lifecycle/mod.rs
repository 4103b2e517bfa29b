//! The commission lifecycle of one order for the user who earns from it (the buyer's
//! inviter). Pure rules: every change takes the state as read and returns the state after
//! it, the ledger entries it appends and the deltas of the earner's statistics; the store
//! writes all three in one transaction conditional on the version that was read.
//!
//! ```text
//!   (refunds only) --earn--> pending --mature (matures_at reached)--> available
//!          \                    \                                      /
//!           \        refund / chargeback / admin void: the rest shrinks (reversal entries)
//!            --earn (an abuse rule fired)--> held --approve--> pending or available
//!                                                 --reject---> reversed (review_rejected)
//! ```
//! A held commission neither matures nor can be withdrawn; refunds and voids shrink it like
//! any other. Each held commission is reviewed exactly once.
//! The commission of an order of amount A after accepted refunds R is exactly
//! `floor((A − R) × bps / 10000)` at the rate it was earned with; each refund reverses the
//! difference once. Refunds known before the reward are replayed when it arrives, so the
//! result is the same in every order of arrival.

use serde::{Deserialize, Serialize};

use crate::group::EarnedTerms;
use crate::ids::{EventId, OrderId, RefundId, ReversalId, UserId};
use crate::ledger::{Bucket, HoldReason, LedgerEntry, ReversalCause};
use crate::money::{commission, Bps, Currency, Money};
use crate::time::Timestamp;

mod delta;
pub mod events;
pub use delta::StatsDelta;
pub use crate::inbound::RefundReason;

/// The reward as it was earned (immutable once set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Earned {
    pub order_amount: Money,
    pub currency: Currency,
    pub commission_bps: Bps,
    /// `floor(order_amount × bps / 10000)`: the order's commission before any refund.
    pub reward: Money,
    pub earned_at: Timestamp,
    /// `earned_at + holding_period_days` (the period in force when it was earned).
    pub matures_at: Timestamp,
    pub source_event_id: EventId,
    /// 1 = the buyer's inviter; 2 and 3 = their ancestors (absent before levels: 1).
    #[serde(default = "level_one", skip_serializing_if = "is_level_one")]
    pub level: u8,
    /// On a level-1 commission: the earners of levels 2 and 3 of the same order, written in
    /// the same transaction (a refund reverses theirs too, in the same transaction).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub level_earners: Vec<UserId>,
    /// Why the reward was held for review when it was earned (`None`: it was not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<HoldReason>,
    /// The rule that paid it (`None`: a percentage at `commission_bps`, uncapped, without
    /// bounty — every reward earned before reward groups); boxed, as in the ledger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms: Option<Box<EarnedTerms>>,
}

impl Earned {
    /// What the reward is worth before any refund (what `reward` must be).
    pub fn gross(&self) -> Option<Money> {
        net(self, Money::ZERO)
    }
}

/// An admin's decision on a held commission (made once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub approved: bool,
    pub note: String,
    pub by: String,
    pub at: Timestamp,
}

fn level_one() -> u8 {
    1
}

fn is_level_one(level: &u8) -> bool {
    *level == 1
}

impl From<RefundReason> for ReversalCause {
    fn from(r: RefundReason) -> Self {
        match r {
            RefundReason::Refund => ReversalCause::Refund,
            RefundReason::Chargeback => ReversalCause::Chargeback,
        }
    }
}

/// A refund of (part of) the order, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub refund_id: RefundId,
    pub amount: Money,
    pub reason: RefundReason,
    pub at: Timestamp,
    pub event_id: EventId,
}

/// An admin's void of the rest of the commission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Void {
    pub reversal_id: ReversalId,
    /// What the void took.
    pub amount: Money,
    pub note: String,
    pub by: String,
    pub at: Timestamp,
}

/// One order's commission for its earner. Stored next to the ledger, versioned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commission {
    /// The earner.
    pub user_id: UserId,
    pub order_id: OrderId,
    pub buyer: UserId,
    /// `None` while only refunds of the order are known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earned: Option<Earned>,
    /// Refunds in the order they were recorded (before the reward: all; after: accepted).
    #[serde(default)]
    pub refunds: Vec<Refund>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voided: Option<Void>,
    /// The review of a commission earned on hold (`None` while it waits, or if never held);
    /// boxed: rare, and it keeps every commission small.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<Box<Review>>,
    /// Whether the stored statistics count this commission as available (else pending).
    #[serde(default)]
    pub matured: bool,
    /// 0 = not stored yet; every write increments it (optimistic concurrency).
    #[serde(default)]
    pub version: u64,
}

/// What a user sees of a commission at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommissionStatus {
    Pending,
    Available,
    PartiallyReversed,
    Reversed,
    /// Waiting for an admin's review (an abuse rule fired when it was earned).
    HeldForReview,
}

/// The result of a lifecycle step: write `after`, append `entries`, add `stats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub after: Commission,
    pub entries: Vec<LedgerEntry>,
    pub stats: StatsDelta,
}

/// Why a step changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// This reward / refund was applied before.
    Duplicate,
    /// The refund exceeds what is left of the order.
    OverRefund { left: Money },
    /// No reward for this order (admin void, maturation).
    NotEarned,
    /// Already voided, or nothing left to reverse.
    NothingLeft,
    /// Not due yet, or already matured (or held for review).
    NotDue,
    /// Not held for review (never was, or nothing is left of it).
    NotHeld,
    /// Reviewed before, with this decision.
    AlreadyReviewed { approved: bool },
    Overflow,
}

/// Who voids and why (admin `ReverseReward`).
#[derive(Debug, Clone)]
pub struct VoidRequest {
    pub reversal_id: ReversalId,
    pub note: String,
    pub by: String,
}

/// What a reversal entry says about its cause.
struct Why<'a> {
    id: ReversalId,
    cause: ReversalCause,
    note: &'a str,
    source: &'a str,
}

impl<'a> Why<'a> {
    fn refund(r: &'a Refund) -> Self {
        Why { id: ReversalId::from(&r.refund_id), cause: r.reason.into(), note: "", source: r.event_id.as_str() }
    }
}

impl Commission {
    pub fn new(user_id: UserId, order_id: OrderId, buyer: UserId) -> Self {
        Commission { user_id, order_id, buyer, earned: None, refunds: Vec::new(), voided: None, review: None, matured: false, version: 0 }
    }

    /// Earned on hold and not reviewed yet (whatever is left of it sits in `held`).
    pub fn is_held(&self) -> bool {
        self.earned.as_ref().is_some_and(|e| e.hold.is_some()) && self.review.is_none()
    }

    /// Waiting in the review queue: held with something left to decide on.
    pub fn awaits_review(&self) -> bool {
        self.is_held() && self.amount().is_positive()
    }

    /// Where the stored statistics hold this commission's amount.
    pub fn bucket(&self) -> Bucket {
        if self.is_held() {
            Bucket::Held
        } else if self.matured {
            Bucket::Available
        } else {
            Bucket::Pending
        }
    }

    /// Accepted refunds in order: cumulative totals never exceed the order amount.
    fn accepted(&self, order_amount: Money) -> impl Iterator<Item = &Refund> {
        let mut total = 0i64;
        self.refunds.iter().filter(move |r| match total.checked_add(r.amount.minor()) {
            Some(t) if t <= order_amount.minor() => {
                total = t;
                true
            }
            _ => false,
        })
    }

    /// The total of accepted refunds (all recorded ones while the order amount is unknown).
    pub fn refunded(&self) -> Money {
        let sum = |it: &mut dyn Iterator<Item = &Refund>| Money::from_minor(it.map(|r| r.amount.minor()).fold(0i64, i64::saturating_add));
        match &self.earned {
            Some(e) => sum(&mut self.accepted(e.order_amount)),
            None => sum(&mut self.refunds.iter()),
        }
    }

    /// What the commission is worth now: `floor((A − R) × bps / 10000)`, 0 once voided.
    pub fn amount(&self) -> Money {
        match &self.earned {
            Some(_) if self.voided.is_some() => Money::ZERO,
            Some(e) => net(e, self.refunded()).unwrap_or(Money::ZERO),
            None => Money::ZERO,
        }
    }

    /// Still to mature (for the pending index): earned, not yet matured and worth something.
    pub fn pending_until(&self) -> Option<Timestamp> {
        let e = self.earned.as_ref()?;
        (!self.matured && !self.is_held() && self.amount().is_positive()).then_some(e.matures_at)
    }

    pub fn status(&self, now: Timestamp) -> Option<CommissionStatus> {
        let e = self.earned.as_ref()?;
        let amount = self.amount();
        Some(if !amount.is_positive() && e.reward.is_positive() {
            CommissionStatus::Reversed
        } else if self.is_held() {
            CommissionStatus::HeldForReview
        } else if amount < e.reward {
            CommissionStatus::PartiallyReversed
        } else if !self.matured && now < e.matures_at {
            CommissionStatus::Pending
        } else {
            CommissionStatus::Available
        })
    }

    fn next(&self) -> Commission {
        let mut after = self.clone();
        after.version = self.version + 1;
        after
    }

    fn reversal(&self, why: Why<'_>, amount: i64, from: Bucket, at: Timestamp) -> LedgerEntry {
        LedgerEntry::Reversal {
            user_id: self.user_id.clone(),
            order_id: self.order_id.clone(),
            reversal_id: why.id,
            cause: why.cause,
            note: why.note.to_owned(),
            amount: Money::from_minor(amount),
            from,
            at,
            source: why.source.to_owned(),
        }
    }

    /// The reward arrives: credit it, net of the refunds recorded before (each still gets
    /// its own reversal entry, exactly as if it had arrived after the reward).
    pub fn earn(&self, earned: Earned, now: Timestamp) -> Result<Change, Refused> {
        if self.earned.is_some() {
            return Err(Refused::Duplicate);
        }
        let mut after = self.next();
        after.matured = earned.hold.is_none() && earned.matures_at <= now;
        let bucket = if earned.hold.is_some() { Bucket::Held } else { after.bucket() };
        let gross = earned.reward.minor();
        let mut entries = vec![LedgerEntry::Reward {
            user_id: self.user_id.clone(),
            referred_user: self.buyer.clone(),
            order_id: self.order_id.clone(),
            order_amount: earned.order_amount,
            currency: earned.currency.clone(),
            commission_bps: earned.commission_bps,
            reward: earned.reward,
            at: earned.earned_at,
            source_event_id: earned.source_event_id.clone(),
            matures_at: Some(earned.matures_at),
            level: (earned.level != 1).then_some(earned.level),
            terms: earned.terms.clone(),
        }];
        let mut previous = gross;
        let mut refunded = Money::ZERO;
        for r in self.accepted(earned.order_amount) {
            refunded = refunded.checked_add(r.amount).map_err(|_| Refused::Overflow)?;
            let current = net(&earned, refunded).ok_or(Refused::Overflow)?.minor();
            if previous > current {
                entries.push(self.reversal(Why::refund(r), previous - current, bucket, now));
            }
            previous = current;
        }
        let mut stats = StatsDelta { total_earned: gross, reversed_total: gross - previous, rewarded_orders: 1, ..StatsDelta::default() };
        stats.add_to(bucket, previous);
        let level = usize::from(earned.level.clamp(1, 3)) - 1;
        stats.earned_by_level[level] = gross;
        after.earned = Some(earned);
        Ok(Change { after, entries, stats })
    }

    /// A refund of the order: recorded once per refund id; once the reward is known it
    /// reverses the difference it makes (from pending or available).
    pub fn refund(&self, refund: Refund, now: Timestamp) -> Result<Change, Refused> {
        if self.refunds.iter().any(|r| r.refund_id == refund.refund_id) {
            return Err(Refused::Duplicate);
        }
        if !refund.amount.is_positive() {
            return Err(Refused::OverRefund { left: Money::ZERO });
        }
        let mut after = self.next();
        let Some(earned) = &self.earned else {
            after.refunds.push(refund);
            return Ok(Change { after, entries: Vec::new(), stats: StatsDelta::default() });
        };
        let left = earned.order_amount.checked_sub(self.refunded()).map_err(|_| Refused::Overflow)?;
        if refund.amount > left {
            return Err(Refused::OverRefund { left });
        }
        let before = self.amount().minor();
        after.refunds.push(refund.clone());
        let diff = before - after.amount().minor();
        let mut stats = StatsDelta { reversed_total: diff, ..StatsDelta::default() };
        stats.add_to(self.bucket(), -diff);
        let entries = if diff > 0 {
            vec![self.reversal(Why::refund(&refund), diff, self.bucket(), now)]
        } else {
            Vec::new()
        };
        Ok(Change { after, entries, stats })
    }

    /// An admin voids the rest (fraud, duplicate): the commission becomes 0.
    pub fn void(&self, request: VoidRequest, now: Timestamp) -> Result<Change, Refused> {
        if self.earned.is_none() {
            return Err(Refused::NotEarned);
        }
        let amount = self.amount().minor();
        if self.voided.is_some() || amount == 0 {
            return Err(Refused::NothingLeft);
        }
        let mut after = self.next();
        let why = Why { id: request.reversal_id.clone(), cause: ReversalCause::Admin, note: &request.note, source: &request.by };
        let entry = self.reversal(why, amount, self.bucket(), now);
        after.voided = Some(Void { reversal_id: request.reversal_id, amount: Money::from_minor(amount), note: request.note, by: request.by, at: now });
        let mut stats = StatsDelta { reversed_total: amount, ..StatsDelta::default() };
        stats.add_to(self.bucket(), -amount);
        Ok(Change { after, entries: vec![entry], stats })
    }

    /// An admin's decision on a held commission, made once: approve moves what is left to
    /// pending (or available, once its holding period is over); reject reverses it
    /// (cause `review_rejected`, from `held`).
    pub fn review(&self, review: Review, now: Timestamp) -> Result<Change, Refused> {
        if self.earned.is_none() {
            return Err(Refused::NotEarned);
        }
        if let Some(r) = &self.review {
            return Err(Refused::AlreadyReviewed { approved: r.approved });
        }
        if !self.awaits_review() {
            return Err(Refused::NotHeld);
        }
        let amount = self.amount().minor();
        let mut after = self.next();
        let mut entries = Vec::new();
        let mut stats = StatsDelta { held: -amount, ..StatsDelta::default() };
        if review.approved {
            after.review = Some(Box::new(review));
            after.matured = self.earned.as_ref().is_some_and(|e| e.matures_at <= now);
            stats.add_to(after.bucket(), amount);
        } else {
            if amount > 0 {
                let reversal_id = ReversalId::review(&self.user_id, &self.order_id);
                let why = Why { id: reversal_id.clone(), cause: ReversalCause::ReviewRejected, note: &review.note, source: &review.by };
                entries.push(self.reversal(why, amount, Bucket::Held, now));
                after.voided = Some(Void { reversal_id, amount: Money::from_minor(amount), note: review.note.clone(), by: review.by.clone(), at: now });
            }
            stats.reversed_total = amount;
            after.review = Some(Box::new(review));
        }
        Ok(Change { after, entries, stats })
    }

    /// The holding period is over: move what is left from pending to available.
    pub fn mature(&self, now: Timestamp) -> Result<Change, Refused> {
        let Some(e) = &self.earned else { return Err(Refused::NotEarned) };
        if self.matured || self.is_held() || now < e.matures_at {
            return Err(Refused::NotDue);
        }
        let mut after = self.next();
        after.matured = true;
        let amount = self.amount().minor();
        Ok(Change { after, entries: Vec::new(), stats: StatsDelta { pending: -amount, available: amount, ..StatsDelta::default() } })
    }
}

/// What a reward is worth after refunds R of its order of amount A, by the rule it was
/// earned under: a percentage `floor((A − R) × bps / 10000)`, a flat reward whole until
/// R = A; either at most what its cap allowed when earned; plus its sign-up bounty until
/// R = A. `None` on overflow (R ≤ A is kept by the callers).
fn net(e: &Earned, refunded: Money) -> Option<Money> {
    let rest = Money::from_minor(e.order_amount.checked_sub(refunded).ok()?.minor().max(0));
    let terms = e.terms.as_ref();
    let sale = match terms.and_then(|t| t.flat) {
        Some(flat) if rest.is_positive() => flat,
        Some(_) => Money::ZERO,
        None => commission(rest, e.commission_bps).ok()?,
    };
    let sale = match terms.and_then(|t| t.capped_at) {
        Some(cap) => sale.min(cap),
        None => sale,
    };
    match terms.and_then(|t| t.bounty) {
        Some(bounty) if rest.is_positive() => sale.checked_add(bounty).ok(),
        _ => Some(sale),
    }
}

#[cfg(test)]
mod tests;
