//! The market configuration, as the Manage module writes it: one JSON document under a
//! configurable Redis key. Functions read it through [`RedisConfig`], a per-container cache
//! with a short TTL; when Redis is unreachable (or the document is missing or invalid) they
//! keep the last good value — or, before any, the fallback document / built-in defaults —
//! log a warning, and keep working. The admin API reads and writes the document through
//! the same type ([`ConfigStore`]).
//!
//! Environment: `REDIS_URL` (`redis://` or `rediss://` for TLS, e.g. ElastiCache with
//! in-transit encryption; empty = no Redis, the fallback is the configuration),
//! `MARKET_CONFIG_KEY` (default `helium:market:config`), `CONFIG_CACHE_TTL_MS` (default
//! 5000). Credentials are never environment text: the caller passes the ACL user (or AUTH
//! token) it fetched (market_lambda: from Secrets Manager at cold start).

use std::sync::{Arc, RwLock};

mod limiter;
pub use limiter::{RedisLimiter, SKIP_AFTER_FAILURE};
use std::time::{Duration, Instant};

use market_domain::config::MarketConfig;
use market_domain::ports::{ConfigSource, ConfigStore, Result};
use market_domain::MarketError;
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, AsyncConnectionConfig, IntoConnectionInfo};
use tracing::{info, warn};

pub const DEFAULT_KEY: &str = "helium:market:config";
pub const DEFAULT_TTL: Duration = Duration::from_secs(5);
/// Upper bound of one Redis call on a request path.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);
/// After a failed read Redis is asked again this soon, doubling per consecutive failure up
/// to the TTL: a transient failure (a timeout under load, a failover, a cold container's
/// slow connect) costs this much staleness, not a whole TTL; a long outage costs one
/// attempt per TTL.
const RETRY_FIRST: Duration = Duration::from_millis(100);

/// How long the cache stands after `failures` consecutive failed reads (0 = a good read).
fn valid_for(failures: u32, ttl: Duration) -> Duration {
    if failures == 0 {
        return ttl;
    }
    RETRY_FIRST.saturating_mul(1u32 << (failures - 1).min(16)).min(ttl)
}

/// Whom a connection authenticates as: an ACL user (ElastiCache RBAC, Redis 6+), or with no
/// name the AUTH token (the `default` user's password).
#[derive(Clone, PartialEq, Eq)]
pub struct RedisCredentials {
    pub username: Option<String>,
    pub password: String,
}

impl std::fmt::Debug for RedisCredentials {
    // Never the password (a credential in a log is a leaked credential).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCredentials").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

/// Where a connection's credentials come from, asked when a connection is first made (and
/// again after a failed attempt): a cold start never waits for them, and a secret that could
/// not be read at first is read on a later call, as Redis itself is reached again.
pub trait CredentialSource: Send + Sync + 'static {
    fn credentials(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = std::result::Result<RedisCredentials, String>> + Send + '_>>;
}

/// Credentials known up front (tests, tools).
impl CredentialSource for RedisCredentials {
    fn credentials(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = std::result::Result<RedisCredentials, String>> + Send + '_>> {
        Box::pin(std::future::ready(Ok(self.clone())))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigSetupError {
    #[error("REDIS_URL is not a valid Redis URL: {0}")]
    Url(String),
    #[error("CONFIG_CACHE_TTL_MS is not a number of milliseconds")]
    Ttl,
}

struct Cached {
    value: MarketConfig,
    /// Until when `value` is served without asking Redis; `None` = never asked.
    fresh_until: Option<Instant>,
    /// Consecutive reads that could not reach Redis.
    failures: u32,
}

/// One multiplexed connection per container, made on first use and replaced after an
/// error (a connection broken while idle — Redis restarted, failover — is dropped and the
/// next call connects afresh), every connect and call bounded by [`CALL_TIMEOUT`].
pub struct Redis {
    /// Where to connect, without credentials.
    info: redis::ConnectionInfo,
    credentials: Option<std::sync::Arc<dyn CredentialSource>>,
    /// Made on the first connect, with the credentials then fetched.
    client: tokio::sync::Mutex<Option<redis::Client>>,
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

impl Redis {
    /// The client, made once with the source's credentials (their fetch bounded like a call).
    async fn client(&self) -> Result<redis::Client> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let mut info = self.info.clone();
        if let Some(source) = &self.credentials {
            let c = match tokio::time::timeout(CALL_TIMEOUT * 4, source.credentials()).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return Err(MarketError::Unavailable(format!("redis credentials: {e}").into())),
                Err(_) => return Err(MarketError::Unavailable("redis credentials timed out".into())),
            };
            let mut settings = info.redis_settings().clone().set_password(c.password);
            if let Some(user) = c.username {
                settings = settings.set_username(user);
            }
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info).map_err(|e| MarketError::Unavailable(Box::new(e)))?;
        *slot = Some(client.clone());
        Ok(client)
    }

    async fn connection(&self) -> Result<MultiplexedConnection> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let client = self.client().await?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT));
        let c = match tokio::time::timeout(
            CALL_TIMEOUT * 2,
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                // Refused credentials (rotated, say) are fetched afresh on the next connect.
                if e.kind() == redis::ErrorKind::AuthenticationFailed || e.code() == Some("WRONGPASS") {
                    *self.client.lock().await = None;
                }
                return Err(MarketError::Unavailable(Box::new(e)));
            }
            Err(_) => return Err(MarketError::Unavailable("redis connect timed out".into())),
        };
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn forget(&self) {
        *self.conn.lock().await = None;
    }

    /// Runs `call` on the connection; after a failure on an existing connection, once more
    /// on a new one.
    pub(crate) async fn run<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let mut attempt = 0;
        loop {
            let conn = self.connection().await?;
            let error: MarketError = match tokio::time::timeout(CALL_TIMEOUT, call(conn)).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) => MarketError::Unavailable(Box::new(e)),
                Err(_) => MarketError::Unavailable("redis call timed out".into()),
            };
            self.forget().await;
            attempt += 1;
            if attempt > 1 {
                return Err(error);
            }
        }
    }
}

