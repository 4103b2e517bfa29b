//! Serving a tonic service as gRPC-Web from `lambda_http`: tonic routes -> axum router,
//! a request guard, `GrpcWebLayer` (binary and text modes), CORS outside it (so preflight
//! never reaches tonic-web) -> `lambda_http::run`. Unary only: API Gateway buffers.

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::middleware::{from_fn, Next};
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, Method};
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic::Status;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Largest request message accepted (our requests are a few dozen bytes).
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

fn cors() -> CorsLayer {
    let origins = std::env::var("CORS_ALLOW_ORIGINS").unwrap_or_else(|_| "*".into());
    let allow_origin = if origins.trim() == "*" {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.split(',').filter_map(|o| HeaderValue::from_str(o.trim()).ok()))
    };
    let names = |list: &[&'static str]| list.iter().map(|h| HeaderName::from_static(h)).collect::<Vec<_>>();
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers(names(&["authorization", "content-type", "x-grpc-web", "x-user-agent", "grpc-timeout"]))
        .expose_headers(names(&["grpc-status", "grpc-message", "grpc-status-details-bin"]))
        .max_age(std::time::Duration::from_secs(600))
}

/// Runs inside tonic-web (the body is binary gRPC here): an oversized body or a broken
/// frame is the client's fault, `INVALID_ARGUMENT`, before tonic sees it.
fn reject(message: &'static str) -> Response {
    Status::invalid_argument(message).into_http::<Body>().into_response()
}

async fn guard(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    // `to_bytes` fails past the limit (one message plus its 5-byte frame header).
    let Ok(bytes) = to_bytes(body, MAX_REQUEST_BYTES + 5).await else {
        return reject("request too large");
    };
    if !frame_is_valid(&bytes) {
        return reject("malformed gRPC frame");
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// One uncompressed length-prefixed message, exactly filling the body.
fn frame_is_valid(bytes: &[u8]) -> bool {
    match bytes {
        [0, a, b, c, d, rest @ ..] => u32::from_be_bytes([*a, *b, *c, *d]) as usize == rest.len(),
        _ => false,
    }
}

/// A generated tonic server (`MarketServiceServer<…>`), as the router needs it.
pub trait GrpcServer:
    tower::Service<
        http::Request<tonic::body::Body>,
        Error = std::convert::Infallible,
        Response = http::Response<tonic::body::Body>,
        Future: Send + 'static,
    > + NamedService
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> GrpcServer for S where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Error = std::convert::Infallible,
            Response = http::Response<tonic::body::Body>,
            Future: Send + 'static,
        > + NamedService
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// Counts the request by its gRPC status and flushes this invocation's metrics, with the
/// Lambda request id as the documents' `RequestId` property.
async fn observe(request: Request, next: Next) -> Response {
    let request_id = request.extensions().get::<lambda_http::Context>().map(|c| c.request_id.clone()).unwrap_or_default();
    let response = next.run(request).await;
    // Errors are headers-only (`grpc-status` header); a success carries its status in the
    // body's trailer frame, so no header and HTTP 200 means OK.
    let code = match response.headers().get("grpc-status").and_then(|v| v.to_str().ok()) {
        Some(v) => v.parse().unwrap_or(2),
        None if response.status().is_success() => 0,
        None => 2,
    };
    crate::metrics::outcome(crate::metrics::names::REQUESTS, crate::metrics::grpc_status_name(code));
    crate::metrics::flush(&[("RequestId", request_id.into())]);
    response
}

/// The router of one gRPC service with the gRPC-Web and CORS layers (also used by tests).
pub fn router(service: impl GrpcServer) -> axum::Router {
    Routes::new(service)
        .prepare()
        .into_axum_router()
        .layer(from_fn(guard))
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(from_fn(observe))
        .layer(cors())
}

/// Serves `service` as this Lambda's handler until the runtime shuts it down.
pub async fn serve(service: impl GrpcServer) -> Result<(), lambda_http::Error> {
    lambda_http::run(router(service)).await
}

#[cfg(test)]
mod tests {
    use super::frame_is_valid;

    #[test]
    fn frames() {
        assert!(frame_is_valid(&[0, 0, 0, 0, 0]));
        assert!(frame_is_valid(&[0, 0, 0, 0, 2, 8, 1]));
        assert!(!frame_is_valid(&[0, 0, 0, 0, 3, 8, 1]));
        assert!(!frame_is_valid(&[1, 0, 0, 0, 0]));
        assert!(!frame_is_valid(&[0, 0, 0]));
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(ProptestConfig::default().cases.max(4000)))]
        /// The request guard's framing check on arbitrary bytes, and on frames that are right
        /// but for one thing: never a panic, valid exactly when one frame fills the body.
        #[test]
        fn fuzz_grpc_web_frames(bytes in proptest::collection::vec(any::<u8>(), 0..64), payload in proptest::collection::vec(any::<u8>(), 0..64), flag in any::<u8>(), skew in -3i64..3) {
            let _ = frame_is_valid(&bytes);
            let len = (payload.len() as i64 + skew).max(0) as u32;
            let mut frame = vec![flag];
            frame.extend_from_slice(&len.to_be_bytes());
            frame.extend_from_slice(&payload);
            // (A negative skew on an empty payload clamps to a length of 0: a valid frame.)
            prop_assert_eq!(frame_is_valid(&frame), flag == 0 && len as usize == payload.len());
        }
    }
}

