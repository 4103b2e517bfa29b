//! Erasure (GDPR art. 17): a user replaced by their pseudonym everywhere, against DynamoDB
//! Local — in process, through the RPC, and with events that were decided before the
//! erasure or arrive after it (the chaos run erases buyers mid-run too).

use std::sync::Arc;

use market_domain::admin::AdminRequest;
use market_domain::config::MarketConfig;
use market_domain::ids::{IdempotencyKey, UserId};
use market_domain::money::{Bps, Money};
use market_domain::ports::{BalanceStore, CodeStore, CommissionStore, Erased, PolicyStore, RewardOutcome};
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
    assert_eq!((after.active_codes, d.store.list_active_codes(&p).await.unwrap().len()), (0, 0), "every code deactivated, and counted so");

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
    pay(&d, &buyer, &order(), 1_000).await;
    // Erased through the RPC: the functions' key (the stack's secret), not the tests' own.
    let rpc = market_tests::rpc::Rpc::from_env().unwrap();
    let request = market_proto::v1::EraseUserRequest { user_id: buyer.to_string(), forfeit_balance: false };
    let erased = rpc.admin().erase_user(market_tests::rpc::Rpc::authed(request, &rpc.admin_token("dpo"))).await.expect("erased").into_inner();
    let p = UserId::parse(erased.pseudonym).unwrap();
    let publisher = Publisher::connect().await;
    let (event, o) = (format!("ev-{}", order()), order());
    publisher.order_paid(&event, o.as_str(), buyer.as_str(), 2_000).await;
    eventually("the order rewarded", 120, || async { d.store.get_stats(&affiliate).await.unwrap().rewarded_orders == 2 }).await;
    let history = d.store.history(&affiliate).await.unwrap();
    assert!(history.iter().any(|h| matches!(h, market_domain::model::HistoryItem::Commission(c) if c.buyer == p && c.order_id == o)));
    assert_eq!(items_naming(&d, &buyer).await, Vec::<String>::new(), "no item holds the id");
}

fn paid(buyer: &UserId, o: &market_domain::ids::OrderId, amount: i64, d: &TestDeps) -> market_domain::inbound::OrderPaid {
    market_domain::inbound::OrderPaid {
        event_id: market_tests::event_id(),
        order_id: o.clone(),
        buyer: buyer.clone(),
        amount: Money::from_minor(amount),
        currency: "USD".into(),
        occurred_at: d.clock.now(),
        product_id: None,
        kind: None,
    }
}

/// A reward decided before an erasure of every user it names (the buyer, the inviter, the
/// level-2 earner) and applied after it: its checks see the policies moved (not a trigger
/// limit), so it is applied under their pseudonyms, once, and nothing holds the ids again.
#[tokio::test]
async fn a_reward_decided_before_its_users_are_erased_is_applied_under_their_pseudonyms() {
    let d = market_tests::deps(config()).await.with_erasure_key(Arc::new(FixedKey));
    let (upline, affiliate, buyer) = (user("up"), user("aff"), user("buyer"));
    refer(&d, &upline, &affiliate).await;
    refer(&d, &affiliate, &buyer).await;
    let o = order();
    let OrderDecision::Reward(ev) = DecideOrderReward(d.clone()).process(paid(&buyer, &o, 10_000, &d)).await.unwrap() else { panic!("a reward") };
    assert_eq!(ev.levels.len(), 1);
    let mut pseudonyms = Vec::new();
    for who in [&buyer, &affiliate, &upline] {
        pseudonyms.push(erase(&d, who, true).await.expect("erased").pseudonym);
    }
    // Twice, as a redelivery: applied once.
    assert_eq!(ApplyReward(d.clone()).process(ev.clone()).await.unwrap(), RewardOutcome::Applied);
    assert_eq!(ApplyReward(d.clone()).process(ev).await.unwrap(), RewardOutcome::Replayed);
    let (p_buyer, p_aff, p_up) = (&pseudonyms[0], &pseudonyms[1], &pseudonyms[2]);
    assert_eq!(assert_money_invariants(&d.store, p_aff).await.total_earned.minor(), 1_000);
    assert_eq!(assert_money_invariants(&d.store, p_up).await.total_earned.minor(), 500, "level 2 under the upline's pseudonym");
    assert_eq!(d.store.get_policy(p_buyer).await.unwrap().unwrap().rewards_triggered, 1);
    let history = d.store.history(p_aff).await.unwrap();
    assert!(history.iter().any(|h| matches!(h, market_domain::model::HistoryItem::Commission(c) if c.buyer == *p_buyer && c.order_id == o)));
    for who in [&buyer, &affiliate, &upline] {
        assert_eq!(items_naming(&d, who).await, Vec::<String>::new(), "no item holds {who}");
    }
}

