//! Lambda entry point: clients and configuration are built once per cold start.

#[tokio::main]
async fn main() -> Result<(), market_lambda::Error> {
    let market = market_lambda::Market::init().await?;
    market_lambda::serve(put_reward_group::service(market.deps, market.auth)).await
}
