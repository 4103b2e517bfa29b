//! Where the stack's endpoints come from: the local stack's env file, or a deployed stack's
//! outputs (the API's URL, the queue URLs).

use std::collections::BTreeMap;

use crate::dlq;
use crate::failure::Failure;

/// `KEY=VALUE` lines of an env file into the environment, unless already set.
pub fn load_env(path: Option<&str>) {
    let explicit = path.is_some() || std::env::var_os("MARKET_STACK_ENV").is_some();
    if !explicit && std::env::var_os("MARKET_RPC_URL").is_some() {
        return;
    }
    let path = path.map(str::to_owned).or_else(|| std::env::var("MARKET_STACK_ENV").ok()).unwrap_or_else(|| ".local/stacks/dev/env".into());
    let Ok(text) = std::fs::read_to_string(&path) else {
        if explicit {
            eprintln!("no env file at {path}");
        }
        return;
    };
    for (k, v) in text.lines().filter_map(|l| l.split_once('=')) {
        if std::env::var_os(k).is_none() {
            // Single-threaded start-up, before the runtime starts.
            unsafe { std::env::set_var(k, v) };
        }
    }
}

/// The deployed API's URL (`ApiUrl`) from a stack's outputs file.
pub fn api_url(path: &str) -> Option<String> {
    let list: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    list.iter().find(|o| o["OutputKey"] == "ApiUrl").and_then(|o| o["OutputValue"].as_str()).map(str::to_owned)
}

/// Queue URLs: `QUEUE_URL_<id>` from the env, then a deployed stack's `<id>Url` outputs.
pub fn queue_urls(outputs: Option<&str>) -> Result<dlq::QueueUrls, Failure> {
    let mut urls: BTreeMap<String, String> = std::env::vars().filter_map(|(k, v)| Some((k.strip_prefix("QUEUE_URL_")?.to_owned(), v))).collect();
    if let Some(path) = outputs {
        let text = std::fs::read_to_string(path).map_err(|e| Failure::Usage(format!("{path}: {e}")))?;
        let list: Vec<serde_json::Value> = serde_json::from_str(&text).map_err(|e| Failure::Usage(format!("{path}: not a JSON list of outputs: {e}")))?;
        for o in list {
            if let (Some(k), Some(v)) = (o["OutputKey"].as_str(), o["OutputValue"].as_str()) {
                if let Some(id) = k.strip_suffix("Url") {
                    urls.insert(id.to_owned(), v.to_owned());
                }
            }
        }
    }
    Ok(dlq::QueueUrls(urls))
}
