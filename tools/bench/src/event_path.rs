//! Where one event's time goes on the local event path, stage by stage, next to the raw SQS
//! calls the path makes (issue 15). Each stage is measured alone on the same stack, in the
//! same run, so the ratios compare like with like:
//! - raw one hop: `SendMessageBatch` of 10, sequential, of the messages the bridge sends
//!   (the platform's body and the bridge's attributes);
//! - raw two hops: send to queue A, and per queue as many pollers as the local event sources
//!   run (taking turns receiving, as theirs do): receive 10, (A: send the batch to B),
//!   delete the batch — the SQS calls of the reward path without any function;
//! - the bridge alone (event sources paused): a backlog published to RabbitMQ while the
//!   bridge was paused, relayed to SQS — the bridge's rate, not the publisher's;
//! - hook and processor from that backlog (event sources resumed): SQS -> on-order-paid ->
//!   SQS -> process-affiliate-reward -> DynamoDB;
//! - end to end with everything running.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;
use market_tests::amqp::Publisher;

/// Pollers per queue in the raw two-hop path: as many as the local event sources run
/// (`EVENT_SOURCE_POLLERS`, default 4), so the raw path gets the same concurrency as ours.
pub fn pollers() -> usize {
    std::env::var("EVENT_SOURCE_POLLERS").ok().and_then(|v| v.parse().ok()).unwrap_or(4)
}

async fn scratch(sqs: &Client, name: &str) -> String {
    let out = sqs.create_queue().queue_name(format!("bench-{name}-{}", nanoid::nanoid!(6))).send().await.expect("create queue");
    out.queue_url().expect("queue url").to_owned()
}

/// An `order.paid` event as the bridge relays it: the platform's body and the AMQP
/// attributes the bridge adds, so the raw calls carry what ours carry.
fn event(n: usize) -> String {
    Publisher::order_paid_body(&format!("raw-ev-{n}"), &format!("raw-order-{n}"), "raw-buyer", 100)
}

/// Sends `bodies` as one batch, each with the bridge's three attributes.
async fn send_batch(sqs: &Client, queue: &str, bodies: impl Iterator<Item = String>) {
    let attribute = |v: &str| MessageAttributeValue::builder().data_type("String").string_value(v).build().expect("attribute");
    let entries: Vec<_> = bodies
        .enumerate()
        .map(|(i, b)| {
            let attributes = HashMap::from([
                ("amqp_exchange".to_owned(), attribute("shop")),
                ("amqp_routing_key".to_owned(), attribute("order.paid")),
                ("amqp_message_id".to_owned(), attribute(&format!("raw-{i}"))),
            ]);
            SendMessageBatchRequestEntry::builder().id(i.to_string()).message_body(b).set_message_attributes(Some(attributes)).build().expect("entry")
        })
        .collect();
    sqs.send_message_batch().queue_url(queue).set_entries(Some(entries)).send().await.expect("send batch");
}

/// Raw one hop: `n` messages as sequential batches of 10.
pub async fn raw_one_hop(sqs: &Client, n: usize) -> Duration {
    let queue = scratch(sqs, "raw1").await;
    let started = Instant::now();
    for chunk in 0..n.div_ceil(10) {
        send_batch(sqs, &queue, (0..10).map(|i| event(chunk * 10 + i))).await;
    }
    let elapsed = started.elapsed();
    let _ = sqs.delete_queue().queue_url(&queue).send().await;
    elapsed
}

/// One poller: receive up to 10 (long poll 1 s, the attributes a Lambda record carries),
/// forward the bodies to `next` if any,
/// delete the batch; until `done` counts `n` at the last queue. A queue's pollers take turns
/// receiving, as the local event sources' do (moto's receive is not safe against a
/// concurrent one on the same queue).
async fn poller(sqs: Client, queue: String, turn: Arc<tokio::sync::Mutex<()>>, next: Option<String>, done: Arc<AtomicUsize>, n: usize) {
    while done.load(Ordering::Relaxed) < n {
        let received = {
            let _turn = turn.lock().await;
            // The receive the local event sources make: a Lambda record carries the message
            // attributes and these system attributes.
            sqs.receive_message()
                .queue_url(&queue)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
                .message_system_attribute_names(MessageSystemAttributeName::SenderId)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateFirstReceiveTimestamp)
                .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
                .send()
                .await
        };
        let Ok(out) = received else { continue };
        let messages = out.messages();
        if messages.is_empty() {
            continue;
        }
        if let Some(next) = &next {
            send_batch(&sqs, next, messages.iter().map(|m| m.body().unwrap_or_default().to_owned())).await;
        }
        let entries: Vec<_> = messages
            .iter()
            .enumerate()
            .filter_map(|(i, m)| DeleteMessageBatchRequestEntry::builder().id(i.to_string()).receipt_handle(m.receipt_handle()?).build().ok())
            .collect();
        sqs.delete_message_batch().queue_url(&queue).set_entries(Some(entries)).send().await.expect("delete batch");
        if next.is_none() {
            done.fetch_add(messages.len(), Ordering::Relaxed);
        }
    }
}

