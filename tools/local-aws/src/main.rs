//! IAM as AWS enforces it, for the local stack (SPEC invariant 13): a proxy in front of
//! DynamoDB Local (and its Streams) and moto (SQS, Secrets Manager). Every function signs its
//! requests with its own name as access key (`MARKET_LOCAL_IDENTITY`; the event sources as the
//! function they feed, as Lambda's pollers use the function's role); each request is
//! authorized against that function's policy and permissions boundary as the SAM transform
//! expands them (`scripts/local_iam.py` writes it from
//! infra/template.yaml) and, when a call is not allowed, answered as AWS answers it: HTTP 400
//! `AccessDeniedException` naming the action and the resource. The operator key (`local`:
//! the tests and tools) has full access. `GET /__local-aws/usage` returns what every identity
//! used and every denial, for the least-privilege report of `make test`; `GET
//! /__local-aws/meter` what each identity's calls would be billed (meter.rs).
//!
//!   local-aws <iam-policies.json> <listen port>=<upstream URL> [<listen port>=<upstream URL> ...]

mod contention;
mod meter;
mod policy;
mod request;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use contention::{Contention, Settings, TableShape};
use policy::{Decision, Policies};

/// Denials kept for the report (each is also printed as it happens).
const MAX_DENIALS_KEPT: usize = 1000;
/// Shard iterators remembered (a GetRecords names its stream only through one).
const MAX_ITERATORS: usize = 100_000;

type Body = Full<Bytes>;

#[derive(Default)]
struct Usage {
    /// identity -> "action resource" -> calls.
    used: BTreeMap<String, BTreeMap<String, u64>>,
    denied: Vec<String>,
}

struct Proxy {
    policies: Policies,
    contention: Arc<Contention>,
    client: Client<HttpConnector, Body>,
    usage: Mutex<Usage>,
    meter: meter::Meter,
    /// Shard iterator -> the stream it reads.
    iterators: Mutex<HashMap<String, String>>,
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// AWS's answer to a call the caller's policy does not allow.
fn access_denied(target: &str, role: &str, identity: &str, call: &policy::Call, why: &str) -> Response<Body> {
    let message = format!(
        "User: arn:aws:sts::000000000000:assumed-role/{role}/{identity} is not authorized to perform: {} on resource: {} because {why}",
        call.action, call.resource
    );
    let sqs = target.starts_with("AmazonSQS.");
    let kind = if sqs {
        "com.amazon.coral.service#AccessDeniedException"
    } else if target.starts_with("secretsmanager.") {
        "AccessDeniedException"
    } else {
        "com.amazonaws.dynamodb.v20120810#AccessDeniedException"
    };
    let mut response = respond(StatusCode::BAD_REQUEST, "application/x-amz-json-1.0", json!({"__type": kind, "message": message}).to_string());
    if sqs {
        response.headers_mut().insert("x-amzn-query-error", HeaderValue::from_static("AccessDenied;Sender"));
    }
    response
}

impl Proxy {
    fn deny(&self, target: &str, role: &str, identity: &str, call: policy::Call, why: &str) -> Response<Body> {
        let line = format!("{identity}: {} on {} ({why})", call.action, call.resource);
        eprintln!("[local-aws] DENIED {line}");
        let mut usage = lock(&self.usage);
        if usage.denied.len() < MAX_DENIALS_KEPT {
            usage.denied.push(line);
        }
        drop(usage);
        access_denied(target, role, identity, &call, why)
    }

    fn usage(&self) -> Response<Body> {
        let usage = lock(&self.usage);
        respond(StatusCode::OK, "application/json", json!({"used": usage.used, "denied": usage.denied}).to_string())
    }

