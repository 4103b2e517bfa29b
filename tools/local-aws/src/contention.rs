//! DynamoDB as AWS behaves under contention, where DynamoDB Local does not: it serializes
//! transactions, never throttles, keeps its global indexes instantly consistent and never
//! fails. Off until switched on (`POST /__local-aws/contention`); then:
//!
//! - **conflicts**: a transaction that touches an item another transaction in flight
//!   touches is cancelled (`TransactionCanceledException`, reason `TransactionConflict` at
//!   that item); a single write of such an item fails with `TransactionConflictException`;
//! - **throttling**: each item takes at most `item_wcu_per_second` write units a second
//!   (AWS: about 1 000 per partition, here scaled down so the local stack can reach it; a
//!   transactional write costs 2 units per item, a standard one 1); over it a transaction is
//!   cancelled with reason `ThrottlingError`, a single write answered
//!   `ProvisionedThroughputExceededException`;
//! - **lagging indexes**: a `Query` of a global secondary index leaves out items written less
//!   than `gsi_lag_ms` ago — by a write DynamoDB applied, not one it refused (an
//!   approximation: AWS would show their previous version, if any, or nothing for a new item;
//!   local secondary indexes stay strongly consistent, as in AWS);
//! - **internal errors**: a request fails with HTTP 500 `InternalServerError` before it is
//!   applied, with probability `internal_error_rate` (AWS documents them as retryable);
//! - **one partition per item collection** (opt-in, `partition_wcu_per_second`): on a table
//!   with local secondary indexes, all items of one partition key value share that many
//!   write units a second, each item write costing its units once more per LSI (as if
//!   DynamoDB kept such an item collection in one partition; a model to compare designs,
//!   to be confirmed against AWS).
//!
//! What it did is counted by operation (`GET /__local-aws/contention`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A table's key attributes and which of its indexes are global (from the template).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TableShape {
    pub key: Vec<String>,
    #[serde(default)]
    pub gsis: Vec<String>,
    #[serde(default)]
    pub lsis: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Settings {
    pub conflicts: bool,
    /// 0 = no limit.
    pub item_wcu_per_second: f64,
    pub gsi_lag_ms: u64,
    pub internal_error_rate: f64,
    /// 0 = off (see the module's doc).
    pub partition_wcu_per_second: f64,
}

impl Settings {
    pub fn on(&self) -> bool {
        self.conflicts || self.item_wcu_per_second > 0.0 || self.gsi_lag_ms > 0 || self.internal_error_rate > 0.0 || self.partition_wcu_per_second > 0.0
    }
}

/// What the shim did, by operation (`TransactWriteItems`, `Query`, ...).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    pub conflicts: BTreeMap<String, u64>,
    pub throttles: BTreeMap<String, u64>,
    pub internal_errors: BTreeMap<String, u64>,
    /// Items a GSI query left out because they were written within the lag.
    pub lagged_items: BTreeMap<String, u64>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug, Default)]
struct State {
    settings: Settings,
    counters: Counters,
    /// Items of transactions in flight -> how many hold each.
    in_flight: HashMap<String, u32>,
    buckets: HashMap<String, Bucket>,
    /// Item -> when it was last written (for the index lag), pruned as it grows.
    written: HashMap<String, Instant>,
    rng: u64,
}

#[derive(Debug)]
pub struct Contention {
    tables: HashMap<String, TableShape>,
    state: Mutex<State>,
}

/// The refusal to send instead of forwarding.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub body: Value,
}

/// Holds a transaction's items as in flight until dropped (after DynamoDB answered).
#[derive(Debug)]
pub struct InFlight {
    shim: Arc<Contention>,
    keys: Vec<String>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = self.shim.lock();
        for k in &self.keys {
            if let Some(n) = s.in_flight.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    s.in_flight.remove(k);
                }
            }
        }
    }
}

