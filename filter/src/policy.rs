//! Authorization policy: who (a [`Caller`] built from verified claims) may do
//! what (a [`Target`]: an MCP method and, for calls, the tool, prompt or
//! resource). One function, [`Policy::decide`], answers both "may this request
//! go upstream" and "may this item appear in a listing", so a listed item is
//! always callable and a callable one always listed.
//!
//! Rules are ordered; the first rule whose subject and target both match
//! decides. Tenants are isolation boundaries: with tenancy configured, every
//! rule names the tenants it governs, and a caller without a tenant is denied.

pub(crate) mod glob;

pub use glob::Glob;

use crate::config_error::{invalid, ConfigError};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// The authenticated caller, as the policy sees it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Caller {
    /// `iss` and `sub`: the identity a session is bound to.
    pub issuer: String,
    pub subject: String,
    pub tenant: Option<String>,
    pub workspace: Option<String>,
    pub scopes: Vec<String>,
    /// The verified claims, for claim conditions.
    pub claims: Map<String, Value>,
}

impl Caller {
    fn has_scopes(&self, scopes: &[String]) -> bool {
        scopes.iter().all(|s| self.scopes.contains(s))
    }

    /// Values of a claim (a dotted path into nested objects): a string, a
    /// boolean or number as its JSON text (`true`, `3`), or those of an
    /// array. Objects and `null` never match.
    fn claim_values(&self, path: &ClaimPath) -> Vec<Cow<'_, str>> {
        fn text(value: &Value) -> Option<Cow<'_, str>> {
            match value {
                Value::String(s) => Some(Cow::Borrowed(s)),
                Value::Bool(_) | Value::Number(_) => Some(Cow::Owned(value.to_string())),
                _ => None,
            }
        }
        match path.lookup(&self.claims) {
            Some(Value::Array(items)) => items.iter().filter_map(text).collect(),
            Some(value) => text(value).into_iter().collect(),
            None => Vec::new(),
        }
    }
}

/// A dotted path into nested claims (`groups`, `realm_access.roles`), read
/// from the configuration: one or more names, none empty. A key that itself
/// contains a dot is not reachable: paths are not escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath(String);

impl ClaimPath {
    /// `path` from the configuration field `field`, or the error naming it.
    pub fn parse(field: &str, path: String) -> Result<Self, ConfigError> {
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Err(invalid(field, "claim path must be dot-separated names"));
        }
        Ok(Self(path))
    }

    /// The claim at this path, if the claims have one.
    pub fn lookup<'a>(&self, claims: &'a Map<String, Value>) -> Option<&'a Value> {
        let mut parts = self.0.split('.');
        let mut value = parts.next().and_then(|first| claims.get(first));
        for part in parts {
            value = value.and_then(|v| v.get(part));
        }
        value
    }
}

/// What a request (or a listed item) would act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKind {
    Tool,
    Prompt,
    Resource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    pub method: &'a str,
    pub subject: Option<(SubjectKind, &'a str)>,
}

impl<'a> Target<'a> {
    pub fn method(method: &'a str) -> Self {
        Self {
            method,
            subject: None,
        }
    }

