//! Shared by the benchmark binaries: each records its figures as one section of
//! `bench.json` (`make bench` merges the sections; see scripts/bench.sh).

pub mod cost;
pub mod event_path;
pub mod metering;

use std::path::PathBuf;

/// Where the sections go: `BENCH_OUT` (scripts/bench.sh sets it), else `target/bench`.
fn out_dir() -> PathBuf {
    std::env::var_os("BENCH_OUT").map_or_else(|| PathBuf::from("target/bench"), PathBuf::from)
}

/// Writes `figures` as section `name` (`<BENCH_OUT>/<name>.json`). A benchmark's figures
/// are worth more than its file: a write that fails is reported, not fatal.
pub fn record(name: &str, figures: serde_json::Value) {
    let dir = out_dir();
    let path = dir.join(format!("{name}.json"));
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        let text = serde_json::to_string_pretty(&figures).map_err(std::io::Error::other)?;
        std::fs::write(&path, text)
    });
    if let Err(e) = written {
        eprintln!("could not write {}: {e}", path.display());
    }
}

/// Events (or calls) per second.
pub fn per_second(n: usize, d: std::time::Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}
