//! A function's own environment variables. In AWS each function has its own; the local stack
//! runs every function with one shared environment, so a variable the template sets on one
//! function only (e.g. UpdateMarketConfig's `REDIS_SECRET_ARN`, the read-write user's) is
//! written by scripts/local_resources.py to `LOCAL_FUNCTION_ENV` (a JSON file: binary name ->
//! variables) and read from there first — only when the function runs locally as itself
//! (`MARKET_LOCAL_IDENTITY=function`, never set in AWS).

use std::collections::HashMap;
use std::sync::OnceLock;

fn own() -> &'static HashMap<String, String> {
    static OWN: OnceLock<HashMap<String, String>> = OnceLock::new();
    OWN.get_or_init(|| {
        let local = std::env::var("MARKET_LOCAL_IDENTITY").is_ok_and(|v| v == "function");
        let (Some(path), Ok(me)) = (std::env::var_os("LOCAL_FUNCTION_ENV").filter(|_| local), std::env::var("AWS_LAMBDA_FUNCTION_NAME")) else {
            return HashMap::new();
        };
        let all: HashMap<String, HashMap<String, String>> =
            std::fs::read_to_string(path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
        all.get(&me).cloned().unwrap_or_default()
    })
}

/// `name` as this function sees it (its own value first, locally), non-empty.
pub fn var(name: &str) -> Option<String> {
    own().get(name).cloned().or_else(|| std::env::var(name).ok()).filter(|v| !v.trim().is_empty())
}