    async fn handle(&self, request: Request<Incoming>, upstream: &str) -> Response<Body> {
        let control = request.uri().path() == "/__local-aws/contention";
        if request.method() == http::Method::GET && request.uri().path() == "/__local-aws/usage" {
            return self.usage();
        }
        if request.method() == http::Method::GET && request.uri().path() == "/__local-aws/meter" {
            return respond(StatusCode::OK, "application/json", self.meter.report().to_string());
        }
        let (mut parts, body) = request.into_parts();
        let Ok(mut body) = body.collect().await.map(|b| b.to_bytes()) else {
            return respond(StatusCode::BAD_REQUEST, "text/plain", "unreadable body".into());
        };
        if control {
            if parts.method == http::Method::POST {
                match serde_json::from_slice::<Settings>(&body) {
                    Ok(settings) => {
                        eprintln!("[local-aws] contention: {settings:?}");
                        self.contention.set(settings);
                    }
                    Err(e) => return respond(StatusCode::BAD_REQUEST, "text/plain", format!("bad settings: {e}")),
                }
            }
            return respond(StatusCode::OK, "application/json", self.contention.report().to_string());
        }
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let target = header("x-amz-target").unwrap_or_default();
        // The JSON request, read once: for IAM, the contention shim and the stream iterators.
        let request_json: Result<Value, String> =
            if body.is_empty() { Ok(Value::Null) } else { serde_json::from_slice(&body).map_err(|e| format!("body is not JSON: {e}")) };
        let authorization = header("authorization").unwrap_or_default();
        let key = request::access_key(&authorization).unwrap_or("anonymous").to_owned();
        let operator = self.policies.operators.contains(&key);
        if !operator {
            let calls = match self.policies.identities.get(&key) {
                Some(identity) => {
                    let role = format!("{}Role", identity.function);
                    let calls = request_json
                        .as_ref()
                        .map_err(Clone::clone)
                        .and_then(|json| request::calls(&target, json, &self.policies, |it| lock(&self.iterators).get(it).cloned()));
                    match calls.map(|calls| (identity.decide(&calls), calls)) {
                        Ok((Decision::Allowed, calls)) => calls,
                        Ok((Decision::Denied(call), _)) => return self.deny(&target, &role, &key, call, "no identity-based policy allows it"),
                        Err(why) => return self.deny(&target, &role, &key, policy::Call::new(target.clone(), "?"), &why),
                    }
                }
                None => {
                    let agent = header("user-agent").unwrap_or_default();
                    let why = format!("the access key is no function of the template ({} {} from {agent:?})", parts.method, parts.uri.path());
                    return self.deny(&target, "unknown", &key, policy::Call::new(target.clone(), "*"), &why);
                }
            };
            let mut usage = lock(&self.usage);
            let used = usage.used.entry(key.clone()).or_default();
            for call in calls {
                *used.entry(format!("{} {}", call.action, call.resource)).or_default() += 1;
            }
        }
        // DynamoDB Local takes only letters and digits as access key; neither service
        // checks the signature.
        if let Some(rewritten) = request::with_access_key(&authorization, "local").and_then(|a| HeaderValue::from_str(&a).ok()) {
            parts.headers.insert(http::header::AUTHORIZATION, rewritten);
        }
        let path = parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
        let Ok(uri) = format!("{upstream}{path}").parse::<Uri>() else {
            return respond(StatusCode::BAD_REQUEST, "text/plain", "bad path".into());
        };
        parts.uri = uri;
        parts.headers.remove(http::header::HOST);
        let stream_op = target.strip_prefix("DynamoDBStreams_20120810.").map(str::to_owned);
        let dynamodb_op = target.strip_prefix("DynamoDB_20120810.").map(str::to_owned);
        let mut request_json = request_json.ok();
        // Every data request reports the capacity it consumed, for the meter.
        if let (Some(op), Some(json)) = (&dynamodb_op, request_json.as_mut()) {
            if meter::ask_for_capacity(op, json).is_some() {
                body = Bytes::from(json.to_string());
                parts.headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            }
        }
        let request_bytes = body.len();
        // DynamoDB's behaviour under contention, when switched on (contention.rs).
        let _in_flight = match (&dynamodb_op, &request_json) {
            (Some(op), Some(json)) => match self.contention.admit(op, json) {
                Ok(guard) => guard,
                Err(refusal) => {
                    let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_REQUEST);
                    return respond(status, "application/x-amz-json-1.0", refusal.body.to_string());
                }
            },
            _ => None,
        };
        let response = match self.client.request(Request::from_parts(parts, Full::new(body))).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("[local-aws] upstream {upstream} failed: {e}");
                return respond(StatusCode::BAD_GATEWAY, "text/plain", "Bad Gateway".into());
            }
        };
        let (parts, body) = response.into_parts();
        let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
            return respond(StatusCode::BAD_GATEWAY, "text/plain", "upstream body lost".into());
        };
        if let (Some(op), Some(req)) = (&stream_op, &request_json) {
            self.remember_iterators(op, req, &body);
        }
        if parts.status.is_success() {
            if let Some(op) = &dynamodb_op {
                self.meter.dynamodb(&key, op, request_json.as_ref().unwrap_or(&Value::Null), &body);
                if let Some(json) = &request_json {
                    self.contention.applied(op, json);
                }
            } else if let Some(op) = &stream_op {
                self.meter.stream(&key, op, &body);
            } else if let Some(op) = target.strip_prefix("AmazonSQS.") {
                self.meter.sqs(&key, op, request_bytes, &body);
            }
        }
        let body = match (dynamodb_op.as_deref(), &request_json) {
            (Some("Query"), Some(req)) if parts.status.is_success() => self.contention.lag_query(req, body),
            _ => body,
        };
        let mut parts = parts;
        parts.headers.remove(http::header::CONTENT_LENGTH);
        Response::from_parts(parts, Full::new(body))
    }

    /// A GetRecords names no stream, only an iterator: remember which stream each iterator
    /// handed out reads, from GetShardIterator and each GetRecords' next iterator.
    fn remember_iterators(&self, op: &str, request: &Value, response: &[u8]) {
        let Ok(out) = serde_json::from_slice::<Value>(response) else { return };
        let mut iterators = lock(&self.iterators);
        let stream = match op {
            "GetShardIterator" => request.get("StreamArn").and_then(Value::as_str).map(str::to_owned),
            "GetRecords" => request.get("ShardIterator").and_then(Value::as_str).and_then(|it| iterators.get(it).cloned()),
            _ => None,
        };
        let next = out.get("ShardIterator").or_else(|| out.get("NextShardIterator")).and_then(Value::as_str);
        if let (Some(stream), Some(next)) = (stream, next) {
            if iterators.len() >= MAX_ITERATORS {
                iterators.clear();
            }
            iterators.insert(next.to_owned(), stream);
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: local-aws <iam-policies.json> <listen port>=<upstream URL> ...";
    let (Some(path), routes) = (args.first(), &args[1.min(args.len())..]) else { return Err(usage.into()) };
    if routes.is_empty() {
        return Err(usage.into());
    }
    let file: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let policies: Policies = serde_json::from_value(file.clone())?;
    let tables: HashMap<String, TableShape> = serde_json::from_value(file.get("tables").cloned().unwrap_or_default())?;
    let contention = Contention::new(tables);
    // LOCAL_AWS_CONTENTION: the shim's settings from the start (JSON); off by default.
    if let Some(settings) = std::env::var("LOCAL_AWS_CONTENTION").ok().filter(|s| !s.trim().is_empty()) {
        contention.set(serde_json::from_str(&settings)?);
    }
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    let proxy = Arc::new(Proxy {
        policies,
        contention,
        client: Client::builder(TokioExecutor::new()).build(http),
        usage: Mutex::new(Usage::default()),
        meter: meter::Meter::default(),
        iterators: Mutex::new(HashMap::new()),
    });
    let mut servers = Vec::new();
    for route in routes {
        let (port, upstream) = route.split_once('=').ok_or(usage)?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let upstream: Arc<str> = upstream.trim_end_matches('/').into();
        let listener = TcpListener::bind(addr).await?;
        eprintln!("[local-aws] http://{addr} -> {upstream} ({} identities)", proxy.policies.identities.len());
        let proxy = proxy.clone();
        servers.push(tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let _ = stream.set_nodelay(true);
                let (proxy, upstream) = (proxy.clone(), upstream.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let (proxy, upstream) = (proxy.clone(), upstream.clone());
                        async move { Ok::<_, std::convert::Infallible>(proxy.handle(request, &upstream).await) }
                    });
                    // A caller that goes away mid-request (a timeout) is its own business.
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        }));
    }
    futures_join(servers).await;
    Ok(())
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<()>>) {
    for h in handles {
        let _ = h.await;
    }
}
