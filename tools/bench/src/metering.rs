//! Readings of `local-aws`'s meter around a stretch of end-to-end work, and what one unit of
//! that work consumed across every function it went through, with its cost per million and
//! the rates AWS's limits allow it (issue 25's capacity model).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cost::{PerMillion, Units, ASSUMED_HOOK_MS};

/// Identities whose units are not the measured work's: the tests' and tools' operator key,
/// and the scheduled functions (their cost is per run, not per event).
const NOT_PER_EVENT: [&str; 3] = ["local", "mature-rewards", "expire-waiting-events"];
/// A long-running process in AWS (its host is not metered), not a Lambda function: its SQS
/// requests count, its receives are no invocations.
const BRIDGE_SERVICE: &str = "rabbitmq-bridge-service";
/// AWS's per-partition write limit, and an on-demand table's default write throughput quota.
pub const PARTITION_WCU: f64 = 1000.0;
pub const TABLE_WCU_QUOTA: f64 = 40_000.0;

pub async fn reading() -> Value {
    market_tests::local_aws::meter().await.expect("local-aws's meter: run against a stack that serves functions")
}

/// The billable requests of the functions so far (idle receives apart).
fn activity(reading: &Value) -> f64 {
    let Some(by) = reading.as_object() else { return 0.0 };
    by.iter()
        .filter(|(id, _)| !NOT_PER_EVENT.contains(&id.as_str()))
        .map(|(_, b)| ["dynamodb_requests", "sqs_requests", "stream_reads_with_records"].iter().map(|k| b[*k].as_f64().unwrap_or(0.0)).sum::<f64>())
        .sum()
}

/// A reading once the functions have stopped working (no billable request for 2 s; at most
/// two minutes): what the work set off downstream (the outbox relay, the bridge) is in it.
pub async fn settled() -> Value {
    let started = Instant::now();
    let mut last = reading().await;
    let mut quiet_since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = reading().await;
        if activity(&now) != activity(&last) {
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= Duration::from_secs(2) || started.elapsed() > Duration::from_secs(120) {
            return now;
        }
        last = now;
    }
}

/// Per unit of work (`n` of them between `before` and `after`): each function's units, the
/// total, its cost per million and the rates the limits allow; printed and returned as JSON.
/// `hot_tables`: (table name suffix, partitions) where one unit of work's writes go to one
/// affiliate's keys, spread over that many partitions at most (its sharded items; a
/// time-ordered sort key or an LSI's item collection is one).
pub fn report(title: &str, before: &Value, after: &Value, n: usize, hot_tables: &[(&str, f64)]) -> Value {
    let identities: Vec<String> =
        after.as_object().map(|m| m.keys().filter(|k| !NOT_PER_EVENT.contains(&k.as_str())).cloned().collect()).unwrap_or_default();
    let mut per_identity = Vec::new();
    for id in &identities {
        let mut u = Units::between(before, after, id).per(n as f64);
        if id == BRIDGE_SERVICE {
            u.invocations = 0.0;
        }
        if u.dynamodb_requests > 0.0 || u.sqs_requests > 0.0 || u.invocations > 0.0 {
            per_identity.push((id.clone(), u));
        }
    }
    let total = Units::sum(per_identity.iter().map(|(_, u)| u));
    let cost = PerMillion::of(&total, total.invocations, ASSUMED_HOOK_MS, 0.0);
    println!("\n{title}: per unit of work, measured by local-aws's meter over {n}");
    println!("{:<30} {:>7} {:>7} {:>9} {:>9} {:>12}", "function", "RRU", "WRU", "ddb calls", "SQS req", "invocations");
    for (id, u) in per_identity.iter().chain(std::iter::once(&("total".to_owned(), total.clone()))) {
        println!(
            "{id:<30} {:>7.2} {:>7.2} {:>9.2} {:>9.2} {:>12.3}",
            u.read_units, u.write_units, u.dynamodb_requests, u.sqs_requests, u.invocations
        );
    }
    let mut tables = serde_json::Map::new();
    for (table, (r, w)) in &total.by_table {
        let per_table = if *w > 0.0 { TABLE_WCU_QUOTA / w } else { f64::INFINITY };
        let partitions = hot_tables.iter().find(|(h, _)| table.ends_with(h)).map(|(_, p)| *p);
        let per_partition = partitions.filter(|_| *w > 0.0).map(|p| p * PARTITION_WCU / w);
        println!(
            "  {table:<40} RRU {r:>5.2}  WRU {w:>5.2}  -> {:>7.0}/s at the table's {TABLE_WCU_QUOTA:.0} WCU/s{}",
            per_table,
            per_partition.map(|p| format!(", {p:.0}/s per affiliate")).unwrap_or_default()
        );
        tables.insert(table.clone(), json!({"read_units": r, "write_units": w, "per_second_at_table_quota": per_table, "per_second_per_affiliate_one_partition": per_partition}));
    }
    println!(
        "  USD per million: DynamoDB {:.2}, SQS {:.2}, Lambda requests {:.2}, Lambda duration {:.2} (assumed {ASSUMED_HOOK_MS} ms each), total {:.2}",
        cost.dynamodb,
        cost.sqs,
        cost.lambda_requests,
        cost.lambda_duration,
        cost.total()
    );
    if total.unmetered > 0.0 {
        println!("  ({:.2} DynamoDB calls per unit reported no capacity: the figures are low by those)", total.unmetered);
    }
    json!({
        "n": n,
        "by_function": per_identity.iter().map(|(id, u)| (id.clone(), json!({"read_units": u.read_units, "write_units": u.write_units,
            "dynamodb_requests": u.dynamodb_requests, "sqs_requests": u.sqs_requests, "invocations": u.invocations}))).collect::<serde_json::Map<_, _>>(),
        "total": {"read_units": total.read_units, "write_units": total.write_units, "dynamodb_requests": total.dynamodb_requests,
                  "sqs_requests": total.sqs_requests, "invocations": total.invocations},
        "by_table": tables,
        "usd_per_million": cost.json(),
        "prices": crate::cost::prices_json(),
    })
}
