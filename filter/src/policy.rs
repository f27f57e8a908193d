//! Authorization policy: who (a [`Caller`] built from verified claims) may do
//! what (a [`Target`]: an MCP method and, for calls, the tool, prompt or
//! resource). One function, [`Policy::decide`], answers both "may this request
//! go upstream" and "may this item appear in a listing", so a listed item is
//! always callable and a callable one always listed.
//!
//! Rules are ordered; the first rule whose subject and target both match
//! decides. Tenants are isolation boundaries: with tenancy configured, every
//! rule names the tenants it governs, and a caller without a tenant is denied.
//!
//! Methods come in three classes. Calls are judged on the subject they name.
//! Housekeeping about a subject follows the subject's decision: a completion
//! is judged as getting its prompt (or reading its resource template), a
//! subscription as reading its resource. Session housekeeping
//! ([`HOUSEKEEPING`], notifications, responses) is open to any authenticated
//! caller unless a rule that names no subjects decides it; rules that name
//! only tools, prompts and resources never do, whatever the default. A rule
//! that would refuse housekeeping the policy never names is reported at load
//! ([`Policy::housekeeping_warnings`]).

pub(crate) mod glob;

pub use glob::Glob;

use crate::config::{invalid, ConfigError};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

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

    /// Values of a claim (a dotted path into nested objects): a string, or the
    /// strings of an array. Other types never match.
    fn claim_values(&self, path: &str) -> Vec<&str> {
        match claim_at(&self.claims, path) {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }
}

/// The claim at a dotted path into nested objects (`realm_access.roles`).
/// A key that itself contains a dot is not reachable: paths are not escaped.
pub fn claim_at<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut value = parts.next().and_then(|first| claims.get(first));
    for part in parts {
        value = value.and_then(|v| v.get(part));
    }
    value
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

/// Session housekeeping: methods any authenticated caller may use unless a
/// rule that names no tools, prompts or resources says otherwise (one naming
/// the method, or one about callers only). Lifecycle and liveness, the
/// logging level, the tasks of calls already judged (they carry a task id,
/// not a subject), a 2026-07-28 notification stream (the resources it
/// subscribes to are judged each, see [`followed_methods`]), and listings
/// (filtered item by item). Every client-to-server method of the MCP schemas
/// 2025-03-26 to 2026-07-28 is either here, a call judged on its subject, or
/// housekeeping that follows a subject's decision.
pub const HOUSEKEEPING: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "logging/setLevel",
    "tasks/get",
    "tasks/result",
    "tasks/cancel",
    "tasks/list",
    "tasks/update",
    "subscriptions/listen",
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
];

fn is_builtin_allowed(method: &str) -> bool {
    HOUSEKEEPING.contains(&method) || method.starts_with("notifications/")
}

/// Client notifications of the MCP schemas (any `notifications/*` is open).
const CLIENT_NOTIFICATIONS: &[&str] = &[
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "notifications/tasks/status",
];

/// Housekeeping about a subject (see [`followed_methods`]), before 2026-07-28.
const FOLLOWERS: &[&str] = &[
    "completion/complete",
    "resources/subscribe",
    "resources/unsubscribe",
];

/// The methods whose decision housekeeping about a subject follows: a
/// completion is judged as getting the prompt (or reading the resource
/// template) it completes, a subscription as reading its resource, and a
/// 2026-07-28 resource subscription as a `resources/subscribe` of it. A
/// rule's `methods` may name the method itself or any of these.
fn followed_methods(method: &str, kind: SubjectKind) -> &'static [&'static str] {
    match (method, kind) {
        ("completion/complete", SubjectKind::Prompt) => &["prompts/get"],
        ("completion/complete", SubjectKind::Resource)
        | ("resources/subscribe" | "resources/unsubscribe", SubjectKind::Resource) => {
            &["resources/read"]
        }
        ("subscriptions/listen", SubjectKind::Resource) => {
            &["resources/subscribe", "resources/read"]
        }
        _ => &[],
    }
}

