//! Small builders for transaction items. Attribute-name placeholders (`#name`) are derived
//! from the expressions themselves, so a name map can never drift from its expression.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use market_domain::MarketError;

use crate::error::build_error;

pub type Item = HashMap<String, AttributeValue>;
pub type Values = Vec<(&'static str, AttributeValue)>;

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
pub fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
pub fn b(v: bool) -> AttributeValue {
    AttributeValue::Bool(v)
}

pub fn key(name: &str, value: impl Into<String>) -> Item {
    HashMap::from([(name.to_owned(), s(value))])
}

pub fn key2(hash: (&str, &str), range: (&str, &str)) -> Item {
    HashMap::from([(hash.0.to_owned(), s(hash.1)), (range.0.to_owned(), s(range.1))])
}

/// A key of a string hash and a number range.
pub fn key2_n(hash: (&str, &str), range: (&str, i64)) -> Item {
    HashMap::from([(hash.0.to_owned(), s(hash.1)), (range.0.to_owned(), n(range.1))])
}

/// `#attr` placeholders used in the expressions, mapped to their attribute names.
pub fn names_in(exprs: &[&str]) -> Option<HashMap<String, String>> {
    let mut names = HashMap::new();
    for expr in exprs {
        let mut rest = *expr;
        while let Some(pos) = rest.find('#') {
            let tail = &rest[pos + 1..];
            let len = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
            names.insert(format!("#{}", &tail[..len]), tail[..len].to_owned());
            rest = &tail[len..];
        }
    }
    (!names.is_empty()).then_some(names)
}

fn values(values: Values) -> Option<HashMap<String, AttributeValue>> {
    (!values.is_empty()).then(|| values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

const ALL_OLD: ReturnValuesOnConditionCheckFailure = ReturnValuesOnConditionCheckFailure::AllOld;

/// An empty `cond` puts unconditionally.
pub fn put(table: &str, item: Item, cond: &str, vals: Values) -> Result<TransactWriteItem, MarketError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .set_condition_expression((!cond.is_empty()).then(|| cond.to_owned()))
        .set_expression_attribute_names(names_in(&[cond]))
        .set_expression_attribute_values(values(vals))
        .return_values_on_condition_check_failure(ALL_OLD)
        .build()
        .map_err(build_error)?;
    Ok(TransactWriteItem::builder().put(put).build())
}

pub fn update(
    table: &str,
    key: Item,
    expr: &str,
    cond: Option<&str>,
    vals: Values,
) -> Result<TransactWriteItem, MarketError> {
    let exprs: Vec<&str> = std::iter::once(expr).chain(cond).collect();
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(key))
        .update_expression(expr)
        .set_condition_expression(cond.map(str::to_owned))
        .set_expression_attribute_names(names_in(&exprs))
        .set_expression_attribute_values(values(vals))
        .return_values_on_condition_check_failure(ALL_OLD)
        .build()
        .map_err(build_error)?;
    Ok(TransactWriteItem::builder().update(update).build())
}

pub fn delete(table: &str, key: Item, cond: &str, vals: Values) -> Result<TransactWriteItem, MarketError> {
    let delete = Delete::builder()
        .table_name(table)
        .set_key(Some(key))
        .set_condition_expression((!cond.is_empty()).then(|| cond.to_owned()))
        .set_expression_attribute_names(names_in(&[cond]))
        .set_expression_attribute_values(values(vals))
        .build()
        .map_err(build_error)?;
    Ok(TransactWriteItem::builder().delete(delete).build())
}

pub fn check(table: &str, key: Item, cond: &str, vals: Values) -> Result<TransactWriteItem, MarketError> {
    let check = ConditionCheck::builder()
        .table_name(table)
        .set_key(Some(key))
        .condition_expression(cond)
        .set_expression_attribute_names(names_in(&[cond]))
        .set_expression_attribute_values(values(vals))
        .return_values_on_condition_check_failure(ALL_OLD)
        .build()
        .map_err(build_error)?;
    Ok(TransactWriteItem::builder().condition_check(check).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_collected() {
        let names = names_in(&["SET #a = :x, #b_c = #a + :y", "attribute_not_exists(#d)"]).unwrap();
        assert_eq!(names.len(), 3);
        assert_eq!(names["#b_c"], "b_c");
        assert!(names_in(&["SET x = :y"]).is_none());
    }
}
