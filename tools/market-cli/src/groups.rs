//! Reward groups from the CLI: the listing (a table, or the rules as JSON in the shape
//! `set-group` reads), and a group's next version from a JSON file of its rules.

use market_domain::group::{Payout, RewardGroup, RewardRules};
use market_proto::v1 as pb;
use serde_json::json;

use crate::failure::Failure;
use crate::render::table;
use crate::views::View;

/// A group as the API sent it, in the domain's shape (what `set-group` reads back).
fn domain(g: &pb::RewardGroup) -> Result<RewardRules, Failure> {
    market_proto::rules::rules_from_proto(g.rules.as_ref()).map_err(|e| Failure::Call(format!("a group the API sent is not valid: {e}")))
}

fn payout(p: &Payout) -> String {
    p.describe()
}

pub fn listing(groups: &[pb::RewardGroup]) -> Result<View, Failure> {
    let mut rows = Vec::new();
    let mut list = Vec::new();
    for g in groups {
        let rules = domain(g)?;
        let modifiers: Vec<String> = rules.modifiers.iter().map(|m| format!("{}: {}", m.name, payout(&m.payout))).collect();
        rows.push(vec![
            g.name.clone(),
            g.version.to_string(),
            payout(&rules.payout),
            rules.duration_months.map_or("-".into(), |m| format!("{m} months")),
            rules.cap.map_or("-".into(), |c| format!("{} per {:?}", c.amount.minor(), c.interval).to_lowercase()),
            if modifiers.is_empty() { "-".into() } else { modifiers.join("; ") },
            rules.bounty.map_or("-".into(), |b| b.amount.minor().to_string()),
        ]);
        list.push(json!({"name": g.name, "version": g.version, "description": g.description, "updated_by": g.updated_by, "rules": rules}));
    }
    Ok(View { json: serde_json::Value::Array(list), text: table(&["GROUP", "VERSION", "PAYOUT", "DURATION", "CAP", "MODIFIERS", "BOUNTY"], &rows) })
}

/// The request writing `name`'s next version with the rules in `file` (the domain's
/// `RewardRules` as JSON), over the version `current` lists.
pub fn put_request(name: &str, file: &str, description: Option<String>, current: &[pb::RewardGroup]) -> Result<pb::PutRewardGroupRequest, Failure> {
    let text = std::fs::read_to_string(file).map_err(|e| Failure::Usage(format!("cannot read {file}: {e}")))?;
    let rules: RewardRules = serde_json::from_str(&text).map_err(|e| Failure::Usage(format!("{file} is not a group's rules: {e}")))?;
    let existing = current.iter().find(|g| g.name == name);
    let group = RewardGroup {
        name: market_domain::group::GroupName::parse(name).map_err(|e| Failure::Usage(e.to_string()))?,
        version: 0,
        rules,
        description: description.or_else(|| existing.map(|g| g.description.clone())).unwrap_or_default(),
        updated_at: None,
        updated_by: None,
    };
    // The default group never defined is listed at version 0: defining it expects 0 too.
    let expected_version = existing.map_or(0, |g| g.version);
    Ok(pb::PutRewardGroupRequest { group: Some(market_proto::rules::group_to_proto(&group)), expected_version })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's example `rules.json` is what `set-group` reads: valid rules, and the
    /// request carries them unchanged.
    #[test]
    fn the_readmes_example_is_a_valid_group() {
        let readme = include_str!("../../../README.md");
        let start = readme.find("`rules.json` is the group's rules as JSON").expect("the example's introduction");
        let block = &readme[start..];
        let json = &block[block.find("```json").expect("a json block") + 7..];
        let json = &json[..json.find("```").expect("its end")];
        let rules: RewardRules = serde_json::from_str(json).expect("the example parses");
        rules.validate(2).expect("the example is valid");
        assert_eq!(rules.modifiers.len(), 3);
        let file = std::env::temp_dir().join(format!("rules-{}.json", std::process::id()));
        std::fs::write(&file, json).unwrap();
        let request = put_request("vip", file.to_str().unwrap(), None, &[]).unwrap_or_else(|_| panic!("a request"));
        assert_eq!(request.expected_version, 0);
        assert_eq!(market_proto::rules::rules_from_proto(request.group.as_ref().unwrap().rules.as_ref()).unwrap(), rules);
        let _ = std::fs::remove_file(file);
    }
}
