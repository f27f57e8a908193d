//! The `auth` and `tenancy` sections of the configuration: their wire
//! shape (every field optional, unknown fields refused) and their
//! compilation into [`AuthConfig`] and [`Tenancy`], every error naming its
//! field.
//!
//! Must not: authenticate anything (the parent module does), or accept a
//! setting that would let a token through unverified (no keys and no
//! `jwt_authn`, an algorithm without a key type, a secret too short).

use super::keys::{self, KeySet, DEFAULT_ALGORITHMS};
use super::token::TokenRules;
use super::{AttributeSource, AuthConfig, ClaimsSource, RemoteJwks, ResourceMetadata, Tenancy};
use crate::config_error::{in_range, invalid, ConfigError};
use crate::policy::ClaimPath;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::Value;
use std::str::FromStr;

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
        let pick =
            |claim: Option<String>, header: Option<String>, what: &str| match (claim, header) {
                (Some(_), Some(_)) => Err(invalid(
                    &format!("tenancy.{what}_header"),
                    format!("give either {what}_claim or {what}_header, not both"),
                )),
                (Some(c), None) if !c.is_empty() => Ok(Some(AttributeSource::Claim(
                    ClaimPath::parse(&format!("tenancy.{what}_claim"), c)?,
                ))),
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
