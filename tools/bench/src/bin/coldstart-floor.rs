//! Cold-start reference (`scripts/coldstart.py`): the floor of a function that must talk to
//! DynamoDB — the same SDK configuration as the functions (`market_lambda::aws::sdk_config`),
//! the client built once per cold start, one `GetItem` per invocation. Not deployed.
//!
//! The same floor for a function's I/O shape: `FLOOR_PARALLEL=n` makes n `GetItem`s in
//! parallel per invocation (n connections on the first, as a function whose reads are one
//! parallel round trip of n requests opens), and `FLOOR_CONFIG=1` also reads the market
//! config from Redis the way the functions do (`RedisConfig`, the first read started during
//! init as `Market::warm_config` starts it). What a function pays beyond the floor of its
//! own shape is its code's; what that floor pays beyond the one-`GetItem` floor is the cost
//! of the connections its reads need.

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::{service_fn, Body, Error, Request, Response};
use market_domain::config::MarketConfig;
use market_domain::ports::ConfigSource;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = market_lambda::aws::sdk_config()?;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = std::env::var("POLICY_TABLE")?;
    let parallel: usize = std::env::var("FLOOR_PARALLEL").ok().and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let market_config = match std::env::var_os("FLOOR_CONFIG") {
        Some(_) => {
            let source = std::sync::Arc::new(market_config::RedisConfig::from_env(MarketConfig::default(), None)?);
            let warm = source.clone();
            tokio::spawn(async move { warm.current().await });
            Some(source)
        }
        None => None,
    };
    lambda_http::run(service_fn(|_: Request| {
        let (client, table, market_config) = (client.clone(), table.clone(), market_config.clone());
        async move {
            let gets = (0..parallel).map(|i| {
                let key = AttributeValue::S(format!("coldstart-user-{i}"));
                client.get_item().table_name(&table).key("user_id", key).send()
            });
            let config = async {
                if let Some(source) = &market_config {
                    source.current().await;
                }
            };
            let (items, ()) = futures::join!(futures::future::try_join_all(gets), config);
            let found = items?.iter().filter(|i| i.item.is_some()).count();
            Ok::<_, Error>(Response::new(Body::from(format!("found {found}"))))
        }
    }))
    .await
}
