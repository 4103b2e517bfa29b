//! Personal-data export (GDPR art. 15) end to end: a scenario through the processors the
//! hooks and RPCs run, then `ExportUserData` through `cargo lambda watch` (every page, as
//! `market-cli export` writes it) against what the tables hold, read directly.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use market_domain::config::MarketConfig;
use market_domain::ids::UserId;
use market_domain::money::Money;
use market_domain::ports::PersonalDataStore;
use market_domain::processors::*;
use market_tests::rpc::Rpc;
use market_tests::{order, pay, referred_user, user, TestDeps};

fn config() -> MarketConfig {
    MarketConfig { holding_period_days: 0, min_withdraw_amount: Money::from_minor(1), ..MarketConfig::default() }
}

/// The export of `user` through the RPC, as the CLI writes it, parsed back.
async fn export(user: &UserId) -> Vec<(String, serde_json::Value)> {
    let rpc = Rpc::from_env().unwrap();
    let mut out = Vec::new();
    let count = market_client::export::export_user_data(&rpc, &rpc.admin_token("privacy-admin"), user.as_str(), &mut out).await.expect("exported");
    let doc: serde_json::Value = serde_json::from_slice(&out).expect("one JSON document");
    assert_eq!(doc["user_id"], user.as_str());
    let records = doc["records"].as_array().expect("records").clone();
    assert_eq!(records.len(), count);
    records.into_iter().map(|r| (r["section"].as_str().unwrap().to_owned(), r["record"].clone())).collect()
}

fn by_section(records: &[(String, serde_json::Value)]) -> BTreeMap<String, Vec<serde_json::Value>> {
    let mut m: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for (s, r) in records {
        m.entry(s.clone()).or_default().push(r.clone());
    }
    m
}

