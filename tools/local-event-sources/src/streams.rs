//! Lambda's DynamoDB stream event source mapping, locally: per shard, read records in order,
//! drop those the mapping's filter excludes, invoke the function with a DynamoDB event of up
//! to `BatchSize` records and, on a partial failure (`batchItemFailures`), retry from the
//! reported record — never skipping it. Progress is checkpointed per shard in a file, so a
//! restarted runner resumes where it stopped instead of losing or replaying the stream.
//! Retries are unlimited when `MaximumRetryAttempts` is -1 (as in the template); with a
//! limit, a batch that exhausts it is reported to the on-failure queue and skipped.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use aws_sdk_dynamodbstreams::Client;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::{invoke, Http};

#[derive(Deserialize, Clone)]
pub struct StreamSource {
    pub function: String,
    pub stream_arn: String,
    pub batch_size: i32,
    pub starting_position: String,
    pub maximum_retry_attempts: i64,
    pub report_batch_item_failures: bool,
    #[serde(default)]
    pub event_names: Vec<String>,
    pub on_failure_queue_url: Option<String>,
}

/// shard id -> last sequence number handled, persisted after every step.
pub struct Checkpoints {
    path: PathBuf,
    map: Mutex<HashMap<String, String>>,
}

impl Checkpoints {
    pub fn load(path: PathBuf) -> Self {
        let map = std::fs::read_to_string(&path).ok().and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default();
        Checkpoints { path, map: Mutex::new(map) }
    }
    fn get(&self, shard: &str) -> Option<String> {
        self.map.lock().ok()?.get(shard).cloned()
    }
    fn set(&self, shard: &str, seq: &str) {
        let Ok(mut map) = self.map.lock() else { return };
        map.insert(shard.to_owned(), seq.to_owned());
        let tmp = self.path.with_extension("tmp");
        // Write-then-rename: a runner killed mid-write leaves the previous checkpoint intact.
        if std::fs::write(&tmp, serde_json::to_vec(&*map).unwrap_or_default()).is_ok() {
            let _ = std::fs::rename(&tmp, &self.path);
        }
    }
}

