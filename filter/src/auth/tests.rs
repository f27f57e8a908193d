//! The JWT attack set and the configuration checks, with fixed test keys
//! (`testdata/`, generated once with openssl; the integration suite makes
//! fresh ones at run time).

use super::token::{verify, AuthFailure};
use super::*;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

const RSA1_KEY: &str = include_str!("testdata/rsa1.key");
const RSA1_PUB: &str = include_str!("testdata/rsa1.pub");
const RSA2_KEY: &str = include_str!("testdata/rsa2.key");
const EC_KEY: &str = include_str!("testdata/ec256.key");
const ED_KEY: &str = include_str!("testdata/ed.key");

const NOW: u64 = 1_900_000_000;
const ISS: &str = "https://idp.example.com";
const AUD: &str = "https://mcp.example.com/mcp";

fn jwk(kid: &str, key: &EncodingKey, alg: Algorithm) -> Value {
    // Ours verifies; jsonwebtoken's own provider (a test-only dependency) signs.
    super::verifiers::install();
    let mut jwk = Jwk::from_encoding_key(key, alg).unwrap();
    jwk.common.key_id = Some(kid.into());
    serde_json::to_value(jwk).unwrap()
}

fn rsa1() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA1_KEY.as_bytes()).unwrap()
}

fn jwks() -> Value {
    json!({"keys": [
        jwk("rsa1", &rsa1(), Algorithm::RS256),
        jwk("ec1", &EncodingKey::from_ec_pem(EC_KEY.as_bytes()).unwrap(), Algorithm::ES256),
        jwk("ed1", &EncodingKey::from_ed_pem(ED_KEY.as_bytes()).unwrap(), Algorithm::EdDSA),
    ]})
}

fn config(extra: Value) -> AuthConfig {
    let mut raw = json!({
        "issuers": [ISS],
        "audiences": [AUD],
        "jwks": jwks(),
        "resource_metadata": {"resource": AUD, "authorization_servers": [ISS]},
    });
    for (k, v) in extra.as_object().unwrap() {
        raw[k] = v.clone();
    }
    serde_json::from_value::<RawAuth>(raw)
        .unwrap()
        .compile(Tenancy::default())
        .unwrap()
}

fn claims() -> Value {
    json!({"iss": ISS, "aud": AUD, "sub": "alice", "exp": NOW + 600, "iat": NOW, "scope": "mcp:tools files:read"})
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    super::verifiers::install();
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, key).unwrap()
}

fn rs256(claims: &Value) -> String {
    sign(Algorithm::RS256, Some("rsa1"), &rsa1(), claims)
}

fn check(cfg: &AuthConfig, token: &str) -> Result<token::VerifiedToken, AuthFailure> {
    verify(token, &cfg.static_keys, &cfg.rules, NOW)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn a_good_token_of_each_asymmetric_family_verifies() {
    let cfg = config(json!({}));
    let c = claims();
    let ec = EncodingKey::from_ec_pem(EC_KEY.as_bytes()).unwrap();
    let ed = EncodingKey::from_ed_pem(ED_KEY.as_bytes()).unwrap();
    for token in [
        rs256(&c),
        sign(Algorithm::ES256, Some("ec1"), &ec, &c),
        sign(Algorithm::EdDSA, Some("ed1"), &ed, &c),
    ] {
        let verified = check(&cfg, &token).unwrap();
        assert_eq!(verified.claims["sub"], "alice");
        assert_eq!(verified.expires_at, NOW + 600 + 60);
    }
}

#[test]
fn alg_none_is_refused() {
    let cfg = config(json!({}));
    let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let body = b64(claims().to_string().as_bytes());
    let err = check(&cfg, &format!("{header}.{body}.")).unwrap_err();
    assert!(matches!(err, AuthFailure::Malformed(_)), "{err:?}");
    let err = check(&cfg, &format!("{header}.{body}.AAAA")).unwrap_err();
    assert!(matches!(err, AuthFailure::Malformed(_)), "{err:?}");
}

#[test]
fn an_hmac_token_signed_with_the_rsa_public_key_is_refused() {
    let cfg = config(json!({"pem_keys": [{"kid": "pem", "pem": RSA1_PUB}]}));
    // The classic confusion: the public key's bytes used as an HMAC secret.
    for secret in [RSA1_PUB.as_bytes().to_vec(), b"anything".to_vec()] {
        let token = sign(
            Algorithm::HS256,
            Some("pem"),
            &EncodingKey::from_secret(&secret),
            &claims(),
        );
        assert_eq!(
            check(&cfg, &token).unwrap_err(),
            AuthFailure::AlgorithmNotAllowed
        );
    }
}

#[test]
fn hmac_works_only_with_an_explicit_shared_secret() {
    let secret = [7u8; 32];
    let b64_secret = base64::engine::general_purpose::STANDARD.encode(secret);
    let cfg = config(json!({"shared_secret": {"base64": b64_secret}}));
    let token = sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(&secret),
        &claims(),
    );
    assert!(check(&cfg, &token).is_ok());
    let wrong = sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(&[8u8; 32]),
        &claims(),
    );
    assert_eq!(check(&cfg, &wrong).unwrap_err(), AuthFailure::BadSignature);
    // An RS256 token still needs the RSA key, not the secret.
    assert!(check(&cfg, &rs256(&claims())).is_ok());
}

