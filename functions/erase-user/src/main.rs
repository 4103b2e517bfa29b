//! Lambda entry point: clients and configuration are built once per cold start (the erasure
//! key is read at the first erasure).

#[tokio::main]
async fn main() -> Result<(), market_lambda::Error> {
    let market = market_lambda::Market::init().await?;
    market_lambda::serve(erase_user::service(market.deps, market.auth)).await
}
