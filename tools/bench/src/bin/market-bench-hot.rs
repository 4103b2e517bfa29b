//! `make bench` (hot affiliate, issue 15): the reward design under one popular inviter.
//! In-process against DynamoDB (the end-to-end path is capped by the local SQS), with
//! BENCH_HOT_CONCURRENCY concurrent `ApplyReward` calls (default 50, what Lambda may run at
//! once on the reward queue): BENCH_HOT_REWARDS rewards (default 2000) of as many referred
//! users of **one** inviter, next to as many spread over as many inviters; rewards/s,
//! transaction conflicts (retried inside the store), rewards that gave up (`UNAVAILABLE`,
//! which SQS would redeliver), capacity units per reward; and the hot inviter's own
//! withdrawals made while its rewards stream in. Every reward is checked applied exactly
//! once and the inviter's money adds up (invariants 1–3).
//!
//! As AWS would take it: `local-aws`'s contention shim is on for both runs — conflicting
//! transactions cancelled, and each item limited to BENCH_HOT_ITEM_WCU write units a second
//! (default 50: AWS's ~1 000 per partition scaled down 20×, so the offered rate is several
//! times one item's limit). One stats item would cap the hot inviter at half that many
//! rewards a second; the statistics' shards (storage `STATS_SHARDS`) are what keeps it up.
//!
//! BENCH_HOT_LIFECYCLE_EVENTS=1 runs it with lifecycle events on (configuration
//! `lifecycle_events`): then each inviter's rewards serialize on their event sequence (the
//! main stats item), which is what this measures against the shards.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use market_domain::config::MarketConfig;
use market_domain::ids::{IdempotencyKey, UserId};
use market_domain::money::Money;
use market_domain::policy::TriggerLimit;
use market_domain::ports::prelude::*;
use market_domain::ports::RewardOutcome;
use market_domain::processors::{ApplyReward, CreateInviteCode, Processor, RegisterUser, RegistrationResult, UserRegistered, WithdrawAffiliateReward, WithdrawRequest};
use market_domain::MarketError;
use market_tests::TestDeps;

