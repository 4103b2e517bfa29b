//! Commissions: an order's reward for its earner through its lifecycle (earned, refunded,
//! voided, matured). Each step is one transaction: the commission item (conditional on the
//! version it was computed from), the step's ledger entries (must not exist: a redelivery
//! fails here), the earner's stats, the audit records, and for a reward the buyer's trigger
//! count. Maturity reads the `pending-by-maturity` LSI (strongly consistent, per user) and,
//! for the scheduled catch-up, the `due-by-day` GSI (keys only, by day). The review queue is
//! the sparse `held-for-review` GSI: a held commission carries its keys until reviewed.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use market_domain::ids::{OrderId, UserId};
use market_domain::lifecycle::{Commission, StatsDelta};
use market_domain::model::LedgerEntry;
use market_domain::money::Money;
use market_domain::policy::TriggerLimit;
use market_domain::ports::{CommissionOutcome, CommissionStore, CommissionWrite, Maturation, Page, PendingCommissions, ReferralCheck, Result, SequenceAsRead};
use market_domain::MarketError;
use market_domain::time::Timestamp;

use crate::audit::{audit_put, audit_puts};
use crate::error::sdk_error;
use crate::expr::{check, key, key2, n, s, update, Item};
use crate::ledger::{commission_from, commission_put, entry_put, stats_update};
use crate::paging::Listing;
use crate::sequence::{sequence_as_read, Patience, Sequencing, Step};
use crate::tables::{attr, commission_key, earned_day_key, stats_ids, stats_shard_key, stats_shard_of, DUE_BY_DAY_INDEX, HELD_FOR_REVIEW_INDEX, PENDING_BY_MATURITY_INDEX, REVIEW_QUEUE_PARTITION};
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

impl DynamoStore {
    /// One attempt of a maturation on the sequences read (`Again`: rebuild).
    async fn try_mature(&self, m: &Maturation, total: StatsDelta, seq: Sequencing) -> Result<Step<bool>> {
        let t = self.tables();
        let guard = seq.guard(&m.user);
        let item = match &guard {
            Some(g) => stats_update(&t.stats, m.user.as_str(), &total, m.at, &g.set, Some(g.condition), g.values.clone())?,
            None => stats_update(&t.stats, m.user.as_str(), &total, m.at, &[], None, vec![])?,
        };
        let mut items = vec![item];
        for change in &m.changes {
            items.push(commission_put(&t.ledger, &change.after)?);
        }
        items.extend(seq.outbox_items(&t.outbox, &m.publish, m.at)?);
        items.push(audit_put(t, &m.audit)?);
        Ok(match self.transact(items).await? {
            Ok(()) => Step::Done(true),
            Err(c) if guard.is_some() && c.failed(0) && seq.moved(&m.user, c.old_item(0)) => Step::Again(seq.rebuilt([(&m.user, c.old_item(0))])),
            // A commission changed since it was read.
            Err(_) => Step::Done(false),
        })
    }

