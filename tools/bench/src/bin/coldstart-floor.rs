//! Cold-start reference (`scripts/coldstart.py`): the floor of a function that must talk to
//! DynamoDB — the same SDK configuration as the functions (`market_lambda::aws::sdk_config`),
//! the client built once per cold start, one `GetItem` per invocation. Not deployed.

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::{service_fn, Body, Error, Request, Response};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = market_lambda::aws::sdk_config()?;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = std::env::var("POLICY_TABLE")?;
    lambda_http::run(service_fn(|_: Request| {
        let (client, table) = (client.clone(), table.clone());
        async move {
            let item = client.get_item().table_name(table).key("user_id", AttributeValue::S("coldstart-user".into())).send().await?;
            Ok::<_, Error>(Response::new(Body::from(if item.item.is_some() { "found" } else { "none" })))
        }
    }))
    .await
}
