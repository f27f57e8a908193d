//! Routing between backends: the backend a request's headers go to, the
//! backend its body names, the public-to-upstream name rewrite and the
//! routing header. Decided from the configuration and the classified
//! message alone.
//!
//! Must not: send anything itself (`fanout` does), or pass an unknown or
//! hidden name on: those are refused.

use crate::backends::{BackendId, Backends, Named};
use crate::classify::{Classified, MessageKind, Subject};
use crate::exchange::refusal::Refusal;
use crate::exchange::{bounded, Exchange, HeaderEdit, MAX_EXPOSED_VALUE};
use crate::listing::ListKind;
use crate::reject::{quote, Reason, Rejection};
use base64::Engine;

impl Exchange {
    pub(super) fn backend_name(&self, backend: BackendId) -> Option<&str> {
        let server = self.config.backends.as_ref()?.server(backend)?;
        Some(server.name.as_str())
    }

    /// Routing decided from the request headers alone, for headers that go
    /// on before the body is read: the backend the 2026-07-28 `Mcp-Name`
    /// header names (and that header in the backend's own name), else the
    /// default backend. The body must agree, or it is refused.
    pub(super) fn route_head(&mut self, held: bool, post: bool) -> Vec<HeaderEdit> {
        let config = self.config.clone();
        let Some(backends) = config.backends.as_ref() else {
            return Vec::new();
        };
        if held {
            // Decided from the body, while Envoy still holds the headers.
            return Vec::new();
        }
        let mut edits = Vec::new();
        let mut backend = backends.default;
        if let Some((method, public)) = self.mirrored.declared() {
            let kind = match method.as_str() {
                "tools/call" => Some(Named::Tool),
                "prompts/get" if backends.renames(Named::Prompt) => Some(Named::Prompt),
                _ => None,
            };
            if let Some(route) = kind.and_then(|k| backends.resolve(k, &public)) {
                backend = route.backend;
                if route.upstream != public {
                    edits.push(HeaderEdit::Set(
                        "mcp-name".into(),
                        header_value(&route.upstream, Fit::Cut),
                    ));
                }
            }
        }
        if post && (backends.renames(Named::Tool) || backends.renames(Named::Prompt)) {
            // The body may be rewritten; Envoy then sends it chunked.
            edits.push(HeaderEdit::Remove("content-length".into()));
        }
        edits.extend(backend_header(backends, backend));
        self.routed_at_headers = Some(backend);
        self.backend = Some(backend);
        edits
    }

    /// Where an accepted body goes, and what changes on its way: the backend
    /// header (held headers), the upstream's name in `params.name` and
    /// `Mcp-Name`. Unknown or hidden names are refused, never passed.
    pub(super) fn route_body(
        &mut self,
        classified: &Classified,
        body: &[u8],
        held: bool,
    ) -> Result<Routed, Refusal> {
        let config = self.config.clone();
        let Some(backends) = config.backends.as_ref() else {
            return Ok(Routed::Forward {
                edits: Vec::new(),
                body: None,
            });
        };
        fn named_kind<'s>(
            backends: &Backends,
            subject: &'s Option<Subject>,
        ) -> Option<(Named, &'s str)> {
            match subject {
                Some(Subject::Tool(n)) => Some((Named::Tool, n.as_str())),
                Some(Subject::Prompt(n)) if backends.renames(Named::Prompt) => {
                    Some((Named::Prompt, n.as_str()))
                }
                _ => None,
            }
        }
        let rewritten_listing = |method: Option<&str>| {
            method
                .and_then(ListKind::from_method)
                .and_then(ListKind::named)
                .is_some_and(|n| backends.renames(n))
        };
        if classified.batch {
            if let Some(m) = classified.messages.iter().find(|m| {
                named_kind(backends, &m.subject).is_some() || rewritten_listing(m.method.as_deref())
            }) {
                return Err(Refusal::from(Rejection::new(
                        Reason::InvalidRequest,
                        "a batch cannot carry tool calls, renamed prompts or listings behind several backends; send them alone",
                    )
                    .with_id(m.id.clone())));
            }
        }
        let message = classified.single();
        let listing = message
            .filter(|m| m.kind == MessageKind::Request)
            .and_then(|m| m.method.as_deref())
            .and_then(ListKind::from_method);
        if let Some(kind) = listing {
            if kind.named().is_some_and(|n| backends.aggregates(n)) {
                if has_cursor(body) {
                    return Err(Refusal::from(
                        Rejection::new(
                            Reason::InvalidParams,
                            "Invalid cursor: this endpoint lists every backend in one page",
                        )
                        .with_id(message.and_then(|m| m.id.clone())),
                    ));
                }
                return Ok(Routed::Gather(kind));
            }
        }

