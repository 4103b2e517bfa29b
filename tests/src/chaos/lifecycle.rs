//! Invariant 11 in a chaos run: every committed money transition of every affiliate has
//! exactly one lifecycle event on RabbitMQ, no event exists for a change that did not commit,
//! each affiliate's sequence is complete and in order, and the events add up to the books.
//! What must have been published is read from the ledger after the drain: each earned
//! commission (`earned`), reversal, adjustment and withdrawal entry; each commission that
//! matured after it was earned is in exactly one `matured` event (or was approved into
//! available).

use std::collections::{BTreeMap, HashMap, HashSet};

use market_domain::ids::UserId;
use market_domain::lifecycle::events::event_id;
use market_domain::model::{AffiliateStats, HistoryItem, LedgerEntry};

use crate::amqp::Received;
use crate::event_schemas::by_affiliate;

/// An affiliate's books as the checker read them.
pub struct Books {
    pub stats: AffiliateStats,
    pub history: Vec<HistoryItem>,
}

/// The ids the ledger says must have been published (matured batches aside: their ids name
/// a batch, which the ledger does not keep).
pub fn expected_ids(user: &UserId, history: &[HistoryItem]) -> HashSet<String> {
    let mut ids = HashSet::new();
    for item in history {
        match item {
            HistoryItem::Commission(c) if c.earned.is_some() => {
                ids.insert(event_id(user, "earned", &[c.order_id.as_str()]));
                if c.review.as_ref().is_some_and(|r| r.approved) {
                    ids.insert(event_id(user, "approved", &[c.order_id.as_str()]));
                }
            }
            HistoryItem::Commission(_) => {}
            HistoryItem::Entry(LedgerEntry::Reversal { order_id, reversal_id, .. }) => {
                ids.insert(event_id(user, "reversed", &[order_id.as_str(), reversal_id.as_str()]));
            }
            HistoryItem::Entry(LedgerEntry::Adjustment { adjustment_id, .. }) => {
                ids.insert(event_id(user, "adjusted", &[adjustment_id.as_str()]));
            }
            HistoryItem::Entry(LedgerEntry::Withdrawal { withdrawal_id, .. }) => {
                ids.insert(withdrawal_id.to_string());
            }
            HistoryItem::Entry(LedgerEntry::Reward { .. }) => {}
        }
    }
    ids
}

/// An event of an erased affiliate published before their erasure, as if under their
/// pseudonym (`renames`: id → pseudonym): their books moved, and their sequence goes on there.
pub fn renamed(r: &Received, renames: &HashMap<String, String>) -> Received {
    let mut r = r.clone();
    if let Some(p) = r.body["affiliate_id"].as_str().and_then(|a| renames.get(a)).cloned() {
        let old = r.body["affiliate_id"].as_str().unwrap_or_default().to_owned();
        r.body["affiliate_id"] = p.clone().into();
        if let Some(id) = r.body["event_id"].as_str().and_then(|id| id.strip_prefix(&format!("{old}#"))) {
            let id = format!("{p}#{id}");
            r.body["event_id"] = id.clone().into();
            r.message_id = Some(id);
        }
    }
    r
}

/// How an event moves the affiliate's `available` (as the books keep it).
fn available_effect(r: &Received) -> i64 {
    let amount = r.body["amount"].as_i64().unwrap_or(0);
    match r.routing_key.as_str() {
        "affiliate.reward.earned" | "affiliate.reward.approved" if r.body["status"] == "available" => amount,
        "affiliate.reward.matured" | "affiliate.balance.adjusted" => amount,
        "affiliate.reward.reversed" if r.body["from"] == "available" => -amount,
        "affiliate.withdrawn" => -amount,
        _ => 0,
    }
}

