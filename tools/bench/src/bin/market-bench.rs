//! `make bench`: per RPC, latency through the local stack (gRPC-Web -> cargo lambda watch ->
//! release function -> DynamoDB Local) next to the same operation run directly in-process
//! (the processor's DynamoDB calls through the SDK, no HTTP, gRPC or Lambda), with the
//! DynamoDB round trips and capacity units per call, binary size and peak RSS.
//! Not a test: it prints figures to compare. BENCH_N sets the calls per RPC (default 200).

use std::future::Future;
use std::time::{Duration, Instant};

use market_domain::config::MarketConfig;
use market_domain::ids::{IdempotencyKey, UserId};
use market_domain::money::Money;
use market_domain::processors::{self as p, CreateInviteCode, DeleteInviteCode, GetAffiliateStats, ListInviteCodes, Processor, WithdrawAffiliateReward, WithdrawRequest};
use market_proto::v1::*;
use market_proto::v1::MarketConfig as MarketConfigPb;
use market_bench::cost::{self, PerMillion, Units};
use market_tests::rpc::Rpc;

struct Figures {
    p50: Duration,
    p99: Duration,
}

fn figures(mut samples: Vec<Duration>) -> Figures {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    Figures { p50: at(0.5), p99: at(0.99) }
}

async fn time_n<F, Fut>(n: usize, mut f: F) -> Vec<Duration>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        f(i).await;
        samples.push(started.elapsed());
    }
    samples
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// Peak RSS (VmHWM) of the running release function process, in MiB.
fn peak_rss_mib(binary: &str) -> Option<f64> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let first = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        if String::from_utf8_lossy(first).ends_with(&format!("target/release/{binary}")) {
            let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
            let kb: f64 = status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
            return Some(kb / 1024.0);
        }
    }
    None
}

fn binary_mib(binary: &str) -> f64 {
    std::fs::metadata(format!("target/release/{binary}")).map(|m| m.len() as f64 / 1048576.0).unwrap_or(f64::NAN)
}

/// The meter of `local-aws` (what each function's calls would be billed), now.
async fn meter_now() -> serde_json::Value {
    market_tests::local_aws::meter().await.expect("local-aws's meter: run through `make bench`")
}

/// What function `binary` consumed per call since reading `before`, over `calls` calls.
async fn metered(before: &serde_json::Value, binary: &str, calls: usize) -> Units {
    Units::between(before, &meter_now().await, binary).per(calls as f64)
}

/// Per RPC, the units its function consumed in AWS's terms and their cost per million calls.
fn print_costs(rows: &[(String, Units, PerMillion)]) {
    println!("\nCost per million calls at us-east-1 list prices (units measured by local-aws's meter on the function's own calls):");
    println!(
        "{:<28} {:>6} {:>6} {:>10} {:>10} {:>10} {:>10}",
        "rpc", "RRU", "WRU", "DynamoDB $", "Lambda $", "HTTP API $", "total $"
    );
    for (name, u, c) in rows {
        println!(
            "{name:<28} {:>6.1} {:>6.1} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
            u.read_units,
            u.write_units,
            c.dynamodb,
            c.lambda_requests + c.lambda_duration,
            c.api_gateway,
            c.total()
        );
    }
    println!("(Lambda: a request and the call's p50 through the local gateway as billed duration, 128 MB arm64; no free tiers, logs or data transfer)");
}

