//! Time as Unix epoch milliseconds, behind a clock the processors are given (tests control it).

use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const MS_PER_DAY: i64 = 86_400_000;

    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }
    pub const fn millis(self) -> i64 {
        self.0
    }
    pub const fn epoch_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }
    /// `self + days` (saturating: a far-future date is as good as never).
    pub fn plus_days(self, days: u32) -> Timestamp {
        Timestamp(self.0.saturating_add(i64::from(days).saturating_mul(Self::MS_PER_DAY)))
    }
}

impl Timestamp {
    /// The UTC calendar day, `YYYY-MM-DD` (the maturity index's partition).
    /// The start of the next UTC day.
    pub fn next_utc_day(self) -> Timestamp {
        Timestamp((self.0.div_euclid(Self::MS_PER_DAY) + 1).saturating_mul(Self::MS_PER_DAY))
    }

    pub fn utc_day(self) -> String {
        // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
        let z = self.0.div_euclid(Self::MS_PER_DAY) + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        format!("{year:04}-{month:02}-{day:02}")
    }

    /// ISO 8601 in UTC with milliseconds, `YYYY-MM-DDThh:mm:ss.mmmZ` (what tools print).
    /// The UTC days from `days` before this one up to this one, oldest first (what a
    /// scheduled catch-up reads of an index by day).
    pub fn utc_days_back(self, days: u32) -> Vec<String> {
        (0..=i64::from(days)).rev().map(|back| Timestamp(self.0.saturating_sub(back.saturating_mul(Self::MS_PER_DAY))).utc_day()).collect()
    }

    /// The UTC hour as `yyyy-mm-ddThh`.
    pub fn utc_hour(self) -> String {
        format!("{}T{:02}", self.utc_day(), self.0.rem_euclid(Self::MS_PER_DAY) / 3_600_000)
    }

    pub fn iso8601(self) -> String {
        let ms = self.0.rem_euclid(Self::MS_PER_DAY);
        let (h, m, s, milli) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
        format!("{}T{h:02}:{m:02}:{s:02}.{milli:03}Z", self.utc_day())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_days() {
        assert_eq!(Timestamp::from_millis(0).utc_day(), "1970-01-01");
        assert_eq!(Timestamp::from_millis(1_795_514_400_000).utc_day(), "2026-11-24");
        assert_eq!(Timestamp::from_millis(951_782_400_000).utc_day(), "2000-02-29");
        assert_eq!(Timestamp::from_millis(-1).utc_day(), "1969-12-31");
        assert_eq!(Timestamp::from_millis(1_795_514_400_123).iso8601(), "2026-11-24T10:00:00.123Z");
        assert_eq!(Timestamp::from_millis(-1).iso8601(), "1969-12-31T23:59:59.999Z");
        assert_eq!(Timestamp::from_millis(1_795_514_400_123).utc_hour(), "2026-11-24T10");
        assert_eq!(Timestamp::from_millis(1_795_514_400_123).utc_days_back(2), ["2026-11-22", "2026-11-23", "2026-11-24"]);
    }
}

pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        Timestamp(i64::try_from(ms).unwrap_or(i64::MAX))
    }
}
