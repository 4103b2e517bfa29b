//! Who is calling. Behind API Gateway the HTTP API's JWT authorizer has already verified
//! the token and put its claims in the request context: we take the user from there.
//! Without an authorizer (local runs) we verify the `Bearer` token ourselves, with keys,
//! issuer and audience from configuration. A user id never comes from a header or body.

use std::collections::HashMap;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use lambda_http::request::RequestContext;
use market_domain::ids::UserId;
use serde_json::{Map, Value};
use tonic::Status;
use tracing::debug;

#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("AUTH_JWKS is not a valid JWK set: {0}")]
    Jwks(String),
    #[error("AUTH_ISSUER and AUTH_AUDIENCE must be set when verification keys are configured")]
    MissingIssuerOrAudience,
}

enum Keys {
    Hs256(DecodingKey),
    /// By key id; a token without `kid` may only use the single key of a one-key set.
    Jwks(Vec<(Option<String>, Algorithm, DecodingKey)>),
}

pub struct Authenticator {
    keys: Option<Keys>,
    validation: Validation,
    user_claim: String,
    /// Admin = this claim's value (space-separated or a list) contains `admin_value`.
    admin_claim: String,
    admin_value: String,
}

/// The values of a claim: a space-separated string (`scope`), a JSON array, or the
/// authorizer's rendering of an array (`[a b]`).
fn claim_values(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        Value::String(s) => s
            .split(|c: char| c.is_whitespace() || c == ',')
            .map(|t| t.trim_matches(|c| c == '[' || c == ']' || c == '"'))
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        Value::Bool(true) => vec!["true".into()],
        _ => vec![],
    }
}

fn unauthenticated() -> Status {
    Status::unauthenticated("missing or invalid credentials")
}

