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

use crate::policy::glob::Glob;
use crate::telemetry::is_label_safe_tool_name;
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
            let mut public = String::with_capacity(prefix.len() + upstream.len());
            public.push_str(prefix);
            public.push_str(upstream);
            Cow::Owned(public)
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

mod settings;
pub use settings::{RawBackend, RawBackends, RawExposure};

#[cfg(test)]
mod tests;
