//! Messaging adapters: SQS sends (batched, per-entry results) and the relay core that
//! moves platform events from RabbitMQ into SQS — shared by the standalone bridge and the
//! Amazon MQ Lambda handler.

pub mod relay;
pub mod sqs;

pub use relay::{InboundMessage, Relay, Route, Routes};
pub use sqs::{Outgoing, Sqs};