/// The items one write request touches, as `<table>|<key attribute>=<value>|...`.
fn written_items(op: &str, body: &Value, tables: &HashMap<String, TableShape>) -> Vec<String> {
    let key_of = |table: &str, spec: &Value| -> Option<String> {
        let shape = tables.get(table)?;
        let source = spec.get("Key").or_else(|| spec.get("Item"))?;
        let parts: Vec<String> = shape.key.iter().map(|k| format!("{k}={}", source.get(k).map(Value::to_string).unwrap_or_default())).collect();
        Some(format!("{table}|{}", parts.join("|")))
    };
    match op {
        "TransactWriteItems" => body
            .get("TransactItems")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.as_object()?.iter().next())
                    .filter_map(|(_, spec)| key_of(spec.get("TableName")?.as_str()?, spec))
                    .collect()
            })
            .unwrap_or_default(),
        "PutItem" | "UpdateItem" | "DeleteItem" => body.get("TableName").and_then(Value::as_str).and_then(|t| key_of(t, body)).into_iter().collect(),
        _ => Vec::new(),
    }
}

fn error(kind: &str, message: &str) -> Value {
    json!({"__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"), "message": message})
}

impl Contention {
    pub fn new(tables: HashMap<String, TableShape>) -> Arc<Self> {
        let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1;
        Arc::new(Contention { tables, state: Mutex::new(State { rng: seed, ..State::default() }) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The item collection (`<table>|<partition key>`) of an item of a table with local
    /// secondary indexes, and how many it has.
    fn collection_of(&self, item: &str) -> Option<(String, usize)> {
        let (table, rest) = item.split_once('|')?;
        let shape = self.tables.get(table).filter(|t| !t.lsis.is_empty())?;
        let partition = rest.split('|').next()?;
        Some((format!("{table}|{partition}|collection"), shape.lsis.len()))
    }

    /// Switches the shim (its counters start again); returns the settings in force.
    pub fn set(&self, settings: Settings) -> Settings {
        let mut s = self.lock();
        s.settings = settings;
        s.counters = Counters::default();
        s.settings.clone()
    }

    pub fn report(&self) -> Value {
        let s = self.lock();
        json!({"settings": s.settings, "counters": s.counters})
    }

    /// Before forwarding a DynamoDB request (`op` from its target): a refusal, or the
    /// request's items held in flight until the returned guard drops.
    pub fn admit(self: &Arc<Self>, op: &str, body: &Value) -> Result<Option<InFlight>, Refusal> {
        let mut s = self.lock();
        if !s.settings.on() {
            return Ok(None);
        }
        let now = Instant::now();
        if s.settings.internal_error_rate > 0.0 {
            // xorshift: good enough for "occasionally".
            s.rng ^= s.rng << 13;
            s.rng ^= s.rng >> 7;
            s.rng ^= s.rng << 17;
            if (s.rng % 1_000_000) as f64 / 1_000_000.0 < s.settings.internal_error_rate {
                *s.counters.internal_errors.entry(op.to_owned()).or_default() += 1;
                return Err(Refusal { status: 500, body: error("InternalServerError", "Internal server error") });
            }
        }
        let items = written_items(op, body, &self.tables);
        if items.is_empty() {
            return Ok(None);
        }
        let transaction = op == "TransactWriteItems";
        let cancel = |reasons: Vec<Value>| json!({
            "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "message": "Transaction cancelled, please refer cancellation reasons for specific reasons",
            "CancellationReasons": reasons,
        });
        if s.settings.conflicts {
            if let Some(at) = items.iter().position(|k| s.in_flight.contains_key(k)) {
                *s.counters.conflicts.entry(op.to_owned()).or_default() += 1;
                if !transaction {
                    return Err(Refusal { status: 400, body: error("TransactionConflictException", "Transaction is ongoing for the item") });
                }
                let reasons = (0..items.len())
                    .map(|i| if i == at { json!({"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}) } else { json!({"Code": "None"}) })
                    .collect();
                return Err(Refusal { status: 400, body: cancel(reasons) });
            }
        }
        let cost = if transaction { 2.0 } else { 1.0 };
        // The buckets an item's write draws on: its own, and its item collection's.
        let draws: Vec<(usize, String, f64, f64)> = items
            .iter()
            .enumerate()
            .flat_map(|(i, k)| {
                let item = (s.settings.item_wcu_per_second > 0.0).then(|| (i, k.clone(), s.settings.item_wcu_per_second, cost));
                let collection = self.collection_of(k).filter(|_| s.settings.partition_wcu_per_second > 0.0).map(|(c, lsis)| (i, c, s.settings.partition_wcu_per_second, cost * (1.0 + lsis as f64)));
                item.into_iter().chain(collection)
            })
            .collect();
        if !draws.is_empty() {
            let mut over = None;
            for (i, k, limit, cost) in &draws {
                let b = s.buckets.entry(k.clone()).or_insert(Bucket { tokens: *limit, at: now });
                b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * limit).min(*limit);
                b.at = now;
                if b.tokens < *cost {
                    over = Some(*i);
                    break;
                }
            }
            if let Some(at) = over {
                *s.counters.throttles.entry(op.to_owned()).or_default() += 1;
                if !transaction {
                    return Err(Refusal {
                        status: 400,
                        body: error("ProvisionedThroughputExceededException", "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API."),
                    });
                }
                let reasons = (0..items.len())
                    .map(|i| if i == at { json!({"Code": "ThrottlingError", "Message": "Throughput exceeds the current capacity of your table or index."}) } else { json!({"Code": "None"}) })
                    .collect();
                return Err(Refusal { status: 400, body: cancel(reasons) });
            }
            for (_, k, _, cost) in &draws {
                if let Some(b) = s.buckets.get_mut(k) {
                    b.tokens -= cost;
                }
            }
            if s.buckets.len() > 200_000 {
                s.buckets.retain(|_, b| now.duration_since(b.at) < Duration::from_secs(2));
            }
        }
        if !transaction || !s.settings.conflicts {
            return Ok(None);
        }
        for k in &items {
            *s.in_flight.entry(k.clone()).or_default() += 1;
        }
        Ok(Some(InFlight { shim: self.clone(), keys: items }))
    }

    /// After DynamoDB applied a write (answered with success): its items lag in the global
    /// indexes from now. A write that failed (a condition, a cancelled transaction) changed
    /// nothing, so nothing of it lags, as in AWS.
    pub fn applied(&self, op: &str, body: &Value) {
        let mut s = self.lock();
        if s.settings.gsi_lag_ms == 0 {
            return;
        }
        let now = Instant::now();
        for k in written_items(op, body, &self.tables) {
            s.written.insert(k, now);
        }
        if s.written.len() > 200_000 {
            let lag = Duration::from_millis(s.settings.gsi_lag_ms);
            s.written.retain(|_, at| now.duration_since(*at) < lag);
        }
    }

    /// After DynamoDB answered a `Query` of a global index: leaves out the items written
    /// within the lag. Returns the answer to send.
    pub fn lag_query(&self, request: &Value, answer: bytes::Bytes) -> bytes::Bytes {
        let (Some(table), Some(index)) = (request.get("TableName").and_then(Value::as_str), request.get("IndexName").and_then(Value::as_str)) else {
            return answer;
        };
        let Some(shape) = self.tables.get(table).filter(|t| t.gsis.iter().any(|g| g == index)) else { return answer };
        let s = self.lock();
        if s.settings.gsi_lag_ms == 0 || s.written.is_empty() {
            return answer;
        }
        let lag = Duration::from_millis(s.settings.gsi_lag_ms);
        let Ok(mut out) = serde_json::from_slice::<Value>(&answer) else { return answer };
        let now = Instant::now();
        let fresh = |item: &Value| {
            let parts: Vec<String> = shape.key.iter().map(|k| format!("{k}={}", item.get(k).map(Value::to_string).unwrap_or_default())).collect();
            s.written.get(&format!("{table}|{}", parts.join("|"))).is_some_and(|at| now.duration_since(*at) < lag)
        };
        let Some(items) = out.get_mut("Items").and_then(Value::as_array_mut) else { return answer };
        let before = items.len();
        items.retain(|i| !fresh(i));
        let hidden = before - items.len();
        if hidden == 0 {
            return answer;
        }
        let count = items.len();
        out["Count"] = json!(count);
        drop(s);
        *self.lock().counters.lagged_items.entry(format!("Query {index}")).or_default() += hidden as u64;
        bytes::Bytes::from(out.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shim(settings: Settings) -> Arc<Contention> {
        let tables = HashMap::from([
            ("T".to_owned(), TableShape { key: vec!["pk".into()], gsis: vec!["g".into()], lsis: vec![] }),
            ("L".to_owned(), TableShape { key: vec!["pk".into(), "sk".into()], gsis: vec![], lsis: vec!["l1".into()] }),
        ]);
        let c = Contention::new(tables);
        c.set(settings);
        c
    }

    fn tx(keys: &[&str]) -> Value {
        json!({"TransactItems": keys.iter().map(|k| json!({"Update": {"TableName": "T", "Key": {"pk": {"S": k}}}})).collect::<Vec<_>>()})
    }

    #[test]
    fn a_transaction_touching_an_item_in_flight_is_cancelled_at_that_item() {
        let c = shim(Settings { conflicts: true, ..Settings::default() });
        let first = c.admit("TransactWriteItems", &tx(&["a", "b"])).ok().flatten().expect("admitted");
        let Err(refusal) = c.admit("TransactWriteItems", &tx(&["c", "b"])) else { panic!("not cancelled") };
        assert_eq!(refusal.body["CancellationReasons"][1]["Code"], "TransactionConflict");
        assert_eq!(refusal.body["CancellationReasons"][0]["Code"], "None");
        let Err(single) = c.admit("PutItem", &json!({"TableName": "T", "Item": {"pk": {"S": "a"}, "x": {"N": "1"}}})) else { panic!() };
        assert!(single.body["__type"].as_str().unwrap().ends_with("TransactionConflictException"));
        drop(first);
        assert!(c.admit("TransactWriteItems", &tx(&["b"])).is_ok(), "free again once answered");
        assert_eq!(c.report()["counters"]["conflicts"]["TransactWriteItems"], 1);
    }

    #[test]
    fn an_item_over_its_write_rate_is_throttled() {
        let c = shim(Settings { item_wcu_per_second: 4.0, ..Settings::default() });
        assert!(c.admit("TransactWriteItems", &tx(&["hot"])).is_ok());
        assert!(c.admit("TransactWriteItems", &tx(&["hot"])).is_ok());
        let Err(refusal) = c.admit("TransactWriteItems", &tx(&["hot", "cold"])) else { panic!("not throttled") };
        assert_eq!(refusal.body["CancellationReasons"][0]["Code"], "ThrottlingError");
        assert!(c.admit("TransactWriteItems", &tx(&["cold"])).is_ok(), "other items are not");
    }

    #[test]
    fn an_item_collection_shares_one_partitions_limit_when_asked() {
        let c = shim(Settings { partition_wcu_per_second: 8.0, ..Settings::default() });
        let put = |sk: &str| json!({"TransactItems": [{"Put": {"TableName": "L", "Item": {"pk": {"S": "hot"}, "sk": {"S": sk}}}}]});
        // 2 units a transactional item, twice for its one LSI: 4 a write, 8 a second.
        assert!(c.admit("TransactWriteItems", &put("a")).is_ok());
        assert!(c.admit("TransactWriteItems", &put("b")).is_ok());
        assert!(c.admit("TransactWriteItems", &put("c")).is_err(), "the collection's third write in the same second");
        let other = json!({"TransactItems": [{"Put": {"TableName": "L", "Item": {"pk": {"S": "cold"}, "sk": {"S": "a"}}}}]});
        assert!(c.admit("TransactWriteItems", &other).is_ok(), "another partition key");
        assert!(c.admit("TransactWriteItems", &tx(&["x"])).is_ok(), "a table without LSIs");
    }

    #[test]
    fn a_global_index_misses_fresh_writes_and_off_changes_nothing() {
        let c = shim(Settings { gsi_lag_ms: 60_000, ..Settings::default() });
        // Admitted and refused by DynamoDB (a condition): it changed nothing, nothing lags.
        let _ = c.admit("TransactWriteItems", &tx(&["old"]));
        let _ = c.admit("TransactWriteItems", &tx(&["new"]));
        c.applied("TransactWriteItems", &tx(&["new"]));
        let answer = json!({"Items": [{"pk": {"S": "new"}}, {"pk": {"S": "old"}}], "Count": 2}).to_string();
        let query = json!({"TableName": "T", "IndexName": "g"});
        let out: Value = serde_json::from_slice(&c.lag_query(&query, answer.clone().into())).unwrap();
        assert_eq!((out["Count"].clone(), out["Items"][0]["pk"]["S"].clone()), (json!(1), json!("old")));
        let lsi = json!({"TableName": "T", "IndexName": "lsi"});
        assert_eq!(c.lag_query(&lsi, answer.clone().into()), bytes::Bytes::from(answer.clone()), "not a global index");
        c.set(Settings::default());
        assert!(c.admit("TransactWriteItems", &tx(&["new"])).unwrap().is_none());
    }
}