/// Outcome of the check: violations, and the distinct events it counted.
pub fn check(books: &HashMap<UserId, Books>, received: &[Received]) -> (Vec<String>, usize) {
    let (by, mut v) = by_affiliate(received);
    let mut counted = 0;
    let empty = BTreeMap::new();
    for (user, b) in books {
        let events = by.get(user.as_str()).unwrap_or(&empty);
        counted += events.len();
        let expected = expected_ids(user, &b.history);
        let mut matured_orders: HashMap<String, usize> = HashMap::new();
        let mut available_at_once: HashSet<String> = HashSet::new();
        let mut got = HashSet::new();
        for r in events.values() {
            let id = r.body["event_id"].as_str().unwrap_or_default().to_owned();
            match r.routing_key.as_str() {
                "affiliate.reward.matured" => {
                    for reward in r.body["rewards"].as_array().into_iter().flatten() {
                        *matured_orders.entry(reward["order_id"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
                    }
                }
                key => {
                    if !expected.contains(&id) {
                        v.push(format!("{user}: event {id} ({key}) without a committed change"));
                    }
                    if r.body["status"] == "available" {
                        available_at_once.insert(r.body["order_id"].as_str().unwrap_or_default().to_owned());
                    }
                    got.insert(id);
                }
            }
        }
        for id in expected.difference(&got) {
            v.push(format!("{user}: no event for committed change {id}"));
        }
        for item in &b.history {
            let HistoryItem::Commission(c) = item else { continue };
            let order = c.order_id.to_string();
            let batches = matured_orders.remove(&order).unwrap_or(0);
            let expected_batches = usize::from(c.matured && !available_at_once.contains(&order));
            if batches != expected_batches {
                v.push(format!("{user}: order {order} (matured: {}) in {batches} matured events", c.matured));
            }
        }
        for order in matured_orders.keys() {
            v.push(format!("{user}: matured event names order {order}, not a commission of theirs"));
        }
        let sum: i64 = events.values().map(available_effect).sum();
        if sum != b.stats.available.minor() {
            v.push(format!("{user}: events add up to available {sum}, the books say {}", b.stats.available));
        }
    }
    (v, counted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use market_domain::ids::{AdjustmentId, EventId, OrderId};
    use market_domain::lifecycle::{Commission, Earned};
    use market_domain::money::{Bps, Currency, Money};
    use market_domain::time::Timestamp;
    use serde_json::json;

    fn event(key: &str, body: serde_json::Value) -> Received {
        Received {
            exchange: "market".into(),
            routing_key: key.into(),
            message_id: body["event_id"].as_str().map(str::to_owned),
            delivery_mode: Some(2),
            content_type: Some("application/json".into()),
            body,
        }
    }

    /// One commission earned available (100) and an adjustment of 50: what the checker must
    /// accept, and each way it must refuse a different stream.
    #[test]
    fn the_checker_finds_a_gap_a_phantom_a_missing_event_and_a_wrong_sum() {
        let user = UserId::parse("aff").unwrap();
        let mut c = Commission::new(user.clone(), OrderId::parse("o1").unwrap(), UserId::parse("b").unwrap());
        let earned = Earned {
            order_amount: Money::from_minor(1000),
            currency: Currency::parse("USD").unwrap(),
            commission_bps: Bps::new(1000).unwrap(),
            reward: Money::from_minor(100),
            earned_at: Timestamp::from_millis(1),
            matures_at: Timestamp::from_millis(1),
            source_event_id: EventId::parse("e").unwrap(),
            level: 1,
            level_earners: vec![],
            hold: None,
            terms: None,
        };
        c = c.earn(earned, Timestamp::from_millis(2)).unwrap().after;
        let adjustment = LedgerEntry::Adjustment {
            user_id: user.clone(),
            adjustment_id: AdjustmentId::parse("adj1").unwrap(),
            amount: Money::from_minor(50),
            reason: "r".into(),
            admin: UserId::parse("admin").unwrap(),
            available_after: Money::from_minor(150),
            at: Timestamp::from_millis(3),
        };
        let mut stats = AffiliateStats::empty(user.clone());
        stats.available = Money::from_minor(150);
        let books = HashMap::from([(user.clone(), Books { stats, history: vec![HistoryItem::Commission(c), HistoryItem::Entry(adjustment)] })]);
        let earned = |seq: u64| event("affiliate.reward.earned", json!({"type": "affiliate.reward.earned", "schema_version": 1, "event_id": "aff#earned#o1",
            "affiliate_id": "aff", "sequence": seq, "occurred_at": 1, "order_id": "o1", "level": 1, "status": "available", "order_amount": 1000,
            "commission_bps": 1000, "amount": 100, "currency": "USD", "matures_at": 1}));
        let adjusted = |seq: u64, amount: i64| event("affiliate.balance.adjusted", json!({"type": "affiliate.balance.adjusted", "schema_version": 1,
            "event_id": "aff#adjusted#adj1", "affiliate_id": "aff", "sequence": seq, "occurred_at": 3, "adjustment_id": "adj1",
            "amount": amount, "currency": "USD", "available_after": 150}));

        let (v, n) = check(&books, &[earned(1), adjusted(2, 50), earned(1)]);
        assert_eq!((v.len(), n), (0, 2), "{v:?}");
        let (v, _) = check(&books, &[earned(1), adjusted(3, 50)]);
        assert!(v.iter().any(|m| m.contains("gaps")), "{v:?}");
        let (v, _) = check(&books, &[earned(1)]);
        assert!(v.iter().any(|m| m.contains("no event for committed change aff#adjusted#adj1")), "{v:?}");
        let mut phantom = adjusted(3, 0);
        phantom.body["event_id"] = json!("aff#adjusted#adj2");
        phantom.message_id = Some("aff#adjusted#adj2".into());
        let (v, _) = check(&books, &[earned(1), adjusted(2, 50), phantom]);
        assert!(v.iter().any(|m| m.contains("without a committed change")), "{v:?}");
        let (v, _) = check(&books, &[earned(1), adjusted(2, 40)]);
        assert!(v.iter().any(|m| m.contains("add up")), "{v:?}");
        let mut invalid = adjusted(2, 50);
        invalid.body["amount"] = json!("50");
        let (v, _) = check(&books, &[earned(1), invalid]);
        assert!(v.iter().any(|m| m.contains("affiliate.balance.adjusted")), "{v:?}");
    }
}
