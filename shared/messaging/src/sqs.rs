//! SQS sends. `SendMessageBatch` reports success per entry; a failed entry is reported
//! as such so the caller can retry exactly that message (nothing else).

use std::collections::HashMap;

use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use aws_sdk_sqs::Client;
use market_domain::MarketError;
use serde::Serialize;

/// One message to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub body: String,
    /// String message attributes (SQS allows 10 per message).
    pub attributes: Vec<(String, String)>,
}

#[derive(Clone)]
pub struct Sqs {
    client: Client,
}

const BATCH: usize = 10;

impl Sqs {
    pub fn new(client: Client) -> Self {
        Sqs { client }
    }

    pub fn from_conf(config: &aws_sdk_sqs::config::Builder) -> Self {
        Sqs { client: Client::from_conf(config.clone().build()) }
    }

    /// Sends all messages to `queue_url`, ten per request; one result per message, in order.
    pub async fn send_all(&self, queue_url: &str, messages: &[Outgoing]) -> Vec<Result<(), MarketError>> {
        let mut results = Vec::with_capacity(messages.len());
        for chunk in messages.chunks(BATCH) {
            results.extend(self.send_batch(queue_url, chunk).await);
        }
        results
    }

    async fn send_batch(&self, queue_url: &str, chunk: &[Outgoing]) -> Vec<Result<(), MarketError>> {
        let mut entries = Vec::with_capacity(chunk.len());
        for (i, m) in chunk.iter().enumerate() {
            let mut attributes = HashMap::new();
            for (k, v) in &m.attributes {
                if let Ok(value) = MessageAttributeValue::builder().data_type("String").string_value(v).build() {
                    attributes.insert(k.clone(), value);
                }
            }
            let entry = SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(&m.body)
                .set_message_attributes((!attributes.is_empty()).then_some(attributes))
                .build();
            match entry {
                Ok(e) => entries.push(e),
                Err(e) => {
                    let reason = e.to_string();
                    return chunk.iter().map(|_| Err(MarketError::internal(reason.clone()))).collect();
                }
            }
        }
        let out = match self.client.send_message_batch().queue_url(queue_url).set_entries(Some(entries)).send().await {
            Ok(out) => out,
            Err(e) => {
                let reason = e.to_string();
                return chunk.iter().map(|_| Err(MarketError::Unavailable(reason.clone().into()))).collect();
            }
        };
        let failed: HashMap<String, String> =
            out.failed().iter().map(|f| (f.id().to_owned(), f.code().to_owned())).collect();
        (0..chunk.len())
            .map(|i| match failed.get(&i.to_string()) {
                Some(code) => Err(MarketError::Unavailable(format!("SQS rejected the entry: {code}").into())),
                None => Ok(()),
            })
            .collect()
    }
}

impl Outgoing {
    /// `message` as a JSON body, with string message attributes (e.g. the platform event id).
    pub fn json<T: Serialize>(message: &T, attributes: Vec<(String, String)>) -> Result<Outgoing, MarketError> {
        let body = serde_json::to_string(message).map_err(|e| MarketError::Internal(Box::new(e)))?;
        Ok(Outgoing { body, attributes })
    }
}