/// The method of a client's JSON-RPC response (to sampling, elicitation...).
pub const RESPONSE_METHOD: &str = "";

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    rules: Vec<Rule>,
    default_allow: bool,
    /// Tenancy is on: a caller without a tenant is denied.
    tenancy: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    name: String,
    tenants: Option<Vec<Glob>>,
    workspaces: Option<Vec<Glob>>,
    subjects: Option<Vec<Glob>>,
    claims: Vec<(String, Vec<Glob>)>,
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

    /// Whether the rule applies to every authenticated caller that reaches
    /// the rules (one with a tenant, when tenancy is on).
    fn matches_every_caller(&self) -> bool {
        let all = |globs: &Option<Vec<Glob>>| {
            globs
                .as_ref()
                .is_none_or(|g| g.iter().any(|g| g.as_str() == "*"))
        };
        all(&self.tenants)
            && self.workspaces.is_none()
            && all(&self.subjects)
            && self.claims.is_empty()
            && self.scopes.is_empty()
    }

    /// Whether the rule answers a method-level question about `method`.
    fn reaches_method(&self, method: &str) -> bool {
        !self.names_subjects() && self.methods.as_ref().is_none_or(|globs| any(globs, method))
    }

    fn names_subjects(&self) -> bool {
        self.tools.is_some() || self.prompts.is_some() || self.resources.is_some()
    }

    fn matches_target(&self, target: &Target<'_>) -> bool {
        if let Some(methods) = &self.methods {
            let followed = target
                .subject
                .map_or(&[][..], |(kind, _)| followed_methods(target.method, kind));
            if !any(methods, target.method) && !followed.iter().any(|m| any(methods, m)) {
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
        }
    }

    pub fn has_rules(&self) -> bool {
        !self.rules.is_empty()
    }

    /// Rules that refuse housekeeping the policy never names: a `methods`
    /// wildcard or a rule about callers only reaching `logging/setLevel`,
    /// `initialize`, `tasks/*`... (or a completion without its prompt). Each
    /// names the rule's field and the methods; a method the policy names
    /// literally in any rule is taken as meant, and one an earlier rule
    /// decided for every caller is out of reach.
    pub fn housekeeping_warnings(&self) -> Vec<String> {
        let named = |method: &str| {
            self.rules.iter().any(|r| {
                r.methods
                    .iter()
                    .flatten()
                    .any(|g| g.is_literal() && g.as_str() == method)
            })
        };
        let mut decided: Vec<&str> = Vec::new();
        let mut out = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            // Housekeeping about a subject counts when the rule reaches it
            // without its subject's method (a completion denied for prompts
            // the rule lets be got).
            let reached: Vec<&str> = HOUSEKEEPING
                .iter()
                .chain(CLIENT_NOTIFICATIONS)
                .chain(FOLLOWERS)
                .copied()
                .filter(|m| {
                    !named(m)
                        && !decided.contains(m)
                        && rule.reaches_method(m)
                        && (!FOLLOWERS.contains(m)
                            || ![SubjectKind::Prompt, SubjectKind::Resource]
                                .iter()
                                .flat_map(|kind| followed_methods(m, *kind))
                                .all(|f| rule.reaches_method(f)))
                })
                .collect();
            if rule.matches_every_caller() {
                decided.extend(&reached);
            }
            let verb = if !rule.allow {
                "denies".to_string()
            } else if !rule.require_scopes.is_empty() {
                format!("requires {} for", quoted(rule.require_scopes.iter()))
            } else {
                continue;
            };
            if reached.is_empty() {
                continue;
            }
            let (field, how) = match &rule.methods {
                Some(globs) => (
                    ".methods",
                    quoted(globs.iter().filter(|g| !g.is_literal()).map(Glob::as_str)),
                ),
                None => ("", "naming no methods, tools, prompts or resources,".into()),
            };
            out.push(format!(
                "policy.rules[{i}]{field} (`{}`): {how} {verb} protocol housekeeping no rule \
                 names: {}. MCP clients need it, and any authenticated caller may use it \
                 unless a rule decides it; name in `methods`, without a wildcard, what this \
                 rule means",
                rule.name,
                quoted(reached.iter()),
            ));
        }
        out
    }

    pub fn decide(&self, caller: &Caller, target: &Target<'_>) -> Decision {
        if self.tenancy && caller.tenant.is_none() {
            return Decision {
                verdict: Verdict::Deny,
                reason: DecisionReason::NoTenant,
            };
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

/// `` `a`, `b` `` for messages.
fn quoted<S: AsRef<str>>(items: impl Iterator<Item = S>) -> String {
    let mut out = String::new();
    for item in items {
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push('`');
        out.push_str(item.as_ref());
        out.push('`');
    }
    out
}

// ---- configuration -----------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Allow,
    Deny,
}

/// `policy` in the plugin configuration.
#[derive(Debug, Deserialize, Default)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct RawPolicy {
    /// What happens when no rule matches: `deny` by default once any rule exists.
    pub default: Option<Effect>,
    pub rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: Option<String>,
    pub tenants: Option<Vec<String>>,
    pub workspaces: Option<Vec<String>>,
    pub subjects: Option<Vec<String>>,
    #[serde(default)]
    pub claims: BTreeMap<String, OneOrMany>,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub methods: Option<Vec<String>>,
    pub tools: Option<Vec<String>>,
    pub prompts: Option<Vec<String>>,
    pub resources: Option<Vec<String>>,
    pub effect: Effect,
    #[serde(default)]
    pub require_scopes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

pub(crate) fn globs(
    field: &str,
    values: Option<Vec<String>>,
) -> Result<Option<Vec<Glob>>, ConfigError> {
    let Some(values) = values else {
        return Ok(None);
    };
    if values.is_empty() {
        return Err(invalid(
            field,
            "an empty list matches nothing; leave the field out to match anything",
        ));
    }
    if let Some(i) = values.iter().position(String::is_empty) {
        return Err(invalid(&format!("{field}[{i}]"), "must not be empty"));
    }
    Ok(Some(values.iter().map(|v| Glob::new(v)).collect()))
}

fn scope_list(field: &str, scopes: &[String]) -> Result<(), ConfigError> {
    for (i, scope) in scopes.iter().enumerate() {
        // RFC 6749 scope-token: printable ASCII without space, quote or backslash.
        let valid = !scope.is_empty()
            && scope
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
        if !valid {
            return Err(invalid(
                &format!("{field}[{i}]"),
                format!("`{scope}` is not an OAuth scope token"),
            ));
        }
    }
    Ok(())
}

impl RawPolicy {
    /// Validates the rules. `tenancy`: a tenant source is configured, so every
    /// rule must say which tenants it governs.
    pub fn compile(self, tenancy: bool) -> Result<Policy, ConfigError> {
        let mut rules = Vec::with_capacity(self.rules.len());
        for (i, raw) in self.rules.into_iter().enumerate() {
            let at = |field: &str| format!("policy.rules[{i}].{field}");
            if tenancy && raw.tenants.is_none() {
                return Err(invalid(
                    &at("tenants"),
                    "with tenancy configured every rule names its tenants (use [\"*\"] for all)",
                ));
            }
            if !tenancy && raw.tenants.is_some() {
                return Err(invalid(
                    &at("tenants"),
                    "needs `tenancy.tenant_claim` or `tenancy.tenant_header`",
                ));
            }
            scope_list(&at("scopes"), &raw.scopes)?;
            scope_list(&at("require_scopes"), &raw.require_scopes)?;
            if raw.effect == Effect::Deny && !raw.require_scopes.is_empty() {
                return Err(invalid(
                    &at("require_scopes"),
                    "only an `allow` rule can require scopes",
                ));
            }
            let mut claims = Vec::new();
            for (path, values) in raw.claims {
                let field = at(&format!("claims.{path}"));
                if path.is_empty() || path.split('.').any(str::is_empty) {
                    return Err(invalid(&field, "claim path must be dot-separated names"));
                }
                let values = globs(&field, Some(values.into_vec()))?.unwrap_or_default();
                claims.push((path, values));
            }
            rules.push(Rule {
                name: match raw.name {
                    Some(name) if !name.is_empty() => name,
                    _ => format!("#{i}"),
                },
                tenants: globs(&at("tenants"), raw.tenants)?,
                workspaces: globs(&at("workspaces"), raw.workspaces)?,
                subjects: globs(&at("subjects"), raw.subjects)?,
                claims,
                scopes: raw.scopes,
                methods: globs(&at("methods"), raw.methods)?,
                tools: globs(&at("tools"), raw.tools)?,
                prompts: globs(&at("prompts"), raw.prompts)?,
                resources: globs(&at("resources"), raw.resources)?,
                allow: raw.effect == Effect::Allow,
                require_scopes: raw.require_scopes,
            });
        }
        let default_allow = match self.default {
            Some(effect) => effect == Effect::Allow,
            None => rules.is_empty(),
        };
        Ok(Policy {
            rules,
            default_allow,
            tenancy,
        })
    }
}

#[cfg(test)]
mod tests;