        let mut backend = backends.default;
        let mut upstream = None;
        if let Some((kind, public)) = message.and_then(|m| named_kind(backends, &m.subject)) {
            let Some(route) = backends.resolve(kind, public) else {
                let what = if kind == Named::Tool {
                    "tool"
                } else {
                    "prompt"
                };
                return Err(Refusal::from(
                    Rejection::new(
                        Reason::UnknownName,
                        format!("Unknown {what}: {}", quote(public)),
                    )
                    .with_id(message.and_then(|m| m.id.clone())),
                ));
            };
            backend = route.backend;
            if route.upstream != public {
                upstream = Some(route.upstream.into_owned());
            }
        }
        // Headers that went on unheld were routed to another backend: the
        // filter carries the call there itself.
        let relayed = !held && self.routed_at_headers != Some(backend);
        self.backend = Some(backend);

        let mut edits = Vec::new();
        if held {
            edits.extend(backend_header(backends, backend));
        }
        let rewritten = match upstream {
            None => None,
            Some(upstream) => {
                // Where the message names it: a completion in its `ref`.
                let path: &[&str] =
                    if message.and_then(|m| m.method.as_deref()) == Some("completion/complete") {
                        &["ref", "name"]
                    } else {
                        &["name"]
                    };
                let Some(rewritten) = crate::raw_json::replace_param_string(body, path, &upstream)
                else {
                    return Err(Refusal::from(
                        Rejection::new(
                            Reason::InvalidParams,
                            format!("`params.{}` could not be rewritten", path.join(".")),
                        )
                        .with_id(message.and_then(|m| m.id.clone())),
                    ));
                };
                if held {
                    edits.push(HeaderEdit::Remove("content-length".into()));
                    if !self.mirrored.name.is_empty() {
                        edits.push(HeaderEdit::Set(
                            "mcp-name".into(),
                            header_value(&upstream, Fit::Cut),
                        ));
                    }
                }
                Some(rewritten)
            }
        };
        if relayed {
            return Ok(Routed::Relay {
                backend,
                body: rewritten.unwrap_or_else(|| body.to_vec()),
            });
        }
        Ok(Routed::Forward {
            edits,
            body: rewritten,
        })
    }
}

/// How a value too long for a header is treated.
pub(super) enum Fit {
    /// Cut at 256 bytes (a copy for Envoy's routes and logs).
    Cut,
    /// Never cut: two callers must never share a value.
    Whole,
}

/// A value as a request header: as it is when it is printable ASCII without
/// surrounding spaces, not empty and at most 256 bytes; else in MCP's base64
/// sentinel form (`=?base64?...?=`, as `Mcp-Name` uses), so no value can
/// smuggle a line end or pass for another.
pub(super) fn header_value(value: &str, fit: Fit) -> String {
    let value = match fit {
        Fit::Cut => bounded(value),
        Fit::Whole => value.to_string(),
    };
    let plain = value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !value.starts_with("=?base64?")
        && value.trim() == value
        && !value.is_empty();
    if plain && value.len() <= MAX_EXPOSED_VALUE {
        value
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(value)
        )
    }
}

/// The request header that names the backend, for Envoy's route match.
pub(super) fn backend_header(backends: &Backends, backend: BackendId) -> Option<HeaderEdit> {
    let server = backends.server(backend)?;
    Some(HeaderEdit::Set(
        backends.header.clone(),
        server.name.clone(),
    ))
}

/// Where an accepted body goes.
pub(super) enum Routed {
    /// Upstream, with these request edits and (if renamed) this body.
    Forward {
        edits: Vec<HeaderEdit>,
        body: Option<Vec<u8>>,
    },
    /// Nowhere: the filter gathers this listing from every backend.
    Gather(ListKind),
    /// To another backend than the headers went to: the filter relays it.
    Relay { backend: BackendId, body: Vec<u8> },
}

/// Whether a request's params carry a `cursor`.
pub(super) fn has_cursor(body: &[u8]) -> bool {
    crate::raw_json::param(body, "cursor").is_some_and(|c| c.get() != "null")
}