/// How many items a partition holds, read from the table itself.
async fn partition_len(d: &TestDeps, table: &str, hash: &str, value: &str) -> usize {
    let out = d
        .store
        .client()
        .query()
        .table_name(table)
        .key_condition_expression("#h = :v")
        .expression_attribute_names("#h", hash)
        .expression_attribute_values(":v", AttributeValue::S(value.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .expect("query");
    assert!(out.last_evaluated_key.is_none(), "one page in this test");
    out.items().len()
}

fn mentions(records: &[(String, serde_json::Value)], id: &UserId) -> bool {
    records.iter().any(|(_, r)| r.to_string().contains(id.as_str()))
}

#[tokio::test]
async fn an_export_holds_every_item_about_the_user_and_nothing_about_another() {
    let d = market_tests::deps(config()).await;
    let affiliate = user("export");
    let (buyer, _) = referred_user(&d, &affiliate).await;
    let (o1, o2) = (order(), order());
    pay(&d, &buyer, &o1, 10_000).await;
    pay(&d, &buyer, &o2, 4_000).await;
    let refund = market_tests::refund_event(&buyer, &o2, "rf-1", 1_000, d.clock.now());
    ApplyRefund(d.clone()).process(refund).await.expect("refunded");
    // A second code, deleted: deactivated codes are the user's data too.
    let spare = CreateInviteCode::new(d.clone()).process(affiliate.clone().into()).await.expect("code").code;
    DeleteInviteCode(d.clone()).process(DeleteInviteCodeRequest { caller: affiliate.clone(), code: spare.as_str().into() }).await.expect("deleted");
    // Somebody else's affiliate business, in the same tables.
    let other = user("other");
    let (other_buyer, _) = referred_user(&d, &other).await;
    pay(&d, &other_buyer, &order(), 7_000).await;

    let t = d.store.tables().clone();
    let records = export(&affiliate).await;
    let sections = by_section(&records);
    let len = |s: &str| sections.get(s).map_or(0, Vec::len);
    assert_eq!(len("ledger"), partition_len(&d, &t.ledger, "user_id", affiliate.as_str()).await, "the whole ledger partition");
    assert_eq!(len("audit_trail"), partition_len(&d, &t.audit, "subject", affiliate.as_str()).await, "the whole trail, the export's own record included");
    assert!(sections["audit_trail"].iter().any(|r| r["action"] == "data_exported" && r["actor"].to_string().contains("privacy-admin")), "the export is audited");
    // Retention: each audit record carries its TTL, AuditRetentionYears after it.
    let years: i64 = std::env::var("AUDIT_RETENTION_YEARS").ok().and_then(|y| y.parse().ok()).unwrap_or(0);
    for r in &sections["audit_trail"] {
        let at_seconds = r["at"].as_i64().expect("at in ms") / 1000;
        let expected = if years > 0 { serde_json::json!(at_seconds + years * 31_557_600) } else { serde_json::Value::Null };
        assert_eq!(r["purge_at"], expected, "the retention of {r}");
    }
    assert_eq!(len("invite_codes"), 2, "both codes, the deleted one too");
    assert!(sections["invite_codes"].iter().any(|c| c["code"] == spare.as_str() && c["active"] == false));
    assert!(len("statistics") >= 1);
    let stats_total: i64 = sections["statistics"].iter().map(|s| s["total_earned"].as_i64().unwrap_or(0)).sum();
    assert_eq!(stats_total, 1_400, "10 % of 10 000 and of 4 000");
    assert_eq!(sections["referrals"].len(), 1);
    assert_eq!(sections["referrals"][0]["user_id"], buyer.as_str());
    assert_eq!(len("purchases_referred"), 0, "the affiliate bought nothing");
    // On the buyer's trail: their referral by this affiliate.
    assert_eq!(len("audit_mentions"), 1);
    assert_eq!((sections["audit_mentions"][0]["subject"].as_str(), sections["audit_mentions"][0]["action"].as_str()), (Some(buyer.as_str()), Some("referral_recorded")));
    assert!(!mentions(&records, &other) && !mentions(&records, &other_buyer), "nothing about another affiliate");
    for (section, record) in &records {
        assert!(record.to_string().contains(affiliate.as_str()), "a {section} record not about the user: {record}");
    }

    // The buyer: their policy and trail, and what the affiliate earned on their orders (each
    // commission with its reward entry).
    let records = export(&buyer).await;
    let sections = by_section(&records);
    assert_eq!(sections["policy"].len(), 1);
    assert_eq!(sections["policy"][0]["inviter"], affiliate.as_str());
    let purchases = &sections["purchases_referred"];
    assert_eq!(purchases.len(), 4, "two commissions and their reward entries: {purchases:?}");
    for o in [&o1, &o2] {
        assert!(purchases.iter().any(|p| p["kind"] == "commission" && p["order_id"] == o.as_str() && p["buyer"] == buyer.as_str()));
        assert!(purchases.iter().any(|p| p["kind"] == "reward" && p["order_id"] == o.as_str() && p["referred_user"] == buyer.as_str()));
    }
    assert!(!sections.contains_key("ledger") && !sections.contains_key("referrals"), "a buyer earns nothing");
    // On the affiliate's trail: the referral gained and each reward earned on their orders.
    let mut named: Vec<&str> = sections["audit_mentions"].iter().map(|r| r["action"].as_str().unwrap()).collect();
    named.sort_unstable();
    assert_eq!(named, ["referral_gained", "reward_earned", "reward_earned"]);
    assert!(sections["audit_mentions"].iter().all(|r| r["subject"] == affiliate.as_str() && r["about"] == buyer.as_str()));
    assert!(!mentions(&records, &other) && !mentions(&records, &other_buyer));
}

#[tokio::test]
async fn an_export_pages_through_every_section_whatever_the_page_size() {
    let d = market_tests::deps(config()).await;
    let affiliate = user("pages");
    for _ in 0..3 {
        let (buyer, _) = referred_user(&d, &affiliate).await;
        pay(&d, &buyer, &order(), 1_000).await;
    }
    let whole = d.store.personal_data(&affiliate, None, 1_000).await.expect("one page");
    assert!(whole.next.is_none());
    let by_section = |records: Vec<market_domain::personal_data::DataRecord>| {
        let mut m: BTreeMap<&'static str, Vec<serde_json::Value>> = BTreeMap::new();
        for r in records {
            m.entry(r.section.as_str()).or_default().push(r.record);
        }
        m
    };
    let whole = by_section(whole.items);
    for size in [1, 2, 5] {
        let (mut all, mut token, mut pages) = (Vec::new(), None, 0);
        loop {
            let page = d.store.personal_data(&affiliate, token.as_deref(), size).await.expect("page");
            let mut per_section: BTreeMap<_, usize> = BTreeMap::new();
            for r in &page.items {
                *per_section.entry(r.section.as_str()).or_default() += 1;
            }
            assert!(per_section.values().all(|n| *n <= size as usize), "{per_section:?}");
            all.extend(page.items);
            pages += 1;
            token = page.next;
            if token.is_none() {
                break;
            }
        }
        assert_eq!(by_section(all), whole, "pages of {size}: each section whole and in order");
        assert!(pages > 1);
    }
    // A token is bound to its user.
    let first = d.store.personal_data(&affiliate, None, 1).await.unwrap().next.unwrap();
    let err = d.store.personal_data(&user("someone"), Some(&first), 1).await.unwrap_err();
    assert!(matches!(err, market_domain::MarketError::InvalidArgument(_)));
}
