//! History rows -> proto: a commission with its status at the moment of the call, and the
//! other ledger entries. The user's view carries nothing about the buyer; the admin's adds
//! the referred user.

use market_domain::lifecycle::{Commission, CommissionStatus};
use market_domain::model::{HistoryItem, LedgerEntry};
use market_domain::time::Timestamp;

use crate::timestamp;
use crate::v1;

pub fn status(s: Option<CommissionStatus>) -> v1::RewardStatus {
    match s {
        Some(CommissionStatus::Pending) => v1::RewardStatus::Pending,
        Some(CommissionStatus::Available) => v1::RewardStatus::Available,
        Some(CommissionStatus::PartiallyReversed) => v1::RewardStatus::PartiallyReversed,
        Some(CommissionStatus::Reversed) => v1::RewardStatus::Reversed,
        Some(CommissionStatus::HeldForReview) => v1::RewardStatus::HeldForReview,
        None => v1::RewardStatus::Unspecified,
    }
}

/// The reward as the user sees it now (`None` for a commission not earned yet).
pub fn reward(c: &Commission, now: Timestamp) -> Option<v1::RewardHistoryEntry> {
    let e = c.earned.as_ref()?;
    let pending_until = c.pending_until().filter(|t| *t > now);
    Some(v1::RewardHistoryEntry {
        order_id: c.order_id.to_string(),
        order_amount: e.order_amount.minor(),
        commission_bps: e.commission_bps.into(),
        reward: e.reward.minor(),
        amount: c.amount().minor(),
        status: status(c.status(now)).into(),
        earned_at: Some(timestamp(e.earned_at)),
        pending_until: pending_until.map(timestamp),
        refunded_amount: c.refunded().minor(),
        currency: e.currency.to_string(),
        level: u32::from(e.level),
        rule: e.terms.as_ref().map(|t| t.describe()).unwrap_or_default(),
        bounty: e.terms.as_ref().and_then(|t| t.bounty).map_or(0, |b| b.minor()),
    })
}

pub fn reversal(e: &LedgerEntry) -> Option<v1::ReversalHistoryEntry> {
    match e {
        LedgerEntry::Reversal { order_id, reversal_id, cause, note, amount, from, at, .. } => Some(v1::ReversalHistoryEntry {
            order_id: order_id.to_string(),
            reversal_id: reversal_id.to_string(),
            cause: cause.as_str().to_owned(),
            amount: amount.minor(),
            taken_from: match from {
                market_domain::model::Bucket::Pending => "pending",
                market_domain::model::Bucket::Available => "available",
                market_domain::model::Bucket::Held => "held",
            }
            .to_owned(),
            at: Some(timestamp(*at)),
            note: note.clone(),
        }),
        _ => None,
    }
}

pub fn adjustment(e: &LedgerEntry) -> Option<v1::AdjustmentHistoryEntry> {
    match e {
        LedgerEntry::Adjustment { adjustment_id, amount, reason, available_after, at, .. } => Some(v1::AdjustmentHistoryEntry {
            adjustment_id: adjustment_id.to_string(),
            amount: amount.minor(),
            reason: reason.clone(),
            available_after: available_after.minor(),
            at: Some(timestamp(*at)),
        }),
        _ => None,
    }
}

pub fn withdrawal(e: &LedgerEntry) -> Option<v1::WithdrawalHistoryEntry> {
    match e {
        LedgerEntry::Withdrawal { withdrawal_id, amount, currency, available_after, at, .. } => Some(v1::WithdrawalHistoryEntry {
            withdrawal_id: withdrawal_id.to_string(),
            amount: amount.minor(),
            currency: currency.to_string(),
            available_after: available_after.minor(),
            at: Some(timestamp(*at)),
        }),
        _ => None,
    }
}

/// One row of `ListRewardHistory` (`None`: not shown, e.g. a refund-only commission).
pub fn history_entry(item: &HistoryItem, now: Timestamp) -> Option<v1::HistoryEntry> {
    use v1::history_entry::Entry;
    let entry = match item {
        HistoryItem::Commission(c) => Entry::Reward(reward(c, now)?),
        HistoryItem::Entry(e @ LedgerEntry::Withdrawal { .. }) => Entry::Withdrawal(withdrawal(e)?),
        HistoryItem::Entry(e @ LedgerEntry::Reversal { .. }) => Entry::Reversal(reversal(e)?),
        HistoryItem::Entry(e @ LedgerEntry::Adjustment { .. }) => Entry::Adjustment(adjustment(e)?),
        HistoryItem::Entry(LedgerEntry::Reward { .. }) => return None,
    };
    Some(v1::HistoryEntry { entry: Some(entry) })
}
