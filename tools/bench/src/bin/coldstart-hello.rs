//! Cold-start reference (`scripts/coldstart.py`): a `lambda_http` hello world, the floor of
//! any Rust HTTP Lambda. Not deployed.

use lambda_http::{service_fn, Body, Error, Request, Response};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_: Request| async { Ok::<_, Error>(Response::new(Body::from("hello"))) })).await
}