#[test]
fn a_wrong_signature_is_refused() {
    let cfg = config(json!({}));
    let other = EncodingKey::from_rsa_pem(RSA2_KEY.as_bytes()).unwrap();
    let token = sign(Algorithm::RS256, Some("rsa1"), &other, &claims());
    assert_eq!(check(&cfg, &token).unwrap_err(), AuthFailure::BadSignature);
    // A payload swapped under a valid signature.
    let good = rs256(&claims());
    let mut parts: Vec<&str> = good.split('.').collect();
    let mut evil = claims();
    evil["sub"] = "root".into();
    let forged = b64(evil.to_string().as_bytes());
    parts[1] = &forged;
    assert_eq!(
        check(&cfg, &parts.join(".")).unwrap_err(),
        AuthFailure::BadSignature
    );
}

#[test]
fn time_claims_are_enforced_with_leeway() {
    let cfg = config(json!({"leeway_seconds": 30}));
    let mut c = claims();
    c["exp"] = (NOW - 31).into();
    assert_eq!(check(&cfg, &rs256(&c)).unwrap_err(), AuthFailure::Expired);
    c["exp"] = (NOW - 29).into();
    assert!(check(&cfg, &rs256(&c)).is_ok());
    let mut c = claims();
    c["nbf"] = (NOW + 31).into();
    assert_eq!(
        check(&cfg, &rs256(&c)).unwrap_err(),
        AuthFailure::NotYetValid
    );
    let mut c = claims();
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        check(&cfg, &rs256(&c)).unwrap_err(),
        AuthFailure::MissingClaim("exp".into())
    );
}

#[test]
fn issuer_and_audience_must_match() {
    let cfg = config(json!({}));
    let mut c = claims();
    c["iss"] = "https://evil.example.com".into();
    assert_eq!(
        check(&cfg, &rs256(&c)).unwrap_err(),
        AuthFailure::WrongIssuer
    );
    let mut c = claims();
    c["aud"] = "https://other-resource.example.com".into();
    assert_eq!(
        check(&cfg, &rs256(&c)).unwrap_err(),
        AuthFailure::WrongAudience
    );
    let mut c = claims();
    c["aud"] = json!(["x", AUD]);
    assert!(check(&cfg, &rs256(&c)).is_ok());
    let mut c = claims();
    c.as_object_mut().unwrap().remove("aud");
    assert_eq!(
        check(&cfg, &rs256(&c)).unwrap_err(),
        AuthFailure::MissingClaim("aud".into())
    );
}

#[test]
fn required_claims_must_be_present() {
    let cfg = config(json!({"required_claims": ["tenant"]}));
    assert_eq!(
        check(&cfg, &rs256(&claims())).unwrap_err(),
        AuthFailure::MissingClaim("tenant".into())
    );
    let mut c = claims();
    c["tenant"] = "acme".into();
    assert!(check(&cfg, &rs256(&c)).is_ok());
}

