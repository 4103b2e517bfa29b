//! Scheduled (EventBridge): orders and refunds that waited for a registration that never
//! came (`registration_wait_days`) are dropped, each audited on its buyer and counted
//! (`WaitingEvents`, `expired`). What to drop comes from the expiry index by day: never a Scan.

use lambda_runtime::{service_fn, LambdaEvent};
use market_domain::processors::{ExpireWaitingEvents, Processor};
use market_lambda::metrics::{self, names};
use market_lambda::Market;
use serde_json::{json, Value};
use tracing::info;

#[tokio::main]
async fn main() -> Result<(), market_lambda::Error> {
    let market = Market::init().await?;
    let expire = std::sync::Arc::new(ExpireWaitingEvents(market.deps));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let expire = expire.clone();
        async move {
            let report = expire.process(()).await;
            if let Ok(r) = &report {
                metrics::count(names::WAITING_EVENTS, "expired", r.expired as u64);
            }
            metrics::flush(&[("RequestId", event.context.request_id.clone().into())]);
            let report = report?;
            info!(expired = report.expired, failed = report.failed, "waiting events expired");
            Ok::<_, lambda_runtime::Error>(json!({"expired": report.expired, "failed": report.failed}))
        }
    }))
    .await
}
