//! The processors behind `scripts/coldstart.py`'s requests, called in-process with the
//! functions' clients (`market_lambda::aws::sdk_config`, the Redis config source) and the same
//! endpoints (over TLS when `coldstart.py --tls` runs this): what a warm invoke costs without
//! the Runtime API, the HTTP event and the gRPC-Web framing. The same requests as `coldstart.py`
//! sends (an owner per 11 created codes, as each of its processes is one); a refused request
//! (no balance) is timed like an answered one.
//!
//! Prints one JSON object, function (or floor) -> median ms of INPROC_RUNS (default 50) calls
//! after 5 warm-up calls.

use std::future::Future;
use std::time::Instant;

use market_domain::admin::ListRequest;
use market_domain::config::MarketConfig;
use market_domain::ids::{IdempotencyKey, UserId};
use market_domain::money::Money;
use market_domain::ports::ConfigSource;
use market_domain::processors::*;

async fn median_ms<F, Fut>(runs: usize, call: F) -> f64
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    for _ in 0..5 {
        call().await;
    }
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        call().await;
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    ms[ms.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), market_lambda::Error> {
    let runs: usize = std::env::var("INPROC_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(50).max(1);
    let sdk = market_lambda::aws::sdk_config()?;
    let store = market_storage::DynamoStore::from_env(&sdk).await?;
    let fallback = match std::env::var("MARKET_CONFIG_JSON") {
        Ok(doc) if !doc.trim().is_empty() => MarketConfig::from_json(&doc)?,
        _ => MarketConfig::default(),
    };
    let d = Deps::new(store, market_config::RedisConfig::from_env(fallback, None)?);
    let caller = UserId::parse("coldstart-user")?;
    let key = IdempotencyKey::parse("k")?;
    let mut out = serde_json::Map::new();
    let stats = GetAffiliateStats(d.clone());
    out.insert("get-affiliate-stats".into(), median_ms(runs, || async { let _ = stats.process(caller.clone()).await; }).await.into());
    let list = ListInviteCodes(d.clone());
    out.insert("list-invite-codes".into(), median_ms(runs, || async { let _ = list.process(caller.clone()).await; }).await.into());
    // A fresh owner per 11 calls, as each of coldstart.py's processes is one owner creating
    // 11 codes (its warm invokes list 1-10 active codes): never at the active-code limit.
    let create = CreateInviteCode::new(d.clone());
    let owners = std::sync::atomic::AtomicUsize::new(0);
    let owner = || UserId::parse(format!("coldstart-inproc-{}-{}", std::process::id(), owners.fetch_add(1, std::sync::atomic::Ordering::Relaxed) / 11));
    out.insert("create-invite-code".into(), median_ms(runs, || async {
        if let Ok(owner) = owner() {
            let _ = create.process(owner.into()).await;
        }
    }).await.into());
    let delete = DeleteInviteCode(d.clone());
    let request = || DeleteInviteCodeRequest { caller: caller.clone(), code: "ABCDEFGH".into() };
    out.insert("delete-invite-code".into(), median_ms(runs, || async { let _ = delete.process(request()).await; }).await.into());
    let withdraw = WithdrawAffiliateReward(d.clone());
    let request = || WithdrawRequest { caller: caller.clone(), amount: Money::from_minor(1), idempotency_key: key.clone() };
    out.insert("withdraw-affiliate-reward".into(), median_ms(runs, || async { let _ = withdraw.process(request()).await; }).await.into());
    let history = ListRewardHistory(d.clone());
    let request = || ListRequest { of: caller.clone(), page_size: 0, page_token: None };
    out.insert("list-reward-history".into(), median_ms(runs, || async { let _ = history.process(request()).await; }).await.into());
    // The floors' requests too (coldstart-floor's GetItems, and the config read of the shape
    // floors): the floor's own warm invoke / in-process is what the harness adds to a read
    // that does nothing else, the yardstick for the functions' ratios.
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let table = market_lambda::env("POLICY_TABLE")?;
    let gets = |n: usize| {
        let (client, table) = (&client, &table);
        futures::future::join_all((0..n).map(move |i| {
            let key = aws_sdk_dynamodb::types::AttributeValue::S(format!("coldstart-user-{i}"));
            client.get_item().table_name(table).key("user_id", key).send()
        }))
    };
    out.insert("coldstart-floor".into(), median_ms(runs, || async { gets(1).await; }).await.into());
    for (label, n) in [("floor-1+config", 1), ("floor-2+config", 2), ("floor-3+config", 3)] {
        let ms = median_ms(runs, || async { futures::join!(gets(n), d.config.current()); }).await;
        out.insert(label.into(), ms.into());
    }
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}
