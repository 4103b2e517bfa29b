//! The outbox: one record per outbound event, written in the transaction that causes the
//! event (a withdrawal). The table's stream feeds the relay (`publish-market-events`), which
//! marks each record relayed and gives it a TTL; records are never deleted before that.

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use market_domain::ports::Result;
use market_domain::time::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::sdk_error;
use crate::expr::{key, n};
use crate::tables::attr;
use crate::DynamoStore;

/// An outbox record as written and as the stream's NEW_IMAGE carries it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutboxRecord {
    /// The event id (for a withdrawal: the withdrawal id); the AMQP message id downstream.
    pub event_id: String,
    pub exchange: String,
    pub routing_key: String,
    /// The event as JSON, exactly as published.
    pub payload: String,
    pub created_at: Timestamp,
    /// Set once the relay handed the event to the outbound queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relayed_at: Option<Timestamp>,
}

/// What marking found.
#[derive(Debug, PartialEq, Eq)]
pub enum Marked {
    Now,
    /// Already marked by an earlier delivery of the same stream record (kept as it was).
    Before,
}

impl DynamoStore {
    /// Marks a record relayed and sets its TTL. Only the first mark counts, so `purge_at`
    /// is measured from the first relay.
    pub async fn mark_relayed(&self, event_id: &str, at: Timestamp, purge_at: Timestamp) -> Result<Marked> {
        let sent = self
            .client()
            .update_item()
            .table_name(&self.tables().outbox)
            .set_key(Some(key(attr::EVENT_ID, event_id)))
            .update_expression("SET #relayed_at = :at, #purge_at = :purge")
            .condition_expression("attribute_exists(#event_id) AND attribute_not_exists(#relayed_at)")
            .expression_attribute_names("#relayed_at", attr::RELAYED_AT)
            .expression_attribute_names("#purge_at", attr::PURGE_AT)
            .expression_attribute_names("#event_id", attr::EVENT_ID)
            .expression_attribute_values(":at", n(at.millis()))
            .expression_attribute_values(":purge", n(purge_at.epoch_seconds()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match sent {
            Ok(out) => {
                self.usage().record(out.consumed_capacity());
                Ok(Marked::Now)
            }
            Err(e) if matches!(e.as_service_error(), Some(UpdateItemError::ConditionalCheckFailedException(_))) => {
                Ok(Marked::Before)
            }
            Err(e) => Err(sdk_error(e)),
        }
    }

    /// One outbox record (tests and admin tooling).
    pub async fn outbox_record(&self, event_id: &str) -> Result<Option<OutboxRecord>> {
        let item = self.get_item(&self.tables().outbox, key(attr::EVENT_ID, event_id)).await?;
        item.map(|i| serde_dynamo::from_item(i).map_err(crate::error::mapping_error)).transpose()
    }
}
