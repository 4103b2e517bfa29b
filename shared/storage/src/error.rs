//! SDK errors -> domain errors. Transient failures (network, throttling, DynamoDB's 5xx)
//! become `Unavailable` (retryable); the rest `Internal`. The SDK error stays as `source`
//! for logs and never reaches a client.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use market_domain::MarketError;

const TRANSIENT_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "LimitExceededException",
    // A single write that met a transaction in flight on the same item (retry it).
    "TransactionConflictException",
];

pub(crate) fn sdk_error<E, R>(err: SdkError<E, R>) -> MarketError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let transient = match &err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(se) => se.err().code().is_some_and(|c| TRANSIENT_CODES.contains(&c)),
        _ => false,
    };
    if transient {
        MarketError::Unavailable(Box::new(err))
    } else {
        MarketError::Internal(Box::new(err))
    }
}

pub(crate) fn mapping_error(err: serde_dynamo::Error) -> MarketError {
    MarketError::Internal(Box::new(err))
}

pub(crate) fn build_error(err: aws_sdk_dynamodb::error::BuildError) -> MarketError {
    MarketError::Internal(Box::new(err))
}
