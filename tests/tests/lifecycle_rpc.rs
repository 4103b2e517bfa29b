//! The commission lifecycle end to end: refunds from RabbitMQ through the bridge, SQS and
//! the `on-order-refunded` hook (exactly once, either order, over-refunds to the DLQ), the
//! affiliate's `ListRewardHistory` and `GetAffiliateStats` over gRPC-Web, the admin's
//! `AdjustBalance` / `ReverseReward` / `ListHeldRewards` / `ReviewReward`, and the scheduled
//! `mature-rewards` function.

use std::collections::HashSet;

use market_domain::admin::AdminRequest;
use market_domain::config::MarketConfig;
use market_domain::ids::{IdempotencyKey, OrderId, UserId};
use market_domain::model::{HoldReason, RewardEvent};
use market_domain::money::{Bps, Money};
use market_domain::policy::TriggerLimit;
use market_domain::ports::prelude::*;
use market_domain::processors::{AdjustBalance, Adjustment, ApplyRefund, ApplyReward, OrderRefunded, Processor, WithdrawAffiliateReward, WithdrawRequest};
use market_domain::time::{Clock, SystemClock};
use market_proto::v1::{
    history_entry::Entry, AdjustBalanceRequest, GetAffiliateStatsRequest, ListHeldRewardsRequest, ListRewardHistoryRequest, RewardStatus,
    ReverseRewardRequest, ReviewRewardRequest,
};
use market_tests::amqp::{eventually, Publisher};
use market_tests::rpc::Rpc;
use market_tests::{assert_money_invariants, event_id, order, referred_user, user, TestDeps};
use tonic::Code;

fn id(prefix: &str) -> String {
    format!("{prefix}-{}", nanoid::nanoid!(10))
}

async fn deps(holding_period_days: u32) -> TestDeps {
    market_tests::deps(MarketConfig { holding_period_days, min_withdraw_amount: Money::from_minor(1), ..MarketConfig::default() }).await
}

/// A reward applied through the reward processor, earned now with the given holding period.
async fn reward(d: &TestDeps, buyer: &UserId, inviter: &UserId, o: &OrderId, amount: i64, holding: u32) {
    reward_held(d, buyer, inviter, o, amount, holding, None).await;
}

async fn reward_held(d: &TestDeps, buyer: &UserId, inviter: &UserId, o: &OrderId, amount: i64, holding: u32, hold: Option<HoldReason>) {
    let ev = RewardEvent {
        order_id: o.clone(),
        buyer: buyer.clone(),
        inviter: inviter.clone(),
        order_amount: Money::from_minor(amount),
        currency: MarketConfig::default().currency,
        commission_bps: Bps::new(1000).unwrap(),
        reward: Money::from_minor(amount / 10),
        trigger_limit: TriggerLimit::Unlimited,
        occurred_at: SystemClock.now(),
        source_event_id: event_id(),
        holding_period_days: holding,
        levels: Vec::new(),
        hold,
        rule: None,
    };
    ApplyReward(d.clone()).process(ev).await.unwrap();
}

