//! Several MCP servers behind one endpoint: which backend a public tool or
//! prompt name belongs to, the name that backend knows it by, and the way
//! back for listings.
//!
//! Public names are made per backend by an explicit alias, or else by a
//! prefix (`github` + `__` + `create_issue`), or are the upstream's own names
//! for the one backend that is not prefixed. Exposure (which upstream items
//! are published at all) is decided here, apart from authorization, which
//! only ever sees public names. The two directions are one function each and
//! agree by construction: `resolve(publish(n)) == n` for every published `n`,
//! and `resolve` accepts nothing `publish` would not produce.

use crate::config_error::{header_name, invalid, ConfigError};
use crate::policy::glob::Glob;
use crate::policy::globs;
use crate::telemetry::is_label_safe_tool_name;
use serde::Deserialize;
use std::borrow::Cow;

/// A backend, by its place in `backends.servers`: what routes, requests the
/// filter sends, their answers and failures name it by. Only [`Backends`]
/// makes one, so it always names a configured backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BackendId(usize);

impl BackendId {
    /// Its place in `backends.servers`.
    pub fn index(self) -> usize {
        self.0
    }

    #[cfg(test)]
    pub(crate) fn at(index: usize) -> Self {
        BackendId(index)
    }
}

/// The kinds of names a backend publishes under names of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Named {
    Tool,
    Prompt,
}

/// The backends section, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Backends {
    pub servers: Vec<Backend>,
    /// Request header naming the chosen backend, for Envoy's route match.
    pub header: String,
    /// How long a fanned-out listing waits for each backend.
    pub listing_timeout_ms: u64,
    /// How long a call the filter relays to a backend itself waits for the
    /// backend's whole answer.
    pub call_timeout_ms: u64,
    /// The backend for requests that name no tool or prompt (initialize,
    /// resources, GET streams): the unprefixed one, else the first.
    pub default: BackendId,
    /// Whether any backend renames or hides tools / prompts.
    renames_tools: bool,
    renames_prompts: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    pub name: String,
    /// Envoy cluster a fanned-out listing is sent to.
    pub cluster: String,
    pub path: String,
    pub authority: String,
    tools: Naming,
    prompts: Naming,
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Naming {
    /// `prefix + separator`; `None`: names are published as the upstream has them.
    prefix: Option<String>,
    aliases: Vec<Alias>,
    include: Option<Vec<Glob>>,
    exclude: Vec<Glob>,
}

#[derive(Debug, Clone, PartialEq)]
struct Alias {
    public: String,
    upstream: String,
}

impl Naming {
    fn exposes(&self, upstream: &str) -> bool {
        self.include
            .as_ref()
            .is_none_or(|globs| globs.iter().any(|g| g.matches(upstream)))
            && !self.exclude.iter().any(|g| g.matches(upstream))
    }

    fn is_identity(&self) -> bool {
        self.prefix.is_none()
            && self.aliases.is_empty()
            && self.include.is_none()
            && self.exclude.is_empty()
    }
}

/// Where a public name goes: the backend (index into `servers`) and the name it knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route<'a> {
    pub backend: BackendId,
    pub upstream: Cow<'a, str>,
}

impl Backends {
    fn naming(&self, kind: Named, backend: BackendId) -> Option<&Naming> {
        self.server(backend).map(|b| b.naming(kind))
    }

    /// The backend `id` names.
    pub fn server(&self, id: BackendId) -> Option<&Backend> {
        self.servers.get(id.0)
    }

    /// Every backend, in configuration order.
    pub fn ids(&self) -> impl Iterator<Item = BackendId> {
        (0..self.servers.len()).map(BackendId)
    }

    /// Whether names of `kind` are rewritten or filtered at all.
    pub fn renames(&self, kind: Named) -> bool {
        match kind {
            Named::Tool => self.renames_tools,
            Named::Prompt => self.renames_prompts,
        }
    }

    /// Whether a listing of `kind` is gathered from every backend.
    pub fn aggregates(&self, kind: Named) -> bool {
        self.servers.len() > 1 && self.renames(kind)
    }

    /// More than one backend: requests must be routed.
    pub fn routes(&self) -> bool {
        self.servers.len() > 1
    }

    pub fn default_backend(&self) -> Option<&Backend> {
        self.server(self.default)
    }

    /// The public name of `upstream` as listed by backend `backend`, or
    /// `None` when it is not published (not exposed, an invalid tool name,
    /// or a name another backend's prefix or alias owns).
    pub fn publish<'a>(
        &'a self,
        kind: Named,
        backend: BackendId,
        upstream: &'a str,
    ) -> Option<Cow<'a, str>> {
        let naming = self.naming(kind, backend)?;
        if upstream.is_empty() || !naming.exposes(upstream) {
            return None;
        }
        let public = if let Some(alias) = naming.aliases.iter().find(|a| a.upstream == upstream) {
            Cow::Borrowed(alias.public.as_str())
        } else if let Some(prefix) = &naming.prefix {
            Cow::Owned(format!("{prefix}{upstream}"))
        } else if self.owned_elsewhere(kind, upstream) {
            return None;
        } else {
            Cow::Borrowed(upstream)
        };
        if kind == Named::Tool && !is_label_safe_tool_name(&public) {
            return None;
        }
        Some(public)
    }

    /// The backend and upstream name for a public name; `None` if no
    /// backend publishes it.
    pub fn resolve<'a>(&'a self, kind: Named, public: &'a str) -> Option<Route<'a>> {
        let route = self.candidate(kind, public)?;
        let back = self.publish(kind, route.backend, &route.upstream)?;
        (back == public).then_some(route)
    }

    fn candidate<'a>(&'a self, kind: Named, public: &'a str) -> Option<Route<'a>> {
        for (backend, server) in self.ids().zip(&self.servers) {
            if let Some(alias) = server
                .naming(kind)
                .aliases
                .iter()
                .find(|a| a.public == public)
            {
                return Some(Route {
                    backend,
                    upstream: Cow::Borrowed(alias.upstream.as_str()),
                });
            }
        }
        for (backend, server) in self.ids().zip(&self.servers) {
            if let Some(rest) = server
                .naming(kind)
                .prefix
                .as_deref()
                .and_then(|p| public.strip_prefix(p))
            {
                return Some(Route {
                    backend,
                    upstream: Cow::Borrowed(rest),
                });
            }
        }
        let backend = self
            .servers
            .iter()
            .position(|s| s.naming(kind).prefix.is_none())
            .map(BackendId)?;
        Some(Route {
            backend,
            upstream: Cow::Borrowed(public),
        })
    }

    /// A name an unprefixed backend cannot publish as is: it starts with a
    /// prefix or is an alias of some backend, so it would route elsewhere.
    fn owned_elsewhere(&self, kind: Named, name: &str) -> bool {
        self.servers.iter().any(|s| {
            let n = s.naming(kind);
            n.prefix.as_deref().is_some_and(|p| name.starts_with(p))
                || n.aliases.iter().any(|a| a.public == name)
        })
    }

    /// The index of a backend by name.
    pub fn index_of(&self, name: &str) -> Option<BackendId> {
        self.servers
            .iter()
            .position(|s| s.name == name)
            .map(BackendId)
    }
}

impl Backend {
    fn naming(&self, kind: Named) -> &Naming {
        match kind {
            Named::Tool => &self.tools,
            Named::Prompt => &self.prompts,
        }
    }
}

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

#[cfg(test)]
mod tests;
