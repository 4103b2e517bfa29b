//! Messaging adapters: SQS sends (batched, per-entry results), the relay core that moves
//! platform events from RabbitMQ into SQS (shared by the standalone bridge and the Amazon MQ
//! Lambda handler), and the shape of outbound events on the outbound queue.

pub mod outbound;
pub mod relay;
pub mod sqs;

pub use outbound::OutboundMessage;
pub use relay::{InboundMessage, Relay, Route, Routes};
pub use sqs::{Outgoing, Sqs};
