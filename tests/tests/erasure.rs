//! Erasure (GDPR art. 17), WIP: a user replaced by their pseudonym everywhere, against
//! DynamoDB Local in process. Not yet: the RPC, the fence against events arriving meanwhile,
//! the hooks' redirects after it, the chaos run.

use std::sync::Arc;

use market_domain::admin::AdminRequest;
use market_domain::config::MarketConfig;
use market_domain::ids::{IdempotencyKey, UserId};
use market_domain::money::{Bps, Money};
use market_domain::ports::{BalanceStore, Erased, PolicyStore};
use market_domain::processors::*;
use market_tests::{assert_money_invariants, order, pay, refer, user, TestDeps};

struct FixedKey;

impl ErasureKey for FixedKey {
    fn key(&self) -> KeyFuture<'_> {
        Box::pin(async { Ok(Arc::from(&b"the tests' erasure key, 32+ bytes long"[..])) })
    }
}

fn config() -> MarketConfig {
    MarketConfig {
        holding_period_days: 0,
        min_withdraw_amount: Money::from_minor(1),
        max_active_codes: 10,
        level_bps: vec![Bps::new(500).unwrap()],
        ..MarketConfig::default()
    }
}

async fn erase(d: &TestDeps, who: &UserId, forfeit_balance: bool) -> Result<EraseResult, market_domain::MarketError> {
    let body = EraseRequest { user: who.clone(), forfeit_balance };
    EraseUser(d.clone()).process(AdminRequest { admin: user("dpo"), request_id: "erase-1".into(), body }).await
}

