//! The configuration in Redis, through every function (its own test binary: it changes the
//! configuration every function uses and stops Redis). A change made through the admin API
//! reaches all containers within the cache TTL; with Redis down the RPCs and hooks keep
//! working on the last good configuration; when Redis is back, changes flow again.

use std::time::{Duration, Instant};

use market_domain::config::MarketConfig;
use market_domain::ports::prelude::*;
use market_proto::v1::{
    CreateInviteCodeRequest, GetAffiliateStatsRequest, GetMarketConfigRequest, ListAuditTrailRequest, MarketConfig as PbConfig,
    UpdateMarketConfigRequest,
};
use market_tests::amqp::{eventually, Publisher};
use market_tests::rpc::Rpc;
use tonic::Code;

fn ttl() -> Duration {
    Duration::from_millis(std::env::var("CONFIG_CACHE_TTL_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(5000))
}

/// The default rate a user without their own sees, as one function container answers.
async fn default_rate(rpc: &Rpc, token: &str) -> u32 {
    let response = rpc.client().get_affiliate_stats(Rpc::authed(GetAffiliateStatsRequest {}, token)).await.expect("stats");
    response.into_inner().policy.unwrap().commission_bps
}

async fn set_rate(rpc: &Rpc, admin: &str, bps: u32) -> Result<PbConfig, tonic::Status> {
    let request = UpdateMarketConfigRequest {
        config: Some(PbConfig { default_commission_bps: bps, ..Default::default() }),
        update: vec!["default_commission_bps".into()],
    };
    rpc.admin().update_market_config(Rpc::authed(request, admin)).await.map(|r| r.into_inner())
}

/// Until every container answers `bps` (each has its own cache); returns how long it took
/// from `acknowledged`, when the write returned: it is in Redis from then on, so one TTL
/// later no container may still hold the old value (one that read just before the write
/// keeps it until its read + TTL). How long the write itself took is not propagation.
async fn wait_for_rate(rpc: &Rpc, token: &str, bps: u32, acknowledged: Instant) -> Duration {
    let deadline = acknowledged + ttl() * 3 + Duration::from_secs(5);
    loop {
        if default_rate(rpc, token).await == bps {
            break;
        }
        assert!(Instant::now() < deadline, "rate {bps} not visible after {:?}", acknowledged.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = acknowledged.elapsed();
    let settled = acknowledged + ttl() + Duration::from_millis(300);
    let now = Instant::now();
    if now < settled {
        tokio::time::sleep(settled - now).await;
    }
    // Concurrent rounds reach every instance `cargo lambda watch` runs (up to 4).
    assert_all(rpc, token, bps).await;
    first
}

async fn assert_all(rpc: &Rpc, token: &str, bps: u32) {
    for _ in 0..3 {
        let rates = futures::future::join_all((0..8).map(|_| default_rate(rpc, token))).await;
        assert!(rates.iter().all(|&r| r == bps), "a container answers another rate: {rates:?} (expected {bps})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn config_changes_reach_all_functions_within_the_ttl_and_survive_a_redis_outage() {
    let rpc = Rpc::from_env().unwrap();
    let admin = rpc.admin_token("root");
    let reader = rpc.token(market_tests::user("reader").as_str());
    let original = rpc.admin().get_market_config(Rpc::authed(GetMarketConfigRequest {}, &admin)).await.unwrap().into_inner();

    // Every instance the rounds below reach is running and has read the configuration: what
    // is measured is how a change propagates, not how fast a function starts.
    assert_all(&rpc, &reader, original.default_commission_bps).await;

    // A change through the admin API: in Redis at once, in every function within the TTL.
    let config = set_rate(&rpc, &admin, 1234).await.unwrap();
    let acknowledged = Instant::now();
    assert_eq!(config.default_commission_bps, 1234);
    assert_eq!((config.min_withdraw_amount, config.max_active_codes), (original.min_withdraw_amount, original.max_active_codes), "other fields kept");
    let took = wait_for_rate(&rpc, &reader, 1234, acknowledged).await;
    eprintln!("config change visible after {took:?} (TTL {:?})", ttl());
    assert!(took <= ttl() + Duration::from_millis(1500), "visible within the TTL: {took:?}");
    let trail = rpc
        .admin()
        .list_audit_trail(Rpc::authed(ListAuditTrailRequest { market_config: true, ..Default::default() }, &admin))
        .await
        .unwrap()
        .into_inner()
        .records;
    let newest = trail.first().expect("config change audited");
    assert_eq!((newest.action.as_str(), newest.actor.as_str()), ("config_changed", "admin:root"));
    let details: serde_json::Value = serde_json::from_str(&newest.details_json).unwrap();
    assert_eq!(details["after"]["default_commission_bps"], 1234);
    // The intent was recorded before the write, with the version the change wrote and the
    // admin read shows.
    assert_eq!(config.version, original.version + 1, "each change writes the next version");
    assert_eq!(details["version"], config.version);
    let requested = trail.iter().find(|r| r.request_id == newest.request_id && r.action == "config_change_requested").expect("the intent recorded");
    let secs = |r: &market_proto::v1::AuditRecord| r.at.as_ref().map(|t| (t.seconds, t.nanos));
    assert!(secs(requested) <= secs(newest));
    let intent: serde_json::Value = serde_json::from_str(&requested.details_json).unwrap();
    assert_eq!((intent["version"].clone(), intent["after"]["default_commission_bps"].clone()), (details["version"].clone(), 1234.into()));

    // A paid order with Redis up: the hook's container takes the new rate.
    let publisher = Publisher::connect().await;
    let store = market_tests::store().await;
    let referral = |a: market_domain::ids::UserId, b: market_domain::ids::UserId| {
        let (rpc, publisher, store) = (&rpc, &publisher, &store);
        async move {
            let code = rpc.client().create_invite_code(Rpc::authed(CreateInviteCodeRequest::default(), &rpc.token(a.as_str()))).await.unwrap().into_inner().code.unwrap().code;
            publisher.user_registered(&format!("ev-{}", nanoid::nanoid!(8)), b.as_str(), Some(&code)).await;
            eventually("referred", 60, || async { store.get_policy(&b).await.unwrap().and_then(|p| p.inviter).is_some() }).await;
            publisher.order_paid(&format!("ev-{}", nanoid::nanoid!(8)), &format!("order-{}", nanoid::nanoid!(8)), b.as_str(), 10_000).await;
            eventually("rewarded", 60, || async { store.get_stats(&a).await.unwrap().rewarded_orders == 1 }).await;
            store.get_stats(&a).await.unwrap().total_earned.minor()
        }
    };
    assert_eq!(referral(market_tests::user("a"), market_tests::user("b")).await, 1234, "10 000 at 12.34 %");

    // Redis down: RPCs and hooks keep working on their last good configuration.
    market_tests::stack("redis", &["stop"]);
    let stopped = Instant::now();
    tokio::time::sleep(ttl() + Duration::from_millis(300)).await; // every cache has expired once
    assert_all(&rpc, &reader, 1234).await;
    let earned = referral(market_tests::user("a"), market_tests::user("b")).await;
    // Each container keeps the last value it read itself (a hook instance idle since before
    // the change still holds the previous one; one started during the outage has only the
    // fallback document): the reward is applied either way.
    // As the functions read it: unset or empty = the built-in defaults.
    let fallback_doc = std::env::var("MARKET_CONFIG_JSON").ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| "{}".into());
    let fallback = MarketConfig::from_json(&fallback_doc).unwrap();
    let rates = [1234, i64::from(original.default_commission_bps), i64::from(fallback.default_commission_bps.get())];
    assert!(rates.contains(&earned), "{earned} not one of {rates:?}");
    let log = std::fs::read_to_string(format!("{}/logs/functions.log", std::env::var("MARKET_STACK_DIR").unwrap())).unwrap_or_default();
    assert!(log.contains("Redis unreachable; keeping the last good market config"), "the fallback is logged");
    // The admin API reads the truth, not a cache: it says Redis is unavailable.
    let status = rpc.admin().get_market_config(Rpc::authed(GetMarketConfigRequest {}, &admin)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    eprintln!("worked {:?} without Redis", stopped.elapsed());

    // Redis back (empty): updates flow again.
    market_tests::stack("redis", &["start"]);
    let mut attempt = 0;
    let config = loop {
        match set_rate(&rpc, &admin, 777).await {
            Ok(config) => break config,
            Err(s) if s.code() == Code::Unavailable && attempt < 20 => attempt += 1, // reconnecting
            Err(s) => panic!("{s:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let acknowledged = Instant::now();
    assert_eq!((config.default_commission_bps, config.min_withdraw_amount), (777, original.min_withdraw_amount));
    wait_for_rate(&rpc, &reader, 777, acknowledged).await;

    // Levels through the event path: once `level_bps` reached the order hook, one paid order
    // of the end of a chain pays its inviter, their inviter and one further up.
    let request = UpdateMarketConfigRequest {
        config: Some(PbConfig { level_bps: vec![500, 200], ..Default::default() }),
        update: vec!["level_bps".into()],
    };
    let config = rpc.admin().update_market_config(Rpc::authed(request, &admin)).await.unwrap().into_inner();
    let acknowledged = Instant::now();
    assert_eq!((config.level_bps.as_slice(), config.default_commission_bps), ([500, 200].as_slice(), 777));
    let settled = acknowledged + ttl() + Duration::from_millis(300);
    tokio::time::sleep(settled.saturating_duration_since(Instant::now())).await; // every cache has taken it
    let chain: Vec<_> = ["l3", "l2", "l1", "buyer"].map(market_tests::user).into();
    for pair in chain.windows(2) {
        let code = rpc.client().create_invite_code(Rpc::authed(CreateInviteCodeRequest::default(), &rpc.token(pair[0].as_str()))).await.unwrap().into_inner().code.unwrap().code;
        publisher.user_registered(&format!("ev-{}", nanoid::nanoid!(8)), pair[1].as_str(), Some(&code)).await;
        let invitee = pair[1].clone();
        eventually("referred", 60, || async { store.get_policy(&invitee).await.unwrap().and_then(|p| p.inviter).is_some() }).await;
    }
    publisher.order_paid(&format!("ev-{}", nanoid::nanoid!(8)), &format!("order-{}", nanoid::nanoid!(8)), chain[3].as_str(), 10_000).await;
    eventually("all three levels rewarded", 60, || async { store.get_stats(&chain[0]).await.unwrap().rewarded_orders == 1 }).await;
    let mut by_level = Vec::new();
    for earner in &chain[..3] {
        let stats = rpc.client().get_affiliate_stats(Rpc::authed(GetAffiliateStatsRequest {}, &rpc.token(earner.as_str()))).await.unwrap().into_inner().stats.unwrap();
        by_level.push(stats.earned_by_level);
    }
    assert_eq!(by_level, [vec![0, 0, 200], vec![0, 500, 0], vec![777, 0, 0]], "levels 3, 2, 1 of 10 000");

    // Back to the configuration the other tests expect.
    let restore = UpdateMarketConfigRequest {
        config: Some(original.clone()),
        update: ["enabled", "default_commission_bps", "default_trigger_limit", "max_active_codes", "min_withdraw_amount", "currency", "code_expiry_days", "code_retention_days", "level_bps"]
            .map(String::from)
            .to_vec(),
    };
    let restored = rpc.admin().update_market_config(Rpc::authed(restore, &admin)).await.unwrap().into_inner();
    assert!(restored.version > original.version, "a restore is a change too: a new version");
    assert_eq!(PbConfig { version: original.version, ..restored }, original);
    wait_for_rate(&rpc, &reader, original.default_commission_bps, Instant::now()).await;
}
