//! The gRPC-Web client of the tests: `market-client`'s.

pub use market_client::rpc::*;
