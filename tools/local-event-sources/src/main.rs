//! Local stand-in for Lambda's event source mappings, from the stack's `event-sources.json`
//! (made from the template's SQS and DynamoDB events). DynamoDB streams: [`streams`]. SQS:
//! for each mapping poll the queue, invoke the
//! function under `cargo lambda watch` with an SQS event of up to `BatchSize` records, and
//! delete only the messages that did not fail (`batchItemFailures`). Failed messages and
//! failed invocations stay: they come back after the visibility timeout and SQS moves them
//! to the DLQ after `maxReceiveCount`, as in AWS. Schedules (`rate(...)`): a timer that
//! invokes the function with a scheduled event (`LOCAL_SCHEDULE_SECONDS` overrides the rate).
//!
//!   local-event-sources <event-sources.json> <http://127.0.0.1:PORT>   (SQS endpoint from env)

mod streams;

use std::sync::Arc;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde_json::{json, Map, Value};

#[derive(Deserialize, Clone)]
struct Source {
    function: String,
    queue_url: String,
    queue_arn: String,
    batch_size: i32,
    report_batch_item_failures: bool,
}

/// An EventBridge schedule of the template (`rate(...)`), played as a timer.
#[derive(Deserialize, Clone)]
struct Schedule {
    function: String,
    every_seconds: u64,
}

#[derive(Deserialize)]
struct Sources {
    sqs: Vec<Source>,
    streams: Vec<streams::StreamSource>,
    #[serde(default)]
    schedules: Vec<Schedule>,
}

