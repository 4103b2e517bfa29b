//! TLS on loopback in front of plain local services, for `scripts/coldstart.py --tls`: the
//! measured binaries then pay what a first call pays in AWS (root store, handshake, entropy).
//! Multi-threaded (`market_tests::tls_front`), so the terminator adds as little as it can to
//! what it measures; an earlier Python (asyncio, one thread) terminator added ~2.5 ms per
//! request and serialised the handshakes of a function's parallel first reads.
//!
//!   tls-front CERT.pem KEY.pem HOST:PORT...
//!
//! Prints one line per upstream, in order: the loopback port that fronts it. Runs until killed.

use std::io::Write;
use std::path::Path;

use market_tests::tls_front::{acceptor, front, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [cert, key, upstreams @ ..] = args.as_slice() else {
        return Err("usage: tls-front CERT.pem KEY.pem HOST:PORT...".into());
    };
    let acceptor = acceptor(Path::new(cert), Path::new(key))?;
    let mut out = std::io::stdout().lock();
    for upstream in upstreams {
        writeln!(out, "{}", front(acceptor.clone(), upstream.clone()).await?)?;
    }
    out.flush()?;
    drop(out);
    std::future::pending::<()>().await;
    Ok(())
}
