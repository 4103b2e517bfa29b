//! Clients of a running market, for the tools (CLI, benchmarks) and the tests: gRPC-Web to
//! the functions as API Gateway routes them ([`rpc`]), and RabbitMQ as the platform's other
//! modules use it ([`amqp`]); a user's data export as one document ([`export`]).

pub mod amqp;
pub mod export;
pub mod rpc;
