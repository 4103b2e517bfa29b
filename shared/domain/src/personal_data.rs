//! A user's personal data as the module holds it (GDPR art. 15): the sections an export is
//! made of, each a list of the items stored, as JSON. Value types only; the store finds
//! the items (by key, or by an index on the user: never a `Scan`). And the pseudonym an
//! erasure (art. 17) replaces a user's id with.

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::ids::UserId;
use crate::MarketError;

/// The prefix of every pseudonym: an erased user's records are recognisable as such.
pub const PSEUDONYM_PREFIX: &str = "erased-";

/// The stable pseudonym of `user` under `key` (HMAC-SHA-256, 160 bits in hex): the same user
/// always maps to the same pseudonym, so events naming them after their erasure find their
/// records; nobody without the key can tell whose it is, nor compute it from an id.
pub fn pseudonym(key: &[u8], user: &UserId) -> Result<UserId, MarketError> {
    if key.len() < 32 {
        return Err(MarketError::internal("the erasure key is shorter than 32 bytes"));
    }
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|_| MarketError::internal("erasure key"))?;
    mac.update(user.as_str().as_bytes());
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().take(20).map(|b| format!("{b:02x}")).collect();
    UserId::parse(format!("{PSEUDONYM_PREFIX}{hex}"))
}

/// Whether `user` is a pseudonym (an erased user's records).
pub fn is_pseudonym(user: &UserId) -> bool {
    user.as_str().starts_with(PSEUDONYM_PREFIX)
}

/// Where an exported record comes from, in the order an export lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSection {
    /// The user's policy: registration (inviter, code), overrides, review flags.
    Policy,
    /// The user's statistics (the main item and its shards).
    Statistics,
    /// Every invite code the user created, deactivated ones too.
    InviteCodes,
    /// The user's ledger as an affiliate: commissions and entries.
    Ledger,
    /// The user's audit trail.
    AuditTrail,
    /// Records on other users' trails that name this user (the buyer of their reward, either
    /// side of a referral).
    AuditMentions,
    /// Orders and refunds of the user that wait for their registration.
    WaitingEvents,
    /// The users this user referred (id, registration time, code).
    Referrals,
    /// Commissions (and their reward entries) that other affiliates earned on this user's
    /// orders: the user as a buyer.
    PurchasesReferred,
}

impl DataSection {
    pub const ALL: [DataSection; 9] = [
        DataSection::Policy,
        DataSection::Statistics,
        DataSection::InviteCodes,
        DataSection::Ledger,
        DataSection::AuditTrail,
        DataSection::AuditMentions,
        DataSection::WaitingEvents,
        DataSection::Referrals,
        DataSection::PurchasesReferred,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DataSection::Policy => "policy",
            DataSection::Statistics => "statistics",
            DataSection::InviteCodes => "invite_codes",
            DataSection::Ledger => "ledger",
            DataSection::AuditTrail => "audit_trail",
            DataSection::AuditMentions => "audit_mentions",
            DataSection::WaitingEvents => "waiting_events",
            DataSection::Referrals => "referrals",
            DataSection::PurchasesReferred => "purchases_referred",
        }
    }

    /// The section's position in [`DataSection::ALL`] (page tokens carry it).
    pub fn index(self) -> usize {
        DataSection::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }
}

/// One stored item, as JSON (numbers as numbers, money in minor units as stored).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataRecord {
    pub section: DataSection,
    pub record: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_pseudonym_is_stable_keyed_and_recognisable() {
        let alice = UserId::parse("alice").unwrap();
        let p = pseudonym(KEY, &alice).unwrap();
        assert_eq!(p, pseudonym(KEY, &alice).unwrap(), "the same user, the same pseudonym");
        assert_ne!(p, pseudonym(KEY, &UserId::parse("bob").unwrap()).unwrap());
        assert_ne!(p, pseudonym(b"another key, 32 bytes long at least", &alice).unwrap(), "keyed");
        assert!(is_pseudonym(&p) && !is_pseudonym(&alice));
        assert_eq!(p.as_str().len(), PSEUDONYM_PREFIX.len() + 40);
        assert!(!p.as_str().contains('#'), "usable in keys");
        assert!(pseudonym(b"short", &alice).is_err(), "a weak key is refused");
    }

    #[test]
    fn sections_are_listed_once_in_order() {
        for (i, s) in DataSection::ALL.iter().enumerate() {
            assert_eq!(s.index(), i);
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.as_str()));
        }
    }
}
