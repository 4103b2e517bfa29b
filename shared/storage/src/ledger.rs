//! How ledger-table items look: immutable entries (keyed by what makes them unique) and
//! commission items (an order's lifecycle state, versioned), plus the stats update that
//! accompanies every change. Shared by the commission, balance and history adapters.

use aws_sdk_dynamodb::types::TransactWriteItem;
use market_domain::lifecycle::{Commission, StatsDelta};
use market_domain::model::{HistoryItem, LedgerEntry};
use market_domain::ports::Result;
use market_domain::time::Timestamp;
use market_domain::MarketError;

use crate::error::mapping_error;
use crate::expr::{key, n, put, s, update, Item, Values};
use crate::tables::{held_key, NOT_ERASING, REVIEW_QUEUE_PARTITION, adjustment_entry_key, at_key, attr, commission_key, reversal_entry_key, reward_entry_key, withdrawal_entry_key};

const COMMISSION_KIND: &str = "commission";

/// The sort key an entry is stored under: unique per reward, refund, withdrawal, adjustment.
pub(crate) fn entry_key(entry: &LedgerEntry) -> String {
    match entry {
        LedgerEntry::Reward { order_id, .. } => reward_entry_key(order_id.as_str()),
        LedgerEntry::Withdrawal { withdrawal_id, .. } => withdrawal_entry_key(withdrawal_id.as_str()),
        LedgerEntry::Reversal { order_id, reversal_id, .. } => reversal_entry_key(order_id.as_str(), reversal_id.as_str()),
        LedgerEntry::Adjustment { adjustment_id, .. } => adjustment_entry_key(adjustment_id.as_str()),
    }
}

/// An entry as an item. Reward entries stay out of the history index (`at_key`): the
/// history shows each reward as its commission, with its current status.
pub(crate) fn entry_item(entry: &LedgerEntry) -> Result<Item> {
    let k = entry_key(entry);
    let mut item: Item = serde_dynamo::to_item(entry).map_err(mapping_error)?;
    if !matches!(entry, LedgerEntry::Reward { .. }) {
        item.insert(attr::AT_KEY.into(), s(at_key(entry.at().millis(), &k)));
    }
    item.insert(attr::ENTRY_KEY.into(), s(k));
    Ok(item)
}

/// An append: the entry must not exist yet.
pub(crate) fn entry_put(table: &str, entry: &LedgerEntry) -> Result<TransactWriteItem> {
    put(table, entry_item(entry)?, "attribute_not_exists(#entry_key)", vec![])
}

/// A commission as an item, with its index attributes: `at_key` once earned (history, at
/// the reward's time), `pending_until` + `due_day` while pending (maturity indexes).
pub(crate) fn commission_item(c: &Commission) -> Result<Item> {
    let mut item: Item = serde_dynamo::to_item(c).map_err(mapping_error)?;
    item.insert(attr::KIND.into(), s(COMMISSION_KIND));
    item.insert(attr::ENTRY_KEY.into(), s(commission_key(c.order_id.as_str())));
    if let Some(e) = &c.earned {
        item.insert(attr::AT_KEY.into(), s(at_key(e.earned_at.millis(), &reward_entry_key(c.order_id.as_str()))));
    }
    if let Some(until) = c.pending_until() {
        item.insert(attr::PENDING_UNTIL.into(), n(until.millis()));
        item.insert(attr::DUE_DAY.into(), s(until.utc_day()));
    }
    if let (true, Some(e)) = (c.awaits_review(), &c.earned) {
        item.insert(attr::REVIEW_QUEUE.into(), s(REVIEW_QUEUE_PARTITION));
        item.insert(attr::HELD_KEY.into(), s(held_key(e.earned_at.millis(), c.user_id.as_str(), c.order_id.as_str())));
    }
    Ok(item)
}

/// Writes the commission as after a step, conditional on the version the step was
/// computed from (new: must not exist).
pub(crate) fn commission_put(table: &str, after: &Commission) -> Result<TransactWriteItem> {
    let before = after.version.checked_sub(1).ok_or_else(|| MarketError::internal("commission step without a version"))?;
    if before == 0 {
        put(table, commission_item(after)?, "attribute_not_exists(#entry_key)", vec![])
    } else {
        let before = i64::try_from(before).map_err(|_| MarketError::Overflow)?;
        put(table, commission_item(after)?, "#version = :v", vec![(":v", n(before))])
    }
}

pub(crate) fn commission_from(item: Item) -> Result<Commission> {
    serde_dynamo::from_item(item).map_err(mapping_error)
}

/// A history row: a commission, or an entry (by its `kind`).
pub(crate) fn history_item(item: Item) -> Result<HistoryItem> {
    let is_commission = item.get(attr::KIND).and_then(|k| k.as_s().ok()).is_some_and(|k| k == COMMISSION_KIND);
    Ok(if is_commission {
        HistoryItem::Commission(commission_from(item)?)
    } else {
        HistoryItem::Entry(serde_dynamo::from_item(item).map_err(mapping_error)?)
    })
}

/// The stats update of a change: `ADD` each non-zero figure (absent = 0), `SET` what
/// `set` names (e.g. the exact `available` after a debit), always `updated_at`.
pub(crate) fn stats_update(
    table: &str,
    user: &str,
    d: &StatsDelta,
    at: Timestamp,
    set: &[(&'static str, &'static str, i64)],
    condition: Option<&str>,
    mut values: Values,
) -> Result<TransactWriteItem> {
    let figures: [(&str, &'static str, i64); 11] = [
        (attr::PENDING, ":d_pending", d.pending),
        (attr::AVAILABLE, ":d_available", d.available),
        (attr::TOTAL_EARNED, ":d_total_earned", d.total_earned),
        (attr::REVERSED_TOTAL, ":d_reversed_total", d.reversed_total),
        (attr::WITHDRAWN_TOTAL, ":d_withdrawn_total", d.withdrawn_total),
        (attr::HELD, ":d_held", d.held),
        (attr::REWARDED_ORDERS, ":d_rewarded_orders", d.rewarded_orders),
        (attr::PAYING_REFERRALS, ":d_paying_referrals", d.paying_referrals),
        (attr::EARNED_L1, ":d_earned_l1", d.earned_by_level[0]),
        (attr::EARNED_L2, ":d_earned_l2", d.earned_by_level[1]),
        (attr::EARNED_L3, ":d_earned_l3", d.earned_by_level[2]),
    ];
    let mut adds = Vec::new();
    for (name, placeholder, v) in figures {
        if v != 0 && !set.iter().any(|(n, _, _)| *n == name) {
            adds.push(format!("#{name} {placeholder}"));
            values.push((placeholder, n(v)));
        }
    }
    let mut sets = vec![format!("#{} = :updated_at", attr::UPDATED_AT)];
    values.push((":updated_at", n(at.millis())));
    for (name, placeholder, v) in set {
        sets.push(format!("#{name} = {placeholder}"));
        values.push((placeholder, n(*v)));
    }
    let mut expr = format!("SET {}", sets.join(", "));
    if !adds.is_empty() {
        expr.push_str(&format!(" ADD {}", adds.join(", ")));
    }
    let condition = match condition {
        Some(c) => format!("({c}) AND {NOT_ERASING}"),
        None => NOT_ERASING.to_owned(),
    };
    update(table, key(attr::USER_ID, user), &expr, Some(&condition), values)
}
