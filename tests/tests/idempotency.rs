//! SPEC §6, invariant 8, on every write path: a request whose transaction commits but whose
//! answer is lost (a proxy in front of DynamoDB Local forwards the request and swallows the
//! response), retried, gets the first outcome and changes nothing twice; and requests with
//! the same key fired at once, while other withdrawals race them, all get the first outcome.

use market_domain::config::MarketConfig;
use market_domain::ids::IdempotencyKey;
use market_domain::money::Money;
use market_domain::ports::prelude::*;
use market_domain::ports::{RewardOutcome, StaticConfig};
use market_domain::policy::TriggerLimit;
use market_domain::processors::*;
use market_domain::MarketError;
use market_tests::proxy::{dynamodb_upstream, store_through, LossyProxy};
use market_tests::{assert_money_invariants, event_id, fund, referred_user, reward_event, user, TestDeps};

fn config() -> MarketConfig {
    MarketConfig { min_withdraw_amount: Money::from_minor(1), ..MarketConfig::default() }
}

/// Deps straight to DynamoDB (set-up and checks), and deps through a lossy proxy.
async fn both() -> (TestDeps, TestDeps, LossyProxy) {
    let proxy = LossyProxy::start(dynamodb_upstream()).await;
    let direct = market_tests::deps(config()).await;
    let lossy = Deps::new(store_through(&proxy).await, StaticConfig(config()));
    (direct, lossy, proxy)
}