fn var(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Registers `buyers` referred users of `inviter` (one code, reused), `concurrency` at once.
async fn referred(d: &TestDeps, inviter: &UserId, buyers: usize, concurrency: usize) -> Vec<UserId> {
    let code = CreateInviteCode::new(d.clone()).process(inviter.clone().into()).await.expect("code").code;
    stream::iter(0..buyers)
        .map(|_| {
            let (d, code, inviter) = (d.clone(), code.as_str().to_owned(), inviter.clone());
            async move {
                let buyer = market_tests::user("hot-buyer");
                let ev = UserRegistered { event_id: market_tests::event_id(), user: buyer.clone(), invite_code: Some(code), occurred_at: d.clock.now() };
                let result = RegisterUser(d.clone()).process(ev).await.expect("registered");
                assert_eq!(result, RegistrationResult::Referred { inviter });
                buyer
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

struct Run {
    rate: f64,
    elapsed: Duration,
    conflicts: u64,
    gave_up: u64,
    cu_per_reward: f64,
    /// What the shim refused during the run: (conflicts, throttles).
    shim: (u64, u64),
}

/// The shim on with the bench's settings (its counters from zero).
async fn shim_on(item_wcu: f64, partition_wcu: f64) {
    let settings = serde_json::json!({"conflicts": true, "item_wcu_per_second": item_wcu, "partition_wcu_per_second": partition_wcu});
    market_tests::local_aws::set_contention(&settings).await.expect("local-aws: the bench needs a stack serving functions");
}

/// The shim's conflicts and throttles since it was switched on.
async fn shim_counts() -> (u64, u64) {
    let report = market_tests::local_aws::contention().await.unwrap_or_default();
    let sum = |k: &str| report["counters"][k].as_object().map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum());
    (sum("conflicts"), sum("throttles"))
}

/// Applies one reward per (buyer, inviter) pair, `concurrency` at once; a reward that gives up
/// (`Contention`) is tried again, as SQS would redeliver it.
async fn apply_all(d: &TestDeps, pairs: Vec<(UserId, UserId)>, concurrency: usize) -> Run {
    let n = pairs.len();
    let gave_up = Arc::new(AtomicU64::new(0));
    let (conflicts0, cu0) = (d.store.usage().conflicts(), d.store.usage().capacity_units());
    let started = Instant::now();
    let outcomes: Vec<RewardOutcome> = stream::iter(pairs)
        .map(|(buyer, inviter)| {
            let (d, gave_up) = (d.clone(), gave_up.clone());
            async move {
                let ev = market_tests::reward_event(&buyer, &inviter, 10, TriggerLimit::Unlimited);
                loop {
                    match ApplyReward(d.clone()).process(ev.clone()).await {
                        Ok(outcome) => return outcome,
                        Err(MarketError::Contention | MarketError::Unavailable(_)) => {
                            gave_up.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("reward failed: {e}"),
                    }
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    assert!(outcomes.iter().all(|o| *o == RewardOutcome::Applied), "every reward applied exactly once");
    Run {
        rate: n as f64 / elapsed.as_secs_f64(),
        elapsed,
        conflicts: d.store.usage().conflicts() - conflicts0,
        gave_up: gave_up.load(Ordering::Relaxed),
        cu_per_reward: (d.store.usage().capacity_units() - cu0) / n as f64,
        shim: shim_counts().await,
    }
}

#[tokio::main]
async fn main() {
    let n = var("BENCH_HOT_REWARDS", 2000);
    let concurrency = var("BENCH_HOT_CONCURRENCY", 50);
    let item_wcu = var("BENCH_HOT_ITEM_WCU", 50) as f64;
    // BENCH_HOT_PARTITION_WCU (default 0, off): an LSI table's item collection limited as one
    // partition (local-aws's model, to compare with AWS; see ARCHITECTURE, one popular affiliate).
    let partition_wcu = var("BENCH_HOT_PARTITION_WCU", 0) as f64;
    let lifecycle_events = var("BENCH_HOT_LIFECYCLE_EVENTS", 0) == 1;
    let d = market_tests::deps(MarketConfig { min_withdraw_amount: Money::from_minor(1), lifecycle_events, ..MarketConfig::default() }).await;
    let mode = if lifecycle_events { "lifecycle events on: each inviter's sequence" } else { "lifecycle events off: statistics shards" };
    println!("\nHot affiliate benchmark: {n} rewards, {concurrency} concurrent ApplyReward calls (in-process, DynamoDB Local), {mode}");

    // Set-up (not timed): one inviter with n referred users; n inviters with one each.
    let hot = market_tests::user("hot-inviter");
    let hot_buyers = referred(&d, &hot, n, concurrency).await;
    let spread: Vec<(UserId, UserId)> = stream::iter(0..n)
        .map(|_| {
            let d = d.clone();
            async move {
                let inviter = market_tests::user("spread-inviter");
                let buyer = referred(&d, &inviter, 1, 1).await.remove(0);
                (buyer, inviter)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;

    shim_on(item_wcu, partition_wcu).await;
    let spread_run = apply_all(&d, spread, concurrency).await;
    shim_on(item_wcu, partition_wcu).await;

    // The hot inviter, with its own withdrawals (1 minor unit each, every 20 ms) while the
    // rewards stream in: each must succeed, or be refused for the balance, never give up.
    let streaming = Arc::new(AtomicBool::new(true));
    let withdrawals = {
        let (d, hot, streaming) = (d.clone(), hot.clone(), streaming.clone());
        tokio::spawn(async move {
            let (mut ok, mut refused, mut unavailable, mut latencies) = (0u32, 0u32, 0u32, Vec::new());
            let mut i = 0;
            while streaming.load(Ordering::Relaxed) {
                i += 1;
                let key = IdempotencyKey::parse(format!("hot-{i}")).expect("key");
                let started = Instant::now();
                match WithdrawAffiliateReward(d.clone()).process(WithdrawRequest { caller: hot.clone(), amount: Money::from_minor(1), idempotency_key: key }).await {
                    Ok(_) => ok += 1,
                    Err(MarketError::InsufficientBalance) => refused += 1,
                    Err(MarketError::Contention | MarketError::Unavailable(_)) => unavailable += 1,
                    Err(e) => panic!("withdrawal failed: {e}"),
                }
                latencies.push(started.elapsed());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            latencies.sort();
            (ok, refused, unavailable, latencies)
        })
    };
    let hot_run = apply_all(&d, hot_buyers.into_iter().map(|b| (b, hot.clone())).collect(), concurrency).await;
    streaming.store(false, Ordering::Relaxed);
    let (ok, refused, unavailable, latencies) = withdrawals.await.expect("withdrawals");
    let _ = market_tests::local_aws::set_contention(&serde_json::json!({})).await;

    // Exactly once, and the money adds up.
    let store = market_tests::store().await;
    let stats = store.get_stats(&hot).await.expect("stats");
    assert_eq!(stats.rewarded_orders, n as u64, "every reward counted once");
    let (_, _, violations) = market_tests::money_violations(&store, &hot).await.expect("read");
    assert!(violations.is_empty(), "{violations:?}");

    let row = |name: &str, r: &Run| {
        println!(
            "{name:<34} {:>7.0} rewards/s  ({n} in {:.2} s)  retried {:>5} (shim: {} conflicts, {} throttles)  gave up {:>4}  {:.1} CU/reward",
            r.rate,
            r.elapsed.as_secs_f64(),
            r.conflicts,
            r.shim.0,
            r.shim.1,
            r.gave_up,
            r.cu_per_reward
        );
    };
    let one_item = item_wcu / 2.0;
    println!(
        "{:<34} {item_wcu:.0} WCU/s per item = {one_item:.0} transactional rewards/s on one stats item; offered (spread rate) {:.1}× that",
        "per-item limit (local-aws)",
        spread_run.rate / one_item
    );
    if partition_wcu > 0.0 {
        println!("{:<34} {partition_wcu:.0} WCU/s per LSI item collection (as one partition)", "per-collection limit (local-aws)");
    }
    row(&format!("spread ({n} inviters)"), &spread_run);
    row("hot (one inviter)", &hot_run);
    println!("{:<34} {:.2}× the spread rate (target ≥ 0.8×)", "hot / spread", hot_run.rate / spread_run.rate);
    let p = |q: f64| latencies.get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1))).map_or(0.0, |d| d.as_secs_f64() * 1e3);
    println!(
        "{:<34} {ok} paid, {refused} refused for the balance, {unavailable} gave up (UNAVAILABLE); p50 {:.0} ms, p99 {:.0} ms",
        "hot inviter's withdrawals meanwhile",
        p(0.5),
        p(0.99)
    );
    println!("invariants 1–3 exact for the hot inviter: {} rewards, total earned {}", stats.rewarded_orders, stats.total_earned.minor());
    let run = |r: &Run| serde_json::json!({ "rewards_per_second": r.rate, "seconds": r.elapsed.as_secs_f64(), "conflicts_retried": r.conflicts, "shim_conflicts": r.shim.0, "shim_throttles": r.shim.1, "gave_up": r.gave_up, "capacity_units_per_reward": r.cu_per_reward });
    market_bench::record(
        &format!("hot_affiliate_c{concurrency}{}", if lifecycle_events { "_lifecycle_events" } else { "" }),
        serde_json::json!({
            "lifecycle_events": lifecycle_events, "rewards": n, "concurrency": concurrency, "item_wcu_per_second": item_wcu, "partition_wcu_per_second": partition_wcu, "offered_vs_one_item": spread_run.rate / one_item,
            "spread": run(&spread_run), "hot": run(&hot_run),
            "hot_vs_spread": hot_run.rate / spread_run.rate,
            "hot_withdrawals": { "paid": ok, "refused": refused, "gave_up": unavailable, "p50_ms": p(0.5), "p99_ms": p(0.99) },
        }),
    );
}
