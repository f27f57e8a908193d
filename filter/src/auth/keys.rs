//! Verification keys: a JWKS document, PEM public keys or an explicit shared
//! secret, each turned into a key that knows which algorithms it may verify.
//! The algorithm a token may use is decided here, from configuration and the
//! key's type, never from the token's header: an RSA public key can never be
//! used as an HMAC secret, and `none` is not an algorithm at all.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

/// One key and the algorithms it may verify (configuration ∩ key type ∩ the JWK's own `alg`).
#[derive(Clone)]
pub struct VerifyKey {
    pub kid: Option<String>,
    pub algorithms: Vec<Algorithm>,
    pub key: DecodingKey,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// The keys tokens are verified against.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    pub keys: Vec<VerifyKey>,
}

/// Asymmetric algorithms accepted when configuration does not narrow them.
pub const DEFAULT_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

pub fn is_hmac(alg: Algorithm) -> bool {
    alg.family() == AlgorithmFamily::Hmac
}

impl KeySet {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Keys that may verify a token with this `kid` and `alg`. A token
    /// without `kid` is tried against every key of the right type.
    pub fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a VerifyKey> {
        self.keys.iter().filter(move |k| {
            k.algorithms.contains(&alg)
                && match (kid, &k.kid) {
                    (Some(want), Some(have)) => want == have,
                    (Some(_), None) | (None, _) => true,
                }
        })
    }

    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Parses a JWKS document. Keys that cannot verify signatures (encryption
    /// keys, unknown types, symmetric keys, algorithms not allowed) are skipped;
    /// a document with no usable key is an error.
    pub fn from_jwks(json: &[u8], allowed: &[Algorithm]) -> Result<Self, String> {
        // Keys are read one by one so that a key this crate does not know
        // (a new `kty` or `alg`) is skipped instead of failing the whole set.
        let set: RawJwkSet =
            serde_json::from_slice(json).map_err(|e| format!("not a JWKS: {e}"))?;
        let count = set.keys.len();
        let keys: Vec<VerifyKey> = set
            .keys
            .into_iter()
            .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
            .filter_map(|jwk| from_jwk(&jwk, allowed))
            .collect();
        if keys.is_empty() {
            return Err(format!(
                "the JWKS has no signature key for the allowed algorithms ({count} keys in it)"
            ));
        }
        Ok(Self { keys })
    }

    /// A PEM public key: SPKI (`BEGIN PUBLIC KEY`: RSA, P-256, P-384,
    /// Ed25519) or PKCS#1 (`BEGIN RSA PUBLIC KEY`).
    pub fn pem_key(
        kid: Option<String>,
        pem: &str,
        allowed: &[Algorithm],
    ) -> Result<VerifyKey, String> {
        let (label, der) = pem_der(pem)?;
        let (key, family, curve) = public_key_of(&label, &der)?;
        let algorithms = allowed_of_family(allowed, family, curve.as_ref());
        if algorithms.is_empty() {
            return Err(format!("no allowed algorithm verifies this {family:?} key"));
        }
        Ok(VerifyKey {
            kid,
            algorithms,
            key,
        })
    }

    /// An explicitly configured HMAC secret: the only way HS* is accepted.
    pub fn shared_secret(kid: Option<String>, secret: &[u8], allowed: &[Algorithm]) -> VerifyKey {
        VerifyKey {
            kid,
            algorithms: allowed.iter().copied().filter(|a| is_hmac(*a)).collect(),
            key: DecodingKey::from_secret(secret),
        }
    }
}

/// The label and DER bytes of one PEM block.
fn pem_der(pem: &str) -> Result<(String, Vec<u8>), String> {
    use base64::Engine;
    let text = pem.trim();
    let label = text
        .strip_prefix("-----BEGIN ")
        .and_then(|rest| rest.split_once("-----"))
        .map(|(label, _)| label.to_string())
        .ok_or("not a PEM block (`-----BEGIN ...-----`)")?;
    let end = format!("-----END {label}-----");
    let body = text
        .split_once('\n')
        .map(|(_, rest)| rest)
        .and_then(|rest| rest.trim_end().strip_suffix(end.as_str()))
        .ok_or("the PEM block does not end with its END line")?;
    let base64: String = body.split_whitespace().collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(base64)
        .map_err(|e| format!("the PEM body is not base64: {e}"))?;
    Ok((label, der))
}

/// Decodes a public key; the curve is returned for EC and Ed keys.
fn public_key_of(
    label: &str,
    der: &[u8],
) -> Result<(DecodingKey, AlgorithmFamily, Option<EllipticCurve>), String> {
    use p256::pkcs8::DecodePublicKey;
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::traits::PublicKeyParts;
    let rsa = |key: rsa::RsaPublicKey| {
        let key =
            DecodingKey::from_rsa_raw_components(&key.n().to_bytes_be(), &key.e().to_bytes_be());
        (key, AlgorithmFamily::Rsa, None)
    };
    match label {
        "RSA PUBLIC KEY" => rsa::RsaPublicKey::from_pkcs1_der(der)
            .map(rsa)
            .map_err(|e| format!("not a PKCS#1 RSA public key: {e}")),
        "PUBLIC KEY" => {
            if let Ok(key) = rsa::RsaPublicKey::from_public_key_der(der) {
                return Ok(rsa(key));
            }
            // EC keys are handed to the verifier as their SEC1 point.
            if let Ok(key) = p256::PublicKey::from_public_key_der(der) {
                let point = p256::EncodedPoint::from(key);
                let key = DecodingKey::from_ec_der(point.as_bytes());
                return Ok((key, AlgorithmFamily::Ec, Some(EllipticCurve::P256)));
            }
            if let Ok(key) = p384::PublicKey::from_public_key_der(der) {
                let point = p384::EncodedPoint::from(key);
                let key = DecodingKey::from_ec_der(point.as_bytes());
                return Ok((key, AlgorithmFamily::Ec, Some(EllipticCurve::P384)));
            }
            if let Ok(key) = ed25519_dalek::VerifyingKey::from_public_key_der(der) {
                let key = DecodingKey::from_ed_der(key.as_bytes());
                return Ok((key, AlgorithmFamily::Ed, Some(EllipticCurve::Ed25519)));
            }
            Err("not an RSA, P-256, P-384 or Ed25519 public key".into())
        }
        other => Err(format!("`{other}` is not a public key PEM block")),
    }
}

#[derive(serde::Deserialize)]
struct RawJwkSet {
    keys: Vec<serde_json::Value>,
}

fn allowed_of_family(
    allowed: &[Algorithm],
    family: AlgorithmFamily,
    curve: Option<&EllipticCurve>,
) -> Vec<Algorithm> {
    allowed
        .iter()
        .copied()
        .filter(|a| a.family() == family && !is_hmac(*a))
        .filter(|a| match (a, curve) {
            (Algorithm::ES256, Some(c)) => *c == EllipticCurve::P256,
            (Algorithm::ES384, Some(c)) => *c == EllipticCurve::P384,
            (Algorithm::EdDSA, Some(c)) => *c == EllipticCurve::Ed25519,
            _ => true,
        })
        .collect()
}

fn from_jwk(jwk: &Jwk, allowed: &[Algorithm]) -> Option<VerifyKey> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let (family, curve) = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => (AlgorithmFamily::Rsa, None),
        AlgorithmParameters::EllipticCurve(p) => (AlgorithmFamily::Ec, Some(&p.curve)),
        AlgorithmParameters::OctetKeyPair(p) => (AlgorithmFamily::Ed, Some(&p.curve)),
        // Symmetric keys in a (possibly remote, public) JWKS are never trusted.
        _ => return None,
    };
    let mut algorithms = allowed_of_family(allowed, family, curve);
    // A JWK that names its algorithm may verify only that one.
    if let Some(jwk_alg) = jwk.common.key_algorithm {
        let named = jwk_alg.to_string();
        algorithms.retain(|a| format!("{a:?}") == named);
    }
    if algorithms.is_empty() {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(VerifyKey {
        kid: jwk.common.key_id.clone(),
        algorithms,
        key,
    })
}