impl Authenticator {
    /// From the environment, once per cold start:
    /// `AUTH_JWKS` (a JWK set, JSON) or `AUTH_HS256_SECRET` (local development),
    /// `AUTH_ISSUER`, `AUTH_AUDIENCE` (comma-separated), `AUTH_USER_CLAIM` (default `sub`).
    pub fn from_env() -> Result<Self, AuthConfigError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let keys = if let Some(jwks) = var("AUTH_JWKS") {
            let set: JwkSet = serde_json::from_str(&jwks).map_err(|e| AuthConfigError::Jwks(e.to_string()))?;
            let mut keys = Vec::new();
            for jwk in &set.keys {
                let alg = jwk
                    .common
                    .key_algorithm
                    .and_then(|a| a.to_string().parse::<Algorithm>().ok())
                    .unwrap_or(Algorithm::RS256);
                let key = DecodingKey::from_jwk(jwk).map_err(|e| AuthConfigError::Jwks(e.to_string()))?;
                keys.push((jwk.common.key_id.clone(), alg, key));
            }
            Some(Keys::Jwks(keys))
        } else {
            var("AUTH_HS256_SECRET").map(|s| Keys::Hs256(DecodingKey::from_secret(s.as_bytes())))
        };
        let mut validation = Validation::new(Algorithm::HS256);
        if keys.is_some() {
            let issuer = var("AUTH_ISSUER").ok_or(AuthConfigError::MissingIssuerOrAudience)?;
            let audience = var("AUTH_AUDIENCE").ok_or(AuthConfigError::MissingIssuerOrAudience)?;
            validation.set_issuer(&[issuer]);
            validation.set_audience(&audience.split(',').map(str::trim).collect::<Vec<_>>());
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            validation.leeway = 30;
            // The HTTP API's JWT authorizer rejects a token not yet valid; so must we.
            validation.validate_nbf = true;
        }
        Ok(Authenticator {
            keys,
            validation,
            user_claim: var("AUTH_USER_CLAIM").unwrap_or_else(|| "sub".into()),
            admin_claim: var("AUTH_ADMIN_CLAIM").unwrap_or_else(|| "scope".into()),
            admin_value: var("AUTH_ADMIN_VALUE").unwrap_or_else(|| "market:admin".into()),
        })
    }

    /// The authenticated caller, or `UNAUTHENTICATED`.
    pub fn caller<T>(&self, request: &tonic::Request<T>) -> Result<UserId, Status> {
        self.identify(request).map(|(user, _)| user)
    }

    /// The authenticated administrator; `PERMISSION_DENIED` for anyone else.
    pub fn admin<T>(&self, request: &tonic::Request<T>) -> Result<UserId, Status> {
        match self.identify(request)? {
            (user, true) => Ok(user),
            (user, false) => {
                debug!(user_id = %user, "admin call without the admin claim");
                Err(Status::permission_denied("administrator role required"))
            }
        }
    }

    fn is_admin(&self, claim: Option<Value>) -> bool {
        claim.is_some_and(|v| claim_values(&v).iter().any(|t| t == &self.admin_value))
    }

    fn identify<T>(&self, request: &tonic::Request<T>) -> Result<(UserId, bool), Status> {
        if let Some(claims) = authorizer_claims(request) {
            let user = claims.get(&self.user_claim).ok_or_else(unauthenticated)?;
            let user = UserId::parse(user.as_str()).map_err(|_| unauthenticated())?;
            let admin = self.is_admin(claims.get(&self.admin_claim).map(|v| Value::String(v.clone())));
            return Ok((user, admin));
        }
        let header = request.metadata().get("authorization").and_then(|v| v.to_str().ok()).ok_or_else(unauthenticated)?;
        let token = header.strip_prefix("Bearer ").ok_or_else(unauthenticated)?;
        let claims = self.verify(token.trim()).map_err(|reason| {
            debug!(reason, "token rejected");
            unauthenticated()
        })?;
        let user = claims.get(&self.user_claim).and_then(Value::as_str).ok_or_else(unauthenticated)?;
        let user = UserId::parse(user).map_err(|_| unauthenticated())?;
        Ok((user, self.is_admin(claims.get(&self.admin_claim).cloned())))
    }

    fn verify(&self, token: &str) -> Result<Map<String, Value>, &'static str> {
        let keys = self.keys.as_ref().ok_or("no verification keys configured")?;
        let header = decode_header(token).map_err(|_| "malformed token")?;
        let (key, alg) = match keys {
            Keys::Hs256(key) => (key, Algorithm::HS256),
            Keys::Jwks(keys) => {
                let found = match &header.kid {
                    Some(kid) => keys.iter().find(|(id, _, _)| id.as_deref() == Some(kid)),
                    None if keys.len() == 1 => keys.first(),
                    None => None,
                };
                let (_, alg, key) = found.ok_or("unknown key id")?;
                (key, *alg)
            }
        };
        if header.alg != alg {
            return Err("unexpected algorithm");
        }
        let mut validation = self.validation.clone();
        validation.algorithms = vec![alg];
        decode::<Map<String, Value>>(token, key, &validation).map(|t| t.claims).map_err(|_| "invalid token")
    }
}

/// Claims the HTTP API's JWT authorizer verified (absent without an authorizer).
fn authorizer_claims<T>(request: &tonic::Request<T>) -> Option<&HashMap<String, String>> {
    match request.extensions().get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.authorizer.as_ref()?.jwt.as_ref().map(|jwt| &jwt.claims),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The caller's address, for per-address limits: the request context's `sourceIp`, the
/// address that connected to API Gateway (the local gateway sets it the same way). Never
/// `X-Forwarded-For`: its entries are whatever the client (or a proxy in front) sent.
/// "unknown" without a context (all such callers share one bucket).
pub fn caller_address<T>(request: &tonic::Request<T>) -> String {
    let source = match request.extensions().get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.clone(),
        #[allow(unreachable_patterns)]
        _ => None,
    };
    source.filter(|a| !a.is_empty()).unwrap_or_else(|| "unknown".into())
}

/// The id of the invocation serving this request (Lambda's request id), for audit records.
pub fn request_id<T>(request: &tonic::Request<T>) -> String {
    request
        .extensions()
        .get::<lambda_http::Context>()
        .map(|c| c.request_id.clone())
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| format!("local-{}", std::process::id()))
}

#[cfg(test)]
mod admin_claim_tests {
    use super::claim_values;
    use serde_json::json;

