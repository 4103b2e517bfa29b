//! What a request asks of IAM: the caller's access key (from its SigV4 `Authorization`) and
//! the calls it makes — as AWS evaluates them: a transaction is each of its items' actions on
//! each item's table, a batch is `BatchGetItem`/`BatchWriteItem` on each table, a query of
//! an index is a `Query` on the index's ARN, SQS batches are their single action on the queue.

use serde_json::Value;

use crate::policy::{Call, Policies};

/// The access key of a SigV4 `Authorization` header (`... Credential=<key>/<date>/...`).
pub fn access_key(authorization: &str) -> Option<&str> {
    let rest = &authorization[authorization.find("Credential=")? + "Credential=".len()..];
    let key = rest.split('/').next()?;
    (!key.is_empty()).then_some(key)
}

/// The `Authorization` header with the access key replaced (DynamoDB Local accepts only
/// letters and digits in it; neither local service checks the signature).
pub fn with_access_key(authorization: &str, key: &str) -> Option<String> {
    let start = authorization.find("Credential=")? + "Credential=".len();
    let end = start + authorization[start..].find('/')?;
    Some(format!("{}{key}{}", &authorization[..start], &authorization[end..]))
}

/// The calls of one request, from its `X-Amz-Target` and JSON body. `Err`: what made it
/// unreadable (the request is then denied, as an unknown call would be).
pub fn calls(target: &str, json: &Value, policies: &Policies, stream_of: impl Fn(&str) -> Option<String>) -> Result<Vec<Call>, String> {
    let (service, op) = target.split_once('.').ok_or_else(|| format!("no operation in X-Amz-Target {target:?}"))?;
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let table = |name: &str| format!("{}{name}", policies.table_arn_prefix);
    let one = |action: &str, resource: String| Ok(vec![Call::new(action, resource)]);
    match service {
        "DynamoDB_20120810" => {
            let action = format!("dynamodb:{op}");
            match op {
                "TransactWriteItems" | "TransactGetItems" => {
                    let items = json.get("TransactItems").and_then(Value::as_array).ok_or("TransactItems missing")?;
                    items
                        .iter()
                        .map(|item| {
                            let (kind, spec) = item.as_object().and_then(|o| o.iter().next()).ok_or("an empty transaction item")?;
                            let action = match kind.as_str() {
                                "Put" => "dynamodb:PutItem",
                                "Update" => "dynamodb:UpdateItem",
                                "Delete" => "dynamodb:DeleteItem",
                                "ConditionCheck" => "dynamodb:ConditionCheckItem",
                                "Get" => "dynamodb:GetItem",
                                other => return Err(format!("unknown transaction item {other}")),
                            };
                            let name = s(spec, "TableName").ok_or("an item without TableName")?;
                            Ok(Call::new(action, table(&name)))
                        })
                        .collect()
                }
                "BatchGetItem" | "BatchWriteItem" => {
                    let tables = json.get("RequestItems").and_then(Value::as_object).ok_or("RequestItems missing")?;
                    Ok(tables.keys().map(|t| Call::new(action.clone(), table(t))).collect())
                }
                "ListTables" => one(&action, "*".into()),
                _ => {
                    let name = s(json, "TableName").ok_or_else(|| format!("{op} without TableName"))?;
                    match s(json, "IndexName") {
                        Some(index) => one(&action, format!("{}/index/{index}", table(&name))),
                        None => one(&action, table(&name)),
                    }
                }
            }
        }
        "DynamoDBStreams_20120810" => {
            let action = format!("dynamodb:{op}");
            match op {
                "ListStreams" => one(&action, "*".into()),
                "GetRecords" => {
                    let iterator = s(json, "ShardIterator").ok_or("GetRecords without ShardIterator")?;
                    one(&action, stream_of(&iterator).ok_or("a shard iterator local-aws did not hand out")?)
                }
                _ => one(&action, s(json, "StreamArn").ok_or_else(|| format!("{op} without StreamArn"))?),
            }
        }
        "AmazonSQS" => {
            let action = match op {
                "SendMessageBatch" => "sqs:SendMessage".to_owned(),
                "DeleteMessageBatch" => "sqs:DeleteMessage".to_owned(),
                "ChangeMessageVisibilityBatch" => "sqs:ChangeMessageVisibility".to_owned(),
                other => format!("sqs:{other}"),
            };
            match op {
                "ListQueues" => one(&action, "*".into()),
                "GetQueueUrl" => {
                    let name = s(json, "QueueName").ok_or("GetQueueUrl without QueueName")?;
                    let arn = policies.queue_arns.values().find(|a| a.rsplit(':').next() == Some(name.as_str())).cloned();
                    one(&action, arn.unwrap_or_else(|| format!("arn:aws:sqs:*:*:{name}")))
                }
                _ => {
                    let url = s(json, "QueueUrl").ok_or_else(|| format!("{op} without QueueUrl"))?;
                    let arn = policies.queue_arns.get(&url).cloned().ok_or_else(|| format!("unknown queue {url}"))?;
                    one(&action, arn)
                }
            }
        }
        // A secret by its ARN (the functions name theirs so); a name matches no ARN grant.
        "secretsmanager" => one(&format!("secretsmanager:{op}"), s(json, "SecretId").ok_or_else(|| format!("{op} without SecretId"))?),
        other => Err(format!("a service local-aws does not know: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn policies() -> Policies {
        Policies {
            operators: vec!["local".into()],
            identities: HashMap::new(),
            queue_arns: HashMap::from([("http://q/1/Q".to_owned(), "arn:aws:sqs:us-east-1:1:Q".to_owned())]),
            table_arn_prefix: "arn:t/".into(),
        }
    }

    fn of(target: &str, body: &str) -> Result<Vec<Call>, String> {
        let json: Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
        calls(target, &json, &policies(), |i| (i == "it-1").then(|| "arn:t/T/stream/s".to_owned()))
    }

    #[test]
    fn the_access_key_and_its_replacement() {
        let h = "AWS4-HMAC-SHA256 Credential=on-order-paid/20261207/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=ab";
        assert_eq!(access_key(h), Some("on-order-paid"));
        assert_eq!(with_access_key(h, "local").unwrap(), h.replace("on-order-paid", "local"));
        assert_eq!(access_key("Bearer x"), None);
    }

    #[test]
    fn dynamodb_calls_as_iam_evaluates_them() {
        assert_eq!(of("DynamoDB_20120810.GetItem", r#"{"TableName":"T","Key":{}}"#).unwrap(), [Call::new("dynamodb:GetItem", "arn:t/T")]);
        assert_eq!(of("DynamoDB_20120810.Query", r#"{"TableName":"T","IndexName":"i"}"#).unwrap(), [Call::new("dynamodb:Query", "arn:t/T/index/i")]);
        let tx = r#"{"TransactItems":[{"Put":{"TableName":"A"}},{"Update":{"TableName":"B"}},{"ConditionCheck":{"TableName":"C"}},{"Delete":{"TableName":"D"}}]}"#;
        assert_eq!(
            of("DynamoDB_20120810.TransactWriteItems", tx).unwrap(),
            [
                Call::new("dynamodb:PutItem", "arn:t/A"),
                Call::new("dynamodb:UpdateItem", "arn:t/B"),
                Call::new("dynamodb:ConditionCheckItem", "arn:t/C"),
                Call::new("dynamodb:DeleteItem", "arn:t/D")
            ]
        );
        let batch = of("DynamoDB_20120810.BatchGetItem", r#"{"RequestItems":{"A":{},"B":{}}}"#).unwrap();
        assert_eq!(batch, [Call::new("dynamodb:BatchGetItem", "arn:t/A"), Call::new("dynamodb:BatchGetItem", "arn:t/B")]);
        assert!(of("DynamoDB_20120810.GetItem", "{}").is_err());
    }

    #[test]
    fn streams_and_sqs() {
        assert_eq!(of("DynamoDBStreams_20120810.GetRecords", r#"{"ShardIterator":"it-1"}"#).unwrap(), [Call::new("dynamodb:GetRecords", "arn:t/T/stream/s")]);
        assert!(of("DynamoDBStreams_20120810.GetRecords", r#"{"ShardIterator":"forged"}"#).is_err());
        assert_eq!(of("AmazonSQS.SendMessageBatch", r#"{"QueueUrl":"http://q/1/Q"}"#).unwrap(), [Call::new("sqs:SendMessage", "arn:aws:sqs:us-east-1:1:Q")]);
        assert_eq!(of("AmazonSQS.DeleteMessageBatch", r#"{"QueueUrl":"http://q/1/Q"}"#).unwrap(), [Call::new("sqs:DeleteMessage", "arn:aws:sqs:us-east-1:1:Q")]);
        assert!(of("AmazonSQS.SendMessage", r#"{"QueueUrl":"http://elsewhere/Q"}"#).is_err());
        assert_eq!(
            of("secretsmanager.GetSecretValue", r#"{"SecretId":"arn:aws:secretsmanager:us-east-1:1:secret:S-1"}"#).unwrap(),
            [Call::new("secretsmanager:GetSecretValue", "arn:aws:secretsmanager:us-east-1:1:secret:S-1")]
        );
        assert!(of("Other.Thing", "{}").is_err());
    }
}
