//! The signature checks `jsonwebtoken` runs, supplied as a verify-only
//! `CryptoProvider` over the RustCrypto crates. The crate's own RustCrypto
//! provider also links every signing path (RSA private-key operations, ECDSA
//! signing, key generation), which the filter never uses and which would
//! cost the `.wasm` a third of its size; a filter has no business signing.
//!
//! Fail closed: Ed25519 verifies strictly (no non-canonical encodings). ECDSA
//! signatures are accepted with a high or a low `s`: JOSE (RFC 7518 §3.4)
//! does not ask for low-s, and common signers (OpenSSL, RustCrypto's p256)
//! emit a high `s` for about half their signatures, so refusing them would
//! refuse half the valid ES256 tokens. Nothing here keys a decision on the
//! token's text (the cache only saves work: a flipped signature is a cache
//! miss that verifies to the same claims).

use hmac::{Hmac, Mac};
#[cfg(not(test))]
use jsonwebtoken::crypto::JwtSigner;
use jsonwebtoken::crypto::{CryptoProvider, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind, Result};
use jsonwebtoken::signature::{self, Verifier};
#[cfg(not(test))]
use jsonwebtoken::EncodingKey;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::{BigUint, Pkcs1v15Sign, Pss, RsaPublicKey};
use sha2::{Digest, Sha256, Sha384, Sha512};
use std::sync::Once;

/// Installs the verify-only provider (once per process; later calls are free).
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another provider came first (only in tests, which also sign).
        let _ = PROVIDER.install_default();
    });
}

#[cfg(not(test))]
static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory,
    verifier_factory,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: |_| Err(unsupported()),
        rsa_pub_components_from_public_key: |_| Err(unsupported()),
        ec_pub_components_from_private_key: |_, _| Err(unsupported()),
        ed_pub_components_from_private_key: |_, _| Err(unsupported()),
        compute_digest: |_, _| Err(unsupported()),
    },
};

/// Tests sign tokens and build JWKs with jsonwebtoken's own provider, and
/// verify them with ours.
#[cfg(test)]
static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.signer_factory,
    verifier_factory,
    key_utils: {
        use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER as THEIRS;
        KeyUtils {
            rsa_pub_components_from_private_key: THEIRS
                .key_utils
                .rsa_pub_components_from_private_key,
            rsa_pub_components_from_public_key: THEIRS.key_utils.rsa_pub_components_from_public_key,
            ec_pub_components_from_private_key: THEIRS.key_utils.ec_pub_components_from_private_key,
            ed_pub_components_from_private_key: THEIRS.key_utils.ed_pub_components_from_private_key,
            compute_digest: THEIRS.key_utils.compute_digest,
        }
    },
};

#[cfg_attr(test, allow(dead_code))]
fn unsupported() -> Error {
    ErrorKind::UnsupportedAlgorithm.into()
}

fn bad_key() -> Error {
    ErrorKind::InvalidKeyFormat.into()
}

#[cfg(not(test))]
fn signer_factory(_: &Algorithm, _: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    Err(unsupported())
}

fn verifier_factory(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    // A key verifies only algorithms of its own family: no RSA key as an HMAC secret.
    if key.family() != alg.family() {
        return Err(bad_key());
    }
    let alg = *alg;
    let check: Check = match alg.family() {
        AlgorithmFamily::Hmac => Check::Hmac(key.try_get_as_bytes()?.to_vec()),
        AlgorithmFamily::Rsa => Check::Rsa(rsa_key(key)?),
        AlgorithmFamily::Ec => Check::Ec(key.try_get_as_bytes()?.to_vec()),
        AlgorithmFamily::Ed => {
            let bytes: [u8; 32] = key.try_get_as_bytes()?.try_into().map_err(|_| bad_key())?;
            Check::Ed(ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| bad_key())?)
        }
    };
    Ok(Box::new(OneKey { alg, check }))
}

fn rsa_key(key: &DecodingKey) -> Result<RsaPublicKey> {
    match key.kind() {
        DecodingKeyKind::SecretOrDer(der) => {
            RsaPublicKey::from_pkcs1_der(der).map_err(|_| bad_key())
        }
        DecodingKeyKind::RsaModulusExponent { n, e } => {
            RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from_bytes_be(e))
                .map_err(|_| bad_key())
        }
    }
}

enum Check {
    Hmac(Vec<u8>),
    Rsa(RsaPublicKey),
    /// A SEC1-encoded public point; the curve comes from the algorithm.
    Ec(Vec<u8>),
    Ed(ed25519_dalek::VerifyingKey),
}

struct OneKey {
    alg: Algorithm,
    check: Check,
}

fn hmac_ok<M: Mac + hmac::digest::KeyInit>(secret: &[u8], msg: &[u8], tag: &[u8]) -> bool {
    match <M as Mac>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(msg);
            // Constant-time comparison.
            mac.verify_slice(tag).is_ok()
        }
        Err(_) => false,
    }
}

