//! Money is `i64` minor units; rates are basis points. No floats anywhere.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::error::MarketError;

/// An amount in minor units of the deployment's currency (e.g. cents).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Money(i64);

impl Money {
    pub const ZERO: Money = Money(0);

    pub const fn from_minor(minor: i64) -> Self {
        Money(minor)
    }
    pub const fn minor(self) -> i64 {
        self.0
    }
    pub fn is_positive(self) -> bool {
        self.0 > 0
    }
    pub fn checked_add(self, other: Money) -> Result<Money, MarketError> {
        self.0.checked_add(other.0).map(Money).ok_or(MarketError::Overflow)
    }
    pub fn checked_sub(self, other: Money) -> Result<Money, MarketError> {
        self.0.checked_sub(other.0).map(Money).ok_or(MarketError::Overflow)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A rate in basis points, `0..=10000` (10000 = 100 %).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Bps(u16);

impl Bps {
    pub const MAX: u16 = 10_000;

    pub fn new(bps: u32) -> Result<Self, MarketError> {
        u16::try_from(bps)
            .ok()
            .filter(|b| *b <= Self::MAX)
            .map(Bps)
            .ok_or_else(|| MarketError::InvalidArgument("rate must be 0 to 10000 basis points".into()))
    }
    pub const fn get(self) -> u16 {
        self.0
    }
    /// For constants written in this crate; callers validate with [`Bps::new`].
    pub(crate) const fn from_const(bps: u16) -> Self {
        assert!(bps <= Self::MAX);
        Bps(bps)
    }
}
impl TryFrom<u32> for Bps {
    type Error = MarketError;
    fn try_from(v: u32) -> Result<Self, Self::Error> {
        Bps::new(v)
    }
}
impl From<Bps> for u32 {
    fn from(b: Bps) -> u32 {
        u32::from(b.0)
    }
}

/// ISO-4217-style currency code: three ASCII upper-case letters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

impl Currency {
    pub fn parse(code: &str) -> Result<Self, MarketError> {
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Currency(code.to_owned()))
        } else {
            Err(MarketError::InvalidArgument("currency must be a three-letter upper-case code".into()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub(crate) fn usd() -> Self {
        Currency("USD".to_owned())
    }
}
impl TryFrom<String> for Currency {
    type Error = MarketError;
    fn try_from(v: String) -> Result<Self, Self::Error> {
        Currency::parse(&v)
    }
}
impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.0
    }
}
impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The reward rule: `floor(amount × bps / 10000)`, computed in `i128` so it cannot overflow,
/// rounded towards negative infinity explicitly (amounts are positive, so this is truncation).
pub fn commission(amount: Money, rate: Bps) -> Result<Money, MarketError> {
    let product = i128::from(amount.minor()) * i128::from(rate.get());
    let floored = product.div_euclid(i128::from(Bps::MAX));
    i64::try_from(floored).map(Money).map_err(|_| MarketError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn commission_floors() {
        let r = |a, b| commission(Money(a), Bps::new(b).unwrap()).unwrap().minor();
        assert_eq!(r(1000, 1000), 100);
        assert_eq!(r(999, 1000), 99); // 99.9 -> 99
        assert_eq!(r(9, 1000), 0);
        assert_eq!(r(i64::MAX, 10_000), i64::MAX);
        assert_eq!(r(12345, 0), 0);
    }

    #[test]
    fn bps_bounds() {
        assert!(Bps::new(10_000).is_ok());
        assert!(Bps::new(10_001).is_err());
        assert!(Bps::new(70_000).is_err());
        assert!(serde_json::from_str::<Bps>("10001").is_err());
    }

    #[test]
    fn currency_codes() {
        assert!(Currency::parse("EUR").is_ok());
        assert!(Currency::parse("eur").is_err());
        assert!(Currency::parse("EURO").is_err());
    }

    proptest! {
        #[test]
        fn commission_never_exceeds_amount_and_is_floor(amount in 0i64..=i64::MAX, bps in 0u32..=10_000) {
            let reward = commission(Money(amount), Bps::new(bps).unwrap()).unwrap().minor();
            prop_assert!(reward >= 0);
            prop_assert!(reward <= amount);
            // floor: reward*10000 <= amount*bps < (reward+1)*10000
            let exact = i128::from(amount) * i128::from(bps);
            prop_assert!(i128::from(reward) * 10_000 <= exact);
            prop_assert!(exact < (i128::from(reward) + 1) * 10_000);
        }

        #[test]
        fn commission_is_monotonic(a in 0i64..1_000_000_000_000, d in 0i64..1_000_000, bps in 0u32..=10_000) {
            let rate = Bps::new(bps).unwrap();
            prop_assert!(commission(Money(a), rate).unwrap() <= commission(Money(a + d), rate).unwrap());
        }

        #[test]
        fn checked_arithmetic_reports_overflow(a in any::<i64>(), b in any::<i64>()) {
            let sum = Money(a).checked_add(Money(b));
            prop_assert_eq!(sum.is_ok(), a.checked_add(b).is_some());
        }
    }
}
