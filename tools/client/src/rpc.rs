//! A gRPC-Web client for the functions served by `cargo lambda watch`: tonic's generated
//! client over tonic-web's client layer, routed like API Gateway routes (one function per
//! method), plus tokens minted with the local stack's key, and raw HTTP for the cases a
//! typed client cannot send (text mode, preflight, malformed bodies).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::{encode, EncodingKey, Header};
use market_proto::v1::market_admin_service_client::MarketAdminServiceClient;
use market_proto::v1::public_service_client::PublicServiceClient;
use market_proto::v1::market_service_client::MarketServiceClient;
use tonic_web::{GrpcWebCall, GrpcWebClientService};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Connector = HttpsConnector<HttpConnector>;
type Inner = GrpcWebClientService<Client<Connector, GrpcWebCall<tonic::body::Body>>>;

/// HTTPS (a deployed API Gateway; the system's roots, rustls on aws-lc-rs as the SDK uses)
/// or plain HTTP (the local stack). Built once per process: reading the roots takes ms.
fn connector() -> Connector {
    static CONNECTOR: std::sync::OnceLock<Connector> = std::sync::OnceLock::new();
    CONNECTOR.get_or_init(|| build_connector(None)).clone()
}

/// `local`: the address to connect from (a loopback alias, to be another caller locally).
fn build_connector(local: Option<std::net::IpAddr>) -> Connector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_local_address(local);
    // A request's headers and body are separate writes: with Nagle on, the body waits 40 ms
    // for the ACK the server delays (every local RPC took ~45 ms).
    http.set_nodelay(true);
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let tls = match builder.with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider()) {
        Ok(tls) => tls,
        // No system roots: HTTPS calls then fail to verify; plain HTTP still works.
        Err(_) => hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
            rustls::ClientConfig::builder_with_provider(rustls::crypto::aws_lc_rs::default_provider().into())
                .with_safe_default_protocol_versions()
                .map(|b| b.with_root_certificates(rustls::RootCertStore::empty()).with_no_client_auth())
                .unwrap_or_else(|_| rustls::ClientConfig::builder().with_root_certificates(rustls::RootCertStore::empty()).with_no_client_auth()),
        ),
    };
    tls.https_or_http().enable_http1().wrap_connector(http)
}

/// `/helium.market.v1.MarketService/CreateInviteCode` -> `create-invite-code`.
pub fn function_for(path: &str) -> String {
    let method = path.rsplit('/').next().unwrap_or_default();
    let mut name = String::new();
    for (i, c) in method.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('-');
        }
        name.push(c.to_ascii_lowercase());
    }
    name
}

/// The URL of a call: the local stack (`…/lambda-url`) routes by function,
/// `<base>/<function>/<package.Service>/<Method>`; API Gateway routes by the gRPC path.
pub fn route(base: &str, path: &str) -> String {
    if base.ends_with("/lambda-url") {
        format!("{base}/{}{path}", function_for(path))
    } else {
        format!("{}{path}", base.trim_end_matches('/'))
    }
}

/// Sends each call to its function (see [`route`]).
#[derive(Clone)]
pub struct LambdaChannel {
    inner: Inner,
    base: String,
}

impl tower::Service<http::Request<tonic::body::Body>> for LambdaChannel {
    type Response = http::Response<GrpcWebCall<hyper::body::Incoming>>;
    type Error = hyper_util::client::legacy::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower::Service::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, mut req: http::Request<tonic::body::Body>) -> Self::Future {
        let path = req.uri().path().to_owned();
        let uri = route(&self.base, &path);
        if let Ok(uri) = uri.parse() {
            *req.uri_mut() = uri;
        }
        Box::pin(tower::Service::call(&mut self.inner, req))
    }
}

pub struct Rpc {
    pub base: String,
    secret: String,
    issuer: String,
    audience: String,
    raw: Client<Connector, Full<Bytes>>,
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    sub: &'a str,
    iss: &'a str,
    aud: &'a str,
    exp: u64,
    iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
}

pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Rpc {
    /// From the stack's env file (`MARKET_RPC_URL`, `AUTH_*`).
    pub fn from_env() -> Result<Self, BoxError> {
        let var = |k: &str| std::env::var(k).map_err(|_| format!("{k} is not set: run inside `make test` or source the stack env"));
        Ok(Rpc {
            base: var("MARKET_RPC_URL")?,
            secret: var("AUTH_HS256_SECRET")?,
            issuer: var("AUTH_ISSUER")?,
            audience: var("AUTH_AUDIENCE")?,
            raw: Client::builder(TokioExecutor::new()).build(connector()),
        })
    }

    /// A deployed API at `base` (its `ApiUrl`), called with tokens the caller brings: no
    /// local signing key, so [`Rpc::token`] mints nothing valid there.
    pub fn for_url(base: &str) -> Self {
        Rpc {
            base: base.trim_end_matches('/').to_owned(),
            secret: String::new(),
            issuer: String::new(),
            audience: String::new(),
            raw: Client::builder(TokioExecutor::new()).build(connector()),
        }
    }

    pub fn client(&self) -> MarketServiceClient<LambdaChannel> {
        let http = Client::builder(TokioExecutor::new()).build(connector());
        MarketServiceClient::new(LambdaChannel { inner: GrpcWebClientService::new(http), base: self.base.clone() })
    }

    /// A token as the platform's identity provider would issue it.
    pub fn token(&self, user: &str) -> String {
        self.token_with(user, &self.secret, now_secs() + 600)
    }

    /// An administrator's token: the `market:admin` scope.
    pub fn admin_token(&self, user: &str) -> String {
        self.token_scoped(user, &self.secret, now_secs() + 600, Some("openid market:admin"))
    }

    pub fn token_with(&self, user: &str, secret: &str, exp: u64) -> String {
        self.token_scoped(user, secret, exp, None)
    }

    /// A token with these claims (issuer and audience added unless given), HS256 with `secret`.
    pub fn token_claims(&self, secret: &str, mut claims: serde_json::Value) -> String {
        if let Some(map) = claims.as_object_mut() {
            map.entry("iss").or_insert_with(|| self.issuer.clone().into());
            map.entry("aud").or_insert_with(|| self.audience.clone().into());
        }
        encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap_or_default()
    }

    /// The stack's signing secret (tests that forge tokens from it).
    pub fn secret(&self) -> &str {
        &self.secret
    }

    pub fn token_scoped(&self, user: &str, secret: &str, exp: u64, scope: Option<&str>) -> String {
        let claims = Claims { sub: user, iss: &self.issuer, aud: &self.audience, exp, iat: now_secs(), scope };
        encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap_or_default()
    }

    /// The public service (no token), connecting from `local` (e.g. `127.0.0.7`: every
    /// loopback alias is another caller address to the local gateway), or as usual.
    pub fn public(&self, local: Option<std::net::IpAddr>) -> PublicServiceClient<LambdaChannel> {
        let connector = if local.is_some() { build_connector(local) } else { connector() };
        let http = Client::builder(TokioExecutor::new()).build(connector);
        PublicServiceClient::new(LambdaChannel { inner: GrpcWebClientService::new(http), base: self.base.clone() })
    }

    pub fn admin(&self) -> MarketAdminServiceClient<LambdaChannel> {
        let http = Client::builder(TokioExecutor::new()).build(connector());
        MarketAdminServiceClient::new(LambdaChannel { inner: GrpcWebClientService::new(http), base: self.base.clone() })
    }

    /// A request carrying `Authorization: Bearer <token>`.
    pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Ok(value) = format!("Bearer {token}").parse() {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }

    /// A raw HTTP request to a method's function: (status, headers, body).
    pub async fn raw(
        &self,
        http_method: http::Method,
        method: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(http::StatusCode, http::HeaderMap, Bytes), BoxError> {
        self.raw_path(http_method, &format!("/helium.market.v1.MarketService/{method}"), headers, body).await
    }

    /// A raw HTTP request to any `/<package.Service>/<Method>` path's function.
    pub async fn raw_path(
        &self,
        http_method: http::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(http::StatusCode, http::HeaderMap, Bytes), BoxError> {
        let mut builder = http::Request::builder().method(http_method).uri(route(&self.base, path));
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let response = self.raw.request(builder.body(Full::new(Bytes::from(body)))?).await?;
        let (parts, body) = response.into_parts();
        Ok((parts.status, parts.headers, body.collect().await?.to_bytes()))
    }
}

/// One length-prefixed gRPC message.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// Splits a gRPC-Web response body into (messages, trailers).
pub fn unframe(mut body: &[u8]) -> (Vec<Vec<u8>>, String) {
    let (mut messages, mut trailers) = (Vec::new(), String::new());
    while body.len() >= 5 {
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let end = (5 + len).min(body.len());
        if body[0] & 0x80 != 0 {
            trailers.push_str(&String::from_utf8_lossy(&body[5..end]));
        } else {
            messages.push(body[5..end].to_vec());
        }
        body = &body[end..];
    }
    (messages, trailers)
}

#[cfg(test)]
mod tests {
    use super::route;

    #[test]
    fn the_local_stack_routes_by_function_api_gateway_by_path() {
        let path = "/helium.market.v1.MarketService/CreateInviteCode";
        assert_eq!(route("http://127.0.0.1:9/lambda-url", path), format!("http://127.0.0.1:9/lambda-url/create-invite-code{path}"));
        assert_eq!(route("https://abc.execute-api.eu-west-1.amazonaws.com/", path), format!("https://abc.execute-api.eu-west-1.amazonaws.com{path}"));
    }
}