pub struct RedisConfig {
    redis: Option<Arc<Redis>>,
    key: String,
    ttl: Duration,
    cache: RwLock<Cached>,
    refresh: tokio::sync::Mutex<()>,
}

impl RedisConfig {
    /// Built once per cold start. The connection is made lazily, on the first read, so a
    /// cold start never fails or waits because Redis is down.
    pub fn from_env(fallback: MarketConfig, credentials: Option<std::sync::Arc<dyn CredentialSource>>) -> std::result::Result<Self, ConfigSetupError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let ttl = match var("CONFIG_CACHE_TTL_MS") {
            Some(ms) => {
                Duration::from_millis(ms.trim().parse().map_err(|_| ConfigSetupError::Ttl)?)
            }
            None => DEFAULT_TTL,
        };
        let key = var("MARKET_CONFIG_KEY").unwrap_or_else(|| DEFAULT_KEY.to_owned());
        let redis = match var("REDIS_URL") {
            Some(url) => Some(connect_lazily(&url, credentials)?),
            None => None,
        };
        Ok(Self::new(redis, key, ttl, fallback))
    }

    /// A source on `url` (tests, tools); functions use [`RedisConfig::from_env`].
    pub fn with_url(url: &str, credentials: Option<RedisCredentials>, key: &str, ttl: Duration, fallback: MarketConfig) -> std::result::Result<Self, ConfigSetupError> {
        let source = credentials.map(|c| std::sync::Arc::new(c) as std::sync::Arc<dyn CredentialSource>);
        Ok(Self::new(Some(connect_lazily(url, source)?), key.to_owned(), ttl, fallback))
    }

    pub fn new(redis: Option<Redis>, key: String, ttl: Duration, fallback: MarketConfig) -> Self {
        RedisConfig {
            redis: redis.map(Arc::new),
            key,
            ttl,
            cache: RwLock::new(Cached {
                value: fallback,
                fresh_until: None,
                failures: 0,
            }),
            refresh: Default::default(),
        }
    }

    /// A rate limiter on the same connection, its buckets under `<config key>:limit:`.
    pub fn limiter(&self) -> RedisLimiter {
        RedisLimiter::new(self.redis.clone(), format!("{}:limit:", self.key))
    }

    /// The cached value, if it may still be served.
    fn fresh(&self) -> Option<MarketConfig> {
        let c = match self.cache.read() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        c.fresh_until.filter(|until| Instant::now() < *until).map(|_| c.value.clone())
    }

    fn value(&self) -> MarketConfig {
        match self.cache.read() {
            Ok(c) => c.value.clone(),
            Err(poisoned) => poisoned.into_inner().value.clone(),
        }
    }

    /// `asked`: when the read began. The value is as old as that, not as the answer's
    /// arrival (a slow answer must not stretch the TTL past a write made meanwhile).
    /// `reached`: whether Redis answered (a missing or invalid document is an answer).
    fn store(&self, value: Option<MarketConfig>, asked: Instant, reached: bool) {
        let mut c = match self.cache.write() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(v) = value {
            if v != c.value {
                info!("market config updated");
            }
            c.value = v;
        }
        c.failures = if reached { 0 } else { c.failures.saturating_add(1) };
        c.fresh_until = Some(asked + valid_for(c.failures, self.ttl));
    }

    async fn get(&self) -> Result<Option<String>> {
        let Some(redis) = &self.redis else {
            return Ok(None);
        };
        let key = self.key.clone();
        redis
            .run(|mut c| {
                let key = key.clone();
                async move { c.get::<_, Option<String>>(key).await }
            })
            .await
    }

    /// Asks Redis; on any failure keeps what is cached. Only a valid document replaces it.
    async fn refresh(&self) {
        let asked = Instant::now();
        let (value, outcome, reached) = match self.get().await {
            Ok(Some(doc)) => match MarketConfig::from_json(&doc) {
                Ok(config) => (Some(config), "redis", true),
                Err(e) => {
                    warn!(key = %self.key, error = %e, "invalid market config document in Redis; keeping the last good one");
                    (None, "fallback_invalid", true)
                }
            },
            Ok(None) if self.redis.is_some() => {
                warn!(key = %self.key, "no market config document in Redis; keeping the last good one (or the defaults)");
                (None, "fallback_missing", true)
            }
            Ok(None) => (None, "fallback_no_redis", true),
            Err(e) => {
                warn!(error = %e, cause = ?std::error::Error::source(&e), "Redis unreachable; keeping the last good market config (or the defaults)");
                (None, "fallback_unreachable", false)
            }
        };
        config_read(outcome);
        self.store(value, asked, reached);
    }
}

