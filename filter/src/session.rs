//! Binding `Mcp-Session-Id` to the caller that initialized it, statelessly:
//! the upstream's session id is wrapped with a keyed MAC of the caller's
//! identity on the way out, and verified and unwrapped on every request. Any
//! replica with the same keys accepts it; another caller's token does not.
//!
//! Wire form: `mf1.<key id>.<base64url(upstream id)>.<base64url(mac)>`, all
//! visible ASCII as the spec requires of session ids. The MAC covers the key
//! id, the caller (`iss`, `sub`, tenant) and the upstream id.

use crate::config_error::{invalid, ConfigError};
use crate::policy::Caller;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const PREFIX: &str = "mf1";

#[derive(Clone, PartialEq, Eq)]
struct BindingKey {
    id: String,
    secret: Vec<u8>,
}

/// The keys: the first signs, all verify (rotation keeps the old one a while).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionBinding {
    keys: Vec<BindingKey>,
}

impl std::fmt::Debug for SessionBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("SessionBinding")
            .field("keys", &ids)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// Not a session id this filter issued (or one made with a retired key).
    Unrecognised,
    /// Issued for another caller.
    OtherCaller,
}

/// The keyed MAC over key id, caller and upstream id, ready to finalize or verify.
fn mac(key: &BindingKey, caller: &Caller, upstream: &str) -> Option<HmacSha256> {
    // HMAC takes keys of any length; the error cannot happen.
    let mut m = HmacSha256::new_from_slice(&key.secret).ok()?;
    // Length-prefixed fields: no two different identities produce the same input.
    for part in [
        key.id.as_str(),
        &caller.issuer,
        &caller.subject,
        caller.tenant.as_deref().unwrap_or(""),
        upstream,
    ] {
        m.update(&(part.len() as u64).to_be_bytes());
        m.update(part.as_bytes());
    }
    Some(m)
}

impl SessionBinding {
    /// The session id the client sees for the upstream's `upstream` id.
    pub fn wrap(&self, caller: &Caller, upstream: &str) -> Option<String> {
        let key = self.keys.first()?;
        Some(format!(
            "{PREFIX}.{}.{}.{}",
            key.id,
            URL_SAFE_NO_PAD.encode(upstream),
            URL_SAFE_NO_PAD.encode(mac(key, caller, upstream)?.finalize().into_bytes())
        ))
    }

    /// The upstream's id inside a session id this filter issued, without
    /// checking whose it is: only for a request whose body is held until
    /// [`SessionBinding::unwrap`] has checked it.
    pub fn peek(&self, presented: &str) -> Result<String, SessionError> {
        self.parse(presented).map(|(_, upstream, _)| upstream)
    }

    fn parse(&self, presented: &str) -> Result<(&BindingKey, String, Vec<u8>), SessionError> {
        let mut parts = presented.trim().split('.');
        let (Some(PREFIX), Some(key_id), Some(id), Some(tag), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(SessionError::Unrecognised);
        };
        let key = self
            .keys
            .iter()
            .find(|k| k.id == key_id)
            .ok_or(SessionError::Unrecognised)?;
        let upstream = URL_SAFE_NO_PAD
            .decode(id)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(SessionError::Unrecognised)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| SessionError::Unrecognised)?;
        Ok((key, upstream, tag))
    }

    /// The upstream's id inside a client's session id, if it belongs to `caller`.
    pub fn unwrap(&self, caller: &Caller, presented: &str) -> Result<String, SessionError> {
        let (key, upstream, tag) = self.parse(presented)?;
        let verifier = mac(key, caller, &upstream).ok_or(SessionError::Unrecognised)?;
        // `verify_slice` compares in constant time.
        if verifier.verify_slice(&tag).is_ok() {
            Ok(upstream)
        } else {
            Err(SessionError::OtherCaller)
        }
    }
}

#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawSessionKey {
    id: String,
    /// The secret, base64 (standard alphabet), at least 32 bytes.
    secret: String,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawSessions {
    binding_keys: Vec<RawSessionKey>,
}

