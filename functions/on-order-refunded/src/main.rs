//! `order.refunded` hook: parse, apply the refund to the order's commission (exactly once
//! per refund id), report per-message failures. An over-refund or a refund in another
//! currency is rejected (audited) and reaches the DLQ after `maxReceiveCount`.

use market_domain::events::OrderRefundedEvent;
use market_domain::processors::{ApplyRefund, Processor};
use market_lambda::{sqs, Market};
use tracing::info;

#[tokio::main]
async fn main() -> Result<(), market_lambda::Error> {
    let market = Market::init().await?.warm_config();
    let apply = std::sync::Arc::new(ApplyRefund(market.deps));
    sqs::run(move |message| {
        let apply = apply.clone();
        async move {
            let event = OrderRefundedEvent::parse(sqs::body(&message)?)?;
            let (event_id, order_id) = (event.event_id.clone(), event.order_id.clone());
            let result = apply.process(event).await;
            market_lambda::metrics::refund(&result);
            let result = result?;
            info!(event_id = %event_id, order_id = %order_id, ?result, "refund processed");
            Ok(())
        }
    })
    .await
}
