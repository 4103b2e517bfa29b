//! Erasure (GDPR art. 17), the store's part: a user's id replaced by their pseudonym in every
//! item that names it, so that every sum over the items stays what it was. In order:
//! 1. the fence: the user's policy and statistics, and the pseudonym's statistics keys, carry
//!    `erasing`; every write of them is conditional on its absence (a write that meets it is
//!    `Contention`, retried later), so nothing moves under the erasure's feet and nothing is
//!    credited to the pseudonym before the user's figures are there;
//! 2. the indexes that find others' items naming the user are waited for until they hold what
//!    the fenced counts say they must (GSIs are eventually consistent);
//! 3. those items are rewritten (referred users' inviter, commissions' buyer, level-1
//!    commissions' level earners, audit records about the user, codes deactivated);
//! 4. the user's own items move (put under the pseudonym, delete): ledger, trail,
//!    statistics, and last the policy, marked `erased_at` — the mark every event processor
//!    takes as "the pseudonym is settled".
//!
//! A repeat changes nothing (the user's items are gone; the mark stays).

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use market_domain::ports::{BalanceStore, Erased, Erasure, ErasureStore, Result};
use market_domain::time::Timestamp;
use market_domain::MarketError;

use crate::audit::audit_put;
use crate::balance::stats_from;
use crate::expr::{check, delete, key, key2, n, put, s, update, Item, Values};
use crate::replacement::{string, Replacement};
use crate::tables::{attr, reward_entry_key, stats_ids, velocity_key, ACTIVE_BY_OWNER_INDEX, BY_ABOUT_INDEX, BY_BUYER_INDEX, BY_INVITER_INDEX, BY_OWNER_INDEX};
use crate::DynamoStore;

/// How long after its fence an erasure reads what it has no count to wait for (records that
/// name the user, codes no longer active): longer than a global index lags in practice (AWS:
/// typically well under a second).
const SETTLE: Duration = Duration::from_secs(1);

/// The level earners a level-1 commission item names (`earned.level_earners`).
fn level_earners(commission: &Item) -> Vec<String> {
    let earned = commission.get("earned").and_then(|e| e.as_m().ok());
    let list = earned.and_then(|e| e.get("level_earners")).and_then(|l| l.as_l().ok());
    list.into_iter().flatten().filter_map(|v| v.as_s().ok().cloned()).collect()
}

/// An index to query: (table, index, its partition key attribute).
type Index<'a> = (&'a str, &'a str, &'a str);

/// How long an erasure waits for an index to show what the fenced counts say it holds.
const INDEX_PATIENCE: Duration = Duration::from_secs(10);
/// Moves (a put and a delete each) per transaction: 100 items.
const MOVES_PER_TRANSACTION: usize = 50;
/// Hours of referral-velocity counters (TTL two days on) and days of code-churn counters.
const COUNTER_HOURS: i64 = 48;

fn key_of(item: &Item, names: &[&str]) -> Item {
    names.iter().filter_map(|n| item.get(*n).map(|v| ((*n).to_owned(), v.clone()))).collect()
}

/// The condition that an item is still as an erasure read it, as far as another erasure
/// could have changed it since: it exists, its version (a commission), and each attribute
/// that names another user (`buyer`, `referred_user`, `about`, `inviter`). Two erasures of
/// related users (an inviter and their buyer) run at once: a move or rewrite over a stale
/// read would bring back an id the other one had just replaced, so it fails instead
/// (`Contention`: the erasure is asked again and reads afresh).
fn unchanged(item: &Item, hash: &str) -> (String, Values) {
    const NAMED: [(&str, &str); 4] = [("buyer", ":c_buyer"), ("referred_user", ":c_referred"), (attr::ABOUT, ":c_about"), (attr::INVITER, ":c_inviter")];
    let mut conds = vec![format!("attribute_exists(#{hash})")];
    let mut values: Values = Vec::new();
    if let Some(v) = item.get(attr::VERSION) {
        conds.push("#version = :c_version".to_owned());
        values.push((":c_version", v.clone()));
    }
    for (name, placeholder) in NAMED {
        if let Some(v) = item.get(name) {
            conds.push(format!("#{name} = {placeholder}"));
            values.push((placeholder, v.clone()));
        }
    }
    (conds.join(" AND "), values)
}

