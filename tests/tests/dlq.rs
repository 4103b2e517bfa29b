//! The operator's dead-letter tooling (`market-cli dlq list|show|redrive|delete`), run as the
//! real binary against the local stack: a poison message and an order that failed while a
//! dependency was down sit in the `order.paid` DLQ; the list says which is which, the order is
//! redriven after the fix and paid once, the poison is deleted.

use std::process::Command;

use market_domain::config::MarketConfig;
use market_domain::ports::prelude::*;
use market_tests::amqp::{eventually, Publisher};
use serde_json::Value;

/// `market-cli --json <args>` (built with the workspace's binaries by `make test`).
fn cli(args: &[&str]) -> Value {
    let binary = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/debug/market-cli");
    let out = Command::new(binary).arg("--json").args(args).output().expect("market-cli runs (built by `make test`)");
    assert!(out.status.success(), "market-cli {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

fn ours<'a>(list: &'a Value, marker: &str) -> Vec<&'a Value> {
    list["messages"].as_array().into_iter().flatten().filter(|m| m.to_string().contains(marker)).collect()
}

#[tokio::test]
async fn a_dead_letter_is_listed_with_its_reason_redriven_after_the_fix_and_applied_once() {
    market_tests::require_stack();
    let d = market_tests::deps(MarketConfig::default()).await;
    let inviter = market_tests::user("dlq");
    let (buyer, _) = market_tests::referred_user(&d, &inviter).await;
    let marker = format!("dlq-{}", nanoid::nanoid!(8));
    let order = format!("{marker}-order");

    // What SQS leaves in the DLQ after maxReceiveCount failures: an undecodable message, and
    // a valid order whose hook failed while DynamoDB was unreachable.
    let sqs = aws_sdk_sqs::Client::new(&market_storage::aws_config().await);
    let dlq = std::env::var("QUEUE_URL_OrderPaidDLQ").expect("stack env");
    let poison = format!("{{\"event_id\":\"{marker}-poison\",\"amount\":\"lots\"}}");
    let valid = Publisher::order_paid_body(&format!("{marker}-ev"), &order, buyer.as_str(), 1000);
    for body in [&poison, &valid] {
        sqs.send_message().queue_url(&dlq).message_body(body.as_str()).send().await.unwrap();
    }

    let listed = cli(&["dlq", "list", "order-paid"]);
    assert_eq!(listed["queue"], "OrderPaidDLQ");
    let mine = ours(&listed, &marker);
    assert_eq!(mine.len(), 2, "{listed}");
    let poisoned = mine.iter().find(|m| m["reason"].as_str().unwrap_or_default().starts_with("poison:")).expect("the poison is named");
    let failed = mine.iter().find(|m| m["reason"].as_str().unwrap_or_default().starts_with("decodes as order.paid")).expect("the order decodes");
    assert!(failed["receive_count"].as_u64().is_some() && failed["sent_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{failed}");
    let (poison_id, failed_id) = (poisoned["message_id"].as_str().unwrap().to_owned(), failed["message_id"].as_str().unwrap().to_owned());

    let shown = cli(&["dlq", "show", "order-paid", &failed_id]);
    assert_eq!(shown["body"]["order_id"], order.as_str(), "{shown}");

    // The fix is in (DynamoDB is back): redrive the order only; twice, as an operator might.
    let redriven = cli(&["dlq", "redrive", "order-paid", "--id", &failed_id]);
    assert_eq!(redriven["redriven"], serde_json::json!([failed_id]));
    assert_eq!(cli(&["dlq", "redrive", "order-paid", "--id", &failed_id])["redriven"], serde_json::json!([]));
    let store = market_tests::store().await;
    eventually("the redriven order rewarded", 60, || async { store.get_stats(&inviter).await.unwrap().rewarded_orders == 1 }).await;
    let stats = market_tests::assert_money_invariants(&store, &inviter).await;
    assert_eq!(stats.total_earned.minor(), 100, "10 % of 1000, once");

    // The poison stays until deleted; then only other tests' messages remain.
    assert_eq!(ours(&cli(&["dlq", "list", "order-paid"]), &marker).len(), 1);
    assert_eq!(cli(&["dlq", "delete", "order-paid", &poison_id])["deleted"], poison_id.as_str());
    assert!(ours(&cli(&["dlq", "list", "order-paid"]), &marker).is_empty());
}
