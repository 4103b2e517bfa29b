//! The local stack's AWS stand-in (tools/local-aws) from a test: switch DynamoDB's behaviour
//! under contention on and off, and read what it did; read its meter (what each identity's
//! calls would be billed). Its URL is `LOCAL_AWS_URL` (the env
//! file of the stack).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

/// The settings of the chaos run: conflicts, a per-item write limit of 10 units a second
/// (AWS: about 1 000 per partition; scaled down 100× so the local stack, which writes one
/// hot item a few dozen times a second at most, reaches it), global indexes 300 ms behind,
/// one request in 500 failing with HTTP 500.
pub fn aws_like() -> Value {
    json!({"conflicts": true, "item_wcu_per_second": ITEM_WCU_PER_SECOND, "gsi_lag_ms": 300, "internal_error_rate": 0.002})
}

/// AWS's ~1 000 write units a second per partition, scaled down 100× (see [`aws_like`]).
pub const ITEM_WCU_PER_SECOND: f64 = 10.0;

async fn call(method: http::Method, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let url = std::env::var("LOCAL_AWS_URL").map_err(|_| "LOCAL_AWS_URL is not set (the stack serves no functions)".to_owned())?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = http::Request::builder()
        .method(method)
        .uri(format!("{url}/__local-aws/{path}"))
        .body(Full::new(Bytes::from(body.map(Value::to_string).unwrap_or_default())))
        .map_err(|e| e.to_string())?;
    let response = client.request(request).await.map_err(|e| e.to_string())?;
    let bytes = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

/// Switches the shim to `settings` (`{}` = off; its counters start again).
pub async fn set_contention(settings: &Value) -> Result<Value, String> {
    call(http::Method::POST, "contention", Some(settings)).await
}

/// The settings in force and what the shim did since they were set, by operation.
pub async fn contention() -> Result<Value, String> {
    call(http::Method::GET, "contention", None).await
}

/// The meter's running totals by identity (tools/local-aws/src/meter.rs): DynamoDB requests
/// and capacity units by table, SQS and Streams requests; take differences of two readings.
pub async fn meter() -> Result<Value, String> {
    call(http::Method::GET, "meter", None).await
}