impl OneKey {
    fn verifies(&self, msg: &[u8], sig: &[u8]) -> bool {
        use Algorithm as A;
        match (&self.check, self.alg) {
            (Check::Hmac(secret), A::HS256) => hmac_ok::<Hmac<Sha256>>(secret, msg, sig),
            (Check::Hmac(secret), A::HS384) => hmac_ok::<Hmac<Sha384>>(secret, msg, sig),
            (Check::Hmac(secret), A::HS512) => hmac_ok::<Hmac<Sha512>>(secret, msg, sig),
            (Check::Rsa(key), A::RS256) => key
                .verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(msg), sig)
                .is_ok(),
            (Check::Rsa(key), A::RS384) => key
                .verify(Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(msg), sig)
                .is_ok(),
            (Check::Rsa(key), A::RS512) => key
                .verify(Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(msg), sig)
                .is_ok(),
            (Check::Rsa(key), A::PS256) => key
                .verify(Pss::new::<Sha256>(), &Sha256::digest(msg), sig)
                .is_ok(),
            (Check::Rsa(key), A::PS384) => key
                .verify(Pss::new::<Sha384>(), &Sha384::digest(msg), sig)
                .is_ok(),
            (Check::Rsa(key), A::PS512) => key
                .verify(Pss::new::<Sha512>(), &Sha512::digest(msg), sig)
                .is_ok(),
            (Check::Ec(point), A::ES256) => {
                let (Ok(key), Ok(sig)) = (
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(point),
                    p256::ecdsa::Signature::from_slice(sig),
                ) else {
                    return false;
                };
                key.verify(msg, &sig).is_ok()
            }
            (Check::Ec(point), A::ES384) => {
                let (Ok(key), Ok(sig)) = (
                    p384::ecdsa::VerifyingKey::from_sec1_bytes(point),
                    p384::ecdsa::Signature::from_slice(sig),
                ) else {
                    return false;
                };
                key.verify(msg, &sig).is_ok()
            }
            (Check::Ed(key), A::EdDSA) => match ed25519_dalek::Signature::from_slice(sig) {
                Ok(sig) => key.verify_strict(msg, &sig).is_ok(),
                Err(_) => false,
            },
            _ => false,
        }
    }
}

impl Verifier<Vec<u8>> for OneKey {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        if self.verifies(msg, signature) {
            Ok(())
        } else {
            Err(signature::Error::new())
        }
    }
}

impl JwtVerifier for OneKey {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::crypto::sign;
    use jsonwebtoken::EncodingKey;

    const RSA_KEY: &str = include_str!("testdata/rsa1.key");
    const RSA_PUB: &str = include_str!("testdata/rsa1.pub");
    const EC_KEY: &str = include_str!("testdata/ec256.key");
    const EC_PUB: &str = include_str!("testdata/ec256.pub");
    const ED_KEY: &str = include_str!("testdata/ed.key");
    const ED_PUB: &str = include_str!("testdata/ed.pub");

    fn verifies(alg: Algorithm, signing: &EncodingKey, verifying: &DecodingKey) -> bool {
        let msg = b"header.payload";
        let sig = sign(msg, signing, alg).unwrap();
        let sig =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sig).unwrap();
        let Ok(verifier) = verifier_factory(&alg, verifying) else {
            return false;
        };
        let good = verifier.verify(msg, &sig).is_ok();
        let tampered = verifier.verify(b"header.pAyload", &sig).is_ok();
        assert!(!tampered, "{alg:?} accepted a tampered message");
        good
    }

    #[test]
    fn each_supported_algorithm_verifies_its_own_signatures_only() {
        let rsa = EncodingKey::from_rsa_pem(RSA_KEY.as_bytes()).unwrap();
        let rsa_pub = DecodingKey::from_rsa_pem(RSA_PUB.as_bytes()).unwrap();
        for alg in [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ] {
            assert!(verifies(alg, &rsa, &rsa_pub), "{alg:?}");
        }
        let ec = EncodingKey::from_ec_pem(EC_KEY.as_bytes()).unwrap();
        assert!(verifies(
            Algorithm::ES256,
            &ec,
            &DecodingKey::from_ec_pem(EC_PUB.as_bytes()).unwrap()
        ));
        let ed = EncodingKey::from_ed_pem(ED_KEY.as_bytes()).unwrap();
        assert!(verifies(
            Algorithm::EdDSA,
            &ed,
            &DecodingKey::from_ed_pem(ED_PUB.as_bytes()).unwrap()
        ));
        let secret = [5u8; 32];
        assert!(verifies(
            Algorithm::HS256,
            &EncodingKey::from_secret(&secret),
            &DecodingKey::from_secret(&secret)
        ));
        assert!(!verifies(
            Algorithm::HS256,
            &EncodingKey::from_secret(&secret),
            &DecodingKey::from_secret(&[6u8; 32])
        ));
    }

    #[test]
    fn a_key_never_verifies_another_family() {
        let rsa_pub = DecodingKey::from_rsa_pem(RSA_PUB.as_bytes()).unwrap();
        assert!(verifier_factory(&Algorithm::HS256, &rsa_pub).is_err());
        let ec_pub = DecodingKey::from_ec_pem(EC_PUB.as_bytes()).unwrap();
        assert!(verifier_factory(&Algorithm::RS256, &ec_pub).is_err());
        // A P-256 key under ES384 is refused by the curve check.
        let ec = EncodingKey::from_ec_pem(EC_KEY.as_bytes()).unwrap();
        let sig = sign(b"m", &ec, Algorithm::ES256).unwrap();
        let sig =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sig).unwrap();
        let verifier = verifier_factory(&Algorithm::ES384, &ec_pub).unwrap();
        assert!(verifier.verify(b"m", &sig).is_err());
    }
}
