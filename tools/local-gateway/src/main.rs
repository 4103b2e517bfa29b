//! The local stack's front door (API Gateway's place): `/lambda-url/<function>/...` is
//! forwarded to `cargo lambda watch` unchanged, and a gRPC path as the HTTP API routes it,
//! `/helium.market.v1.<Service>/<Method>`, goes to the method's function (`CreateInviteCode`
//! -> `create-invite-code`, the template's naming), so a browser uses one base URL here as in
//! AWS; with at most `LOCAL_GATEWAY_CONCURRENCY`
//! (default 64) requests of one function in flight; the others wait for a slot, up to
//! `LOCAL_GATEWAY_QUEUE_MS` (default 29 000, API Gateway's integration timeout) and are then
//! answered 429 (Lambda's throttle), which gRPC-Web clients read as `UNAVAILABLE` and retry.
//! Like API Gateway it invokes the function with an HTTP API (payload 2.0) event whose
//! `requestContext.http.sourceIp` is the address that connected, the one address a function
//! may trust (`X-Forwarded-For` is whatever the client sent, with the address appended), and
//! turns the function's answer back into the HTTP response. (`cargo lambda watch`'s own
//! function URLs say `127.0.0.1` for every caller.)
//!
//! Why: `cargo lambda watch` (1.9.2) queues a function's invocations in a channel of 100 and
//! pushes into it while holding the lock that every `/next` of every function needs, so the
//! 101st queued invocation of one function wedges the whole emulator for good (BENCHMARKS.md,
//! "Load"). AWS never queues that deep: Lambda scales out or throttles. Bounding what is in
//! flight per function below 100 keeps the emulator out of that state.
//!
//!   local-gateway <listen port> <http://127.0.0.1:UPSTREAM_PORT>

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

type Body = BoxBody<Bytes, hyper::Error>;

struct Gateway {
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
    per_function: usize,
    queue_timeout: Duration,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// `/lambda-url/<function>/...` -> the function's name, when it looks like one.
fn function_of(path: &str) -> Option<&str> {
    let name = path.strip_prefix("/lambda-url/")?.split('/').next()?;
    let valid = !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    valid.then_some(name)
}

/// `/helium.market.v1.MarketService/CreateInviteCode` -> `/lambda-url/create-invite-code/<same path>`.
fn lambda_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/helium.market.v1.")?;
    let (service, method) = rest.split_once('/')?;
    let valid = |s: &str| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric());
    if !valid(service) || !valid(method) || !method.starts_with(|c: char| c.is_ascii_uppercase()) {
        return None;
    }
    let mut function = String::new();
    for (i, c) in method.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            function.push('-');
        }
        function.push(c.to_ascii_lowercase());
    }
    Some(format!("/lambda-url/{function}{path}"))
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())).map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    response
}

impl Gateway {
    fn slots_of(&self, function: &str) -> Arc<Semaphore> {
        // A poisoned map only means another request panicked mid-insert; the map is still whole.
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(function.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(self.per_function))).clone()
    }

    async fn pass_through(&self, request: Request<Incoming>) -> Response<Body> {
        let (mut parts, body) = request.into_parts();
        let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
            return plain(StatusCode::BAD_REQUEST, "Bad Request");
        };
        let path = parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
        let Ok(uri) = format!("{}{path}", self.upstream).parse::<Uri>() else {
            return plain(StatusCode::BAD_REQUEST, "Bad Request");
        };
        parts.uri = uri;
        parts.headers.remove(http::header::HOST);
        match self.client.request(Request::from_parts(parts, Full::new(body))).await {
            Ok(response) => response.map(|body| body.boxed()),
            Err(e) => {
                eprintln!("[gateway] upstream failed: {e}");
                plain(StatusCode::BAD_GATEWAY, "Bad Gateway")
            }
        }
    }

    async fn handle(&self, mut request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        // As API Gateway does: the address it saw goes last in X-Forwarded-For (what the
        // client sent stays in front of it; only the last entry can be trusted).
        let forwarded = match request.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(sent) => format!("{sent}, {}", peer.ip()),
            None => peer.ip().to_string(),
        };
        if let Ok(value) = http::HeaderValue::from_str(&forwarded) {
            request.headers_mut().insert("x-forwarded-for", value);
        }
        let path = request.uri().path().to_owned();
        let routed = lambda_path(&path).unwrap_or_else(|| path.clone());
        let Some(function) = function_of(&routed).map(str::to_owned) else {
            // Anything else (Lambda's Invoke API, `/2015-03-31/functions/<name>/invocations`,
            // as `aws lambda invoke` uses it) goes to the emulator unchanged.
            return self.pass_through(request).await;
        };
        // The path the function sees: the HTTP API's route path, without the local prefix.
        let raw_path = routed.strip_prefix(&format!("/lambda-url/{function}")).filter(|p| !p.is_empty()).unwrap_or("/").to_owned();
        let slots = self.slots_of(&function);
        let _slot = match tokio::time::timeout(self.queue_timeout, slots.acquire_owned()).await {
            Ok(Ok(slot)) => slot,
            _ => {
                eprintln!("[gateway] {function}: no slot within {} ms, throttled (429)", self.queue_timeout.as_millis());
                return plain(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
            }
        };
        let (parts, body) = request.into_parts();
        let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
            return plain(StatusCode::BAD_REQUEST, "Bad Request");
        };
        let event = http_api_event(&parts, &raw_path, &body, peer);
        let Ok(uri) = format!("{}/2015-03-31/functions/{function}/invocations", self.upstream).parse::<Uri>() else {
            return plain(StatusCode::BAD_REQUEST, "Bad Request");
        };
        let mut invoke = Request::new(Full::new(Bytes::from(event.to_string())));
        *invoke.method_mut() = http::Method::POST;
        *invoke.uri_mut() = uri;
        let answer = match self.client.request(invoke).await {
            Ok(response) => response.into_body().collect().await.map(|b| b.to_bytes()),
            Err(e) => {
                eprintln!("[gateway] upstream failed: {e}");
                return plain(StatusCode::BAD_GATEWAY, "Bad Gateway");
            }
        };
        match answer.ok().and_then(|a| http_response(&a)) {
            Some(response) => response,
            None => plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
        }
    }
}

