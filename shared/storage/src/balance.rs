//! The balance: stats reads (with the policy, one `BatchGetItem`) and the debits/credits of
//! `available` (withdrawals, admin adjustments). One transaction each: the stats item (`ADD` to `available`, conditional on
//! it staying ≥ 0 and on the user's `balance_changes` count as read — rewards never touch
//! that count and their `ADD`s commute with the debit, so a stream of rewards to a popular
//! affiliate cannot starve the affiliate's withdrawal), the ledger entry (its key derived from
//! the idempotency key: a retry finds it and replays), the outbox record for a withdrawal,
//! the matured commissions the change spends (each conditional on its version) and the
//! audit records.

use market_domain::ids::{AdjustmentId, UserId, WithdrawalId};
use market_domain::model::{AffiliateStats, LedgerEntry, WithdrawalRecord};
use market_domain::policy::AffiliatePolicy;
use market_domain::ports::{BalanceChange, BalanceOutcome, BalanceStore, Result};
use market_domain::MarketError;

use crate::audit::audit_puts;
use crate::error::mapping_error;
use crate::expr::{key, key2, n, s};
use crate::ledger::{commission_put, entry_key, entry_put};
use crate::sequence::{Patience, Sequencing, Step};
use crate::tables::{adjustment_entry_key, attr, stats_ids, withdrawal_entry_key, STATS_SHARDS};
use crate::DynamoStore;

impl DynamoStore {
    async fn ledger_entry(&self, user: &UserId, entry_key: &str) -> Result<Option<LedgerEntry>> {
        let k = key2((attr::USER_ID, user.as_str()), (attr::ENTRY_KEY, entry_key));
        self.get_item(&self.tables().ledger, k).await?.map(|i| serde_dynamo::from_item(i).map_err(mapping_error)).transpose()
    }
}

/// A stats item as read; zero statistics for a user who has none yet.
fn stats_of(user: &UserId, item: Option<crate::expr::Item>) -> Result<AffiliateStats> {
    match item {
        Some(mut item) => {
            // A shard's key is not the user id: the figures are the user's.
            item.insert(attr::USER_ID.to_owned(), s(user.as_str()));
            serde_dynamo::from_item(item).map_err(mapping_error)
        }
        None => Ok(AffiliateStats::empty(user.clone())),
    }
}

impl DynamoStore {
    /// The user's statistics, the main item and every shard summed, with the user's policy
    /// when asked: one `BatchGetItem`.
    async fn stats_with(&self, user: &UserId, policy: bool) -> Result<(AffiliateStats, Option<AffiliatePolicy>)> {
        let t = self.tables();
        let mut keys: Vec<_> = stats_ids(user.as_str()).map(|k| (t.stats.as_str(), key(attr::USER_ID, k))).collect();
        if policy {
            keys.push((t.policy.as_str(), key(attr::USER_ID, user.as_str())));
        }
        let mut items = self.get_items(keys).await?.into_iter();
        let main = items.next().flatten();
        let shards: Vec<_> = items.by_ref().take(STATS_SHARDS as usize).collect();
        let stats = stats_from(user, main, shards)?;
        let policy = items.next().flatten().map(|i| serde_dynamo::from_item(i).map_err(mapping_error)).transpose()?;
        Ok((stats, policy))
    }
}

/// A user's statistics from their main item and its shards as read ([`stats_ids`]' order).
pub(crate) fn stats_from(user: &UserId, main: Option<crate::expr::Item>, shards: impl IntoIterator<Item = Option<crate::expr::Item>>) -> Result<AffiliateStats> {
    let mut stats = stats_of(user, main)?;
    for shard in shards.into_iter().flatten() {
        stats.absorb(&stats_of(user, Some(shard))?)?;
    }
    Ok(stats)
}

impl BalanceStore for DynamoStore {
    async fn get_stats(&self, user: &UserId) -> Result<AffiliateStats> {
        Ok(self.stats_with(user, false).await?.0)
    }

    async fn get_stats_and_policy(&self, user: &UserId) -> Result<(AffiliateStats, Option<AffiliatePolicy>)> {
        self.stats_with(user, true).await
    }

