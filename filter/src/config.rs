//! Plugin configuration: the JSON Envoy hands to the root context, parsed and
//! validated once into an immutable [`FilterConfig`]. Every error names the field.
//!
//! Envoy delivers the plugin `configuration` as bytes: a `StringValue` (what
//! Envoy Gateway sends) arrives as its string, a `Struct` as its protobuf
//! encoding, decoded here into the same JSON. A JSON *string* holding JSON
//! (double-encoded by a templating layer) is unwrapped once.
//!
//! This module only composes: each section (`auth`, `policy`, `sessions`,
//! `backends`, `endpoint`) owns its raw wire type and its `compile()`;
//! errors and shared checks live in the leaf `config_error`.

mod lints;
mod path_de;

pub use crate::config_error::ConfigError;
use crate::config_error::{header_name, in_range, invalid};
use crate::struct_pb;

use crate::auth::{AuthConfig, RawAuth, RawTenancy};
use crate::backends::{Backends, RawBackends};
use crate::endpoint::{Endpoint, McpPath, PublicPath};
use crate::pins::ToolPins;
use crate::policy::{Policy, RawPolicy};
use crate::session::{RawSessions, SessionBinding};
use serde::Deserialize;
use std::rc::Rc;

/// Requests to paths that are neither the MCP endpoint nor `public_paths`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum NonMcpTraffic {
    /// Forward untouched (the default when the filter guards nothing: no
    /// `auth`, no `backends`).
    Pass,
    /// Answer 404 with a JSON-RPC error (the default with `auth` or `backends`).
    Reject,
}

/// The validated configuration a request context reads; built once per plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterConfig {
    pub max_request_bytes: usize,
    pub max_response_bytes: usize,
    pub allow_batches: bool,
    /// The MCP endpoint's paths (and everything below them, however spelled)
    /// and the canonical paths that may pass unjudged.
    pub endpoint: Endpoint,
    pub non_mcp_traffic: NonMcpTraffic,
    pub routing_headers: RoutingHeaders,
    pub metrics: MetricsConfig,
    /// Authentication; `None`: callers are anonymous and no policy applies.
    pub auth: Option<Rc<AuthConfig>>,
    pub policy: Policy,
    /// Binding of `Mcp-Session-Id` to the caller (needs `auth`).
    pub sessions: Option<SessionBinding>,
    /// The MCP servers behind this endpoint, their public names and routing.
    pub backends: Option<Backends>,
    /// Reviewed tool definitions: a tool that changed is hidden and refused.
    pub pins: Option<ToolPins>,
    /// What is legal but probably wrong; the shell logs each at load.
    pub warnings: Vec<String>,
}

/// Request headers the filter sets from the parsed body so Envoy can route,
/// authorize and rate-limit on them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingHeaders {
    /// Hold request headers until the body is parsed, then set the headers below
    /// (Envoy then re-picks the route). Needs `allow_on_headers_stop_iteration: true`
    /// in the wasm `PluginConfig`; without it Envoy stalls a held stream.
    pub enabled: bool,
    pub method: String,
    pub name: String,
    /// The verified caller's `sub` and tenant, set whenever `auth` knows the
    /// caller at the request headers (or, held, once the keys are in).
    pub subject: String,
    pub tenant: String,
}

impl RoutingHeaders {
    /// Every header the filter sets for Envoy: a client's own copies are removed.
    pub fn all(&self) -> [&String; 4] {
        [&self.method, &self.name, &self.subject, &self.tenant]
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Tool names that always get their own metric label.
    pub tool_labels: Vec<String>,
    /// How many distinct tool labels (configured plus learned from `tools/list`
    /// responses) a VM keeps before further tools fold into `_other`.
    pub max_tool_labels: usize,
    /// How many distinct tenant labels a VM keeps before folding into `_other`.
    pub max_tenant_labels: usize,
    /// How many metric series a VM defines before every further sample folds
    /// into its metric's all-`_other` series.
    pub max_series: usize,
}

impl Default for FilterConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: 1024 * 1024,
            max_response_bytes: 8 * 1024 * 1024,
            allow_batches: false,
            endpoint: Endpoint::default(),
            non_mcp_traffic: NonMcpTraffic::Pass,
            routing_headers: RoutingHeaders {
                enabled: false,
                method: "x-mcp-method".into(),
                name: "x-mcp-tool".into(),
                subject: "x-mcp-subject".into(),
                tenant: "x-mcp-tenant".into(),
            },
            metrics: MetricsConfig {
                tool_labels: Vec::new(),
                max_tool_labels: 256,
                max_tenant_labels: 100,
                max_series: 4096,
            },
            auth: None,
            policy: Policy::allow_all(),
            sessions: None,
            backends: None,
            pins: None,
            warnings: Vec::new(),
        }
    }
}

