//! Lambda entry point: clients and configuration are built once per cold start.

#[tokio::main]
async fn main() -> Result<(), market_lambda::Error> {
    let market = market_lambda::Market::init().await?.warm_config();
    market_lambda::serve(withdraw_affiliate_reward::service(market.deps, market.auth)).await
}
