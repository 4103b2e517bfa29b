//! Records the domain reads and writes. They derive serde so adapters can map them
//! (DynamoDB items via serde_dynamo, events as JSON) without hand-built attribute maps.

use serde::{Deserialize, Serialize};

use crate::code::InviteCode;
use crate::ids::{EventId, OrderId, UserId};
use crate::error::MarketError;
use crate::lifecycle::{Commission, Earned, StatsDelta};
use crate::rules::{self, SaleReward};
use crate::limits::TriggerLimit;
use crate::money::{Bps, Currency, Money};

pub use crate::ledger::{Bucket, HoldReason, LedgerEntry, ReversalCause, WithdrawalRecord};
use crate::time::Timestamp;

/// Real-time statistics of one user; always written in the transaction of the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AffiliateStats {
    pub user_id: UserId,
    #[serde(default)]
    pub invited_count: u64,
    #[serde(default)]
    pub rewarded_orders: u64,
    /// Referred users who brought at least one reward (a group's tiers count them).
    #[serde(default)]
    pub paying_referrals: u64,
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
        self.paying_referrals = self.paying_referrals.checked_add(part.paying_referrals).ok_or_else(over)?;
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
            paying_referrals: 0,
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
        self.paying_referrals = self.paying_referrals.saturating_add_signed(d.paying_referrals);
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
    /// The rule that decided it, with the cap and bounty the reward's write settles
    /// (absent in events decided before reward groups: a percentage, uncapped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<Box<SaleReward>>,
}

/// What the reward's write settled of its rule: the cap's allowance for the sale part, and
/// the bounty of a referred user's first rewarded order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settlement {
    pub capped_at: Option<Money>,
    pub bounty: Option<Money>,
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
    /// Its reward is `net(A, 0)` under the terms it records.
    pub fn earned(&self, settled: &Settlement) -> Result<Earned, MarketError> {
        let mut earned = Earned {
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
            terms: self.rule.as_ref().map(|r| Box::new(rules::earned_terms(r, settled.capped_at, settled.bounty))),
        };
        earned.reward = earned.gross().ok_or(MarketError::Overflow)?;
        Ok(earned)
    }

    /// An ancestor's share as the lifecycle records it (same order, time and maturity; the
    /// level's rate of the same group and version).
    pub fn earned_at_level(&self, l: &LevelReward) -> Result<Earned, MarketError> {
        let first = self.earned(&Settlement::default())?;
        let terms = self.rule.as_deref().map(|r| Box::new(rules::level_terms(r)));
        Ok(Earned { commission_bps: l.commission_bps, reward: l.reward, level: l.level, level_earners: Vec::new(), terms, ..first })
    }
}