fn uid(p: &str) -> UserId {
    market_tests::user(p)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let rpc = Rpc::from_env().expect("run through `make bench`");
    let mut client = rpc.client();
    // Direct path: same DynamoDB, same processors, in-process; its store counts usage.
    let config = MarketConfig { min_withdraw_amount: Money::from_minor(1), max_active_codes: 50, ..MarketConfig::default() };
    let d = market_tests::deps(config).await;

    let reader = uid("bench-reader");
    market_tests::fund(&d, &reader, 1_000_000).await;
    for _ in 0..3 {
        CreateInviteCode::new(d.clone()).process(reader.clone().into()).await.expect("code");
    }
    let reader_token = rpc.token(reader.as_str());
    let spender = uid("bench-spender");
    market_tests::fund(&d, &spender, 10_000_000).await;
    let spender_token = rpc.token(spender.as_str());

    println!("Helium Market RPC benchmark: {n} sequential calls per RPC after 10 warm-up calls");
    println!("RPC = gRPC-Web -> cargo lambda watch -> release function -> DynamoDB Local");
    println!("direct = the same processor and DynamoDB calls in-process (no HTTP, gRPC, Lambda)\n");
    println!(
        "{:<24} {:>9} {:>9} {:>10} {:>10} {:>7} {:>11} {:>8} {:>10} {:>9}",
        "rpc", "rpc p50", "rpc p99", "direct p50", "direct p99", "ratio", "ddb calls", "CU/call", "binary", "peak RSS"
    );

    let rows = std::cell::RefCell::new(serde_json::Map::new());
    let costs = std::cell::RefCell::new(Vec::new());
    let row = |name: &str, binary: &str, units: Units, rpc_s: Vec<Duration>, direct_s: Vec<Duration>, trips: f64, cu: f64| {
        let (r, dd) = (figures(rpc_s), figures(direct_s));
        // One HTTP API request and one invocation per call, billed for the call's p50 (the
        // whole round trip through the local gateway: an upper bound of Lambda's duration).
        let cost = PerMillion::of(&units, 1.0, r.p50.as_secs_f64() * 1e3, 1.0);
        costs.borrow_mut().push((name.to_owned(), units.clone(), cost.clone()));
        rows.borrow_mut().insert(
            name.to_owned(),
            serde_json::json!({
                "rpc_p50_ms": r.p50.as_secs_f64() * 1e3, "rpc_p99_ms": r.p99.as_secs_f64() * 1e3,
                "direct_p50_ms": dd.p50.as_secs_f64() * 1e3, "direct_p99_ms": dd.p99.as_secs_f64() * 1e3,
                "ratio_p50": r.p50.as_secs_f64() / dd.p50.as_secs_f64(), "dynamodb_calls": trips, "capacity_units": cu,
                "binary_mib": binary_mib(binary), "peak_rss_mib": peak_rss_mib(binary),
                "metered": {"read_units": units.read_units, "write_units": units.write_units, "dynamodb_requests": units.dynamodb_requests, "sqs_requests": units.sqs_requests},
                "usd_per_million": cost.json(),
            }),
        );
        println!(
            "{:<24} {:>7}ms {:>7}ms {:>8}ms {:>8}ms {:>6.1}x {:>11.1} {:>8.1} {:>7.1}MiB {:>6}MiB",
            name,
            ms(r.p50),
            ms(r.p99),
            ms(dd.p50),
            ms(dd.p99),
            r.p50.as_secs_f64() / dd.p50.as_secs_f64(),
            trips,
            cu,
            binary_mib(binary),
            peak_rss_mib(binary).map(|m| format!("{m:.1}")).unwrap_or_else(|| "?".into()),
        );
    };
    let usage = |d: &market_tests::TestDeps| (d.store.usage().round_trips(), d.store.usage().capacity_units());
    macro_rules! direct {
        ($body:expr) => {{
            let before = usage(&d);
            let samples = time_n(n, $body).await;
            let after = usage(&d);
            let trips = (after.0 - before.0) as f64 / n as f64;
            let cu = (after.1 - before.1) / n as f64;
            (samples, trips, cu)
        }};
    }

    let m0 = meter_now().await;
    // GetAffiliateStats
    time_n(10, |_| async { client.clone().get_affiliate_stats(Rpc::authed(GetAffiliateStatsRequest {}, &reader_token)).await.expect("rpc"); }).await;
    let rpc_s = time_n(n, |_| async { client.clone().get_affiliate_stats(Rpc::authed(GetAffiliateStatsRequest {}, &reader_token)).await.expect("rpc"); }).await;
    let (direct_s, trips, cu) = direct!(|_| async { GetAffiliateStats(d.clone()).process(reader.clone()).await.expect("direct"); });
    let units = metered(&m0, "get-affiliate-stats", n + 10).await;
    row("GetAffiliateStats", "get-affiliate-stats", units, rpc_s, direct_s, trips, cu);

    let m0 = meter_now().await;
    // ListInviteCodes
    time_n(10, |_| async { client.clone().list_invite_codes(Rpc::authed(ListInviteCodesRequest {}, &reader_token)).await.expect("rpc"); }).await;
    let rpc_s = time_n(n, |_| async { client.clone().list_invite_codes(Rpc::authed(ListInviteCodesRequest {}, &reader_token)).await.expect("rpc"); }).await;
    let (direct_s, trips, cu) = direct!(|_| async { ListInviteCodes(d.clone()).process(reader.clone()).await.expect("direct"); });
    let units = metered(&m0, "list-invite-codes", n + 10).await;
    row("ListInviteCodes", "list-invite-codes", units, rpc_s, direct_s, trips, cu);

    let m0 = meter_now().await;
    // CreateInviteCode: a fresh user per call, so every call creates.
    let users: Vec<UserId> = (0..n + 10).map(|_| uid("bench-creator")).collect();
    let tokens: Vec<String> = users.iter().map(|u| rpc.token(u.as_str())).collect();
    let mut codes = Vec::new();
    for i in 0..10 {
        client.create_invite_code(Rpc::authed(CreateInviteCodeRequest::default(), &tokens[n + i])).await.expect("rpc");
    }
    let mut rpc_s = Vec::new();
    for t in tokens.iter().take(n) {
        let started = Instant::now();
        let code = client.create_invite_code(Rpc::authed(CreateInviteCodeRequest::default(), t)).await.expect("rpc").into_inner().code.expect("code");
        rpc_s.push(started.elapsed());
        codes.push(code.code);
    }
    let direct_users: Vec<UserId> = (0..n).map(|_| uid("bench-direct")).collect();
    let mut direct_codes = Vec::new();
    let before = usage(&d);
    let mut direct_s = Vec::new();
    for u in &direct_users {
        let started = Instant::now();
        direct_codes.push(CreateInviteCode::new(d.clone()).process(u.clone().into()).await.expect("direct").code);
        direct_s.push(started.elapsed());
    }
    let after = usage(&d);
    let units = metered(&m0, "create-invite-code", n + 10).await;
    row("CreateInviteCode", "create-invite-code", units, rpc_s, direct_s, (after.0 - before.0) as f64 / n as f64, (after.1 - before.1) / n as f64);

    let m0 = meter_now().await;
    // DeleteInviteCode: each of those codes once.
    let mut rpc_s = Vec::new();
    for (t, code) in tokens.iter().zip(&codes) {
        let started = Instant::now();
        client.delete_invite_code(Rpc::authed(DeleteInviteCodeRequest { code: code.clone() }, t)).await.expect("rpc");
        rpc_s.push(started.elapsed());
    }
    let before = usage(&d);
    let mut direct_s = Vec::new();
    for (u, code) in direct_users.iter().zip(&direct_codes) {
        let started = Instant::now();
        DeleteInviteCode(d.clone()).process(p::DeleteInviteCodeRequest { caller: u.clone(), code: code.to_string() }).await.expect("direct");
        direct_s.push(started.elapsed());
    }
    let after = usage(&d);
    let units = metered(&m0, "delete-invite-code", n).await;
    row("DeleteInviteCode", "delete-invite-code", units, rpc_s, direct_s, (after.0 - before.0) as f64 / n as f64, (after.1 - before.1) / n as f64);

    let m0 = meter_now().await;
    // WithdrawAffiliateReward: a new idempotency key per call.
    time_n(10, |i| {
        let mut c = client.clone();
        let t = spender_token.clone();
        async move {
            c.withdraw_affiliate_reward(Rpc::authed(WithdrawAffiliateRewardRequest { amount: 1, idempotency_key: format!("warm-{i}") }, &t)).await.expect("rpc");
        }
    })
    .await;
    let rpc_s = time_n(n, |i| {
        let mut c = client.clone();
        let t = spender_token.clone();
        async move {
            c.withdraw_affiliate_reward(Rpc::authed(WithdrawAffiliateRewardRequest { amount: 1, idempotency_key: format!("rpc-{i}") }, &t)).await.expect("rpc");
        }
    })
    .await;
    let (direct_s, trips, cu) = direct!(|i| {
        let d = d.clone();
        let spender = spender.clone();
        async move {
            let req = WithdrawRequest { caller: spender, amount: Money::from_minor(1), idempotency_key: IdempotencyKey::parse(format!("direct-{i}")).expect("key") };
            WithdrawAffiliateReward(d).process(req).await.expect("direct");
        }
    });
    let units = metered(&m0, "withdraw-affiliate-reward", n + 10).await;
    row("WithdrawAffiliateReward", "withdraw-affiliate-reward", units, rpc_s, direct_s, trips, cu);

    let m0 = meter_now().await;
    // ListRewardHistory: the first page (25) of the spender's history.
    let history = |t: String| {
        let mut c = client.clone();
        async move {
            c.list_reward_history(Rpc::authed(ListRewardHistoryRequest { page_size: 25, page_token: String::new() }, &t)).await.expect("rpc");
        }
    };
    time_n(10, |_| history(spender_token.clone())).await;
    let rpc_s = time_n(n, |_| history(spender_token.clone())).await;
    let (direct_s, trips, cu) = direct!(|_| async {
        let req = market_domain::admin::ListRequest { of: spender.clone(), page_size: 25, page_token: None };
        market_domain::processors::ListRewardHistory(d.clone()).process(req).await.expect("direct");
    });
    let units = metered(&m0, "list-reward-history", n + 10).await;
    row("ListRewardHistory (25)", "list-reward-history", units, rpc_s, direct_s, trips, cu);

    // Admin RPCs (MarketAdminService), as administrator `bench-admin`.
    use market_domain::admin::{self as adm, AdminRequest};
    let admin_token = rpc.admin_token("bench-admin");
    let admin = rpc.admin();
    let admin_id = uid("bench-admin");
    macro_rules! rpc_n {
        ($method:ident, |$i:ident| $request:expr) => {{
            let f = |$i: usize| {
                let mut c = admin.clone();
                let r = Rpc::authed($request, &admin_token);
                async move {
                    c.$method(r).await.expect("admin rpc");
                }
            };
            time_n(10, f).await;
            time_n(n, f).await
        }};
    }
    let m0 = meter_now().await;
    // GetUserPolicy
    let rpc_s = rpc_n!(get_user_policy, |_i| GetUserPolicyRequest { user_id: reader.to_string() });
    let (direct_s, trips, cu) = direct!(|_| async { adm::GetUserPolicy(d.clone()).process(reader.clone()).await.expect("direct"); });
    let units = metered(&m0, "get-user-policy", n + 10).await;
    row("GetUserPolicy", "get-user-policy", units, rpc_s, direct_s, trips, cu);
    let m0 = meter_now().await;
    // UpdateUserPolicy: alternate the rate, so every call writes.
    let rpc_s = rpc_n!(update_user_policy, |i| UpdateUserPolicyRequest {
        user_id: spender.to_string(),
        overrides: Some(PolicyOverrides { commission_bps: Some(1500 + (i % 2) as u32), ..Default::default() }),
        update: vec!["commission_bps".into()],
    });
    let (direct_s, trips, cu) = direct!(|i| {
        let (d, reader, admin_id) = (d.clone(), reader.clone(), admin_id.clone());
        async move {
            let values = market_domain::ports::PolicyOverrides {
                commission_bps: Some(market_domain::money::Bps::new(1500 + (i % 2) as u32).expect("bps")),
                ..Default::default()
            };
            let change = adm::PolicyChange { user: reader, values, fields: vec![adm::PolicyField::CommissionBps] };
            adm::UpdateUserPolicy(d).process(AdminRequest { admin: admin_id, request_id: format!("bench-{i}"), body: change }).await.expect("direct");
        }
    });
    let units = metered(&m0, "update-user-policy", n + 10).await;
    row("UpdateUserPolicy", "update-user-policy", units, rpc_s, direct_s, trips, cu);
    let m0 = meter_now().await;
    // ListLedger / ListAuditTrail: the first page (25) of the spender's ~430 entries.
    let rpc_s = rpc_n!(list_ledger, |_i| ListLedgerRequest { user_id: spender.to_string(), page_size: 25, page_token: String::new() });
    let (direct_s, trips, cu) = direct!(|_| async {
        market_domain::processors::ListRewardHistory(d.clone()).process(adm::ListRequest { of: spender.clone(), page_size: 25, page_token: None }).await.expect("direct");
    });
    let units = metered(&m0, "list-ledger", n + 10).await;
    row("ListLedger (25)", "list-ledger", units, rpc_s, direct_s, trips, cu);
    let m0 = meter_now().await;
    let rpc_s = rpc_n!(list_audit_trail, |_i| ListAuditTrailRequest { user_id: spender.to_string(), page_size: 25, ..Default::default() });
    let (direct_s, trips, cu) = direct!(|_| async {
        let req = adm::ListRequest { of: adm::TrailOf::User(spender.clone()), page_size: 25, page_token: None };
        adm::ListAuditTrail(d.clone()).process(req).await.expect("direct");
    });
    let units = metered(&m0, "list-audit-trail", n + 10).await;
    row("ListAuditTrail (25)", "list-audit-trail", units, rpc_s, direct_s, trips, cu);
    let m0 = meter_now().await;
    // AdjustBalance: a credit of 1 with a new key per call.
    let target = uid("bench-adjusted");
    let rpc_s = rpc_n!(adjust_balance, |i| AdjustBalanceRequest {
        user_id: target.to_string(),
        amount: 1,
        reason: "bench".into(),
        idempotency_key: format!("rpc-{i}"),
        allow_negative: false,
    });
    let (direct_s, trips, cu) = direct!(|i| {
        let (d, target, admin_id) = (d.clone(), target.clone(), admin_id.clone());
        async move {
            let body = p::Adjustment {
                user: target,
                amount: Money::from_minor(1),
                reason: "bench".into(),
                idempotency_key: IdempotencyKey::parse(format!("direct-{i}")).expect("key"),
                allow_negative: false,
            };
            p::AdjustBalance(d).process(AdminRequest { admin: admin_id, request_id: format!("bench-a{i}"), body }).await.expect("direct");
        }
    });
    let units = metered(&m0, "adjust-balance", n + 10).await;
    row("AdjustBalance", "adjust-balance", units, rpc_s, direct_s, trips, cu);

    let m0 = meter_now().await;
    // ExportUserData: the first page of the reader's data (every section at once, up to 50
    // records each; each call's own audit record joins the trail it reads).
    let rpc_s = rpc_n!(export_user_data, |_i| ExportUserDataRequest { user_id: reader.to_string(), page_token: String::new() });
    let (direct_s, trips, cu) = direct!(|i| {
        let (d, reader, admin_id) = (d.clone(), reader.clone(), admin_id.clone());
        async move {
            let body = p::ExportRequest { user: reader, page_token: None };
            p::ExportUserData(d).process(AdminRequest { admin: admin_id, request_id: format!("bench-e{i}"), body }).await.expect("direct");
        }
    });
    let units = metered(&m0, "export-user-data", n + 10).await;
    row("ExportUserData (a page)", "export-user-data", units, rpc_s, direct_s, trips, cu);

    // EraseUser: a fresh buyer per call (referred through one code, one order rewarded), as
    // an erasure request usually names; nothing to forfeit. Direct: the stack's key.
    let eraser_aff = uid("bench-eraser-aff");
    let code = CreateInviteCode::new(d.clone()).process(eraser_aff.clone().into()).await.expect("code").code;
    let mut erased = Vec::new();
    for _ in 0..(2 * n + 10) {
        let b = uid("bench-erased");
        let ev = market_domain::inbound::UserRegistered { event_id: market_tests::event_id(), user: b.clone(), invite_code: Some(code.to_string()), occurred_at: d.clock.now() };
        p::RegisterUser(d.clone()).process(ev).await.expect("registered");
        market_tests::pay(&d, &b, &market_tests::order(), 10_000).await;
        erased.push(b);
    }
    let (rpc_users, direct_users) = erased.split_at(n + 10);
    let m0 = meter_now().await;
    // Not rpc_n!: its warm-up and its run count from 0, and each erasure needs its own user.
    let erase_rpc = |user: &UserId| {
        let (mut c, r) = (admin.clone(), Rpc::authed(EraseUserRequest { user_id: user.to_string(), forfeit_balance: false }, &admin_token));
        async move {
            c.erase_user(r).await.expect("admin rpc");
        }
    };
    time_n(10, |i| erase_rpc(&rpc_users[n + i])).await;
    let rpc_s = time_n(n, |i| erase_rpc(&rpc_users[i])).await;
    let dk = d.clone().with_erasure_key(market_tests::stack_erasure_key().await);
    let (direct_s, trips, cu) = direct!(|i| {
        let (d, user, admin_id) = (dk.clone(), direct_users[i].clone(), admin_id.clone());
        async move {
            let body = p::EraseRequest { user, forfeit_balance: false };
            p::EraseUser(d).process(AdminRequest { admin: admin_id, request_id: format!("bench-x{i}"), body }).await.expect("direct");
        }
    });
    let units = metered(&m0, "erase-user", n + 10).await;
    row("EraseUser (a buyer)", "erase-user", units, rpc_s, direct_s, trips, cu);
    // Configuration (Redis): direct = the same processors on the stack's Redis.
    let redis = std::sync::Arc::new(market_config::RedisConfig::from_env(MarketConfig::default(), None).expect("redis config"));
    let cd = adm::ConfigDeps {
        deps: market_domain::processors::Deps { store: d.store.clone(), config: redis.clone(), clock: d.clock.clone(), erasure_key: None },
        configs: redis,
    };
    let usage_c = |cd: &adm::ConfigDeps<market_storage::DynamoStore, market_config::RedisConfig, market_config::RedisConfig>| {
        (cd.deps.store.usage().round_trips(), cd.deps.store.usage().capacity_units())
    };
    let m0 = meter_now().await;
    let rpc_s = rpc_n!(get_market_config, |_i| GetMarketConfigRequest {});
    let before = usage_c(&cd);
    let direct_s = time_n(n, |_| async { adm::GetMarketConfig(cd.clone()).process(()).await.expect("direct"); }).await;
    let after = usage_c(&cd);
    let units = metered(&m0, "get-market-config", n + 10).await;
    row("GetMarketConfig (Redis)", "get-market-config", units, rpc_s, direct_s, (after.0 - before.0) as f64 / n as f64, (after.1 - before.1) / n as f64);
    let m0 = meter_now().await;
    // UpdateMarketConfig: alternate code_retention_days 31/30 (every call writes; ends on 30).
    let retention = |i: usize| if i % 2 == 0 { 31 } else { 30 };
    let rpc_s = rpc_n!(update_market_config, |i| UpdateMarketConfigRequest {
        config: Some(MarketConfigPb { code_retention_days: retention(i), ..Default::default() }),
        update: vec!["code_retention_days".into()],
    });
    let before = usage_c(&cd);
    let direct_s = time_n(n, |i| {
        let (cd, admin_id) = (cd.clone(), admin_id.clone());
        async move {
            let values = MarketConfig { code_retention_days: retention(i), ..MarketConfig::default() };
            let change = adm::ConfigChange { values, fields: vec![adm::ConfigField::CodeRetentionDays] };
            adm::UpdateMarketConfig(cd).process(AdminRequest { admin: admin_id, request_id: format!("bench-c{i}"), body: change }).await.expect("direct");
        }
    })
    .await;
    let after = usage_c(&cd);
    let units = metered(&m0, "update-market-config", n + 10).await;
    row("UpdateMarketConfig (Redis)", "update-market-config", units, rpc_s, direct_s, (after.0 - before.0) as f64 / n as f64, (after.1 - before.1) / n as f64);
    println!("\nddb calls (issued in parallel where they are reads) and CU/call are measured on the direct path (the same calls the function makes).");
    print_costs(&costs.into_inner());
    market_bench::record("rpc", serde_json::json!({ "calls_per_rpc": n, "rpcs": rows.into_inner(), "prices": cost::prices_json() }));
}