/// A refund that read the buyer's inviter before the inviter's erasure, and an erased user's
/// registration sent again: each lands on the pseudonym's records (the refund reverses the
/// right commission; the registration is "already registered") and writes no id back.
#[tokio::test]
async fn a_late_refund_and_a_registration_sent_again_write_no_erased_id_back() {
    let d = market_tests::deps(config()).await.with_erasure_key(Arc::new(FixedKey));
    let (affiliate, buyer) = (user("aff"), user("buyer"));
    refer(&d, &affiliate, &buyer).await;
    let (o1, o2) = (order(), order());
    pay(&d, &buyer, &o1, 10_000).await;
    let p_aff = erase(&d, &affiliate, true).await.expect("erased").pseudonym;
    // A refund of an order paid before, and one of an order whose reward never came.
    for (o, id, amount) in [(&o1, "rf-1", 4_000), (&o2, "rf-2", 1_000)] {
        let refund = market_tests::refund_event(&buyer, o, id, amount, d.clock.now());
        ApplyRefund(d.clone()).process(refund).await.expect("refunded");
    }
    let stats = assert_money_invariants(&d.store, &p_aff).await;
    assert_eq!((stats.total_earned.minor(), stats.reversed_total.minor()), (1_000, 1_000 + 400), "the forfeit, then 10 % of the refund");
    assert!(d.store.get_commission(&p_aff, &o2).await.unwrap().is_some(), "the early refund waits on the pseudonym's commission");

    let p_buyer = erase(&d, &buyer, false).await.expect("erased").pseudonym;
    for event in [market_tests::event_id(), market_tests::event_id()] {
        let again = market_domain::inbound::UserRegistered { event_id: event, user: buyer.clone(), invite_code: None, occurred_at: d.clock.now() };
        assert_eq!(RegisterUser(d.clone()).process(again).await.unwrap(), RegistrationResult::AlreadyRegistered);
    }
    assert!(d.store.get_policy(&p_buyer).await.unwrap().unwrap().erased_at.is_some());
    for who in [&buyer, &affiliate] {
        assert_eq!(items_naming(&d, who).await, Vec::<String>::new(), "no item holds {who}");
    }
}

/// Retries a step as a queue redelivers a message: on a transient error (a user being
/// erased, a lost race), until a deadline.
async fn until_done<T, F, Fut>(what: &str, step: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, market_domain::MarketError>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match step().await {
            Ok(v) => return v,
            Err(market_domain::MarketError::Contention | market_domain::MarketError::Unavailable(_)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{what}: {e:?}"),
        }
    }
}

/// An affiliate erased while their buyers' orders and refunds keep arriving (each event
/// retried on a transient error as its queue would): every order is rewarded exactly once,
/// every refund reverses exactly its share — before the erasure on the id, after it on the
/// pseudonym — the sums are exact, and no item holds the id afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_affiliate_erased_while_their_buyers_orders_and_refunds_arrive_keeps_exact_books() {
    let d = market_tests::deps(config()).await.with_erasure_key(Arc::new(FixedKey));
    let affiliate = user("busy");
    let mut buyers = Vec::new();
    for _ in 0..6 {
        let b = user("buyer");
        refer(&d, &affiliate, &b).await;
        buyers.push(b);
    }
    let streams = buyers.iter().enumerate().map(|(i, b)| {
        let d = d.clone();
        async move {
            for k in 0..4 {
                let (o, amount) = (order(), 1_000 * (i as i64 + 1) + 100 * k);
                let ev = paid(b, &o, amount, &d);
                let outcome = until_done("order", || async {
                    match DecideOrderReward(d.clone()).process(ev.clone()).await? {
                        OrderDecision::Reward(r) => ApplyReward(d.clone()).process(r).await,
                        other => panic!("no reward: {other:?}"),
                    }
                })
                .await;
                assert_eq!(outcome, RewardOutcome::Applied);
                let refund = market_tests::refund_event(b, &o, &format!("rf-{i}-{k}"), amount / 2, d.clock.now());
                let refunded = until_done("refund", || async { ApplyRefund(d.clone()).process(refund.clone()).await }).await;
                assert!(matches!(refunded, RefundResult::Applied { .. }), "{refunded:?}");
            }
        }
    });
    let erasure = async {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        until_done("erasure", || erase(&d, &affiliate, true)).await
    };
    let (_, done) = tokio::join!(futures::future::join_all(streams), erasure);
    // Whatever it forfeited, every later reward is the pseudonym's too.
    let stats = assert_money_invariants(&d.store, &done.pseudonym).await;
    let amounts: Vec<i64> = (0..6).flat_map(|i| (0..4).map(move |k| 1_000 * (i + 1) + 100 * k)).collect();
    let earned: i64 = amounts.iter().map(|a| a / 10).sum();
    let reversed: i64 = amounts.iter().map(|a| a / 10 - (a - a / 2) / 10).sum();
    assert_eq!(stats.total_earned.minor(), earned);
    assert_eq!(stats.rewarded_orders, 24);
    assert_eq!(stats.reversed_total.minor(), reversed + done.forfeited.minor(), "the refunds' shares and the forfeit");
    assert_eq!(items_naming(&d, &affiliate).await, Vec::<String>::new(), "no item holds the id");
}

