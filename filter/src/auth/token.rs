//! Bearer token verification: signature with `jsonwebtoken`, then the claims
//! checks against an injected clock (the filter's clock is Envoy's, not the
//! VM's). Every failure is a [`AuthFailure`] the caller maps to a 401 (or a
//! 503 when the filter itself cannot judge: no keys, no clock).
//!
//! Fail closed: whatever this module does not fully understand is refused,
//! never skipped. A header naming extensions (`crit`, `b64`) we do not
//! implement, a key repeated in the header or the claims, a signature in a
//! non-canonical form, a time claim that is not a plausible date: each is a
//! refusal, not an assumption.

use super::keys::KeySet;
use super::strict_json::StrictObject;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, Algorithm, Validation};
use serde_json::{Map, Value};

/// Why a request is not authenticated. Labels are metric-safe; descriptions
/// go into `WWW-Authenticate: error_description` and never echo the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization: Bearer` header (RFC 6750: the challenge carries no error code).
    MissingToken,
    Malformed(&'static str),
    TooLarge,
    AlgorithmNotAllowed,
    /// The token's `kid` is not in the key set (a refresh may find it).
    UnknownKey,
    /// No key has been loaded yet (remote JWKS not fetched).
    NoKeys,
    /// The host's clock could not be read: nothing time-bound can be checked.
    NoClock,
    BadSignature,
    Expired,
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    MissingClaim(String),
}

impl AuthFailure {
    /// Every `reason` label of the authentication failure counter.
    pub const LABELS: &'static [&'static str] = &[
        "missing_token",
        "malformed_token",
        "token_too_large",
        "algorithm_not_allowed",
        "unknown_key",
        "no_keys",
        "no_clock",
        "bad_signature",
        "expired",
        "not_yet_valid",
        "wrong_issuer",
        "wrong_audience",
        "missing_claim",
    ];

    pub fn label(&self) -> &'static str {
        match self {
            AuthFailure::MissingToken => "missing_token",
            AuthFailure::Malformed(_) => "malformed_token",
            AuthFailure::TooLarge => "token_too_large",
            AuthFailure::AlgorithmNotAllowed => "algorithm_not_allowed",
            AuthFailure::UnknownKey => "unknown_key",
            AuthFailure::NoKeys => "no_keys",
            AuthFailure::NoClock => "no_clock",
            AuthFailure::BadSignature => "bad_signature",
            AuthFailure::Expired => "expired",
            AuthFailure::NotYetValid => "not_yet_valid",
            AuthFailure::WrongIssuer => "wrong_issuer",
            AuthFailure::WrongAudience => "wrong_audience",
            AuthFailure::MissingClaim(_) => "missing_claim",
        }
    }

    pub fn description(&self) -> String {
        match self {
            AuthFailure::MissingToken => "a bearer token is required".into(),
            AuthFailure::Malformed(why) => format!("malformed token: {why}"),
            AuthFailure::TooLarge => "the token is too large".into(),
            AuthFailure::AlgorithmNotAllowed => "the token's algorithm is not accepted".into(),
            AuthFailure::UnknownKey => "the token was signed by an unknown key".into(),
            AuthFailure::NoKeys => "no verification keys are available yet".into(),
            AuthFailure::NoClock => "the time cannot be read; retry shortly".into(),
            AuthFailure::BadSignature => "the token's signature is invalid".into(),
            AuthFailure::Expired => "the token has expired".into(),
            AuthFailure::NotYetValid => "the token is not valid yet".into(),
            AuthFailure::WrongIssuer => "the token's issuer is not trusted".into(),
            AuthFailure::WrongAudience => "the token is not meant for this resource".into(),
            AuthFailure::MissingClaim(c) => format!("the token lacks the `{c}` claim"),
        }
    }
}

/// What a valid token must satisfy besides its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRules {
    pub issuers: Vec<String>,
    /// RFC 8707: the token must name this MCP resource in `aud`.
    pub audiences: Vec<String>,
    pub algorithms: Vec<Algorithm>,
    pub leeway_seconds: u64,
    /// Claims that must be present (beyond `exp`, `iss`, `aud`, `sub`, always required).
    pub required_claims: Vec<String>,
    pub max_token_bytes: usize,
}

