//! Token buckets in Redis (the public code check's per-address limit): one hash per key,
//! refilled continuously, taken from atomically by a Lua script that uses Redis's clock
//! (every container agrees on time). Keys expire once a bucket would be full again. After a
//! failure, calls fail open at once for a second instead of each waiting for Redis.

use std::sync::Arc;
use std::time::{Duration, Instant};

use market_domain::ports::{RateLimit, RateLimiter, Result};

use crate::Redis;

/// KEYS[1] = bucket; ARGV = burst, tokens per hour. Returns 0 (taken) or the milliseconds
/// until a token is back.
const TAKE: &str = r"
local burst = tonumber(ARGV[1])
local per_ms = tonumber(ARGV[2]) / 3600000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * per_ms)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) / per_ms) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / per_ms) + 1000)
return wait
";

/// After a failure the limiter is not asked for this long: a Redis that hangs (a partition)
/// would otherwise cost every check its timeouts; failing open at once keeps it fast.
pub const SKIP_AFTER_FAILURE: Duration = Duration::from_secs(1);

pub struct RedisLimiter {
    redis: Option<Arc<Redis>>,
    prefix: String,
    script: redis::Script,
    /// Until when calls fail open without asking Redis.
    skip_until: std::sync::Mutex<Option<Instant>>,
}

impl RedisLimiter {
    pub(crate) fn new(redis: Option<Arc<Redis>>, prefix: String) -> Self {
        RedisLimiter { redis, prefix, script: redis::Script::new(TAKE), skip_until: std::sync::Mutex::new(None) }
    }

    fn skipping(&self) -> bool {
        let until = *self.skip_until.lock().unwrap_or_else(|e| e.into_inner());
        until.is_some_and(|u| Instant::now() < u)
    }

    fn failed(&self) {
        *self.skip_until.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + SKIP_AFTER_FAILURE);
    }
}

impl RateLimiter for RedisLimiter {
    async fn take(&self, key: &str, limit: RateLimit) -> Result<Option<Duration>> {
        // No Redis configured (a deployment without one): nothing to count with.
        let Some(redis) = &self.redis else { return Ok(None) };
        if limit.per_hour == 0 || limit.burst == 0 {
            return Ok(None);
        }
        // Open without asking Redis for a moment after a failure; the failure itself was
        // reported (and logged by the caller) once, not on every call of the window.
        if self.skipping() {
            return Ok(None);
        }
        let bucket = format!("{}{key}", self.prefix);
        // EVALSHA, loading the script on first use; not retried on a new connection after
        // a failure of the existing one (a take may have happened): `run` retries once,
        // which at worst takes one extra token.
        let wait: u64 = redis
            .run(|mut c| {
                let mut invocation = self.script.key(&bucket);
                invocation.arg(limit.burst).arg(limit.per_hour);
                async move { invocation.invoke_async(&mut c).await }
            })
            .await
            .inspect_err(|_| self.failed())?;
        Ok((wait > 0).then(|| Duration::from_millis(wait)))
    }
}
