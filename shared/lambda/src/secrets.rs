//! The Redis credentials (issue 26): never environment text. `REDIS_SECRET_ARN` names a
//! Secrets Manager secret `{"username": "...", "password": "..."}` (no `username`: the AUTH
//! token); it is read when the first Redis connection is made (not before: a cold start
//! never waits for it), and again after a connection was refused. Each function's role may
//! read only the secret of its own Redis user (read-only for all but UpdateMarketConfig).

use aws_sdk_secretsmanager::error::DisplayErrorContext;
use market_config::{CredentialSource, RedisCredentials};
use serde::Deserialize;

pub struct SecretsManagerCredentials {
    client: aws_sdk_secretsmanager::Client,
    secret_arn: String,
}

impl SecretsManagerCredentials {
    /// The source `REDIS_SECRET_ARN` names (this function's own, locally), if any.
    pub fn from_env(sdk: &aws_config::SdkConfig) -> Option<Self> {
        Some(Self::new(sdk, crate::local_env::var("REDIS_SECRET_ARN")?))
    }

    pub fn new(sdk: &aws_config::SdkConfig, secret_arn: String) -> Self {
        SecretsManagerCredentials { client: aws_sdk_secretsmanager::Client::new(sdk), secret_arn }
    }
}

#[derive(Deserialize)]
struct Secret {
    #[serde(default)]
    username: Option<String>,
    password: String,
}

/// The secret's JSON as credentials; errors never carry the secret's text.
pub fn parse(text: &str) -> Result<RedisCredentials, String> {
    let s: Secret = serde_json::from_str(text).map_err(|_| "the Redis secret is not {\"username\", \"password\"} JSON".to_owned())?;
    if s.password.is_empty() {
        return Err("the Redis secret's password is empty".into());
    }
    Ok(RedisCredentials { username: s.username.filter(|u| !u.is_empty()), password: s.password })
}

impl CredentialSource for SecretsManagerCredentials {
    fn credentials(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<RedisCredentials, String>> + Send + '_>> {
        Box::pin(async move {
            let out = self
                .client
                .get_secret_value()
                .secret_id(&self.secret_arn)
                .send()
                .await
                .map_err(|e| format!("reading {}: {}", self.secret_arn, DisplayErrorContext(&e)))?;
            parse(out.secret_string().ok_or("the Redis secret has no string value")?)
        })
    }
}

/// The erasure key (issue 30): `ERASURE_KEY_SECRET_ARN` names a Secrets Manager secret whose
/// string is the key; read at the first erasure (or redirect) of a container, then kept.
pub struct SecretsManagerErasureKey {
    client: aws_sdk_secretsmanager::Client,
    secret_arn: Option<String>,
    key: tokio::sync::OnceCell<std::sync::Arc<[u8]>>,
}

impl SecretsManagerErasureKey {
    pub fn from_env(sdk: &aws_config::SdkConfig) -> Self {
        SecretsManagerErasureKey { client: aws_sdk_secretsmanager::Client::new(sdk), secret_arn: crate::local_env::var("ERASURE_KEY_SECRET_ARN"), key: tokio::sync::OnceCell::new() }
    }

    /// The key a given secret holds (a test's, the same as the stack's functions).
    pub fn new(sdk: &aws_config::SdkConfig, secret_arn: String) -> Self {
        SecretsManagerErasureKey { client: aws_sdk_secretsmanager::Client::new(sdk), secret_arn: Some(secret_arn), key: tokio::sync::OnceCell::new() }
    }
}

impl market_domain::processors::ErasureKey for SecretsManagerErasureKey {
    fn key(&self) -> market_domain::processors::KeyFuture<'_> {
        Box::pin(async move {
            let key = self
                .key
                .get_or_try_init(|| async {
                    let arn = self.secret_arn.as_deref().ok_or_else(|| market_domain::MarketError::internal("ERASURE_KEY_SECRET_ARN is not set"))?;
                    let out = self.client.get_secret_value().secret_id(arn).send().await.map_err(|e| market_domain::MarketError::Unavailable(Box::new(e)))?;
                    let text = out.secret_string().ok_or_else(|| market_domain::MarketError::internal("the erasure key secret has no string"))?;
                    Ok::<_, market_domain::MarketError>(std::sync::Arc::from(text.as_bytes()))
                })
                .await?;
            Ok(key.clone())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn a_secret_is_an_acl_user_or_an_auth_token_and_errors_do_not_show_it() {
        let user = parse(r#"{"username":"market-reader","password":"p4ss"}"#).unwrap();
        assert_eq!((user.username.as_deref(), user.password.as_str()), (Some("market-reader"), "p4ss"));
        assert_eq!(parse(r#"{"password":"tok"}"#).unwrap().username, None);
        let err = parse(r#"{"user":"x","secretvalue":"hunter2"}"#).unwrap_err();
        assert!(!err.contains("hunter2"));
        assert!(parse(r#"{"password":""}"#).is_err());
        assert!(!format!("{user:?}").contains("p4ss"), "Debug redacts the password");
    }
}