/// Raw two hops: `n` messages sent to A (sequential batches of 10) while [`pollers`] per
/// queue move them A -> B and consume them from B; until all `n` are deleted from B.
pub async fn raw_two_hops(sqs: &Client, n: usize) -> Duration {
    let (a, b) = (scratch(sqs, "hop-a").await, scratch(sqs, "hop-b").await);
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    let (turn_a, turn_b) = (Arc::new(tokio::sync::Mutex::new(())), Arc::new(tokio::sync::Mutex::new(())));
    for _ in 0..pollers() {
        tasks.push(tokio::spawn(poller(sqs.clone(), a.clone(), turn_a.clone(), Some(b.clone()), done.clone(), n)));
        tasks.push(tokio::spawn(poller(sqs.clone(), b.clone(), turn_b.clone(), None, done.clone(), n)));
    }
    for chunk in 0..n.div_ceil(10) {
        send_batch(sqs, &a, (0..10).map(|i| event(chunk * 10 + i))).await;
    }
    while done.load(Ordering::Relaxed) < n {
        assert!(started.elapsed() < Duration::from_secs(600), "raw two hops did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    for t in tasks {
        let _ = t.await;
    }
    for q in [a, b] {
        let _ = sqs.delete_queue().queue_url(&q).send().await;
    }
    elapsed
}

/// Messages waiting (visible or in flight) in `queue`.
pub async fn queued(sqs: &Client, queue: &str) -> usize {
    let out = sqs
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("queue attributes");
    out.attributes().map_or(0, |a| a.values().filter_map(|v| v.parse::<usize>().ok()).sum())
}

/// A process of the local stack (`event-sources`, `bridge`), paused (`SIGSTOP`) while this
/// lives, resumed when dropped. With the event sources paused the bridge shares the local
/// SQS with nothing and what it relays waits in the queue; with the bridge paused a backlog
/// builds up in RabbitMQ.
pub struct Paused(String);

impl Paused {
    pub fn pause(process: &str) -> Paused {
        let dir = std::env::var("MARKET_STACK_DIR").expect("MARKET_STACK_DIR (the stack's env)");
        let pid = std::fs::read_to_string(format!("{dir}/pids/{process}.pid")).expect("the process's pid").trim().to_owned();
        signal("-STOP", &pid);
        Paused(pid)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        signal("-CONT", &self.0);
    }
}

fn signal(sig: &str, pid: &str) {
    let status = std::process::Command::new("kill").args([sig, pid]).status().expect("kill runs");
    assert!(status.success(), "kill {sig} {pid}");
}

/// CPU time (user + system, ms) every process on the machine has used so far, by command
/// name (`/proc/*/stat`): the difference across a stage shows which process the stage's
/// events cost, ours (functions, bridge, event sources) or the local services'.
pub fn cpu_by_command() -> HashMap<String, f64> {
    let tick_ms = 1000.0 / clock_ticks_per_second();
    let mut by = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return by };
    for entry in entries.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // "pid (comm) state ppid ... utime stime": comm may hold spaces, so split at its ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let comm = stat[open + 1..close].to_owned();
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let ticks: f64 = [11, 12].iter().filter_map(|&i| fields.get(i).and_then(|v| v.parse::<f64>().ok())).sum();
        *by.entry(comm).or_insert(0.0) += ticks * tick_ms;
    }
    by
}

/// `_SC_CLK_TCK`; 100 on every Linux this runs on (`getconf CLK_TCK`).
fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The CPU a stage cost per event, by command, largest first (from two [`cpu_by_command`]
/// snapshots).
pub fn cpu_per_event(before: &HashMap<String, f64>, after: &HashMap<String, f64>, events: usize) -> Vec<(String, f64)> {
    let mut per: Vec<(String, f64)> = after
        .iter()
        .map(|(comm, ms)| (comm.clone(), (ms - before.get(comm).copied().unwrap_or(0.0)) / events as f64))
        .filter(|(_, ms)| *ms > 0.0)
        .collect();
    per.sort_by(|a, b| b.1.total_cmp(&a.1));
    per
}
