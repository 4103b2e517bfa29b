//! Records the domain reads and writes. They derive serde so adapters can map them
//! (DynamoDB items via serde_dynamo, events as JSON) without hand-built attribute maps.

use serde::{Deserialize, Serialize};

use crate::code::InviteCode;
use crate::ids::{AdjustmentId, EventId, OrderId, ReversalId, UserId, WithdrawalId};
use crate::lifecycle::{Commission, StatsDelta};
use crate::money::{Bps, Currency, Money};
use crate::policy::TriggerLimit;
use crate::time::Timestamp;

/// Real-time statistics of one user; always written in the transaction of the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AffiliateStats {
    pub user_id: UserId,
    #[serde(default)]
    pub invited_count: u64,
    #[serde(default)]
    pub rewarded_orders: u64,
    /// Everything ever credited: rewards as earned (before refunds) and credit adjustments.
    #[serde(default)]
    pub total_earned: Money,
    /// Rewards still in their holding period (as stored: see [`AffiliateStats::live`]).
    #[serde(default)]
    pub pending: Money,
    /// Withdrawable; negative while a clawback of withdrawn rewards is unpaid.
    #[serde(default)]
    pub available: Money,
    #[serde(default)]
    pub withdrawn_total: Money,
    /// Withdrawals and adjustments applied so far: each is conditional on the count it read
    /// (so they apply one after another, each entry's `available_after` exact among them),
    /// while rewards never touch it (so they never cancel a withdrawal).
    #[serde(default)]
    pub balance_changes: u64,
    /// Rewards held for an admin's review (not withdrawable, not maturing).
    #[serde(default)]
    pub held: Money,
    /// Refunded, charged back or voided commissions, and debit adjustments.
    #[serde(default)]
    pub reversed_total: Money,
    /// Slots in use: codes not yet deactivated (an expired code holds its slot until the
    /// next creation releases it).
    #[serde(default)]
    pub active_codes: u32,
    /// Rewards earned (before refunds) as the buyer's inviter (level 1), as their inviter's
    /// inviter (2) and one further up (3); `total_earned` also counts credit adjustments.
    #[serde(default)]
    pub earned_l1: Money,
    #[serde(default)]
    pub earned_l2: Money,
    #[serde(default)]
    pub earned_l3: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
    /// The number of the affiliate's last lifecycle event (on the main statistics: the
    /// store's sequence, moved on by every money transition while events are on).
    #[serde(default)]
    pub event_seq: u64,
    /// Of `available`: what rewards credited apart from the user's main statistics (a
    /// store may spread a popular affiliate's rewards over several items). Those parts only
    /// grow, so a debit can count on what was read of them (see
    /// [`crate::ports::BalanceChange::credited_apart`]). Filled by the store, never stored.
    #[serde(skip)]
    pub credited_apart: Money,
}

impl AffiliateStats {
    /// Adds a part of the statistics kept apart (its figures, and its `available` as
    /// credited apart).
    pub fn absorb(&mut self, part: &AffiliateStats) -> Result<(), crate::MarketError> {
        let over = || crate::MarketError::Overflow;
        self.invited_count = self.invited_count.checked_add(part.invited_count).ok_or_else(over)?;
        self.rewarded_orders = self.rewarded_orders.checked_add(part.rewarded_orders).ok_or_else(over)?;
        self.balance_changes = self.balance_changes.checked_add(part.balance_changes).ok_or_else(over)?;
        self.active_codes = self.active_codes.checked_add(part.active_codes).ok_or_else(over)?;
        for (mine, theirs) in [
            (&mut self.total_earned, part.total_earned),
            (&mut self.pending, part.pending),
            (&mut self.available, part.available),
            (&mut self.withdrawn_total, part.withdrawn_total),
            (&mut self.held, part.held),
            (&mut self.reversed_total, part.reversed_total),
            (&mut self.earned_l1, part.earned_l1),
            (&mut self.earned_l2, part.earned_l2),
            (&mut self.earned_l3, part.earned_l3),
            (&mut self.credited_apart, part.available),
        ] {
            *mine = mine.checked_add(theirs)?;
        }
        self.updated_at = self.updated_at.max(part.updated_at);
        // A part has no sequence of its own (it is the main item's).
        self.event_seq = self.event_seq.max(part.event_seq);
        Ok(())
    }

    pub fn empty(user_id: UserId) -> Self {
        AffiliateStats {
            user_id,
            invited_count: 0,
            rewarded_orders: 0,
            total_earned: Money::ZERO,
            pending: Money::ZERO,
            available: Money::ZERO,
            withdrawn_total: Money::ZERO,
            balance_changes: 0,
            held: Money::ZERO,
            reversed_total: Money::ZERO,
            active_codes: 0,
            earned_l1: Money::ZERO,
            earned_l2: Money::ZERO,
            earned_l3: Money::ZERO,
            updated_at: None,
            event_seq: 0,
            credited_apart: Money::ZERO,
        }
    }

