//! TLS on loopback in front of plain local services, for `scripts/coldstart.py --tls`: the
//! measured binaries then pay what a first call pays in AWS (root store, handshake, entropy).
//! Multi-threaded (`market_tests::tls_front`), so the terminator adds as little as it can to
//! what it measures; an earlier Python (asyncio, one thread) terminator added ~2.5 ms per
//! request and serialised the handshakes of a function's parallel first reads.
//!
//!   tls-front DIR rsa|ec HOST:PORT...
//!
//! Makes a throw-away CA in DIR (`ca.pem`, for the clients to trust) and a server certificate
//! for localhost with an RSA-2048 or a P-256 key, then prints one line per upstream, in order:
//! the loopback port that fronts it. Runs until killed.

use std::io::Write;
use std::path::Path;

use market_tests::tls_front::{acceptor, front, throwaway_ca, Error, ServerKey};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: tls-front DIR rsa|ec HOST:PORT...";
    let [dir, key, upstreams @ ..] = args.as_slice() else {
        return Err(usage.into());
    };
    let key = match key.as_str() {
        "rsa" => ServerKey::Rsa2048,
        "ec" => ServerKey::P256,
        _ => return Err(usage.into()),
    };
    let (cert, key, _ca) = throwaway_ca(Path::new(dir), key)?;
    let acceptor = acceptor(&cert, &key)?;
    let mut out = std::io::stdout().lock();
    for upstream in upstreams {
        writeln!(out, "{}", front(acceptor.clone(), upstream.clone()).await?)?;
    }
    out.flush()?;
    drop(out);
    std::future::pending::<()>().await;
    Ok(())
}