// The wire shape: every field optional, unknown fields refused so a typo is an
// error rather than a silently ignored setting.
#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    /// The JSON Schema this file follows (for editors; ignored by the filter).
    #[serde(rename = "$schema")]
    #[allow(dead_code)]
    schema: Option<String>,
    /// Largest POST body accepted (default 1048576; 413 above).
    #[cfg_attr(test, schemars(range(min = 1, max = 67108864)))]
    max_request_bytes: Option<u64>,
    /// Largest JSON body / SSE event read from responses, and the bound on a
    /// listing gathered from every backend (default 8388608).
    #[cfg_attr(test, schemars(range(min = 1, max = 67108864)))]
    max_response_bytes: Option<u64>,
    /// Accept JSON-RPC batches, each element checked (default false).
    allow_batches: Option<bool>,
    /// Paths that are the MCP endpoint, with everything below them, matched on
    /// every reading a server could give a request path (default: every path).
    mcp_paths: Option<Vec<String>>,
    /// Canonical paths (exact, case-sensitive) that may pass the filter
    /// unjudged, e.g. a health check (default: none).
    public_paths: Option<Vec<String>>,
    /// Requests to other paths: `reject` (404; the default with `auth` or
    /// `backends`) or `pass` (the default otherwise).
    non_mcp_traffic: Option<NonMcpTraffic>,
    /// Request headers set from the body for routing (needs allow_on_headers_stop_iteration).
    routing_headers: Option<RawRoutingHeaders>,
    /// Bounds on metric labels.
    metrics: Option<RawMetrics>,
    /// Authentication (JWT); without it callers are anonymous and no policy applies.
    auth: Option<RawAuth>,
    /// Where the caller's tenant and workspace come from.
    tenancy: Option<RawTenancy>,
    /// Ordered authorization rules.
    policy: Option<RawPolicy>,
    /// Binding of Mcp-Session-Id to the caller.
    sessions: Option<RawSessions>,
    /// The MCP servers behind this endpoint: public names (prefixes, aliases,
    /// exposure) and routing by tool name.
    backends: Option<RawBackends>,
    /// Reviewed tool definitions (`mcp-filter pin` writes them): a listed
    /// tool whose definition changed is hidden, and refused on call.
    #[cfg_attr(test, schemars(with = "Option<crate::pins::RawToolPins>"))]
    tool_pins: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
struct RawRoutingHeaders {
    /// Hold request headers until the body is read, then set the two headers (default false).
    enabled: Option<bool>,
    /// Header carrying the JSON-RPC method (default x-mcp-method).
    method: Option<String>,
    /// Header carrying the tool, prompt or resource name (default x-mcp-tool).
    name: Option<String>,
    /// Header carrying the verified caller's `sub`, with `auth` (default x-mcp-subject; set at the headers, no hold needed).
    subject: Option<String>,
    /// Header carrying the verified caller's tenant, with `auth` and `tenancy` (default x-mcp-tenant).
    tenant: Option<String>,
}

#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
struct RawMetrics {
    /// Tool names that always get their own metric label.
    tool_labels: Option<Vec<String>>,
    /// Bound on distinct tool labels per worker (default 256).
    #[cfg_attr(test, schemars(range(min = 0, max = 10000)))]
    max_tool_labels: Option<u64>,
    /// Bound on distinct tenant labels per worker (default 100).
    #[cfg_attr(test, schemars(range(min = 0, max = 10000)))]
    max_tenant_labels: Option<u64>,
    /// Bound on the metric series a worker defines; past it, samples fold
    /// into their metric's all-`_other` series (default 4096).
    #[cfg_attr(test, schemars(range(min = 1, max = 100000)))]
    max_series: Option<u64>,
}

