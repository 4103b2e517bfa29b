//! The admin API end to end through `cargo lambda watch`: the admin claim, policy changes
//! that the next paid order uses, validation, paged ledger and audit trail, and an audit
//! record for every state change the user API, the hooks and the admin API make.
//! (Configuration changes affect every function: tests/admin_config.rs, run on its own.)

use std::collections::HashSet;

use market_domain::config::MarketConfig;
use market_domain::ports::prelude::*;
use market_domain::processors::Processor;
use market_proto::v1::{
    trigger_limit, CreateInviteCodeRequest, DeleteInviteCodeRequest, ExportUserDataRequest, GetMarketConfigRequest, GetUserPolicyRequest,
    ListAuditTrailRequest, ListLedgerRequest, MarketConfig as PbConfig, PolicyOverrides, TriggerLimit, UpdateMarketConfigRequest,
    UpdateUserPolicyRequest, WithdrawAffiliateRewardRequest,
};
use market_tests::amqp::{eventually, Publisher};
use market_tests::rpc::Rpc;
use tonic::Code;

fn id(prefix: &str) -> String {
    format!("{prefix}-{}", nanoid::nanoid!(10))
}

fn limit(n: u32) -> Option<TriggerLimit> {
    Some(TriggerLimit { limit: Some(trigger_limit::Limit::Count(n)) })
}

async fn audit_trail(rpc: &Rpc, admin: &str, user: &str) -> Vec<market_proto::v1::AuditRecord> {
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let request = ListAuditTrailRequest { user_id: user.to_owned(), page_size: 4, page_token: token, market_config: false };
        let page = rpc.admin().list_audit_trail(Rpc::authed(request, admin)).await.unwrap().into_inner();
        all.extend(page.records);
        if page.next_page_token.is_empty() {
            return all;
        }
        token = page.next_page_token;
    }
}

#[tokio::test]
async fn non_admins_get_permission_denied_on_every_admin_rpc() {
    let rpc = Rpc::from_env().unwrap();
    let user = market_tests::user("u");
    for token in [rpc.token(user.as_str()), String::new()] {
        let expected = if token.is_empty() { Code::Unauthenticated } else { Code::PermissionDenied };
        let mut admin = rpc.admin();
        let codes = [
            admin.get_user_policy(Rpc::authed(GetUserPolicyRequest { user_id: user.to_string() }, &token)).await.map(|_| ()),
            admin.update_user_policy(Rpc::authed(UpdateUserPolicyRequest { user_id: user.to_string(), overrides: None, update: vec!["commission_bps".into()] }, &token)).await.map(|_| ()),
            admin.get_market_config(Rpc::authed(GetMarketConfigRequest {}, &token)).await.map(|_| ()),
            admin.update_market_config(Rpc::authed(UpdateMarketConfigRequest { config: None, update: vec!["enabled".into()] }, &token)).await.map(|_| ()),
            admin.list_ledger(Rpc::authed(ListLedgerRequest { user_id: user.to_string(), page_size: 0, page_token: String::new() }, &token)).await.map(|_| ()),
            admin.list_audit_trail(Rpc::authed(ListAuditTrailRequest { user_id: user.to_string(), ..Default::default() }, &token)).await.map(|_| ()),
            admin.export_user_data(Rpc::authed(ExportUserDataRequest { user_id: user.to_string(), page_token: String::new() }, &token)).await.map(|_| ()),
        ];
        for (i, result) in codes.into_iter().enumerate() {
            assert_eq!(result.unwrap_err().code(), expected, "admin rpc #{i}");
        }
    }
    // Nothing was changed by the denied calls.
    let trail = audit_trail(&rpc, &rpc.admin_token("root"), user.as_str()).await;
    assert!(trail.is_empty(), "{trail:?}");
}

