//! Authentication: who is calling. A bearer JWT verified here (keys inline,
//! PEM, an explicit shared secret, or a remote JWKS the shell fetches), or the
//! claims Envoy's own `jwt_authn` filter already verified. The result is a
//! [`Caller`] for the policy; nothing here knows proxy-wasm.
//!
//! Fail closed: no caller without a verified token read against a known
//! clock. A clock that cannot be read accepts no token, not even a cached
//! one; keys that cannot be had answer 503, never "let it through".

mod cache;
pub mod challenge;
pub mod jwks_refresh;
pub mod keys;
pub(crate) mod strict_json;
pub mod token;
pub mod verifiers;

use crate::config::{in_range, invalid, ConfigError};
use crate::policy::Caller;
use base64::Engine;
use cache::TokenCache;
use jsonwebtoken::Algorithm;
use jwks_refresh::RefreshSchedule;
use keys::{KeySet, DEFAULT_ALGORITHMS};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::rc::Rc;
use std::str::FromStr;
use token::{AuthFailure, TokenRules};

/// Where the caller's claims come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimsSource {
    /// `Authorization: Bearer <JWT>`, verified by the filter.
    Bearer,
    /// Dynamic metadata Envoy's `jwt_authn` filter wrote (`payload_in_metadata`).
    JwtAuthn { namespace: String, key: String },
}

/// A remote JWKS fetched through an Envoy cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJwks {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub refresh_ms: u64,
    pub min_refetch_ms: u64,
    pub timeout_ms: u64,
}

/// RFC 9728 protected resource metadata and the challenge that points at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceMetadata {
    pub resource: String,
    /// Where the document is served (the `resource_metadata` of challenges).
    pub url: String,
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Vec<String>,
    /// `scope=` of the 401 challenge (what a client should ask for first).
    pub challenge_scopes: Vec<String>,
    pub resource_documentation: Option<String>,
    /// Request paths the filter answers with the document.
    pub paths: Vec<String>,
}

/// Where tenant and workspace come from: a claim (dotted path) or a header
/// set by something the operator trusts (never the client: strip it upstream of us).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeSource {
    Claim(String),
    Header(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tenancy {
    pub tenant: Option<AttributeSource>,
    pub workspace: Option<AttributeSource>,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub source: ClaimsSource,
    pub rules: TokenRules,
    /// Keys from configuration (inline JWKS, PEM, shared secret).
    pub static_keys: KeySet,
    pub remote_jwks: Option<RemoteJwks>,
    pub cache_entries: usize,
    /// Forward the client's `Authorization` upstream (the spec forbids token
    /// passthrough; off by default).
    pub forward_token: bool,
    /// An `Authorization` value to send upstream instead.
    pub upstream_authorization: Option<String>,
    pub metadata: ResourceMetadata,
    pub tenancy: Tenancy,
}

impl PartialEq for AuthConfig {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
            && self.rules == other.rules
            && self.remote_jwks == other.remote_jwks
            && self.metadata == other.metadata
            && self.tenancy == other.tenancy
            && self.forward_token == other.forward_token
            && self.static_keys.keys.len() == other.static_keys.keys.len()
    }
}

/// The outcome of authenticating one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Authenticated {
    Caller(Rc<Caller>),
    Failed(AuthFailure),
    /// The token names a key not loaded yet and a JWKS fetch may find it:
    /// the shell fetches, then asks again.
    NeedKeys,
}

/// Per-VM authentication state: keys (static and fetched) and the cache of
/// verified tokens. It accelerates only: every replica given the same
/// configuration and keys decides the same.
pub struct Authenticator {
    pub config: Rc<AuthConfig>,
    remote_keys: KeySet,
    keys: KeySet,
    cache: TokenCache<Caller>,
    pub schedule: Option<RefreshSchedule>,
}

impl Authenticator {
    pub fn new(config: Rc<AuthConfig>) -> Self {
        let schedule = config.remote_jwks.as_ref().map(|r| {
            RefreshSchedule::new(r.refresh_ms, r.min_refetch_ms).with_timeout(r.timeout_ms)
        });
        Self {
            keys: config.static_keys.clone(),
            remote_keys: KeySet::default(),
            cache: TokenCache::new(config.cache_entries),
            schedule,
            config,
        }
    }

