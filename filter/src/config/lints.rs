//! Lints across the configuration's sections: what is legal but probably
//! wrong once sections are read together (a policy against the resource
//! metadata, against the backends' published names; pins against the
//! servers). Printed by `mcp-filter check` and logged by the dynamic module
//! at load; the .wasm leaves them out (its size budget).
//!
//! Must not: refuse a configuration (the sections' `compile` do), or warn
//! without certainty.
#![cfg(not(target_arch = "wasm32"))]

use super::FilterConfig;

/// What is legal across sections but probably wrong: a scope a rule needs
/// that the resource metadata does not advertise, a tool a rule names that
/// no backend publishes, a server without any pin while unpinned tools are
/// hidden (it lists nothing).
pub(super) fn cross_section(config: &FilterConfig) -> Vec<String> {
    let mut warnings = Vec::new();
    if let Some(auth) = &config.auth {
        warnings.extend(
            config
                .policy
                .unadvertised_scopes(&auth.metadata.scopes_supported),
        );
    }
    if let Some(b) = &config.backends {
        let published = |name: &str| b.resolve(crate::backends::Named::Tool, name).is_some();
        warnings.extend(config.policy.unpublished_tools(&published));
    }
    let Some(pins) = config
        .pins
        .as_ref()
        .filter(|p| p.unpinned == crate::pins::Unpinned::Hide)
    else {
        return warnings;
    };
    let names: Vec<&str> = match &config.backends {
        Some(b) => b.servers.iter().map(|s| s.name.as_str()).collect(),
        None => vec![crate::pins::SINGLE_SERVER],
    };
    for (i, name) in names.iter().enumerate() {
        if !pins.pins_any(i) {
            warnings.push(format!(
                "tool_pins.servers.{name}: no tool of `{name}` is pinned and unpinned tools \
                 are hidden, so callers see none of its tools (pin them with `mcp-filter pin`, \
                 or set tool_pins.unpinned: allow)"
            ));
        }
    }
    warnings
}
