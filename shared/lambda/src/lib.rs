//! What every Helium Market Lambda shares: built once per cold start ([`Market::init`]),
//! tracing ([`init_tracing`]), authentication ([`auth`]), the error mapping ([`to_status`])
//! and gRPC-Web serving ([`serve()`]).

pub mod auth;
pub mod aws;
pub mod local_env;
pub mod metrics;
pub mod secrets;
pub mod serve;
pub mod sqs;
pub mod status;

pub use auth::{caller_address, request_id, Authenticator};
pub use lambda_http::Error;
pub use serve::serve;
pub use status::to_status;

use market_domain::config::MarketConfig;
use market_domain::ports::ConfigSource;
use market_domain::processors::Deps;
use market_storage::DynamoStore;

pub type Store = DynamoStore;
/// Redis-backed with a per-container cache; without `REDIS_URL`, the fallback document.
pub type Config = market_config::RedisConfig;
pub type MarketDeps = Deps<Store, Config>;

/// JSON logs in Lambda (CloudWatch), compact text locally; levels from `RUST_LOG` as
/// targets and levels (`warn`, `info,market_storage=debug`; default `info`).
pub fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<tracing_subscriber::filter::Targets>().ok())
        .unwrap_or_else(|| tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt().with_target(false).with_ansi(ansi);
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
        && std::env::var_os("MARKET_LOG_TEXT").is_none()
    {
        builder.json().with_current_span(true).without_time().finish().with(filter).init();
    } else {
        builder.compact().finish().with(filter).init();
    }
}

/// Everything a function needs, built once per cold start.
pub struct Market {
    pub deps: MarketDeps,
    pub auth: Authenticator,
    /// Shared AWS configuration, for functions that need more clients (SQS).
    pub aws: aws_config::SdkConfig,
}

impl Market {
    pub async fn init() -> Result<Self, lambda_http::Error> {
        init_tracing();
        metrics::init();
        let sdk = aws::sdk_config()?;
        let store = DynamoStore::from_env(&sdk).await?;
        // The configuration comes from Redis (cached per container); until the first read
        // succeeds, and whenever Redis has no valid document, the fallback applies:
        // MARKET_CONFIG_JSON (validated) or the built-in defaults.
        let fallback = match std::env::var("MARKET_CONFIG_JSON") {
            Ok(doc) if !doc.trim().is_empty() => MarketConfig::from_json(&doc)?,
            _ => MarketConfig::default(),
        };
        let credentials = secrets::SecretsManagerCredentials::from_env(&sdk).map(|s| std::sync::Arc::new(s) as std::sync::Arc<dyn market_config::CredentialSource>);
        let config = market_config::RedisConfig::from_env(fallback, credentials)?;
        let auth = Authenticator::from_env()?;
        let mut deps = Deps::new(store, config);
        // The erasure key, for a function that looks users up by id (read at first use).
        if local_env::var("ERASURE_KEY_SECRET_ARN").is_some() {
            deps = deps.with_erasure_key(std::sync::Arc::new(secrets::SecretsManagerErasureKey::from_env(&sdk)));
        }
        Ok(Market { deps, auth, aws: sdk })
    }

    /// For a function whose requests read the market config: the first read (Redis connect,
    /// TLS handshake, GET) starts now, in the background. It overlaps the rest of start-up
    /// and the first request's own reads instead of coming before them, and Lambda runs init
    /// at full CPU where a 128 MB function's request gets a fraction of a core. A request
    /// that needs the config meanwhile waits for this same read (one refresh at a time). A
    /// function that never reads the config does not call this: it would pay a connection.
    pub fn warm_config(self) -> Self {
        let config = self.deps.config.clone();
        tokio::spawn(async move { config.current().await });
        self
    }
}

impl Market {
    pub fn sqs(&self) -> market_messaging::Sqs {
        market_messaging::Sqs::new(aws_sdk_sqs::Client::new(&self.aws))
    }
}

/// A required environment variable, as a start-up error.
pub fn env(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|_| format!("environment variable {name} is not set").into())
}
