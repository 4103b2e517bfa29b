//! A seeded randomized workload under faults (TigerBeetle/Jepsen style) against the local
//! stack: many users at once create and delete codes racing their limit, register with
//! valid, invalid, own, deleted and expired codes, pay orders and refund them (each event
//! delivered 1–3×, some orders re-sent under a new event id), race withdrawals with repeated
//! keys, while admins change policies and the configuration — and a fault schedule from the
//! same seed pauses DynamoDB, stops Redis and RabbitMQ, and kills the bridge and the event
//! sources. After the queues drain, [`check`] verifies every invariant of SPEC §6 and the
//! model. `SEED=` replays a run's operations and faults.

pub mod check;
pub mod faults;
pub mod lifecycle;
pub mod rules;
pub mod workload;
pub mod world;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use market_domain::ports::ConfigStore;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::amqp::{market_events, MarketQueue};
use faults::Fault;
use workload::Via;
use world::World;

pub struct Settings {
    pub seed: u64,
    pub ops: usize,
    /// Operations in flight at once.
    pub workers: usize,
    pub inviters: usize,
    /// Share of operations sent through the functions and RabbitMQ rather than in process.
    pub e2e_percent: u32,
    pub faults: bool,
    /// DynamoDB's behaviour under contention (local-aws), `None` = as DynamoDB Local is.
    pub contention: Option<serde_json::Value>,
}

impl Settings {
    /// `SEED` (random when unset), `CHAOS_OPS` (else `default_ops`), `CHAOS_WORKERS`,
    /// `CHAOS_INVITERS`, `CHAOS_E2E_PERCENT`, `CHAOS_FAULTS=0` to run without faults.
    pub fn from_env(default_ops: usize) -> Settings {
        let var = |k: &str| std::env::var(k).ok().and_then(|v| v.trim().parse::<u64>().ok());
        Settings {
            seed: var("SEED").unwrap_or_else(rand::random),
            ops: var("CHAOS_OPS").map_or(default_ops, |v| v as usize),
            workers: var("CHAOS_WORKERS").map_or(36, |v| v as usize),
            inviters: var("CHAOS_INVITERS").map_or(16, |v| v as usize),
            e2e_percent: var("CHAOS_E2E_PERCENT").map_or(10, |v| v as u32),
            faults: var("CHAOS_FAULTS") != Some(0),
            // CHAOS_CONTENTION: the shim's settings as JSON, `off` for none; default AWS-like.
            contention: match std::env::var("CHAOS_CONTENTION").ok().as_deref().map(str::trim) {
                Some("off") => None,
                Some(json) if !json.is_empty() => Some(serde_json::from_str(json).expect("CHAOS_CONTENTION is JSON")),
                _ => Some(crate::local_aws::aws_like()),
            },
        }
    }
}

