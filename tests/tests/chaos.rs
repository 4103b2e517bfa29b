//! The seeded randomized workload under faults (its own test binary: it pauses DynamoDB,
//! stops Redis and RabbitMQ and kills the bridge and event sources of the shared stack, so
//! nothing else runs meanwhile). `make test` runs a short run; `make soak` a long one.
//! Replay a run with `SEED=<seed>` (printed first), e.g.
//! `SEED=42 cargo test -p market-tests --test chaos -- --nocapture` against a stack.

use market_tests::chaos::{run, Settings};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_seeded_workload_under_faults_keeps_every_invariant() {
    market_tests::require_stack();
    let settings = Settings::from_env(5_000);
    println!("SEED={} CHAOS_OPS={}", settings.seed, settings.ops);
    let report = run(&settings).await;
    println!("{report}");
    // `make test` prints it after the tests (cargo shows a passing test's output only with --nocapture).
    if let Ok(path) = std::env::var("CHAOS_REPORT") {
        let _ = std::fs::write(path, report.to_string());
    }
    assert!(report.violations.is_empty(), "{} violations (replay with SEED={})", report.violations.len(), report.seed);
}
