//! The functions' metrics, as CloudWatch would read them: the Embedded Metric Format
//! documents the functions write to stdout (captured by the local stack in
//! `logs/functions.log`) during a scenario are valid EMF, carry no user id as a dimension,
//! and count what the scenario did. Its own test binary: nothing else runs meanwhile.

use std::collections::BTreeMap;

use market_domain::config::MarketConfig;
use market_domain::ports::prelude::*;
use market_proto::v1::WithdrawAffiliateRewardRequest;
use market_tests::amqp::{eventually, Publisher};
use market_tests::rpc::Rpc;
use serde_json::Value;

/// CloudWatch's units (EMF `Unit`).
const UNITS: [&str; 27] = [
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes", "Bits", "Kilobits",
    "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second", "Kilobytes/Second", "Megabytes/Second",
    "Gigabytes/Second", "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second",
    "Terabits/Second", "Count/Second", "None",
];

fn log_path() -> String {
    format!("{}/logs/functions.log", std::env::var("MARKET_STACK_DIR").expect("MARKET_STACK_DIR: run inside `make test`"))
}

fn log_len() -> u64 {
    std::fs::metadata(log_path()).map(|m| m.len()).unwrap_or(0)
}

/// The EMF documents written since `from` (a line may carry a prefix before the JSON).
fn documents(from: u64) -> Vec<Value> {
    let bytes = std::fs::read(log_path()).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes[(from as usize).min(bytes.len())..]).into_owned();
    text.lines()
        .filter(|l| l.contains("\"_aws\""))
        .filter_map(|l| l.find('{').and_then(|i| serde_json::from_str::<Value>(&l[i..]).ok()))
        .collect()
}

/// Every rule of the EMF specification this project relies on; returns the violations.
fn emf_violations(doc: &Value) -> Vec<String> {
    let mut bad = Vec::new();
    let aws = &doc["_aws"];
    if !aws["Timestamp"].is_u64() {
        bad.push("_aws.Timestamp is not an integer".into());
    }
    let Some(directives) = aws["CloudWatchMetrics"].as_array().filter(|d| !d.is_empty()) else {
        return vec!["_aws.CloudWatchMetrics missing".into()];
    };
    for d in directives {
        if d["Namespace"].as_str().map_or(true, |n| n.is_empty() || n.len() > 255) {
            bad.push("Namespace missing".into());
        }
        for set in d["Dimensions"].as_array().into_iter().flatten() {
            let keys: Vec<&str> = set.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            if keys.len() > 30 {
                bad.push(format!("{} dimensions", keys.len()));
            }
            for k in keys {
                if !["Function", "Outcome"].contains(&k) {
                    bad.push(format!("dimension {k} (only Function and Outcome)"));
                }
                if !doc[k].is_string() {
                    bad.push(format!("dimension {k} has no string value"));
                }
            }
        }
        for m in d["Metrics"].as_array().into_iter().flatten() {
            let name = m["Name"].as_str().unwrap_or_default();
            if name.is_empty() || !(doc[name].is_number() || doc[name].as_array().is_some_and(|v| v.iter().all(Value::is_number))) {
                bad.push(format!("metric {name:?} has no numeric value"));
            }
            if let Some(unit) = m.get("Unit") {
                if !unit.as_str().is_some_and(|u| UNITS.contains(&u)) {
                    bad.push(format!("metric {name} has unit {unit}"));
                }
            }
        }
    }
    if doc.to_string().contains("eyJ") {
        bad.push("a token in the document".into());
    }
    bad
}

/// Sum of `metric` over the documents whose `Outcome` is `outcome`.
fn total(docs: &[Value], metric: &str, outcome: &str) -> f64 {
    docs.iter().filter(|d| d["Outcome"] == outcome).filter_map(|d| d[metric].as_f64()).sum()
}

