//! Commissions: an order's reward for its earner through its lifecycle (earned, refunded,
//! voided, matured). Each step is one transaction: the commission item (conditional on the
//! version it was computed from), the step's ledger entries (must not exist: a redelivery
//! fails here), the earner's stats, the audit records, and for a reward the buyer's trigger
//! count. Maturity reads the `pending-by-maturity` LSI (strongly consistent, per user) and,
//! for the scheduled catch-up, the `due-by-day` GSI (keys only, by day). The review queue is
//! the sparse `held-for-review` GSI: a held commission carries its keys until reviewed.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use market_domain::ids::{OrderId, UserId};
use market_domain::lifecycle::Commission;
use market_domain::policy::TriggerLimit;
use market_domain::ports::{CommissionOutcome, CommissionStore, CommissionWrite, Maturation, Page, PendingCommissions, Result};
use market_domain::MarketError;
use market_domain::time::Timestamp;

use crate::audit::{audit_put, audit_puts};
use crate::error::sdk_error;
use crate::expr::{key, key2, n, s, update, Item};
use crate::ledger::{commission_from, commission_put, entry_put, stats_update};
use crate::paging::Listing;
use crate::tables::{attr, commission_key, stats_shard_key, stats_shard_of, DUE_BY_DAY_INDEX, HELD_FOR_REVIEW_INDEX, PENDING_BY_MATURITY_INDEX, REVIEW_QUEUE_PARTITION};
use crate::DynamoStore;

impl DynamoStore {
    /// When the user's next pending commission matures (after `now`).
    async fn next_release(&self, user: &UserId, now: Timestamp) -> Result<Option<Timestamp>> {
        let out = self
            .client()
            .query()
            .table_name(&self.tables().ledger)
            .index_name(PENDING_BY_MATURITY_INDEX)
            .key_condition_expression("#u = :u AND #p > :now")
            .expression_attribute_names("#u", attr::USER_ID)
            .expression_attribute_names("#p", attr::PENDING_UNTIL)
            .expression_attribute_values(":u", s(user.as_str()))
            .expression_attribute_values(":now", n(now.millis()))
            .projection_expression("#p")
            .consistent_read(true)
            .limit(1)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(sdk_error)?;
        self.usage().record(out.consumed_capacity());
        Ok(out.items().first().and_then(pending_until))
    }
}

/// How many pending commissions an overview reads in its one request: the due ones between
/// two daily catch-ups fit, and the item after them says when the next one matures.
const PENDING_FIRST_PAGE: usize = 25;

/// The maturity index's sort key of an item.
fn pending_until(item: &Item) -> Option<Timestamp> {
    item.get(attr::PENDING_UNTIL).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).map(Timestamp::from_millis)
}

impl CommissionStore for DynamoStore {
    async fn get_commission(&self, earner: &UserId, order: &OrderId) -> Result<Option<Commission>> {
        let k = key2((attr::USER_ID, earner.as_str()), (attr::ENTRY_KEY, &commission_key(order.as_str())));
        self.get_item(&self.tables().ledger, k).await?.map(commission_from).transpose()
    }

    async fn write_commission(&self, w: &CommissionWrite) -> Result<CommissionOutcome> {
        let t = self.tables();
        // 0..k: each commission is still as the step read it.
        let mut items = Vec::new();
        for change in &w.changes {
            items.push(commission_put(&t.ledger, &change.after)?);
        }
        let commissions = 0..items.len();
        for change in w.changes.iter().filter(|c| !c.stats.is_zero()) {
            // The earner's statistics (untouched by a refund recorded before its reward): a
            // reward as earned on the shard of its order, any other step on the main item.
            let user = change.after.user_id.as_str();
            let item = if w.trigger.is_some() && change.stats.is_credit_only() {
                stats_shard_key(user, stats_shard_of(change.after.order_id.as_str()))
            } else {
                user.to_owned()
            };
            items.push(stats_update(&t.stats, &item, &change.stats, w.at, &[], None, vec![])?);
        }
        let trigger_at = w.trigger.as_ref().map(|_| items.len());
        if let Some(tc) = &w.trigger {
            // The buyer is this earner's referral and still under the trigger limit.
            let (cond, mut values) = match tc.limit {
                TriggerLimit::Limited(limit) => (
                    "#inviter = :inviter AND (attribute_not_exists(#rewards_triggered) OR #rewards_triggered < :limit)",
                    vec![(":limit", n(i64::from(limit.get())))],
                ),
                TriggerLimit::Unlimited => ("#inviter = :inviter", vec![]),
            };
            values.extend([(":one", n(1)), (":inviter", s(tc.inviter.as_str()))]);
            items.push(update(&t.policy, key(attr::USER_ID, tc.buyer.as_str()), "ADD #rewards_triggered :one", Some(cond), values)?);
        }
        // The step's ledger entries: each exactly once.
        let first_entry = items.len();
        for entry in w.changes.iter().flat_map(|c| &c.entries) {
            items.push(entry_put(&t.ledger, entry)?);
        }
        let entries = first_entry..items.len();
        items.extend(audit_puts(&t.audit, &w.audit)?);
        Ok(match self.transact(items).await? {
            Ok(()) => CommissionOutcome::Written,
            Err(c) if c.any_failed(entries) => CommissionOutcome::Duplicate,
            Err(c) if c.any_failed(commissions) => CommissionOutcome::Conflict,
            Err(_) if trigger_at.is_some() => CommissionOutcome::LimitReached,
            Err(_) => CommissionOutcome::Conflict,
        })
    }