    pub fn has_keys(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Installs a fetched JWKS; on error the keys already loaded stay.
    pub fn install_remote_jwks(&mut self, body: &[u8], now_ms: u64) -> Result<usize, String> {
        let parsed = KeySet::from_jwks(body, &self.config.rules.algorithms);
        let schedule = self.schedule.as_mut();
        match parsed {
            Ok(set) => {
                let n = set.keys.len();
                self.remote_keys = set;
                let mut all = self.config.static_keys.clone();
                all.keys.extend(self.remote_keys.keys.iter().cloned());
                self.keys = all;
                // A removed key must stop working now, not when cached tokens expire.
                self.cache.clear();
                if let Some(s) = schedule {
                    s.succeeded(now_ms);
                }
                Ok(n)
            }
            Err(e) => {
                if let Some(s) = schedule {
                    s.failed();
                }
                Err(e)
            }
        }
    }

    pub fn fetch_failed(&mut self) {
        if let Some(s) = self.schedule.as_mut() {
            s.failed();
        }
    }

    /// Authenticates a bearer token at `now_ms`, a fetch for an unknown key allowed.
    pub fn authenticate_bearer(
        &mut self,
        authorization: Option<&str>,
        headers: &[(String, String)],
        now_ms: u64,
    ) -> Authenticated {
        self.authenticate_bearer_with(authorization, headers, Some(now_ms), true)
    }

    /// Authenticates a bearer token at `now_ms` (`None`: the clock could
    /// not be read, and nothing is accepted). `may_wait`: the request can
    /// wait for a JWKS fetch (else an unknown key is a failure now).
    pub fn authenticate_bearer_with(
        &mut self,
        authorization: Option<&str>,
        headers: &[(String, String)],
        now_ms: Option<u64>,
        may_wait: bool,
    ) -> Authenticated {
        let Some(now_ms) = now_ms else {
            return Authenticated::Failed(AuthFailure::NoClock);
        };
        let now = now_ms / 1000;
        let token = match token::bearer_token(authorization) {
            Ok(t) => t,
            Err(f) => return Authenticated::Failed(f),
        };
        if let Some(caller) = self.cache.get(token, now) {
            // Header-sourced attributes are per request, not per token.
            return Authenticated::Caller(self.with_header_attributes(caller, headers));
        }
        match token::verify(token, &self.keys, &self.config.rules, now) {
            Ok(verified) => {
                let caller = Rc::new(caller_from_claims(verified.claims, &self.config.tenancy));
                self.cache
                    .insert(token, caller.clone(), verified.expires_at);
                Authenticated::Caller(self.with_header_attributes(caller, headers))
            }
            Err(AuthFailure::UnknownKey | AuthFailure::NoKeys)
                if may_wait
                    && self
                        .schedule
                        .as_ref()
                        .is_some_and(|s| s.may_wait_for_keys(now_ms)) =>
            {
                Authenticated::NeedKeys
            }
            Err(f) => Authenticated::Failed(f),
        }
    }

    /// Claims another filter verified (`jwt_authn`), as JSON.
    pub fn authenticate_claims(
        &self,
        claims: Option<&[u8]>,
        headers: &[(String, String)],
    ) -> Authenticated {
        let Some(bytes) = claims else {
            return Authenticated::Failed(AuthFailure::MissingToken);
        };
        match serde_json::from_slice::<strict_json::StrictObject>(bytes) {
            Ok(obj) if matches!(obj.0.get("sub"), Some(Value::String(s)) if !s.is_empty()) => {
                let caller = Rc::new(caller_from_claims(obj.0, &self.config.tenancy));
                Authenticated::Caller(self.with_header_attributes(caller, headers))
            }
            Ok(_) => Authenticated::Failed(AuthFailure::MissingClaim("sub".into())),
            Err(_) => Authenticated::Failed(AuthFailure::Malformed("unreadable claims")),
        }
    }

    fn with_header_attributes(
        &self,
        caller: Rc<Caller>,
        headers: &[(String, String)],
    ) -> Rc<Caller> {
        let from_header = |source: &Option<AttributeSource>| match source {
            Some(AttributeSource::Header(name)) => Some(
                headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim().to_string())
                    .filter(|v| !v.is_empty()),
            ),
            _ => None,
        };
        let tenant = from_header(&self.config.tenancy.tenant);
        let workspace = from_header(&self.config.tenancy.workspace);
        if tenant.is_none() && workspace.is_none() {
            return caller;
        }
        let mut owned = (*caller).clone();
        if let Some(t) = tenant {
            owned.tenant = t;
        }
        if let Some(w) = workspace {
            owned.workspace = w;
        }
        Rc::new(owned)
    }
}