impl DynamoStore {
    /// Every item of a partition, strongly consistent.
    async fn partition(&self, table: &str, hash: &str, value: &str) -> Result<Vec<Item>> {
        self.query(table, None, &format!("#{hash} = :v"), vec![(":v", s(value))], true, usize::MAX).await
    }

    /// Every key an index holds for `value`.
    async fn index_keys(&self, table: &str, index: &str, hash: &str, value: &str) -> Result<Vec<Item>> {
        self.query(table, Some(index), &format!("#{hash} = :v"), vec![(":v", s(value))], false, usize::MAX).await
    }

    /// Puts each item as `r` rewrites it (under its new key) and deletes the old one, still
    /// as read.
    async fn move_items(&self, table: &str, keys: &[&str], items: &[Item], r: Replacement<'_>) -> Result<usize> {
        for chunk in items.chunks(MOVES_PER_TRANSACTION) {
            let mut writes = Vec::with_capacity(chunk.len() * 2);
            for item in chunk {
                writes.push(put(table, r.item(item), "", vec![])?);
                let (cond, values) = unchanged(item, keys[0]);
                writes.push(delete(table, key_of(item, keys), &cond, values)?);
            }
            if self.transact(writes).await?.is_err() {
                return Err(MarketError::Contention);
            }
        }
        Ok(items.len())
    }

    /// One conditional update; `false` when its condition failed (done before, or gone).
    async fn update_if(&self, table: &str, k: Item, expr: &str, cond: &str, values: Values) -> Result<bool> {
        match self.transact(vec![update(table, k, expr, Some(cond), values)?]).await? {
            Ok(()) => Ok(true),
            Err(_) => Ok(false),
        }
    }

    /// One conditional delete; `false` when its condition failed (gone, or not as required).
    async fn delete_if(&self, table: &str, k: Item, cond: &str) -> Result<bool> {
        Ok(self.transact(vec![delete(table, k, cond, vec![])?]).await?.is_ok())
    }

    /// Puts items rewritten in place (same key), each conditional on the item as read (it
    /// still exists, same version, same names of others); `false` for an item that changed
    /// or went meanwhile.
    async fn rewrite_in_place(&self, table: &str, hash: &str, item: &Item, r: Replacement<'_>) -> Result<bool> {
        let mut after = r.item(item);
        if let Some(v) = item.get(attr::VERSION).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<i64>().ok()) {
            after.insert(attr::VERSION.to_owned(), n(v + 1));
        }
        let (cond, values) = unchanged(item, hash);
        Ok(self.transact(vec![put(table, after, &cond, values)?]).await?.is_ok())
    }
}