    /// One attempt of a commission step's transaction on the sequences read; `Again`: another
    /// transition of one of its affiliates came first (rebuild).
    async fn try_write_commission(&self, w: &CommissionWrite, seq: Sequencing) -> Result<Step<CommissionOutcome>> {
        let t = self.tables();
        // 0..k: each commission is still as the step read it.
        let mut items = Vec::new();
        for change in &w.changes {
            items.push(commission_put(&t.ledger, &change.after)?);
        }
        let commissions = 0..items.len();
        // The earners' statistics: (index, earner) of each guarded by its sequence.
        let mut guarded: Vec<(usize, &UserId)> = Vec::new();
        let reward = matches!(w.referral, ReferralCheck::Counted(_));
        for change in w.changes.iter().filter(|c| !c.stats.is_zero()) {
            // Untouched by a refund recorded before its reward. A reward as earned goes on
            // the shard of its order, unless the earner's sequence is moved with it (then on
            // the main item, which the sequence serializes anyway); any other step on the
            // main item.
            let user = &change.after.user_id;
            if let Some(g) = seq.guard(user) {
                guarded.push((items.len(), user));
                items.push(stats_update(&t.stats, user.as_str(), &change.stats, w.at, &g.set, Some(g.condition), g.values)?);
            } else if reward && change.stats.is_credit_only() {
                let shard = stats_shard_key(user.as_str(), stats_shard_of(change.after.order_id.as_str()));
                items.push(stats_update(&t.stats, &shard, &change.stats, w.at, &[], None, vec![])?);
            } else {
                items.push(stats_update(&t.stats, user.as_str(), &change.stats, w.at, &[], None, vec![])?);
            }
        }
        // An affiliate with events and no figure changed still moves its sequence.
        for user in seq.affiliates() {
            if !guarded.iter().any(|(_, u)| *u == user) {
                if let Some(g) = seq.guard(user) {
                    guarded.push((items.len(), user));
                    items.push(stats_update(&t.stats, user.as_str(), &StatsDelta::default(), w.at, &g.set, Some(g.condition), g.values)?);
                }
            }
        }
        // The buyer's referral as the step read it (a reward: counted, under the limit).
        let referral_at = items.len();
        match &w.referral {
            ReferralCheck::None => {}
            ReferralCheck::Named { buyer, inviter } => {
                let cond = "#inviter = :inviter AND attribute_not_exists(#erasing)";
                items.push(check(&t.policy, key(attr::USER_ID, buyer.as_str()), cond, vec![(":inviter", s(inviter.as_str()))])?);
            }
            ReferralCheck::Counted(tc) => {
                // Where the step depends on it, the count exactly as read (its first reward
                // known, a cap's usage exact); always under the limit.
                let mut cond = String::from("#inviter = :inviter AND attribute_not_exists(#erasing)");
                let mut values = vec![(":one", n(1)), (":inviter", s(tc.inviter.as_str()))];
                if let Some(read) = tc.as_read {
                    cond.push_str(match read {
                        0 => " AND (attribute_not_exists(#rewards_triggered) OR #rewards_triggered = :as_read)",
                        _ => " AND #rewards_triggered = :as_read",
                    });
                    values.push((":as_read", n(i64::from(read))));
                }
                if let TriggerLimit::Limited(limit) = tc.limit {
                    cond.push_str(" AND (attribute_not_exists(#rewards_triggered) OR #rewards_triggered < :limit)");
                    values.push((":limit", n(i64::from(limit.get()))));
                }
                let mut expr = String::from("ADD #rewards_triggered :one");
                if let Some(used) = &tc.cap_used {
                    expr.push_str(" SET #cap_used = :cap_used");
                    values.push((":cap_used", AttributeValue::M(used.iter().map(|(k, v)| (k.clone(), n(*v))).collect())));
                }
                items.push(update(&t.policy, key(attr::USER_ID, tc.buyer.as_str()), &expr, Some(&cond), values)?);
            }
        }
        let expected_inviter = match &w.referral {
            ReferralCheck::None => None,
            ReferralCheck::Named { inviter, .. } => Some(inviter),
            ReferralCheck::Counted(tc) => Some(&tc.inviter),
        };
        // A reward's levels: each earner still the inviter of the user below them, as decided
        // (an erasure of either re-points or moves that policy).
        let first_link = items.len();
        if let ReferralCheck::Counted(tc) = &w.referral {
            for (below, earner) in &tc.chain {
                let cond = "#inviter = :inviter AND attribute_not_exists(#erasing)";
                items.push(check(&t.policy, key(attr::USER_ID, below.as_str()), cond, vec![(":inviter", s(earner.as_str()))])?);
            }
        }
        let links = first_link..items.len();
        // The step's ledger entries: each exactly once.
        let first_entry = items.len();
        for entry in w.changes.iter().flat_map(|c| &c.entries) {
            items.push(entry_put(&t.ledger, entry)?);
        }
        let entries = first_entry..items.len();
        // Its events, exactly when it commits.
        let first_event = items.len();
        items.extend(seq.outbox_items(&t.outbox, &w.publish, w.at)?);
        let events = first_event..items.len();
        // Each earner's earnings of the reward's day (a tier on recent earnings sums them):
        // unconditional, so never the cancellation's reason.
        for entry in w.changes.iter().flat_map(|c| &c.entries) {
            if let LedgerEntry::Reward { user_id, reward, at, .. } = entry {
                if reward.is_positive() {
                    let k = key2((attr::USER_ID, user_id.as_str()), (attr::ENTRY_KEY, &earned_day_key(&at.utc_day())));
                    items.push(update(&t.ledger, k, "ADD #earned :earned", None, vec![(":earned", n(reward.minor()))])?);
                }
            }
        }
        items.extend(audit_puts(t, &w.audit)?);
        Ok(Step::Done(match self.transact(items).await? {
            Ok(()) => CommissionOutcome::Written,
            Err(c) if c.any_failed(entries) || c.any_failed(events) => CommissionOutcome::Duplicate,
            Err(c) if c.any_failed(commissions) => CommissionOutcome::Conflict,
            // A user it names was erased meanwhile: a link of the levels' chain moved (here),
            // the buyer's policy is gone or names the inviter's pseudonym (below).
            Err(c) if c.any_failed(links) => CommissionOutcome::Moved,
            Err(c) if guarded.iter().any(|(i, u)| c.failed(*i) && seq.moved(u, c.old_item(*i))) => {
                let failed = guarded.iter().filter(|(i, _)| c.failed(*i)).map(|(i, u)| (*u, c.old_item(*i)));
                return Ok(Step::Again(seq.rebuilt(failed)));
            }
            Err(c) if expected_inviter.is_some() && c.failed(referral_at) => match c.old_item(referral_at) {
                Some(old) if old.get(attr::INVITER).and_then(|v| v.as_s().ok()).map(String::as_str) == expected_inviter.map(|i| i.as_str()) => {
                    // Still the inviter's referral: over the limit, or another reward of the
                    // buyer counted since the read (read again).
                    let count = old.get(attr::REWARDS_TRIGGERED).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
                    match &w.referral {
                        ReferralCheck::Counted(tc) if tc.as_read.is_some() && tc.limit.allows_another(count) => CommissionOutcome::Conflict,
                        _ => CommissionOutcome::LimitReached,
                    }
                }
                _ => CommissionOutcome::Moved,
            },
            Err(_) => CommissionOutcome::Conflict,
        }))
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
    async fn earned_between(&self, earner: &UserId, first: &str, last: &str) -> Result<Money> {
        let items = self
            .query(
                &self.tables().ledger,
                None,
                "#user_id = :u AND #entry_key BETWEEN :first AND :last",
                vec![(":u", s(earner.as_str())), (":first", s(earned_day_key(first))), (":last", s(earned_day_key(last)))],
                true,
                // One item a day: the window's 30 at most.
                64,
            )
            .await?;
        let sum = items
            .iter()
            .filter_map(|i| i.get(attr::EARNED).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<i64>().ok()))
            .try_fold(0i64, i64::checked_add)
            .ok_or(MarketError::Overflow)?;
        Ok(Money::from_minor(sum))
    }