/// The claims `jwt_authn` wrote under `key` (its `payload_in_metadata`) in
/// its `namespace` of the request's dynamic metadata (the serialized
/// `Metadata` message Envoy hands over), as JSON for
/// [`Authenticator::authenticate_claims`].
pub fn claims_from_metadata(metadata: &[u8], namespace: &str, key: &str) -> Option<Vec<u8>> {
    let value = crate::config::struct_pb::decode_metadata_namespace(metadata, namespace).ok()??;
    value
        .get(key)
        .filter(|v| v.is_object())
        .map(|v| v.to_string().into_bytes())
}

/// Builds the policy's view of a caller from verified claims.
pub fn caller_from_claims(claims: Map<String, Value>, tenancy: &Tenancy) -> Caller {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
    let mut scopes: Vec<String> = match claims.get("scope") {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    };
    match claims.get("scp") {
        Some(Value::Array(items)) => {
            scopes.extend(items.iter().filter_map(Value::as_str).map(str::to_string))
        }
        Some(Value::String(s)) => scopes.extend(s.split_whitespace().map(str::to_string)),
        _ => {}
    }
    let claim_attr = |source: &Option<AttributeSource>| match source {
        Some(AttributeSource::Claim(path)) => claim_string(&claims, path),
        _ => None,
    };
    Caller {
        issuer: text(claims.get("iss")),
        subject: text(claims.get("sub")),
        tenant: claim_attr(&tenancy.tenant),
        workspace: claim_attr(&tenancy.workspace),
        scopes,
        claims: claims.clone(),
    }
}