impl DynamoStore {
    /// Waits until an index holds at least `expected` keys (`counted` ones) for the user, with
    /// those `done` holds for the pseudonym (an earlier attempt of this erasure rewrote them;
    /// it got here only once the index had settled), then answers both (what an interrupted
    /// attempt left half done is finished; each rewrite is conditional, so a done one is a
    /// no-op): `Contention` if it does not within [`INDEX_PATIENCE`]. Indexes lag their tables.
    async fn settled_index_keys(&self, index: Index<'_>, done: Index<'_>, r: Replacement<'_>, expected: usize, counted: impl Fn(&Item) -> bool) -> Result<Vec<Item>> {
        let deadline = tokio::time::Instant::now() + INDEX_PATIENCE;
        loop {
            let (user, done) = tokio::try_join!(self.index_keys(index.0, index.1, index.2, r.user), self.index_keys(done.0, done.1, done.2, r.pseudonym))?;
            if user.iter().chain(&done).filter(|k| counted(k)).count() >= expected {
                return Ok(user.into_iter().chain(done).collect());
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(index = index.1, expected, pseudonym = r.pseudonym, "an index lags an erasure's fence: try again");
                return Err(MarketError::Contention);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The user's items the fence covers: (table, key) of their policy and statistics.
    fn fenced_items<'a>(&'a self, u: &'a str) -> impl Iterator<Item = (&'a str, String)> + 'a {
        let t = self.tables();
        std::iter::once((t.policy.as_str(), u.to_owned())).chain(stats_ids(u).map(|k| (t.stats.as_str(), k)))
    }

    /// Step 1, the fence: the user's items that exist, and the pseudonym's statistics keys
    /// (created as fences where absent: a credit under the pseudonym waits until the user's
    /// figures are there).
    async fn fence(&self, u: &str, p: &str) -> Result<()> {
        let t = self.tables();
        let set = "SET #erasing = :p";
        let own = self.fenced_items(u).map(|(table, k)| self.update_if(table, key(attr::USER_ID, k), set, "attribute_exists(#user_id)", vec![(":p", s(p))]));
        let pseudonym = stats_ids(p).map(|k| self.update_if(&t.stats, key(attr::USER_ID, k), set, "attribute_not_exists(#user_id) OR attribute_exists(#erasing)", vec![(":p", s(p))]));
        // Independent items: at once.
        futures::future::try_join_all(own.chain(pseudonym)).await?;
        Ok(())
    }
}

impl DynamoStore {
    /// Undoes [`DynamoStore::fence`] (an erasure refused): the user's items writable again,
    /// the pseudonym's fence-only items gone.
    async fn unfence(&self, u: &str, p: &str) -> Result<()> {
        let own = self.fenced_items(u).map(|(table, k)| self.update_if(table, key(attr::USER_ID, k), "REMOVE #erasing", "#erasing = :p", vec![(":p", s(p))]));
        futures::future::try_join_all(own).await?;
        self.drop_pseudonym_fences(p).await
    }

