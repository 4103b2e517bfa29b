//! TLS on loopback in front of a plain local service, with a throw-away CA: what the Redis
//! TLS test and `scripts/coldstart.py --tls` (the `tls-front` binary) put between a client
//! and the stack. Rustls on the same aws-lc crypto as the clients, `TCP_NODELAY` on both legs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The server certificate's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKey {
    /// What DynamoDB's and SQS's certificates use.
    Rsa2048,
    /// A fraction of RSA's signing cost for the terminator, which shares the machine's cores
    /// with what it measures (AWS's servers do not).
    P256,
}

/// A throw-away CA (`ca.pem`) and a certificate for `localhost` / 127.0.0.1 signed by it,
/// made by the `openssl` command in `dir`: the server's (cert, key) paths and the CA's.
pub fn throwaway_ca(dir: &Path, server_key: ServerKey) -> Result<(PathBuf, PathBuf, PathBuf), Error> {
    let run = |args: &[&str]| -> Result<(), Error> {
        let out = Command::new("openssl").args(args).current_dir(dir).output()?;
        if out.status.success() { Ok(()) } else { Err(format!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into()) }
    };
    let newkey: &[&str] = match server_key {
        ServerKey::Rsa2048 => &["-newkey", "rsa:2048"],
        ServerKey::P256 => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
    };
    run(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=throw-away test CA"])?;
    run(&[&["req"], newkey, &["-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]].concat())?;
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")?;
    run(&["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf"])?;
    Ok((dir.join("server.pem"), dir.join("server.key"), dir.join("ca.pem")))
}

/// The acceptor presenting this certificate chain and key (PEM files).
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, Error> {
    let chain = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Listens on a loopback port (returned) and relays each TLS connection to `upstream`,
/// in a task of its own, until the runtime ends.
pub async fn front(acceptor: TlsAcceptor, upstream: String) -> Result<u16, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
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
    });
    Ok(port)
}
