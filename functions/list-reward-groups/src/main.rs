//! Lambda entry point: clients and configuration are built once per cold start.

#[tokio::main]
async fn main() -> Result<(), market_lambda::Error> {
    let market = market_lambda::Market::init().await?;
    market_lambda::serve(list_reward_groups::service(market.deps, market.auth)).await
}
