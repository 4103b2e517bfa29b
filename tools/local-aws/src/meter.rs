//! What each identity's calls would be billed in AWS, from what the services answered: the
//! DynamoDB capacity units each request consumed (as DynamoDB Local reports them: table and
//! index writes, transactional writes twice; with AWS's minimums where Local reports none: a
//! key a `BatchGetItem` did not find, and a `Query` or `Scan` that read nothing, still cost
//! a read unit, half when eventually consistent) by table, and the SQS and DynamoDB Streams
//! requests, with the receives that returned nothing apart (an idle poller's cost is per
//! hour, not per event). A receive that returned messages, and a `GetRecords` that returned
//! records, is one invocation of the function it feeds. `GET /__local-aws/meter` returns the
//! running totals; a benchmark takes the difference around what it measures (issue 25's
//! cost per million).

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;

/// DynamoDB's data operations, which accept `ReturnConsumedCapacity`, and whether each reads.
pub fn data_operation(op: &str) -> Option<bool> {
    match op {
        "GetItem" | "BatchGetItem" | "Query" | "Scan" | "TransactGetItems" => Some(true),
        "PutItem" | "UpdateItem" | "DeleteItem" | "BatchWriteItem" | "TransactWriteItems" => Some(false),
        _ => None,
    }
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Units {
    pub read_units: f64,
    pub write_units: f64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Bill {
    pub dynamodb_requests: u64,
    pub read_units: f64,
    pub write_units: f64,
    pub by_table: BTreeMap<String, Units>,
    /// Successful data requests that reported no consumed capacity (0 when the meter works).
    pub unmetered: u64,
    /// SQS requests as SQS bills them (one per 64 KB of payload), idle receives apart.
    pub sqs_requests: u64,
    pub sqs_empty_receives: u64,
    pub sqs_receives_with_messages: u64,
    pub sqs_messages_received: u64,
    /// DynamoDB Streams requests (free when a Lambda trigger makes them).
    pub stream_requests: u64,
    pub stream_reads_with_records: u64,
}

#[derive(Default)]
pub struct Meter(Mutex<BTreeMap<String, Bill>>);

/// `ReturnConsumedCapacity: TOTAL` on a data request that did not ask (a caller that did not
/// ask ignores the answer's extra field); `None` when the request already asks.
pub fn ask_for_capacity(op: &str, request: &mut Value) -> Option<()> {
    data_operation(op)?;
    let asked = request.get("ReturnConsumedCapacity").and_then(Value::as_str).is_some_and(|m| m != "NONE");
    if asked {
        return None;
    }
    request.as_object_mut()?.insert("ReturnConsumedCapacity".into(), Value::from("TOTAL"));
    Some(())
}

impl Meter {
    fn with(&self, identity: &str, f: impl FnOnce(&mut Bill)) {
        let mut bills = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(bills.entry(identity.to_owned()).or_default());
    }

    /// A DynamoDB request and its successful answer.
    pub fn dynamodb(&self, identity: &str, op: &str, request: &Value, response: &[u8]) {
        let Some(reads) = data_operation(op) else { return };
        let answer = serde_json::from_slice::<Value>(response).unwrap_or_default();
        let mut entries: Vec<Value> = match answer.get("ConsumedCapacity").cloned() {
            Some(Value::Array(list)) => list,
            Some(one @ Value::Object(_)) => vec![one],
            _ => Vec::new(),
        };
        for entry in &mut entries {
            let table = entry.get("TableName").and_then(Value::as_str).unwrap_or_default().to_owned();
            let reported = entry.get("CapacityUnits").and_then(Value::as_f64).unwrap_or(0.0);
            let units = reported.max(minimum_read(op, &table, request, &answer));
            entry["CapacityUnits"] = Value::from(units);
        }
        self.with(identity, |bill| {
            bill.dynamodb_requests += 1;
            if entries.is_empty() {
                bill.unmetered += 1;
            }
            for entry in entries {
                let units = entry.get("CapacityUnits").and_then(Value::as_f64).unwrap_or(0.0);
                let table = entry.get("TableName").and_then(Value::as_str).unwrap_or("?").to_owned();
                let by_table = bill.by_table.entry(table).or_default();
                if reads {
                    bill.read_units += units;
                    by_table.read_units += units;
                } else {
                    bill.write_units += units;
                    by_table.write_units += units;
                }
            }
        });
    }

    /// An SQS request (`op` without its `AmazonSQS.` prefix) and its successful answer.
    pub fn sqs(&self, identity: &str, op: &str, request_bytes: usize, response: &[u8]) {
        const CHUNK: usize = 64 * 1024;
        let chunks = request_bytes.div_ceil(CHUNK).max(1) as u64;
        let received = (op == "ReceiveMessage").then(|| {
            serde_json::from_slice::<Value>(response)
                .ok()
                .and_then(|v| v.get("Messages").and_then(Value::as_array).map(Vec::len))
                .unwrap_or(0)
        });
        self.with(identity, |bill| match received {
            Some(0) => bill.sqs_empty_receives += 1,
            Some(n) => {
                bill.sqs_requests += chunks;
                bill.sqs_receives_with_messages += 1;
                bill.sqs_messages_received += n as u64;
            }
            None => bill.sqs_requests += chunks,
        });
    }

    /// A DynamoDB Streams request and its successful answer.
    pub fn stream(&self, identity: &str, op: &str, response: &[u8]) {
        let records = op == "GetRecords"
            && serde_json::from_slice::<Value>(response)
                .ok()
                .and_then(|v| v.get("Records").and_then(Value::as_array).map(|r| !r.is_empty()))
                .unwrap_or(false);
        self.with(identity, |bill| {
            bill.stream_requests += 1;
            if records {
                bill.stream_reads_with_records += 1;
            }
        });
    }

    pub fn report(&self) -> Value {
        let bills = self.0.lock().unwrap_or_else(|e| e.into_inner());
        serde_json::to_value(&*bills).unwrap_or_default()
    }
}

/// What AWS charges a read at least where DynamoDB Local reports nothing: every key of a
/// `BatchGetItem` (found or not) and one read of a `Query` or `Scan`; 1 unit strongly
/// consistent, 0.5 eventually (an index query always eventually).
fn minimum_read(op: &str, table: &str, request: &Value, answer: &Value) -> f64 {
    let unit = |consistent: Option<&Value>| if consistent.and_then(Value::as_bool).unwrap_or(false) { 1.0 } else { 0.5 };
    match op {
        "BatchGetItem" => {
            let Some(asked) = request.get("RequestItems").and_then(|r| r.get(table)) else { return 0.0 };
            let count = |v: Option<&Value>| v.and_then(Value::as_array).map_or(0, Vec::len);
            let found = answer.get("Responses").and_then(|r| r.get(table));
            let returned = count(found);
            let unprocessed = count(answer.get("UnprocessedKeys").and_then(|u| u.get(table)).and_then(|t| t.get("Keys")));
            let keys = count(asked.get("Keys"));
            let per_key = unit(asked.get("ConsistentRead"));
            // Local reports the found items' units: the minimum counts every processed key.
            (keys.saturating_sub(unprocessed) as f64 * per_key).max(returned as f64 * per_key)
        }
        "Query" | "Scan" => unit(request.get("ConsistentRead")),
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn units_are_read_or_write_by_operation_and_summed_by_table() {
        let m = Meter::default();
        m.dynamodb("f", "TransactWriteItems", &json!({}), json!({"ConsumedCapacity": [{"TableName": "A", "CapacityUnits": 8.0}, {"TableName": "B", "CapacityUnits": 2.0}]}).to_string().as_bytes());
        m.dynamodb("f", "GetItem", &json!({}), json!({"ConsumedCapacity": {"TableName": "A", "CapacityUnits": 1.0}}).to_string().as_bytes());
        m.dynamodb("f", "Query", &json!({}), b"{}");
        m.dynamodb("f", "DescribeTable", &json!({}), b"{}");
        let r = m.report();
        assert_eq!(r["f"]["write_units"], 10.0);
        assert_eq!(r["f"]["read_units"], 1.0);
        assert_eq!(r["f"]["by_table"]["A"]["write_units"], 8.0);
        assert_eq!(r["f"]["dynamodb_requests"], 3);
        assert_eq!(r["f"]["unmetered"], 1);
    }

    #[test]
    fn reads_cost_at_least_what_aws_charges() {
        let m = Meter::default();
        // 9 keys asked strongly consistent, 1 found: 9 units, not Local's 1.
        let asked = json!({"RequestItems": {"S": {"Keys": vec![json!({}); 9], "ConsistentRead": true}}});
        let answer = json!({"Responses": {"S": [{}]}, "ConsumedCapacity": [{"TableName": "S", "CapacityUnits": 1.0}]});
        m.dynamodb("f", "BatchGetItem", &asked, answer.to_string().as_bytes());
        // An empty query, eventually consistent: half a unit, not 0.
        let answer = json!({"Items": [], "ConsumedCapacity": {"TableName": "L", "CapacityUnits": 0.0}});
        m.dynamodb("f", "Query", &json!({"TableName": "L"}), answer.to_string().as_bytes());
        // A query Local reports more for keeps Local's figure.
        let answer = json!({"ConsumedCapacity": {"TableName": "L", "CapacityUnits": 3.0}});
        m.dynamodb("f", "Query", &json!({"ConsistentRead": true}), answer.to_string().as_bytes());
        let r = m.report();
        assert_eq!(r["f"]["by_table"]["S"]["read_units"], 9.0);
        assert_eq!(r["f"]["by_table"]["L"]["read_units"], 3.5);
    }

    #[test]
    fn idle_receives_are_apart_and_payloads_bill_per_64_kb() {
        let m = Meter::default();
        m.sqs("f", "ReceiveMessage", 100, br#"{"Messages": []}"#);
        m.sqs("f", "ReceiveMessage", 100, b"{}");
        m.sqs("f", "ReceiveMessage", 100, br#"{"Messages": [{}, {}]}"#);
        m.sqs("f", "SendMessageBatch", 70 * 1024, b"{}");
        let r = m.report();
        assert_eq!(r["f"]["sqs_empty_receives"], 2);
        assert_eq!(r["f"]["sqs_receives_with_messages"], 1);
        assert_eq!(r["f"]["sqs_messages_received"], 2);
        assert_eq!(r["f"]["sqs_requests"], 3);
    }

    #[test]
    fn capacity_is_asked_for_only_on_data_requests_that_did_not() {
        let mut asked = json!({"ReturnConsumedCapacity": "INDEXES"});
        assert!(ask_for_capacity("GetItem", &mut asked).is_none());
        let mut silent = json!({"TableName": "A"});
        assert!(ask_for_capacity("PutItem", &mut silent).is_some());
        assert_eq!(silent["ReturnConsumedCapacity"], "TOTAL");
        let mut none = json!({"ReturnConsumedCapacity": "NONE"});
        assert!(ask_for_capacity("Query", &mut none).is_some());
        let mut describe = json!({});
        assert!(ask_for_capacity("DescribeTable", &mut describe).is_none());
    }
}
