//! The store's transactions against DynamoDB Local: limits, idempotency and invariants
//! under concurrent, real requests.

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use market_domain::code::InviteCode;
use market_domain::config::MarketConfig;
use market_domain::ids::IdempotencyKey;
use market_domain::model::HistoryItem;
use market_domain::model::LedgerEntry;
use market_domain::money::Money;
use market_domain::policy::TriggerLimit;
use market_domain::ports::prelude::*;
use market_domain::ports::{Deactivation, ReferralRejection, RewardOutcome};
use market_domain::processors::*;
use market_domain::MarketError;
use market_domain::time::Clock;
use market_tests::*;

fn config(f: impl FnOnce(&mut MarketConfig)) -> MarketConfig {
    let mut c = MarketConfig::default();
    f(&mut c);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_code_creations_with_limit_five_leave_exactly_five() {
    let d = deps(config(|c| c.max_active_codes = 5)).await;
    let owner = user("owner");
    let create = Arc::new(CreateInviteCode::new(d.clone()));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (create, owner) = (create.clone(), owner.clone());
            tokio::spawn(async move { create.process(owner.into()).await })
        })
        .collect();
    let mut created = Vec::new();
    let mut limited = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(rec) => created.push(rec.code),
            Err(MarketError::CodeLimitReached) => limited += 1,
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!(created.len(), 5);
    assert_eq!(limited, 15);
    let listed = d.store.list_active_codes(&owner).await.unwrap();
    assert_eq!(listed.len(), 5);
    assert_eq!(d.store.get_stats(&owner).await.unwrap().active_codes, 5);
    created.sort();
    created.dedup();
    assert_eq!(created.len(), 5, "codes are unique");
    // Newest first.
    assert!(listed.windows(2).all(|w| w[0].created_at >= w[1].created_at));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_withdrawals_of_ten_from_hundred() {
    let d = deps(config(|c| c.min_withdraw_amount = Money::from_minor(10))).await;
    let me = user("wd");
    fund(&d, &me, 100).await;
    let withdraw = Arc::new(WithdrawAffiliateReward(d.clone()));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (withdraw, me) = (withdraw.clone(), me.clone());
            tokio::spawn(async move {
                withdraw
                    .process(WithdrawRequest {
                        caller: me,
                        amount: Money::from_minor(10),
                        idempotency_key: IdempotencyKey::parse(format!("key-{i}")).unwrap(),
                    })
                    .await
            })
        })
        .collect();
    let (mut ok, mut insufficient) = (Vec::new(), 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => ok.push(r.record),
            Err(MarketError::InsufficientBalance) => insufficient += 1,
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!(ok.len(), 10);
    assert_eq!(insufficient, 10);
    let stats = assert_money_invariants(&d.store, &me).await;
    assert_eq!(stats.available, Money::ZERO);
    assert_eq!(stats.withdrawn_total.minor(), 100);
    // Every balance-after is distinct and exact: 90, 80, ..., 0.
    let mut after: Vec<i64> = ok.iter().map(|r| r.available_after.minor()).collect();
    after.sort();
    assert_eq!(after, (0..10).map(|i| i * 10).collect::<Vec<_>>());
    // One outbox record per successful withdrawal.
    for rec in &ok {
        let item = d
            .store
            .client()
            .get_item()
            .table_name(&d.store.tables().outbox)
            .key("event_id", AttributeValue::S(rec.withdrawal_id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .expect("outbox record");
        assert_eq!(item["routing_key"], AttributeValue::S("affiliate.withdrawn".into()));
        let payload = item["payload"].as_s().unwrap();
        assert!(payload.contains(rec.withdrawal_id.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_reward_applied_five_times_concurrently_counts_once() {
    let d = deps(MarketConfig::default()).await;
    let inviter = user("inv");
    let (buyer, _) = referred_user(&d, &inviter).await;
    let event = reward_event(&buyer, &inviter, 250, TriggerLimit::limited(3).unwrap());
    let apply = Arc::new(ApplyReward(d.clone()));
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let (apply, event) = (apply.clone(), event.clone());
            tokio::spawn(async move { apply.process(event).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap().unwrap());
    }
    assert_eq!(outcomes.iter().filter(|o| **o == RewardOutcome::Applied).count(), 1);
    assert_eq!(outcomes.iter().filter(|o| **o == RewardOutcome::Replayed).count(), 4, "the same event: its first outcome replayed");
    let stats = assert_money_invariants(&d.store, &inviter).await;
    assert_eq!((stats.total_earned.minor(), stats.available.minor(), stats.rewarded_orders), (250, 250, 1));
    assert_eq!(d.store.history(&inviter).await.unwrap().len(), 1, "one commission");
    assert_eq!(d.store.get_policy(&buyer).await.unwrap().unwrap().rewards_triggered, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trigger_limit_holds_under_concurrent_orders() {
    let d = deps(MarketConfig::default()).await;
    let inviter = user("inv");
    let (buyer, _) = referred_user(&d, &inviter).await;
    let apply = Arc::new(ApplyReward(d.clone()));
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let event = reward_event(&buyer, &inviter, 10, TriggerLimit::limited(2).unwrap());
            let apply = apply.clone();
            tokio::spawn(async move { apply.process(event).await })
        })
        .collect();
    let mut applied = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            RewardOutcome::Applied => applied += 1,
            RewardOutcome::LimitReached => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(applied, 2);
    assert_eq!(d.store.get_policy(&buyer).await.unwrap().unwrap().rewards_triggered, 2);
    let stats = assert_money_invariants(&d.store, &inviter).await;
    assert_eq!(stats.rewarded_orders, 2);
}

#[tokio::test]
async fn a_second_referral_for_a_registered_user_is_rejected_and_changes_nothing() {
    let d = deps(MarketConfig::default()).await;
    let (first, second) = (user("first"), user("second"));
    let (buyer, _) = referred_user(&d, &first).await;
    let other_code = CreateInviteCode::new(d.clone()).process(second.clone().into()).await.unwrap();

    let result = RegisterUser(d.clone())
        .process(UserRegistered {
            event_id: event_id(),
            user: buyer.clone(),
            invite_code: Some(other_code.code.to_string().to_lowercase()),
            occurred_at: d.clock.now(),
        })
        .await
        .unwrap();
    assert_eq!(result, RegistrationResult::AlreadyRegistered);
    assert_eq!(d.store.get_policy(&buyer).await.unwrap().unwrap().inviter, Some(first.clone()));
    assert_eq!(d.store.get_stats(&second).await.unwrap().invited_count, 0);
    assert_eq!(d.store.get_stats(&first).await.unwrap().invited_count, 1);
    assert_eq!(d.store.get_code(&other_code.code).await.unwrap().unwrap().registrations, 0);
}

#[tokio::test]
async fn redelivered_registration_changes_nothing() {
    let d = deps(MarketConfig::default()).await;
    let inviter = user("inv");
    let code = CreateInviteCode::new(d.clone()).process(inviter.clone().into()).await.unwrap().code;
    let newcomer = user("new");
    let event = || UserRegistered {
        event_id: event_id(),
        user: newcomer.clone(),
        invite_code: Some(code.to_string()),
        occurred_at: d.clock.now(),
    };
    let register = RegisterUser(d.clone());
    assert_eq!(register.process(event()).await.unwrap(), RegistrationResult::Referred { inviter: inviter.clone() });
    for _ in 0..3 {
        assert_eq!(register.process(event()).await.unwrap(), RegistrationResult::AlreadyRegistered);
    }
    assert_eq!(d.store.get_stats(&inviter).await.unwrap().invited_count, 1);
    assert_eq!(d.store.get_code(&code).await.unwrap().unwrap().registrations, 1);
}

#[tokio::test]
async fn self_referral_is_rejected_and_the_user_is_still_registered() {
    let d = deps(MarketConfig::default()).await;
    let me = user("self");
    let code = CreateInviteCode::new(d.clone()).process(me.clone().into()).await.unwrap().code;
    let result = RegisterUser(d.clone())
        .process(UserRegistered { event_id: event_id(), user: me.clone(), invite_code: Some(code.to_string()), occurred_at: d.clock.now() })
        .await
        .unwrap();
    assert_eq!(result, RegistrationResult::Registered { rejected: Some(ReferralRejection::SelfReferral) });
    let policy = d.store.get_policy(&me).await.unwrap().unwrap();
    assert_eq!(policy.inviter, None);
    assert!(policy.registered_at.is_some());
    assert_eq!(d.store.get_stats(&me).await.unwrap().invited_count, 0);
    assert_eq!(d.store.get_code(&code).await.unwrap().unwrap().registrations, 0);
}

#[tokio::test]
async fn unknown_invalid_and_inactive_codes_register_without_referral() {
    let d = deps(MarketConfig::default()).await;
    let owner = user("owner");
    let code = CreateInviteCode::new(d.clone()).process(owner.clone().into()).await.unwrap().code;
    DeleteInviteCode(d.clone()).process(DeleteInviteCodeRequest { caller: owner.clone(), code: code.to_string() }).await.unwrap();
    let register = RegisterUser(d.clone());
    for (input, reason) in [
        ("ZZZZZZZZ", ReferralRejection::UnknownCode),
        ("not-a-code", ReferralRejection::InvalidCode),
        (code.as_str(), ReferralRejection::InactiveCode),
    ] {
        let newcomer = user("new");
        let result = register
            .process(UserRegistered { event_id: event_id(), user: newcomer.clone(), invite_code: Some(input.into()), occurred_at: d.clock.now() })
            .await
            .unwrap();
        assert_eq!(result, RegistrationResult::Registered { rejected: Some(reason) }, "{input}");
        assert_eq!(d.store.get_policy(&newcomer).await.unwrap().unwrap().inviter, None);
    }
    assert_eq!(d.store.get_stats(&owner).await.unwrap().invited_count, 0);
}

#[tokio::test]
async fn a_disabled_inviter_gets_no_referral_and_cannot_create_codes() {
    let d = deps(MarketConfig::default()).await;
    let owner = user("owner");
    let code = CreateInviteCode::new(d.clone()).process(owner.clone().into()).await.unwrap().code;
    // What the admin RPC will do: switch the owner's affiliate ability off.
    d.store
        .client()
        .update_item()
        .table_name(&d.store.tables().policy)
        .key("user_id", AttributeValue::S(owner.to_string()))
        .update_expression("SET affiliate_enabled = :f")
        .expression_attribute_values(":f", AttributeValue::Bool(false))
        .send()
        .await
        .unwrap();
    let newcomer = user("new");
    let result = RegisterUser(d.clone())
        .process(UserRegistered { event_id: event_id(), user: newcomer.clone(), invite_code: Some(code.to_string()), occurred_at: d.clock.now() })
        .await
        .unwrap();
    assert_eq!(result, RegistrationResult::Registered { rejected: Some(ReferralRejection::InviterDisabled) });
    assert_eq!(d.store.get_stats(&owner).await.unwrap().invited_count, 0);
    assert!(matches!(CreateInviteCode::new(d.clone()).process(owner.into()).await, Err(MarketError::AffiliateDisabled)));
}

#[tokio::test]
async fn deleting_codes_is_owner_only_idempotent_and_frees_a_slot() {
    let d = deps(config(|c| c.max_active_codes = 1)).await;
    let (owner, stranger) = (user("owner"), user("stranger"));
    let create = CreateInviteCode::new(d.clone());
    let code = create.process(owner.clone().into()).await.unwrap().code;
    assert!(matches!(create.process(owner.clone().into()).await, Err(MarketError::CodeLimitReached)));

    let delete = DeleteInviteCode(d.clone());
    let req = |caller: &market_domain::ids::UserId, code: &str| DeleteInviteCodeRequest { caller: caller.clone(), code: code.into() };
    assert!(matches!(delete.process(req(&stranger, code.as_str())).await, Err(MarketError::NotFound)));
    assert!(matches!(delete.process(req(&owner, "ZZZZZZZZ")).await, Err(MarketError::NotFound)));
    assert!(matches!(delete.process(req(&owner, "bad")).await, Err(MarketError::InvalidArgument(_))));
    assert_eq!(delete.process(req(&owner, &code.as_str().to_lowercase())).await.unwrap(), Deactivation::Deactivated);
    assert_eq!(delete.process(req(&owner, code.as_str())).await.unwrap(), Deactivation::AlreadyInactive);
    assert_eq!(d.store.get_stats(&owner).await.unwrap().active_codes, 0);

    // Soft delete: the code stays, inactive, with the TTL attribute set.
    let item = d
        .store
        .client()
        .get_item()
        .table_name(&d.store.tables().codes)
        .key("code", AttributeValue::S(code.to_string()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["active"], AttributeValue::Bool(false));
    assert!(item.contains_key("purge_at"));
    assert!(!item.contains_key("active_owner"));
    assert!(create.process(owner.clone().into()).await.is_ok(), "the slot is free again");
}

#[tokio::test]
async fn expired_codes_are_inactive_and_give_their_slot_back() {
    let clock = ManualClock::starting_now();
    let d = deps(config(|c| {
        c.max_active_codes = 1;
        c.code_expiry_days = 7;
    }))
    .await
    .with_clock(clock.clone());
    let owner = user("owner");
    let create = CreateInviteCode::new(d.clone());
    let old = create.process(owner.clone().into()).await.unwrap();
    assert!(old.expires_at.is_some());
    clock.advance_days(8);

    assert!(ListInviteCodes(d.clone()).process(owner.clone()).await.unwrap().is_empty());
    let newcomer = user("new");
    let result = RegisterUser(d.clone())
        .process(UserRegistered { event_id: event_id(), user: newcomer, invite_code: Some(old.code.to_string()), occurred_at: clock.now() })
        .await
        .unwrap();
    assert_eq!(result, RegistrationResult::Registered { rejected: Some(ReferralRejection::ExpiredCode) });

    let fresh = create.process(owner.clone().into()).await.expect("the expired code's slot is released");
    let listed = ListInviteCodes(d.clone()).process(owner.clone()).await.unwrap();
    assert_eq!(listed.iter().map(|c| &c.code).collect::<Vec<_>>(), vec![&fresh.code]);
    assert_eq!(d.store.get_stats(&owner).await.unwrap().active_codes, 1);
    assert!(!d.store.get_code(&old.code).await.unwrap().unwrap().active);
}

#[tokio::test]
async fn a_code_collision_is_retried_with_a_new_code() {
    let d = deps(MarketConfig::default()).await;
    let first = CreateInviteCode::new(d.clone()).process(user("a").into()).await.unwrap().code;
    let taken = first.clone();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = calls.clone();
    let create = CreateInviteCode::new(d.clone()).with_generator(Arc::new(move || {
        if counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 { taken.clone() } else { InviteCode::generate() }
    }));
    let owner = user("b");
    let rec = create.process(owner.clone().into()).await.unwrap();
    assert_ne!(rec.code, first);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert!(d.store.get_code(&first).await.unwrap().unwrap().owner_id.as_str().starts_with("a-"));
    assert_eq!(d.store.get_stats(&owner).await.unwrap().active_codes, 1, "failed attempts used no slot");
}

#[tokio::test]
async fn withdrawal_retries_return_the_first_result_and_move_nothing_again() {
    let d = deps(config(|c| c.min_withdraw_amount = Money::from_minor(50))).await;
    let me = user("wd");
    fund(&d, &me, 300).await;
    let withdraw = WithdrawAffiliateReward(d.clone());
    let req = |amount: i64, key: &str| WithdrawRequest {
        caller: me.clone(),
        amount: Money::from_minor(amount),
        idempotency_key: IdempotencyKey::parse(key).unwrap(),
    };
    let first = withdraw.process(req(120, "k1")).await.unwrap();
    assert!(!first.replayed);
    assert_eq!(first.record.available_after.minor(), 180);
    let again = withdraw.process(req(120, "k1")).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.record, first.record);
    assert!(matches!(withdraw.process(req(130, "k1")).await, Err(MarketError::IdempotencyConflict)));
    assert!(matches!(withdraw.process(req(49, "k2")).await, Err(MarketError::BelowMinimum)));
    assert!(matches!(withdraw.process(req(181, "k3")).await, Err(MarketError::InsufficientBalance)));
    assert!(matches!(withdraw.process(req(0, "k4")).await, Err(MarketError::InvalidArgument(_))));
    let stats = assert_money_invariants(&d.store, &me).await;
    assert_eq!((stats.available.minor(), stats.withdrawn_total.minor()), (180, 120));
    let withdrawals = d.store.history(&me).await.unwrap().into_iter().filter(|e| matches!(e, HistoryItem::Entry(LedgerEntry::Withdrawal { .. }))).count();
    assert_eq!(withdrawals, 1);
}

#[tokio::test]
async fn order_paid_decides_rewards_by_the_rules() {
    let d = deps(config(|c| c.default_trigger_limit = TriggerLimit::limited(1).unwrap())).await;
    let inviter = user("inv");
    let (buyer, _) = referred_user(&d, &inviter).await;
    let decide = DecideOrderReward(d.clone());
    let paid = |buyer: &market_domain::ids::UserId, amount: i64, currency: &str| OrderPaid {
        event_id: event_id(),
        order_id: order(),
        buyer: buyer.clone(),
        amount: Money::from_minor(amount),
        currency: currency.into(),
        occurred_at: d.clock.now(),
        product_id: None, kind: None,
    };
    // A buyer the market has not seen register: the order waits for the registration.
    assert_eq!(decide.process(paid(&user("nobody"), 1000, "USD")).await.unwrap(), OrderDecision::Waiting);
    assert_eq!(decide.process(paid(&buyer, 1000, "EUR")).await.unwrap(), OrderDecision::NoReward(NoReward::OtherCurrency));
    assert_eq!(decide.process(paid(&buyer, 0, "USD")).await.unwrap(), OrderDecision::NoReward(NoReward::NonPositiveAmount));
    assert_eq!(decide.process(paid(&buyer, 9, "USD")).await.unwrap(), OrderDecision::NoReward(NoReward::ZeroReward));
    let OrderDecision::Reward(event) = decide.process(paid(&buyer, 1999, "USD")).await.unwrap() else { panic!("reward expected") };
    assert_eq!(event.reward.minor(), 199); // floor(1999 * 1000 / 10000)
    assert_eq!(event.inviter, inviter);
    assert_eq!(ApplyReward(d.clone()).process(event).await.unwrap(), RewardOutcome::Applied);
    assert_eq!(decide.process(paid(&buyer, 1000, "USD")).await.unwrap(), OrderDecision::NoReward(NoReward::TriggerLimitReached));
    assert_money_invariants(&d.store, &inviter).await;
}

#[tokio::test]
async fn stats_overview_resolves_the_effective_policy() {
    let d = deps(config(|c| c.max_active_codes = 3)).await;
    let me = user("me");
    let code = CreateInviteCode::new(d.clone()).process(me.clone().into()).await.unwrap();
    let overview = GetAffiliateStats(d.clone()).process(me.clone()).await.unwrap();
    assert_eq!(overview.policy.max_active_codes, 3);
    assert_eq!(overview.codes.len(), 1);
    assert_eq!(overview.codes[0].code, code.code);
    assert_eq!(overview.stats.active_codes, 1);
    // The policy comes in the same batch read as the stats: an override shows.
    d.store
        .client()
        .update_item()
        .table_name(&d.store.tables().policy)
        .key("user_id", AttributeValue::S(me.to_string()))
        .update_expression("SET max_active_codes = :n")
        .expression_attribute_values(":n", AttributeValue::N("7".into()))
        .send()
        .await
        .unwrap();
    let overview = GetAffiliateStats(d.clone()).process(me.clone()).await.unwrap();
    assert_eq!((overview.policy.max_active_codes, overview.stats.active_codes), (7, 1));
    // A user nobody has seen: zero stats, defaults.
    let nobody = GetAffiliateStats(d.clone()).process(user("nobody")).await.unwrap();
    assert_eq!(nobody.stats.total_earned, Money::ZERO);
    assert!(nobody.codes.is_empty());
    assert_eq!(nobody.policy.max_active_codes, 3);
}