pub struct Report {
    pub seed: u64,
    pub ops: usize,
    pub end_to_end: usize,
    pub by_kind: BTreeMap<&'static str, usize>,
    pub requests: u64,
    /// DynamoDB calls the in-process operations made (the workload's own store), during the workload.
    pub dynamodb_calls: u64,
    /// Of those, transactions cancelled for a conflict with another one (and retried).
    pub conflicts: u64,
    pub retries: u64,
    pub published: u64,
    pub faults: Vec<Fault>,
    /// What the contention shim did: its settings and counters by operation.
    pub contention: Option<serde_json::Value>,
    pub redriven: usize,
    pub outbound: usize,
    /// Distinct lifecycle events of the inviters on RabbitMQ (every routing key).
    pub lifecycle_events: usize,
    /// Orders and refunds that overtook their buyer's registration, and how they ended.
    pub arrivals: check::Arrivals,
    /// Erasures requested (repeats included), and the users erased (buyers, inviters).
    pub erasures: (usize, usize, usize),
    /// The run's reward group: versions written, inviters moved into it, commissions it decided.
    pub rules: (u64, usize, usize),
    pub violations: Vec<String>,
    /// (operation, path) → (count, total time): where the workload's time goes.
    pub timings: BTreeMap<(&'static str, &'static str), (u32, Duration)>,
    pub workload_time: Duration,
    /// Waiting for the queues to drain (redeliveries after faults) and redriving dead letters.
    pub drain_time: Duration,
    pub total_time: Duration,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "chaos run  SEED={}", self.seed)?;
        writeln!(f, "  operations   {} ({} end to end): {:?}", self.ops, self.end_to_end, self.by_kind)?;
        writeln!(f, "  requests     {} ({} retries after failures), {} events published", self.requests, self.retries, self.published)?;
        let per_s = self.dynamodb_calls as f64 / self.workload_time.as_secs_f64().max(0.001);
        writeln!(f, "  dynamodb     {} calls in process during the workload ({per_s:.0}/s), {} transactions cancelled (conflict or throttle) and retried", self.dynamodb_calls, self.conflicts)?;
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for fault in &self.faults {
            *kinds.entry(fault.name()).or_default() += 1;
        }
        writeln!(f, "  faults       {} injected: {kinds:?}", self.faults.len())?;
        match &self.contention {
            Some(c) => {
                let n = |k: &str| c["counters"][k].as_object().map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum::<u64>());
                writeln!(
                    f,
                    "  aws shim     {}: {} conflicts, {} throttles, {} internal errors, {} index items behind; by operation {}",
                    c["settings"], n("conflicts"), n("throttles"), n("internal_errors"), n("lagged_items"), c["counters"]
                )?;
            }
            None => writeln!(f, "  aws shim     off (DynamoDB Local as it is)")?,
        }
        writeln!(f, "  drained      {} dead letters redriven, {} withdrawal events on RabbitMQ", self.redriven, self.outbound)?;
        writeln!(f, "  lifecycle    {} events on RabbitMQ, each inviter's sequence complete (invariant 11)", self.lifecycle_events)?;
        let a = &self.arrivals;
        writeln!(
            f,
            "  arrival      {} orders and {} refunds sent before their buyer's registration; decided late (after it): {} orders ({} rewarded), {} refunds; {} still waiting",
            a.overtaking_orders, a.overtaking_refunds, a.decided_orders, a.rewarded_late, a.decided_refunds, a.still_waiting
        )?;
        writeln!(
            f,
            "  erasure      {} requested, {} buyers and {} inviters erased mid-run (later events on the pseudonyms; no item holds their ids)",
            self.erasures.0, self.erasures.1, self.erasures.2
        )?;
        writeln!(
            f,
            "  rules        {} versions of the run's reward group, {} inviters moved into it, {} commissions decided by it (each recomputed from the version it recorded)",
            self.rules.0, self.rules.1, self.rules.2
        )?;
        let (workload, drain, total) = (self.workload_time.as_secs_f64(), self.drain_time.as_secs_f64(), self.total_time.as_secs_f64());
        writeln!(f, "  time         workload {workload:.1} s, drain {drain:.1} s, check and the rest {:.1} s, total {total:.1} s", total - workload - drain)?;
        let means: Vec<String> = self
            .timings
            .iter()
            .map(|((op, via), (n, t))| format!("{op}/{via} {:.0} ms", t.as_secs_f64() * 1000.0 / f64::from((*n).max(1))))
            .collect();
        writeln!(f, "  mean op time {}", means.join(", "))?;
        writeln!(f, "  violations   {}", self.violations.len())?;
        for v in self.violations.iter().take(50) {
            writeln!(f, "    - {v}")?;
        }
        Ok(())
    }
}

fn kind(op: &workload::Op) -> &'static str {
    use workload::Op::*;
    match op {
        CreateCode { .. } => "create_code",
        CreateExpiredCode { .. } => "create_expired_code",
        DeleteCode { .. } => "delete_code",
        Register { .. } => "register",
        LateRegistration { .. } => "late_registration",
        RegisterAgain { .. } => "register_again",
        Order { .. } => "order",
        ReuseOrder { .. } => "reuse_order",
        Refund { .. } => "refund",
        Withdraw { .. } => "withdraw",
        Policy { .. } => "policy",
        GlobalRate { .. } => "config",
        Stats { .. } => "stats",
        EraseBuyer { .. } => "erase_buyer",
        EraseInviter { .. } => "erase_inviter",
        GroupChange { .. } => "group_change",
    }
}

