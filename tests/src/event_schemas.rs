//! The lifecycle events' JSON Schemas (`docs/events/<routing key>.schema.json`), and the
//! checks every test that receives events applies: each event valid against its routing
//! key's schema, and each affiliate's sequence complete and in order.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use crate::amqp::Received;

/// The routing keys the market publishes, each with a schema file.
pub const ROUTING_KEYS: [&str; 6] = [
    "affiliate.reward.earned",
    "affiliate.reward.matured",
    "affiliate.reward.reversed",
    "affiliate.reward.approved",
    "affiliate.balance.adjusted",
    "affiliate.withdrawn",
];

fn validators() -> &'static HashMap<&'static str, jsonschema::Validator> {
    static V: OnceLock<HashMap<&'static str, jsonschema::Validator>> = OnceLock::new();
    V.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/events");
        ROUTING_KEYS
            .iter()
            .map(|key| {
                let path = dir.join(format!("{key}.schema.json"));
                let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let schema: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let validator = jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{}: not a schema: {e}", path.display()));
                (*key, validator)
            })
            .collect()
    })
}

/// Why an event does not match its routing key's schema (or its message id), if it does not.
pub fn violation(r: &Received) -> Option<String> {
    let Some(validator) = validators().get(r.routing_key.as_str()) else {
        return Some(format!("event on unknown routing key {}", r.routing_key));
    };
    let errors: Vec<String> = validator.iter_errors(&r.body).map(|e| format!("{} at {}", e, e.instance_path)).collect();
    if !errors.is_empty() {
        return Some(format!("{} {}: {}", r.routing_key, r.body, errors.join("; ")));
    }
    if r.message_id.as_deref() != r.body["event_id"].as_str() {
        return Some(format!("{}: message id {:?} is not the event id", r.routing_key, r.message_id));
    }
    None
}

/// Each affiliate's distinct events by sequence number (redeliveries of one event id count
/// once), and what is wrong with them: an invalid event, two events under one number, a
/// gap, an unsequenced event.
pub fn by_affiliate(received: &[Received]) -> (BTreeMap<String, BTreeMap<u64, Received>>, Vec<String>) {
    let mut v: Vec<String> = received.iter().filter_map(violation).collect();
    let mut out: BTreeMap<String, BTreeMap<u64, Received>> = BTreeMap::new();
    for r in received {
        let (Some(affiliate), Some(seq)) = (r.body["affiliate_id"].as_str(), r.body["sequence"].as_u64()) else {
            v.push(format!("unsequenced event {}", r.body));
            continue;
        };
        let mine = out.entry(affiliate.to_owned()).or_default();
        match mine.get(&seq) {
            Some(first) if first.body["event_id"] != r.body["event_id"] => {
                v.push(format!("{affiliate}: sequence {seq} is both {} and {}", first.body["event_id"], r.body["event_id"]))
            }
            Some(first) if first.body != r.body => v.push(format!("{affiliate}: event {} redelivered different", r.body["event_id"])),
            Some(_) => {}
            None => {
                mine.insert(seq, r.clone());
            }
        }
    }
    for (affiliate, events) in &out {
        let last = events.keys().next_back().copied().unwrap_or(0);
        if events.len() as u64 != last {
            let missing: Vec<u64> = (1..=last).filter(|n| !events.contains_key(n)).take(10).collect();
            v.push(format!("{affiliate}: sequence has gaps (up to {last}, missing {missing:?})"));
        }
    }
    (out, v)
}
