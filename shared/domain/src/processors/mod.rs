//! One processor per business operation, as in the original market module. Each takes a
//! validated request (the caller already authenticated by the transport), applies the rules
//! and asks the store to apply the decision atomically.

use std::future::Future;
use std::sync::Arc;

mod arrival;
mod balance;
mod codes;
mod history;
mod maturity;
mod overview;
mod personal_data;
mod refunds;
mod registration;
mod resolve;
mod reversal;
mod review;
mod rewards;

pub use arrival::*;
pub use balance::*;
pub use codes::*;
pub use history::*;
pub use maturity::*;
pub use overview::*;
pub use personal_data::*;
pub use refunds::*;
pub use registration::*;
pub use resolve::*;
pub use reversal::*;
pub use review::*;
pub use rewards::*;
/// The events the hooks decide (value types of [`crate::inbound`]), where they were before.
pub use crate::inbound::{OrderPaid, OrderRefunded, UserRegistered};

use crate::error::MarketError;
use crate::ports::{ConfigSource, MarketStore};
use crate::time::{Clock, SystemClock};

/// How many due-but-not-yet-folded commissions a read counts (the scheduled catch-up keeps
/// this small; it bounds the read, not correctness of money movements).
pub const DUE_READ_LIMIT: usize = 1000;

/// The actor of changes made on behalf of platform events.
pub const REGISTRATION_SOURCE: &str = "auth/user.registered";
pub const ORDER_SOURCE: &str = "shop/order.paid";
pub const REFUND_SOURCE: &str = "shop/order.refunded";
/// The actor of waiting for a buyer's registration (an order or refund that overtook it).
pub const ARRIVAL_SOURCE: &str = "market/arrival-order";
/// The actor of the scheduled catch-up of matured rewards.
pub const MATURATION_SOURCE: &str = "market/maturation";

/// The interface every operation implements.
pub trait Processor: Send + Sync {
    type Request: Send;
    type Response: Send;
    fn process(&self, request: Self::Request) -> impl Future<Output = Result<Self::Response, MarketError>> + Send;
}

/// What every processor is built from: built once per cold start, cloned cheaply.
pub struct Deps<S, C> {
    pub store: Arc<S>,
    pub config: Arc<C>,
    pub clock: Arc<dyn Clock>,
    /// The key of erased users' pseudonyms, where a function finds users by id (erasure, and
    /// the hooks that meet an erased buyer); `None` elsewhere.
    pub erasure_key: Option<Arc<dyn ErasureKey>>,
}

impl<S, C> Clone for Deps<S, C> {
    fn clone(&self) -> Self {
        Deps { store: self.store.clone(), config: self.config.clone(), clock: self.clock.clone(), erasure_key: self.erasure_key.clone() }
    }
}

impl<S: MarketStore, C: ConfigSource> Deps<S, C> {
    pub fn new(store: S, config: C) -> Self {
        Deps { store: Arc::new(store), config: Arc::new(config), clock: Arc::new(SystemClock), erasure_key: None }
    }
    pub fn with_erasure_key(mut self, key: Arc<dyn ErasureKey>) -> Self {
        self.erasure_key = Some(key);
        self
    }
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}
