//! DynamoDB adapter of the Helium Market store ports, one file per aggregate:
//! [`codes`], [`referrals`] (policies and registration), [`commissions`] (rewards,
//! refunds, reversals, maturity), [`balance`] (withdrawals, adjustments), [`history`]
//! (listings and audit), [`parked`] (events waiting for their buyer's registration),
//! [`personal_data`] (a user's export), with the shared pieces in [`store`] (client, transactions),
//! [`ledger`] (item shapes), [`audit`], [`paging`] and [`expr`]. Key design: [`tables`].

mod audit;
mod balance;
mod codes;
mod erasure;
mod commissions;
mod error;
mod expr;
mod groups;
mod history;
mod ledger;
pub mod outbox;
mod paging;
mod parked;
mod personal_data;
mod referrals;
mod replacement;
mod sequence;
mod store;
pub mod tables;

pub use outbox::{Marked, OutboxRecord};
pub use store::{DynamoStore, Usage};
pub use tables::Tables;

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;

/// Timeouts suited to a 10 s Lambda: a dead dependency surfaces as `UNAVAILABLE` quickly
/// instead of hanging the invocation.
pub fn sdk_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5))
        .build()
}

/// The AWS configuration of tools and tests on a developer's machine: the SDK's full
/// credential and region chains (profiles, SSO, ...) with the functions' timeouts.
/// Endpoints come from the standard variables (`AWS_ENDPOINT_URL_DYNAMODB` locally).
/// Functions use `market_lambda::aws::sdk_config` (Lambda's environment only).
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).timeout_config(sdk_timeouts()).load().await
}

impl DynamoStore {
    /// Built once per cold start from the function's environment.
    pub async fn from_env(config: &aws_config::SdkConfig) -> Result<Self, tables::MissingEnv> {
        Ok(DynamoStore::new(aws_sdk_dynamodb::Client::new(config), Tables::from_env()?))
    }
}
