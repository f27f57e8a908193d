//! Rules that are legal but probably wrong: a rule that can never decide
//! anything (an earlier rule matches every request it matches: rules are
//! tried in order, the first match decides), a tool a rule names that no
//! backend publishes (its calls are refused as unknown before the policy is
//! asked), and a scope a rule needs that
//! the protected resource metadata does not advertise (a client reading it
//! cannot learn to ask for it). Reported as configuration warnings, logged
//! by the filter at load and printed by `mcp-filter check`.
//!
//! Must not: warn without certainty. Patterns are compared conservatively
//! ([`Glob::covers`]): a rule is reported only when it is surely shadowed.

use super::{ClaimPath, Glob, Rule};

/// A condition on one attribute: `None` matches anything.
fn list_covers(earlier: &Option<Vec<Glob>>, later: &Option<Vec<Glob>>) -> bool {
    match (earlier, later) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(e), Some(l)) => l.iter().all(|g| e.iter().any(|f| f.covers(g))),
    }
}

fn claims_cover(earlier: &[(ClaimPath, Vec<Glob>)], later: &[(ClaimPath, Vec<Glob>)]) -> bool {
    earlier.iter().all(|(path, globs)| {
        later
            .iter()
            .any(|(p, l)| p == path && l.iter().all(|g| globs.iter().any(|f| f.covers(g))))
    })
}

impl Rule {
    /// Whether this rule matches every (caller, target) `later` matches.
    fn covers(&self, later: &Rule) -> bool {
        let callers = list_covers(&self.tenants, &later.tenants)
            && list_covers(&self.workspaces, &later.workspaces)
            && list_covers(&self.subjects, &later.subjects)
            && claims_cover(&self.claims, &later.claims)
            && self.scopes.iter().all(|s| later.scopes.contains(s));
        let methods = list_covers(&self.methods, &later.methods);
        // A rule naming no subject answers every target; one naming subjects
        // answers only those (never a method-level question).
        let subjects = !self.names_subjects()
            || (later.names_subjects()
                && [
                    (&self.tools, &later.tools),
                    (&self.prompts, &later.prompts),
                    (&self.resources, &later.resources),
                ]
                .iter()
                .all(|(e, l)| l.is_none() || (e.is_some() && list_covers(e, l))));
        callers && methods && subjects
    }
}

/// A warning for each rule an earlier one shadows.
pub(super) fn shadowed(rules: &[Rule]) -> Vec<String> {
    let mut warnings = Vec::new();
    for (j, later) in rules.iter().enumerate() {
        let earlier = rules.get(..j).unwrap_or_default();
        if let Some((i, by)) = earlier.iter().enumerate().find(|(_, e)| e.covers(later)) {
            warnings.push(format!(
                "policy.rules[{j}] ({}): never decides anything: policy.rules[{i}] ({}) \
                 matches every request it matches, and the first matching rule decides",
                later.name, by.name
            ));
        }
    }
    warnings
}

/// A warning for each scope a rule needs (`scopes`, `require_scopes`) that
/// `scopes_supported` (the resource metadata's, when it lists any) lacks.
pub(super) fn unadvertised_scopes(rules: &[Rule], scopes_supported: &[String]) -> Vec<String> {
    if scopes_supported.is_empty() {
        return Vec::new();
    }
    let mut warnings = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        for (field, scopes) in [
            ("scopes", &rule.scopes),
            ("require_scopes", &rule.require_scopes),
        ] {
            for scope in scopes.iter().filter(|s| !scopes_supported.contains(s)) {
                warnings.push(format!(
                    "policy.rules[{i}] ({}): {field} names `{scope}`, which \
                     auth.resource_metadata.scopes_supported does not list: clients reading \
                     the metadata cannot learn to ask for it",
                    rule.name
                ));
            }
        }
    }
    warnings
}

/// A warning for each tool a rule names exactly (no wildcard) that
/// `published` says no backend publishes.
pub(super) fn unpublished_tools(rules: &[Rule], published: &dyn Fn(&str) -> bool) -> Vec<String> {
    let mut warnings = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        for name in rule.tools.iter().flatten().filter_map(Glob::literal) {
            if !published(name) {
                warnings.push(format!(
                    "policy.rules[{i}] ({}): names tool `{name}`, which no backend publishes \
                     (public names carry the backend's prefix, or are aliases): the rule never \
                     matches it",
                    rule.name
                ));
            }
        }
    }
    warnings
}