/// Largest body limit accepted: Envoy's own buffers make more than this unusable.
const MAX_BODY_LIMIT: u64 = 64 * 1024 * 1024;

impl FilterConfig {
    /// Parses the plugin configuration bytes. Empty input is the default
    /// (observe-only) configuration.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let trimmed = trim_ascii(bytes);
        if trimmed.is_empty() {
            return Ok(Self::default());
        }
        // Not JSON text: a protobuf-encoded google.protobuf.Struct.
        if !matches!(trimmed.first(), Some(b'{' | b'"')) {
            let json = struct_pb::decode_struct(bytes).map_err(|e| {
                invalid(
                    "",
                    format!("neither JSON nor a google.protobuf.Struct: {e}"),
                )
            })?;
            return Self::from_value(&json);
        }
        // A JSON string holding the JSON object: unwrap it once.
        if trimmed.first() == Some(&b'"') {
            let inner: String = serde_json::from_slice(trimmed)
                .map_err(|e| invalid("", format!("not valid JSON: {e}")))?;
            return Self::from_object(inner.as_bytes());
        }
        Self::from_object(trimmed)
    }

    fn from_object(bytes: &[u8]) -> Result<Self, ConfigError> {
        // A key given twice means two things to two readers: refused.
        let object = serde_json::from_slice::<crate::auth::strict_json::StrictObject>(bytes)
            .map_err(|e| invalid("", format!("not one valid JSON object: {e}")))?;
        Self::from_value(&serde_json::Value::Object(object.0))
    }

    fn from_value(value: &serde_json::Value) -> Result<Self, ConfigError> {
        let raw: RawConfig = path_de::from_value(value).map_err(|e| {
            let field = e.path.unwrap_or_default();
            invalid(&field, e.message)
        })?;
        Self::validate(raw)
    }

    fn validate(raw: RawConfig) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let max_request_bytes = body_limit(
            "max_request_bytes",
            raw.max_request_bytes,
            defaults.max_request_bytes,
        )?;
        let max_response_bytes = body_limit(
            "max_response_bytes",
            raw.max_response_bytes,
            defaults.max_response_bytes,
        )?;

        let endpoint = Endpoint {
            mcp_paths: paths("mcp_paths", raw.mcp_paths, McpPath::parse)?,
            public_paths: paths("public_paths", raw.public_paths, PublicPath::parse)?,
        };
        if let Some((i, p)) = endpoint.public_paths.iter().enumerate().find(|(_, p)| {
            endpoint.classify(p.as_str()) == crate::endpoint::PathClass::Mcp
                && !endpoint.mcp_paths.is_empty()
        }) {
            return Err(invalid(
                &format!("public_paths[{i}]"),
                format!("`{}` is at or below an MCP path", p.as_str()),
            ));
        }

        let rh = raw.routing_headers.unwrap_or_default();
        let routing_headers = RoutingHeaders {
            enabled: rh.enabled.unwrap_or(defaults.routing_headers.enabled),
            method: header_name(
                "routing_headers.method",
                rh.method,
                &defaults.routing_headers.method,
            )?,
            name: header_name(
                "routing_headers.name",
                rh.name,
                &defaults.routing_headers.name,
            )?,
            subject: header_name(
                "routing_headers.subject",
                rh.subject,
                &defaults.routing_headers.subject,
            )?,
            tenant: header_name(
                "routing_headers.tenant",
                rh.tenant,
                &defaults.routing_headers.tenant,
            )?,
        };
        let names = routing_headers.all();
        for (i, (field, name)) in ["method", "name", "subject", "tenant"]
            .iter()
            .zip(names)
            .enumerate()
        {
            if names.get(..i).unwrap_or_default().contains(&name) {
                return Err(invalid(
                    &format!("routing_headers.{field}"),
                    "must differ from the other routing_headers names",
                ));
            }
        }

        let m = raw.metrics.unwrap_or_default();
        let tool_labels = m.tool_labels.unwrap_or_default();
        for (i, tool) in tool_labels.iter().enumerate() {
            if !crate::telemetry::is_label_safe_tool_name(tool) {
                return Err(invalid(
                    &format!("metrics.tool_labels[{i}]"),
                    format!("`{tool}` is not a tool name (1-128 of [A-Za-z0-9_.-])"),
                ));
            }
        }
        // Each label is a set of Envoy stats.
        let max_tool_labels = in_range(
            "metrics.max_tool_labels",
            m.max_tool_labels,
            256,
            0..=10_000,
        )? as usize;
        let max_tenant_labels = in_range(
            "metrics.max_tenant_labels",
            m.max_tenant_labels,
            100,
            0..=10_000,
        )? as usize;
        let max_series = in_range("metrics.max_series", m.max_series, 4096, 1..=100_000)? as usize;

        let tenancy = raw.tenancy.unwrap_or_default().compile()?;
        let has_tenancy = tenancy.tenant.is_some();
        let auth = match raw.auth {
            Some(a) => Some(Rc::new(a.compile(tenancy)?)),
            None if has_tenancy || tenancy.workspace.is_some() => {
                return Err(invalid(
                    "tenancy",
                    "tenancy needs `auth` (it reads the caller)",
                ))
            }
            None => None,
        };
        let mut warnings = Vec::new();
        let policy = match raw.policy {
            Some(p) if auth.is_none() && !p.rules.is_empty() => {
                return Err(invalid(
                    "policy",
                    "a policy needs `auth`: rules are about who is calling",
                ))
            }
            Some(p) => p.compile(has_tenancy, &mut warnings)?,
            None => Policy::allow_all(),
        };
        let sessions = match raw.sessions {
            Some(_) if auth.is_none() => {
                return Err(invalid(
                    "sessions",
                    "session binding needs `auth` (a session is bound to a caller)",
                ))
            }
            Some(s) => Some(s.compile()?),
            None => None,
        };

        let backends = raw.backends.map(RawBackends::compile).transpose()?;
        if let Some(b) = &backends {
            if routing_headers.all().contains(&&b.header) {
                return Err(invalid(
                    "backends.header",
                    "must differ from the routing_headers names",
                ));
            }
        }

        let pins = match raw.tool_pins {
            None => None,
            Some(p) => {
                let names: Option<Vec<&str>> = backends
                    .as_ref()
                    .map(|b| b.servers.iter().map(|s| s.name.as_str()).collect());
                Some(crate::pins::compile(&p, names.as_deref())?)
            }
        };

        // The filter guards something a bypass would skip: who may call
        // (auth, policy, sessions), what is published (backends' exposure)
        // or which definitions were reviewed (pins).
        let guarded = auth.is_some() || backends.is_some() || pins.is_some();
        if guarded
            && raw.non_mcp_traffic == Some(NonMcpTraffic::Pass)
            && !endpoint.mcp_paths.is_empty()
        {
            warnings.push(
                "non_mcp_traffic: pass lets requests to paths other than mcp_paths reach the \
                 upstream unjudged (no authentication, policy or listing filter): make sure \
                 Envoy routes no such path to an MCP server, or list the paths that may pass \
                 in public_paths and drop non_mcp_traffic"
                    .to_string(),
            );
        }
        #[cfg_attr(target_arch = "wasm32", allow(unused_mut))]
        let mut config = Self {
            auth,
            policy,
            sessions,
            backends,
            pins,
            max_request_bytes,
            max_response_bytes,
            allow_batches: raw.allow_batches.unwrap_or(defaults.allow_batches),
            non_mcp_traffic: raw.non_mcp_traffic.unwrap_or(if guarded {
                NonMcpTraffic::Reject
            } else {
                NonMcpTraffic::Pass
            }),
            warnings,
            endpoint,
            routing_headers,
            metrics: MetricsConfig {
                tool_labels,
                max_tool_labels,
                max_tenant_labels,
                max_series,
            },
        };
        // Lints across sections: printed by `mcp-filter check` and logged by
        // the dynamic module at load; left out of the .wasm (its size budget).
        #[cfg(not(target_arch = "wasm32"))]
        {
            let more = lints::cross_section(&config);
            config.warnings.extend(more);
        }
        Ok(config)
    }

    /// Whether the filter guards anything a request passing unjudged would
    /// skip (authentication, policy, session binding, backends' exposure, pins).
    pub fn guarded(&self) -> bool {
        self.auth.is_some() || self.backends.is_some() || self.pins.is_some()
    }
}

