//! `make bench` (events part): end-to-end events per second (RabbitMQ publish -> reward
//! visible in DynamoDB) and the bridge's relay rate, next to the raw rate of SQS
//! `SendMessageBatch` and of the reward transaction alone, on the same local stack; then the
//! refund path the same way (each order refunded in part), with the capacity units of a
//! refund next to a reward's; then a three-level reward next to a single-level one.
//! BENCH_EVENTS sets the number of orders (default 1000); BENCH_LEVELS_ONLY=1 runs only the
//! levels comparison, BENCH_LIFECYCLE_ONLY=1 only what lifecycle events cost a reward.

use std::time::{Duration, Instant};

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use market_domain::config::MarketConfig;
use market_domain::policy::TriggerLimit;
use market_domain::ports::prelude::*;
use market_domain::processors::{ApplyRefund, ApplyReward, CreateInviteCode, OrderRefunded, Processor};
use market_bench::{event_path, metering, per_second};
use market_tests::amqp::{eventually, Publisher};
use serde_json::json;

fn rate(n: usize, d: Duration) -> String {
    format!("{:>8.0}/s  ({n} in {:.2} s)", per_second(n, d), d.as_secs_f64())
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    if std::env::var("BENCH_LEVELS_ONLY").is_ok_and(|v| v == "1") {
        // Only the levels comparison (in-process, minutes faster than the whole run).
        levels(n.min(300)).await;
        return;
    }
    if std::env::var("BENCH_LIFECYCLE_ONLY").is_ok_and(|v| v == "1") {
        lifecycle_cost(n.min(300)).await;
        return;
    }
    let d = market_tests::deps(MarketConfig::default()).await;
    let sqs = aws_sdk_sqs::Client::new(&market_storage::aws_config().await);
    println!("\nHelium Market event benchmark: {n} order.paid events");

    // Raw SQS: one hop (SendMessageBatch of 10, sequential) and two hops (the reward path's
    // SQS calls with the event sources' pollers, no functions).
    let raw_sqs = event_path::raw_one_hop(&sqs, n).await;
    let cpu_before = event_path::cpu_by_command();
    let raw_two = event_path::raw_two_hops(&sqs, n).await;
    let raw_two_cpu = event_path::cpu_per_event(&cpu_before, &event_path::cpu_by_command(), n);

    // The reward transaction alone (sequential), for a referred buyer.
    let inviter = market_tests::user("bench-inviter");
    let (buyer, _) = market_tests::referred_user(&d, &inviter).await;
    let apply = ApplyReward(d.clone());
    let cu = |d: &market_tests::TestDeps| (d.store.usage().capacity_units(), d.store.usage().round_trips());
    let before = cu(&d);
    let started = Instant::now();
    let mut orders = Vec::with_capacity(n);
    for _ in 0..n {
        let ev = market_tests::reward_event(&buyer, &inviter, 10, TriggerLimit::Unlimited);
        orders.push(ev.order_id.clone());
        apply.process(ev).await.unwrap();
    }
    let raw_tx = started.elapsed();
    let after = cu(&d);
    let reward_cost = ((after.0 - before.0) / n as f64, (after.1 - before.1) as f64 / n as f64);
    // The refund transaction alone: half of each of those orders (100 -> commission 10 -> 5).
    let refund = ApplyRefund(d.clone());
    let before = cu(&d);
    let started = Instant::now();
    for o in &orders {
        refund.process(refund_of(&buyer, o, 50)).await.unwrap();
    }
    let raw_refund = started.elapsed();
    let after = cu(&d);
    let refund_cost = ((after.0 - before.0) / n as f64, (after.1 - before.1) as f64 / n as f64);

    // End to end: publish to RabbitMQ, wait for every reward.
    let publisher = Publisher::connect().await;
    let a = market_tests::user("bench-e2e-inviter");
    let code = CreateInviteCode::new(d.clone()).process(a.clone().into()).await.unwrap().code;
    let b = market_tests::user("bench-e2e-buyer");
    publisher.user_registered(&format!("ev-{b}"), b.as_str(), Some(code.as_str())).await;
    let store = market_tests::store().await;
    eventually("referral", 60, || async { store.get_policy(&b).await.unwrap().and_then(|p| p.inviter).is_some() }).await;

    // The broker's side of the bridge: messages ready in its order.paid queue.
    let url = std::env::var("AMQP_URL").unwrap();
    let conn = lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await.unwrap();
    let probe = conn.create_channel().await.unwrap();

    // Warm-up, not measured: `cargo lambda watch` starts a function's instances on their
    // first invocations (a `cargo run` each), which would otherwise land in the first stage.
    // Enough orders at once that every poller invokes concurrently.
    let warm_up = 50;
    for i in 0..warm_up {
        publisher.order_paid(&format!("ev-{b}-w{i}"), &format!("{b}-w{i}"), b.as_str(), 100).await;
    }
    eventually("warm-up orders rewarded", 120, || async { store.get_stats(&a).await.unwrap().rewarded_orders >= warm_up }).await;

    // Stage by stage: the bridge alone (event sources paused, so it shares the local SQS with
    // nothing and the events wait in the OrderPaid queue) relaying a backlog published while
    // it was paused, then the hook and the processor working off the SQS backlog.
    let order_paid_queue = std::env::var("ORDER_PAID_QUEUE_URL").expect("ORDER_PAID_QUEUE_URL");
    let (bridge_alone, from_queue) = {
        let paused = event_path::Paused::pause("event-sources");
        let waiting = event_path::queued(&sqs, &order_paid_queue).await;
        // The backlog is published while the bridge is paused too: the measured time is the
        // relay's (broker -> bridge -> SQS), with no publisher competing for the 2 cores.
        {
            let _bridge = event_path::Paused::pause("bridge");
            for i in 0..n {
                publisher.order_paid(&format!("ev-{b}-s{i}"), &format!("{b}-s{i}"), b.as_str(), 100).await;
            }
        }
        let started = Instant::now();
        // Counting the SQS queue costs the local SQS a call: only once the broker has handed
        // everything to the bridge (nothing ready), so the bridge has SQS to itself until then.
        while ready(&probe).await > 0 {
            assert!(started.elapsed() < Duration::from_secs(600), "the bridge did not take every event");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        while event_path::queued(&sqs, &order_paid_queue).await < waiting + n {
            assert!(started.elapsed() < Duration::from_secs(600), "the bridge did not relay every event");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let bridge_alone = started.elapsed();
        drop(paused);
        let started = Instant::now();
        while store.get_stats(&a).await.unwrap().rewarded_orders < warm_up + n as u64 {
            assert!(started.elapsed() < Duration::from_secs(600), "the backlog was not worked off");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (bridge_alone, started.elapsed())
    };

    // End to end, everything running; the meter from when the stages' work (their outbound
    // events included) has settled, so none of it is counted here.
    let meter_before = metering::settled().await;
    let cpu_before = event_path::cpu_by_command();
    let started = Instant::now();
    for i in 0..n {
        publisher.order_paid(&format!("ev-{b}-{i}"), &format!("{b}-{i}"), b.as_str(), 100).await;
    }
    let published = started.elapsed();
    // Relay: until the bridge's RabbitMQ queue is drained (it acks only after SQS accepted).
    let mut drained = None;
    while drained.is_none() || store.get_stats(&a).await.unwrap().rewarded_orders < warm_up + 2 * n as u64 {
        if drained.is_none() && ready(&probe).await == 0 {
            drained = Some(started.elapsed());
        }
        assert!(started.elapsed() < Duration::from_secs(600), "end to end did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let e2e = started.elapsed();
    let e2e_cpu = event_path::cpu_per_event(&cpu_before, &event_path::cpu_by_command(), n);
    // What a rewarded order consumed in every function it went through (and the outbound
    // events it set off), once they all stopped: its AWS units, cost and rate limits. One
    // affiliate's writes: its ledger and audit trail (one partition each: an LSI's item
    // collection, a time-ordered sort key) and its statistics: with lifecycle events on (the
    // stack's configuration leaves the default) its main item, which carries the sequence;
    // off, the 8 shards.
    let stats_items = if MarketConfig::default().lifecycle_events { 1.0 } else { market_storage::tables::STATS_SHARDS as f64 };
    let order_cost = metering::report(
        "One rewarded order end to end (RabbitMQ -> bridge -> on-order-paid -> process-affiliate-reward -> outbox relay)",
        &meter_before,
        &metering::settled().await,
        n,
        &[("LedgerTable", 1.0), ("AuditTable", 1.0), ("StatsTable", stats_items)],
    );

    // Refunds end to end: half of every order, published to shop/order.refunded.
    let started = Instant::now();
    for i in 0..n {
        publisher.order_refunded(&format!("rf-{b}-{i}"), "r1", &format!("{b}-{i}"), b.as_str(), 50, "refund").await;
    }
    while store.get_stats(&a).await.unwrap().reversed_total.minor() < 5 * n as i64 {
        assert!(started.elapsed() < Duration::from_secs(600), "refunds end to end did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let e2e_refunds = started.elapsed();

    let relay = drained.unwrap_or(e2e);
    println!("{:<52} {}", "raw reward transaction (ApplyReward)", rate(n, raw_tx));
    println!("{:<52} {}", "RabbitMQ publish with confirms (test client)", rate(n, published));
    println!("{:<52} {}", "bridge relay, end to end running (queue drained)", rate(n, relay));
    println!("{:<52} {}", "raw refund (read + transaction, ApplyRefund)", rate(n, raw_refund));
    println!("{:<52} {}", "end to end (publish -> refund in DynamoDB)", rate(n, e2e_refunds));
    println!(
        "{:<52} reward {:.1} CU in {:.1} calls; refund {:.1} CU in {:.1} calls",
        "capacity per event (consistent read + transaction)", reward_cost.0, reward_cost.1, refund_cost.0, refund_cost.1
    );

    // Where one event's time goes: each stage at its own rate, in ms per event.
    let ms_per = |d: Duration| d.as_secs_f64() * 1000.0 / n as f64;
    println!("\nEvent path, stage by stage ({n} events each; ms per event = 1 / rate):");
    println!("{:<60} {:>18} {:>10}", "stage", "rate", "ms/event");
    let stages = [
        ("raw SQS SendMessageBatch (10/call, sequential)", raw_sqs),
        ("raw SQS two hops (send; receive, send, delete; receive, delete)", raw_two),
        ("bridge alone: RabbitMQ backlog -> bridge -> SQS (sources paused)", bridge_alone),
        ("from the queue: SQS -> hook -> SQS -> processor -> DynamoDB", from_queue),
        ("end to end: publish -> reward in DynamoDB (all running)", e2e),
    ];
    for (name, d) in stages {
        println!("{name:<60} {:>14.1}/s {:>8.1}", per_second(n, d), ms_per(d));
    }
    let e2e_ratio = per_second(n, e2e) / per_second(n, raw_two);
    let bridge_ratio = per_second(n, bridge_alone) / per_second(n, raw_sqs);
    println!("end to end / raw two hops      {e2e_ratio:.2}x (target >= 0.8x)");
    println!("bridge alone / raw one hop     {bridge_ratio:.2}x (target >= 0.9x)");
    println!("({} pollers per queue in the raw path, as the local event sources run)", event_path::pollers());
    // Where the CPU goes: on this machine every process shares the same cores, so the local
    // services' CPU per event bounds the rate as much as ours does.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    println!("\nCPU per event by process (ms; the machine has {cores} cores: {cores} x wall ms per event is all there is):");
    let mut cpu_json = serde_json::Map::new();
    for (name, d, cpu) in [("raw SQS two hops", raw_two, &raw_two_cpu), ("end to end", e2e, &e2e_cpu)] {
        let total: f64 = cpu.iter().map(|(_, ms)| ms).sum();
        let top: Vec<String> = cpu.iter().take(8).map(|(comm, ms)| format!("{comm} {ms:.2}")).collect();
        println!("{name:<18} {total:>5.2} of {:.2} available: {}", cores * ms_per(d), top.join(", "));
        cpu_json.insert(name.into(), json!({"total_ms": total, "available_ms": cores * ms_per(d),
            "by_process_ms": cpu.iter().take(12).map(|(c, ms)| (c.clone(), json!(ms))).collect::<serde_json::Map<_, _>>()}));
    }
    market_bench::record(
        "events",
        json!({
            "events": n,
            "per_second": {
                "raw_sqs_send_message_batch": per_second(n, raw_sqs),
                "raw_sqs_two_hops": per_second(n, raw_two),
                "raw_reward_transaction": per_second(n, raw_tx),
                "raw_refund": per_second(n, raw_refund),
                "rabbitmq_publish": per_second(n, published),
                "bridge_alone": per_second(n, bridge_alone),
                "bridge_with_end_to_end": per_second(n, relay),
                "from_queue_hook_and_processor": per_second(n, from_queue),
                "end_to_end_rewards": per_second(n, e2e),
                "end_to_end_refunds": per_second(n, e2e_refunds),
            },
            "ratios": { "end_to_end_vs_raw_two_hops": e2e_ratio, "bridge_alone_vs_raw_one_hop": bridge_ratio },
            "cpu_per_event": cpu_json,
            "rewarded_order": order_cost,
            "capacity_units": { "reward": reward_cost.0, "reward_calls": reward_cost.1, "refund": refund_cost.0, "refund_calls": refund_cost.1 },
        }),
    );
    println!("(functions are release builds under cargo lambda watch; local SQS is moto, single-threaded)");

    outbound(&d, n.min(500)).await;
    levels(n.min(300)).await;
    lifecycle_cost(n.min(300)).await;
}

/// Issue 28: what lifecycle events add to a reward. `n` rewards of one inviter each way, in
/// process and sequential: the reward transaction's own units by table (local-aws's meter,
/// the in-process identity), its DynamoDB calls and latency; then, with them on, what the
/// relay and the bridge spend per event (metered once they settled).
async fn lifecycle_cost(n: usize) {
    use market_bench::cost::Units;
    println!("\nLifecycle events: {n} rewards of one inviter each way (ApplyReward in process, sequential; relay and bridge running)");
    let mut runs = serde_json::Map::new();
    let mut base: Option<(f64, f64)> = None;
    for on in [false, true] {
        let d = market_tests::deps(MarketConfig { lifecycle_events: on, ..MarketConfig::default() }).await;
        let inviter = market_tests::user("bench-lifecycle");
        let (buyer, _) = market_tests::referred_user(&d, &inviter).await;
        let apply = ApplyReward(d.clone());
        let before = metering::reading().await;
        let trips0 = d.store.usage().round_trips();
        let started = Instant::now();
        for _ in 0..n {
            apply.process(market_tests::reward_event(&buyer, &inviter, 10, TriggerLimit::Unlimited)).await.unwrap();
        }
        let elapsed = started.elapsed();
        let trips = (d.store.usage().round_trips() - trips0) as f64 / n as f64;
        let after = metering::settled().await;
        let own = Units::between(&before, &after, "local").per(n as f64);
        let name = if on { "on (sequenced, in the outbox)" } else { "off (statistics shards)" };
        let (b_wru, b_ms) = *base.get_or_insert((own.write_units, elapsed.as_secs_f64()));
        println!(
            "{name:<32} reward transaction: {:>5.2} RRU {:>5.2} WRU in {trips:.1} calls, {:.1} ms each  (x{:.2} WRU, x{:.2} time)",
            own.read_units,
            own.write_units,
            elapsed.as_secs_f64() * 1e3 / n as f64,
            own.write_units / b_wru,
            elapsed.as_secs_f64() / b_ms
        );
        for (table, (r, w)) in &own.by_table {
            println!("    {table:<44} RRU {r:>5.2}  WRU {w:>5.2}");
        }
        let relay = if on { Some(metering::report("  its event after the commit (outbox stream -> relay -> SQS -> bridge)", &before, &after, n, &[])) } else { None };
        runs.insert(
            if on { "on".into() } else { "off".into() },
            json!({"read_units": own.read_units, "write_units": own.write_units, "dynamodb_calls": trips,
                   "ms_per_reward": elapsed.as_secs_f64() * 1e3 / n as f64,
                   "by_table": own.by_table.iter().map(|(t, (r, w))| (t.clone(), json!({"read_units": r, "write_units": w}))).collect::<serde_json::Map<_, _>>(),
                   "relay_per_event": relay}),
        );
    }
    market_bench::record("lifecycle_events", json!({"rewards": n, "runs": runs}));
}

/// Messages ready (not yet handed to a consumer) in the bridge's order.paid queue.
async fn ready(probe: &lapin::Channel) -> u32 {
    let options = QueueDeclareOptions { passive: true, durable: true, ..Default::default() };
    probe.queue_declare("helium-market.shop.order.paid".into(), options, FieldTable::default()).await.unwrap().message_count()
}

/// A reward group for the benchmark's inviter: what the rows "group: …" pay under.
async fn in_group(d: &market_tests::TestDeps, inviter: &market_domain::ids::UserId, rules: market_domain::group::RewardRules) {
    use market_domain::admin::{AdminRequest, PolicyChange, PolicyField, UpdateUserPolicy};
    use market_domain::admin_groups::{GroupChange, PutRewardGroup};
    use market_domain::group::GroupName;
    use market_domain::ports::PolicyOverrides;
    let name = GroupName::parse(format!("bench-{}", nanoid::nanoid!(8, &nanoid::alphabet::SAFE[2..]).to_lowercase())).unwrap();
    let admin = market_domain::ids::UserId::parse("bench-admin").unwrap();
    let change = GroupChange { name: name.clone(), rules, description: String::new(), expected_version: 0 };
    PutRewardGroup(d.clone()).process(AdminRequest { admin: admin.clone(), request_id: "bench".into(), body: change }).await.unwrap();
    let values = PolicyOverrides { group: Some(name), ..PolicyOverrides::default() };
    let body = PolicyChange { user: inviter.clone(), values, fields: vec![PolicyField::Group] };
    UpdateUserPolicy(d.clone()).process(AdminRequest { admin, request_id: "bench".into(), body }).await.unwrap();
}

/// A paid order's decision and reward (in-process, sequential), single level next to three
/// levels on the same kind of chain, and next to reward groups (a stored percentage; a cap,
/// a bounty and a tier on paying referrals): latency per order and the capacity units it costs.
async fn levels(n: usize) {
    use market_domain::group::{Bounty, BountyTrigger, Cap, CapInterval, Condition, Modifier, Payout, RewardRules};
    use market_domain::money::{Bps, Money};
    use market_domain::processors::{DecideOrderReward, OrderDecision, OrderPaid};
    println!("\nHelium Market levels benchmark: {n} paid orders each, decision + reward transaction");
    let three_levels = MarketConfig { level_bps: vec![Bps::new(500).unwrap(), Bps::new(200).unwrap()], ..MarketConfig::default() };
    let pct = |bps| Payout::Percentage { bps: Bps::new(bps).unwrap() };
    let stored = RewardRules { payout: pct(1000), trigger_limit: TriggerLimit::Unlimited, duration_months: None, cap: None, modifiers: vec![], bounty: None, level_bps: vec![] };
    let capped = RewardRules {
        cap: Some(Cap { interval: CapInterval::Month, amount: Money::from_minor(1_000_000_000) }),
        bounty: Some(Bounty { amount: Money::from_minor(500), on: BountyTrigger::FirstPayment }),
        modifiers: vec![Modifier { name: "tier 2".into(), when: vec![Condition::PayingReferralsAtLeast { count: 50 }], payout: pct(2500) }],
        ..stored.clone()
    };
    let rows = [
        ("single level", MarketConfig::default(), None),
        ("three levels (level_bps [500, 200])", three_levels, None),
        ("group: a stored percentage", MarketConfig::default(), Some(stored)),
        ("group: cap + bounty + tier on paying referrals", MarketConfig::default(), Some(capped)),
    ];
    let mut base = None;
    for (name, config, rules) in rows {
        let d = market_tests::deps(config).await;
        let (buyer, [inviter, ..]) = market_tests::chain(&d).await;
        if let Some(rules) = rules {
            in_group(&d, &inviter, rules).await;
        }
        let (cu0, trips0) = (d.store.usage().capacity_units(), d.store.usage().round_trips());
        let mut latencies = Vec::with_capacity(n);
        for _ in 0..n {
            let paid = OrderPaid {
                event_id: market_tests::event_id(),
                order_id: market_tests::order(),
                buyer: buyer.clone(),
                amount: Money::from_minor(10_000),
                currency: "USD".into(),
                occurred_at: market_domain::time::Clock::now(&market_domain::time::SystemClock),
                product_id: None, kind: None,
            };
            let started = Instant::now();
            let OrderDecision::Reward(ev) = DecideOrderReward(d.clone()).process(paid).await.unwrap() else { panic!("a reward") };
            ApplyReward(d.clone()).process(ev).await.unwrap();
            latencies.push(started.elapsed());
        }
        latencies.sort();
        let p = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)].as_secs_f64() * 1000.0;
        let cu = (d.store.usage().capacity_units() - cu0) / n as f64;
        let trips = (d.store.usage().round_trips() - trips0) as f64 / n as f64;
        let (b_cu, b_p50) = *base.get_or_insert((cu, p(0.5)));
        println!(
            "{name:<44} p50 {:>6.1} ms  p99 {:>6.1} ms  {cu:>5.1} CU in {trips:.1} calls per order  (x{:.2} CU, x{:.2} p50)",
            p(0.5), p(0.99), cu / b_cu, p(0.5) / b_p50
        );
    }
}

/// Outbound: withdrawals (the processor, in-process, sequential) -> outbox stream -> relay
/// function -> SQS -> bridge -> RabbitMQ `market`, until every event is in a bound queue;
/// next to the withdrawal transaction alone.
async fn outbound(d: &market_tests::TestDeps, n: usize) {
    use market_domain::ids::IdempotencyKey;
    use market_domain::money::Money;
    use market_domain::processors::{WithdrawAffiliateReward, WithdrawRequest};
    println!("\nHelium Market outbound benchmark: {n} withdrawals -> affiliate.withdrawn on RabbitMQ");
    let queue = market_tests::amqp::MarketQueue::bind().await;
    let user = market_tests::user("bench-withdrawer");
    market_tests::fund(d, &user, (n as i64) * 100).await;
    let withdraw = WithdrawAffiliateReward(d.clone());
    let started = Instant::now();
    for i in 0..n {
        let key = IdempotencyKey::parse(format!("bench-{i}")).unwrap();
        withdraw.process(WithdrawRequest { caller: user.clone(), amount: Money::from_minor(100), idempotency_key: key }).await.unwrap();
    }
    let raw_tx = started.elapsed();
    let mut received = 0;
    while received < n {
        received += queue.drain().await.iter().filter(|r| r.body["user_id"] == user.as_str()).count();
        assert!(started.elapsed() < Duration::from_secs(600), "outbound did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let e2e = started.elapsed();
    queue.delete().await;
    println!("{:<44} {}", "withdrawal transaction (debit+ledger+outbox+audit)", rate(n, raw_tx));
    println!("{:<44} {}", "end to end (withdrawn -> event on RabbitMQ)", rate(n, e2e));
}

fn refund_of(buyer: &market_domain::ids::UserId, order: &market_domain::ids::OrderId, amount: i64) -> OrderRefunded {
    OrderRefunded {
        event_id: market_tests::event_id(),
        refund_id: market_domain::ids::RefundId::parse("r1").unwrap(),
        order_id: order.clone(),
        buyer: buyer.clone(),
        amount: market_domain::money::Money::from_minor(amount),
        currency: "USD".into(),
        reason: market_domain::lifecycle::RefundReason::Refund,
        occurred_at: market_domain::time::Clock::now(&market_domain::time::SystemClock),
    }
}