/// The HTTP API's payload 2.0 event for a request (what `lambda_http` reads): headers
/// lower-case with repeats comma-joined, the body base64, the caller's address as `sourceIp`.
fn http_api_event(parts: &http::request::Parts, raw_path: &str, body: &[u8], peer: SocketAddr) -> serde_json::Value {
    use base64::Engine;
    let mut headers = serde_json::Map::new();
    let mut cookies = Vec::new();
    for (name, value) in &parts.headers {
        let Ok(value) = value.to_str() else { continue };
        if name == http::header::COOKIE {
            cookies.extend(value.split(';').map(|c| serde_json::Value::from(c.trim())));
            continue;
        }
        match headers.get_mut(name.as_str()) {
            Some(serde_json::Value::String(joined)) => {
                joined.push(',');
                joined.push_str(value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), value.into());
            }
        }
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let user_agent = parts.headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    serde_json::json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": parts.uri.query().unwrap_or_default(),
        "cookies": cookies,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {"method": parts.method.as_str(), "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": peer.ip().to_string(), "userAgent": user_agent},
            "requestId": nanoid::nanoid!(),
            "routeKey": "$default",
            "stage": "$default",
            "time": "",
            "timeEpoch": now.as_millis() as u64,
        },
        "body": base64::engine::general_purpose::STANDARD.encode(body),
        "isBase64Encoded": true,
    })
}

