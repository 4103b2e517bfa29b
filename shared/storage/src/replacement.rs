//! Erasure (GDPR art. 17), the item level: how a stored item reads once a user's id is
//! replaced by their pseudonym. Pure; the erasure ([`crate::erasure`]) applies it to every
//! item that names the user.
//!
//! The id goes wherever it stands: a string attribute equal to it, a `#`-separated part of
//! one (`<user>#shard3`, `held_key`, `velocity#<user>#<hour>`), inside JSON text (an audit
//! record's `details`), in maps and lists. Free text that may hold personal data goes too:
//! every `note` (an admin's reversal or review note), and the `reason` of an adjustment
//! (its entry, its audit record); a refund's `reason` (`refund`, `chargeback`) and a
//! rejection's (`over_refund`, ...) are codes and stay. Amounts, order ids and times stay, so
//! every sum over the items is what it was.

use aws_sdk_dynamodb::types::AttributeValue;

use crate::expr::Item;
use crate::tables::attr;

/// What one erasure replaces: the user's id by their pseudonym.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Replacement<'a> {
    pub user: &'a str,
    pub pseudonym: &'a str,
}

/// Audit actions whose `reason` is an admin's free text.
const FREE_REASON_ACTIONS: [&str; 1] = ["balance_adjusted"];
/// Ledger entry kinds whose `reason` is an admin's free text.
const FREE_REASON_KINDS: [&str; 1] = ["adjustment"];

impl Replacement<'_> {
    /// The item with the user's id replaced and free text cleared.
    pub(crate) fn item(&self, item: &Item) -> Item {
        let kind = string(item, attr::KIND);
        let action = string(item, "action");
        let free_reason = kind.is_some_and(|k| FREE_REASON_KINDS.contains(&k)) || action.is_some_and(|a| FREE_REASON_ACTIONS.contains(&a));
        item.iter()
            // The fence goes with the move: the pseudonym's items are writable.
            .filter(|(name, _)| name.as_str() != attr::ERASING)
            .map(|(name, value)| {
                let value = match (name.as_str(), value) {
                    ("note", AttributeValue::S(_)) => AttributeValue::S(String::new()),
                    ("reason", AttributeValue::S(_)) if free_reason => AttributeValue::S(String::new()),
                    // An audit record's facts: JSON text, rewritten as JSON.
                    ("details", AttributeValue::S(text)) => AttributeValue::S(self.json_text(text, free_reason)),
                    _ => self.value(value),
                };
                (name.clone(), value)
            })
            .collect()
    }

    fn value(&self, value: &AttributeValue) -> AttributeValue {
        match value {
            AttributeValue::S(s) => AttributeValue::S(self.text(s)),
            AttributeValue::M(m) => AttributeValue::M(self.item(m)),
            AttributeValue::L(l) => AttributeValue::L(l.iter().map(|v| self.value(v)).collect()),
            AttributeValue::Ss(ss) => AttributeValue::Ss(ss.iter().map(|s| self.text(s)).collect()),
            other => other.clone(),
        }
    }

    /// A string: the id itself, or one of its parts separated by `#` (keys) or `:` (an
    /// actor, `user:<id>`).
    pub(crate) fn text(&self, s: &str) -> String {
        if s == self.user {
            return self.pseudonym.to_owned();
        }
        let mut out = String::with_capacity(s.len());
        let mut part_start = 0;
        for (i, c) in s.char_indices().chain(std::iter::once((s.len(), '#'))) {
            if c == '#' || c == ':' {
                let part = &s[part_start..i];
                out.push_str(if part == self.user { self.pseudonym } else { part });
                if i < s.len() {
                    out.push(c);
                }
                part_start = i + c.len_utf8();
            }
        }
        out
    }

    fn json_text(&self, text: &str, free_reason: bool) -> String {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(mut v) => {
                self.json(&mut v, free_reason);
                v.to_string()
            }
            Err(_) => self.text(text),
        }
    }

    fn json(&self, v: &mut serde_json::Value, free_reason: bool) {
        use serde_json::Value;
        match v {
            Value::String(s) => *s = self.text(s),
            Value::Array(a) => a.iter_mut().for_each(|v| self.json(v, free_reason)),
            Value::Object(o) => {
                for (k, v) in o.iter_mut() {
                    match (k.as_str(), &v) {
                        ("note", Value::String(_)) => *v = Value::String(String::new()),
                        ("reason", Value::String(_)) if free_reason => *v = Value::String(String::new()),
                        _ => self.json(v, free_reason),
                    }
                }
            }
            _ => {}
        }
    }
}

