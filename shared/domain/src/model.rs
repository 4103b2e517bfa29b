//! Records the domain reads and writes. They derive serde so adapters can map them
//! (DynamoDB items via serde_dynamo, events as JSON) without hand-built attribute maps.

use serde::{Deserialize, Serialize};

use crate::code::InviteCode;
use crate::ids::{EventId, OrderId, UserId, WithdrawalId};
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
    #[serde(default)]
    pub total_earned: Money,
    #[serde(default)]
    pub available: Money,
    #[serde(default)]
    pub withdrawn_total: Money,
    /// Slots in use: codes not yet deactivated (an expired code holds its slot until the
    /// next creation releases it).
    #[serde(default)]
    pub active_codes: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
}

impl AffiliateStats {
    pub fn empty(user_id: UserId) -> Self {
        AffiliateStats {
            user_id,
            invited_count: 0,
            rewarded_orders: 0,
            total_earned: Money::ZERO,
            available: Money::ZERO,
            withdrawn_total: Money::ZERO,
            active_codes: 0,
            updated_at: None,
        }
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

/// An append-only money movement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LedgerEntry {
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
    },
    Withdrawal {
        user_id: UserId,
        withdrawal_id: WithdrawalId,
        amount: Money,
        currency: Currency,
        available_after: Money,
        at: Timestamp,
    },
}

impl LedgerEntry {
    pub fn user_id(&self) -> &UserId {
        match self {
            LedgerEntry::Reward { user_id, .. } | LedgerEntry::Withdrawal { user_id, .. } => user_id,
        }
    }
    pub fn at(&self) -> Timestamp {
        match self {
            LedgerEntry::Reward { at, .. } | LedgerEntry::Withdrawal { at, .. } => *at,
        }
    }
    /// Signed effect on `available`.
    pub fn available_delta(&self) -> i64 {
        match self {
            LedgerEntry::Reward { reward, .. } => reward.minor(),
            LedgerEntry::Withdrawal { amount, .. } => -amount.minor(),
        }
    }
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

impl From<&RewardEvent> for LedgerEntry {
    fn from(e: &RewardEvent) -> Self {
        LedgerEntry::Reward {
            user_id: e.inviter.clone(),
            referred_user: e.buyer.clone(),
            order_id: e.order_id.clone(),
            order_amount: e.order_amount,
            currency: e.currency.clone(),
            commission_bps: e.commission_bps,
            reward: e.reward,
            at: e.occurred_at,
            source_event_id: e.source_event_id.clone(),
        }
    }
}

/// Events the market publishes (exchange `market`), written to the outbox first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum OutboundEvent {
    /// Routing key `affiliate.withdrawn`: credit `amount` to the user's account balance,
    /// idempotently by `withdrawal_id`.
    #[serde(rename = "affiliate.withdrawn")]
    AffiliateWithdrawn {
        withdrawal_id: WithdrawalId,
        user_id: UserId,
        amount: Money,
        currency: Currency,
        occurred_at: Timestamp,
    },
}

impl OutboundEvent {
    pub fn routing_key(&self) -> &'static str {
        match self {
            OutboundEvent::AffiliateWithdrawn { .. } => "affiliate.withdrawn",
        }
    }
    /// Stable id of the event: the AMQP message id downstream deduplicates on.
    pub fn event_id(&self) -> &str {
        match self {
            OutboundEvent::AffiliateWithdrawn { withdrawal_id, .. } => withdrawal_id.as_str(),
        }
    }
}

impl From<&WithdrawalRecord> for OutboundEvent {
    fn from(w: &WithdrawalRecord) -> Self {
        OutboundEvent::AffiliateWithdrawn {
            withdrawal_id: w.withdrawal_id.clone(),
            user_id: w.user_id.clone(),
            amount: w.amount,
            currency: w.currency.clone(),
            occurred_at: w.at,
        }
    }
}
