//! The identities and their statements (written by `scripts/local_iam.py` from the template,
//! as the SAM transform expands it) and IAM's decision for one call: an explicit `Deny` wins,
//! then any `Allow` whose action and resource patterns match (`*` and `?`, actions without
//! regard to case); otherwise the implicit deny.

use std::collections::HashMap;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Statement {
    pub effect: String,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Identity {
    /// The template's logical id of the function.
    pub function: String,
    pub statements: Vec<Statement>,
    /// The role's permissions boundary: a call must be allowed by it as well.
    #[serde(default)]
    pub boundary: Option<Vec<Statement>>,
}

/// IAM's decision of one policy: an explicit deny wins, then an allow; else the implicit deny.
fn allows(statements: &[Statement], call: &Call) -> bool {
    let denied = statements.iter().any(|s| s.effect.eq_ignore_ascii_case("Deny") && s.covers(call));
    let allowed = statements.iter().any(|s| s.effect.eq_ignore_ascii_case("Allow") && s.covers(call));
    allowed && !denied
}

#[derive(Debug, Clone, Deserialize)]
pub struct Policies {
    /// Access keys with full access: the developer's and the tests' tooling.
    pub operators: Vec<String>,
    /// By access key (the function's binary name).
    pub identities: HashMap<String, Identity>,
    /// SQS names a queue by URL, IAM by ARN.
    pub queue_arns: HashMap<String, String>,
    /// `arn:aws:dynamodb:<region>:<account>:table/` of the local tables.
    pub table_arn_prefix: String,
}

/// One call as IAM sees it: an action on a resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Call {
    pub action: String,
    pub resource: String,
}

impl Call {
    pub fn new(action: impl Into<String>, resource: impl Into<String>) -> Self {
        Call { action: action.into(), resource: resource.into() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// The first call no statement allows (or one explicitly denies).
    Denied(Call),
}

/// IAM's wildcard match: `*` any run of characters, `?` one character.
pub fn matches(pattern: &str, value: &str) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    let (mut pi, mut vi, mut star, mut mark) = (0, 0, None, 0);
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

impl Statement {
    fn covers(&self, call: &Call) -> bool {
        let action = call.action.to_ascii_lowercase();
        self.actions.iter().any(|a| matches(&a.to_ascii_lowercase(), &action)) && self.resources.iter().any(|r| matches(r, &call.resource))
    }
}

impl Identity {
    pub fn decide(&self, calls: &[Call]) -> Decision {
        for call in calls {
            let within_boundary = self.boundary.as_deref().map_or(true, |b| allows(b, call));
            if !allows(&self.statements, call) || !within_boundary {
                return Decision::Denied(call.clone());
            }
        }
        Decision::Allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(statements: &[(&str, &[&str], &[&str])]) -> Identity {
        Identity {
            function: "F".into(),
            statements: statements
                .iter()
                .map(|(e, a, r)| Statement { effect: (*e).into(), actions: a.iter().map(|s| s.to_string()).collect(), resources: r.iter().map(|s| s.to_string()).collect() })
                .collect(),
            boundary: None,
        }
    }

    const T: &str = "arn:aws:dynamodb:ddblocal:000000000000:table/T";

    #[test]
    fn wildcards_as_iam_reads_them() {
        assert!(matches("*", "anything"));
        assert!(matches("dynamodb:*", "dynamodb:GetItem"));
        assert!(matches("arn:*:table/T", T));
        assert!(matches("dynamodb:Get?tem", "dynamodb:GetItem"));
        assert!(!matches("arn:*:table/T", &format!("{T}/index/i")), "a table's ARN does not cover its indexes");
        assert!(matches("arn:*:table/T/index/*", &format!("{T}/index/i")));
        assert!(!matches("dynamodb:Get", "dynamodb:GetItem"));
    }

    #[test]
    fn allowed_only_when_every_call_is() {
        let id = identity(&[("Allow", &["dynamodb:GetItem", "dynamodb:PutItem"], &[T])]);
        assert_eq!(id.decide(&[Call::new("dynamodb:GetItem", T)]), Decision::Allowed);
        assert_eq!(id.decide(&[Call::new("DynamoDB:getitem", T)]), Decision::Allowed, "actions ignore case");
        let batch = Call::new("dynamodb:BatchGetItem", T);
        assert_eq!(id.decide(&[Call::new("dynamodb:PutItem", T), batch.clone()]), Decision::Denied(batch));
        let other = Call::new("dynamodb:GetItem", "arn:aws:dynamodb:ddblocal:000000000000:table/U");
        assert_eq!(id.decide(std::slice::from_ref(&other)), Decision::Denied(other));
    }

    #[test]
    fn a_permissions_boundary_caps_what_the_policy_allows() {
        let mut id = identity(&[("Allow", &["sqs:ReceiveMessage"], &["*"])]);
        id.boundary = Some(identity(&[("Allow", &["sqs:*"], &["arn:aws:sqs:local:0:stack-*"])]).statements);
        assert_eq!(id.decide(&[Call::new("sqs:ReceiveMessage", "arn:aws:sqs:local:0:stack-q")]), Decision::Allowed);
        let other = Call::new("sqs:ReceiveMessage", "arn:aws:sqs:local:0:another-q");
        assert_eq!(id.decide(std::slice::from_ref(&other)), Decision::Denied(other), "the policy's * is capped");
        let send = Call::new("sqs:SendMessage", "arn:aws:sqs:local:0:stack-q");
        assert_eq!(id.decide(std::slice::from_ref(&send)), Decision::Denied(send), "a boundary grants nothing");
    }

    #[test]
    fn an_explicit_deny_wins() {
        let id = identity(&[("Allow", &["sqs:*"], &["*"]), ("Deny", &["sqs:DeleteMessage"], &["*"])]);
        assert_eq!(id.decide(&[Call::new("sqs:SendMessage", "q")]), Decision::Allowed);
        assert!(matches!(id.decide(&[Call::new("sqs:DeleteMessage", "q")]), Decision::Denied(_)));
    }
}
