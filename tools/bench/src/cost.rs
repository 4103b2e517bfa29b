//! What a unit of work costs in AWS at list prices, from the units `local-aws`'s meter
//! measured (issue 25): DynamoDB request units by table, SQS requests, Lambda invocations.
//! Prices are us-east-1 on-demand list prices (DynamoDB Standard table class, Lambda on
//! arm64 at the template's 128 MB, HTTP API), without free tiers; what a meter cannot see
//! (Lambda's billed duration of a hook, CloudWatch logs and metrics, data transfer, storage,
//! backups) is left out or stated as an assumption where printed.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// USD per million, us-east-1 list prices (checked 2026-12: DynamoDB's on-demand prices as
/// cut in November 2024).
pub mod usd_per_million {
    pub const DYNAMODB_WRITE_UNITS: f64 = 0.625;
    pub const DYNAMODB_READ_UNITS: f64 = 0.125;
    pub const SQS_REQUESTS: f64 = 0.40;
    pub const LAMBDA_REQUESTS: f64 = 0.20;
    pub const HTTP_API_REQUESTS: f64 = 1.00;
}
/// Lambda on arm64, USD per GB-second.
pub const LAMBDA_USD_PER_GB_SECOND: f64 = 0.000_013_333_4;
/// The template's `MemorySize` (Globals), in GB.
pub const LAMBDA_MEMORY_GB: f64 = 128.0 / 1024.0;
/// A hook's billed duration per invocation, assumed (the meter cannot see it; a hook's
/// invocation is a few DynamoDB round trips of ~5 ms in AWS): its share of the cost is
/// printed next to it.
pub const ASSUMED_HOOK_MS: f64 = 30.0;

/// One identity's billable units between two meter readings.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Units {
    pub read_units: f64,
    pub write_units: f64,
    /// table -> (read units, write units)
    pub by_table: BTreeMap<String, (f64, f64)>,
    pub sqs_requests: f64,
    /// Lambda invocations made by an event source (non-empty receives, stream reads with records).
    pub invocations: f64,
    pub dynamodb_requests: f64,
    pub unmetered: f64,
}

impl Units {
    /// The units of `identity` between meter readings `before` and `after`.
    pub fn between(before: &Value, after: &Value, identity: &str) -> Units {
        let num = |v: &Value, k: &str| v[identity][k].as_f64().unwrap_or(0.0);
        let d = |k: &str| num(after, k) - num(before, k);
        let mut by_table = BTreeMap::new();
        if let Some(tables) = after[identity]["by_table"].as_object() {
            for (table, units) in tables {
                let prior = &before[identity]["by_table"][table];
                let delta = |k: &str| units[k].as_f64().unwrap_or(0.0) - prior[k].as_f64().unwrap_or(0.0);
                by_table.insert(table.clone(), (delta("read_units"), delta("write_units")));
            }
        }
        Units {
            read_units: d("read_units"),
            write_units: d("write_units"),
            by_table,
            sqs_requests: d("sqs_requests"),
            invocations: d("sqs_receives_with_messages") + d("stream_reads_with_records"),
            dynamodb_requests: d("dynamodb_requests"),
            unmetered: d("unmetered"),
        }
    }

    /// The sum of several identities' units.
    pub fn sum<'a>(all: impl IntoIterator<Item = &'a Units>) -> Units {
        all.into_iter().fold(Units::default(), |mut acc, u| {
            acc.read_units += u.read_units;
            acc.write_units += u.write_units;
            acc.sqs_requests += u.sqs_requests;
            acc.invocations += u.invocations;
            acc.dynamodb_requests += u.dynamodb_requests;
            acc.unmetered += u.unmetered;
            for (t, (r, w)) in &u.by_table {
                let e = acc.by_table.entry(t.clone()).or_default();
                e.0 += r;
                e.1 += w;
            }
            acc
        })
    }

    /// Per one of `n` units of work.
    pub fn per(&self, n: f64) -> Units {
        let n = n.max(1.0);
        Units {
            read_units: self.read_units / n,
            write_units: self.write_units / n,
            by_table: self.by_table.iter().map(|(t, (r, w))| (t.clone(), (r / n, w / n))).collect(),
            sqs_requests: self.sqs_requests / n,
            invocations: self.invocations / n,
            dynamodb_requests: self.dynamodb_requests / n,
            unmetered: self.unmetered / n,
        }
    }
}

/// The cost of one million units of work, by service, in USD.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PerMillion {
    pub dynamodb: f64,
    pub sqs: f64,
    pub lambda_requests: f64,
    pub lambda_duration: f64,
    pub api_gateway: f64,
}