#[tokio::test]
async fn an_admins_rate_and_trigger_limit_apply_to_the_next_paid_order() {
    let rpc = Rpc::from_env().unwrap();
    let admin = rpc.admin_token("root");
    let publisher = Publisher::connect().await;
    let (a, b) = (market_tests::user("a"), market_tests::user("b"));
    let code = rpc.client().create_invite_code(Rpc::authed(CreateInviteCodeRequest::default(), &rpc.token(a.as_str()))).await.unwrap().into_inner().code.unwrap().code;
    publisher.user_registered(&id("ev"), b.as_str(), Some(&code)).await;
    let store = market_tests::store().await;
    eventually("B referred", 60, || async { store.get_policy(&b).await.unwrap().and_then(|p| p.inviter).is_some() }).await;

    let update = UpdateUserPolicyRequest {
        user_id: a.to_string(),
        overrides: Some(PolicyOverrides { commission_bps: Some(2500), trigger_limit: limit(2), ..Default::default() }),
        update: vec!["commission_bps".into(), "trigger_limit".into()],
    };
    let view = rpc.admin().update_user_policy(Rpc::authed(update, &admin)).await.unwrap().into_inner();
    let effective = view.effective.unwrap();
    assert_eq!(effective.commission_bps, 2500);

    for _ in 0..3 {
        publisher.order_paid(&id("ev"), &id("order"), b.as_str(), 1000).await;
    }
    eventually("two rewards at 25 %", 60, || async { store.get_stats(&a).await.unwrap().rewarded_orders == 2 }).await;
    // A marker order of another referral, published after the third: once rewarded, the third was seen too.
    let (c, d) = (market_tests::user("c"), market_tests::user("d"));
    let code_c = rpc.client().create_invite_code(Rpc::authed(CreateInviteCodeRequest::default(), &rpc.token(c.as_str()))).await.unwrap().into_inner().code.unwrap().code;
    publisher.user_registered(&id("ev"), d.as_str(), Some(&code_c)).await;
    eventually("D referred", 60, || async { store.get_policy(&d).await.unwrap().and_then(|p| p.inviter).is_some() }).await;
    publisher.order_paid(&id("ev"), &id("order"), d.as_str(), 1000).await;
    eventually("marker", 60, || async { store.get_stats(&c).await.unwrap().rewarded_orders == 1 }).await;
    let stats = market_tests::assert_money_invariants(&store, &a).await;
    assert_eq!((stats.rewarded_orders, stats.total_earned.minor()), (2, 500), "the trigger limit of 2 at 2500 bps");

    // Clearing the rate: back to the global default (the test stack's config: 1000 bps).
    let clear = UpdateUserPolicyRequest { user_id: a.to_string(), overrides: None, update: vec!["commission_bps".into()] };
    let view = rpc.admin().update_user_policy(Rpc::authed(clear, &admin)).await.unwrap().into_inner();
    assert_eq!(view.overrides.unwrap().commission_bps, None);
    assert_eq!(view.effective.unwrap().commission_bps, 1000);
    let read = rpc.admin().get_user_policy(Rpc::authed(GetUserPolicyRequest { user_id: b.to_string() }, &admin)).await.unwrap().into_inner();
    assert_eq!((read.inviter.as_str(), read.rewards_triggered), (a.as_str(), 2));

    let trail = audit_trail(&rpc, &admin, a.as_str()).await;
    let changes: Vec<_> = trail.iter().filter(|r| r.action == "policy_changed").collect();
    assert_eq!(changes.len(), 2);
    assert!(changes.iter().all(|r| r.actor == "admin:root"));
    let newest: serde_json::Value = serde_json::from_str(&changes[0].details_json).unwrap();
    assert_eq!(newest["before"]["commission_bps"], 2500);
    assert_eq!(newest["after"]["commission_bps"], serde_json::Value::Null);
}