#[test]
fn an_unknown_kid_is_reported_as_such() {
    let cfg = config(json!({}));
    let token = sign(Algorithm::RS256, Some("rotated-in"), &rsa1(), &claims());
    assert_eq!(check(&cfg, &token).unwrap_err(), AuthFailure::UnknownKey);
}

#[test]
fn malformed_and_oversized_tokens_are_refused() {
    let cfg = config(json!({}));
    for bad in ["", "a", "a.b", "a.b.c.d", "a..c", "e30.e30.!!", "é.b.c"] {
        assert!(
            matches!(check(&cfg, bad).unwrap_err(), AuthFailure::Malformed(_)),
            "{bad:?}"
        );
    }
    let huge = format!("{}.{}.{}", "a".repeat(5000), "b".repeat(5000), "c");
    assert_eq!(check(&cfg, &huge).unwrap_err(), AuthFailure::TooLarge);
}

#[test]
fn duplicate_claims_are_refused_even_when_signed() {
    let cfg = config(json!({}));
    let header = b64(br#"{"alg":"RS256","kid":"rsa1"}"#);
    let payload = format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"alice","sub":"root","exp":{}}}"#,
        NOW + 60
    );
    let message = format!("{header}.{}", b64(payload.as_bytes()));
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &rsa1(), Algorithm::RS256).unwrap();
    let err = check(&cfg, &format!("{message}.{signature}")).unwrap_err();
    assert!(matches!(err, AuthFailure::Malformed(_)), "{err:?}");
}

#[test]
fn bearer_header_parsing() {
    use super::token::bearer_token;
    assert_eq!(bearer_token(Some("Bearer abc")), Ok("abc"));
    assert_eq!(bearer_token(Some("bearer   abc")), Ok("abc"));
    assert_eq!(bearer_token(None), Err(AuthFailure::MissingToken));
    assert_eq!(
        bearer_token(Some("Basic abc")),
        Err(AuthFailure::MissingToken)
    );
    assert!(matches!(
        bearer_token(Some("Bearer")),
        Err(AuthFailure::Malformed(_))
    ));
}

#[test]
fn verified_tokens_are_cached_until_expiry() {
    let cfg = Rc::new(config(json!({"leeway_seconds": 0})));
    let mut auth = Authenticator::new(cfg);
    let mut c = claims();
    c["exp"] = (NOW + 10).into();
    let header = format!("Bearer {}", rs256(&c));
    let at = |s: u64| s * 1000;
    let Authenticated::Caller(first) = auth.authenticate_bearer(Some(&header), &[], at(NOW)) else {
        panic!("not authenticated")
    };
    assert_eq!(first.subject, "alice");
    assert_eq!(first.scopes, vec!["mcp:tools", "files:read"]);
    assert_eq!(auth.cache.len(), 1);
    let Authenticated::Caller(again) = auth.authenticate_bearer(Some(&header), &[], at(NOW + 5))
    else {
        panic!("not authenticated")
    };
    assert!(Rc::ptr_eq(&first, &again), "served from the cache");
    assert_eq!(
        auth.authenticate_bearer(Some(&header), &[], at(NOW + 10)),
        Authenticated::Failed(AuthFailure::Expired)
    );
}

