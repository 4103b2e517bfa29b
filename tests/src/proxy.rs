//! A TCP proxy in front of DynamoDB Local that can lose responses: while armed for an
//! operation, a request of that operation reaches DynamoDB (and commits), and its answer is
//! swallowed and the connection closed — the caller sees a dropped connection, exactly as
//! when a network path dies after the request was sent.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Default)]
struct Shared {
    /// The `X-Amz-Target` operation whose responses are lost (e.g. `TransactWriteItems`).
    armed: Arc<Mutex<Option<String>>>,
    dropped: Arc<AtomicUsize>,
}

pub struct LossyProxy {
    pub addr: SocketAddr,
    shared: Shared,
}

impl LossyProxy {
    /// Listens on a free local port and forwards every connection to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> LossyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy port");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Shared::default();
        let s = shared.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (s, upstream) = (s.clone(), upstream.clone());
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        relay(client, server, s).await;
                    }
                });
            }
        });
        LossyProxy { addr, shared }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// From now on, responses to `operation` are lost (the requests still commit).
    pub fn lose_responses_to(&self, operation: &str) {
        *self.shared.armed.lock().expect("lock") = Some(format!("DynamoDB_20120810.{operation}"));
    }

    pub fn deliver_all(&self) {
        *self.shared.armed.lock().expect("lock") = None;
    }

    /// How many responses were lost so far.
    pub fn lost(&self) -> usize {
        self.shared.dropped.load(Ordering::SeqCst)
    }
}

async fn relay(client: TcpStream, server: TcpStream, s: Shared) {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    // Set when the request in flight on this connection is one whose answer is lost.
    let lose = Arc::new(AtomicBool::new(false));
    let lose_up = lose.clone();
    let up = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_rx.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let target = s.armed.lock().expect("lock").clone();
            if let Some(target) = target {
                let chunk = String::from_utf8_lossy(&buf[..n]);
                if chunk.contains(target.as_str()) {
                    lose_up.store(true, Ordering::SeqCst);
                }
            }
            if server_tx.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let dropped = s.dropped.clone();
    let down = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_rx.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if lose.load(Ordering::SeqCst) {
                // The service answered (so it processed the request): the caller never sees it.
                dropped.fetch_add(1, Ordering::SeqCst);
                return;
            }
            if client_tx.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Whichever side ends first ends the connection (both halves are dropped).
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// A store whose DynamoDB calls go through `proxy` (tables from the environment).
pub async fn store_through(proxy: &LossyProxy) -> market_storage::DynamoStore {
    crate::require_stack();
    let config = market_storage::aws_config().await;
    let dynamo = aws_sdk_dynamodb::config::Builder::from(&config).endpoint_url(proxy.endpoint()).build();
    let tables = market_storage::Tables::from_env().expect("table names in the environment");
    market_storage::DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(dynamo), tables)
}

/// `host:port` of the local DynamoDB, from `AWS_ENDPOINT_URL_DYNAMODB`.
pub fn dynamodb_upstream() -> String {
    let url = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").expect("AWS_ENDPOINT_URL_DYNAMODB");
    url.trim_start_matches("http://").trim_end_matches('/').to_owned()
}