/// The function's payload 2.0 answer as the HTTP response API Gateway sends.
fn http_response(answer: &[u8]) -> Option<Response<Body>> {
    use base64::Engine;
    let answer: serde_json::Value = serde_json::from_slice(answer).ok()?;
    let status = StatusCode::from_u16(u16::try_from(answer.get("statusCode")?.as_u64()?).ok()?).ok()?;
    let text = answer.get("body").and_then(|b| b.as_str()).unwrap_or_default();
    let body = if answer.get("isBase64Encoded").and_then(|b| b.as_bool()).unwrap_or(false) {
        base64::engine::general_purpose::STANDARD.decode(text).ok()?
    } else {
        text.as_bytes().to_vec()
    };
    let mut response = Response::new(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in answer.get("headers").and_then(|h| h.as_object()).into_iter().flatten() {
        if let (Ok(name), Some(Ok(value))) = (http::HeaderName::try_from(name.as_str()), value.as_str().map(http::HeaderValue::from_str)) {
            headers.append(name, value);
        }
    }
    for (name, values) in answer.get("multiValueHeaders").and_then(|h| h.as_object()).into_iter().flatten() {
        for value in values.as_array().into_iter().flatten() {
            if let (Ok(name), Some(Ok(value))) = (http::HeaderName::try_from(name.as_str()), value.as_str().map(http::HeaderValue::from_str)) {
                headers.append(name, value);
            }
        }
    }
    for cookie in answer.get("cookies").and_then(|c| c.as_array()).into_iter().flatten() {
        if let Some(Ok(value)) = cookie.as_str().map(http::HeaderValue::from_str) {
            headers.append(http::header::SET_COOKIE, value);
        }
    }
    Some(response)
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(port), Some(upstream)) = (args.next(), args.next()) else {
        return Err("usage: local-gateway <listen port> <http://127.0.0.1:UPSTREAM_PORT>".into());
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let gateway = Arc::new(Gateway {
        upstream: upstream.trim_end_matches('/').to_owned(),
        client: Client::builder(TokioExecutor::new()).build(nodelay_connector()),
        per_function: env_or("LOCAL_GATEWAY_CONCURRENCY", 64).clamp(1, 99) as usize,
        queue_timeout: Duration::from_millis(env_or("LOCAL_GATEWAY_QUEUE_MS", 29_000)),
        slots: Mutex::new(HashMap::new()),
    });
    let listener = TcpListener::bind(addr).await?;
    eprintln!("[gateway] http://{addr} -> {} ({} in flight per function)", gateway.upstream, gateway.per_function);
    loop {
        let (stream, peer) = listener.accept().await?;
        // Headers and body are separate writes: with Nagle on, the body waits for the ACK the
        // peer delays by 40 ms.
        let _ = stream.set_nodelay(true);
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let gateway = gateway.clone();
                async move { Ok::<_, std::convert::Infallible>(gateway.handle(request, peer).await) }
            });
            // A client that goes away mid-request is its own business, not the gateway's.
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// To `cargo lambda watch`, without Nagle (see the accept loop).
fn nodelay_connector() -> HttpConnector {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http
}

#[cfg(test)]
mod tests {
    use super::{function_of, http_api_event, http_response, lambda_path};
    use http_body_util::BodyExt;

    #[test]
    fn the_event_carries_the_connecting_address_and_the_body_as_the_http_api_sends_them() {
        let request = http::Request::builder()
            .method("POST")
            .uri("/helium.market.v1.PublicService/ResolveInviteCode?a=1")
            .header("x-forwarded-for", "203.0.113.9, 127.0.0.7")
            .header("accept", "a")
            .header("accept", "b")
            .header("cookie", "x=1; y=2")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        let event = http_api_event(&parts, "/helium.market.v1.PublicService/ResolveInviteCode", b"\x00\x01", "127.0.0.7:5000".parse().unwrap());
        assert_eq!(event["requestContext"]["http"]["sourceIp"], "127.0.0.7");
        assert_eq!(event["headers"]["accept"], "a,b");
        assert_eq!(event["cookies"], serde_json::json!(["x=1", "y=2"]));
        assert_eq!(event["rawQueryString"], "a=1");
        assert_eq!((event["body"].as_str(), event["isBase64Encoded"].as_bool()), (Some("AAE="), Some(true)));
    }

    #[tokio::test]
    async fn the_answer_becomes_the_http_response() {
        let answer = serde_json::json!({"statusCode": 200, "headers": {"content-type": "application/grpc-web+proto"},
            "multiValueHeaders": {"grpc-status": ["0"]}, "body": "AAE=", "isBase64Encoded": true});
        let response = http_response(answer.to_string().as_bytes()).unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/grpc-web+proto");
        assert_eq!(response.headers()["grpc-status"], "0");
        assert_eq!(response.into_body().collect().await.unwrap().to_bytes().as_ref(), [0u8, 1]);
        assert!(http_response(b"not json").is_none());
    }

    #[test]
    fn routes_a_grpc_path_to_its_function_as_the_http_api_does() {
        assert_eq!(
            lambda_path("/helium.market.v1.MarketService/CreateInviteCode").as_deref(),
            Some("/lambda-url/create-invite-code/helium.market.v1.MarketService/CreateInviteCode")
        );
        assert_eq!(
            lambda_path("/helium.market.v1.MarketAdminService/GetUserPolicy").as_deref(),
            Some("/lambda-url/get-user-policy/helium.market.v1.MarketAdminService/GetUserPolicy")
        );
        assert_eq!(lambda_path("/helium.market.v1.MarketService/"), None);
        assert_eq!(lambda_path("/helium.market.v1.MarketService/x/../y"), None);
        assert_eq!(lambda_path("/other/CreateInviteCode"), None);
    }

    #[test]
    fn names_the_function_of_a_lambda_url_path() {
        assert_eq!(function_of("/lambda-url/create-invite-code/helium.market.v1.MarketService/CreateInviteCode"), Some("create-invite-code"));
        assert_eq!(function_of("/lambda-url/"), None);
        assert_eq!(function_of("/lambda-url/Bad_Name/x"), None);
        assert_eq!(function_of("/2015-03-31/functions/x/invocations"), None);
    }
}
