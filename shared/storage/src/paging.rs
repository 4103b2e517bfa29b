//! Paged listings: one `Query` per page, newest first, with opaque page tokens bound to
//! the listed subject (a token from another user's listing is rejected, never followed).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use base64::Engine;
use market_domain::ports::Result;
use market_domain::MarketError;
use serde::{Deserialize, Serialize};

use crate::error::sdk_error;
use crate::expr::Item;
use crate::DynamoStore;

#[derive(Serialize, Deserialize)]
struct Token {
    /// Whose listing the token continues.
    s: String,
    /// LastEvaluatedKey: its string attributes,
    k: HashMap<String, String>,
    /// and its number attributes (an index's numeric sort key).
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    n: HashMap<String, String>,
}

fn invalid_token() -> MarketError {
    MarketError::InvalidArgument("invalid page token".into())
}

/// Opaque to clients (base64url of the position), bound to the listed subject: a token
/// from another user's listing is rejected, never followed.
pub(crate) fn encode_token(subject: &str, key: Option<HashMap<String, AttributeValue>>) -> Option<String> {
    let key = key?;
    let mut k = HashMap::new();
    let mut n = HashMap::new();
    for (name, v) in key {
        match v {
            AttributeValue::S(s) => k.insert(name, s),
            AttributeValue::N(num) => n.insert(name, num),
            _ => None,
        };
    }
    let json = serde_json::to_vec(&Token { s: subject.to_owned(), k, n }).ok()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
}

pub(crate) fn decode_token(subject: &str, token: Option<&str>) -> Result<Option<HashMap<String, AttributeValue>>> {
    let Some(token) = token.filter(|t| !t.is_empty()) else { return Ok(None) };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid_token())?;
    let t: Token = serde_json::from_slice(&bytes).map_err(|_| invalid_token())?;
    if t.s != subject || t.k.is_empty() {
        return Err(invalid_token());
    }
    if t.n.values().any(|v| v.parse::<f64>().is_err()) {
        return Err(invalid_token());
    }
    let strings = t.k.into_iter().map(|(n, v)| (n, AttributeValue::S(v)));
    Ok(Some(strings.chain(t.n.into_iter().map(|(n, v)| (n, AttributeValue::N(v)))).collect()))
}

/// The order of a listing: newest first, strongly consistent (the table or an LSI), or
/// oldest first from a GSI (which only reads eventually consistent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listing {
    NewestFirst,
    GsiOldestFirst,
}

impl DynamoStore {
    pub(crate) async fn query_page(
        &self,
        table: &str,
        (index, listing): (Option<&str>, Listing),
        hash: (&str, &str),
        page_token: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<Item>, Option<String>)> {
        let start = decode_token(hash.1, page_token)?;
        let out = self
            .client()
            .query()
            .table_name(table)
            .set_index_name(index.map(str::to_owned))
            .key_condition_expression("#h = :h")
            .expression_attribute_names("#h", hash.0)
            .expression_attribute_values(":h", AttributeValue::S(hash.1.to_owned()))
            .scan_index_forward(listing == Listing::GsiOldestFirst)
            .consistent_read(listing == Listing::NewestFirst)
            .limit(i32::try_from(limit).unwrap_or(100))
            .set_exclusive_start_key(start)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            // A token that decodes but does not fit the index (tampered) is the client's fault.
            Err(e) if e.as_service_error().is_some_and(|s| s.meta().code() == Some("ValidationException")) && page_token.is_some() => {
                return Err(invalid_token())
            }
            Err(e) => return Err(sdk_error(e)),
        };
        self.usage().record(out.consumed_capacity());
        let next = encode_token(hash.1, out.last_evaluated_key);
        Ok((out.items.unwrap_or_default(), next))
    }

}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_their_subject() {
        let key = HashMap::from([("user_id".to_owned(), AttributeValue::S("a".into())), ("at_key".to_owned(), AttributeValue::S("1#x".into()))]);
        let token = encode_token("a", Some(key.clone())).unwrap();
        assert_eq!(decode_token("a", Some(&token)).unwrap(), Some(key));
        // An index's numeric sort key survives the round trip.
        let numeric = HashMap::from([("code".to_owned(), AttributeValue::S("X".into())), ("created_at".to_owned(), AttributeValue::N("17".into()))]);
        assert_eq!(decode_token("a", encode_token("a", Some(numeric.clone())).as_deref()).unwrap(), Some(numeric));
        assert!(decode_token("b", Some(&token)).is_err(), "another user's token");
        assert!(decode_token("a", Some("not a token")).is_err());
        assert_eq!(decode_token("a", Some("")).unwrap(), None);
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(ProptestConfig::default().cases.max(2000)))]
        /// Page tokens come back from clients: any text, base64 of any JSON, or another
        /// subject's token -> the position, or a typed InvalidArgument; never followed for
        /// another subject.
        #[test]
        fn fuzz_page_tokens(raw in ".{0,120}", json in ".{0,120}", subject in "[a-z]{1,8}", other in "[a-z]{1,8}", k in "[a-z#0-9]{0,20}") {
            use base64::Engine;
            let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
            let structured = serde_json::json!({"s": other, "k": {"user_id": other, "at_key": k}}).to_string();
            for token in [raw, b64(&json), b64(&structured)] {
                match decode_token(&subject, Some(&token)) {
                    Ok(None) => prop_assert!(token.is_empty()),
                    Ok(Some(_)) => prop_assert_eq!(&subject, &other),
                    Err(e) => prop_assert!(matches!(e, MarketError::InvalidArgument(_))),
                }
            }
        }
    }
}

