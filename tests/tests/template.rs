//! The code's view of the tables agrees with the tables the template defines (the local
//! stack creates them from infra/template.yaml).

use market_storage::tables::{attr, ACTIVE_BY_OWNER_INDEX, DUE_BY_DAY_INDEX, EXPIRING_BY_DAY_INDEX, HELD_FOR_REVIEW_INDEX, LEDGER_BY_TIME_INDEX, PENDING_BY_MATURITY_INDEX};

fn keys(schema: &[aws_sdk_dynamodb::types::KeySchemaElement]) -> Vec<String> {
    schema.iter().map(|k| k.attribute_name().to_owned()).collect()
}

#[tokio::test]
async fn tables_have_the_keys_and_indexes_the_code_uses() {
    let store = market_tests::store().await;
    let t = store.tables().clone();
    let describe = |name: String| {
        let client = store.client().clone();
        async move { client.describe_table().table_name(name).send().await.unwrap().table.unwrap() }
    };
    assert_eq!(keys(describe(t.policy).await.key_schema()), [attr::USER_ID]);
    assert_eq!(keys(describe(t.stats).await.key_schema()), [attr::USER_ID]);

    let codes = describe(t.codes).await;
    assert_eq!(keys(codes.key_schema()), [attr::CODE]);
    let gsi = codes.global_secondary_indexes().iter().find(|i| i.index_name() == Some(ACTIVE_BY_OWNER_INDEX)).expect("GSI");
    assert_eq!(keys(gsi.key_schema()), [attr::ACTIVE_OWNER, "created_at"]);

    let ledger = describe(t.ledger).await;
    assert_eq!(keys(ledger.key_schema()), [attr::USER_ID, attr::ENTRY_KEY]);
    let lsi = ledger.local_secondary_indexes().iter().find(|i| i.index_name() == Some(LEDGER_BY_TIME_INDEX)).expect("LSI");
    assert_eq!(keys(lsi.key_schema()), [attr::USER_ID, attr::AT_KEY]);
    let pending = ledger.local_secondary_indexes().iter().find(|i| i.index_name() == Some(PENDING_BY_MATURITY_INDEX)).expect("LSI");
    assert_eq!(keys(pending.key_schema()), [attr::USER_ID, attr::PENDING_UNTIL]);
    let due = ledger.global_secondary_indexes().iter().find(|i| i.index_name() == Some(DUE_BY_DAY_INDEX)).expect("GSI");
    assert_eq!(keys(due.key_schema()), [attr::DUE_DAY, attr::PENDING_UNTIL]);
    let held = ledger.global_secondary_indexes().iter().find(|i| i.index_name() == Some(HELD_FOR_REVIEW_INDEX)).expect("GSI");
    assert_eq!(keys(held.key_schema()), [attr::REVIEW_QUEUE, attr::HELD_KEY]);

    let audit = describe(t.audit).await;
    assert_eq!(keys(audit.key_schema()), [attr::SUBJECT, attr::AT_KEY]);

    let parked = describe(t.parked).await;
    assert_eq!(keys(parked.key_schema()), [attr::USER_ID, attr::EVENT_KEY]);
    let expiring = parked.global_secondary_indexes().iter().find(|i| i.index_name() == Some(EXPIRING_BY_DAY_INDEX)).expect("GSI");
    assert_eq!(keys(expiring.key_schema()), [attr::EXPIRE_DAY, attr::EXPIRES_AT]);

    let outbox = describe(t.outbox).await;
    assert_eq!(keys(outbox.key_schema()), [attr::EVENT_ID]);
    assert!(outbox.stream_specification().is_some_and(|s| s.stream_enabled()), "outbox stream");
}

/// The local event sources are the template's: four SQS hooks, the outbox stream, the
/// maturity schedule and the expiry of waiting events.
#[test]
fn local_event_sources_come_from_the_template() {
    let dir = std::env::var("MARKET_STACK_DIR").expect("MARKET_STACK_DIR: run inside `make test`");
    let sources: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(format!("{dir}/event-sources.json")).unwrap()).unwrap();
    let functions = |kind: &str| -> Vec<String> {
        sources[kind].as_array().unwrap().iter().map(|s| s["function"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(functions("sqs"), ["on-user-registered", "on-order-paid", "process-affiliate-reward", "on-order-refunded"]);
    assert_eq!(functions("streams"), ["publish-market-events"]);
    assert_eq!(functions("schedules"), ["mature-rewards", "expire-waiting-events"]);
    assert_eq!(sources["schedules"][0]["every_seconds"], 300, "rate(5 minutes)");
    assert_eq!(sources["schedules"][1]["every_seconds"], 3600, "rate(1 hour)");
    let stream = &sources["streams"][0];
    assert_eq!(stream["event_names"], serde_json::json!(["INSERT"]));
    assert_eq!(stream["maximum_retry_attempts"], -1);
    assert_eq!(stream["report_batch_item_failures"], true);
}

/// The alarms and the dashboard name only metrics the functions emit (EMF namespace
/// `HeliumMarket`; `market_lambda::metrics::names`), and only resources the template defines.
#[test]
fn alarms_and_dashboard_use_emitted_metrics_and_defined_resources() {
    let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml")).unwrap();
    let emitted = market_lambda::metrics::names::ALL;
    let lines: Vec<&str> = template.lines().collect();
    let mut used = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        // Alarms: `Namespace: HeliumMarket` followed by its `MetricName:`.
        if line.trim() == "Namespace: HeliumMarket" {
            let name = lines.get(i + 1).and_then(|l| l.trim().strip_prefix("MetricName: ")).expect("MetricName after the namespace");
            used.push(name.to_owned());
        }
        // Dashboard: `["HeliumMarket", "<metric>", ...]`.
        for part in line.split("[\"HeliumMarket\", \"").skip(1) {
            used.push(part.split('"').next().unwrap_or_default().to_owned());
        }
    }
    assert!(used.len() >= 8, "the template uses the functions' metrics: {used:?}");
    for name in &used {
        assert!(emitted.contains(&name.as_str()), "{name} is not a metric the functions emit ({emitted:?})");
    }
    // Every `${Name}` / `${Name.Attr}` in the operations section is a resource or parameter.
    let resources: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.trim_end().ends_with(':'))
        .map(|l| l.trim().trim_end_matches(':'))
        .collect();
    let ops = &template[template.find("# ------------------------------------------------------------------ operations").expect("operations section")..];
    for reference in ops.split("${").skip(1).map(|r| r.split(['}', '.']).next().unwrap_or_default()) {
        assert!(reference.starts_with("AWS::") || resources.contains(&reference), "{reference} is not defined in the template");
    }
}

/// No credential is resolved into the functions' configuration at deploy time (issue 26):
/// anyone with `lambda:GetFunctionConfiguration` would read it. The Redis users' passwords
/// are only referenced by the ElastiCache users that need them.
#[test]
fn no_secret_is_resolved_into_a_functions_environment() {
    let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml")).unwrap();
    for (i, line) in template.lines().enumerate() {
        if line.contains("{{resolve:secretsmanager:") || line.contains("{{resolve:ssm-secure:") {
            let owner = template.lines().take(i).filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.trim_end().ends_with(':')).last().unwrap_or_default();
            assert!(owner.trim().starts_with("Redis") && owner.contains("User"), "a dynamic secret reference outside an ElastiCache user, in {owner} (line {})", i + 1);
        }
    }
    assert!(!template.contains("REDIS_AUTH_TOKEN"));
}