fn paths<T>(
    field: &str,
    value: Option<Vec<String>>,
    parse: fn(&str) -> Result<T, &'static str>,
) -> Result<Vec<T>, ConfigError> {
    value
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, p)| {
            parse(p).map_err(|why| invalid(&format!("{field}[{i}]"), format!("`{p}` {why}")))
        })
        .collect()
}

fn body_limit(field: &str, value: Option<u64>, default: usize) -> Result<usize, ConfigError> {
    match value {
        None => Ok(default),
        Some(0) => Err(invalid(field, "must be greater than 0")),
        Some(n) if n > MAX_BODY_LIMIT => Err(invalid(
            field,
            format!("{n} is above the limit of {MAX_BODY_LIMIT} bytes"),
        )),
        Some(n) => Ok(n as usize),
    }
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    bytes.get(start..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_observe_only_defaults() {
        assert_eq!(
            FilterConfig::from_json(b"").unwrap(),
            FilterConfig::default()
        );
        assert_eq!(
            FilterConfig::from_json(b" {} ").unwrap(),
            FilterConfig::default()
        );
        assert!(!FilterConfig::default().routing_headers.enabled);
        assert_eq!(FilterConfig::default().max_request_bytes, 1024 * 1024);
    }

    #[test]
    fn string_value_holding_json_is_unwrapped_once() {
        let cfg = FilterConfig::from_json(br#""{\"allow_batches\":true}""#).unwrap();
        assert!(cfg.allow_batches);
    }

    #[test]
    fn a_protobuf_struct_reads_like_the_same_json() {
        let json =
            serde_json::json!({"max_request_bytes": 4096, "routing_headers": {"enabled": true}});
        let bytes = struct_pb::tests::encode_struct(json.as_object().unwrap());
        let from_struct = FilterConfig::from_json(&bytes).unwrap();
        assert_eq!(
            from_struct,
            FilterConfig::from_json(json.to_string().as_bytes()).unwrap()
        );
        assert_eq!(from_struct.max_request_bytes, 4096);
    }

    #[test]
    fn unknown_field_is_refused_with_its_name() {
        let err = FilterConfig::from_json(br#"{"max_request_byte": 5}"#).unwrap_err();
        assert!(err.to_string().contains("max_request_byte"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_nested_field() {
        let err =
            FilterConfig::from_json(br#"{"routing_headers": {"enabled": "yes"}}"#).unwrap_err();
        assert_eq!(err.field, "routing_headers.enabled");
    }

    #[test]
    fn zero_and_huge_limits_are_refused() {
        let err = FilterConfig::from_json(br#"{"max_request_bytes": 0}"#).unwrap_err();
        assert_eq!(err.field, "max_request_bytes");
        let err = FilterConfig::from_json(br#"{"max_response_bytes": 99999999999}"#).unwrap_err();
        assert_eq!(err.field, "max_response_bytes");
    }

    #[test]
    fn bad_header_name_is_refused() {
        let err =
            FilterConfig::from_json(br#"{"routing_headers": {"name": "X Tool"}}"#).unwrap_err();
        assert_eq!(err.field, "routing_headers.name");
    }

    #[test]
    fn bad_tool_label_is_refused_with_its_index() {
        let err = FilterConfig::from_json(br#"{"metrics": {"tool_labels": ["ok", "no spaces"]}}"#)
            .unwrap_err();
        assert_eq!(err.field, "metrics.tool_labels[1]");
    }

    /// A claim path that names nothing reachable is refused where it is
    /// written, not left to match nobody.
    #[test]
    fn a_claim_path_with_an_empty_name_is_refused_with_its_field() {
        let err =
            FilterConfig::from_json(br#"{"tenancy": {"tenant_claim": "org..id"}}"#).unwrap_err();
        assert_eq!(err.field, "tenancy.tenant_claim");
        let err =
            FilterConfig::from_json(br#"{"tenancy": {"workspace_claim": "ws."}}"#).unwrap_err();
        assert_eq!(err.field, "tenancy.workspace_claim");
    }

    #[test]
    fn a_schema_reference_for_editors_is_accepted() {
        let cfg = FilterConfig::from_json(br#"{"$schema": "./config.schema.json"}"#).unwrap();
        assert_eq!(cfg, FilterConfig::default());
    }

    #[test]
    fn trailing_garbage_after_config_is_refused() {
        assert!(FilterConfig::from_json(br#"{} {}"#).is_err());
    }

    #[test]
    fn endpoint_paths_are_validated_and_name_the_field() {
        use crate::endpoint::PathClass;
        let cfg = FilterConfig::from_json(br#"{"mcp_paths": ["/mcp"]}"#).unwrap();
        assert_eq!(cfg.endpoint.classify("/mcp/"), PathClass::Mcp);
        assert_eq!(cfg.endpoint.classify("/other"), PathClass::Other);
        assert_eq!(
            FilterConfig::default().endpoint.classify("/anything"),
            PathClass::Mcp
        );
        for (json, field) in [
            (r#"{"mcp_paths": ["mcp"]}"#, "mcp_paths[0]"),
            (r#"{"mcp_paths": ["/mcp/"]}"#, "mcp_paths[0]"),
            (r#"{"public_paths": ["/a", "/b?x"]}"#, "public_paths[1]"),
            (
                r#"{"mcp_paths": ["/mcp"], "public_paths": ["/MCP/health"]}"#,
                "public_paths[0]",
            ),
        ] {
            let err = FilterConfig::from_json(json.as_bytes()).unwrap_err();
            assert_eq!(err.field, field, "{json}: {err}");
        }
    }

    #[test]
    fn numbers_outside_their_documented_range_are_refused_not_clamped() {
        let auth = |extra: &str| {
            format!(
                r#"{{"auth": {{"issuers": ["https://idp"], "audiences": ["mcp"],
                    "remote_jwks": {{"cluster": "idp", "path": "/jwks"{extra}}},
                    "resource_metadata": {{"resource": "https://m/mcp", "authorization_servers": ["https://idp"]}}}}}}"#
            )
        };
        for (json, field) in [
            (
                r#"{"metrics": {"max_tenant_labels": 10001}}"#.to_string(),
                "metrics.max_tenant_labels",
            ),
            (
                r#"{"metrics": {"max_tool_labels": 18446744073709551615}}"#.to_string(),
                "metrics.max_tool_labels",
            ),
            (
                auth(r#", "refresh_seconds": 18446744073709551615"#),
                "auth.remote_jwks.refresh_seconds",
            ),
            (
                auth(r#", "refresh_seconds": 0"#),
                "auth.remote_jwks.refresh_seconds",
            ),
            (
                auth(r#", "refresh_seconds": 60, "min_refetch_seconds": 61"#),
                "auth.remote_jwks.min_refetch_seconds",
            ),
            (auth(r#", "timeout_ms": 10"#), "auth.remote_jwks.timeout_ms"),
        ] {
            let err = FilterConfig::from_json(json.as_bytes()).unwrap_err();
            assert_eq!(err.field, field, "{json}: {err}");
            assert!(err.message.contains("outside"), "{err}");
        }
        // The schema states the same ranges.
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../config.schema.json")).unwrap();
        let text = schema.to_string();
        assert!(text.contains(r#""maximum":10000"#), "{text}");
        assert!(text.contains(r#""maximum":86400"#));
    }

    #[test]
    fn guarding_anything_rejects_other_paths_by_default() {
        let auth = r#""auth": {"issuers": ["https://idp"], "audiences": ["mcp"], "shared_secret": {"base64": "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk="}, "resource_metadata": {"resource": "https://m/mcp", "authorization_servers": ["https://idp"]}}"#;
        let cfg = FilterConfig::from_json(br#"{"mcp_paths": ["/mcp"]}"#).unwrap();
        assert_eq!(cfg.non_mcp_traffic, NonMcpTraffic::Pass);
        assert!(!cfg.guarded());
        let cfg =
            FilterConfig::from_json(format!(r#"{{"mcp_paths": ["/mcp"], {auth}}}"#).as_bytes())
                .unwrap();
        assert_eq!(cfg.non_mcp_traffic, NonMcpTraffic::Reject);
        assert!(cfg.warnings.is_empty());
        let cfg = FilterConfig::from_json(
            format!(r#"{{"mcp_paths": ["/mcp"], "non_mcp_traffic": "pass", {auth}}}"#).as_bytes(),
        )
        .unwrap();
        assert_eq!(cfg.non_mcp_traffic, NonMcpTraffic::Pass);
        assert!(
            cfg.warnings[0].contains("public_paths"),
            "{:?}",
            cfg.warnings
        );
        let cfg = FilterConfig::from_json(
            br#"{"mcp_paths": ["/mcp"], "backends": {"servers": [{"name": "a", "cluster": "a"}]}}"#,
        )
        .unwrap();
        assert_eq!(cfg.non_mcp_traffic, NonMcpTraffic::Reject);
    }
}

#[cfg(test)]
mod shipped_examples {
    use super::FilterConfig;

    /// The JSON block under `value: |` in a YAML file (the filter's configuration).
    pub fn embedded_configs(yaml: &str) -> Vec<String> {
        let mut out = Vec::new();
        let lines: Vec<&str> = yaml.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim_end().ends_with("value: |") {
                let indent = line.len() - line.trim_start().len();
                let block: Vec<&str> = lines[i + 1..]
                    .iter()
                    .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                    .copied()
                    .collect();
                out.push(block.join("\n"));
            }
        }
        out
    }

    #[test]
    fn the_shipped_envoy_yaml_carries_a_configuration_the_filter_accepts() {
        let yaml = include_str!("../../envoy.yaml");
        let configs = embedded_configs(yaml);
        assert_eq!(configs.len(), 1);
        let config = FilterConfig::from_json(configs[0].as_bytes()).unwrap();
        assert!(config.auth.is_some());
        assert!(config.policy.has_rules());
        assert!(config.sessions.is_some());
    }

    /// Two artifacts, one configuration: the dynamic-module example carries
    /// exactly the wasm example's.
    #[test]
    fn the_dynamic_module_example_carries_the_same_configuration() {
        let wasm = embedded_configs(include_str!("../../envoy.yaml"));
        let module = embedded_configs(include_str!("../../examples/dynamic-module/envoy.yaml"));
        assert_eq!(module.len(), 1);
        let parse = |c: &str| serde_json::from_str::<serde_json::Value>(c).unwrap();
        assert_eq!(parse(&module[0]), parse(&wasm[0]));
    }
}

#[cfg(test)]
mod schema {
    /// The JSON Schema of the plugin configuration, for editors and CI checks.
    pub fn generate() -> String {
        let mut schema = schemars::schema_for!(super::RawConfig);
        schema.insert("title".into(), "mcp-filter plugin configuration".into());
        let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
        text.push('\n');
        text
    }

    /// `config.schema.json` is generated from the configuration types; this
    /// fails when it is stale (`UPDATE_SCHEMA=1 cargo test -p mcp-filter schema` rewrites it).
    #[test]
    fn the_committed_json_schema_matches_the_configuration_types() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config.schema.json");
        let fresh = generate();
        if std::env::var("UPDATE_SCHEMA").is_ok_and(|v| v == "1") {
            std::fs::write(path, &fresh).unwrap();
        }
        let committed = include_str!("../../config.schema.json");
        assert!(
            committed == fresh,
            "config.schema.json is stale: run UPDATE_SCHEMA=1 cargo test -p mcp-filter schema"
        );
    }

    #[test]
    fn the_schema_refuses_unknown_fields_like_the_parser() {
        let schema: serde_json::Value = serde_json::from_str(&generate()).unwrap();
        assert_eq!(schema["additionalProperties"], false);
        assert!(schema["properties"]["auth"].is_object());
        assert!(schema["properties"]["policy"].is_object());
    }
}