/// Every item of the tables the scenario touched that mentions `id` (a test may Scan).
async fn items_naming(d: &TestDeps, id: &UserId) -> Vec<String> {
    let t = d.store.tables().clone();
    let mut found = Vec::new();
    for table in [&t.policy, &t.stats, &t.codes, &t.ledger, &t.audit, &t.parked] {
        let mut start = None;
        loop {
            let out = d.store.client().scan().table_name(table).set_exclusive_start_key(start).send().await.expect("scan");
            for item in out.items() {
                let text = format!("{item:?}");
                if text.contains(id.as_str()) {
                    found.push(format!("{table}: {text}"));
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
    }
    found
}

#[tokio::test]
async fn an_affiliate_is_replaced_everywhere_and_every_sum_holds() {
    let d = market_tests::deps(config()).await.with_erasure_key(Arc::new(FixedKey));
    let (upline, affiliate, buyer) = (user("up"), user("gone"), user("buyer"));
    refer(&d, &upline, &affiliate).await;
    refer(&d, &affiliate, &buyer).await;
    let (o1, o2) = (order(), order());
    pay(&d, &buyer, &o1, 10_000).await; // affiliate 1 000, upline 500 (level 2)
    pay(&d, &buyer, &o2, 4_000).await; // 400 and 200
    ApplyRefund(d.clone()).process(market_tests::refund_event(&buyer, &o2, "rf-1", 1_000, d.clock.now())).await.expect("refunded");
    let w = WithdrawRequest { caller: affiliate.clone(), amount: Money::from_minor(500), idempotency_key: IdempotencyKey::parse("w-1").unwrap() };
    WithdrawAffiliateReward(d.clone()).process(w).await.expect("withdrawn");
    let before = assert_money_invariants(&d.store, &affiliate).await;
    let upline_before = assert_money_invariants(&d.store, &upline).await;
    assert!(before.available.is_positive());

    // A positive balance is refused unless forfeited.
    assert!(matches!(erase(&d, &affiliate, false).await, Err(market_domain::MarketError::BalanceNotSettled)));
    let done = erase(&d, &affiliate, true).await.expect("erased");
    let p = done.pseudonym.clone();
    assert_eq!(done.forfeited, before.available);

    assert_eq!(items_naming(&d, &affiliate).await, Vec::<String>::new(), "no item holds the id");
    let after = assert_money_invariants(&d.store, &p).await;
    assert_eq!((after.total_earned, after.withdrawn_total, after.invited_count), (before.total_earned, before.withdrawn_total, before.invited_count));
    assert_eq!(after.available, Money::ZERO, "forfeited");
    assert_eq!(after.reversed_total.minor(), before.reversed_total.minor() + before.available.minor(), "the forfeit is a debit adjustment");
    assert_eq!(assert_money_invariants(&d.store, &upline).await.total_earned, upline_before.total_earned, "others' sums untouched");
    assert_eq!(d.store.get_policy(&buyer).await.unwrap().unwrap().inviter, Some(p.clone()), "the referral names the pseudonym");
    assert_eq!(d.store.get_policy(&p).await.unwrap().unwrap().inviter, Some(upline.clone()), "the pseudonym keeps its own inviter");

    // A second erasure finds nothing left to change.
    let again = erase(&d, &affiliate, true).await.expect("erased again");
    assert_eq!((again.pseudonym, again.erased, again.forfeited), (p.clone(), Erased::default(), Money::ZERO));
    assert_eq!(d.store.get_stats(&p).await.unwrap(), after);
}

#[tokio::test]
async fn a_buyer_is_replaced_in_the_commissions_of_their_orders() {
    let d = market_tests::deps(config()).await.with_erasure_key(Arc::new(FixedKey));
    let (upline, affiliate, buyer) = (user("up"), user("aff"), user("gonebuyer"));
    refer(&d, &upline, &affiliate).await;
    refer(&d, &affiliate, &buyer).await;
    pay(&d, &buyer, &order(), 10_000).await;
    let before = (assert_money_invariants(&d.store, &affiliate).await, assert_money_invariants(&d.store, &upline).await);

    let done = erase(&d, &buyer, false).await.expect("a buyer has nothing to forfeit");
    assert_eq!(items_naming(&d, &buyer).await, Vec::<String>::new(), "no item holds the id");
    let after = (assert_money_invariants(&d.store, &affiliate).await, assert_money_invariants(&d.store, &upline).await);
    assert_eq!(after, before, "the earners' figures are untouched");
    let history = d.store.history(&affiliate).await.unwrap();
    assert!(history.iter().any(|h| matches!(h, market_domain::model::HistoryItem::Commission(c) if c.buyer == done.pseudonym)));
}

/// Through the RPC (`cargo lambda watch`, the key from the stack's Secrets Manager, every
/// call held to the function's template policy): refused for a balance, then erased with
/// the forfeit; the same pseudonym again and nothing left to change on a repeat; the
/// pseudonym's export holds the moved ledger.
#[tokio::test]
async fn the_rpc_erases_once_and_the_pseudonyms_export_holds_the_books() {
    use market_proto::v1::EraseUserRequest;
    use market_tests::rpc::Rpc;
    let d = market_tests::deps(config()).await.with_erasure_key(Arc::new(FixedKey));
    let (affiliate, buyer) = (user("rpcgone"), user("buyer"));
    refer(&d, &affiliate, &buyer).await;
    pay(&d, &buyer, &order(), 10_000).await;
    let rpc = Rpc::from_env().unwrap();
    let token = rpc.admin_token("dpo");
    let request = |forfeit_balance| Rpc::authed(EraseUserRequest { user_id: affiliate.to_string(), forfeit_balance }, &token);
    let refused = rpc.admin().erase_user(request(false)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
    let first = rpc.admin().erase_user(request(true)).await.expect("erased").into_inner();
    assert!(first.pseudonym.starts_with("erased-") && first.moved > 0);
    assert_eq!(first.forfeited, 1_000);
    let again = rpc.admin().erase_user(request(true)).await.expect("repeat").into_inner();
    assert_eq!((again.pseudonym.as_str(), again.moved, again.rewritten, again.forfeited), (first.pseudonym.as_str(), 0, 0, 0));
    assert_eq!(items_naming(&d, &affiliate).await, Vec::<String>::new());
    let p = UserId::parse(first.pseudonym).unwrap();
    let stats = assert_money_invariants(&d.store, &p).await;
    assert_eq!((stats.total_earned.minor(), stats.available.minor()), (1_000, 0));
    let mut out = Vec::new();
    market_client::export::export_user_data(&rpc, &token, p.as_str(), &mut out).await.expect("export");
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let ledger = doc["records"].as_array().unwrap().iter().filter(|r| r["section"] == "ledger").count();
    assert!(ledger >= 3, "the reward, its commission, the forfeit: {doc}");
}

/// The fence: while an erasure moves a user's items (their policy and statistics carry
/// `erasing`), every write of them is refused as `Contention` (a hook's message comes back
/// later, an RPC says UNAVAILABLE) and changes nothing; the erasure then moves what is there.
#[tokio::test]
async fn writes_of_a_user_being_erased_are_refused_until_it_is_done() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let d = market_tests::deps(config()).await.with_erasure_key(Arc::new(FixedKey));
    let (affiliate, buyer) = (user("fenced"), user("buyer"));
    refer(&d, &affiliate, &buyer).await;
    pay(&d, &buyer, &order(), 10_000).await;
    let before = assert_money_invariants(&d.store, &affiliate).await;
    // As an erasure's first step leaves them.
    let t = d.store.tables().clone();
    for (table, k) in [(&t.stats, affiliate.to_string()), (&t.policy, buyer.to_string())] {
        d.store
            .client()
            .update_item()
            .table_name(table)
            .key("user_id", AttributeValue::S(k))
            .update_expression("SET erasing = :p")
            .expression_attribute_values(":p", AttributeValue::S("erased-test".into()))
            .send()
            .await
            .expect("fence");
    }
    let ev = market_tests::reward_event(&buyer, &affiliate, 100, market_domain::policy::TriggerLimit::Unlimited);
    assert!(matches!(ApplyReward(d.clone()).process(ev).await, Err(market_domain::MarketError::Contention)), "a reward waits");
    let w = WithdrawRequest { caller: affiliate.clone(), amount: Money::from_minor(10), idempotency_key: IdempotencyKey::parse("w-f").unwrap() };
    assert!(matches!(WithdrawAffiliateReward(d.clone()).process(w).await, Err(market_domain::MarketError::Contention)), "a withdrawal waits");
    let mut during = d.store.get_stats(&affiliate).await.unwrap();
    during.user_id = affiliate.clone();
    assert_eq!((during.total_earned, during.withdrawn_total), (before.total_earned, before.withdrawn_total), "nothing changed");

    let done = erase(&d, &affiliate, true).await.expect("erased");
    assert_eq!(items_naming(&d, &affiliate).await, Vec::<String>::new());
    let after = assert_money_invariants(&d.store, &done.pseudonym).await;
    assert_eq!(after.total_earned, before.total_earned);
    let main = d.store.client().get_item().table_name(&t.stats).key("user_id", AttributeValue::S(done.pseudonym.to_string())).send().await.unwrap().item.expect("moved");
    assert!(!main.contains_key("erasing"), "the fence goes with the move: the pseudonym's items are writable");
}

/// After an erasure, an event naming the erased buyer by their id applies to the pseudonym's
/// records (the hooks look an unknown buyer up under their pseudonym): a later order earns
/// the inviter's reward, a refund of an order from before the erasure reverses the right
/// commission, and still no item holds the id.
#[tokio::test]
async fn events_naming_an_erased_buyer_apply_to_the_pseudonyms_records() {
    let d = market_tests::deps(config()).await.with_erasure_key(Arc::new(FixedKey));
    let (affiliate, buyer) = (user("aff"), user("erasedbuyer"));
    refer(&d, &affiliate, &buyer).await;
    let before = order();
    pay(&d, &buyer, &before, 10_000).await; // 1 000
    let p = erase(&d, &buyer, false).await.expect("erased").pseudonym;

    let after = order();
    pay(&d, &buyer, &after, 5_000).await; // 500 more, decided for the pseudonym
    let refund = market_tests::refund_event(&buyer, &before, "rf-late", 10_000, d.clock.now());
    let refunded = ApplyRefund(d.clone()).process(refund).await.expect("refunded");
    assert!(matches!(refunded, RefundResult::Applied { .. }), "{refunded:?}");
    let stats = assert_money_invariants(&d.store, &affiliate).await;
    assert_eq!((stats.total_earned.minor(), stats.reversed_total.minor(), stats.rewarded_orders), (1_500, 1_000, 2));
    let history = d.store.history(&affiliate).await.unwrap();
    assert!(history.iter().all(|h| !matches!(h, market_domain::model::HistoryItem::Commission(c) if c.buyer != p)), "every commission names the pseudonym");
    assert_eq!(d.store.get_policy(&p).await.unwrap().unwrap().rewards_triggered, 2);
    assert_eq!(items_naming(&d, &buyer).await, Vec::<String>::new(), "no item holds the id");
}

/// The same through the platform's path: an `order.paid` for the erased buyer's id, from
/// RabbitMQ through the bridge and the `on-order-paid` function (which reads the erasure key
/// from Secrets Manager, held to its template policy), is rewarded on the pseudonym.
#[tokio::test]
async fn an_order_of_an_erased_buyer_from_rabbitmq_is_rewarded_on_the_pseudonym() {
    use market_tests::amqp::{eventually, Publisher};
    let d = market_tests::deps(config()).await.with_erasure_key(Arc::new(FixedKey));
    let (affiliate, buyer) = (user("aff"), user("erasedbuyer"));
    refer(&d, &affiliate, &buyer).await;
    // Erased through the RPC: the functions' key (the stack's secret), not the tests' own.
    let rpc = market_tests::rpc::Rpc::from_env().unwrap();
    let request = market_proto::v1::EraseUserRequest { user_id: buyer.to_string(), forfeit_balance: false };
    let erased = rpc.admin().erase_user(market_tests::rpc::Rpc::authed(request, &rpc.admin_token("dpo"))).await.expect("erased").into_inner();
    let p = UserId::parse(erased.pseudonym).unwrap();
    let publisher = Publisher::connect().await;
    let (event, o) = (format!("ev-{}", order()), order());
    publisher.order_paid(&event, o.as_str(), buyer.as_str(), 2_000).await;
    eventually("the order rewarded", 120, || async { d.store.get_stats(&affiliate).await.unwrap().rewarded_orders == 1 }).await;
    let history = d.store.history(&affiliate).await.unwrap();
    assert!(history.iter().any(|h| matches!(h, market_domain::model::HistoryItem::Commission(c) if c.buyer == p && c.order_id == o)));
    assert_eq!(items_naming(&d, &buyer).await, Vec::<String>::new(), "no item holds the id");
}