pub async fn run(client: Client, sqs: aws_sdk_sqs::Client, http: Http, base: Arc<String>, source: StreamSource, checkpoints: Arc<Checkpoints>) {
    let mut started = HashSet::new();
    loop {
        match shards(&client, &source.stream_arn).await {
            Ok(ids) => {
                for id in ids {
                    if started.insert(id.clone()) {
                        tokio::spawn(shard(client.clone(), sqs.clone(), http.clone(), base.clone(), source.clone(), checkpoints.clone(), id));
                    }
                }
            }
            Err(e) => eprintln!("[event-sources] describe stream {} failed: {e}", source.stream_arn),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn shards(client: &Client, arn: &str) -> Result<Vec<String>, String> {
    let mut ids = Vec::new();
    let mut start = None;
    loop {
        let out = client.describe_stream().stream_arn(arn).set_exclusive_start_shard_id(start).send().await.map_err(|e| e.to_string())?;
        let Some(desc) = out.stream_description else { return Ok(ids) };
        ids.extend(desc.shards().iter().filter_map(|s| s.shard_id().map(str::to_owned)));
        start = desc.last_evaluated_shard_id;
        if start.is_none() {
            return Ok(ids);
        }
    }
}

async fn iterator(client: &Client, source: &StreamSource, shard: &str, after: Option<String>) -> Result<Option<String>, String> {
    let request = client.get_shard_iterator().stream_arn(&source.stream_arn).shard_id(shard);
    let request = match after {
        Some(seq) => request.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).sequence_number(seq),
        None if source.starting_position == "LATEST" => request.shard_iterator_type(ShardIteratorType::Latest),
        None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
    };
    request.send().await.map(|o| o.shard_iterator).map_err(|e| e.to_string())
}

async fn shard(client: Client, sqs: aws_sdk_sqs::Client, http: Http, base: Arc<String>, source: StreamSource, checkpoints: Arc<Checkpoints>, shard: String) {
    let mut it = None;
    loop {
        let current = match it.take() {
            Some(i) => i,
            None => match iterator(&client, &source, &shard, checkpoints.get(&shard)).await {
                Ok(Some(i)) => i,
                Ok(None) => return, // closed and fully read
                Err(e) => {
                    eprintln!("[event-sources] shard iterator for {shard} failed: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        let out = match client.get_records().shard_iterator(&current).limit(source.batch_size).send().await {
            Ok(out) => out,
            Err(e) => {
                // Expired or trimmed iterator, or the service hiccuped: resume from the checkpoint.
                eprintln!("[event-sources] get records from {shard} failed: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let records = out.records.unwrap_or_default();
        if !records.is_empty() {
            deliver(&sqs, &http, &base, &source, &checkpoints, &shard, records).await;
        }
        match out.next_shard_iterator {
            Some(next) => {
                it = Some(next);
                tokio::time::sleep(Duration::from_millis(250)).await; // Lambda polls a shard about 4x per second
            }
            None => return, // shard closed
        }
    }
}

/// Hands `records` to the function until each has been handled (or given up on).
async fn deliver(sqs: &aws_sdk_sqs::Client, http: &Http, base: &str, source: &StreamSource, checkpoints: &Checkpoints, shard: &str, records: Vec<Record>) {
    let mut pending = records;
    let mut attempt: i64 = 0;
    while let Some(last) = pending.last().and_then(|r| r.dynamodb()).and_then(|d| d.sequence_number()).map(str::to_owned) {
        let batch: Vec<&Record> = pending
            .iter()
            .filter(|r| source.event_names.is_empty() || r.event_name().is_some_and(|n| source.event_names.iter().any(|e| e == n.as_str())))
            .collect();
        if batch.is_empty() {
            checkpoints.set(shard, &last);
            return;
        }
        let event = json!({ "Records": batch.iter().map(|r| record_json(r, &source.stream_arn)).collect::<Vec<_>>() });
        let failed_from = match invoke(http, base, &source.function, &event).await {
            Ok(response) if source.report_batch_item_failures => response["batchItemFailures"]
                .as_array()
                .and_then(|a| a.iter().filter_map(|f| f["itemIdentifier"].as_str()).min_by(|a, b| seq_cmp(a, b)).map(str::to_owned)),
            Ok(_) => None,
            Err(e) => {
                eprintln!("[event-sources] {} invocation failed: {e}", source.function);
                pending.first().and_then(|r| r.dynamodb()).and_then(|d| d.sequence_number()).map(str::to_owned)
            }
        };
        let Some(failed_from) = failed_from else {
            checkpoints.set(shard, &last);
            return;
        };
        // Everything before the failed record is done.
        let position = pending.iter().position(|r| r.dynamodb().and_then(|d| d.sequence_number()) == Some(failed_from.as_str())).unwrap_or(0);
        if position > 0 {
            if let Some(seq) = pending[position - 1].dynamodb().and_then(|d| d.sequence_number()) {
                checkpoints.set(shard, seq);
            }
            pending.drain(..position);
            attempt = 0;
            continue;
        }
        attempt += 1;
        if source.maximum_retry_attempts >= 0 && attempt > source.maximum_retry_attempts {
            give_up(sqs, source, shard, &pending).await;
            checkpoints.set(shard, &last);
            return;
        }
        let pause = Duration::from_millis((100u64 << attempt.min(6)).min(5_000));
        tokio::time::sleep(pause).await;
    }
}

fn seq_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    (a.len(), a).cmp(&(b.len(), b))
}

/// What Lambda sends to an on-failure destination: where the skipped records were.
async fn give_up(sqs: &aws_sdk_sqs::Client, source: &StreamSource, shard: &str, records: &[Record]) {
    let seq = |r: Option<&Record>| r.and_then(|r| r.dynamodb()).and_then(|d| d.sequence_number()).unwrap_or("").to_owned();
    let note = json!({
        "requestContext": {"condition": "RetryAttemptsExhausted", "functionArn": source.function},
        "DDBStreamBatchInfo": {"shardId": shard, "streamArn": source.stream_arn, "batchSize": records.len(),
                               "startSequenceNumber": seq(records.first()), "endSequenceNumber": seq(records.last())},
    });
    eprintln!("[event-sources] {} gave up on {} records of {shard}", source.function, records.len());
    if let Some(url) = &source.on_failure_queue_url {
        let _ = sqs.send_message().queue_url(url).message_body(note.to_string()).send().await;
    }
}

fn record_json(r: &Record, stream_arn: &str) -> Value {
    let d = r.dynamodb();
    let image = |m: Option<&HashMap<String, AttributeValue>>| m.map(map_json).unwrap_or(Value::Null);
    json!({
        "eventID": r.event_id(),
        "eventName": r.event_name().map(|n| n.as_str()),
        "eventVersion": r.event_version(),
        "eventSource": r.event_source(),
        "awsRegion": r.aws_region(),
        "eventSourceARN": stream_arn,
        "dynamodb": {
            "ApproximateCreationDateTime": d.and_then(|d| d.approximate_creation_date_time()).map(|t| t.as_secs_f64()),
            "Keys": image(d.and_then(|d| d.keys.as_ref())),
            "NewImage": image(d.and_then(|d| d.new_image.as_ref())),
            "OldImage": image(d.and_then(|d| d.old_image.as_ref())),
            "SequenceNumber": d.and_then(|d| d.sequence_number()),
            "SizeBytes": d.and_then(|d| d.size_bytes()),
            "StreamViewType": d.and_then(|d| d.stream_view_type()).map(|v| v.as_str()),
        },
    })
}

fn map_json(m: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(m.iter().map(|(k, v)| (k.clone(), attribute_json(v))).collect::<Map<_, _>>())
}

/// DynamoDB JSON, as Lambda delivers images.
fn attribute_json(v: &AttributeValue) -> Value {
    let b64 = |b: &aws_sdk_dynamodbstreams::primitives::Blob| base64::engine::general_purpose::STANDARD.encode(b.as_ref());
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b64(b) }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(n) => json!({ "NULL": n }),
        AttributeValue::M(m) => json!({ "M": map_json(m) }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(attribute_json).collect::<Vec<_>>() }),
        AttributeValue::Ss(s) => json!({ "SS": s }),
        AttributeValue::Ns(n) => json!({ "NS": n }),
        AttributeValue::Bs(b) => json!({ "BS": b.iter().map(b64).collect::<Vec<_>>() }),
        _ => Value::Null,
    }
}