fn connect_lazily(
    url: &str,
    credentials: Option<std::sync::Arc<dyn CredentialSource>>,
) -> std::result::Result<Redis, ConfigSetupError> {
    let info = url
        .into_connection_info()
        .map_err(|e| ConfigSetupError::Url(e.to_string()))?;
    // The URL is checked now (a start-up error), the connection made on first use.
    redis::Client::open(info.clone()).map_err(|e| ConfigSetupError::Url(e.to_string()))?;
    Ok(Redis {
        info,
        credentials,
        client: tokio::sync::Mutex::new(None),
        conn: tokio::sync::Mutex::new(None),
    })
}

/// `ConfigReads` by `Outcome` (market_lambda::metrics::names::CONFIG_READS; the `metrics`
/// facade, a no-op outside a function): `cache`, `redis`, or the `fallback_*` that applied.
fn config_read(outcome: &'static str) {
    metrics::counter!("ConfigReads", "Outcome" => outcome).increment(1);
}

impl ConfigSource for RedisConfig {
    async fn current(&self) -> MarketConfig {
        if self.redis.is_none() {
            config_read("fallback_no_redis");
            return self.value();
        }
        if let Some(value) = self.fresh() {
            config_read("cache");
            return value;
        }
        // One refresh at a time per container; concurrent callers (a hook handles its batch
        // concurrently) wait for it rather than use a value older than the TTL.
        let _guard = self.refresh.lock().await;
        if let Some(value) = self.fresh() {
            config_read("cache");
            return value;
        }
        self.refresh().await;
        self.value()
    }
}

impl ConfigStore for RedisConfig {
    async fn read(&self) -> Result<Option<MarketConfig>> {
        match self.get().await? {
            Some(doc) => match MarketConfig::from_json(&doc) {
                Ok(config) => Ok(Some(config)),
                Err(e) => {
                    // Treated as absent so an admin can replace it.
                    warn!(key = %self.key, error = %e, "invalid market config document in Redis");
                    Ok(None)
                }
            },
            None => Ok(None),
        }
    }

    async fn write(&self, config: &MarketConfig, replaces: u64) -> Result<bool> {
        config.validate()?;
        let Some(redis) = &self.redis else {
            return Err(MarketError::Unavailable(
                "no Redis configured (REDIS_URL)".into(),
            ));
        };
        let doc = config.to_json()?;
        let key = self.key.clone();
        let script = redis::Script::new(WRITE_OVER_VERSION);
        // The same document already stored counts as written, so the retry on a new
        // connection after an answer was lost is safe.
        let written: i64 = redis
            .run(|mut c| {
                let mut invocation = script.key(key.clone());
                invocation.arg(doc.clone()).arg(replaces);
                async move { invocation.invoke_async(&mut c).await }
            })
            .await?;
        if written == 1 {
            self.store(Some(config.clone()), Instant::now(), true);
        }
        Ok(written == 1)
    }
}

/// Compare-and-set of the configuration document (Redis runs a script atomically): SET
/// KEYS[1] = ARGV[1] if no document is stored, or the stored one's `version` is ARGV[2]
/// (absent or unreadable = 0), or it is ARGV[1] already; 1 if written, 0 if not.
const WRITE_OVER_VERSION: &str = r#"
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then
  local ok, doc = pcall(cjson.decode, current)
  local version = 0
  if ok and type(doc) == 'table' and type(doc.version) == 'number' then version = doc.version end
  if version ~= tonumber(ARGV[2]) then return 0 end
end
if current ~= ARGV[1] then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_read_is_retried_soon_then_less_often_up_to_the_ttl() {
        let ttl = Duration::from_secs(5);
        assert_eq!(valid_for(0, ttl), ttl);
        let waits: Vec<u64> = (1..=8).map(|f| valid_for(f, ttl).as_millis() as u64).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(valid_for(u32::MAX, ttl), ttl, "no overflow in a long outage");
        assert_eq!(valid_for(1, Duration::from_millis(50)), Duration::from_millis(50), "never beyond the TTL");
    }
}