pub(crate) fn string<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{n, s};

    const R: Replacement = Replacement { user: "alice", pseudonym: "erased-0a1b" };

    fn contains(item: &Item, needle: &str) -> bool {
        format!("{item:?}").contains(needle)
    }

    #[test]
    fn the_id_goes_wherever_it_stands_and_the_figures_stay() {
        let item = Item::from([
            ("user_id".to_owned(), s("alice")),
            ("entry_key".to_owned(), s("commission#order-1")),
            ("held_key".to_owned(), s("0000001700000#alice#order-1")),
            ("buyer".to_owned(), s("bob")),
            ("amount".to_owned(), n(1234)),
            ("earned".to_owned(), AttributeValue::M(Item::from([("level_earners".to_owned(), AttributeValue::L(vec![s("carol"), s("alice")]))]))),
            ("order_id".to_owned(), s("alice-order")),
        ]);
        let out = R.item(&item);
        assert_eq!(out["user_id"], s("erased-0a1b"));
        assert_eq!(out["held_key"], s("0000001700000#erased-0a1b#order-1"));
        assert_eq!(out["earned"], AttributeValue::M(Item::from([("level_earners".to_owned(), AttributeValue::L(vec![s("carol"), s("erased-0a1b")]))])));
        assert_eq!((&out["buyer"], &out["amount"], &out["entry_key"]), (&s("bob"), &n(1234), &s("commission#order-1")));
        assert_eq!(out["order_id"], s("alice-order"), "a different id that starts like the user's stays");
        assert!(!contains(&out, "\"alice\""));
    }

    #[test]
    fn free_text_is_cleared_and_codes_stay() {
        let adjustment = Item::from([("kind".to_owned(), s("adjustment")), ("reason".to_owned(), s("called Alice at +49 ...")), ("user_id".to_owned(), s("alice"))]);
        assert_eq!(R.item(&adjustment)["reason"], s(""));
        let reversal = Item::from([("kind".to_owned(), s("reversal")), ("note".to_owned(), s("fraud by Alice")), ("cause".to_owned(), s("admin_void"))]);
        let out = R.item(&reversal);
        assert_eq!((&out["note"], &out["cause"]), (&s(""), &s("admin_void")));
        let audit = Item::from([
            ("subject".to_owned(), s("bob")),
            ("action".to_owned(), s("refund_rejected")),
            ("details".to_owned(), s(r#"{"reason":"over_refund","user":"alice","note":"x"}"#)),
        ]);
        let details: serde_json::Value = serde_json::from_str(R.item(&audit)["details"].as_s().unwrap()).unwrap();
        assert_eq!(details, serde_json::json!({"reason": "over_refund", "user": "erased-0a1b", "note": ""}));
        let adjusted = Item::from([("action".to_owned(), s("balance_adjusted")), ("details".to_owned(), s(r#"{"reason":"goodwill for Alice","amount":5}"#))]);
        let details: serde_json::Value = serde_json::from_str(R.item(&adjusted)["details"].as_s().unwrap()).unwrap();
        assert_eq!(details, serde_json::json!({"reason": "", "amount": 5}));
    }

    #[test]
    fn keys_with_the_id_as_a_part_are_rewritten() {
        assert_eq!(R.text("alice#shard3"), "erased-0a1b#shard3");
        assert_eq!(R.text("velocity#alice#2026-12-07T10"), "velocity#erased-0a1b#2026-12-07T10");
        assert_eq!(R.text("velocity#malice#2026"), "velocity#malice#2026");
        assert_eq!(R.text("user:alice"), "user:erased-0a1b", "an actor");
        assert_eq!(R.text("admin:bob"), "admin:bob");
        assert_eq!(R.text("a:b#alice"), "a:b#erased-0a1b");
        assert_eq!(R.text("plain"), "plain");
    }
}