pub async fn run(s: &Settings) -> Report {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(s.seed);
    let ops = workload::draw(&mut rng, s.ops, s.inviters, s.e2e_percent);
    let schedule = faults::schedule(&mut rng, s.ops / 250 + 1);
    let world = Arc::new(World::new(format!("chaos-{}", nanoid::nanoid!(6, &nanoid::alphabet::SAFE[2..])), s.inviters).await);
    let original = world.stored_config().await;
    // The run's reward group, version 1; its inviters move in and out of it, it changes.
    world.change_group(0).await;
    let outbound = MarketQueue::bind().await;
    // As a notification service or finance would bind: every lifecycle event.
    let lifecycle_queue = MarketQueue::bind_key("affiliate.#").await;
    if let Some(settings) = &s.contention {
        if let Err(e) = crate::local_aws::set_contention(settings).await {
            world.sent().violations.push(format!("the contention shim could not be switched on: {e}"));
        }
    }

    let mut by_kind = BTreeMap::new();
    for (op, _) in &ops {
        *by_kind.entry(kind(op)).or_default() += 1;
    }
    let end_to_end = ops.iter().filter(|(_, via)| *via == Via::EndToEnd).count();
    let total_ops = ops.len();
    let queue = Arc::new(Mutex::new(ops.into_iter().collect::<VecDeque<_>>()));
    let timings = Arc::new(Mutex::new(BTreeMap::new()));

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let faults_task = tokio::spawn({
        let queue = queue.clone();
        // Operations the workers have taken so far: the fault schedule counts in operations.
        let taken = move || total_ops - queue.lock().unwrap_or_else(|p| p.into_inner()).len();
        async move {
            let mut injected = Vec::new();
            let mut due = 0;
            for (gap, fault) in schedule {
                due += gap;
                while taken() < due {
                    let mut stopped = stopped.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                        _ = stopped.wait_for(|s| *s) => return injected,
                    }
                }
                faults::inject(fault).await;
                injected.push(fault);
            }
            injected
        }
    });
    let faults_task = if s.faults { Some(faults_task) } else { faults_task.abort(); None };

    let workers: Vec<_> = (0..s.workers)
        .map(|_| {
            let (queue, world, timings) = (queue.clone(), world.clone(), timings.clone());
            tokio::spawn(async move {
                loop {
                    let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
                    let Some((op, via)) = next else { return };
                    let (name, path) = (kind(&op), if via == Via::InProcess { "in-process" } else { "e2e" });
                    let started = Instant::now();
                    world.execute(op, via).await;
                    let mut t = timings.lock().unwrap_or_else(|p| p.into_inner());
                    let e: &mut (u32, Duration) = t.entry((name, path)).or_default();
                    e.0 += 1;
                    e.1 += started.elapsed();
                }
            })
        })
        .collect();
    for w in workers {
        if let Err(e) = w.await {
            world.sent().violations.push(format!("a client task panicked: {e}"));
        }
    }
    // Every buyer registers in the end: the registrations still held back, after their
    // buyers' orders and refunds.
    world.deliver_held_back().await;
    let workload_time = started.elapsed();
    let dynamodb_calls = world.deps.store.usage().round_trips() + world.past.store.usage().round_trips();
    let conflicts = world.deps.store.usage().conflicts() + world.past.store.usage().conflicts();
    let _ = stop.send(true);
    let injected = match faults_task {
        Some(t) => t.await.unwrap_or_default(),
        None => vec![],
    };

    let drain_started = Instant::now();
    let redriven = drain(&world).await;
    let drain_time = drain_started.elapsed();
    // The shim stays on through the drain (redeliveries meet it too), off for the check.
    let contention = match &s.contention {
        Some(_) => {
            let report = crate::local_aws::contention().await.ok();
            let _ = crate::local_aws::set_contention(&serde_json::json!({})).await;
            report
        }
        None => None,
    };
    let (mut violations, withdrawn, arrivals, books) = check::check(&world).await;
    // An erased inviter's events: under their id before the erasure, their pseudonym after.
    let renames: std::collections::HashMap<String, String> = {
        let s = world.sent();
        world.inviters.iter().filter_map(|u| s.erased.get(u).map(|p| (u.to_string(), p.to_string()))).collect()
    };
    let users: Vec<&str> = world.inviters.iter().map(|u| u.as_str()).chain(renames.values().map(String::as_str)).collect();
    let received = market_events(&outbound, &withdrawn, &users, 180).await;
    let ids: std::collections::HashSet<String> = received.iter().filter_map(|r| r.message_id.clone()).collect();
    for id in ids.difference(&withdrawn) {
        violations.push(format!("withdrawal event {id} on RabbitMQ without a withdrawal"));
    }
    outbound.delete().await;
    let (lifecycle_events, lifecycle_violations) = lifecycle_events(&lifecycle_queue, &books, &users, &renames).await;
    violations.extend(lifecycle_violations);
    lifecycle_queue.delete().await;
    world.restore_config(original).await;
    let timings = std::mem::take(&mut *timings.lock().unwrap_or_else(|p| p.into_inner()));

    Report {
        seed: s.seed,
        ops: s.ops,
        end_to_end,
        by_kind,
        requests: world.counters.requests.load(Ordering::Relaxed),
        dynamodb_calls,
        conflicts,
        retries: world.counters.retries.load(Ordering::Relaxed),
        published: world.counters.published.load(Ordering::Relaxed),
        faults: injected,
        contention,
        redriven,
        outbound: ids.len(),
        lifecycle_events,
        arrivals,
        erasures: {
            let s = world.sent();
            let inviters = s.erased.keys().filter(|u| world.inviters.contains(u)).count();
            (s.erasures, s.erased.len() - inviters, inviters)
        },
        rules: {
            let s = world.sent();
            (s.group_versions, s.grouped_ever.len(), s.group_commissions)
        },
        violations,
        timings,
        workload_time,
        drain_time,
        total_time: started.elapsed(),
    }
}

