//! Domain errors -> gRPC status, in one place. Client-facing messages come from the
//! business variants only; infrastructure failures are logged with their cause and
//! answered with a generic message.

use market_domain::MarketError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tracing::{error, warn};

pub fn to_status(err: MarketError) -> Status {
    if let MarketError::RateLimited { retry_after } = &err {
        // The standard google.rpc.RetryInfo detail (grpc-status-details-bin), which gRPC
        // clients read; the message says it in words for the others.
        let wait = retry_after.as_secs().max(1);
        return Status::with_error_details(
            Code::ResourceExhausted,
            format!("too many requests, retry in {wait} s"),
            ErrorDetails::with_retry_info(Some(*retry_after)),
        );
    }
    let code = match &err {
        MarketError::InvalidArgument(_) | MarketError::Overflow => Code::InvalidArgument,
        MarketError::NotFound => Code::NotFound,
        MarketError::CodeLimitReached
        | MarketError::InsufficientBalance
        | MarketError::BelowMinimum
        | MarketError::AffiliateDisabled
        | MarketError::MarketDisabled
        | MarketError::NothingToReverse
        | MarketError::NotHeldForReview
        | MarketError::AlreadyReviewed
        | MarketError::BalanceNotSettled => Code::FailedPrecondition,
        MarketError::IdempotencyConflict => Code::AlreadyExists,
        MarketError::VersionConflict { .. } => Code::Aborted,
        MarketError::Contention | MarketError::CodeCollision | MarketError::Unavailable(_) => Code::Unavailable,
        MarketError::Internal(_) => Code::Internal,
        MarketError::RateLimited { .. } => Code::ResourceExhausted,
    };
    match code {
        Code::Unavailable => {
            warn!(error = %err, cause = ?std::error::Error::source(&err), "dependency unavailable");
            Status::unavailable("service temporarily unavailable, retry")
        }
        Code::Internal => {
            error!(error = %err, cause = ?std::error::Error::source(&err), "internal error");
            Status::internal("internal error")
        }
        code => Status::new(code, err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_internal_leaks() {
        let s = to_status(MarketError::Internal("table market-prod-Ledger: secret detail".into()));
        assert_eq!(s.code(), Code::Internal);
        assert_eq!(s.message(), "internal error");
        let s = to_status(MarketError::Unavailable("connection refused to 10.0.0.1".into()));
        assert_eq!(s.code(), Code::Unavailable);
        assert!(!s.message().contains("10.0.0.1"));
        assert_eq!(to_status(MarketError::CodeLimitReached).code(), Code::FailedPrecondition);
        assert_eq!(to_status(MarketError::IdempotencyConflict).code(), Code::AlreadyExists);
        assert_eq!(to_status(MarketError::NotFound).code(), Code::NotFound);
    }

    #[test]
    fn a_rate_limit_says_when_to_retry() {
        let s = to_status(MarketError::RateLimited { retry_after: std::time::Duration::from_millis(61_500) });
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(s.message(), "too many requests, retry in 61 s");
        assert_eq!(s.get_details_retry_info().and_then(|r| r.retry_delay), Some(std::time::Duration::from_millis(61_500)));
    }
}
