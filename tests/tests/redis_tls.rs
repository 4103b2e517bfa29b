//! `RedisConfig` over TLS (`rediss://`) trusts what the AWS SDK's clients trust: the
//! platform's root store, so `SSL_CERT_FILE` adds a private CA. Against the stack's Redis
//! behind a loopback TLS terminator with a throw-away CA. A test binary of its own: it sets
//! `SSL_CERT_FILE` for the whole process.

use std::time::Duration;

use market_config::RedisConfig;
use market_domain::config::MarketConfig;
use market_domain::ports::{ConfigSource, ConfigStore};

fn doc(bps: u32) -> MarketConfig {
    MarketConfig::from_json(&format!(r#"{{"default_commission_bps":{bps}}}"#)).unwrap()
}

#[tokio::test]
async fn rediss_trusts_the_ca_of_ssl_cert_file_and_nothing_else() {
    let redis_url = std::env::var("REDIS_URL").expect("REDIS_URL: run inside `make test`");
    let dir = std::env::temp_dir().join(format!("redis-tls-{}", nanoid::nanoid!(8)));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key, ca) = market_tests::tls_front::throwaway_ca(&dir, market_tests::tls_front::ServerKey::Rsa2048).unwrap();
    let acceptor = market_tests::tls_front::acceptor(&cert, &key).unwrap();
    let port = market_tests::tls_front::front(acceptor, redis_url.trim_start_matches("redis://").to_owned()).await.unwrap();
    let rediss = format!("rediss://localhost:{port}");

    let key = format!("test:config:{}", nanoid::nanoid!(8));
    let writer = RedisConfig::with_url(&redis_url, None, &key, Duration::from_millis(1), MarketConfig::default()).unwrap();
    writer.write(&doc(1500), 0).await.unwrap();

    // The system store alone does not know the throw-away CA: the handshake fails, and the
    // fallback applies (as for any unreachable Redis).
    std::env::set_var("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt");
    let untrusting = RedisConfig::with_url(&rediss, None, &key, Duration::from_secs(60), doc(77)).unwrap();
    assert_eq!(untrusting.current().await, doc(77), "a certificate from an unknown CA was accepted");
    assert!(untrusting.read().await.is_err());

    // With the CA in SSL_CERT_FILE, the document is read and written over TLS.
    std::env::set_var("SSL_CERT_FILE", &ca);
    let source = RedisConfig::with_url(&rediss, None, &key, Duration::from_secs(60), doc(77)).unwrap();
    assert_eq!(source.current().await, doc(1500));
    source.write(&doc(2500), 0).await.unwrap();
    assert_eq!(writer.read().await.unwrap(), Some(doc(2500)));
    let _ = std::fs::remove_dir_all(&dir);
}