#[test]
fn remote_keys_rotate_in_and_an_unknown_kid_asks_for_a_fetch() {
    let cfg = config(json!({
        "jwks": null,
        "remote_jwks": {"cluster": "idp", "path": "/jwks", "min_refetch_seconds": 10},
    }));
    let mut auth = Authenticator::new(Rc::new(cfg));
    let header = format!("Bearer {}", rs256(&claims()));
    let now = NOW * 1000;
    assert_eq!(
        auth.authenticate_bearer(Some(&header), &[], now),
        Authenticated::NeedKeys
    );
    auth.schedule.as_mut().unwrap().started(now);
    let ec_only = json!({"keys": [jwk("ec1", &EncodingKey::from_ec_pem(EC_KEY.as_bytes()).unwrap(), Algorithm::ES256)]});
    auth.install_remote_jwks(ec_only.to_string().as_bytes(), now)
        .unwrap();
    // rsa1 is still unknown, but the last fetch was just now: fail, do not refetch.
    assert_eq!(
        auth.authenticate_bearer(Some(&header), &[], now + 1000),
        Authenticated::Failed(AuthFailure::UnknownKey)
    );
    // Ten seconds on, a refetch is allowed and brings the rotated key.
    assert_eq!(
        auth.authenticate_bearer(Some(&header), &[], now + 10_000),
        Authenticated::NeedKeys
    );
    auth.schedule.as_mut().unwrap().started(now + 10_000);
    auth.install_remote_jwks(jwks().to_string().as_bytes(), now + 10_000)
        .unwrap();
    assert!(matches!(
        auth.authenticate_bearer(Some(&header), &[], now + 10_001),
        Authenticated::Caller(_)
    ));
    // A broken refresh keeps the keys.
    assert!(auth.install_remote_jwks(b"not json", now + 20_000).is_err());
    assert!(matches!(
        auth.authenticate_bearer(Some(&header), &[], now + 20_001),
        Authenticated::Caller(_)
    ));
}

#[test]
fn tenant_and_workspace_come_from_claims_or_trusted_headers() {
    let tenancy = serde_json::from_value::<RawTenancy>(json!({
        "tenant_claim": "org.id", "workspace_header": "x-workspace"
    }))
    .unwrap()
    .compile()
    .unwrap();
    let mut cfg = config(json!({}));
    cfg.tenancy = tenancy;
    let mut auth = Authenticator::new(Rc::new(cfg));
    let mut c = claims();
    c["org"] = json!({"id": "acme"});
    let header = format!("Bearer {}", rs256(&c));
    let headers = vec![("x-workspace".to_string(), "ws-1".to_string())];
    let Authenticated::Caller(caller) =
        auth.authenticate_bearer(Some(&header), &headers, NOW * 1000)
    else {
        panic!()
    };
    assert_eq!(caller.tenant.as_deref(), Some("acme"));
    assert_eq!(caller.workspace.as_deref(), Some("ws-1"));
}

#[test]
fn configuration_errors_name_their_field() {
    let err = |v: Value| {
        serde_json::from_value::<RawAuth>(v)
            .map_err(|e| e.to_string())
            .and_then(|raw| raw.compile(Tenancy::default()).map_err(|e| e.field))
            .unwrap_err()
    };
    let base = json!({"issuers": [ISS], "audiences": [AUD], "jwks": jwks(),
        "resource_metadata": {"resource": AUD, "authorization_servers": [ISS]}});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    assert_eq!(err(with("audiences", json!([]))), "auth.audiences");
    assert_eq!(
        err(with("algorithms", json!(["HS256"]))),
        "auth.algorithms[0]"
    );
    assert_eq!(
        err(with("algorithms", json!(["none"]))),
        "auth.algorithms[0]"
    );
    assert_eq!(err(with("jwks", json!({"keys": []}))), "auth.jwks");
    assert_eq!(
        err(with("shared_secret", json!({"base64": "c2hvcnQ="}))),
        "auth.shared_secret.base64"
    );
    assert_eq!(err(with("jwks", Value::Null)), "auth");
    assert_eq!(
        err(with(
            "resource_metadata",
            json!({"resource": "not a url", "authorization_servers": [ISS]})
        )),
        "auth.resource_metadata.resource"
    );
}

#[test]
fn the_metadata_url_is_derived_per_rfc_9728() {
    let cfg = config(json!({}));
    assert_eq!(
        cfg.metadata.url,
        "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
    );
    assert!(cfg
        .metadata
        .paths
        .contains(&"/.well-known/oauth-protected-resource/mcp".to_string()));
    assert!(cfg
        .metadata
        .paths
        .contains(&"/.well-known/oauth-protected-resource".to_string()));
}

