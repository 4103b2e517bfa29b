//! The one error type of the domain. Transports map it once: RPCs to gRPC status codes,
//! hooks to SQS batch-item failures. Messages of the business variants are safe to show
//! to clients; `Unavailable`/`Internal` carry their cause only as a `source` for logs.

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum MarketError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("not found")]
    NotFound,
    #[error("active invite code limit reached")]
    CodeLimitReached,
    #[error("insufficient available balance")]
    InsufficientBalance,
    #[error("amount is below the minimum withdrawal amount")]
    BelowMinimum,
    #[error("affiliate programme is disabled for this user")]
    AffiliateDisabled,
    #[error("market is disabled")]
    MarketDisabled,
    #[error("nothing left of this reward to reverse")]
    NothingToReverse,
    #[error("this reward is not held for review")]
    NotHeldForReview,
    #[error("this reward was reviewed before with the other decision")]
    AlreadyReviewed,
    /// An erasure of a user with money available, without saying to forfeit it.
    #[error("the user has an available balance: pay it out, or erase with forfeit_balance")]
    BalanceNotSettled,
    /// Too many requests of one caller (address or user): try again after `retry_after`.
    #[error("too many requests, retry later")]
    RateLimited { retry_after: std::time::Duration },
    #[error("idempotency key was already used for a different request")]
    IdempotencyConflict,
    #[error("amount out of range")]
    Overflow,
    /// A freshly generated invite code already exists (the create processor retries).
    #[error("invite code collision")]
    CodeCollision,
    /// A change based on a version that is no longer current (read again, decide again).
    #[error("changed meanwhile: the current version is {current}")]
    VersionConflict { current: u64 },
    /// Concurrent writers kept winning; safe to retry the whole operation.
    #[error("concurrent update, retry")]
    Contention,
    #[error("a dependency is unavailable")]
    Unavailable(#[source] BoxError),
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl MarketError {
    pub fn internal(msg: impl Into<String>) -> Self {
        MarketError::Internal(msg.into().into())
    }

    /// Whether retrying the same request later can succeed (SQS redelivery, client retry).
    pub fn is_transient(&self) -> bool {
        matches!(self, MarketError::Unavailable(_) | MarketError::Contention | MarketError::CodeCollision)
    }
}
