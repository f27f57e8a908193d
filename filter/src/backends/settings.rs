//! The `backends` section of the configuration: its wire shape and its
//! compilation into [`Backends`], refusing, with the field named, any set of
//! names that could route one public name two ways (two unprefixed backends,
//! a prefix that starts another, an alias used twice or shaped like another
//! backend's prefixed name).
//!
//! Must not: route or rename at run time (the parent module does).

use super::{Alias, Backend, BackendId, Backends, Named, Naming};
use crate::config_error::{header_name, invalid, ConfigError};
use crate::policy::globs;
use crate::telemetry::is_label_safe_tool_name;
use serde::Deserialize;

/// `backends` in the plugin configuration.
#[derive(Debug, Deserialize, Default)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawBackends {
    /// Request header set to the chosen backend's name (default x-mcp-backend).
    pub header: Option<String>,
    /// How long a listing gathered from every backend waits for each (default 5000).
    #[cfg_attr(test, schemars(range(min = 1, max = 60000)))]
    pub listing_timeout_ms: Option<u64>,
    /// How long a call the filter relays itself (a legacy call for another backend than its headers went to, without routing_headers) waits for the backend's whole answer (default 60000).
    #[cfg_attr(test, schemars(range(min = 1, max = 3600000)))]
    pub call_timeout_ms: Option<u64>,
    /// The MCP servers behind this endpoint.
    pub servers: Vec<RawBackend>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    /// The backend's name: the value of the backend header, the default prefix.
    pub name: String,
    /// Envoy cluster for listings gathered from every backend (default: name).
    pub cluster: Option<String>,
    /// MCP endpoint path on that cluster (default /mcp).
    pub path: Option<String>,
    /// `:authority` of requests the filter sends itself (default: the cluster).
    pub authority: Option<String>,
    /// Prefix of public names (default: name).
    pub prefix: Option<String>,
    /// Between prefix and upstream name (default `__`).
    pub separator: Option<String>,
    /// Prefix tool names (default true; at most one backend may say false).
    pub prefix_tools: Option<bool>,
    /// Prefix prompt names (default false).
    pub prefix_prompts: Option<bool>,
    /// Which tools are published, and aliases.
    pub tools: Option<RawExposure>,
    /// Which prompts are published, and aliases.
    pub prompts: Option<RawExposure>,
}

#[derive(Debug, Deserialize, Default)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct RawExposure {
    /// Upstream names (globs) published; default all.
    pub include: Option<Vec<String>>,
    /// Upstream names (globs) never published.
    pub exclude: Option<Vec<String>>,
    /// Public name -> upstream name; an aliased item is published only under its alias.
    pub aliases: serde_json::Map<String, serde_json::Value>,
}

const MAX_LISTING_TIMEOUT_MS: u64 = 60_000;
const MAX_CALL_TIMEOUT_MS: u64 = 3_600_000;

fn is_backend_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

impl RawBackends {
    pub fn compile(self) -> Result<Backends, ConfigError> {
        if self.servers.is_empty() {
            return Err(invalid("backends.servers", "name at least one backend"));
        }
        let header = header_name("backends.header", self.header, "x-mcp-backend")?;
        let listing_timeout_ms = match self.listing_timeout_ms {
            None => 5000,
            Some(ms) if (1..=MAX_LISTING_TIMEOUT_MS).contains(&ms) => ms,
            Some(ms) => {
                return Err(invalid(
                    "backends.listing_timeout_ms",
                    format!("{ms} is outside 1..={MAX_LISTING_TIMEOUT_MS}"),
                ))
            }
        };
        let call_timeout_ms = match self.call_timeout_ms {
            None => 60_000,
            Some(ms) if (1..=MAX_CALL_TIMEOUT_MS).contains(&ms) => ms,
            Some(ms) => {
                return Err(invalid(
                    "backends.call_timeout_ms",
                    format!("{ms} is outside 1..={MAX_CALL_TIMEOUT_MS}"),
                ))
            }
        };
        let mut servers = Vec::with_capacity(self.servers.len());
        for (i, raw) in self.servers.into_iter().enumerate() {
            let server = compile_backend(i, raw)?;
            if servers.iter().any(|s: &Backend| s.name == server.name) {
                return Err(invalid(
                    &format!("backends.servers[{i}].name"),
                    format!("`{}` names two backends", server.name),
                ));
            }
            servers.push(server);
        }
        for kind in [Named::Tool, Named::Prompt] {
            check_names_unambiguous(&servers, kind)?;
        }
        let renames = |kind| {
            servers
                .iter()
                .any(|s: &Backend| !s.naming(kind).is_identity())
        };
        let (renames_tools, renames_prompts) = (renames(Named::Tool), renames(Named::Prompt));
        let default = servers
            .iter()
            .position(|s| s.tools.prefix.is_none())
            .map_or(BackendId(0), BackendId);
        Ok(Backends {
            servers,
            header,
            listing_timeout_ms,
            call_timeout_ms,
            default,
            renames_tools,
            renames_prompts,
        })
    }
}

