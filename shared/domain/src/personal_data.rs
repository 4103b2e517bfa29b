//! A user's personal data as the module holds it (GDPR art. 15): the sections an export is
//! made of, each a list of the items stored, as JSON. Value types only; the store finds
//! the items (by key, or by an index on the user: never a `Scan`).

use serde::Serialize;

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

    #[test]
    fn sections_are_listed_once_in_order() {
        for (i, s) in DataSection::ALL.iter().enumerate() {
            assert_eq!(s.index(), i);
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.as_str()));
        }
    }
}
