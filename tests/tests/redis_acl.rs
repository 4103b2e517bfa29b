//! The configuration store's access (issue 26) against the stack's Redis, which runs the
//! template's ACL users (scripts/local_resources.py): every function but UpdateMarketConfig
//! connects as `market-reader`, which reads the document and keeps the public check's rate
//! buckets but cannot write the document; UpdateMarketConfig writes it as `market-admin`.
//! Their passwords exist only in Secrets Manager: no function's environment holds one.

use std::time::Duration;

use market_config::{CredentialSource, RedisConfig, RedisCredentials};
use market_domain::config::MarketConfig;
use market_domain::ports::{ConfigStore, RateLimit, RateLimiter};
use market_lambda::secrets::SecretsManagerCredentials;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name}: run inside `make test`"))
}

/// The function's own variables the local stack keeps apart (market_lambda::local_env).
fn function_env(binary: &str, name: &str) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(var("LOCAL_FUNCTION_ENV")).unwrap()).unwrap();
    doc[binary][name].as_str().map(str::to_owned)
}

/// The credentials in the secret `arn` names, as a function reads them (as the operator).
async fn credentials(arn: String) -> RedisCredentials {
    let sdk = market_storage::aws_config().await;
    SecretsManagerCredentials::new(&sdk, arn).credentials().await.expect("the secret")
}

fn store(credentials: RedisCredentials) -> RedisConfig {
    let key = std::env::var("MARKET_CONFIG_KEY").unwrap_or_else(|_| market_config::DEFAULT_KEY.to_owned());
    RedisConfig::with_url(&var("REDIS_URL"), Some(credentials), &key, Duration::from_millis(1), MarketConfig::default()).unwrap()
}

#[tokio::test]
async fn a_non_admin_function_reads_the_document_and_cannot_write_it_the_admin_function_can() {
    // What every function but UpdateMarketConfig is given (the shared environment).
    let reader = credentials(var("REDIS_SECRET_ARN")).await;
    assert_eq!(reader.username.as_deref(), Some("market-reader"));
    let as_reader = store(reader);
    let stored = as_reader.read().await.expect("the reader reads the document");
    let current = stored.clone().unwrap_or_default();

    // Writing it is refused by Redis itself (NOPERM), whatever the code would try.
    let attempt = MarketConfig { version: current.version + 1, ..current.clone() };
    let refused = as_reader.write(&attempt, current.version).await.expect_err("the reader cannot write the document");
    let cause = std::error::Error::source(&refused).map(|e| e.to_string()).unwrap_or_default();
    assert!(cause.to_uppercase().contains("NOPERM"), "refused by the ACL: {cause}");
    assert_eq!(as_reader.read().await.unwrap(), stored, "nothing written");

    // The public check's per-address bucket, as the reader (the limiter's script and keys).
    let taken = as_reader.limiter().take(&format!("acl-test-{}", nanoid::nanoid!(6)), RateLimit { burst: 10, per_hour: 60 }).await;
    assert_eq!(taken.expect("the reader keeps rate buckets"), None);

    // UpdateMarketConfig's own secret: the admin user writes (the same values, a new version).
    let writer_arn = function_env("update-market-config", "REDIS_SECRET_ARN").expect("UpdateMarketConfig's own REDIS_SECRET_ARN");
    assert_ne!(writer_arn, var("REDIS_SECRET_ARN"));
    let as_writer = store(credentials(writer_arn).await);
    assert!(as_writer.write(&attempt, current.version).await.expect("the admin user writes"));
    assert_eq!(as_reader.read().await.unwrap().map(|c| c.version), Some(attempt.version));
}

#[tokio::test]
async fn no_redis_credential_is_in_any_functions_environment() {
    let reader = credentials(var("REDIS_SECRET_ARN")).await;
    let writer = credentials(function_env("update-market-config", "REDIS_SECRET_ARN").unwrap()).await;
    let shared = std::fs::read_to_string(format!("{}/env", var("MARKET_STACK_DIR"))).unwrap();
    let own = std::fs::read_to_string(var("LOCAL_FUNCTION_ENV")).unwrap();
    for (name, text) in [("the shared environment", &shared), ("the functions' own variables", &own)] {
        for password in [&reader.password, &writer.password] {
            assert!(!text.contains(password.as_str()), "a Redis password in {name}");
        }
        assert!(!text.contains("REDIS_AUTH_TOKEN"), "{name}");
    }
}
