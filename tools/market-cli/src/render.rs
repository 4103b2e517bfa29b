//! What the CLI prints: money in the deployment's currency, times in ISO 8601, lists as
//! tables for people, and one JSON document per command for scripts (`--json`).

use market_domain::time::Timestamp;
use serde_json::Value;

/// Minor-unit digits of an ISO 4217 currency (2 unless listed).
fn exponent(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// `1234` USD -> `12.34 USD`; `-5` -> `-0.05 USD`; JPY has no minor digits.
pub fn money(minor: i64, currency: &str) -> String {
    let digits = exponent(currency);
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    if digits == 0 {
        return format!("{sign}{abs} {currency}");
    }
    let unit = 10u64.pow(digits);
    format!("{sign}{}.{:0width$} {currency}", abs / unit, abs % unit, width = digits as usize)
}

pub fn iso8601_ms(ms: i64) -> String {
    Timestamp::from_millis(ms).iso8601()
}

pub fn time(t: Option<&prost_types::Timestamp>) -> String {
    t.map(|t| iso8601_ms(t.seconds.saturating_mul(1000).saturating_add(i64::from(t.nanos / 1_000_000)))).unwrap_or_else(|| "-".into())
}

pub fn bps(bps: u32) -> String {
    format!("{}.{:02} %", bps / 100, bps % 100)
}

/// A table with a header row, columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0))).collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = vec![line(header.to_vec())];
    out.extend(rows.iter().map(|r| line(r.iter().map(String::as_str).collect())));
    if rows.is_empty() {
        out.push("(none)".into());
    }
    out.join("\n")
}

/// `key: value` lines, keys aligned.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs.iter().map(|(k, v)| format!("{k:<width$}  {v}")).collect::<Vec<_>>().join("\n")
}

pub fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_in_minor_units_of_its_currency() {
        assert_eq!(money(1234, "USD"), "12.34 USD");
        assert_eq!(money(-5, "EUR"), "-0.05 EUR");
        assert_eq!(money(1234, "JPY"), "1234 JPY");
        assert_eq!(money(1234, "KWD"), "1.234 KWD");
        assert_eq!(money(i64::MIN, "USD"), "-92233720368547758.08 USD");
    }

    #[test]
    fn tables_pad_columns() {
        let t = table(&["a", "bb"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "a    bb\nxxx  y");
    }
}