/// Invokes the function with a scheduled event every period, as EventBridge Scheduler does
/// (a failed run is logged; the next one comes at its time).
async fn schedule(http: Http, base: Arc<String>, s: Schedule) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(s.every_seconds.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let event = json!({"version": "0", "source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {}});
        if let Err(e) = invoke(&http, &base, &s.function, &event).await {
            eprintln!("[event-sources] scheduled {} failed: {e}", s.function);
        }
    }
}

type Http = Client<HttpConnector, Full<Bytes>>;

async fn invoke(http: &Http, base: &str, function: &str, event: &Value) -> Result<Value, String> {
    let request = http::Request::post(format!("{base}/2015-03-31/functions/{function}/invocations"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(event.to_string())))
        .map_err(|e| e.to_string())?;
    let response = http.request(request).await.map_err(|e| e.to_string())?;
    let failed = !response.status().is_success() || response.headers().contains_key("x-amz-function-error");
    let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    if failed {
        return Err(String::from_utf8_lossy(&body).into_owned());
    }
    serde_json::from_slice(&body).map_err(|e| format!("bad function response: {e}"))
}

/// The system attributes Lambda's SQS records carry (asking for `All` makes the local SQS
/// compute and send every other one for nothing).
const LAMBDA_ATTRIBUTES: [MessageSystemAttributeName; 5] = [
    MessageSystemAttributeName::ApproximateReceiveCount,
    MessageSystemAttributeName::SentTimestamp,
    MessageSystemAttributeName::SenderId,
    MessageSystemAttributeName::ApproximateFirstReceiveTimestamp,
    MessageSystemAttributeName::AwsTraceHeader,
];

/// One poller of a queue. A queue's pollers take turns receiving (`turn`): moto's receive
/// is not safe against a concurrent one on the same queue (`ValueError: list.remove(x)`
/// inside its `receive_message`, seen in the stack's `sqs.log`), where Lambda's pollers have
/// no such limit. Only the receive is serialised: one poller's invocation and delete overlap
/// the next one's receive.
async fn poll(sqs: aws_sdk_sqs::Client, http: Http, base: Arc<String>, source: Source, turn: Arc<tokio::sync::Mutex<()>>) {
    loop {
        let received = {
            let _turn = turn.lock().await;
            sqs.receive_message()
                .queue_url(&source.queue_url)
                .max_number_of_messages(source.batch_size.min(10))
                .wait_time_seconds(1)
                .set_message_system_attribute_names(Some(LAMBDA_ATTRIBUTES.to_vec()))
                .message_attribute_names("All")
                .send()
                .await
        };
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                eprintln!("[event-sources] receive from {} failed: {e}", source.queue_url);
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                let attributes: Map<String, Value> = m
                    .attributes()
                    .map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone()))).collect())
                    .unwrap_or_default();
                let message_attributes: Map<String, Value> = m
                    .message_attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| {
                                (k.clone(), json!({"stringValue": v.string_value(), "dataType": v.data_type(),
                                                   "stringListValues": [], "binaryListValues": []}))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                json!({
                    "messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(),
                    "md5OfBody": m.md5_of_body(), "attributes": attributes, "messageAttributes": message_attributes,
                    "eventSource": "aws:sqs", "eventSourceARN": source.queue_arn, "awsRegion": "us-east-1",
                })
            })
            .collect();
        let event = json!({ "Records": records });
        let failed_ids: Vec<String> = match invoke(&http, &base, &source.function, &event).await {
            Ok(response) if source.report_batch_item_failures => response["batchItemFailures"]
                .as_array()
                .map(|a| a.iter().filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
            Ok(_) => vec![],
            Err(e) => {
                eprintln!("[event-sources] {} invocation failed: {e}", source.function);
                continue; // nothing deleted: the whole batch comes back after the visibility timeout
            }
        };
        let entries: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .filter(|(_, m)| !failed_ids.iter().any(|f| Some(f.as_str()) == m.message_id()))
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder().id(i.to_string()).receipt_handle(m.receipt_handle()?).build().ok()
            })
            .collect();
        if !entries.is_empty() {
            if let Err(e) = sqs.delete_message_batch().queue_url(&source.queue_url).set_entries(Some(entries)).send().await {
                eprintln!("[event-sources] delete failed: {e}");
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(base)) = (args.get(1), args.get(2)) else {
        return Err("usage: local-event-sources <event-sources.json> <lambda base url>".into());
    };
    let sources: Sources = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    // Long polls against a busy local SQS need more room than the functions' 2 s attempts.
    let timeouts = aws_config::timeout::TimeoutConfig::builder().operation_timeout(std::time::Duration::from_secs(30)).build();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(timeouts).load().await;
    // Lambda's pollers read with the function's execution role: each mapping signs as its
    // function (the local IAM proxy authorizes it against the function's template policy).
    let as_function = |function: &str| {
        let credentials = aws_sdk_sqs::config::Credentials::new(function, "local", None, None, "local-event-sources");
        config.to_builder().credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(credentials)).build()
    };
    let http: Http = Client::builder(TokioExecutor::new()).build_http();
    // Lambda reads a standard queue with five concurrent batches to start with; four here keep
    // moto (one process for every queue) busy without crowding it.
    let pollers: usize = std::env::var("EVENT_SOURCE_POLLERS").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let base = Arc::new(base.trim_end_matches('/').to_owned());
    let mut tasks = Vec::new();
    let checkpoints = Arc::new(streams::Checkpoints::load(std::path::Path::new(path).with_file_name("stream-checkpoints.json")));
    for source in sources.streams {
        eprintln!("[event-sources] {} <- {}", source.function, source.stream_arn);
        let role = as_function(&source.function);
        let (ddb, sqs) = (aws_sdk_dynamodbstreams::Client::new(&role), aws_sdk_sqs::Client::new(&role));
        let (http, base, checkpoints) = (http.clone(), base.clone(), checkpoints.clone());
        tasks.push(tokio::spawn(streams::run(ddb, sqs, http, base, source, checkpoints)));
    }
    for source in sources.sqs {
        eprintln!("[event-sources] {} <- {}", source.function, source.queue_url);
        let sqs = aws_sdk_sqs::Client::new(&as_function(&source.function));
        let turn = Arc::new(tokio::sync::Mutex::new(()));
        for _ in 0..pollers {
            tasks.push(tokio::spawn(poll(sqs.clone(), http.clone(), base.clone(), source.clone(), turn.clone())));
        }
    }
    for s in sources.schedules {
        eprintln!("[event-sources] {} every {} s", s.function, s.every_seconds);
        tasks.push(tokio::spawn(schedule(http.clone(), base.clone(), s)));
    }
    // Runs until stopped (SIGTERM from scripts/stack.sh).
    futures::future::join_all(tasks).await;
    Ok(())
}
