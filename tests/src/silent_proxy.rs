//! A TCP proxy whose open connections can go silent: after [`SilentProxy::cut`], every
//! connection open at that moment keeps its sockets but carries no byte in either direction
//! (a dead network path without a reset, or a broker that stopped answering), while new
//! connections are forwarded normally. Generic: used in front of RabbitMQ and Redis.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct SilentProxy {
    pub addr: SocketAddr,
    /// Connections numbered below this carry nothing.
    cut_below: Arc<AtomicU64>,
    next: Arc<AtomicU64>,
}

impl SilentProxy {
    /// Listens on a free local port and forwards every connection to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> SilentProxy {
        Self::start_at("127.0.0.1:0", upstream).await
    }

    /// Listens on `listen` (`host:port`, e.g. a port a client was given before the proxy
    /// existed: it found nothing there until now).
    pub async fn start_at(listen: &str, upstream: String) -> SilentProxy {
        let listener = TcpListener::bind(listen).await.expect("proxy port");
        let addr = listener.local_addr().expect("proxy address");
        let (cut_below, next) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (cut, n) = (cut_below.clone(), next.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let id = n.fetch_add(1, Ordering::SeqCst);
                let (cut, upstream) = (cut.clone(), upstream.clone());
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        let (client_rx, client_tx) = client.into_split();
                        let (server_rx, server_tx) = server.into_split();
                        tokio::select! {
                            _ = pump(client_rx, server_tx, id, cut.clone()) => {}
                            _ = pump(server_rx, client_tx, id, cut) => {}
                        }
                    }
                });
            }
        });
        SilentProxy { addr, cut_below, next }
    }

    /// Every connection open now goes silent for good; later ones are forwarded.
    pub fn cut(&self) {
        self.cut_below.store(self.next.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

/// Copies `from` to `to` until either side closes; once connection `id` is cut, what it
/// reads is swallowed (the socket stays open, so the peer sees no error, only silence).
async fn pump(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin, id: u64, cut: Arc<AtomicU64>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if id < cut.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