/// A string claim at a dotted path.
fn claim_string(claims: &Map<String, Value>, path: &str) -> Option<String> {
    crate::policy::claim_at(claims, path)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

// ---- configuration -----------------------------------------------------------

#[derive(Debug, Deserialize, Default)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum RawSource {
    #[default]
    Bearer,
    JwtAuthn,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    #[serde(default)]
    source: RawSource,
    #[serde(default)]
    issuers: Vec<String>,
    #[serde(default)]
    audiences: Vec<String>,
    algorithms: Option<Vec<String>>,
    /// An inline JWKS document (object).
    jwks: Option<Value>,
    #[serde(default)]
    pem_keys: Vec<RawPemKey>,
    shared_secret: Option<RawSecret>,
    remote_jwks: Option<RawRemoteJwks>,
    /// Clock skew allowed on `exp`/`nbf` (default 60).
    #[cfg_attr(test, schemars(range(min = 0, max = 600)))]
    leeway_seconds: Option<u64>,
    #[serde(default)]
    required_claims: Vec<String>,
    /// Longest bearer token read (default 8192).
    #[cfg_attr(test, schemars(range(min = 256, max = 65536)))]
    max_token_bytes: Option<u64>,
    /// Verified tokens cached per worker (default 1024).
    #[cfg_attr(test, schemars(range(min = 0, max = 100000)))]
    cache_entries: Option<u64>,
    #[serde(default)]
    forward_token: bool,
    upstream_authorization: Option<String>,
    jwt_authn: Option<RawJwtAuthn>,
    resource_metadata: RawResourceMetadata,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct RawPemKey {
    kid: Option<String>,
    pem: String,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct RawSecret {
    kid: Option<String>,
    /// The secret, base64 (standard alphabet).
    base64: String,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct RawRemoteJwks {
    cluster: String,
    authority: Option<String>,
    path: String,
    /// How often the keys are fetched again (default 300).
    #[cfg_attr(test, schemars(range(min = 1, max = 86400)))]
    refresh_seconds: Option<u64>,
    /// Least time between fetches for an unknown `kid` (default 30, at most refresh_seconds).
    #[cfg_attr(test, schemars(range(min = 1, max = 86400)))]
    min_refetch_seconds: Option<u64>,
    /// How long a fetch may take (default 5000).
    #[cfg_attr(test, schemars(range(min = 100, max = 60000)))]
    timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct RawJwtAuthn {
    /// Dynamic metadata namespace (default `envoy.filters.http.jwt_authn`).
    namespace: Option<String>,
    /// The `payload_in_metadata` key the provider writes.
    payload_key: String,
}

#[derive(Debug, Deserialize, Default)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct RawResourceMetadata {
    resource: String,
    url: Option<String>,
    #[serde(default)]
    authorization_servers: Vec<String>,
    #[serde(default)]
    scopes_supported: Vec<String>,
    #[serde(default)]
    challenge_scopes: Vec<String>,
    resource_documentation: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawTenancy {
    tenant_claim: Option<String>,
    tenant_header: Option<String>,
    workspace_claim: Option<String>,
    workspace_header: Option<String>,
}

const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// Splits `https://host[:port]/path` into origin and path.
fn origin_and_path(url: &str) -> Option<(&str, &str)> {
    let scheme_end = url.find("://")? + 3;
    let rest = url.get(scheme_end..)?;
    let path_at = rest.find('/').map_or(url.len(), |i| scheme_end + i);
    let origin = url.get(..path_at)?;
    let path = url.get(path_at..)?;
    (origin.len() > scheme_end && !path.contains(['?', '#'])).then_some((origin, path))
}

impl RawTenancy {
    pub fn compile(self) -> Result<Tenancy, ConfigError> {
        let pick = |claim: Option<String>, header: Option<String>, what: &str| match (claim, header)
        {
            (Some(_), Some(_)) => Err(invalid(
                &format!("tenancy.{what}_header"),
                format!("give either {what}_claim or {what}_header, not both"),
            )),
            (Some(c), None) if !c.is_empty() => Ok(Some(AttributeSource::Claim(c))),
            (None, Some(h)) if !h.is_empty() => {
                Ok(Some(AttributeSource::Header(h.to_ascii_lowercase())))
            }
            (None, None) => Ok(None),
            _ => Err(invalid(
                &format!("tenancy.{what}_claim"),
                "must not be empty",
            )),
        };
        Ok(Tenancy {
            tenant: pick(self.tenant_claim, self.tenant_header, "tenant")?,
            workspace: pick(self.workspace_claim, self.workspace_header, "workspace")?,
        })
    }
}

fn non_empty_list(field: &str, list: &[String]) -> Result<(), ConfigError> {
    if list.is_empty() || list.iter().any(String::is_empty) {
        return Err(invalid(field, "needs at least one non-empty value"));
    }
    Ok(())
}

impl RawAuth {
    pub fn compile(self, tenancy: Tenancy) -> Result<AuthConfig, ConfigError> {
        let source = match self.source {
            RawSource::Bearer => ClaimsSource::Bearer,
            RawSource::JwtAuthn => {
                let j = self.jwt_authn.ok_or_else(|| {
                    invalid(
                        "auth.jwt_authn",
                        "`source: jwt_authn` needs `jwt_authn.payload_key`",
                    )
                })?;
                ClaimsSource::JwtAuthn {
                    namespace: j
                        .namespace
                        .unwrap_or_else(|| "envoy.filters.http.jwt_authn".into()),
                    key: j.payload_key,
                }
            }
        };
        let bearer = source == ClaimsSource::Bearer;
        if bearer {
            non_empty_list("auth.issuers", &self.issuers)?;
            non_empty_list("auth.audiences", &self.audiences)?;
        }

        let algorithms = match self.algorithms {
            None => {
                let mut algs = DEFAULT_ALGORITHMS.to_vec();
                if self.shared_secret.is_some() {
                    algs.extend([Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]);
                }
                algs
            }
            Some(names) => {
                let mut algs = Vec::new();
                for (i, name) in names.iter().enumerate() {
                    let alg = Algorithm::from_str(name).map_err(|_| {
                        invalid(
                            &format!("auth.algorithms[{i}]"),
                            format!("`{name}` is not a JWS algorithm this filter verifies"),
                        )
                    })?;
                    if keys::is_hmac(alg) && self.shared_secret.is_none() {
                        return Err(invalid(
                            &format!("auth.algorithms[{i}]"),
                            format!("{name} needs `auth.shared_secret`"),
                        ));
                    }
                    algs.push(alg);
                }
                algs
            }
        };

        let mut static_keys = KeySet::default();
        if let Some(jwks) = &self.jwks {
            let set = KeySet::from_jwks(jwks.to_string().as_bytes(), &algorithms)
                .map_err(|e| invalid("auth.jwks", e))?;
            static_keys.keys.extend(set.keys);
        }
        for (i, pem) in self.pem_keys.into_iter().enumerate() {
            let key = KeySet::pem_key(pem.kid, &pem.pem, &algorithms)
                .map_err(|e| invalid(&format!("auth.pem_keys[{i}].pem"), e))?;
            static_keys.keys.push(key);
        }
        if let Some(secret) = self.shared_secret {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(secret.base64.trim())
                .map_err(|e| invalid("auth.shared_secret.base64", format!("not base64: {e}")))?;
            if bytes.len() < 32 {
                return Err(invalid(
                    "auth.shared_secret.base64",
                    "an HMAC secret needs at least 32 bytes",
                ));
            }
            static_keys
                .keys
                .push(KeySet::shared_secret(secret.kid, &bytes, &algorithms));
        }

        let remote_jwks = match self.remote_jwks {
            None => None,
            Some(r) => {
                if r.cluster.is_empty() {
                    return Err(invalid("auth.remote_jwks.cluster", "must not be empty"));
                }
                if !r.path.starts_with('/') {
                    return Err(invalid("auth.remote_jwks.path", "must start with `/`"));
                }
                let refresh = in_range(
                    "auth.remote_jwks.refresh_seconds",
                    r.refresh_seconds,
                    300,
                    1..=86_400,
                )?;
                let min_refetch = in_range(
                    "auth.remote_jwks.min_refetch_seconds",
                    r.min_refetch_seconds,
                    30.min(refresh),
                    1..=refresh,
                )?;
                let timeout_ms = in_range(
                    "auth.remote_jwks.timeout_ms",
                    r.timeout_ms,
                    5000,
                    100..=60_000,
                )?;
                Some(RemoteJwks {
                    authority: r.authority.unwrap_or_else(|| r.cluster.clone()),
                    cluster: r.cluster,
                    path: r.path,
                    // In range, so no overflow: at most 86,400,000.
                    refresh_ms: refresh * 1000,
                    // At least a second: a refetch is never a loop.
                    min_refetch_ms: min_refetch * 1000,
                    timeout_ms,
                })
            }
        };
        if bearer && static_keys.is_empty() && remote_jwks.is_none() {
            return Err(invalid(
                "auth",
                "bearer authentication needs keys: `jwks`, `pem_keys`, `shared_secret` or `remote_jwks`",
            ));
        }

        let rm = self.resource_metadata;
        let Some((origin, path)) = origin_and_path(&rm.resource) else {
            return Err(invalid(
                "auth.resource_metadata.resource",
                "must be an absolute URL without query or fragment (RFC 8707)",
            ));
        };
        let path = if path == "/" { "" } else { path };
        let url = rm
            .url
            .unwrap_or_else(|| format!("{origin}{WELL_KNOWN}{path}"));
        let mut paths = vec![WELL_KNOWN.to_string()];
        if !path.is_empty() {
            paths.push(format!("{WELL_KNOWN}{path}"));
        }
        if let Some((_, own)) = origin_and_path(&url) {
            if !paths.iter().any(|p| p == own) {
                paths.push(own.to_string());
            }
        }
        if bearer {
            non_empty_list(
                "auth.resource_metadata.authorization_servers",
                &rm.authorization_servers,
            )?;
        }
        if let Some(ua) = &self.upstream_authorization {
            if ua.bytes().any(|b| b.is_ascii_control()) {
                return Err(invalid(
                    "auth.upstream_authorization",
                    "must be a header value",
                ));
            }
        }

        Ok(AuthConfig {
            source,
            rules: TokenRules {
                issuers: self.issuers,
                audiences: self.audiences,
                algorithms,
                leeway_seconds: in_range("auth.leeway_seconds", self.leeway_seconds, 60, 0..=600)?,
                required_claims: self.required_claims,
                max_token_bytes: in_range(
                    "auth.max_token_bytes",
                    self.max_token_bytes,
                    8192,
                    256..=65_536,
                )? as usize,
            },
            static_keys,
            remote_jwks,
            cache_entries: in_range("auth.cache_entries", self.cache_entries, 1024, 0..=100_000)?
                as usize,
            forward_token: self.forward_token,
            upstream_authorization: self.upstream_authorization,
            metadata: ResourceMetadata {
                resource: rm.resource,
                url,
                authorization_servers: rm.authorization_servers,
                scopes_supported: rm.scopes_supported,
                challenge_scopes: rm.challenge_scopes,
                resource_documentation: rm.resource_documentation,
                paths,
            },
            tenancy,
        })
    }
}

#[cfg(test)]
mod tests;
