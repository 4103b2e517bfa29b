//! Invite codes: 8 characters from an alphabet without look-alikes (no 0/O, 1/I/L),
//! generated with `nanoid`, compared case-insensitively (stored upper-case).

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::error::MarketError;

pub const CODE_LEN: usize = 8;

/// 2–9 and A–Z without I, L, O: 31 symbols, ~39.6 bits per code.
pub const ALPHABET: [char; 31] = [
    '2', '3', '4', '5', '6', '7', '8', '9', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'J', 'K', 'M',
    'N', 'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z',
];

/// A canonical (upper-case) invite code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InviteCode(String);

impl InviteCode {
    /// A fresh random code. Uniqueness is enforced by the store's conditional write.
    pub fn generate() -> Self {
        InviteCode(nanoid::format(nanoid::rngs::default, &ALPHABET, CODE_LEN))
    }

    /// Parses user input case-insensitively; surrounding white space is ignored.
    pub fn parse(input: &str) -> Result<Self, MarketError> {
        let canonical = input.trim().to_ascii_uppercase();
        if canonical.chars().count() != CODE_LEN || !canonical.chars().all(|c| ALPHABET.contains(&c)) {
            return Err(MarketError::InvalidArgument("invalid invite code".into()));
        }
        Ok(InviteCode(canonical))
    }

    /// What logs name a code by: the first 8 hex digits of its sha256. A code in clear is a
    /// credential to someone's referrals, and logs are read by more people than the table.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        Sha256::digest(self.0.as_bytes()).iter().take(4).map(|b| format!("{b:02x}")).collect()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for InviteCode {
    type Error = MarketError;
    fn try_from(v: String) -> Result<Self, Self::Error> {
        InviteCode::parse(&v)
    }
}
impl From<InviteCode> for String {
    fn from(c: InviteCode) -> String {
        c.0
    }
}
impl fmt::Display for InviteCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_names_a_code_without_showing_it() {
        let code = InviteCode::parse("ABCD2345").unwrap();
        let fp = code.fingerprint();
        assert_eq!(fp.len(), 8);
        assert!(!fp.to_uppercase().contains("ABCD"));
        assert_eq!(fp, InviteCode::parse("abcd2345").unwrap().fingerprint(), "as the code, case-insensitive");
    }
    use proptest::prelude::*;

    #[test]
    fn alphabet_has_no_look_alikes() {
        for c in ['0', 'O', '1', 'I', 'L'] {
            assert!(!ALPHABET.contains(&c), "{c}");
        }
        let mut sorted = ALPHABET.to_vec();
        sorted.dedup();
        assert_eq!(sorted.len(), ALPHABET.len());
    }

    #[test]
    fn parse_rejects_bad_input() {
        assert!(InviteCode::parse("ABCDEFG").is_err()); // 7
        assert!(InviteCode::parse("ABCDEFGHJ").is_err()); // 9
        assert!(InviteCode::parse("ABCDEFG0").is_err()); // look-alike
        assert!(InviteCode::parse("abcdefgl").is_err());
        assert!(InviteCode::parse("ÄBCDEFGH").is_err());
        assert_eq!(InviteCode::parse(" abcdefgh ").unwrap().as_str(), "ABCDEFGH");
    }

    proptest! {
        #[test]
        fn generated_codes_are_valid_and_round_trip(_seed in 0u8..255) {
            let code = InviteCode::generate();
            prop_assert_eq!(code.as_str().len(), CODE_LEN);
            prop_assert_eq!(InviteCode::parse(code.as_str()).unwrap(), code.clone());
            prop_assert_eq!(InviteCode::parse(&code.as_str().to_ascii_lowercase()).unwrap(), code);
        }

        #[test]
        fn parse_is_case_insensitive(s in "[2-9A-HJKMNP-Za-hjkmnp-z]{8}") {
            let upper = InviteCode::parse(&s.to_ascii_uppercase()).unwrap();
            prop_assert_eq!(InviteCode::parse(&s).unwrap(), upper);
        }
    }
}