async fn refund(d: &TestDeps, buyer: &UserId, o: &OrderId, refund_id: &str, amount: i64) {
    ApplyRefund(d.clone())
        .process(OrderRefunded {
            event_id: event_id(),
            refund_id: market_domain::ids::RefundId::parse(refund_id).unwrap(),
            order_id: o.clone(),
            buyer: buyer.clone(),
            amount: Money::from_minor(amount),
            currency: "USD".into(),
            reason: market_domain::lifecycle::RefundReason::Refund,
            occurred_at: SystemClock.now(),
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refunds_from_rabbitmq_apply_once_in_either_order_and_over_refunds_reach_the_dlq() {
    let publisher = Publisher::connect().await;
    let (a, b) = (user("a"), user("b"));
    let d = deps(0).await;
    let code = market_domain::processors::CreateInviteCode::new(d.clone()).process(a.clone().into()).await.unwrap().code;
    publisher.user_registered(&id("ev"), b.as_str(), Some(code.as_str())).await;
    let store = market_tests::store().await;
    eventually("B referred", 60, || async { store.get_policy(&b).await.unwrap().is_some_and(|p| p.inviter.is_some()) }).await;

    // Order 1: paid, then refunded (the same refund delivered three times, one a chargeback id).
    let o1 = id("order");
    publisher.order_paid(&id("ev"), &o1, b.as_str(), 1000).await;
    eventually("reward 1", 60, || async { store.get_stats(&a).await.unwrap().rewarded_orders == 1 }).await;
    let refund_event = id("ev");
    for _ in 0..3 {
        publisher.order_refunded(&refund_event, "rf-1", &o1, b.as_str(), 400, "refund").await;
    }
    // Order 2: the chargeback arrives before the order's reward.
    let o2 = id("order");
    publisher.order_refunded(&id("ev"), "cb-1", &o2, b.as_str(), 500, "chargeback").await;
    let o2_id = OrderId::parse(o2.clone()).unwrap();
    eventually("chargeback recorded", 60, || async { store.get_commission(&a, &o2_id).await.unwrap().is_some() }).await;
    publisher.order_paid(&id("ev"), &o2, b.as_str(), 2000).await;
    // An over-refund of order 1 (600 left): rejected, to the DLQ after maxReceiveCount.
    let poison = id("over");
    publisher.order_refunded(&poison, "rf-2", &o1, b.as_str(), 601, "refund").await;

    eventually("both orders net of their refunds", 60, || async {
        let s = store.get_stats(&a).await.unwrap();
        (s.total_earned.minor(), s.reversed_total.minor(), s.available.minor()) == (300, 40 + 50, 60 + 150)
    })
    .await;
    let sqs = aws_sdk_sqs::Client::new(&market_storage::aws_config().await);
    let dlq = std::env::var("QUEUE_URL_OrderRefundedDLQ").unwrap();
    eventually("the over-refund in the DLQ", 90, || {
        let (sqs, dlq, poison) = (sqs.clone(), dlq.clone(), poison.clone());
        async move {
            let out = sqs.receive_message().queue_url(&dlq).max_number_of_messages(10).visibility_timeout(0).send().await.unwrap();
            out.messages().iter().any(|m| m.body().is_some_and(|b| b.contains(&poison)))
        }
    })
    .await;
    let stats = assert_money_invariants(&store, &a).await;
    assert_eq!((stats.total_earned.minor(), stats.reversed_total.minor(), stats.available.minor()), (300, 90, 210), "nothing applied twice");
    let trail = store.list_audit(a.as_str(), None, 100).await.unwrap().items;
    assert!(trail.iter().any(|r| r.action.as_str() == "refund_rejected" && r.details["reason"] == "over_refund"));
}

#[tokio::test]
async fn list_reward_history_pages_every_movement_with_its_status() {
    let rpc = Rpc::from_env().unwrap();
    let (pending, instant) = (deps(1).await, deps(0).await);
    let me = user("hist");
    let (buyer, _) = referred_user(&instant, &me).await;
    let (o1, o2, o3, o4) = (order(), order(), order(), order());
    reward(&pending, &buyer, &me, &o1, 1000, 1).await; // pending
    reward(&pending, &buyer, &me, &o2, 2000, 1).await;
    refund(&pending, &buyer, &o2, "r1", 500).await; // partially reversed
    reward(&instant, &buyer, &me, &o3, 3000, 0).await;
    refund(&instant, &buyer, &o3, "r1", 3000).await; // reversed
    reward(&instant, &buyer, &me, &o4, 4000, 0).await; // available
    let admin = user("admin");
    AdjustBalance(instant.clone())
        .process(AdminRequest {
            admin,
            request_id: "r".into(),
            body: Adjustment { user: me.clone(), amount: Money::from_minor(100), reason: "bonus".into(), idempotency_key: IdempotencyKey::parse("b1").unwrap(), allow_negative: false },
        })
        .await
        .unwrap();
    for k in 0..3 {
        let req = WithdrawRequest { caller: me.clone(), amount: Money::from_minor(50 + k), idempotency_key: IdempotencyKey::parse(format!("w{k}")).unwrap() };
        WithdrawAffiliateReward(instant.clone()).process(req).await.unwrap();
    }
    // 4 rewards + 2 reversals + 1 adjustment + 3 withdrawals.
    let token = rpc.token(me.as_str());
    let (mut entries, mut page_token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let req = ListRewardHistoryRequest { page_size: 3, page_token: page_token.clone() };
        let page = rpc.client().list_reward_history(Rpc::authed(req, &token)).await.unwrap().into_inner();
        assert!(page.entries.len() <= 3);
        entries.extend(page.entries);
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
        if pages == 2 {
            // Another user's token is not followed.
            let other = rpc.token(user("other").as_str());
            let stolen = ListRewardHistoryRequest { page_size: 3, page_token: page_token.clone() };
            let err = rpc.client().list_reward_history(Rpc::authed(stolen, &other)).await.unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument);
        }
    }
    assert_eq!(entries.len(), 10, "{entries:#?}");
    assert!(pages >= 4);
    let now = SystemClock.now();
    let expected: Vec<_> = instant.store.history(&me).await.unwrap().iter().filter_map(|i| market_proto::history::history_entry(i, now)).collect();
    assert_eq!(entries, expected, "complete and newest first");
    let statuses: HashSet<i32> = entries.iter().filter_map(|e| match e.entry.as_ref() { Some(Entry::Reward(r)) => Some(r.status), _ => None }).collect();
    let want: HashSet<i32> = [RewardStatus::Pending, RewardStatus::PartiallyReversed, RewardStatus::Reversed, RewardStatus::Available].into_iter().map(i32::from).collect();
    assert_eq!(statuses, want);
    for e in &entries {
        if let Some(Entry::Reward(r)) = &e.entry {
            match RewardStatus::try_from(r.status).unwrap() {
                RewardStatus::Pending => assert!(r.pending_until.is_some() && r.amount == r.reward),
                RewardStatus::PartiallyReversed => assert_eq!((r.amount, r.refunded_amount), (150, 500)),
                RewardStatus::Reversed => assert_eq!(r.amount, 0),
                _ => assert!(r.pending_until.is_none()),
            }
        }
    }

    // GetAffiliateStats: pending, reversed and the next release, exactly.
    let stats = rpc.client().get_affiliate_stats(Rpc::authed(GetAffiliateStatsRequest {}, &token)).await.unwrap().into_inner();
    let s = stats.stats.unwrap();
    assert_eq!((s.pending, s.reversed_total, s.total_earned), (100 + 150, 50 + 300, 1000 + 100));
    assert_eq!(s.total_earned, s.pending + s.available + s.withdrawn_total + s.reversed_total);
    let next = s.next_release_at.unwrap();
    assert!((next.seconds * 1000 - (now.millis() + 86_400_000)).abs() < 120_000, "about a day from now");
}

#[tokio::test]
async fn admin_adjustments_and_reversals_over_grpc_web() {
    let rpc = Rpc::from_env().unwrap();
    let d = deps(0).await;
    let target = user("adj");
    let (buyer, _) = referred_user(&d, &target).await;
    let o = order();
    reward(&d, &buyer, &target, &o, 5000, 0).await;
    let adjust = |token: String, key: &str, amount: i64| {
        let req = AdjustBalanceRequest { user_id: target.to_string(), amount, reason: "support case 42".into(), idempotency_key: key.into(), allow_negative: false };
        let admin = rpc.admin();
        async move { admin.clone().adjust_balance(Rpc::authed(req, &token)).await }
    };
    // A user token: PERMISSION_DENIED, nothing written.
    let user_token = rpc.token(target.as_str());
    assert_eq!(adjust(user_token.clone(), "k", 100).await.unwrap_err().code(), Code::PermissionDenied);
    let reverse_req = || ReverseRewardRequest { user_id: target.to_string(), order_id: o.to_string(), reason: "duplicate order".into(), idempotency_key: "rev-1".into() };
    assert_eq!(rpc.admin().reverse_reward(Rpc::authed(reverse_req(), &user_token)).await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(d.store.get_stats(&target).await.unwrap().available.minor(), 500);

    let admin_token = rpc.admin_token("ops-1");
    let results = futures::future::join_all((0..4).map(|_| adjust(admin_token.clone(), "credit-1", 250))).await;
    let results: Vec<_> = results.into_iter().map(|r| r.unwrap().into_inner()).collect();
    assert_eq!(results.iter().filter(|r| !r.replayed).count(), 1);
    assert!(results.iter().all(|r| r.adjustment_id == results[0].adjustment_id && r.available_after == 750));
    assert_eq!(adjust(admin_token.clone(), "debit-1", -1000).await.unwrap_err().code(), Code::FailedPrecondition);

    let first = rpc.admin().reverse_reward(Rpc::authed(reverse_req(), &admin_token)).await.unwrap().into_inner();
    let again = rpc.admin().reverse_reward(Rpc::authed(reverse_req(), &admin_token)).await.unwrap().into_inner();
    assert_eq!((first.reversed, first.replayed, again.reversed, again.replayed), (500, false, 500, true));
    assert_eq!(first.reward.unwrap().status, i32::from(RewardStatus::Reversed));
    let mut other_key = reverse_req();
    other_key.idempotency_key = "rev-2".into();
    assert_eq!(rpc.admin().reverse_reward(Rpc::authed(other_key, &admin_token)).await.unwrap_err().code(), Code::FailedPrecondition);
    let stats = assert_money_invariants(&d.store, &target).await;
    assert_eq!((stats.total_earned.minor(), stats.available.minor(), stats.reversed_total.minor()), (750, 250, 500));
    let trail = d.store.list_audit(target.as_str(), None, 100).await.unwrap().items;
    assert!(trail.iter().any(|r| r.action.as_str() == "balance_adjusted" && r.actor.to_string() == "admin:ops-1"));
    assert!(trail.iter().any(|r| r.action.as_str() == "reward_reversed" && r.actor.to_string() == "admin:ops-1"));
}

#[tokio::test]
async fn held_rewards_are_listed_and_reviewed_once_over_grpc_web() {
    let rpc = Rpc::from_env().unwrap();
    let d = deps(0).await;
    let target = user("held");
    let (buyer, _) = referred_user(&d, &target).await;
    let o = order();
    reward_held(&d, &buyer, &target, &o, 5000, 0, Some(HoldReason::ReferralVelocity)).await;
    let token = rpc.token(target.as_str());

    // The affiliate sees it held: in the stats (not available) and in the history.
    let s = rpc.client().get_affiliate_stats(Rpc::authed(GetAffiliateStatsRequest {}, &token)).await.unwrap().into_inner().stats.unwrap();
    assert_eq!((s.held, s.available, s.total_earned), (500, 0, 500));
    let history = rpc.client().list_reward_history(Rpc::authed(ListRewardHistoryRequest { page_size: 10, page_token: String::new() }, &token)).await.unwrap().into_inner();
    let statuses: Vec<i32> = history.entries.iter().filter_map(|e| match &e.entry { Some(Entry::Reward(r)) => Some(r.status), _ => None }).collect();
    assert_eq!(statuses, [i32::from(RewardStatus::HeldForReview)]);

    // A user token is refused; the admin finds it in the queue (oldest first, paged).
    let list = |token: String, page_token: String| {
        let admin = rpc.admin();
        async move { admin.clone().list_held_rewards(Rpc::authed(ListHeldRewardsRequest { page_size: 50, page_token }, &token)).await }
    };
    assert_eq!(list(token.clone(), String::new()).await.unwrap_err().code(), Code::PermissionDenied);
    let admin_token = rpc.admin_token("ops-1");
    let mut page_token = String::new();
    let found = loop {
        let page = list(admin_token.clone(), page_token).await.unwrap().into_inner();
        if let Some(h) = page.rewards.iter().find(|h| h.user_id == target.as_str()) {
            break h.clone();
        }
        assert!(!page.next_page_token.is_empty(), "the held reward is listed");
        page_token = page.next_page_token;
    };
    let r = found.reward.unwrap();
    assert_eq!((found.reason.as_str(), r.order_id.as_str(), r.amount, r.referred_user_id.as_str()), ("referral_velocity", o.as_str(), 500, buyer.as_str()));

    // Approved three times at once: decided once; the other decision is refused.
    let review = |approve: bool, token: String| {
        let req = ReviewRewardRequest { user_id: target.to_string(), order_id: o.to_string(), approve, reason: "orders checked".into() };
        let admin = rpc.admin();
        async move { admin.clone().review_reward(Rpc::authed(req, &token)).await }
    };
    assert_eq!(review(true, token.clone()).await.unwrap_err().code(), Code::PermissionDenied);
    let results = futures::future::join_all((0..3).map(|_| review(true, admin_token.clone()))).await;
    let results: Vec<_> = results.into_iter().map(|r| r.unwrap().into_inner()).collect();
    assert_eq!(results.iter().filter(|r| !r.replayed).count(), 1);
    assert!(results.iter().all(|r| r.approved && r.reward.as_ref().unwrap().status == i32::from(RewardStatus::Available)));
    assert_eq!(review(false, admin_token.clone()).await.unwrap_err().code(), Code::FailedPrecondition);
    let s = rpc.client().get_affiliate_stats(Rpc::authed(GetAffiliateStatsRequest {}, &token)).await.unwrap().into_inner().stats.unwrap();
    assert_eq!((s.held, s.available), (0, 500));
    assert_money_invariants(&d.store, &target).await;
}

#[tokio::test]
async fn the_scheduled_maturity_function_answers_its_schedule_event() {
    let base = std::env::var("MARKET_RPC_URL").unwrap().trim_end_matches("/lambda-url").to_owned();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let event = serde_json::json!({"version": "0", "source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {}});
    let request = http::Request::post(format!("{base}/2015-03-31/functions/mature-rewards/invocations"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(event.to_string())))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert!(response.status().is_success());
    assert!(!response.headers().contains_key("x-amz-function-error"));
    let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    let report: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(report["failed"], 0, "{report}");
    assert!(report["users"].is_u64());
}
