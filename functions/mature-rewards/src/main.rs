//! Scheduled (EventBridge): rewards whose holding period ended move from pending to
//! available in the stored statistics. The RPCs never wait for this — they count matured
//! rewards as available at the moment of the call — so a late or failed run only delays
//! the stored figures. Users come from the maturity index by day: never a Scan.

use lambda_runtime::{service_fn, LambdaEvent};
use market_domain::processors::{CatchUpMaturity, Processor};
use market_lambda::Market;
use serde_json::{json, Value};
use tracing::info;

#[tokio::main]
async fn main() -> Result<(), market_lambda::Error> {
    let market = Market::init().await?;
    let catch_up = std::sync::Arc::new(CatchUpMaturity(market.deps));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let catch_up = catch_up.clone();
        async move {
            let report = catch_up.process(()).await;
            market_lambda::metrics::flush(&[("RequestId", event.context.request_id.clone().into())]);
            let report = report?;
            info!(users = report.users, matured = report.matured, failed = report.failed, "maturity catch-up");
            Ok::<_, lambda_runtime::Error>(json!({"users": report.users, "matured": report.matured, "failed": report.failed}))
        }
    }))
    .await
}