    #[test]
    fn claim_values_read_every_shape() {
        assert_eq!(claim_values(&json!("openid market:admin")), ["openid", "market:admin"]);
        assert_eq!(claim_values(&json!(["a", "market:admin"])), ["a", "market:admin"]);
        assert_eq!(claim_values(&json!("[a market:admin]")), ["a", "market:admin"]);
        assert!(claim_values(&json!(3)).is_empty());
    }
}

#[cfg(test)]
mod fuzz {
    use base64::Engine;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    const SECRET: &str = "fuzz-secret";

    fn authenticator() -> Authenticator {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&["iss"]);
        validation.set_audience(&["aud"]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        Authenticator {
            keys: Some(Keys::Hs256(DecodingKey::from_secret(SECRET.as_bytes()))),
            validation,
            user_claim: "sub".into(),
            admin_claim: "scope".into(),
            admin_value: "market:admin".into(),
        }
    }

    fn request(authorization: &str) -> tonic::Request<()> {
        let mut r = tonic::Request::new(());
        if let Ok(v) = authorization.parse() {
            r.metadata_mut().insert("authorization", v);
        }
        r
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(ProptestConfig::default().cases.max(2000)))]
        /// Authorization headers from anywhere: arbitrary text, three base64 parts of arbitrary
        /// JSON, and correctly signed tokens with arbitrary claims. Never a panic; the only
        /// outcomes are a user or UNAUTHENTICATED, and a user only for a valid token.
        #[test]
        fn fuzz_bearer_tokens(raw in ".{0,200}", header in ".{0,60}", payload in ".{0,120}", sig in "[A-Za-z0-9_-]{0,40}",
                              sub in proptest::option::of(".{0,70}"), exp_delta in -100_000i64..100_000, nbf_delta in proptest::option::of(-100_000i64..100_000),
                              iss in prop_oneof![Just("iss".to_owned()), ".{0,5}"], aud in prop_oneof![Just("aud".to_owned()), ".{0,5}"]) {
            let auth = authenticator();
            for h in [raw.clone(), format!("Bearer {raw}"), format!("Bearer {}.{}.{sig}", b64(&header), b64(&payload))] {
                // Nothing forged without the key gets in.
                let r = auth.caller(&request(&h));
                prop_assert_eq!(r.map_err(|s| s.code()).err(), Some(tonic::Code::Unauthenticated));
            }
            let now = jsonwebtoken::get_current_timestamp() as i64;
            let mut claims = json!({"exp": now + exp_delta, "iss": iss, "aud": aud});
            if let Some(sub) = &sub { claims["sub"] = json!(sub); }
            if let Some(nbf) = nbf_delta { claims["nbf"] = json!(now + nbf); }
            let token = encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap_or_default();
            let valid = sub.as_deref().is_some_and(|s| UserId::parse(s).is_ok())
                && exp_delta > 30 && nbf_delta.is_none_or(|n| n <= -30) && iss == "iss" && aud == "aud";
            match auth.caller(&request(&format!("Bearer {token}"))) {
                // Within the 30 s leeway, boundaries included (`exp` = now − 30 is still
                // accepted), and a second may tick between encoding and checking.
                Ok(user) => { prop_assert!(exp_delta >= -30 && nbf_delta.is_none_or(|n| n <= 31)); prop_assert_eq!(Some(user.as_str()), sub.as_deref()); }
                Err(s) => { prop_assert_eq!(s.code(), tonic::Code::Unauthenticated); prop_assert!(!valid); }
            }
        }
    }
}

#[cfg(test)]
mod address_tests {
    use super::caller_address;
    use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
    use lambda_http::request::RequestContext;

    #[test]
    fn the_address_is_the_request_contexts_never_x_forwarded_for() {
        let mut request = tonic::Request::new(());
        request.metadata_mut().insert("x-forwarded-for", "198.51.100.1, 198.51.100.2".parse().unwrap());
        assert_eq!(caller_address(&request), "unknown", "a forwarded header alone names nobody");
        let mut ctx = ApiGatewayV2httpRequestContext::default();
        ctx.http.source_ip = Some("203.0.113.7".into());
        request.extensions_mut().insert(RequestContext::ApiGatewayV2(ctx));
        assert_eq!(caller_address(&request), "203.0.113.7");
    }
}