/// Runs `call` with every transaction's response lost (it must fail as unavailable, after the
/// SDK's own retries), then again with responses delivered; returns the retry's result.
async fn lost_then_retried<T: std::fmt::Debug, F, Fut>(proxy: &LossyProxy, call: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, MarketError>>,
{
    proxy.lose_responses_to("TransactWriteItems");
    let first = call().await;
    proxy.deliver_all();
    assert!(matches!(first, Err(MarketError::Unavailable(_))), "the caller never saw the answer: {first:?}");
    assert!(proxy.lost() >= 1, "a response was lost");
    call().await.expect("the retry succeeds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_withdrawal_retried_after_a_lost_response_is_the_first_withdrawal() {
    let (d, lossy, proxy) = both().await;
    let me = user("lost-w");
    fund(&d, &me, 1_000).await;
    let request = || {
        let (lossy, caller) = (lossy.clone(), me.clone());
        let amount = Money::from_minor(300);
        async move {
            let idempotency_key = IdempotencyKey::parse("lost-1").unwrap();
            WithdrawAffiliateReward(lossy).process(WithdrawRequest { caller, amount, idempotency_key }).await
        }
    };
    let retried = lost_then_retried(&proxy, request).await;
    assert!(retried.replayed, "the retry replays the committed withdrawal");
    assert_eq!(retried.record.amount.minor(), 300);
    let s = assert_money_invariants(&d.store, &me).await;
    assert_eq!((s.available.minor(), s.withdrawn_total.minor()), (700, 300), "debited once");
    assert!(d.store.outbox_record(retried.record.withdrawal_id.as_str()).await.unwrap().is_some(), "one outbound event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reward_retried_after_a_lost_response_replays_applied() {
    let (d, lossy, proxy) = both().await;
    let inviter = user("lost-r");
    let (buyer, _) = referred_user(&d, &inviter).await;
    let event = reward_event(&buyer, &inviter, 250, TriggerLimit::limited(5).unwrap());
    let outcome = lost_then_retried(&proxy, || {
        let (lossy, event) = (lossy.clone(), event.clone());
        async move { ApplyReward(lossy).process(event).await }
    }).await;
    assert_eq!(outcome, RewardOutcome::Replayed, "the same event: Applied, replayed");
    let s = assert_money_invariants(&d.store, &inviter).await;
    assert_eq!((s.total_earned.minor(), s.rewarded_orders), (250, 1), "rewarded once");
    assert_eq!(d.store.get_policy(&buyer).await.unwrap().unwrap().rewards_triggered, 1, "one trigger counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registration_retried_after_a_lost_response_is_the_first_referral() {
    let (d, lossy, proxy) = both().await;
    let inviter = user("lost-reg");
    let code = CreateInviteCode::new(d.clone()).process(inviter.clone().into()).await.unwrap().code;
    let ev = UserRegistered { event_id: event_id(), user: user("newcomer"), invite_code: Some(code.to_string()), occurred_at: d.clock.now() };
    let result = lost_then_retried(&proxy, || {
        let (lossy, ev) = (lossy.clone(), ev.clone());
        async move { RegisterUser(lossy).process(ev).await }
    }).await;
    assert_eq!(result, RegistrationResult::Referred { inviter: inviter.clone() }, "the first outcome, not AlreadyRegistered");
    // Another event for the same user is a different request: it is told so.
    let other = RegisterUser(d.clone()).process(UserRegistered { event_id: event_id(), ..ev.clone() }).await.unwrap();
    assert_eq!(other, RegistrationResult::AlreadyRegistered);
    assert_eq!(d.store.get_stats(&inviter).await.unwrap().invited_count, 1, "counted once");
    assert_eq!(d.store.get_code(&code).await.unwrap().unwrap().registrations, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_code_creation_retried_with_its_key_after_a_lost_response_is_the_first_code() {
    let (d, lossy, proxy) = both().await;
    let me = user("lost-c");
    let request = || {
        let (lossy, owner) = (lossy.clone(), me.clone());
        async move {
            let idempotency_key = Some(IdempotencyKey::parse("create-1").unwrap());
            CreateInviteCode::new(lossy).process(NewCodeRequest { owner, idempotency_key }).await
        }
    };
    let code = lost_then_retried(&proxy, request).await;
    let active = d.store.list_active_codes(&me).await.unwrap();
    assert_eq!(active.iter().map(|c| &c.code).collect::<Vec<_>>(), vec![&code.code], "one code, the one returned");
    assert_eq!(d.store.get_stats(&me).await.unwrap().active_codes, 1, "one slot taken");
    // Concurrent twins of another key: one code between them.
    let key = IdempotencyKey::parse("create-2").unwrap();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (d, me, key) = (d.clone(), me.clone(), key.clone());
            tokio::spawn(async move { CreateInviteCode::new(d).process(NewCodeRequest { owner: me, idempotency_key: Some(key) }).await })
        })
        .collect();
    let mut codes = std::collections::HashSet::new();
    for t in tasks {
        codes.insert(t.await.unwrap().expect("every twin gets the code").code);
    }
    assert_eq!(codes.len(), 1, "twins share one code");
    assert_eq!(d.store.list_active_codes(&me).await.unwrap().len(), 2);
}
/// Requests with the same idempotency key fired at once, while other withdrawals drain the
/// balance: every twin of a key that succeeded gets that success (replayed), never
/// "insufficient balance" — the refusal path re-reads the key before it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_twins_of_a_withdrawal_all_get_its_first_outcome() {
    let d = market_tests::deps(config()).await;
    for round in 0..20 {
        let me = user("twins");
        market_tests::fund(&d, &me, 300).await;
        let mut tasks = Vec::new();
        for i in 0..16 {
            // Eight twins of key "k" and eight other withdrawals, interleaved.
            let key = if i % 2 == 0 { "k".to_owned() } else { format!("other-{i}") };
            let (d, me) = (d.clone(), me.clone());
            tasks.push(tokio::spawn(async move {
                let request = WithdrawRequest { caller: me, amount: Money::from_minor(100), idempotency_key: IdempotencyKey::parse(&key).unwrap() };
                (key, WithdrawAffiliateReward(d).process(request).await)
            }));
        }
        let mut twins = Vec::new();
        for t in tasks {
            let (key, result) = t.await.unwrap();
            if key == "k" {
                twins.push(result);
            }
        }
        let ok: Vec<_> = twins.iter().filter_map(|r| r.as_ref().ok()).collect();
        if ok.is_empty() {
            // The others took everything first: then every twin was refused alike.
            assert!(twins.iter().all(|r| matches!(r, Err(MarketError::InsufficientBalance))), "round {round}");
        } else {
            assert_eq!(ok.len(), twins.len(), "round {round}: a key that succeeded never answers otherwise: {twins:?}");
            assert_eq!(ok.iter().filter(|r| !r.replayed).count(), 1);
            assert!(ok.iter().all(|r| r.record == ok[0].record));
        }
        let s = assert_money_invariants(&d.store, &me).await;
        assert_eq!(s.available.minor() + s.withdrawn_total.minor(), 300);
    }
}