impl RawSessions {
    pub fn compile(self) -> Result<SessionBinding, ConfigError> {
        if self.binding_keys.is_empty() {
            return Err(invalid("sessions.binding_keys", "needs at least one key"));
        }
        let mut keys = Vec::new();
        for (i, raw) in self.binding_keys.into_iter().enumerate() {
            let valid_id = !raw.id.is_empty()
                && raw.id.len() <= 16
                && raw
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid_id {
                return Err(invalid(
                    &format!("sessions.binding_keys[{i}].id"),
                    "1-16 characters of [A-Za-z0-9_-]",
                ));
            }
            let secret = STANDARD.decode(raw.secret.trim()).map_err(|e| {
                invalid(
                    &format!("sessions.binding_keys[{i}].secret"),
                    format!("not base64: {e}"),
                )
            })?;
            if secret.len() < 32 {
                return Err(invalid(
                    &format!("sessions.binding_keys[{i}].secret"),
                    "needs at least 32 bytes",
                ));
            }
            if keys.iter().any(|k: &BindingKey| k.id == raw.id) {
                return Err(invalid(
                    &format!("sessions.binding_keys[{i}].id"),
                    "repeated key id",
                ));
            }
            keys.push(BindingKey { id: raw.id, secret });
        }
        Ok(SessionBinding { keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn binding(keys: serde_json::Value) -> SessionBinding {
        serde_json::from_value::<RawSessions>(json!({ "binding_keys": keys }))
            .unwrap()
            .compile()
            .unwrap()
    }

    fn caller(sub: &str) -> Caller {
        Caller {
            issuer: "https://idp".into(),
            subject: sub.into(),
            ..Caller::default()
        }
    }

    fn secret(byte: u8) -> String {
        STANDARD.encode([byte; 32])
    }

    #[test]
    fn a_wrapped_id_unwraps_for_its_caller_only() {
        let b = binding(json!([{"id": "k1", "secret": secret(1)}]));
        let wrapped = b.wrap(&caller("alice"), "upstream-123").unwrap();
        assert!(wrapped.starts_with("mf1.k1."));
        assert!(wrapped.bytes().all(|c| (0x21..=0x7e).contains(&c)));
        assert_eq!(
            b.unwrap(&caller("alice"), &wrapped).unwrap(),
            "upstream-123"
        );
        assert_eq!(
            b.unwrap(&caller("bob"), &wrapped),
            Err(SessionError::OtherCaller)
        );
        let mut other_tenant = caller("alice");
        other_tenant.tenant = Some("globex".into());
        assert_eq!(
            b.unwrap(&other_tenant, &wrapped),
            Err(SessionError::OtherCaller)
        );
    }

    #[test]
    fn forged_and_foreign_ids_are_refused() {
        let b = binding(json!([{"id": "k1", "secret": secret(1)}]));
        let wrapped = b.wrap(&caller("alice"), "s1").unwrap();
        let swapped = wrapped.replace(&URL_SAFE_NO_PAD.encode("s1"), &URL_SAFE_NO_PAD.encode("s2"));
        assert_eq!(
            b.unwrap(&caller("alice"), &swapped),
            Err(SessionError::OtherCaller)
        );
        for bad in [
            "s1",
            "",
            "mf1.k1.x",
            "mf1.k9.czE.AAAA",
            "mf1.k1.!!.AAAA",
            "mf1.k1.czE.AAAA.x",
        ] {
            assert!(b.unwrap(&caller("alice"), bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_rotated_key_still_verifies_ids_it_signed() {
        let old = binding(json!([{"id": "k1", "secret": secret(1)}]));
        let rotated =
            binding(json!([{"id": "k2", "secret": secret(2)}, {"id": "k1", "secret": secret(1)}]));
        let issued = old.wrap(&caller("alice"), "s").unwrap();
        assert_eq!(rotated.unwrap(&caller("alice"), &issued).unwrap(), "s");
        assert!(rotated
            .wrap(&caller("alice"), "s")
            .unwrap()
            .starts_with("mf1.k2."));
    }

    #[test]
    fn weak_or_repeated_keys_are_refused() {
        let err = |keys: serde_json::Value| {
            serde_json::from_value::<RawSessions>(json!({ "binding_keys": keys }))
                .unwrap()
                .compile()
                .unwrap_err()
                .field
        };
        assert_eq!(
            err(json!([{"id": "k", "secret": "c2hvcnQ="}])),
            "sessions.binding_keys[0].secret"
        );
        assert_eq!(
            err(json!([{"id": "a.b", "secret": secret(1)}])),
            "sessions.binding_keys[0].id"
        );
        assert_eq!(
            err(json!([{"id": "k", "secret": secret(1)}, {"id": "k", "secret": secret(2)}])),
            "sessions.binding_keys[1].id"
        );
        assert_eq!(err(json!([])), "sessions.binding_keys");
    }
}
