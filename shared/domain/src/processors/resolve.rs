//! The public code check of the signup page: whether a code is usable, nothing about its
//! owner; limited per caller address so the code space cannot be enumerated.

use tracing::warn;

use crate::code::InviteCode;
use crate::config::RESOLVE_BURST;
use crate::error::MarketError;
use crate::ports::{ConfigSource, MarketStore, RateLimit, RateLimiter};

use super::{Deps, Processor};

pub struct ResolveRequest {
    /// As typed (case-insensitive); anything that is not a code is simply not usable.
    pub code: String,
    /// The caller's address, as API Gateway saw it.
    pub address: String,
}

pub struct ResolveInviteCode<S, C, L> {
    pub deps: Deps<S, C>,
    pub limiter: std::sync::Arc<L>,
}

impl<S: MarketStore, C: ConfigSource, L: RateLimiter> Processor for ResolveInviteCode<S, C, L> {
    type Request = ResolveRequest;
    /// Whether the code is usable: it exists, is active and has not expired.
    type Response = bool;

    async fn process(&self, req: ResolveRequest) -> Result<bool, MarketError> {
        let d = &self.deps;
        let config = d.config.current().await;
        if config.resolve_per_hour > 0 {
            let limit = RateLimit { burst: RESOLVE_BURST.min(config.resolve_per_hour), per_hour: config.resolve_per_hour };
            match self.limiter.take(&format!("resolve#{}", req.address), limit).await {
                Ok(None) => {}
                Ok(Some(retry_after)) => return Err(MarketError::RateLimited { retry_after }),
                // Fails open: the check stays available; API Gateway's route throttling
                // still bounds the rate.
                Err(e) => warn!(error = %e, "rate limiter unreachable; the code check is not limited per address"),
            }
        }
        let Ok(code) = InviteCode::parse(req.code.trim()) else { return Ok(false) };
        let now = d.clock.now();
        Ok(d.store.get_code(&code).await?.is_some_and(|c| c.is_usable(now)))
    }
}
