//! Erasure (GDPR art. 17), the item level: how a stored item reads once a user's id is
//! replaced by their pseudonym. Pure; the erasure's transactions (to come: fence, move,
//! rewrite references) apply it to every item that names the user.
//!
//! The id goes wherever it stands: a string attribute equal to it, a `#`-separated part of
//! one (`<user>#shard3`, `held_key`, `velocity#<user>#<hour>`), inside JSON text (an audit
//! record's `details`), in maps and lists. Free text that may hold personal data goes too:
//! every `note` (an admin's reversal or review note), and the `reason` of an adjustment
//! (its entry, its audit record); a refund's `reason` (`refund`, `chargeback`) and a
//! rejection's (`over_refund`, ...) are codes and stay. Amounts, order ids and times stay, so
//! every sum over the items is what it was.

use aws_sdk_dynamodb::types::AttributeValue;
use market_domain::ports::{Erased, Erasure, ErasureStore, Result};
use market_domain::time::Timestamp;
use market_domain::MarketError;

use crate::audit::audit_put;
use crate::expr::{delete, key, key2, n, put, s, update, Item, Values};
use crate::tables::{attr, reward_entry_key, stats_shard_keys, velocity_key, BY_ABOUT_INDEX, BY_BUYER_INDEX, BY_INVITER_INDEX, BY_OWNER_INDEX};
use crate::DynamoStore;

/// What one erasure replaces: the user's id by their pseudonym.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Replacement<'a> {
    pub user: &'a str,
    pub pseudonym: &'a str,
}

/// Audit actions whose `reason` is an admin's free text.
const FREE_REASON_ACTIONS: [&str; 1] = ["balance_adjusted"];
/// Ledger entry kinds whose `reason` is an admin's free text.
const FREE_REASON_KINDS: [&str; 1] = ["adjustment"];

impl Replacement<'_> {
    /// The item with the user's id replaced and free text cleared.
    pub(crate) fn item(&self, item: &Item) -> Item {
        let kind = string(item, attr::KIND);
        let action = string(item, "action");
        let free_reason = kind.is_some_and(|k| FREE_REASON_KINDS.contains(&k)) || action.is_some_and(|a| FREE_REASON_ACTIONS.contains(&a));
        item.iter()
            // The fence goes with the move: the pseudonym's items are writable.
            .filter(|(name, _)| name.as_str() != attr::ERASING)
            .map(|(name, value)| {
                let value = match (name.as_str(), value) {
                    ("note", AttributeValue::S(_)) => AttributeValue::S(String::new()),
                    ("reason", AttributeValue::S(_)) if free_reason => AttributeValue::S(String::new()),
                    // An audit record's facts: JSON text, rewritten as JSON.
                    ("details", AttributeValue::S(text)) => AttributeValue::S(self.json_text(text, free_reason)),
                    _ => self.value(value),
                };
                (name.clone(), value)
            })
            .collect()
    }

    fn value(&self, value: &AttributeValue) -> AttributeValue {
        match value {
            AttributeValue::S(s) => AttributeValue::S(self.text(s)),
            AttributeValue::M(m) => AttributeValue::M(self.item(m)),
            AttributeValue::L(l) => AttributeValue::L(l.iter().map(|v| self.value(v)).collect()),
            AttributeValue::Ss(ss) => AttributeValue::Ss(ss.iter().map(|s| self.text(s)).collect()),
            other => other.clone(),
        }
    }

    /// A string: the id itself, or one of its parts separated by `#` (keys) or `:` (an
    /// actor, `user:<id>`).
    pub(crate) fn text(&self, s: &str) -> String {
        if s == self.user {
            return self.pseudonym.to_owned();
        }
        let mut out = String::with_capacity(s.len());
        let mut part_start = 0;
        for (i, c) in s.char_indices().chain(std::iter::once((s.len(), '#'))) {
            if c == '#' || c == ':' {
                let part = &s[part_start..i];
                out.push_str(if part == self.user { self.pseudonym } else { part });
                if i < s.len() {
                    out.push(c);
                }
                part_start = i + c.len_utf8();
            }
        }
        out
    }

    fn json_text(&self, text: &str, free_reason: bool) -> String {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(mut v) => {
                self.json(&mut v, free_reason);
                v.to_string()
            }
            Err(_) => self.text(text),
        }
    }

    fn json(&self, v: &mut serde_json::Value, free_reason: bool) {
        use serde_json::Value;
        match v {
            Value::String(s) => *s = self.text(s),
            Value::Array(a) => a.iter_mut().for_each(|v| self.json(v, free_reason)),
            Value::Object(o) => {
                for (k, v) in o.iter_mut() {
                    match (k.as_str(), &v) {
                        ("note", Value::String(_)) => *v = Value::String(String::new()),
                        ("reason", Value::String(_)) if free_reason => *v = Value::String(String::new()),
                        _ => self.json(v, free_reason),
                    }
                }
            }
            _ => {}
        }
    }
}