fn compile_backend(i: usize, raw: RawBackend) -> Result<Backend, ConfigError> {
    let at = |field: &str| format!("backends.servers[{i}].{field}");
    if !is_backend_name(&raw.name) {
        return Err(invalid(
            &at("name"),
            format!("`{}` must be 1-64 of [A-Za-z0-9_-]", raw.name),
        ));
    }
    let cluster = raw.cluster.unwrap_or_else(|| raw.name.clone());
    if cluster.is_empty() {
        return Err(invalid(&at("cluster"), "must not be empty"));
    }
    let path = raw.path.unwrap_or_else(|| "/mcp".into());
    if !path.starts_with('/') {
        return Err(invalid(&at("path"), format!("`{path}` must start with /")));
    }
    let authority = raw.authority.unwrap_or_else(|| cluster.clone());
    let prefix = format!(
        "{}{}",
        raw.prefix.unwrap_or_else(|| raw.name.clone()),
        raw.separator.unwrap_or_else(|| "__".into())
    );
    if prefix.len() >= 128
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(invalid(
            &at("prefix"),
            format!("prefix and separator `{prefix}` must be under 128 of [A-Za-z0-9_.-]"),
        ));
    }
    let tools = naming(
        &at("tools"),
        raw.prefix_tools.unwrap_or(true).then(|| prefix.clone()),
        raw.tools.unwrap_or_default(),
        Named::Tool,
    )?;
    let prompts = naming(
        &at("prompts"),
        raw.prefix_prompts.unwrap_or(false).then_some(prefix),
        raw.prompts.unwrap_or_default(),
        Named::Prompt,
    )?;
    Ok(Backend {
        name: raw.name,
        cluster,
        path,
        authority,
        tools,
        prompts,
    })
}

fn naming(
    field: &str,
    prefix: Option<String>,
    raw: RawExposure,
    kind: Named,
) -> Result<Naming, ConfigError> {
    let mut aliases: Vec<Alias> = Vec::with_capacity(raw.aliases.len());
    for (public, upstream) in raw.aliases {
        let at = format!("{field}.aliases.{public}");
        let serde_json::Value::String(upstream) = upstream else {
            return Err(invalid(&at, "the upstream name must be a string"));
        };
        let valid = match kind {
            Named::Tool => is_label_safe_tool_name(&public),
            Named::Prompt => !public.is_empty(),
        };
        if !valid {
            return Err(invalid(
                &at,
                format!("`{public}` is not a valid public name (1-128 of [A-Za-z0-9_.-])"),
            ));
        }
        if upstream.is_empty() {
            return Err(invalid(&at, "the upstream name must not be empty"));
        }
        if let Some(other) = aliases.iter().find(|a| a.upstream == upstream) {
            return Err(invalid(
                &at,
                format!(
                    "`{upstream}` already has the alias `{}`; an item has one public name",
                    other.public
                ),
            ));
        }
        aliases.push(Alias { public, upstream });
    }
    Ok(Naming {
        prefix,
        aliases,
        include: globs(&format!("{field}.include"), raw.include)?,
        exclude: globs(&format!("{field}.exclude"), raw.exclude)?.unwrap_or_default(),
    })
}

/// Refuses configurations where one public name could belong to two backends.
fn check_names_unambiguous(servers: &[Backend], kind: Named) -> Result<(), ConfigError> {
    let what = match kind {
        Named::Tool => "tools",
        Named::Prompt => "prompts",
    };
    // Tools must always be routable; prompts only once some backend renames them
    // (otherwise every prompt request goes to the default backend).
    let renaming = kind == Named::Tool || servers.iter().any(|s| !s.naming(kind).is_identity());
    let unprefixed: Vec<usize> = (0..servers.len())
        .filter(|&i| {
            servers
                .get(i)
                .is_some_and(|s| s.naming(kind).prefix.is_none())
        })
        .collect();
    if renaming && servers.len() > 1 && unprefixed.len() > 1 {
        let second = unprefixed.get(1).copied().unwrap_or_default();
        return Err(invalid(
            &format!("backends.servers[{second}]"),
            format!(
                "at most one backend may publish {what} unprefixed: an unprefixed name cannot say which backend it is for"
            ),
        ));
    }
    for (i, a) in servers.iter().enumerate() {
        let Some(pa) = a.naming(kind).prefix.as_deref() else {
            continue;
        };
        for (j, b) in servers.iter().enumerate() {
            if i == j {
                continue;
            }
            if let Some(pb) = b.naming(kind).prefix.as_deref() {
                if pb.starts_with(pa) {
                    return Err(invalid(
                        &format!("backends.servers[{j}].prefix"),
                        format!("{what} prefix `{pb}` starts with backend `{}`'s `{pa}`: names would be ambiguous", a.name),
                    ));
                }
            }
        }
    }
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        for alias in &server.naming(kind).aliases {
            let at = format!("backends.servers[{i}].{what}.aliases.{}", alias.public);
            if let Some((_, other)) = seen.iter().find(|(p, _)| *p == alias.public) {
                return Err(invalid(
                    &at,
                    format!("`{}` is also an alias of backend `{other}`", alias.public),
                ));
            }
            if let Some(owner) = servers.iter().find(|s| {
                s.naming(kind)
                    .prefix
                    .as_deref()
                    .is_some_and(|p| alias.public.starts_with(p))
            }) {
                return Err(invalid(
                    &at,
                    format!(
                        "`{}` starts with backend `{}`'s prefix: it would collide with its prefixed names",
                        alias.public, owner.name
                    ),
                ));
            }
            seen.push((alias.public.as_str(), server.name.as_str()));
        }
    }
    Ok(())
}
