//! Validated identifiers. Ids from the platform are opaque strings of 1–64 characters;
//! we only refuse what could break keys or logs (control characters, and `#`, which the
//! storage layer uses as a key separator).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

use crate::error::MarketError;

fn validate_opaque(kind: &'static str, value: &str, max: usize) -> Result<(), MarketError> {
    let len = value.chars().count();
    if len == 0 || len > max {
        return Err(MarketError::InvalidArgument(format!("{kind} must be 1 to {max} characters")));
    }
    if value.chars().any(|c| c.is_control() || c == '#') {
        return Err(MarketError::InvalidArgument(format!("{kind} contains a forbidden character")));
    }
    Ok(())
}

macro_rules! opaque_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: impl Into<String>) -> Result<Self, MarketError> {
                let value = value.into();
                validate_opaque($kind, &value, $max)?;
                Ok(Self(value))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = MarketError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }
        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

opaque_id!(
    /// A platform user id (opaque, 1–64 characters).
    UserId, "user id", 64);
opaque_id!(
    /// A shop's product id (opaque, 1–64 characters), as `order.paid` may carry it.
    ProductId, "product id", 64);
opaque_id!(
    /// A shop order id (opaque, 1–64 characters).
    OrderId, "order id", 64);
opaque_id!(
    /// An inbound event id, kept for tracing and audit.
    EventId, "event id", 128);
opaque_id!(
    /// A client-chosen idempotency key for a withdrawal (1–128 characters).
    IdempotencyKey, "idempotency key", 128);
opaque_id!(
    /// A withdrawal id; derived from (user, idempotency key), see [`WithdrawalId::derive`].
    WithdrawalId, "withdrawal id", 64);
opaque_id!(
    /// A refund id from the shop (`order.refunded`); unique within its order.
    RefundId, "refund id", 64);
opaque_id!(
    /// An admin adjustment's id; derived from (user, idempotency key).
    AdjustmentId, "adjustment id", 64);
opaque_id!(
    /// An admin reversal's id; derived from (user, order, idempotency key).
    ReversalId, "reversal id", 64);

/// `<prefix>_<32 hex>`: sha256 of the parts, NUL-separated (ids cannot contain NUL).
fn derive(prefix: &str, parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update([0u8]);
        }
        hasher.update(part.as_bytes());
    }
    let hex: String = hasher.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{prefix}_{hex}")
}

impl WithdrawalId {
    /// Deterministic id for a user's withdrawal request: a retry with the same idempotency key
    /// maps to the same id, so the ledger entry's "must not exist" condition is what makes
    /// withdrawals idempotent (no separate idempotency table, and no expiry of that guarantee).
    pub fn derive(user: &UserId, key: &IdempotencyKey) -> Self {
        Self(derive("wd", &[user.as_str(), key.as_str()]))
    }
}

impl AdjustmentId {
    /// Same scheme as withdrawals: the key makes the ledger entry's key.
    pub fn derive(user: &UserId, key: &IdempotencyKey) -> Self {
        Self(derive("adj", &[user.as_str(), key.as_str()]))
    }
}

impl ReversalId {
    pub fn derive(user: &UserId, order: &OrderId, key: &IdempotencyKey) -> Self {
        Self(derive("rev", &[user.as_str(), order.as_str(), key.as_str()]))
    }
    /// The reversal of a rejected review: one per commission (it is reviewed once).
    pub fn review(user: &UserId, order: &OrderId) -> Self {
        Self(derive("review", &[user.as_str(), order.as_str()]))
    }
}

impl From<&RefundId> for ReversalId {
    /// A refund's reversal is named by the refund: one reversal per refund id and order.
    fn from(r: &RefundId) -> Self {
        ReversalId(r.as_str().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_bounded_and_clean() {
        assert!(UserId::parse("u-1").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("x".repeat(65)).is_err());
        assert!(UserId::parse("x".repeat(64)).is_ok());
        assert!(UserId::parse("a#b").is_err());
        assert!(OrderId::parse("o\n1").is_err());
    }

    #[test]
    fn withdrawal_id_is_deterministic_and_user_scoped() {
        let key = IdempotencyKey::parse("k1").unwrap();
        let a = UserId::parse("alice").unwrap();
        let b = UserId::parse("bob").unwrap();
        assert_eq!(WithdrawalId::derive(&a, &key), WithdrawalId::derive(&a, &key));
        assert_ne!(WithdrawalId::derive(&a, &key), WithdrawalId::derive(&b, &key));
        assert_eq!(WithdrawalId::derive(&a, &key).as_str().len(), 35);
    }
}
