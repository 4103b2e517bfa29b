//! The ledger's value types: append-only money movements and the words they use (where an
//! amount sits, why it was held or reversed). Below the lifecycle, which writes them.

use serde::{Deserialize, Serialize};

use crate::group::EarnedTerms;
use crate::ids::{AdjustmentId, EventId, OrderId, ReversalId, UserId, WithdrawalId};
use crate::money::{Bps, Currency, Money};
use crate::time::Timestamp;

/// A completed withdrawal: what a retry with the same idempotency key gets back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawalRecord {
    pub withdrawal_id: WithdrawalId,
    pub user_id: UserId,
    pub amount: Money,
    pub currency: Currency,
    /// `available` right after this withdrawal.
    pub available_after: Money,
    pub at: Timestamp,
}

/// Where a commission's amount sits in the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    Pending,
    Available,
    /// Held for an admin's review (an abuse rule fired): neither matures nor withdrawable.
    Held,
}

/// Why a reward is held for review instead of pending/available.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldReason {
    /// The inviter gained more than `review_referrals_per_hour` referrals in the UTC hour
    /// the buyer registered in (flagged on the buyer at registration).
    ReferralVelocity,
    /// The order was paid within `review_min_seconds` of the buyer's registration.
    FastFirstOrder,
}

impl HoldReason {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldReason::ReferralVelocity => "referral_velocity",
            HoldReason::FastFirstOrder => "fast_first_order",
        }
    }
}

/// Why a commission was reduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReversalCause {
    Refund,
    Chargeback,
    /// An admin's `ReverseReward` (fraud, duplicate, ...: the note says).
    Admin,
    /// An admin rejected a reward held for review (`ReviewReward`).
    ReviewRejected,
}

impl ReversalCause {
    pub fn as_str(self) -> &'static str {
        match self {
            ReversalCause::Refund => "refund",
            ReversalCause::Chargeback => "chargeback",
            ReversalCause::Admin => "admin",
            ReversalCause::ReviewRejected => "review_rejected",
        }
    }
}

/// An append-only money movement. Entries are never updated or deleted; a change to a
/// reward is a new entry linked to it by order id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LedgerEntry {
    /// A reward as earned (before any refund).
    Reward {
        user_id: UserId,
        referred_user: UserId,
        order_id: OrderId,
        order_amount: Money,
        currency: Currency,
        commission_bps: Bps,
        reward: Money,
        at: Timestamp,
        source_event_id: EventId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        matures_at: Option<Timestamp>,
        /// 1 = as the buyer's inviter; 2, 3 = as an ancestor (absent before levels: 1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        level: Option<u8>,
        /// The rule that paid it (absent before reward groups: a percentage); boxed, so
        /// that every entry stays small.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        terms: Option<Box<EarnedTerms>>,
    },
    Withdrawal {
        user_id: UserId,
        withdrawal_id: WithdrawalId,
        amount: Money,
        currency: Currency,
        available_after: Money,
        at: Timestamp,
    },
    /// Part or all of a reward taken back (refund, chargeback, admin void).
    Reversal {
        user_id: UserId,
        order_id: OrderId,
        reversal_id: ReversalId,
        cause: ReversalCause,
        /// The admin's reason (empty for refunds).
        #[serde(default)]
        note: String,
        amount: Money,
        /// Taken from pending (void) or available (clawback; may make it negative).
        from: Bucket,
        at: Timestamp,
        /// The refund event's id, or `admin:<id>`.
        source: String,
    },
    /// An admin's credit (positive) or debit (negative) of `available`.
    Adjustment {
        user_id: UserId,
        adjustment_id: AdjustmentId,
        amount: Money,
        reason: String,
        admin: UserId,
        available_after: Money,
        at: Timestamp,
    },
}

impl LedgerEntry {
    pub fn user_id(&self) -> &UserId {
        match self {
            LedgerEntry::Reward { user_id, .. }
            | LedgerEntry::Withdrawal { user_id, .. }
            | LedgerEntry::Reversal { user_id, .. }
            | LedgerEntry::Adjustment { user_id, .. } => user_id,
        }
    }
    pub fn at(&self) -> Timestamp {
        match self {
            LedgerEntry::Reward { at, .. }
            | LedgerEntry::Withdrawal { at, .. }
            | LedgerEntry::Reversal { at, .. }
            | LedgerEntry::Adjustment { at, .. } => *at,
        }
    }
}