    /// The call a listed item stands for: a listed tool is judged as `tools/call` of it.
    pub fn call(kind: SubjectKind, name: &'a str) -> Self {
        let method = match kind {
            SubjectKind::Tool => "tools/call",
            SubjectKind::Prompt => "prompts/get",
            SubjectKind::Resource => "resources/read",
        };
        Self {
            method,
            subject: Some((kind, name)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
    /// Allowed with more scopes: answered 403 `insufficient_scope` naming them.
    InsufficientScope(Vec<String>),
}

/// Why a decision came out as it did, for access logs and metrics. Never
/// shown to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionReason {
    Rule(String),
    /// Methods every authenticated caller may use unless a rule says otherwise.
    Builtin,
    Default,
    /// Tenancy is configured but the caller has no tenant.
    NoTenant,
}

impl DecisionReason {
    pub fn label(&self) -> String {
        match self {
            DecisionReason::Rule(name) => format!("rule:{name}"),
            DecisionReason::Builtin => "builtin".into(),
            DecisionReason::Default => "default".into(),
            DecisionReason::NoTenant => "no_tenant".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub reason: DecisionReason,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        self.verdict == Verdict::Allow
    }

    pub fn label(&self) -> &'static str {
        match self.verdict {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::InsufficientScope(_) => "insufficient_scope",
        }
    }
}

/// Session housekeeping any authenticated caller may use when no rule names
/// it: lifecycle, liveness, listings (filtered item by item), the log level
/// of its session, the tasks its judged calls started (servers bind a task
/// to the session that created it), and the 2026-07-28 notification stream
/// (whose resource subscriptions are judged one by one, as reads).
const HOUSEKEEPING: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "logging/setLevel",
    "tasks/get",
    "tasks/result",
    "tasks/list",
    "tasks/cancel",
    // SEP-2663 (the Tasks extension of 2026-07-28): answers to the task's
    // input requests, as client responses are.
    "tasks/update",
    "subscriptions/listen",
];

fn is_builtin_allowed(method: &str) -> bool {
    HOUSEKEEPING.contains(&method) || method.starts_with("notifications/")
}

/// Housekeeping about one subject, which follows that subject's decision
/// unless a rule names the method itself: completing a prompt's arguments
/// or a resource template's is allowed to whoever may get that prompt or
/// read that resource; (un)subscribing to a resource, to whoever may read it.
fn follows_its_subject(method: &str) -> bool {
    matches!(
        method,
        "completion/complete" | "resources/subscribe" | "resources/unsubscribe"
    )
}

/// The method of a client's JSON-RPC response (to sampling, elicitation...).
pub const RESPONSE_METHOD: &str = "";

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    rules: Vec<Rule>,
    default_allow: bool,
    /// Tenancy is on: a caller without a tenant is denied.
    tenancy: bool,
    pub deny_with: DenyWith,
}

/// How a request the policy denies is answered (`policy.deny_with`).
/// Either way the body is the JSON-RPC error `-32043` naming what was asked
/// for; a notification, a client's response or a batch the policy refuses
/// is always answered 403 (there is no request to answer with a result).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum DenyWith {
    /// HTTP 200: the call failed, the session goes on (every SDK's view).
    #[default]
    JsonRpcError,
    /// HTTP 403: what some SDKs surface as a transport error.
    #[serde(rename = "http_403")]
    Http403,
}

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    name: String,
    tenants: Option<Vec<Glob>>,
    workspaces: Option<Vec<Glob>>,
    subjects: Option<Vec<Glob>>,
    claims: Vec<(ClaimPath, Vec<Glob>)>,
    scopes: Vec<String>,
    methods: Option<Vec<Glob>>,
    tools: Option<Vec<Glob>>,
    prompts: Option<Vec<Glob>>,
    resources: Option<Vec<Glob>>,
    allow: bool,
    require_scopes: Vec<String>,
}

fn any(globs: &[Glob], text: &str) -> bool {
    globs.iter().any(|g| g.matches(text))
}

impl Rule {
    fn matches_caller(&self, caller: &Caller) -> bool {
        let opt_in = |globs: &Option<Vec<Glob>>, value: Option<&str>| match globs {
            None => true,
            Some(globs) => value.is_some_and(|v| any(globs, v)),
        };
        opt_in(&self.tenants, caller.tenant.as_deref())
            && opt_in(&self.workspaces, caller.workspace.as_deref())
            && opt_in(&self.subjects, Some(&caller.subject))
            && self.claims.iter().all(|(path, globs)| {
                caller
                    .claim_values(path)
                    .iter()
                    .any(|value| any(globs, value))
            })
            && caller.has_scopes(&self.scopes)
    }