    async fn due_commissions(&self, user: &UserId, now: Timestamp, limit: usize) -> Result<Vec<Commission>> {
        let items = self
            .query(
                &self.tables().ledger,
                Some(PENDING_BY_MATURITY_INDEX),
                "#user_id = :u AND #pending_until <= :now",
                vec![(":u", s(user.as_str())), (":now", n(now.millis()))],
                true,
                limit,
            )
            .await?;
        items.into_iter().map(commission_from).collect()
    }

    async fn pending_commissions(&self, user: &UserId, now: Timestamp, limit: usize) -> Result<PendingCommissions> {
        // The user's pending commissions, oldest first: the due ones, then the first not yet
        // due, in one small page. Bounded, so that an affiliate with many commissions in
        // their holding period does not make every overview read them all.
        let page = PENDING_FIRST_PAGE.min(limit.saturating_add(1));
        let items = self.query(&self.tables().ledger, Some(PENDING_BY_MATURITY_INDEX), "#user_id = :u", vec![(":u", s(user.as_str()))], true, page).await?;
        let full = items.len() >= page;
        let mut due = Vec::new();
        for item in items {
            let until = pending_until(&item).ok_or_else(|| MarketError::internal("pending commission without pending_until"))?;
            if until > now {
                return Ok(PendingCommissions { due, next_release: Some(until) });
            }
            due.push(commission_from(item)?);
        }
        if !full {
            // Every pending commission is due.
            return Ok(PendingCommissions { due, next_release: None });
        }
        // More are due than the page holds (a backlog since the last catch-up): the due ones
        // up to the limit and the next maturity, as two queries.
        let (due, next_release) = tokio::try_join!(self.due_commissions(user, now, limit), self.next_release(user, now))?;
        Ok(PendingCommissions { due, next_release })
    }

    async fn mature(&self, m: &Maturation) -> Result<bool> {
        let t = self.tables();
        let total = m.changes.iter().try_fold(market_domain::lifecycle::StatsDelta::default(), |acc, c| acc.plus(c.stats));
        let total = total.ok_or(market_domain::MarketError::Overflow)?;
        let mut items = vec![stats_update(&t.stats, m.user.as_str(), &total, m.at, &[], None, vec![])?];
        for change in &m.changes {
            items.push(commission_put(&t.ledger, &change.after)?);
        }
        items.push(audit_put(&t.audit, &m.audit)?);
        Ok(self.transact(items).await?.is_ok())
    }

    async fn due_earners(&self, day: &str, now: Timestamp) -> Result<Vec<UserId>> {
        // Bounded per run: what is left is picked up by the next one.
        const MAX_PER_DAY: usize = 10_000;
        let items = self
            .query(
                &self.tables().ledger,
                Some(DUE_BY_DAY_INDEX),
                "#due_day = :d AND #pending_until <= :now",
                vec![(":d", s(day)), (":now", n(now.millis()))],
                false,
                MAX_PER_DAY,
            )
            .await?;
        let users: BTreeSet<String> =
            items.iter().filter_map(|i| i.get(attr::USER_ID).and_then(|v| v.as_s().ok()).cloned()).collect();
        users.into_iter().map(UserId::parse).collect()
    }

    async fn held_commissions(&self, page_token: Option<&str>, limit: u32) -> Result<Page<Commission>> {
        let index = (Some(HELD_FOR_REVIEW_INDEX), Listing::GsiOldestFirst);
        let (items, next) =
            self.query_page(&self.tables().ledger, index, (attr::REVIEW_QUEUE, REVIEW_QUEUE_PARTITION), page_token, limit).await?;
        Ok(Page { items: items.into_iter().map(commission_from).collect::<Result<_>>()?, next })
    }
}