/// Every lifecycle event of the inviters, once all the ledger names arrived (and the relay
/// and the outbound queue are quiet); matured batches, which the ledger cannot name, are
/// waited for a little longer. Returns the distinct events and invariant 11's violations.
async fn lifecycle_events(
    queue: &MarketQueue,
    books: &std::collections::HashMap<market_domain::ids::UserId, lifecycle::Books>,
    users: &[&str],
    renames: &std::collections::HashMap<String, String>,
) -> (usize, Vec<String>) {
    let expected: std::collections::HashSet<String> = books.iter().flat_map(|(u, b)| lifecycle::expected_ids(u, &b.history)).collect();
    let expected = as_published(expected, renames).await;
    let mut received = market_events(queue, &expected, users, 180).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let as_stored: Vec<_> = received.iter().map(|r| lifecycle::renamed(r, renames)).collect();
        let (violations, counted) = lifecycle::check(books, &as_stored);
        if violations.is_empty() || Instant::now() > deadline {
            return (counted, violations);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mine = |r: &crate::amqp::Received| r.body["affiliate_id"].as_str().is_some_and(|u| users.contains(&u));
        received.extend(queue.drain().await.into_iter().filter(|r| mine(r)));
    }
}

/// The ids the events were published under: an erased inviter's events committed before
/// their erasure name their id (`renames`: id → pseudonym), the later ones the pseudonym;
/// the outbox (which keeps both) tells which.
async fn as_published(expected: std::collections::HashSet<String>, renames: &std::collections::HashMap<String, String>) -> std::collections::HashSet<String> {
    if renames.is_empty() {
        return expected;
    }
    let store = crate::store().await;
    let mut out = std::collections::HashSet::with_capacity(expected.len());
    for id in expected {
        let before = renames.iter().find_map(|(old, p)| id.strip_prefix(&format!("{p}#")).map(|rest| format!("{old}#{rest}")));
        match before {
            Some(before) if store.outbox_record(&id).await.ok().flatten().is_none() => out.insert(before),
            _ => out.insert(id),
        };
    }
    out
}

/// The platform-side queues the bridge consumes.
const BRIDGE_QUEUES: [&str; 3] = ["helium-market.auth.user.registered", "helium-market.shop.order.paid", "helium-market.shop.order.refunded"];