/// A user erased before their registration arrived (a late one, or sent again after a
/// registration the market never saw): it registers their pseudonym — through the code, the
/// referral counted for the inviter — and an order of theirs that waited for it, parked under
/// the pseudonym, is decided then; no item holds the id.
#[tokio::test]
async fn a_registration_after_the_erasure_registers_the_pseudonym_and_decides_what_waited() {
    let d = market_tests::deps(config()).await.with_erasure_key(Arc::new(FixedKey));
    let (affiliate, late) = (user("aff"), user("late"));
    let code = CreateInviteCode::new(d.clone()).process(affiliate.clone().into()).await.expect("code").code;
    let p = erase(&d, &late, false).await.expect("erased before registering").pseudonym;
    let o = order();
    let paid = paid(&late, &o, 10_000, &d);
    assert_eq!(DecideOrderReward(d.clone()).process(paid).await.unwrap(), OrderDecision::Waiting, "waits for the registration");
    let reg = market_domain::inbound::UserRegistered { event_id: market_tests::event_id(), user: late.clone(), invite_code: Some(code.to_string()), occurred_at: d.clock.now() };
    assert_eq!(RegisterUser(d.clone()).process(reg).await.unwrap(), RegistrationResult::Referred { inviter: affiliate.clone() });
    let policy = d.store.get_policy(&p).await.unwrap().expect("the pseudonym's policy");
    assert_eq!((policy.inviter.as_ref(), policy.registered_at.is_some(), policy.rewards_triggered), (Some(&affiliate), true, 1));
    let stats = assert_money_invariants(&d.store, &affiliate).await;
    assert_eq!((stats.invited_count, stats.total_earned.minor()), (1, 1_000), "the referral and the waiting order's reward");
    assert_eq!(items_naming(&d, &late).await, Vec::<String>::new(), "no item holds the id");
}

/// The store refuses an erasure once the balance it fenced is positive (a reward landed
/// after the processor's check) and lifts its fence: the user's writes go on.
#[tokio::test]
async fn an_erasure_refused_at_the_fence_leaves_the_user_writable() {
    use market_domain::ports::{Erasure, ErasureStore};
    let d = market_tests::deps(config()).await.with_erasure_key(Arc::new(FixedKey));
    let (affiliate, buyer) = (user("aff"), user("buyer"));
    refer(&d, &affiliate, &buyer).await;
    pay(&d, &buyer, &order(), 10_000).await;
    let p = market_domain::personal_data::pseudonym(b"the tests' erasure key, 32+ bytes long", &affiliate).unwrap();
    let audit = market_domain::audit::AuditRecord::new(&p, d.clock.now(), market_domain::audit::AuditAction::UserErased, market_domain::audit::Actor::Admin(user("dpo")), "r", serde_json::json!({}));
    let erasure = Erasure { user: affiliate.clone(), pseudonym: p.clone(), at: d.clock.now(), audit, refuse_positive_balance: true };
    assert!(matches!(d.store.erase(&erasure).await, Err(market_domain::MarketError::BalanceNotSettled)));
    let w = WithdrawRequest { caller: affiliate.clone(), amount: Money::from_minor(100), idempotency_key: IdempotencyKey::parse("w-after").unwrap() };
    WithdrawAffiliateReward(d.clone()).process(w).await.expect("writable again");
    assert_eq!(pay(&d, &buyer, &order(), 10_000).await, RewardOutcome::Applied);
    assert_eq!(assert_money_invariants(&d.store, &affiliate).await.total_earned.minor(), 2_000);
    let t = d.store.tables().clone();
    let fence = d.store.client().get_item().table_name(&t.stats).key("user_id", aws_sdk_dynamodb::types::AttributeValue::S(p.to_string())).send().await.unwrap();
    assert!(fence.item.is_none(), "no fence of the pseudonym left behind");
}

/// An erasure that stopped half way (here: a commission of the buyer's order already names
/// the pseudonym, as a first attempt leaves it) completes on the next request: its index
/// waits count what the first attempt rewrote.
#[tokio::test]
async fn an_erasure_interrupted_half_way_completes_when_asked_again() {
    let d = market_tests::deps(config()).await.with_erasure_key(Arc::new(FixedKey));
    let (affiliate, buyer) = (user("aff"), user("buyer"));
    refer(&d, &affiliate, &buyer).await;
    let o = order();
    pay(&d, &buyer, &o, 10_000).await;
    let p = market_domain::personal_data::pseudonym(b"the tests' erasure key, 32+ bytes long", &buyer).unwrap();
    let t = d.store.tables().clone();
    let commission = [("user_id", affiliate.to_string()), ("entry_key", format!("commission#{o}"))];
    let mut update = d.store.client().update_item().table_name(&t.ledger).update_expression("SET buyer = :p").expression_attribute_values(":p", aws_sdk_dynamodb::types::AttributeValue::S(p.to_string()));
    for (k, v) in commission {
        update = update.key(k, aws_sdk_dynamodb::types::AttributeValue::S(v));
    }
    update.send().await.expect("as a first attempt left it");
    let done = tokio::time::timeout(std::time::Duration::from_secs(8), erase(&d, &buyer, false)).await.expect("no wait for what is done").expect("erased");
    assert_eq!(done.pseudonym, p);
    assert_eq!(items_naming(&d, &buyer).await, Vec::<String>::new(), "no item holds the id");
}