    /// Deletes the pseudonym's fence-only statistics items (those the user had none for).
    async fn drop_pseudonym_fences(&self, p: &str) -> Result<()> {
        let t = self.tables();
        let fences = stats_ids(p).map(|k| self.delete_if(&t.stats, key(attr::USER_ID, k), "attribute_exists(#erasing)"));
        futures::future::try_join_all(fences).await?;
        Ok(())
    }
}

impl ErasureStore for DynamoStore {
    async fn erase(&self, e: &Erasure) -> Result<Erased> {
        let t = self.tables();
        let (u, p) = (e.user.as_str(), e.pseudonym.as_str());
        let r = Replacement { user: u, pseudonym: p };
        let mut done = Erased::default();
        // What changed, by kind (the log says it).
        let mut tally: std::collections::BTreeMap<&'static str, usize> = std::collections::BTreeMap::new();
        self.fence(u, p).await?;
        let fenced_at = tokio::time::Instant::now();
        // The user's statistics, read once: nothing writes them now (the fence), so the move
        // below takes them as read. The balance as it stays; an earlier attempt may have
        // moved it to the pseudonym already (nothing credits that before the end).
        let keys = stats_ids(u).map(|k| (t.stats.as_str(), key(attr::USER_ID, k))).collect();
        let stats_items = self.get_items(keys).await?;
        let main = stats_items.first().cloned().flatten();
        let own = stats_from(&e.user, main.clone(), stats_items.iter().skip(1).cloned())?;
        if e.refuse_positive_balance && own.available.is_positive() {
            self.unfence(u, p).await?;
            return Err(MarketError::BalanceNotSettled);
        }
        let available = match own.updated_at {
            Some(_) => own.available,
            None => self.get_stats(&e.pseudonym).await?.available,
        };

        // Step 2: what others hold about the user, found through indexes once they hold what
        // the fenced figures count (nothing adds to those now): every referral
        // (`invited_count`), every active code (`active_codes`), every level-1 commission
        // on the user's orders (their policy's `rewards_triggered`).
        let policy = self.get_item(&t.policy, key(attr::USER_ID, u)).await?;
        let count = |item: &Option<Item>, name: &str| item.as_ref().and_then(|i| i.get(name)).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
        let inviter = policy.as_ref().and_then(|i| string(i, attr::INVITER)).map(str::to_owned);
        let referred = (t.policy.as_str(), BY_INVITER_INDEX, attr::INVITER);
        let referred = self.settled_index_keys(referred, referred, r, count(&main, attr::INVITED_COUNT), |_| true).await?;
        // Active codes: still active (the user's), or deactivated onto the pseudonym before.
        let (active, owned) = ((t.codes.as_str(), ACTIVE_BY_OWNER_INDEX, attr::ACTIVE_OWNER), (t.codes.as_str(), BY_OWNER_INDEX, attr::OWNER_ID));
        let is_code = |k: &Item| string(k, attr::CODE).is_some_and(|c| !c.contains('#'));
        let active = self.settled_index_keys(active, owned, r, count(&main, attr::ACTIVE_CODES), is_code).await?;
        let level_one = |k: &Item| inviter.is_some() && string(k, attr::USER_ID) == inviter.as_deref();
        let purchases = (t.ledger.as_str(), BY_BUYER_INDEX, attr::BUYER);
        let mut purchases = self.settled_index_keys(purchases, purchases, r, count(&policy, attr::REWARDS_TRIGGERED), level_one).await?;
        // The levels' commissions of those orders: by key, from each level-1 commission's
        // `level_earners` (exact, where the index could still lag).
        let first: Vec<_> = purchases.iter().filter(|k| level_one(k)).map(|k| (t.ledger.as_str(), key_of(k, &[attr::USER_ID, attr::ENTRY_KEY]))).collect();
        let first = if first.is_empty() { Vec::new() } else { self.get_items(first).await? };
        for c in first.into_iter().flatten() {
            let Some(entry) = string(&c, attr::ENTRY_KEY).map(str::to_owned) else { continue };
            for earner in level_earners(&c) {
                let k = key2((attr::USER_ID, &earner), (attr::ENTRY_KEY, &entry));
                if !purchases.iter().any(|p| key_of(p, &[attr::USER_ID, attr::ENTRY_KEY]) == k) {
                    purchases.push(k);
                }
            }
        }
        // Records about the user and codes no longer active carry no count to wait for:
        // written before the fence (it stops new ones), they are in their index once its lag
        // has passed.
        tokio::time::sleep_until(fenced_at + SETTLE).await;
        let mentions = self.index_keys(&t.audit, BY_ABOUT_INDEX, attr::ABOUT, u).await?;
        let mut codes = self.index_keys(owned.0, owned.1, owned.2, u).await?;
        codes.extend(active.into_iter().filter(|a| !codes.iter().any(|c| c.get(attr::CODE) == a.get(attr::CODE))).collect::<Vec<_>>());
        let ledger = self.partition(&t.ledger, attr::USER_ID, u).await?;

        // Referred users name their inviter.
        for k in &referred {
            if self.update_if(&t.policy, key_of(k, &[attr::USER_ID]), "SET #inviter = :p", "#inviter = :u", vec![(":u", s(u)), (":p", s(p))]).await? {
                done.rewritten += 1;
                *tally.entry("referral").or_default() += 1;
            }
        }
        // Commissions earned on the user's orders, and their reward entries.
        for k in &purchases {
            let Some(entry) = k.get(attr::ENTRY_KEY).and_then(|v| v.as_s().ok()) else { continue };
            let Some(order) = entry.strip_prefix("commission#") else { continue };
            let earner = k.get(attr::USER_ID).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            let set = "SET #buyer = :p, #version = #version + :one";
            if self.update_if(&t.ledger, key_of(k, &[attr::USER_ID, attr::ENTRY_KEY]), set, "#buyer = :u", vec![(":u", s(u)), (":p", s(p)), (":one", n(1))]).await? {
                done.rewritten += 1;
                *tally.entry("commission").or_default() += 1;
            }
            let reward = key2((attr::USER_ID, &earner), (attr::ENTRY_KEY, &reward_entry_key(order)));
            if self.update_if(&t.ledger, reward, "SET #referred_user = :p", "#referred_user = :u", vec![(":u", s(u)), (":p", s(p))]).await? {
                done.rewritten += 1;
                *tally.entry("reward_entry").or_default() += 1;
            }
        }
        // The level-1 commissions of the orders the user earned a level 2 or 3 of name them.
        for c in ledger.iter().filter(|i| string(i, attr::KIND) == Some("commission")) {
            let level = c.get("earned").and_then(|e| e.as_m().ok()).and_then(|e| e.get("level")).and_then(|l| l.as_n().ok()).and_then(|l| l.parse::<u8>().ok());
            if level.unwrap_or(1) < 2 {
                continue;
            }
            let (Some(buyer), Some(entry)) = (string(c, attr::BUYER), string(c, attr::ENTRY_KEY)) else { continue };
            let Some(buyer_policy) = self.get_item(&t.policy, key(attr::USER_ID, buyer)).await? else { continue };
            let Some(first) = string(&buyer_policy, attr::INVITER) else { continue };
            if let Some(level_one) = self.get_item(&t.ledger, key2((attr::USER_ID, first), (attr::ENTRY_KEY, entry))).await? {
                if self.rewrite_in_place(&t.ledger, attr::USER_ID, &level_one, r).await? {
                    done.rewritten += 1;
                    *tally.entry("level_one").or_default() += 1;
                }
            }
        }
        // Records on other users' trails that name the user.
        for k in &mentions {
            if let Some(record) = self.get_item(&t.audit, key_of(k, &[attr::SUBJECT, attr::AT_KEY])).await? {
                // Unchanged: rewritten before (an index entry that lagged the rewrite).
                if r.item(&record) != record && self.rewrite_in_place(&t.audit, attr::SUBJECT, &record, r).await? {
                    done.rewritten += 1;
                    *tally.entry("mention").or_default() += 1;
                }
            }
        }
        // Codes: deactivated, owned by the pseudonym; keyed-creation records deleted (their
        // key holds the id).
        for k in &codes {
            let Some(code) = string(k, attr::CODE) else { continue };
            let changed = if code.contains('#') {
                self.delete_if(&t.codes, key(attr::CODE, code), "attribute_exists(#code)").await?
            } else {
                let expr = "SET #owner_id = :p, #active = :false, #deactivated_at = if_not_exists(#deactivated_at, :now), #purge_at = :purge REMOVE #active_owner";
                let values = vec![(":u", s(u)), (":p", s(p)), (":false", AttributeValue::Bool(false)), (":now", n(e.at.millis())), (":purge", n(e.at.epoch_seconds()))];
                self.update_if(&t.codes, key(attr::CODE, code), expr, "#owner_id = :u", values).await?
            };
            if changed {
                done.rewritten += 1;
                *tally.entry("code").or_default() += 1;
            }
        }
        // Short-lived counters whose keys hold the id (TTL two days on): deleted.
        let mut counters = Vec::new();
        for h in 0..COUNTER_HOURS {
            let at = Timestamp::from_millis(e.at.millis() - h * 3_600_000);
            counters.push(velocity_key(u, &at.utc_hour()));
            if h % 24 == 0 {
                counters.push(format!("churn#{u}#{}", at.utc_day()));
            }
        }
        for chunk in counters.chunks(100) {
            let deletes = chunk.iter().map(|c| delete(&t.codes, key(attr::CODE, c.as_str()), "", vec![])).collect::<Result<Vec<_>>>()?;
            self.transact(deletes).await?.map_err(|_| MarketError::Contention)?;
        }
        // Waiting events: the user's own orders and refunds, never decided now.
        let parked = self.partition(&t.parked, attr::USER_ID, u).await?;
        for chunk in parked.chunks(100) {
            let deletes = chunk.iter().map(|i| delete(&t.parked, key_of(i, &[attr::USER_ID, attr::EVENT_KEY]), "", vec![])).collect::<Result<Vec<_>>>()?;
            self.transact(deletes).await?.map_err(|_| MarketError::Contention)?;
            done.rewritten += chunk.len();
            *tally.entry("parked").or_default() += chunk.len();
        }

        // The user's own items, to the pseudonym: ledger, trail, statistics; the policy last
        // (a repeat after a failure finds it still there and goes on).
        let moved = self.move_items(&t.ledger, &[attr::USER_ID, attr::ENTRY_KEY], &ledger, r).await?;
        done.moved += moved;
        *tally.entry("moved_ledger").or_default() += moved;
        let trail = self.partition(&t.audit, attr::SUBJECT, u).await?;
        let moved = self.move_items(&t.audit, &[attr::SUBJECT, attr::AT_KEY], &trail, r).await?;
        done.moved += moved;
        *tally.entry("moved_audit").or_default() += moved;
        let mut stats: Vec<Item> = stats_items.into_iter().flatten().collect();
        // Every code is deactivated above: none is active any more (the main item's counter).
        for item in stats.iter_mut().filter(|i| string(i, attr::USER_ID) == Some(u)) {
            if item.contains_key(attr::ACTIVE_CODES) {
                item.insert(attr::ACTIVE_CODES.to_owned(), n(0));
            }
        }
        let moved = self.move_items(&t.stats, &[attr::USER_ID], &stats, r).await?;
        done.moved += moved;
        *tally.entry("moved_stats").or_default() += moved;
        self.drop_pseudonym_fences(p).await?;
        // The pseudonym's policy says when the user was erased (a user never registered gets
        // one too: the mark that they are); a repeat leaves it as it is.
        let policy = self.get_item(&t.policy, key(attr::USER_ID, u)).await?;
        let mut last = Vec::new();
        let check_at = policy.is_none().then_some(1);
        match &policy {
            Some(item) => {
                let mut marker = r.item(item);
                marker.insert(ERASED_AT.to_owned(), n(e.at.millis()));
                marker.insert(AVAILABLE_AT_ERASURE.to_owned(), n(available.minor()));
                last.push(put(&t.policy, marker, "", vec![])?);
                last.push(delete(&t.policy, key(attr::USER_ID, u), "", vec![])?);
                done.moved += 1;
            }
            None => {
                let mut marker = key(attr::USER_ID, p);
                marker.insert(ERASED_AT.to_owned(), n(e.at.millis()));
                marker.insert(AVAILABLE_AT_ERASURE.to_owned(), n(available.minor()));
                last.push(put(&t.policy, marker, "attribute_not_exists(#erased_at)", vec![])?);
                // A registration of the user that came in meanwhile: the erasure goes again.
                last.push(check(&t.policy, key(attr::USER_ID, u), "attribute_not_exists(#user_id)", vec![])?);
            }
        }
        if done != Erased::default() {
            last.push(audit_put(t, &e.audit)?);
            // What it changed, by kind (without a policy of the user: erased before, or a
            // user who never registered).
            tracing::info!(pseudonym = p, ?tally, had_policy = policy.is_some(), "erasure applied");
        }
        match self.transact(last).await? {
            Ok(()) => Ok(done),
            // Marked before, and nothing was left to change: a repeat.
            Err(c) if check_at.is_some_and(|i| !c.failed(i)) && done == Erased::default() => Ok(done),
            Err(_) => Err(MarketError::Contention),
        }
    }
}

/// On an erased user's (the pseudonym's) policy: when.
pub(crate) const ERASED_AT: &str = "erased_at";
/// And their `available` then (minor units): what a forfeit debits.
pub(crate) const AVAILABLE_AT_ERASURE: &str = "available_at_erasure";

