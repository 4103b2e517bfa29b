//! A dependency that is down surfaces as the retryable `Unavailable`, quickly.

use std::time::{Duration, Instant};

use market_domain::ports::prelude::*;
use market_domain::MarketError;
use market_storage::{DynamoStore, Tables};

#[tokio::test]
async fn dynamodb_down_is_unavailable() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let sdk = market_storage::aws_config().await;
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk).endpoint_url(format!("http://127.0.0.1:{port}")).build();
    let tables = Tables { policy: "p".into(), stats: "s".into(), codes: "c".into(), ledger: "l".into(), outbox: "o".into(), audit: "a".into(), parked: "w".into(), groups: "g".into(), audit_retention: Default::default() };
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), tables);
    let started = Instant::now();
    let err = store.get_stats(&market_domain::ids::UserId::parse("u").unwrap()).await.unwrap_err();
    assert!(matches!(err, MarketError::Unavailable(_)), "{err:?}");
    assert!(err.is_transient());
    assert!(started.elapsed() < Duration::from_secs(10));
}