    /// A deny rule that names no subject and covers housekeeping methods it
    /// does not name literally (`methods: ["*"]`, or no `methods` at all):
    /// the sessions of the callers it matches cannot start or stay usable.
    fn denies_housekeeping_by_accident(&self) -> Option<String> {
        if self.allow || self.names_subjects() {
            return None;
        }
        let covered: Vec<&str> = HOUSEKEEPING
            .iter()
            .copied()
            .filter(|m| match &self.methods {
                None => true,
                Some(globs) => globs.iter().any(|g| g.matches(m) && g.as_str() != *m),
            })
            .collect();
        if covered.is_empty() {
            return None;
        }
        Some(format!(
            "denies the protocol's housekeeping ({}) to every caller it matches, so their \
             MCP sessions cannot start or stay usable; if that is meant, name those methods \
             in `methods`, else narrow the rule (`methods`, `tools`, `prompts`, `resources`)",
            covered.join(", ")
        ))
    }

    fn names_subjects(&self) -> bool {
        self.tools.is_some() || self.prompts.is_some() || self.resources.is_some()
    }

    fn matches_target(&self, target: &Target<'_>) -> bool {
        if let Some(methods) = &self.methods {
            if !any(methods, target.method) {
                return false;
            }
        }
        match target.subject {
            // A method-level question: only rules that name no subjects answer it.
            None => !self.names_subjects(),
            Some((kind, name)) => {
                if !self.names_subjects() {
                    return true;
                }
                let list = match kind {
                    SubjectKind::Tool => &self.tools,
                    SubjectKind::Prompt => &self.prompts,
                    SubjectKind::Resource => &self.resources,
                };
                list.as_ref().is_some_and(|globs| any(globs, name))
            }
        }
    }
}

impl Policy {
    /// No rules: every authenticated caller may do everything.
    pub fn allow_all() -> Self {
        Self {
            rules: Vec::new(),
            default_allow: true,
            tenancy: false,
            deny_with: DenyWith::default(),
        }
    }

    /// Warnings about tools the rules name exactly that `published` denies.
    pub fn unpublished_tools(&self, published: &dyn Fn(&str) -> bool) -> Vec<String> {
        lint::unpublished_tools(&self.rules, published)
    }

    /// Warnings about scopes the rules need that `scopes_supported` lacks.
    pub fn unadvertised_scopes(&self, scopes_supported: &[String]) -> Vec<String> {
        lint::unadvertised_scopes(&self.rules, scopes_supported)
    }

    pub fn has_rules(&self) -> bool {
        !self.rules.is_empty()
    }

    pub fn decide(&self, caller: &Caller, target: &Target<'_>) -> Decision {
        if self.tenancy && caller.tenant.is_none() {
            return Decision {
                verdict: Verdict::Deny,
                reason: DecisionReason::NoTenant,
            };
        }
        if let (true, Some((kind, name))) = (follows_its_subject(target.method), target.subject) {
            let named = self.rules.iter().any(|rule| {
                rule.methods.as_ref().is_some_and(|m| any(m, target.method))
                    && rule.matches_target(target)
                    && rule.matches_caller(caller)
            });
            if !named {
                return self.decide(caller, &Target::call(kind, name));
            }
        }
        for rule in &self.rules {
            if rule.matches_target(target) && rule.matches_caller(caller) {
                let verdict = if !rule.allow {
                    Verdict::Deny
                } else if caller.has_scopes(&rule.require_scopes) {
                    Verdict::Allow
                } else {
                    Verdict::InsufficientScope(rule.require_scopes.clone())
                };
                return Decision {
                    verdict,
                    reason: DecisionReason::Rule(rule.name.clone()),
                };
            }
        }
        if target.subject.is_none()
            && (target.method == RESPONSE_METHOD || is_builtin_allowed(target.method))
        {
            return Decision {
                verdict: Verdict::Allow,
                reason: DecisionReason::Builtin,
            };
        }
        Decision {
            verdict: if self.default_allow {
                Verdict::Allow
            } else {
                Verdict::Deny
            },
            reason: DecisionReason::Default,
        }
    }
}

mod lint;
mod settings;
pub(crate) use settings::globs;
pub use settings::{Effect, OneOrMany, RawPolicy, RawRule};

#[cfg(test)]
mod tests;
