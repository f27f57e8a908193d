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

use crate::policy::{Caller, ClaimPath};
use cache::TokenCache;
use jwks_refresh::RefreshSchedule;
use keys::KeySet;
use serde_json::{Map, Value};
use std::rc::Rc;
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
    Claim(ClaimPath),
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
    let value = crate::struct_pb::decode_metadata_namespace(metadata, namespace).ok()??;
    value
        .get(key)
        .filter(|v| v.is_object())
        .map(|v| v.to_string().into_bytes())
}

/// Builds the policy's view of a caller from verified claims.
pub fn caller_from_claims(claims: Map<String, Value>, tenancy: &Tenancy) -> Caller {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
    // `scope` (RFC 9068: space-separated) and `scp`, each as text or array.
    let mut scopes: Vec<String> = Vec::new();
    for claim in ["scope", "scp"] {
        match claims.get(claim) {
            Some(Value::Array(items)) => {
                scopes.extend(items.iter().filter_map(Value::as_str).map(str::to_string))
            }
            Some(Value::String(s)) => scopes.extend(s.split_whitespace().map(str::to_string)),
            _ => {}
        }
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
fn claim_string(claims: &Map<String, Value>, path: &ClaimPath) -> Option<String> {
    path.lookup(claims)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

mod settings;
pub use settings::{RawAuth, RawSource, RawTenancy};

#[cfg(test)]
mod tests;