    async fn get_commission(&self, earner: &UserId, order: &OrderId) -> Result<Option<Commission>> {
        let k = key2((attr::USER_ID, earner.as_str()), (attr::ENTRY_KEY, &commission_key(order.as_str())));
        self.get_item(&self.tables().ledger, k).await?.map(commission_from).transpose()
    }

    async fn get_commission_sequenced(&self, earner: &UserId, order: &OrderId) -> Result<(Option<Commission>, SequenceAsRead)> {
        let t = self.tables();
        let mut keys = vec![(t.ledger.as_str(), key2((attr::USER_ID, earner.as_str()), (attr::ENTRY_KEY, &commission_key(order.as_str()))))];
        keys.extend(stats_ids(earner.as_str()).map(|k| (t.stats.as_str(), key(attr::USER_ID, k))));
        let mut items = self.get_items(keys).await?.into_iter();
        let commission = items.next().flatten().map(commission_from).transpose()?;
        let main = items.next().flatten();
        Ok((commission, sequence_as_read(main.as_ref(), items)?))
    }

    async fn write_commission(&self, w: &CommissionWrite) -> Result<CommissionOutcome> {
        let as_read = w.sequence_as_read.as_ref().map(|(user, read)| (user, *read));
        self.sequenced_from(&w.publish, Patience::Background, as_read, |seq| self.try_write_commission(w, seq)).await
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
        let total = m.changes.iter().try_fold(StatsDelta::default(), |acc, c| acc.plus(c.stats));
        let total = total.ok_or(MarketError::Overflow)?;
        self.sequenced(&m.publish, Patience::Background, |seq| self.try_mature(m, total, seq)).await
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
