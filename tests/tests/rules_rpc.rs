//! Reward groups end to end: the admin RPCs through `cargo lambda watch` (gRPC-Web, the
//! template's grants enforced by local-aws), orders through RabbitMQ with the optional
//! `product_id` and `kind`, and what the affiliate sees of it (`GetAffiliateStats.group`,
//! `ListRewardHistory.rule`).

use market_domain::ports::prelude::*;
use market_proto::v1::{
    payout, rule_condition, trigger_limit, CreateInviteCodeRequest, GetAffiliateStatsRequest, ListRewardGroupsRequest, ListRewardHistoryRequest, Payout,
    PolicyOverrides, PutRewardGroupRequest, RewardGroup, RewardModifier, RewardRules, RuleCondition, SignUpBounty, TriggerLimit, UpdateUserPolicyRequest,
};
use market_tests::amqp::{eventually, Publisher};
use market_tests::rpc::Rpc;
use tonic::Code;

fn id(prefix: &str) -> String {
    format!("{prefix}-{}", nanoid::nanoid!(10))
}

fn pct(bps: u32) -> Option<Payout> {
    Some(Payout { payout: Some(payout::Payout::PercentageBps(bps)) })
}

fn rules() -> RewardRules {
    RewardRules {
        payout: pct(1000),
        trigger_limit: Some(TriggerLimit { limit: Some(trigger_limit::Limit::Unlimited(true)) }),
        modifiers: vec![RewardModifier {
            name: "pro".into(),
            when: vec![RuleCondition { condition: Some(rule_condition::Condition::ProductIn(market_proto::v1::ProductSet { products: vec!["pro".into()] })) }],
            payout: pct(3000),
        }],
        bounty: Some(SignUpBounty { amount: 500, on: market_proto::v1::BountyTrigger::FirstPayment.into() }),
        ..Default::default()
    }
}

#[tokio::test]
async fn an_admin_defines_a_group_moves_an_affiliate_and_the_affiliate_sees_the_rule_that_paid() {
    let rpc = Rpc::from_env().unwrap();
    let admin = rpc.admin_token("root");
    let name = format!("e2e-{}", nanoid::nanoid!(8, &nanoid::alphabet::SAFE[2..]).to_lowercase());
    let group = RewardGroup { name: name.clone(), rules: Some(rules()), description: "pro partners".into(), ..Default::default() };

    // Defined once; a second definition over version 0 is ABORTED; non-admins are refused.
    let put = |expected_version| PutRewardGroupRequest { group: Some(group.clone()), expected_version };
    let v1 = rpc.admin().put_reward_group(Rpc::authed(put(0), &admin)).await.unwrap().into_inner();
    assert_eq!((v1.version, v1.updated_by.as_str()), (1, "root"));
    assert_eq!(rpc.admin().put_reward_group(Rpc::authed(put(0), &admin)).await.unwrap_err().code(), Code::Aborted);
    let user_token = rpc.token(&id("u"));
    assert_eq!(rpc.admin().put_reward_group(Rpc::authed(put(1), &user_token)).await.unwrap_err().code(), Code::PermissionDenied);
    let mut bad = group.clone();
    bad.rules.as_mut().unwrap().payout = None;
    let refused = rpc.admin().put_reward_group(Rpc::authed(PutRewardGroupRequest { group: Some(bad), expected_version: 1 }, &admin)).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    // The listing (an index: it may lag a moment) shows it, and the default group.
    let listed = || async {
        let groups = rpc.admin().list_reward_groups(Rpc::authed(ListRewardGroupsRequest {}, &admin)).await.unwrap().into_inner().groups;
        groups.iter().any(|g| g.name == name && g.version == 1) && groups.iter().any(|g| g.name == "default")
    };
    eventually("the group listed", 30, listed).await;

    // An affiliate moved into it, a referred user's orders through RabbitMQ.
    let (a, b) = (market_tests::user("a"), market_tests::user("b"));
    let move_a = UpdateUserPolicyRequest {
        user_id: a.to_string(),
        overrides: Some(PolicyOverrides { group: Some(name.clone()), ..Default::default() }),
        update: vec!["group".into()],
    };
    let view = rpc.admin().update_user_policy(Rpc::authed(move_a.clone(), &admin)).await.unwrap().into_inner();
    assert_eq!(view.overrides.unwrap().group.as_deref(), Some(name.as_str()));
    let mut unknown = move_a;
    unknown.overrides.as_mut().unwrap().group = Some("no-such-group".into());
    assert_eq!(rpc.admin().update_user_policy(Rpc::authed(unknown, &admin)).await.unwrap_err().code(), Code::InvalidArgument);

    let a_token = rpc.token(a.as_str());
    let code = rpc.client().create_invite_code(Rpc::authed(CreateInviteCodeRequest::default(), &a_token)).await.unwrap().into_inner().code.unwrap().code;
    let publisher = Publisher::connect().await;
    publisher.user_registered(&id("ev"), b.as_str(), Some(&code)).await;
    let store = market_tests::store().await;
    eventually("B referred", 60, || async { store.get_policy(&b).await.unwrap().and_then(|p| p.inviter).is_some() }).await;
    let (first, pro) = (id("order"), id("order"));
    publisher.publish("shop", "order.paid", &id("m"), &Publisher::order_paid_body_of(&id("ev"), &first, b.as_str(), 2_000, Some("basic"), Some("new"))).await;
    eventually("the first order rewarded", 60, || async { store.get_stats(&a).await.unwrap().rewarded_orders == 1 }).await;
    publisher.publish("shop", "order.paid", &id("m"), &Publisher::order_paid_body_of(&id("ev"), &pro, b.as_str(), 2_000, Some("pro"), Some("renewal"))).await;
    eventually("the pro order rewarded", 60, || async { store.get_stats(&a).await.unwrap().rewarded_orders == 2 }).await;
    let stats = market_tests::assert_money_invariants(&store, &a).await;
    // 10 % of 20.00 + the 5.00 bounty; then 30 % of 20.00.
    assert_eq!((stats.total_earned.minor(), stats.paying_referrals), (700 + 600, 1));

    // The affiliate sees their group and which rule paid what.
    let overview = rpc.client().get_affiliate_stats(Rpc::authed(GetAffiliateStatsRequest {}, &a_token)).await.unwrap().into_inner();
    let mine = overview.group.unwrap();
    assert_eq!((mine.group.as_ref().map(|g| g.name.as_str()), mine.paying_referrals), (Some(name.as_str()), 1));
    assert_eq!(mine.group.unwrap().rules.unwrap().modifiers[0].name, "pro");
    let history = rpc.client().list_reward_history(Rpc::authed(ListRewardHistoryRequest::default(), &a_token)).await.unwrap().into_inner();
    let mut rows: Vec<(i64, String, i64)> = history
        .entries
        .iter()
        .filter_map(|e| match e.entry.as_ref()? {
            market_proto::v1::history_entry::Entry::Reward(r) => Some((r.reward, r.rule.clone(), r.bounty)),
            _ => None,
        })
        .collect();
    rows.sort();
    assert_eq!(rows, vec![(600, format!("group {name} v1 · pro"), 0), (700, format!("group {name} v1 · sign-up bounty"), 500)]);
}