/// A token that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    pub claims: Map<String, Value>,
    /// `exp`, in Unix seconds: a cached verification never outlives it.
    pub expires_at: u64,
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer_token(authorization: Option<&str>) -> Result<&str, AuthFailure> {
    let value = authorization.ok_or(AuthFailure::MissingToken)?.trim();
    let (scheme, token) = value
        .split_once(' ')
        .ok_or(AuthFailure::Malformed("expected `Bearer <token>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthFailure::MissingToken);
    }
    let token = token.trim_start();
    if token.is_empty() {
        return Err(AuthFailure::Malformed("empty bearer token"));
    }
    Ok(token)
}

fn is_base64url(segment: &str) -> bool {
    segment
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Verifies a compact JWS against the key set and rules at time `now` (Unix seconds).
pub fn verify(
    token: &str,
    keys: &KeySet,
    rules: &TokenRules,
    now: u64,
) -> Result<VerifiedToken, AuthFailure> {
    super::verifiers::install();
    if token.len() > rules.max_token_bytes {
        return Err(AuthFailure::TooLarge);
    }
    let segments: Vec<&str> = token.split('.').collect();
    if segments.len() != 3 || segments.iter().any(|s| s.is_empty() || !is_base64url(s)) {
        return Err(AuthFailure::Malformed(
            "not a compact JWS (three base64url segments)",
        ));
    }
    check_header(segments.first().copied().unwrap_or_default())?;
    // `alg: none` and unknown algorithms fail here: they are not `Algorithm`s.
    let header = decode_header(token).map_err(|_| AuthFailure::Malformed("unreadable header"))?;
    let alg = header.alg;
    if !rules.algorithms.contains(&alg) {
        return Err(AuthFailure::AlgorithmNotAllowed);
    }
    if keys.is_empty() {
        return Err(AuthFailure::NoKeys);
    }
    let kid = header.kid.as_deref();
    if let Some(kid) = kid {
        if !keys.has_kid(kid) && keys.keys.iter().all(|k| k.kid.is_some()) {
            return Err(AuthFailure::UnknownKey);
        }
    }

    let mut validation = Validation::new(alg);
    validation.algorithms = vec![alg];
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.leeway = 0;

    let mut tried = false;
    for key in keys.candidates(kid, alg) {
        tried = true;
        match decode::<StrictObject>(token, &key.key, &validation) {
            Ok(data) => return check_claims(data.claims.0, rules, now),
            Err(e) => match e.kind() {
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidKeyFormat
                | ErrorKind::InvalidAlgorithm => continue,
                ErrorKind::Json(_) | ErrorKind::Utf8(_) | ErrorKind::Base64(_) => {
                    return Err(AuthFailure::Malformed("unreadable claims"))
                }
                _ => continue,
            },
        }
    }
    Err(if tried {
        AuthFailure::BadSignature
    } else {
        // Keys exist but none of this algorithm's type: the algorithm is not usable here.
        AuthFailure::AlgorithmNotAllowed
    })
}

/// Header parameters that change how a JWS must be read. RFC 7515 §4.1.11:
/// a recipient that does not implement every extension `crit` lists must
/// refuse the token; this filter implements none, so any `crit` (whatever
/// its value, even empty) is refused. `b64` (RFC 7797) changes what the
/// signature covers and is only valid when listed in `crit`.
const UNSUPPORTED_HEADER_PARAMETERS: [&str; 2] = ["crit", "b64"];

/// The protected header, read strictly: a JSON object without repeated keys
/// and without extensions this filter does not implement.
fn check_header(segment: &str) -> Result<(), AuthFailure> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| AuthFailure::Malformed("unreadable header"))?;
    let header: StrictObject =
        serde_json::from_slice(&bytes).map_err(|_| AuthFailure::Malformed("unreadable header"))?;
    if UNSUPPORTED_HEADER_PARAMETERS
        .iter()
        .any(|p| header.0.contains_key(*p))
    {
        return Err(AuthFailure::Malformed(
            "the header names an extension this filter does not implement",
        ));
    }
    Ok(())
}

/// The last second of year 9999: a later `exp` or `nbf` is not a date.
const MAX_NUMERIC_DATE: u64 = 253_402_300_799;

fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, AuthFailure> {
    let Some(v) = claims.get(name) else {
        return Ok(None);
    };
    // A float is floored, never rounded up past the limit; `1e300` or
    // `u64::MAX` would otherwise read as "never expires".
    let seconds = match v.as_u64() {
        Some(n) => Some(n),
        None => v
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && *f <= MAX_NUMERIC_DATE as f64)
            .map(|f| f as u64),
    };
    match seconds {
        Some(n) if n <= MAX_NUMERIC_DATE => Ok(Some(n)),
        Some(_) => Err(AuthFailure::Malformed("a time claim is out of range")),
        None => Err(AuthFailure::Malformed("a time claim is not a number")),
    }
}

fn check_claims(
    claims: Map<String, Value>,
    rules: &TokenRules,
    now: u64,
) -> Result<VerifiedToken, AuthFailure> {
    let exp =
        numeric_date(&claims, "exp")?.ok_or_else(|| AuthFailure::MissingClaim("exp".into()))?;
    if now >= exp.saturating_add(rules.leeway_seconds) {
        return Err(AuthFailure::Expired);
    }
    if let Some(nbf) = numeric_date(&claims, "nbf")? {
        if now.saturating_add(rules.leeway_seconds) < nbf {
            return Err(AuthFailure::NotYetValid);
        }
    }
    match claims.get("iss") {
        None => return Err(AuthFailure::MissingClaim("iss".into())),
        Some(Value::String(iss)) if rules.issuers.contains(iss) => {}
        Some(_) => return Err(AuthFailure::WrongIssuer),
    }
    let audience_ok = match claims.get("aud") {
        None => return Err(AuthFailure::MissingClaim("aud".into())),
        Some(Value::String(aud)) => rules.audiences.contains(aud),
        Some(Value::Array(auds)) => auds
            .iter()
            .filter_map(Value::as_str)
            .any(|a| rules.audiences.iter().any(|want| want == a)),
        Some(_) => false,
    };
    if !audience_ok {
        return Err(AuthFailure::WrongAudience);
    }
    if !matches!(claims.get("sub"), Some(Value::String(s)) if !s.is_empty()) {
        return Err(AuthFailure::MissingClaim("sub".into()));
    }
    for claim in &rules.required_claims {
        if claims.get(claim).is_none_or(Value::is_null) {
            return Err(AuthFailure::MissingClaim(claim.clone()));
        }
    }
    Ok(VerifiedToken {
        claims,
        expires_at: exp.saturating_add(rules.leeway_seconds),
    })
}
