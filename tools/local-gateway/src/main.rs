//! The local stack's front door (API Gateway's place): `/lambda-url/<function>/...` is
//! forwarded to `cargo lambda watch` unchanged, and a gRPC path as the HTTP API routes it,
//! `/helium.market.v1.<Service>/<Method>`, goes to the method's function (`CreateInviteCode`
//! -> `create-invite-code`, the template's naming), so a browser uses one base URL here as in
//! AWS; with at most `LOCAL_GATEWAY_CONCURRENCY`
//! (default 64) requests of one function in flight; the others wait for a slot, up to
//! `LOCAL_GATEWAY_QUEUE_MS` (default 29 000, API Gateway's integration timeout) and are then
//! answered 429 (Lambda's throttle), which gRPC-Web clients read as `UNAVAILABLE` and retry.
//! Like API Gateway it appends the client's address to `X-Forwarded-For`.
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
    client: Client<HttpConnector, Incoming>,
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
        let mut path_and_query = request.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
        if let Some(routed) = lambda_path(request.uri().path()) {
            let query = request.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
            path_and_query = format!("{routed}{query}");
        }
        let path = path_and_query.split('?').next().unwrap_or_default().to_owned();
        let _slot = match function_of(&path) {
            Some(function) => {
                let slots = self.slots_of(function);
                match tokio::time::timeout(self.queue_timeout, slots.acquire_owned()).await {
                    Ok(Ok(slot)) => Some(slot),
                    _ => {
                        eprintln!("[gateway] {function}: no slot within {} ms, throttled (429)", self.queue_timeout.as_millis());
                        return plain(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
                    }
                }
            }
            None => None,
        };
        let Ok(uri) = format!("{}{}", self.upstream, path_and_query).parse::<Uri>() else {
            return plain(StatusCode::BAD_REQUEST, "Bad Request");
        };
        *request.uri_mut() = uri;
        request.headers_mut().remove(http::header::HOST);
        match self.client.request(request).await {
            // The slot is held until the answer's head has arrived; a unary gRPC-Web answer
            // is buffered by the function, so its body follows at once.
            Ok(response) => response.map(|body| body.boxed()),
            Err(e) => {
                eprintln!("[gateway] upstream failed: {e}");
                plain(StatusCode::BAD_GATEWAY, "Bad Gateway")
            }
        }
    }
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
    use super::{function_of, lambda_path};

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
