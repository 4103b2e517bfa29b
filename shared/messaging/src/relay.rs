//! The relay core: platform events from RabbitMQ (exchange, routing key) -> an SQS queue
//! from configuration. The AMQP message id, exchange, routing key and headers travel as
//! SQS message attributes. Results are per message so the caller acks exactly what SQS
//! accepted.

use std::collections::HashMap;

use market_domain::MarketError;
use serde::Deserialize;

use crate::sqs::{Outgoing, Sqs};

/// A message as the bridge received it.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    pub exchange: String,
    pub routing_key: String,
    pub body: Vec<u8>,
    pub message_id: Option<String>,
    /// AMQP headers rendered as JSON values.
    pub headers: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Route {
    pub exchange: String,
    pub routing_key: String,
    pub queue_url: String,
}

impl Route {
    /// The durable RabbitMQ queue the bridge consumes for this route.
    pub fn amqp_queue(&self) -> String {
        format!("helium-market.{}.{}", self.exchange, self.routing_key)
    }
}

#[derive(Debug, Clone)]
pub struct Routes(pub Vec<Route>);

#[derive(Debug, thiserror::Error)]
pub enum RoutesError {
    #[error("BRIDGE_ROUTES is not a JSON list of routes: {0}")]
    Json(String),
    #[error("{0} is not set")]
    Missing(&'static str),
}

impl Routes {
    /// `BRIDGE_ROUTES` (JSON `[{"exchange","routing_key","queue_url"}]`), or by default the
    /// three platform events to the template's queues.
    pub fn from_env() -> Result<Self, RoutesError> {
        if let Ok(json) = std::env::var("BRIDGE_ROUTES") {
            if !json.trim().is_empty() {
                return serde_json::from_str(&json).map(Routes).map_err(|e| RoutesError::Json(e.to_string()));
            }
        }
        let var = |k: &'static str| std::env::var(k).map_err(|_| RoutesError::Missing(k));
        Ok(Routes(vec![
            Route { exchange: "auth".into(), routing_key: "user.registered".into(), queue_url: var("USER_REGISTERED_QUEUE_URL")? },
            Route { exchange: "shop".into(), routing_key: "order.paid".into(), queue_url: var("ORDER_PAID_QUEUE_URL")? },
            Route { exchange: "shop".into(), routing_key: "order.refunded".into(), queue_url: var("ORDER_REFUNDED_QUEUE_URL")? },
        ]))
    }

    pub fn for_message(&self, exchange: &str, routing_key: &str) -> Option<&Route> {
        self.0.iter().find(|r| r.exchange == exchange && r.routing_key == routing_key)
    }

    /// Amazon MQ events name the source queue (`name::vhost`), not the routing key.
    pub fn for_amqp_queue(&self, queue: &str) -> Option<&Route> {
        let name = queue.split("::").next().unwrap_or(queue);
        self.0.iter().find(|r| r.amqp_queue() == name)
    }
}

pub struct Relay {
    pub routes: Routes,
    sqs: Sqs,
}

impl Relay {
    pub fn new(routes: Routes, sqs: Sqs) -> Self {
        Relay { routes, sqs }
    }

    /// Sends every message to its route's queue; one result per message, in order.
    pub async fn relay(&self, messages: &[InboundMessage]) -> Vec<Result<(), MarketError>> {
        let mut results: Vec<Option<Result<(), MarketError>>> = messages.iter().map(|_| None).collect();
        let mut by_queue: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, m) in messages.iter().enumerate() {
            match self.routes.for_message(&m.exchange, &m.routing_key) {
                Some(route) => by_queue.entry(route.queue_url.as_str()).or_default().push(i),
                None => {
                    results[i] = Some(Err(MarketError::InvalidArgument(format!("no route for {}/{}", m.exchange, m.routing_key))))
                }
            }
        }
        for (queue, indexes) in by_queue {
            let outgoing: Vec<Outgoing> = indexes.iter().map(|&i| to_sqs(&messages[i])).collect();
            for (i, result) in indexes.into_iter().zip(self.sqs.send_all(queue, &outgoing).await) {
                results[i] = Some(result);
            }
        }
        results.into_iter().map(|r| r.unwrap_or_else(|| Err(MarketError::internal("message not relayed")))).collect()
    }
}

fn to_sqs(m: &InboundMessage) -> Outgoing {
    let mut attributes = vec![
        ("amqp_exchange".to_owned(), m.exchange.clone()),
        ("amqp_routing_key".to_owned(), m.routing_key.clone()),
    ];
    if let Some(id) = &m.message_id {
        attributes.push(("amqp_message_id".to_owned(), id.clone()));
    }
    if !m.headers.is_empty() {
        // One attribute for all headers: SQS allows only ten attributes per message.
        attributes.push(("amqp_headers".to_owned(), serde_json::Value::Object(m.headers.clone()).to_string()));
    }
    Outgoing { body: String::from_utf8_lossy(&m.body).into_owned(), attributes }
}
