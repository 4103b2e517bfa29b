//! `RedisConfig` against the stack's real Redis, on a key of its own: the per-container
//! cache, concurrent readers after the TTL, invalid and missing documents, and an
//! unreachable Redis (fallback, no error, fast).

use std::time::{Duration, Instant};

use market_config::RedisConfig;
use market_domain::config::MarketConfig;
use market_domain::ports::{ConfigSource, ConfigStore};

const TTL: Duration = Duration::from_millis(300);

fn redis_url() -> String {
    std::env::var("REDIS_URL").expect("REDIS_URL: run inside `make test`")
}

fn doc(bps: u32) -> MarketConfig {
    MarketConfig::from_json(&format!(r#"{{"default_commission_bps":{bps}}}"#)).unwrap()
}

#[tokio::test]
async fn the_cache_follows_redis_within_the_ttl_and_keeps_the_last_good_value() {
    let key = format!("test:config:{}", nanoid::nanoid!(8));
    let fallback = doc(42);
    let source = RedisConfig::with_url(&redis_url(), None, &key, TTL, fallback.clone()).unwrap();
    let writer = RedisConfig::with_url(&redis_url(), None, &key, TTL, MarketConfig::default()).unwrap();

    // No document yet: the fallback.
    assert_eq!(source.current().await, fallback);
    assert_eq!(writer.read().await.unwrap(), None);

    writer.write(&doc(1500), 0).await.unwrap();
    assert_eq!(writer.read().await.unwrap(), Some(doc(1500)));
    tokio::time::sleep(TTL).await;
    assert_eq!(source.current().await.default_commission_bps, doc(1500).default_commission_bps);

    // After the TTL, every concurrent reader sees the new value (none is served the old one).
    writer.write(&doc(2500), 0).await.unwrap();
    tokio::time::sleep(TTL).await;
    let seen = futures::future::join_all((0..10).map(|_| source.current())).await;
    assert!(seen.iter().all(|c| c == &doc(2500)), "{:?}", seen.iter().map(|c| c.default_commission_bps).collect::<Vec<_>>());

    // An invalid or a missing document: the last good value stays.
    let mut raw = redis_client().await;
    redis_cmd(&mut raw, &["SET", &key, r#"{"default_commission_bps":20000}"#]).await;
    tokio::time::sleep(TTL).await;
    assert_eq!(source.current().await, doc(2500));
    redis_cmd(&mut raw, &["DEL", &key]).await;
    tokio::time::sleep(TTL).await;
    assert_eq!(source.current().await, doc(2500));

    // Invalid values are never written.
    let mut bad = doc(1000);
    bad.max_active_codes = 0;
    assert!(writer.write(&bad, 0).await.is_err());
    assert_eq!(writer.read().await.unwrap(), None);
}

/// The admin API's change writes only over the version it read (a compare-and-set in Redis),
/// and a retry of a write whose answer was lost is taken as written.
#[tokio::test]
async fn a_change_is_written_only_over_the_version_it_read() {
    let key = format!("test:config:{}", nanoid::nanoid!(8));
    let writer = RedisConfig::with_url(&redis_url(), None, &key, TTL, MarketConfig::default()).unwrap();
    let v1 = MarketConfig { version: 1, ..doc(1500) };
    assert!(writer.write(&v1, 0).await.unwrap(), "no document yet: written");
    assert!(writer.write(&v1, 0).await.unwrap(), "the same document again (a retry): taken as written");
    let late = MarketConfig { version: 1, ..doc(2500) };
    assert!(!writer.write(&late, 0).await.unwrap(), "another change came first: not written");
    assert_eq!(writer.read().await.unwrap(), Some(v1.clone()));
    let v2 = MarketConfig { version: 2, ..doc(2500) };
    assert!(writer.write(&v2, 1).await.unwrap());
    assert_eq!(writer.read().await.unwrap().map(|c| c.version), Some(2));
}

#[tokio::test]
async fn an_unreachable_redis_means_the_fallback_without_errors() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let source = RedisConfig::with_url(&format!("redis://127.0.0.1:{port}"), Some(market_config::RedisCredentials { username: None, password: "token".into() }), "k", TTL, doc(77)).unwrap();
    let started = Instant::now();
    assert_eq!(source.current().await, doc(77));
    assert!(started.elapsed() < Duration::from_secs(2), "bounded by the timeouts: {:?}", started.elapsed());
    assert!(source.read().await.is_err(), "the admin read reports it");
    assert!(source.write(&doc(1), 0).await.is_err());
}

#[tokio::test]
async fn a_failed_read_is_retried_within_moments_not_after_a_ttl() {
    // A cold container whose first read fails (Redis not there yet, or a timeout under
    // load) serves the fallback only until Redis answers again, not for a whole TTL.
    let key = format!("test:config:{}", nanoid::nanoid!(8));
    let writer = RedisConfig::with_url(&redis_url(), None, &key, TTL, MarketConfig::default()).unwrap();
    writer.write(&doc(1500), 0).await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let long_ttl = Duration::from_secs(60);
    let source = RedisConfig::with_url(&format!("redis://127.0.0.1:{port}"), None, &key, long_ttl, doc(77)).unwrap();
    assert_eq!(source.current().await, doc(77), "nothing listens yet: the fallback");

    let _redis = market_tests::silent_proxy::SilentProxy::start_at(&format!("127.0.0.1:{port}"), redis_url().trim_start_matches("redis://").to_owned()).await;
    let back = Instant::now();
    loop {
        if source.current().await == doc(1500) {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(2), "still the fallback {:?} after Redis came back (TTL {long_ttl:?})", back.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("the configured value after {:?} (TTL {long_ttl:?})", back.elapsed());
    // A good read restores the full TTL: later reads are served from the cache.
    writer.write(&doc(2500), 0).await.unwrap();
    assert_eq!(source.current().await, doc(1500));
}

#[tokio::test]
async fn an_update_after_redis_restarted_empty_is_written_even_if_it_changes_nothing() {
    // The admin function's cache still holds the value it wrote before Redis lost it: an
    // update to that same value must write the document again, not answer "unchanged".
    use market_domain::admin::{AdminRequest, ConfigChange, ConfigDeps, ConfigField, UpdateMarketConfig};
    use market_domain::processors::Processor;
    let key = format!("test:config:{}", nanoid::nanoid!(8));
    let configs = std::sync::Arc::new(RedisConfig::with_url(&redis_url(), None, &key, TTL, MarketConfig::default()).unwrap());
    // As in the function: one RedisConfig is both the cache and the admin's store.
    let deps = market_domain::processors::Deps { store: std::sync::Arc::new(market_tests::store().await), config: configs.clone(), clock: std::sync::Arc::new(market_domain::time::SystemClock), erasure_key: None };
    let update = UpdateMarketConfig(ConfigDeps { deps, configs: configs.clone() });
    let set = |bps: u32| {
        let body = ConfigChange { values: doc(bps), fields: vec![ConfigField::DefaultCommissionBps] };
        update.process(AdminRequest { admin: market_tests::user("admin"), request_id: nanoid::nanoid!(), body })
    };
    let first = MarketConfig { version: 1, ..doc(1500) };
    assert_eq!(set(1500).await.unwrap(), first);
    tokio::time::sleep(TTL).await;
    assert_eq!(set(1500).await.unwrap(), first, "unchanged: nothing written, the version kept");
    let mut raw = redis_client().await;
    redis_cmd(&mut raw, &["DEL", &key]).await; // Redis restarted without the document
    tokio::time::sleep(TTL).await;
    set(1500).await.unwrap();
    assert_eq!(configs.read().await.unwrap(), Some(MarketConfig { version: 2, ..doc(1500) }), "written again, as the next version");
}

#[tokio::test]
async fn a_hanging_redis_makes_the_rate_limiter_fail_open_fast() {
    use market_domain::ports::{RateLimit, RateLimiter};
    // A peer that accepts and never answers: a partition, not a refusal.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let limiter = RedisConfig::with_url(&format!("redis://{addr}"), None, "k", TTL, MarketConfig::default()).unwrap().limiter();
    let limit = RateLimit { burst: 10, per_hour: 60 };
    let started = Instant::now();
    assert!(limiter.take("resolve#1.2.3.4", limit).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(4), "bounded by the timeouts: {:?}", started.elapsed());
    // For a second after that, calls do not wait for Redis at all: open, and not reported as
    // another failure (the caller logs one warning per window, not one per call).
    let started = Instant::now();
    for _ in 0..20 {
        assert!(matches!(limiter.take("resolve#1.2.3.4", limit).await, Ok(None)));
    }
    assert!(started.elapsed() < Duration::from_millis(100), "{:?}", started.elapsed());
    held.abort();

    // On the real Redis: a bucket of 10 gives exactly 10 of 12 at once.
    let limiter = RedisConfig::with_url(&redis_url(), None, &format!("test:config:{}", nanoid::nanoid!(8)), TTL, MarketConfig::default()).unwrap().limiter();
    let taken = futures::future::join_all((0..12).map(|_| limiter.take("k", limit))).await;
    assert_eq!(taken.iter().filter(|t| matches!(t, Ok(None))).count(), 10, "{taken:?}");
    let wait = taken.iter().find_map(|t| t.as_ref().ok().copied().flatten()).expect("a wait");
    assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60), "{wait:?}");
}

async fn redis_client() -> tokio::net::TcpStream {
    let url = redis_url();
    let addr = url.trim_start_matches("redis://");
    tokio::net::TcpStream::connect(addr).await.unwrap()
}

/// A raw RESP command (the test writes what the Manage module could write, valid or not).
async fn redis_cmd(stream: &mut tokio::net::TcpStream, args: &[&str]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut out = format!("*{}\r\n", args.len());
    for a in args {
        out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream.write_all(out.as_bytes()).await.unwrap();
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(n > 0 && buf[0] != b'-', "redis error: {}", String::from_utf8_lossy(&buf[..n]));
}
