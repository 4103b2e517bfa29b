//! The functions' routers called in-process (the same layers `lambda_http::run` serves):
//! the AWS path where the HTTP API's JWT authorizer supplies the claims, and a DynamoDB
//! outage answered with UNAVAILABLE and no internals.

use axum::body::Body;
use http_body_util::BodyExt;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use lambda_http::request::RequestContext;
use market_domain::config::MarketConfig;
use market_domain::processors::Deps;
use market_lambda::Authenticator;
use market_proto::v1::GetAffiliateStatsResponse;
use market_storage::{DynamoStore, Tables};
use market_tests::rpc::{frame, unframe};
use prost::Message;
use tower::ServiceExt;

/// The request context API Gateway (HTTP API, JWT authorizer) sends, as JSON.
fn authorizer_context(claims: serde_json::Value) -> RequestContext {
    let ctx: ApiGatewayV2httpRequestContext = serde_json::from_value(serde_json::json!({
        "routeKey": "POST /helium.market.v1.MarketService/GetAffiliateStats",
        "accountId": "123456789012",
        "stage": "$default",
        "requestId": "req-1",
        "authorizer": { "jwt": { "claims": claims, "scopes": null } },
        "apiId": "api",
        "domainName": "api.example.com",
        "time": "24/Nov/2026:12:00:00 +0000",
        "timeEpoch": 0,
        "http": { "method": "POST", "path": "/helium.market.v1.MarketService/GetAffiliateStats",
                  "protocol": "HTTP/1.1", "sourceIp": "203.0.113.1", "userAgent": "test" }
    }))
    .expect("valid request context");
    RequestContext::ApiGatewayV2(ctx)
}

fn stats_request(context: Option<RequestContext>) -> http::Request<Body> {
    let mut request = http::Request::post("/helium.market.v1.MarketService/GetAffiliateStats")
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(Body::from(frame(&[])))
        .expect("request");
    if let Some(context) = context {
        request.extensions_mut().insert(context);
    }
    request
}

async fn call(store: DynamoStore, request: http::Request<Body>) -> (http::HeaderMap, Vec<u8>) {
    let deps = Deps::new(store, market_config::RedisConfig::new(None, String::new(), std::time::Duration::ZERO, MarketConfig::default()));
    let auth = Authenticator::from_env().expect("auth config");
    let router = market_lambda::serve::router(get_affiliate_stats::service(deps, auth));
    let response = router.oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    (parts.headers, body.collect().await.expect("body").to_bytes().to_vec())
}

#[tokio::test]
async fn the_user_comes_from_the_jwt_authorizer_claims() {
    let store = market_tests::store().await;
    let user = market_tests::user("claims");
    let d = market_tests::deps(MarketConfig::default()).await;
    market_tests::fund(&d, &user, 42).await;

    let (headers, body) = call(store.clone(), stats_request(Some(authorizer_context(serde_json::json!({"sub": user.as_str()}))))).await;
    assert!(headers.get("grpc-status").is_none(), "{headers:?}");
    let (messages, trailers) = unframe(&body);
    assert!(trailers.contains("grpc-status:0"));
    let stats = GetAffiliateStatsResponse::decode(messages[0].as_slice()).unwrap().stats.unwrap();
    assert_eq!(stats.available, 42);

    // Claims without the user claim, or no context and no token: UNAUTHENTICATED.
    let (headers, _) = call(store.clone(), stats_request(Some(authorizer_context(serde_json::json!({"scope": "x"}))))).await;
    assert_eq!(headers["grpc-status"], "16");
    let (headers, _) = call(store, stats_request(None)).await;
    assert_eq!(headers["grpc-status"], "16");
}

#[tokio::test]
async fn dynamodb_down_is_unavailable_without_internals() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let sdk = market_storage::aws_config().await;
    let conf = aws_sdk_dynamodb::config::Builder::from(&sdk).endpoint_url(format!("http://127.0.0.1:{port}")).build();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(conf), Tables::from_env().unwrap());
    let (headers, _) = call(store, stats_request(Some(authorizer_context(serde_json::json!({"sub": "someone"}))))).await;
    assert_eq!(headers["grpc-status"], "14");
    let message = headers["grpc-message"].to_str().unwrap();
    assert!(!message.contains("127.0.0.1") && !message.contains(&port.to_string()), "{message}");
}
