//! The `policy` section of the configuration: its wire shape and its
//! compilation into [`Policy`], every error naming its field, and the
//! warnings for rules that are legal but probably wrong (a deny that takes
//! the protocol's housekeeping with it).
//!
//! Must not: decide anything (the parent module does).

use super::{ClaimPath, DenyWith, Glob, Policy, Rule};
use crate::config_error::{invalid, ConfigError};
use serde::Deserialize;
use std::collections::BTreeMap;

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
    /// How a denied request is answered: `json_rpc_error` (default: HTTP 200 carrying the JSON-RPC error -32043, which every SDK hands the application as a failed call on a live session) or `http_403` (the same error with HTTP 403, which some SDKs treat as a transport failure). Missing scopes are always 403 insufficient_scope.
    pub deny_with: Option<DenyWith>,
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

/// A claim's accepted value: a string, or a list of strings.
#[derive(Debug)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[cfg_attr(test, serde(untagged))]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

// By hand, not `#[serde(untagged)]`: an untagged enum buffers its input in
// serde's private `Content` type, code the .wasm (which has a size budget)
// would carry for this one field.
impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut values = Vec::new();
                while let Some(value) = seq.next_element::<String>()? {
                    values.push(value);
                }
                Ok(OneOrMany::Many(values))
            }
        }
        d.deserialize_any(Visit)
    }
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
    /// Warnings (legal but probably wrong) go to `warnings`.
    pub fn compile(self, tenancy: bool, warnings: &mut Vec<String>) -> Result<Policy, ConfigError> {
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
                let values = globs(&field, Some(values.into_vec()))?.unwrap_or_default();
                claims.push((ClaimPath::parse(&field, path)?, values));
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
        for (i, rule) in rules.iter().enumerate() {
            if let Some(warning) = rule.denies_housekeeping_by_accident() {
                warnings.push(format!("policy.rules[{i}] ({}): {warning}", rule.name));
            }
        }
        warnings.extend(super::lint::shadowed(&rules));
        Ok(Policy {
            rules,
            default_allow,
            tenancy,
            deny_with: self.deny_with.unwrap_or_default(),
        })
    }
}