impl PerMillion {
    /// `units` per unit of work; `lambda_invocations` and `billed_ms` each; `api_requests`
    /// HTTP API requests per unit of work.
    pub fn of(units: &Units, lambda_invocations: f64, billed_ms: f64, api_requests: f64) -> PerMillion {
        use usd_per_million::*;
        PerMillion {
            dynamodb: units.read_units * DYNAMODB_READ_UNITS + units.write_units * DYNAMODB_WRITE_UNITS,
            sqs: units.sqs_requests * SQS_REQUESTS,
            lambda_requests: lambda_invocations * LAMBDA_REQUESTS,
            // Lambda bills duration rounded up to the millisecond.
            lambda_duration: lambda_invocations * billed_ms.ceil() / 1000.0 * LAMBDA_MEMORY_GB * LAMBDA_USD_PER_GB_SECOND * 1e6,
            api_gateway: api_requests * HTTP_API_REQUESTS,
        }
    }

    pub fn total(&self) -> f64 {
        self.dynamodb + self.sqs + self.lambda_requests + self.lambda_duration + self.api_gateway
    }

    pub fn json(&self) -> Value {
        json!({"dynamodb": self.dynamodb, "sqs": self.sqs, "lambda_requests": self.lambda_requests,
               "lambda_duration": self.lambda_duration, "api_gateway": self.api_gateway, "total": self.total()})
    }
}

/// The prices and assumptions behind every figure, for bench.json.
pub fn prices_json() -> Value {
    use usd_per_million::*;
    json!({
        "region": "us-east-1", "currency": "USD", "checked": "2026-12",
        "dynamodb_per_million_write_units": DYNAMODB_WRITE_UNITS, "dynamodb_per_million_read_units": DYNAMODB_READ_UNITS,
        "sqs_per_million_requests": SQS_REQUESTS, "lambda_per_million_requests": LAMBDA_REQUESTS,
        "lambda_per_gb_second_arm64": LAMBDA_USD_PER_GB_SECOND, "lambda_memory_gb": LAMBDA_MEMORY_GB,
        "http_api_per_million_requests": HTTP_API_REQUESTS, "assumed_hook_billed_ms": ASSUMED_HOOK_MS,
        "left_out": "free tiers, CloudWatch logs and metrics, data transfer, storage, backups, the bridge's host",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_between_readings_are_differences_by_identity_and_table() {
        let before = json!({"f": {"read_units": 1.0, "write_units": 4.0, "sqs_requests": 2, "sqs_receives_with_messages": 1,
                                  "by_table": {"A": {"read_units": 1.0, "write_units": 4.0}}}});
        let after = json!({"f": {"read_units": 3.0, "write_units": 14.0, "sqs_requests": 5, "sqs_receives_with_messages": 2,
                                 "stream_reads_with_records": 1,
                                 "by_table": {"A": {"read_units": 1.0, "write_units": 10.0}, "B": {"read_units": 2.0, "write_units": 4.0}}}});
        let u = Units::between(&before, &after, "f");
        assert_eq!((u.read_units, u.write_units, u.sqs_requests, u.invocations), (2.0, 10.0, 3.0, 2.0));
        assert_eq!(u.by_table["A"], (0.0, 6.0));
        assert_eq!(u.by_table["B"], (2.0, 4.0));
        assert_eq!(Units::between(&before, &after, "absent"), Units::default());
    }

    #[test]
    fn a_million_at_list_prices() {
        let units = Units { read_units: 2.0, write_units: 10.0, sqs_requests: 3.0, ..Units::default() };
        let cost = PerMillion::of(&units, 1.0, 9.2, 1.0);
        assert!((cost.dynamodb - (0.25 + 6.25)).abs() < 1e-9);
        assert!((cost.sqs - 1.2).abs() < 1e-9);
        assert!((cost.lambda_requests - 0.2).abs() < 1e-9);
        // 10 ms (rounded up) x 0.125 GB x 1e6 invocations = 1 250 GB-s.
        assert!((cost.lambda_duration - 1250.0 * LAMBDA_USD_PER_GB_SECOND).abs() < 1e-9);
        assert!((cost.total() - (6.5 + 1.2 + 0.2 + 1250.0 * LAMBDA_USD_PER_GB_SECOND + 1.0)).abs() < 1e-9);
    }

    #[test]
    fn per_unit_of_work_divides_everything() {
        let u = Units { write_units: 10.0, by_table: [("A".to_owned(), (2.0, 8.0))].into(), ..Units::default() }.per(4.0);
        assert_eq!(u.write_units, 2.5);
        assert_eq!(u.by_table["A"], (0.5, 2.0));
    }
}