#[tokio::test]
async fn invalid_values_are_invalid_argument_and_change_nothing() {
    let rpc = Rpc::from_env().unwrap();
    let admin = rpc.admin_token("root");
    let user = market_tests::user("u");
    let bad_policies = [
        (PolicyOverrides { commission_bps: Some(10_001), ..Default::default() }, "commission_bps"),
        (PolicyOverrides { trigger_limit: limit(0), ..Default::default() }, "trigger_limit"),
        (PolicyOverrides { max_active_codes: Some(0), ..Default::default() }, "max_active_codes"),
        (PolicyOverrides { max_active_codes: Some(51), ..Default::default() }, "max_active_codes"),
        (PolicyOverrides::default(), "no_such_field"),
    ];
    for (overrides, field) in bad_policies {
        let request = UpdateUserPolicyRequest { user_id: user.to_string(), overrides: Some(overrides.clone()), update: vec![field.into()] };
        let status = rpc.admin().update_user_policy(Rpc::authed(request, &admin)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{overrides:?} {field}");
    }
    let empty = UpdateUserPolicyRequest { user_id: user.to_string(), overrides: None, update: vec![] };
    assert_eq!(rpc.admin().update_user_policy(Rpc::authed(empty, &admin)).await.unwrap_err().code(), Code::InvalidArgument);
    assert!(market_tests::store().await.get_policy(&user).await.unwrap().is_none(), "no policy written");

    let before = rpc.admin().get_market_config(Rpc::authed(GetMarketConfigRequest {}, &admin)).await.unwrap().into_inner();
    let bad_configs = [
        (PbConfig { default_commission_bps: 10_001, ..Default::default() }, "default_commission_bps"),
        (PbConfig { default_trigger_limit: limit(0), ..Default::default() }, "default_trigger_limit"),
        (PbConfig { default_trigger_limit: None, ..Default::default() }, "default_trigger_limit"),
        (PbConfig { max_active_codes: 0, ..Default::default() }, "max_active_codes"),
        (PbConfig { min_withdraw_amount: -1, ..Default::default() }, "min_withdraw_amount"),
        (PbConfig { currency: "euro".into(), ..Default::default() }, "currency"),
        (PbConfig { code_retention_days: 0, ..Default::default() }, "code_retention_days"),
    ];
    for (config, field) in bad_configs {
        let request = UpdateMarketConfigRequest { config: Some(config.clone()), update: vec![field.into()] };
        let status = rpc.admin().update_market_config(Rpc::authed(request, &admin)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
    }
    let after = rpc.admin().get_market_config(Rpc::authed(GetMarketConfigRequest {}, &admin)).await.unwrap().into_inner();
    assert_eq!(before, after, "nothing written");
}

#[tokio::test]
async fn ledger_pages_are_complete_and_newest_first() {
    let rpc = Rpc::from_env().unwrap();
    let admin = rpc.admin_token("root");
    let d = market_tests::deps(MarketConfig { min_withdraw_amount: market_domain::money::Money::from_minor(1), ..Default::default() }).await;
    let a = market_tests::user("a");
    let (buyer, _) = market_tests::referred_user(&d, &a).await;
    for amount in [100, 200, 300, 400, 500, 600, 700] {
        let event = market_tests::reward_event(&buyer, &a, amount, market_domain::policy::TriggerLimit::Unlimited);
        market_domain::processors::ApplyReward(d.clone()).process(event).await.unwrap();
    }
    let token = rpc.token(a.as_str());
    for i in 0..16 {
        let request = WithdrawAffiliateRewardRequest { amount: 10 + i, idempotency_key: format!("k{i}") };
        rpc.client().withdraw_affiliate_reward(Rpc::authed(request, &token)).await.unwrap();
    }
    let mut entries = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let request = ListLedgerRequest { user_id: a.to_string(), page_size: 5, page_token };
        let page = rpc.admin().list_ledger(Rpc::authed(request, &admin)).await.unwrap().into_inner();
        assert!(page.entries.len() <= 5);
        entries.extend(page.entries);
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert!(pages >= 5, "23 entries in pages of 5");
    let store = market_tests::store().await;
    let expected = store.history(&a).await.unwrap();
    assert_eq!(entries.len(), 23);
    let now = market_domain::time::Clock::now(&market_domain::time::SystemClock);
    let expected: Vec<_> = expected.iter().filter_map(|i| market_proto::admin::ledger_entry(i, now)).collect();
    assert_eq!(entries, expected, "same entries, same order");
    let times: Vec<i64> = entries
        .iter()
        .map(|e| match e.entry.as_ref().unwrap() {
            market_proto::v1::ledger_entry::Entry::Reward(r) => r.at.unwrap().seconds * 1000 + i64::from(r.at.unwrap().nanos / 1_000_000),
            market_proto::v1::ledger_entry::Entry::Withdrawal(w) => w.at.unwrap().seconds * 1000 + i64::from(w.at.unwrap().nanos / 1_000_000),
            other => panic!("unexpected entry {other:?}"),
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");

    // A token is bound to its listing: another user's, or garbage, is INVALID_ARGUMENT.
    let first = rpc.admin().list_ledger(Rpc::authed(ListLedgerRequest { user_id: a.to_string(), page_size: 5, page_token: String::new() }, &admin)).await.unwrap().into_inner();
    let other = market_tests::user("other");
    for (user, token) in [(other.to_string(), first.next_page_token.clone()), (a.to_string(), "garbage".into())] {
        let request = ListLedgerRequest { user_id: user, page_size: 5, page_token: token };
        assert_eq!(rpc.admin().list_ledger(Rpc::authed(request, &admin)).await.unwrap_err().code(), Code::InvalidArgument);
    }
    let too_big = ListLedgerRequest { user_id: a.to_string(), page_size: 101, page_token: String::new() };
    assert_eq!(rpc.admin().list_ledger(Rpc::authed(too_big, &admin)).await.unwrap_err().code(), Code::InvalidArgument);
}

#[tokio::test]
async fn every_state_change_is_in_the_audit_trail_with_its_actor() {
    let rpc = Rpc::from_env().unwrap();
    let admin = rpc.admin_token("root");
    let publisher = Publisher::connect().await;
    let store = market_tests::store().await;
    let (a, b, c) = (market_tests::user("a"), market_tests::user("b"), market_tests::user("c"));
    let token = rpc.token(a.as_str());
    let first = rpc.client().create_invite_code(Rpc::authed(CreateInviteCodeRequest::default(), &token)).await.unwrap().into_inner().code.unwrap().code;
    let second = rpc.client().create_invite_code(Rpc::authed(CreateInviteCodeRequest::default(), &token)).await.unwrap().into_inner().code.unwrap().code;
    rpc.client().delete_invite_code(Rpc::authed(DeleteInviteCodeRequest { code: second.clone() }, &token)).await.unwrap();

    let (event_b, event_c) = (id("ev"), id("ev"));
    publisher.user_registered(&event_b, b.as_str(), Some(&first)).await;
    publisher.user_registered(&event_c, c.as_str(), Some(&second)).await; // deactivated: rejected
    eventually("registrations", 60, || async {
        let mut all = true;
        for u in [&b, &c] {
            all &= store.get_policy(u).await.unwrap().is_some_and(|p| p.registered_at.is_some());
        }
        all
    })
    .await;
    let order_event = id("ev");
    publisher.order_paid(&order_event, &id("order"), b.as_str(), 5000).await;
    eventually("reward", 60, || async { store.get_stats(&a).await.unwrap().rewarded_orders == 1 }).await;
    let withdrawal = rpc
        .client()
        .withdraw_affiliate_reward(Rpc::authed(WithdrawAffiliateRewardRequest { amount: 100, idempotency_key: "w1".into() }, &token))
        .await
        .unwrap()
        .into_inner()
        .withdrawal_id;
    let disable = UpdateUserPolicyRequest {
        user_id: a.to_string(),
        overrides: Some(PolicyOverrides { affiliate_enabled: Some(false), ..Default::default() }),
        update: vec!["affiliate_enabled".into()],
    };
    rpc.admin().update_user_policy(Rpc::authed(disable, &admin)).await.unwrap();

    let trail = audit_trail(&rpc, &admin, a.as_str()).await;
    let seen: Vec<(&str, &str, &str)> = trail.iter().map(|r| (r.action.as_str(), r.actor.as_str(), r.request_id.as_str())).collect();
    let user_a = format!("user:{a}");
    for expected in [
        ("code_created", user_a.as_str(), first.as_str()),
        ("code_created", user_a.as_str(), second.as_str()),
        ("code_deactivated", user_a.as_str(), second.as_str()),
        ("referral_gained", "system:auth/user.registered", event_b.as_str()),
        ("reward_earned", "system:shop/order.paid", order_event.as_str()),
        ("withdrawal", user_a.as_str(), withdrawal.as_str()),
    ] {
        assert!(seen.contains(&expected), "{expected:?} missing from {seen:?}");
    }
    assert!(seen.iter().any(|(action, actor, _)| *action == "policy_changed" && *actor == "admin:root"));
    assert_eq!(trail.len(), 7, "nothing else: {seen:?}");
    let times: Vec<_> = trail.iter().map(|r| r.at.unwrap()).collect();
    assert!(times.windows(2).all(|w| (w[0].seconds, w[0].nanos) >= (w[1].seconds, w[1].nanos)), "newest first");

    let b_trail = audit_trail(&rpc, &admin, b.as_str()).await;
    assert_eq!(b_trail.len(), 1);
    assert_eq!((b_trail[0].action.as_str(), b_trail[0].request_id.as_str()), ("referral_recorded", event_b.as_str()));
    let c_trail = audit_trail(&rpc, &admin, c.as_str()).await;
    assert_eq!(c_trail.len(), 1);
    assert_eq!(c_trail[0].action, "referral_rejected");
    let details: serde_json::Value = serde_json::from_str(&c_trail[0].details_json).unwrap();
    assert_eq!(details["reason"], "inactive_code");
    let distinct: HashSet<_> = trail.iter().map(|r| (r.action.clone(), r.request_id.clone())).collect();
    assert_eq!(distinct.len(), trail.len(), "no duplicates");
}