#[test]
fn pem_public_keys_of_each_type_verify_their_tokens() {
    let cfg = config(json!({
        "jwks": null,
        "pem_keys": [
            {"kid": "rsa1", "pem": RSA1_PUB},
            {"kid": "ec1", "pem": include_str!("testdata/ec256.pub")},
            {"kid": "ed1", "pem": include_str!("testdata/ed.pub")},
        ],
    }));
    let c = claims();
    let ec = EncodingKey::from_ec_pem(EC_KEY.as_bytes()).unwrap();
    let ed = EncodingKey::from_ed_pem(ED_KEY.as_bytes()).unwrap();
    assert!(check(&cfg, &rs256(&c)).is_ok());
    assert!(check(&cfg, &sign(Algorithm::PS256, Some("rsa1"), &rsa1(), &c)).is_ok());
    assert!(check(&cfg, &sign(Algorithm::ES256, Some("ec1"), &ec, &c)).is_ok());
    assert!(check(&cfg, &sign(Algorithm::EdDSA, Some("ed1"), &ed, &c)).is_ok());
    // The EC key cannot stand in for the RSA one.
    assert_eq!(
        check(&cfg, &sign(Algorithm::ES256, Some("rsa1"), &ec, &c)).unwrap_err(),
        AuthFailure::AlgorithmNotAllowed
    );
    let bad = serde_json::from_value::<RawAuth>(json!({
        "issuers": [ISS], "audiences": [AUD],
        "pem_keys": [{"pem": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"}],
        "resource_metadata": {"resource": AUD, "authorization_servers": [ISS]},
    }))
    .unwrap()
    .compile(Tenancy::default())
    .unwrap_err();
    assert_eq!(bad.field, "auth.pem_keys[0].pem");
}

/// A token with the header `header` (JSON text) over `claims`, signed by rsa1.
fn rs256_with_header(header: &str, claims: &Value) -> String {
    let message = format!(
        "{}.{}",
        b64(header.as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &rsa1(), Algorithm::RS256).unwrap();
    format!("{message}.{signature}")
}

#[test]
fn a_header_with_crit_or_b64_is_refused_whatever_its_value() {
    let cfg = config(json!({}));
    // The control: the same header without them verifies.
    assert!(check(
        &cfg,
        &rs256_with_header(r#"{"alg":"RS256","kid":"rsa1"}"#, &claims())
    )
    .is_ok());
    for header in [
        r#"{"alg":"RS256","kid":"rsa1","crit":["exp"]}"#,
        r#"{"alg":"RS256","kid":"rsa1","crit":["b64"],"b64":false}"#,
        r#"{"alg":"RS256","kid":"rsa1","crit":[]}"#,
        r#"{"alg":"RS256","kid":"rsa1","crit":"x"}"#,
        r#"{"alg":"RS256","kid":"rsa1","crit":null}"#,
        r#"{"alg":"RS256","kid":"rsa1","b64":false}"#,
        r#"{"alg":"RS256","kid":"rsa1","b64":true}"#,
        r#"{"alg":"RS256","kid":"rsa1","kid":"rsa1"}"#,
        r#"{"alg":"RS256","kid":"rsa1","cr\u0069t":["exp"]}"#,
    ] {
        let err = check(&cfg, &rs256_with_header(header, &claims())).unwrap_err();
        assert!(
            matches!(err, AuthFailure::Malformed(_)),
            "{header}: {err:?}"
        );
    }
}

/// Not refused, on purpose: JOSE does not require low-s and real signers
/// (this test's own, RustCrypto's p256) emit high-s half the time. Both
/// spellings of one signature verify to the same claims.
#[test]
fn both_forms_of_an_ecdsa_signature_verify_to_the_same_claims() {
    use p256::ecdsa::Signature;
    let cfg = config(json!({}));
    let ec = EncodingKey::from_ec_pem(EC_KEY.as_bytes()).unwrap();
    let token = sign(Algorithm::ES256, Some("ec1"), &ec, &claims());
    let (message, signature) = token.rsplit_once('.').unwrap();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(signature)
        .unwrap();
    let sig = Signature::from_slice(&raw).unwrap();
    // The same signature with s and n - s: both satisfy the curve equation.
    let (r, s) = sig.split_scalars();
    let flipped = Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
    let (low, high) = if sig.normalize_s().is_some() {
        (flipped, sig)
    } else {
        (sig, flipped)
    };
    let with = |s: &Signature| format!("{message}.{}", b64(&s.to_bytes()));
    assert_eq!(
        check(&cfg, &with(&low)).unwrap(),
        check(&cfg, &with(&high)).unwrap()
    );
}

#[test]
fn an_absurd_time_claim_is_invalid_not_forever() {
    let cfg = config(json!({}));
    for exp in [
        json!(1e300),
        json!(u64::MAX),
        json!(18446744073709551616.0),
        json!(253_402_300_800u64),
    ] {
        let mut c = claims();
        c["exp"] = exp.clone();
        let err = check(&cfg, &rs256(&c)).unwrap_err();
        assert!(
            matches!(err, AuthFailure::Malformed(_)),
            "exp {exp}: {err:?}"
        );
        let mut c = claims();
        c["nbf"] = exp.clone();
        let err = check(&cfg, &rs256(&c)).unwrap_err();
        assert!(
            matches!(err, AuthFailure::Malformed(_)),
            "nbf {exp}: {err:?}"
        );
    }
    // Far, but a date: year 9999 is still a time.
    let mut c = claims();
    c["exp"] = json!(253_402_300_799u64);
    assert!(check(&cfg, &rs256(&c)).is_ok());
}

#[test]
fn without_a_clock_no_token_is_accepted_not_even_a_cached_one() {
    let cfg = Rc::new(config(json!({})));
    let mut auth = Authenticator::new(cfg);
    let header = format!("Bearer {}", rs256(&claims()));
    assert!(matches!(
        auth.authenticate_bearer_with(Some(&header), &[], Some(NOW * 1000), true),
        Authenticated::Caller(_)
    ));
    assert_eq!(auth.cache.len(), 1, "cached");
    assert_eq!(
        auth.authenticate_bearer_with(Some(&header), &[], None, true),
        Authenticated::Failed(AuthFailure::NoClock)
    );
    let reply = challenge::unauthorized(&AuthFailure::NoClock, &auth.config.metadata);
    assert_eq!(reply.status, 503, "the server cannot judge: retry later");
    assert!(reply.headers.iter().all(|(k, _)| k != "www-authenticate"));
}

#[test]
fn a_request_that_may_not_wait_gets_the_failure_not_a_fetch() {
    let cfg = config(json!({
        "jwks": null,
        "remote_jwks": {"cluster": "idp", "path": "/jwks", "min_refetch_seconds": 10},
    }));
    let mut auth = Authenticator::new(Rc::new(cfg));
    let header = format!("Bearer {}", rs256(&claims()));
    let now = Some(NOW * 1000);
    assert_eq!(
        auth.authenticate_bearer_with(Some(&header), &[], now, false),
        Authenticated::Failed(AuthFailure::NoKeys)
    );
    assert_eq!(
        auth.authenticate_bearer_with(Some(&header), &[], now, true),
        Authenticated::NeedKeys
    );
    // A fetch in flight: wait for it rather than fail.
    auth.schedule.as_mut().unwrap().started(NOW * 1000);
    assert_eq!(
        auth.authenticate_bearer_with(Some(&header), &[], now, true),
        Authenticated::NeedKeys
    );
}

/// Scopes as the identity provider wrote them: `scope` space-separated
/// (RFC 9068) or as an array, `scp` either way too.
#[test]
fn scopes_are_read_from_scope_and_scp_as_text_or_array() {
    let tenancy = Tenancy::default();
    for (claims, scopes) in [
        (json!({"scope": "a b"}), vec!["a", "b"]),
        (json!({"scope": ["a", "b"]}), vec!["a", "b"]),
        (json!({"scp": "a b"}), vec!["a", "b"]),
        (json!({"scope": "a", "scp": ["b"]}), vec!["a", "b"]),
    ] {
        let map = claims.as_object().cloned().unwrap_or_default();
        assert_eq!(caller_from_claims(map, &tenancy).scopes, scopes, "{claims}");
    }
}