/// Waits until nothing is in flight (every source queue and the bridge's RabbitMQ queues
/// empty, three polls in a row), moves this run's dead letters back to their queues (what
/// an operator does after an outage) and waits again. Returns how many were redriven.
async fn drain(world: &World) -> usize {
    let sqs = aws_sdk_sqs::Client::new(&market_storage::aws_config().await);
    let queues: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with("QUEUE_URL_")).collect();
    let sources: Vec<String> = queues.iter().filter(|(k, _)| k.ends_with("Queue")).map(|(_, u)| u.clone()).collect();
    quiet(&sqs, &sources).await;
    let mut redriven = 0;
    for (name, dlq) in queues.iter().filter(|(k, _)| k.ends_with("DLQ")) {
        let source = std::env::var(name.replace("DLQ", "Queue")).ok();
        loop {
            let Ok(out) = sqs.receive_message().queue_url(dlq).max_number_of_messages(10).visibility_timeout(30).send().await else { break };
            let mine: Vec<_> = out.messages().iter().filter(|m| m.body().is_some_and(|b| b.contains(&world.run))).collect();
            for m in &out.messages().to_vec() {
                if !mine.iter().any(|x| x.message_id() == m.message_id()) {
                    let _ = sqs.change_message_visibility().queue_url(dlq).receipt_handle(m.receipt_handle().unwrap_or_default()).visibility_timeout(0).send().await;
                }
            }
            if mine.is_empty() {
                break;
            }
            for m in mine {
                if let Some(source) = &source {
                    let sent = sqs.send_message().queue_url(source).message_body(m.body().unwrap_or_default()).set_message_attributes(m.message_attributes().cloned()).send().await;
                    if sent.is_ok() {
                        let _ = sqs.delete_message().queue_url(dlq).receipt_handle(m.receipt_handle().unwrap_or_default()).send().await;
                        redriven += 1;
                    }
                }
            }
        }
    }
    if redriven > 0 {
        quiet(&sqs, &sources).await;
    }
    redriven
}

async fn quiet(sqs: &aws_sdk_sqs::Client, queues: &[String]) {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut calm = 0;
    while calm < 3 {
        // What is still in flight, by queue: the failure names it.
        let mut busy: Vec<String> = Vec::new();
        for q in queues {
            let name = q.rsplit('/').next().unwrap_or(q);
            match sqs.get_queue_attributes().queue_url(q).attribute_names(A::ApproximateNumberOfMessages).attribute_names(A::ApproximateNumberOfMessagesNotVisible).send().await {
                Ok(out) => {
                    let n: u64 = out.attributes().map_or(1, |a| a.values().map(|v| v.parse::<u64>().unwrap_or(1)).sum());
                    if n > 0 {
                        busy.push(format!("{name}: {n}"));
                    }
                }
                Err(e) => busy.push(format!("{name}: unreadable ({e})")),
            }
        }
        match crate::amqp::queued(&BRIDGE_QUEUES).await {
            Ok(0) => {}
            Ok(n) => busy.push(format!("bridge's RabbitMQ queues: {n}")),
            Err(e) => busy.push(format!("bridge's RabbitMQ queues: unreadable ({e})")),
        }
        assert!(Instant::now() < deadline || busy.is_empty(), "the queues did not drain in 240 s: {}", busy.join(", "));
        calm = if busy.is_empty() { calm + 1 } else { 0 };
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
}

impl World {
    async fn stored_config(&self) -> Option<market_domain::config::MarketConfig> {
        self.configs().read().await.ok().flatten()
    }

    /// Puts back the document the run found (or the functions' fallback), so the runs and
    /// tests after this one see the configuration they expect.
    async fn restore_config(&self, original: Option<market_domain::config::MarketConfig>) {
        let mut doc = original.unwrap_or_else(|| self.fallback.clone());
        let deadline = Instant::now() + Duration::from_secs(30);
        // Over whatever version the run left (the document's values as found, a new version).
        while Instant::now() < deadline {
            let stored = self.stored_config().await.map_or(0, |c| c.version);
            doc.version = stored + 1;
            if let Ok(true) = self.configs().write(&doc, stored).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
