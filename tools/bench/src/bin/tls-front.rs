//! TLS on loopback in front of plain local services, for `scripts/coldstart.py --tls`: the
//! measured binaries then pay what a first call pays in AWS (root store, handshake, entropy).
//! Rustls (the same aws-lc crypto as the clients), multi-threaded and with `TCP_NODELAY` on
//! both legs, so the terminator adds as little as it can to what it measures; an earlier
//! Python (asyncio, one thread) terminator added ~2.5 ms per request and serialised the
//! handshakes of a function's parallel first reads.
//!
//!   tls-front CERT.pem KEY.pem HOST:PORT...
//!
//! Prints one line per upstream, in order: the loopback port that fronts it. Runs until killed.

use std::io::Write;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

type Error = Box<dyn std::error::Error + Send + Sync>;

async fn serve(listener: TcpListener, acceptor: TlsAcceptor, upstream: String) {
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
        tokio::spawn(async move {
            // A failed handshake or a closed upstream just ends this connection.
            let _ = client.set_nodelay(true);
            let Ok(mut tls) = acceptor.accept(client).await else { return };
            let Ok(mut plain) = TcpStream::connect(&upstream).await else { return };
            let _ = plain.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
        });
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [cert, key, upstreams @ ..] = args.as_slice() else {
        return Err("usage: tls-front CERT.pem KEY.pem HOST:PORT...".into());
    };
    let chain = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let mut out = std::io::stdout().lock();
    for upstream in upstreams {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        writeln!(out, "{}", listener.local_addr()?.port())?;
        tokio::spawn(serve(listener, acceptor.clone(), upstream.clone()));
    }
    out.flush()?;
    drop(out);
    std::future::pending::<()>().await;
    Ok(())
}
