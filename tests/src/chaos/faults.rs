//! The fault schedule of a chaos run, drawn from the seed: one fault at a time, a few seconds
//! apart, until the workload ends; every fault is undone before the next one starts.

use std::process::Command;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;

#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// `SIGSTOP` on DynamoDB Local, `SIGCONT` after the pause: calls in flight time out,
    /// some after their request was applied (lost responses).
    PauseDynamo(Duration),
    /// Redis killed, restarted after the outage (configuration falls back to the cache).
    StopRedis(Duration),
    /// RabbitMQ's AMQP side stopped (`stop_app`), started after the outage.
    StopRabbit(Duration),
    /// The bridge `SIGKILL`ed, restarted after the gap.
    KillBridge(Duration),
    /// The local event sources (SQS pollers, outbox stream) `SIGKILL`ed, restarted after.
    KillEventSources(Duration),
}

impl Fault {
    pub fn name(&self) -> &'static str {
        match self {
            Fault::PauseDynamo(_) => "dynamodb paused",
            Fault::StopRedis(_) => "redis stopped",
            Fault::StopRabbit(_) => "rabbitmq stopped",
            Fault::KillBridge(_) => "bridge killed",
            Fault::KillEventSources(_) => "event sources killed",
        }
    }
}

/// (operations started before it, fault) pairs, each counted from the previous fault; the
/// run uses as many as fit in its operations. Spread over operations rather than seconds: a
/// slower machine makes a run longer, and a clock-based schedule then added faults, which
/// made it longer still (19 faults in 159 s in CI, against 8–11 in 93–118 s here).
pub fn schedule(rng: &mut StdRng, count: usize) -> Vec<(usize, Fault)> {
    (0..count)
        .map(|_| {
            let gap = rng.gen_range(250..600);
            let ms = |lo: u64, hi: u64, rng: &mut StdRng| Duration::from_millis(rng.gen_range(lo..=hi));
            let fault = match rng.gen_range(0..10) {
                0..=3 => Fault::PauseDynamo(ms(500, 5_000, rng)),
                4..=5 => Fault::StopRedis(ms(1_000, 5_000, rng)),
                6 => Fault::StopRabbit(ms(1_000, 4_000, rng)),
                7..=8 => Fault::KillBridge(ms(500, 3_000, rng)),
                _ => Fault::KillEventSources(ms(500, 3_000, rng)),
            };
            (gap, fault)
        })
        .collect()
}

fn pid(process: &str) -> String {
    let dir = std::env::var("MARKET_STACK_DIR").expect("MARKET_STACK_DIR: run inside `make test`");
    std::fs::read_to_string(format!("{dir}/pids/{process}.pid")).expect("pid file").trim().to_owned()
}

fn signal(process: &str, sig: &str) {
    let status = Command::new("kill").args([sig, &pid(process)]).status().expect("kill runs");
    assert!(status.success(), "kill {sig} {process}");
}

/// `scripts/stack.sh` is blocking: run it off the async workers.
async fn stack(command: &'static str, args: &'static [&'static str]) {
    tokio::task::spawn_blocking(move || crate::stack(command, args)).await.expect("stack.sh");
}

/// Sends `SIGCONT` to DynamoDB when dropped: a paused DynamoDB never outlives its fault.
struct Resume;

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &pid("dynamodb")]).status();
    }
}

/// Injects `fault` and undoes it after its duration.
pub async fn inject(fault: Fault) {
    match fault {
        Fault::PauseDynamo(d) => {
            signal("dynamodb", "-STOP");
            let _resume = Resume; // also when this task is dropped or panics
            tokio::time::sleep(d).await;
        }
        Fault::StopRedis(d) => {
            stack("redis", &["stop"]).await;
            tokio::time::sleep(d).await;
            stack("redis", &["start"]).await;
        }
        Fault::StopRabbit(d) => {
            stack("rabbitmq", &["stop"]).await;
            tokio::time::sleep(d).await;
            stack("rabbitmq", &["start"]).await;
        }
        Fault::KillBridge(d) => {
            signal("bridge", "-KILL");
            tokio::time::sleep(d).await;
            stack("bridge", &[]).await;
        }
        Fault::KillEventSources(d) => {
            signal("event-sources", "-KILL");
            tokio::time::sleep(d).await;
            stack("sources", &[]).await;
        }
    }
}