    /// Rewards earned per level, level 1 first.
    pub fn earned_by_level(&self) -> [Money; 3] {
        [self.earned_l1, self.earned_l2, self.earned_l3]
    }

    /// The figures exact at `now`: commissions whose holding period is over but which the
    /// stored figures still count as pending (`matured` = those, as read) are available.
    pub fn live(mut self, matured: &[Commission]) -> Self {
        let sum: i64 = matured.iter().map(|c| c.amount().minor()).fold(0, i64::saturating_add);
        self.pending = Money::from_minor(self.pending.minor().saturating_sub(sum));
        self.available = Money::from_minor(self.available.minor().saturating_add(sum));
        self
    }

    /// Applies a delta in memory (the store applies the same with `ADD`).
    pub fn apply(&mut self, d: &StatsDelta) {
        let add = |m: &mut Money, v: i64| *m = Money::from_minor(m.minor().saturating_add(v));
        add(&mut self.pending, d.pending);
        add(&mut self.available, d.available);
        add(&mut self.total_earned, d.total_earned);
        add(&mut self.reversed_total, d.reversed_total);
        add(&mut self.withdrawn_total, d.withdrawn_total);
        add(&mut self.held, d.held);
        add(&mut self.earned_l1, d.earned_by_level[0]);
        add(&mut self.earned_l2, d.earned_by_level[1]);
        add(&mut self.earned_l3, d.earned_by_level[2]);
        self.rewarded_orders = self.rewarded_orders.saturating_add_signed(d.rewarded_orders);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteCodeRecord {
    pub code: InviteCode,
    pub owner_id: UserId,
    pub active: bool,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    #[serde(default)]
    pub registrations: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deactivated_at: Option<Timestamp>,
}

impl InviteCodeRecord {
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }
    /// Active and unexpired: the only state in which a code refers anyone.
    pub fn is_usable(&self, now: Timestamp) -> bool {
        self.active && !self.is_expired(now)
    }
}

/// A reward decided by `order.paid`, applied by the reward processor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardEvent {
    pub order_id: OrderId,
    pub buyer: UserId,
    pub inviter: UserId,
    pub order_amount: Money,
    pub currency: Currency,
    pub commission_bps: Bps,
    pub reward: Money,
    pub trigger_limit: TriggerLimit,
    pub occurred_at: Timestamp,
    pub source_event_id: EventId,
    /// The holding period in force when the order was decided (absent in events written
    /// before holding periods existed: 0).
    #[serde(default)]
    pub holding_period_days: u32,
    /// The rewards of the inviter's ancestors (levels 2 and 3), applied with the inviter's
    /// in one transaction; empty = single level (and in events written before levels).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub levels: Vec<LevelReward>,
    /// Set when an abuse rule fired: every level's reward of this order is held for review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<HoldReason>,
}

/// A share of the order for an ancestor of the inviter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelReward {
    /// 2 = the inviter's inviter, 3 = theirs.
    pub level: u8,
    pub earner: UserId,
    pub commission_bps: Bps,
    /// `floor(order_amount × commission_bps / 10000)`.
    pub reward: Money,
    /// The user the earner invited, one level below (the inviter, or a level's earner, or a
    /// skipped one): the link the reward checks when written. Absent in rewards decided
    /// before it was recorded (then unchecked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invited: Option<UserId>,
}

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

/// One row of a user's history (`ListRewardHistory`, admin `ListLedger`), newest first: a
/// reward appears as its commission (with its current status), every other movement as
/// its ledger entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryItem {
    Commission(Commission),
    Entry(LedgerEntry),
}

impl From<&WithdrawalRecord> for LedgerEntry {
    fn from(w: &WithdrawalRecord) -> Self {
        LedgerEntry::Withdrawal {
            user_id: w.user_id.clone(),
            withdrawal_id: w.withdrawal_id.clone(),
            amount: w.amount,
            currency: w.currency.clone(),
            available_after: w.available_after,
            at: w.at,
        }
    }
}

impl RewardEvent {
    /// The reward as the lifecycle records it: earned at the order's time, maturing after
    /// the holding period decided with it.
    pub fn earned(&self) -> crate::lifecycle::Earned {
        crate::lifecycle::Earned {
            order_amount: self.order_amount,
            currency: self.currency.clone(),
            commission_bps: self.commission_bps,
            reward: self.reward,
            earned_at: self.occurred_at,
            matures_at: self.occurred_at.plus_days(self.holding_period_days),
            source_event_id: self.source_event_id.clone(),
            level: 1,
            level_earners: self.levels.iter().map(|l| l.earner.clone()).collect(),
            hold: self.hold,
        }
    }

    /// An ancestor's share as the lifecycle records it (same order, time and maturity).
    pub fn earned_at_level(&self, l: &LevelReward) -> crate::lifecycle::Earned {
        crate::lifecycle::Earned { commission_bps: l.commission_bps, reward: l.reward, level: l.level, level_earners: Vec::new(), ..self.earned() }
    }
}