fn string<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

// ---------------------------------------------------------------- the store's erasure

/// Moves (a put and a delete each) per transaction: 100 items.
const MOVES_PER_TRANSACTION: usize = 50;
/// Hours of referral-velocity counters (TTL two days on) and days of code-churn counters.
const COUNTER_HOURS: i64 = 48;

fn key_of(item: &Item, names: &[&str]) -> Item {
    names.iter().filter_map(|n| item.get(*n).map(|v| ((*n).to_owned(), v.clone()))).collect()
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

    /// Puts each item as `r` rewrites it (under its new key) and deletes the old one.
    async fn move_items(&self, table: &str, keys: &[&str], items: &[Item], r: Replacement<'_>) -> Result<usize> {
        for chunk in items.chunks(MOVES_PER_TRANSACTION) {
            let mut writes = Vec::with_capacity(chunk.len() * 2);
            for item in chunk {
                writes.push(put(table, r.item(item), "", vec![])?);
                writes.push(delete(table, key_of(item, keys), "", vec![])?);
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

    /// Puts items rewritten in place (same key), each conditional on the version read when
    /// it has one; `false` for an item that changed meanwhile.
    async fn rewrite_in_place(&self, table: &str, item: &Item, r: Replacement<'_>) -> Result<bool> {
        let mut after = r.item(item);
        let (cond, values) = match item.get(attr::VERSION).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<i64>().ok()) {
            Some(v) => {
                after.insert(attr::VERSION.to_owned(), n(v + 1));
                ("#version = :v", vec![(":v", n(v))])
            }
            None => ("", vec![]),
        };
        Ok(self.transact(vec![put(table, after, cond, values)?]).await?.is_ok())
    }
}

impl ErasureStore for DynamoStore {
    async fn erase(&self, e: &Erasure) -> Result<Erased> {
        let t = self.tables();
        let (u, p) = (e.user.as_str(), e.pseudonym.as_str());
        let r = Replacement { user: u, pseudonym: p };
        let mut done = Erased::default();

        // The fence: the user's policy and statistics carry their pseudonym until moved, and
        // every write of them is conditional on its absence (a write that meets it is retried
        // later). Everything below is read after it.
        // Only items that exist: a fence never creates one (a repeat, after the user's items
        // moved, fences nothing and moves nothing onto the pseudonym's).
        let fenced = std::iter::once((t.policy.as_str(), u.to_owned())).chain(std::iter::once(u.to_owned()).chain(stats_shard_keys(u)).map(|k| (t.stats.as_str(), k)));
        for (table, k) in fenced {
            self.update_if(table, key(attr::USER_ID, k), "SET #erasing = :p", "attribute_exists(#user_id)", vec![(":p", s(p))]).await?;
        }

        // What others hold about the user, found before the user's own items move.
        let referred = self.index_keys(&t.policy, BY_INVITER_INDEX, attr::INVITER, u).await?;
        let purchases = self.index_keys(&t.ledger, BY_BUYER_INDEX, attr::BUYER, u).await?;
        let mentions = self.index_keys(&t.audit, BY_ABOUT_INDEX, attr::ABOUT, u).await?;
        let codes = self.index_keys(&t.codes, BY_OWNER_INDEX, attr::OWNER_ID, u).await?;
        let ledger = self.partition(&t.ledger, attr::USER_ID, u).await?;

        // Referred users name their inviter.
        for k in &referred {
            let cond = "#inviter = :u OR #inviter = :p";
            if self.update_if(&t.policy, key_of(k, &[attr::USER_ID]), "SET #inviter = :p", cond, vec![(":u", s(u)), (":p", s(p))]).await? {
                done.rewritten += 1;
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
            }
            let reward = key2((attr::USER_ID, &earner), (attr::ENTRY_KEY, &reward_entry_key(order)));
            if self.update_if(&t.ledger, reward, "SET #referred_user = :p", "#referred_user = :u", vec![(":u", s(u)), (":p", s(p))]).await? {
                done.rewritten += 1;
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
                if self.rewrite_in_place(&t.ledger, &level_one, r).await? {
                    done.rewritten += 1;
                }
            }
        }
        // Records on other users' trails that name the user.
        for k in &mentions {
            if let Some(record) = self.get_item(&t.audit, key_of(k, &[attr::SUBJECT, attr::AT_KEY])).await? {
                self.rewrite_in_place(&t.audit, &record, r).await?;
                done.rewritten += 1;
            }
        }
        // Codes: deactivated, owned by the pseudonym; keyed-creation records deleted (their
        // key holds the id).
        for k in &codes {
            let Some(code) = string(k, attr::CODE) else { continue };
            if code.contains('#') {
                self.transact(vec![delete(&t.codes, key(attr::CODE, code), "", vec![])?]).await?.map_err(|_| MarketError::Contention)?;
            } else {
                let expr = "SET #owner_id = :p, #active = :false, #deactivated_at = if_not_exists(#deactivated_at, :now), #purge_at = :purge REMOVE #active_owner";
                let values = vec![(":u", s(u)), (":p", s(p)), (":false", AttributeValue::Bool(false)), (":now", n(e.at.millis())), (":purge", n(e.at.epoch_seconds()))];
                self.update_if(&t.codes, key(attr::CODE, code), expr, "#owner_id = :u", values).await?;
            }
            done.rewritten += 1;
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
        }

        // The user's own items, to the pseudonym: ledger, trail, statistics; the policy last
        // (a repeat after a failure finds it still there and goes on).
        done.moved += self.move_items(&t.ledger, &[attr::USER_ID, attr::ENTRY_KEY], &ledger, r).await?;
        let trail = self.partition(&t.audit, attr::SUBJECT, u).await?;
        done.moved += self.move_items(&t.audit, &[attr::SUBJECT, attr::AT_KEY], &trail, r).await?;
        let stats_keys = std::iter::once(u.to_owned()).chain(stats_shard_keys(u)).map(|k| (t.stats.as_str(), key(attr::USER_ID, k))).collect();
        let stats: Vec<Item> = self.get_items(stats_keys).await?.into_iter().flatten().collect();
        done.moved += self.move_items(&t.stats, &[attr::USER_ID], &stats, r).await?;
        // The pseudonym's policy says when the user was erased (a user never registered gets
        // one too: the mark that they are); a repeat leaves it as it is.
        let policy = self.get_item(&t.policy, key(attr::USER_ID, u)).await?;
        let mut last = Vec::new();
        match &policy {
            Some(item) => {
                let mut marker = r.item(item);
                marker.insert(ERASED_AT.to_owned(), n(e.at.millis()));
                last.push(put(&t.policy, marker, "", vec![])?);
                last.push(delete(&t.policy, key(attr::USER_ID, u), "", vec![])?);
                done.moved += 1;
            }
            None => {
                let mut marker = key(attr::USER_ID, p);
                marker.insert(ERASED_AT.to_owned(), n(e.at.millis()));
                last.push(put(&t.policy, marker, "attribute_not_exists(#erased_at)", vec![])?);
            }
        }
        if done != Erased::default() {
            last.push(audit_put(t, &e.audit)?);
        }
        match self.transact(last).await? {
            Ok(()) => Ok(done),
            // Marked before, and nothing was left to change: a repeat.
            Err(_) if policy.is_none() && done == Erased::default() => Ok(done),
            Err(_) => Err(MarketError::Contention),
        }
    }
}

/// On an erased user's (the pseudonym's) policy: when.
pub(crate) const ERASED_AT: &str = "erased_at";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{n, s};

    const R: Replacement = Replacement { user: "alice", pseudonym: "erased-0a1b" };

    fn contains(item: &Item, needle: &str) -> bool {
        format!("{item:?}").contains(needle)
    }

    #[test]
    fn the_id_goes_wherever_it_stands_and_the_figures_stay() {
        let item = Item::from([
            ("user_id".to_owned(), s("alice")),
            ("entry_key".to_owned(), s("commission#order-1")),
            ("held_key".to_owned(), s("0000001700000#alice#order-1")),
            ("buyer".to_owned(), s("bob")),
            ("amount".to_owned(), n(1234)),
            ("earned".to_owned(), AttributeValue::M(Item::from([("level_earners".to_owned(), AttributeValue::L(vec![s("carol"), s("alice")]))]))),
            ("order_id".to_owned(), s("alice-order")),
        ]);
        let out = R.item(&item);
        assert_eq!(out["user_id"], s("erased-0a1b"));
        assert_eq!(out["held_key"], s("0000001700000#erased-0a1b#order-1"));
        assert_eq!(out["earned"], AttributeValue::M(Item::from([("level_earners".to_owned(), AttributeValue::L(vec![s("carol"), s("erased-0a1b")]))])));
        assert_eq!((&out["buyer"], &out["amount"], &out["entry_key"]), (&s("bob"), &n(1234), &s("commission#order-1")));
        assert_eq!(out["order_id"], s("alice-order"), "a different id that starts like the user's stays");
        assert!(!contains(&out, "\"alice\""));
    }

    #[test]
    fn free_text_is_cleared_and_codes_stay() {
        let adjustment = Item::from([("kind".to_owned(), s("adjustment")), ("reason".to_owned(), s("called Alice at +49 ...")), ("user_id".to_owned(), s("alice"))]);
        assert_eq!(R.item(&adjustment)["reason"], s(""));
        let reversal = Item::from([("kind".to_owned(), s("reversal")), ("note".to_owned(), s("fraud by Alice")), ("cause".to_owned(), s("admin_void"))]);
        let out = R.item(&reversal);
        assert_eq!((&out["note"], &out["cause"]), (&s(""), &s("admin_void")));
        let audit = Item::from([
            ("subject".to_owned(), s("bob")),
            ("action".to_owned(), s("refund_rejected")),
            ("details".to_owned(), s(r#"{"reason":"over_refund","user":"alice","note":"x"}"#)),
        ]);
        let details: serde_json::Value = serde_json::from_str(R.item(&audit)["details"].as_s().unwrap()).unwrap();
        assert_eq!(details, serde_json::json!({"reason": "over_refund", "user": "erased-0a1b", "note": ""}));
        let adjusted = Item::from([("action".to_owned(), s("balance_adjusted")), ("details".to_owned(), s(r#"{"reason":"goodwill for Alice","amount":5}"#))]);
        let details: serde_json::Value = serde_json::from_str(R.item(&adjusted)["details"].as_s().unwrap()).unwrap();
        assert_eq!(details, serde_json::json!({"reason": "", "amount": 5}));
    }

    #[test]
    fn keys_with_the_id_as_a_part_are_rewritten() {
        assert_eq!(R.text("alice#shard3"), "erased-0a1b#shard3");
        assert_eq!(R.text("velocity#alice#2026-12-07T10"), "velocity#erased-0a1b#2026-12-07T10");
        assert_eq!(R.text("velocity#malice#2026"), "velocity#malice#2026");
        assert_eq!(R.text("user:alice"), "user:erased-0a1b", "an actor");
        assert_eq!(R.text("admin:bob"), "admin:bob");
        assert_eq!(R.text("a:b#alice"), "a:b#erased-0a1b");
        assert_eq!(R.text("plain"), "plain");
    }
}
