//! `make bench` (load): LOAD_CLIENTS concurrent clients (default 200), each its own funded
//! user, call a random mix of every user RPC for LOAD_SECONDS (default 60) through the local
//! stack (gRPC-Web -> local-gateway -> cargo lambda watch -> function -> DynamoDB Local). Prints per RPC the
//! calls, p50/p99/max and the status codes, and fails (exit 1) on any `INTERNAL` or any
//! request that took longer than LOAD_HANG_SECONDS (default 30: hung).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use market_domain::config::MarketConfig;
use market_domain::money::Money;
use market_proto::v1::*;
use market_tests::rpc::Rpc;
use tonic::Code;

const RPCS: [&str; 6] = ["GetAffiliateStats", "ListInviteCodes", "CreateInviteCode", "DeleteInviteCode", "WithdrawAffiliateReward", "ListRewardHistory"];

#[derive(Default)]
struct Samples {
    latencies: Vec<Duration>,
    codes: BTreeMap<String, usize>,
}

fn var(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn pick(seed: &mut u64, n: usize) -> usize {
    // xorshift: a cheap per-client sequence (the mix, not cryptography).
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    (*seed % n as u64) as usize
}

async fn call(rpc: &Rpc, token: &str, which: usize, round: u64, codes: &mut Vec<String>) -> Result<(), tonic::Status> {
    let mut c = rpc.client();
    match RPCS[which] {
        "GetAffiliateStats" => c.get_affiliate_stats(Rpc::authed(GetAffiliateStatsRequest {}, token)).await.map(drop),
        "ListInviteCodes" => c.list_invite_codes(Rpc::authed(ListInviteCodesRequest::default(), token)).await.map(drop),
        "CreateInviteCode" => {
            let r = c.create_invite_code(Rpc::authed(CreateInviteCodeRequest { idempotency_key: format!("load-{round}") }, token)).await?;
            codes.extend(r.into_inner().code.map(|c| c.code));
            Ok(())
        }
        "DeleteInviteCode" => match codes.pop() {
            Some(code) => c.delete_invite_code(Rpc::authed(DeleteInviteCodeRequest { code }, token)).await.map(drop),
            None => c.list_invite_codes(Rpc::authed(ListInviteCodesRequest::default(), token)).await.map(drop),
        },
        "WithdrawAffiliateReward" => {
            let request = WithdrawAffiliateRewardRequest { amount: 10, idempotency_key: format!("load-{}", round / 2) };
            c.withdraw_affiliate_reward(Rpc::authed(request, token)).await.map(drop)
        }
        _ => c.list_reward_history(Rpc::authed(ListRewardHistoryRequest::default(), token)).await.map(drop),
    }
}

#[tokio::main]
async fn main() {
    let clients = var("LOAD_CLIENTS", 200) as usize;
    let seconds = var("LOAD_SECONDS", 60);
    let hang = Duration::from_secs(var("LOAD_HANG_SECONDS", 30));
    let rpc = Arc::new(Rpc::from_env().expect("run through `make bench`"));
    let config = MarketConfig { min_withdraw_amount: Money::from_minor(1), ..MarketConfig::default() };
    let d = market_tests::deps(config).await;

    // Every client is a user with a balance (a referral and a reward each), set up in-process.
    let users: Vec<_> = (0..clients).map(|i| market_tests::user(&format!("load{i}"))).collect();
    for chunk in users.chunks(20) {
        join_all(chunk.iter().map(|u| market_tests::fund(&d, u, 1_000_000))).await;
    }
    println!("load: {clients} clients, {seconds} s, mix of {}", RPCS.join(", "));

    let samples: Arc<Mutex<Vec<Samples>>> = Arc::new(Mutex::new((0..RPCS.len()).map(|_| Samples::default()).collect()));
    let hung = Arc::new(Mutex::new(Vec::new()));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks = users.iter().enumerate().map(|(i, user)| {
        let (rpc, samples, hung) = (rpc.clone(), samples.clone(), hung.clone());
        let token = rpc.token(user.as_str());
        async move {
            let (mut seed, mut round, mut codes) = (0x9E37_79B9_7F4A_7C15u64 ^ (i as u64 + 1), 0u64, Vec::new());
            while Instant::now() < deadline {
                let which = pick(&mut seed, RPCS.len());
                let t = Instant::now();
                let result = tokio::time::timeout(hang, call(&rpc, &token, which, round, &mut codes)).await;
                let took = t.elapsed();
                round += 1;
                let code = match result {
                    Err(_) => {
                        hung.lock().unwrap_or_else(|p| p.into_inner()).push(RPCS[which]);
                        "HUNG".to_owned()
                    }
                    Ok(Ok(())) => "OK".to_owned(),
                    Ok(Err(s)) => format!("{:?}", s.code()),
                };
                let mut all = samples.lock().unwrap_or_else(|p| p.into_inner());
                all[which].latencies.push(took);
                *all[which].codes.entry(code).or_default() += 1;
            }
        }
    });
    join_all(tasks).await;
    let elapsed = started.elapsed();

    let mut all = std::mem::take(&mut *samples.lock().unwrap_or_else(|p| p.into_inner()));
    let (mut total, mut internal) = (0usize, 0usize);
    let mut per_rpc = serde_json::Map::new();
    println!("| RPC | calls | p50 | p99 | max | status codes |");
    println!("|---|---|---|---|---|---|");
    for (name, s) in RPCS.iter().zip(all.iter_mut()) {
        s.latencies.sort();
        let at = |q: f64| s.latencies.get(((s.latencies.len().max(1) - 1) as f64 * q).round() as usize).copied().unwrap_or_default();
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
        total += s.latencies.len();
        internal += s.codes.get(&format!("{:?}", Code::Internal)).copied().unwrap_or(0);
        println!("| {name} | {} | {} | {} | {} | {:?} |", s.latencies.len(), ms(at(0.5)), ms(at(0.99)), ms(at(1.0)), s.codes);
        let f = |d: Duration| d.as_secs_f64() * 1000.0;
        per_rpc.insert(name.to_string(), serde_json::json!({ "calls": s.latencies.len(), "p50_ms": f(at(0.5)), "p99_ms": f(at(0.99)), "max_ms": f(at(1.0)), "codes": s.codes }));
    }
    let hung = hung.lock().unwrap_or_else(|p| p.into_inner()).len();
    println!("load: {total} calls in {:.1} s = {:.0} calls/s; INTERNAL {internal}; hung (> {} s) {hung}", elapsed.as_secs_f64(), total as f64 / elapsed.as_secs_f64(), hang.as_secs());
    market_bench::record(
        "load",
        serde_json::json!({ "clients": clients, "seconds": seconds, "calls": total, "calls_per_second": total as f64 / elapsed.as_secs_f64(),
                            "internal": internal, "hung": hung, "rpcs": per_rpc }),
    );
    if internal > 0 || hung > 0 {
        std::process::exit(1);
    }
}
