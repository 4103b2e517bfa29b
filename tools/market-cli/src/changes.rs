//! Admin changes given as `KEY=VALUE` pairs: a policy's overrides and the market
//! configuration, with the field mask the API takes.

use market_proto::v1::{MarketConfig, PolicyOverrides, TriggerLimit};

use crate::failure::Failure;

fn split_pair(pair: &str) -> Result<(&str, &str), Failure> {
    pair.split_once('=').ok_or_else(|| Failure::Usage(format!("expected KEY=VALUE, got {pair:?}")))
}

fn parse_limit(v: &str) -> Option<TriggerLimit> {
    use market_proto::v1::trigger_limit::Limit;
    let limit = match v {
        "unlimited" => Limit::Unlimited(true),
        n => Limit::Count(n.parse().ok()?),
    };
    Some(TriggerLimit { limit: Some(limit) })
}

pub fn policy_update(pairs: &[String]) -> Result<(PolicyOverrides, Vec<String>), Failure> {
    let mut overrides = PolicyOverrides::default();
    let mut update = Vec::new();
    for pair in pairs {
        let (k, v) = split_pair(pair)?;
        let clear = v == "default";
        let bad = || Failure::Usage(format!("bad value in {pair}"));
        let field = match k {
            "rate" | "commission_bps" => {
                overrides.commission_bps = if clear { None } else { Some(v.parse().map_err(|_| bad())?) };
                "commission_bps"
            }
            "limit" | "trigger_limit" => {
                overrides.trigger_limit = if clear { None } else { Some(parse_limit(v).ok_or_else(bad)?) };
                "trigger_limit"
            }
            "max-codes" | "max_active_codes" => {
                overrides.max_active_codes = if clear { None } else { Some(v.parse().map_err(|_| bad())?) };
                "max_active_codes"
            }
            "enabled" | "affiliate_enabled" => {
                overrides.affiliate_enabled = if clear { None } else { Some(v.parse().map_err(|_| bad())?) };
                "affiliate_enabled"
            }
            "group" => {
                overrides.group = if clear { None } else { Some(v.to_owned()) };
                "group"
            }
            other => return Err(Failure::Usage(format!("unknown policy key {other:?}: rate, limit, max-codes, enabled, group"))),
        };
        update.push(field.to_owned());
    }
    Ok((overrides, update))
}

pub fn config_update(pairs: &[String]) -> Result<(MarketConfig, Vec<String>), Failure> {
    let mut config = MarketConfig::default();
    let mut update = Vec::new();
    for pair in pairs {
        let (k, v) = split_pair(pair)?;
        let ok = match k {
            "enabled" => v.parse().map(|b| config.enabled = b).is_ok(),
            "default_commission_bps" => v.parse().map(|n| config.default_commission_bps = n).is_ok(),
            "default_trigger_limit" => parse_limit(v).map(|l| config.default_trigger_limit = Some(l)).is_some(),
            "max_active_codes" => v.parse().map(|n| config.max_active_codes = n).is_ok(),
            "min_withdraw_amount" => v.parse().map(|n| config.min_withdraw_amount = n).is_ok(),
            "currency" => {
                config.currency = v.to_owned();
                true
            }
            "code_expiry_days" => v.parse().map(|n| config.code_expiry_days = n).is_ok(),
            "code_retention_days" => v.parse().map(|n| config.code_retention_days = n).is_ok(),
            "holding_period_days" => v.parse().map(|n| config.holding_period_days = n).is_ok(),
            // Comma-separated rates of levels 2 and 3; empty = single level.
            "level_bps" => v
                .split(',')
                .filter(|r| !r.trim().is_empty())
                .map(|r| r.trim().parse::<u32>())
                .collect::<Result<Vec<_>, _>>()
                .map(|rates| config.level_bps = rates)
                .is_ok(),
            "resolve_per_hour" => v.parse().map(|n| config.resolve_per_hour = n).is_ok(),
            "codes_created_per_day" => v.parse().map(|n| config.codes_created_per_day = n).is_ok(),
            "review_referrals_per_hour" => v.parse().map(|n| config.review_referrals_per_hour = n).is_ok(),
            "review_min_seconds" => v.parse().map(|n| config.review_min_seconds = n).is_ok(),
            "registration_wait_days" => v.parse().map(|n| config.registration_wait_days = n).is_ok(),
            "lifecycle_events" => v.parse().map(|b| config.lifecycle_events = b).is_ok(),
            _ => false,
        };
        if !ok {
            return Err(Failure::Usage(format!("bad config pair {pair}")));
        }
        update.push(k.to_owned());
    }
    Ok((config, update))
}
