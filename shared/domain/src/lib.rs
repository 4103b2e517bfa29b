//! Helium Market domain: the affiliate programme's rules, free of AWS types.
//!
//! - [`ids`], [`money`], [`code`], [`time`]: validated values.
//! - [`policy`], [`config`]: per-user policy and global configuration, and how they combine.
//! - [`inbound`]: the platform's events as the rules take them.
//! - [`model`]: the records the rules read and write.
//! - [`lifecycle`]: a commission from earned to pending, available, refunded or voided.
//! - [`personal_data`]: what an export of a user's data is made of.
//! - [`ports`]: what the rules need from storage and configuration.
//! - [`processors`]: one [`processors::Processor`] per business operation.

pub mod admin;
pub mod admin_groups;
pub mod audit;
pub mod code;
pub mod config;
pub mod error;
pub mod events;
pub mod group;
pub mod ids;
pub mod inbound;
pub mod ledger;
pub mod lifecycle;
pub mod limits;
pub mod model;
pub mod money;
pub mod personal_data;
pub mod policy;
pub mod ports;
pub mod processors;
pub mod request;
pub mod referral;
pub mod rules;
pub mod time;

#[cfg(test)]
mod layers;

pub use error::MarketError;