    async fn get_withdrawal(&self, user: &UserId, id: &WithdrawalId) -> Result<Option<WithdrawalRecord>> {
        match self.ledger_entry(user, &withdrawal_entry_key(id.as_str())).await? {
            None => Ok(None),
            Some(LedgerEntry::Withdrawal { user_id, withdrawal_id, amount, currency, available_after, at }) => {
                Ok(Some(WithdrawalRecord { withdrawal_id, user_id, amount, currency, available_after, at }))
            }
            Some(_) => Err(MarketError::internal("ledger entry is not a withdrawal")),
        }
    }

    async fn get_adjustment(&self, user: &UserId, id: &AdjustmentId) -> Result<Option<LedgerEntry>> {
        self.ledger_entry(user, &adjustment_entry_key(id.as_str())).await
    }

    async fn change_balance(&self, c: &BalanceChange) -> Result<BalanceOutcome> {
        let as_read = Some((&c.user, c.sequence_as_read));
        self.sequenced_from(&c.publish, Patience::Interactive, as_read, |seq| self.try_change_balance(c, seq)).await
    }
}

impl DynamoStore {
    /// One attempt on the sequences read; `Again`: another transition of the affiliate came
    /// first (rebuild).
    async fn try_change_balance(&self, c: &BalanceChange, seq: Sequencing) -> Result<Step<BalanceOutcome>> {
        let t = self.tables();
        // `available` + the change stays ≥ 0 (a user without statistics has 0: the attribute
        // is absent). A credit, or an allowed negative debit, has no condition. The main
        // item's part must cover what the shards' part (as read; it only grows) does not.
        let floor = c.stats.available.checked_neg().and_then(|f| f.checked_sub(c.credited_apart.minor())).ok_or(MarketError::Overflow)?;
        let expected = i64::try_from(c.expected_changes).map_err(|_| MarketError::Overflow)?;
        let next = expected.checked_add(1).ok_or(MarketError::Overflow)?;
        let mut values = Vec::new();
        // No other withdrawal or adjustment applied since the read (rewards do not count).
        let mut conditions = vec![if c.expected_changes == 0 {
            "attribute_not_exists(#balance_changes)"
        } else {
            values.push((":changes", n(expected)));
            "#balance_changes = :changes"
        }];
        if !c.allow_negative {
            values.push((":floor", n(floor)));
            conditions.push(if floor > 0 { "#available >= :floor" } else { "(attribute_not_exists(#available) OR #available >= :floor)" });
        }
        let mut set = vec![(attr::BALANCE_CHANGES, ":next_changes", next)];
        let guard = seq.guard(&c.user);
        if let Some(g) = &guard {
            set.extend(g.set);
            conditions.push(g.condition);
            values.extend(g.values.iter().cloned());
        }
        let condition = conditions.join(" AND ");
        let mut items = vec![
            // 0: the stats: `available` changed by `ADD`, the count of balance changes (and
            // the event sequence) moved on.
            crate::ledger::stats_update(&t.stats, c.user.as_str(), &c.stats, c.at, &set, Some(condition.as_str()), values)?,
            // 1: the entry; its key is derived from the idempotency key.
            entry_put(&t.ledger, &c.entry)?,
        ];
        // 2..: its events (a withdrawal's: what the balance owner will receive).
        let first_event = items.len();
        items.extend(seq.outbox_items(&t.outbox, &c.publish, c.at)?);
        let events = first_event..items.len();
        // The matured commissions this change spends.
        for m in &c.matured {
            items.push(commission_put(&t.ledger, &m.after)?);
        }
        items.extend(audit_puts(t, &c.audit)?);
        Ok(Step::Done(match self.transact(items).await? {
            Ok(()) => BalanceOutcome::Done,
            Err(cancelled) if cancelled.failed(1) => match cancelled.old_item(1) {
                Some(old) => BalanceOutcome::Replayed(serde_dynamo::from_item(old.clone()).map_err(mapping_error)?),
                None => return Err(MarketError::internal(format!("replay of {} without its entry", entry_key(&c.entry)))),
            },
            Err(cancelled) if cancelled.any_failed(events.clone()) => {
                return Err(MarketError::internal("outbox record exists without its ledger entry"))
            }
            // Another transition of the affiliate moved the sequence: its conditions may
            // still hold on the number it left.
            Err(cancelled) if guard.is_some() && cancelled.failed(0) && seq.moved(&c.user, cancelled.old_item(0)) => {
                return Ok(Step::Again(seq.rebuilt([(&c.user, cancelled.old_item(0))])))
            }
            Err(_) => BalanceOutcome::Changed,
        }))
    }
}