#[tokio::test]
async fn the_functions_metrics_are_valid_emf_and_count_what_happened() {
    market_tests::require_stack();
    let from = log_len();
    let d = market_tests::deps(MarketConfig::default()).await;
    let inviter = market_tests::user("emf");
    let (buyer, _) = market_tests::referred_user(&d, &inviter).await;

    // Three paid orders, two of them delivered twice (same event id): 3 applied, 2 replayed.
    let publisher = Publisher::connect().await;
    let events: Vec<(String, String)> = (0..3).map(|i| (format!("emf-ev-{}-{i}", nanoid::nanoid!(6)), format!("emf-order-{}", nanoid::nanoid!(8)))).collect();
    for (event, order) in &events {
        publisher.order_paid(event, order, buyer.as_str(), 1000).await;
    }
    let store = market_tests::store().await;
    eventually("three rewards", 60, || async { store.get_stats(&inviter).await.unwrap().rewarded_orders == 3 }).await;
    for (event, order) in &events[..2] {
        publisher.order_paid(event, order, buyer.as_str(), 1000).await;
    }
    eventually("the two redeliveries' reward documents", 60, || async { total(&documents(from), "Rewards", "replayed") >= 2.0 }).await;

    // Withdrawals through the RPC: one paid, its retry replayed, one refused.
    let rpc = Rpc::from_env().unwrap();
    let token = rpc.token(inviter.as_str());
    let withdraw = |amount: i64, key: &str| {
        let request = Rpc::authed(WithdrawAffiliateRewardRequest { amount, idempotency_key: key.into() }, &token);
        let mut client = rpc.client();
        async move { client.withdraw_affiliate_reward(request).await }
    };
    withdraw(120, "emf-1").await.expect("paid");
    assert!(withdraw(120, "emf-1").await.expect("replayed").into_inner().replayed);
    withdraw(1_000_000, "emf-2").await.expect_err("insufficient");
    eventually("the withdrawal documents", 30, || async { total(&documents(from), "Withdrawals", "insufficient_balance") >= 1.0 }).await;

    let docs = documents(from);
    let violations: BTreeMap<String, Vec<String>> =
        docs.iter().map(|d| (d.to_string(), emf_violations(d))).filter(|(_, v)| !v.is_empty()).collect();
    assert!(violations.is_empty(), "EMF violations: {violations:#?}");

    assert_eq!(total(&docs, "Rewards", "applied"), 3.0);
    assert_eq!(total(&docs, "Rewards", "replayed"), 2.0);
    assert_eq!(docs.iter().filter_map(|d| d["RewardAmount"].as_f64()).sum::<f64>(), 300.0, "10 % of three orders of 1000");
    assert_eq!(total(&docs, "Orders", "reward"), 5.0, "the hook decides every delivery");
    assert_eq!(total(&docs, "Withdrawals", "succeeded"), 1.0);
    assert_eq!(total(&docs, "Withdrawals", "replayed"), 1.0);
    assert_eq!(total(&docs, "Withdrawals", "insufficient_balance"), 1.0);
    assert_eq!(docs.iter().filter_map(|d| d["WithdrawnAmount"].as_f64()).sum::<f64>(), 120.0, "a replay pays nothing");
    assert!(total(&docs, "Requests", "OK") >= 2.0 && total(&docs, "Requests", "FAILED_PRECONDITION") >= 1.0);

    // Configuration reads: from the container's cache or a refresh from Redis (no fallback:
    // Redis is up).
    assert!(total(&docs, "ConfigReads", "cache") + total(&docs, "ConfigReads", "redis") >= 1.0, "config reads counted");
    assert_eq!(docs.iter().filter(|d| d["ConfigReads"].is_number() && d["Outcome"].as_str().is_some_and(|o| o.starts_with("fallback"))).count(), 0);

    // One order followed by its platform event id: the bridge put it on the SQS message
    // (`amqp_message_id`), the order.paid hook's document names it, the hook passed it on to
    // the reward processor, whose document names it too; the ledger has the reward.
    let (event, order) = &events[2];
    let names = |d: &Value| d["AmqpMessageIds"].as_array().is_some_and(|ids| ids.iter().any(|id| id == event.as_str()));
    assert!(docs.iter().any(|d| names(d) && d["Function"] == "on-order-paid" && d["Outcome"] == "reward"), "hook document of {event}");
    assert!(docs.iter().any(|d| names(d) && d["Function"] == "process-affiliate-reward"), "reward processor document of {event}");
    let history = market_tests::store().await.list_history(&inviter, None, 100).await.unwrap().items;
    assert!(format!("{history:?}").contains(order.as_str()), "the ledger has {order}");

    // Every document says which invocation wrote it; the hooks' say which messages.
    assert!(docs.iter().all(|d| d["RequestId"].is_string()), "RequestId on every document");
    let hook = docs.iter().find(|d| d["Orders"].is_number()).expect("an order.paid document");
    assert!(hook["AmqpMessageIds"].as_array().is_some_and(|ids| !ids.is_empty()), "{hook}");
    // No dimension value is a user's id.
    let users = [inviter.as_str(), buyer.as_str()];
    assert!(docs.iter().all(|d| !users.contains(&d["Function"].as_str().unwrap_or_default()) && !users.contains(&d["Outcome"].as_str().unwrap_or_default())));
}
