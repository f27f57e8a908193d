//! The MCP authorization answers (spec 2025-06-18 / 2025-11-25): 401 with a
//! `WWW-Authenticate: Bearer resource_metadata=...` challenge, 403
//! `insufficient_scope` naming the scopes that would help, 403 for a denied
//! call, and the RFC 9728 protected resource metadata document itself.
//!
//! Fail closed, with the right status: a token the filter refused is a 401;
//! a token it could not judge (no keys yet, no clock) is a 503 with
//! `Retry-After`, never a pass and never a 401 that would make a client
//! throw a good token away.

use super::token::AuthFailure;
use super::ResourceMetadata;
use crate::jsonrpc::{code, error_body, RequestId};
use crate::reject::LocalReply;

/// A quoted-string parameter value (RFC 9110): quotes and backslashes escaped,
/// control characters dropped.
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_reply(status: u16, challenge: Option<String>, body: Vec<u8>) -> LocalReply {
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if let Some(challenge) = challenge {
        headers.push(("www-authenticate".to_string(), challenge));
    }
    LocalReply {
        status,
        headers,
        body,
    }
}

/// 401: no token, or one that failed verification. A failure that is the
/// filter's, not the token's (no clock), is a 503 instead: a client told its
/// token is invalid would throw a good token away.
pub fn unauthorized(failure: &AuthFailure, meta: &ResourceMetadata) -> LocalReply {
    if *failure == AuthFailure::NoClock {
        return cannot_judge(&failure.description());
    }
    let mut params = vec![format!("resource_metadata={}", quoted(&meta.url))];
    if !meta.challenge_scopes.is_empty() {
        params.push(format!(
            "scope={}",
            quoted(&meta.challenge_scopes.join(" "))
        ));
    }
    // RFC 6750 §3.1: a request without credentials gets no error code.
    if *failure != AuthFailure::MissingToken {
        params.push(r#"error="invalid_token""#.to_string());
        params.push(format!(
            "error_description={}",
            quoted(&failure.description())
        ));
    }
    json_reply(
        401,
        Some(format!("Bearer {}", params.join(", "))),
        error_body(None, code::UNAUTHORIZED, &failure.description()),
    )
}

/// 403 `insufficient_scope`: the call would be allowed with these scopes.
pub fn insufficient_scope(
    scopes: &[String],
    meta: &ResourceMetadata,
    id: Option<&RequestId>,
    what: &str,
) -> LocalReply {
    let challenge = format!(
        "Bearer error=\"insufficient_scope\", scope={}, resource_metadata={}, error_description={}",
        quoted(&scopes.join(" ")),
        quoted(&meta.url),
        quoted(&format!("{what} needs more scopes")),
    );
    json_reply(
        403,
        Some(challenge),
        error_body(
            id,
            code::FORBIDDEN,
            &format!("{what} needs more scopes: {}", scopes.join(" ")),
        ),
    )
}

/// The policy denies the request: the JSON-RPC error `-32043`, with HTTP
/// `status` (403, or 200 where the error itself is the answer to a request).
/// Names what was asked for, never why.
pub fn forbidden(id: Option<&RequestId>, what: &str, status: u16) -> LocalReply {
    json_reply(
        status,
        None,
        error_body(id, code::FORBIDDEN, &format!("{what} is not allowed")),
    )
}

/// 503: tokens cannot be checked yet (remote JWKS not loaded). Fails closed.
pub fn keys_unavailable() -> LocalReply {
    cannot_judge("authorization keys are not available yet; retry shortly")
}

/// 503 with `Retry-After`: the filter cannot judge tokens right now.
fn cannot_judge(message: &str) -> LocalReply {
    let mut reply = json_reply(503, None, error_body(None, code::INTERNAL_ERROR, message));
    reply.headers.push(("retry-after".into(), "2".into()));
    reply
}

/// The RFC 9728 document, served at the `.well-known` paths.
pub fn resource_metadata_document(meta: &ResourceMetadata) -> LocalReply {
    let mut doc = serde_json::Map::new();
    doc.insert("resource".into(), meta.resource.clone().into());
    doc.insert(
        "authorization_servers".into(),
        meta.authorization_servers.clone().into(),
    );
    if !meta.scopes_supported.is_empty() {
        doc.insert(
            "scopes_supported".into(),
            meta.scopes_supported.clone().into(),
        );
    }
    doc.insert("bearer_methods_supported".into(), vec!["header"].into());
    if let Some(docs) = &meta.resource_documentation {
        doc.insert("resource_documentation".into(), docs.clone().into());
    }
    let mut reply = json_reply(
        200,
        None,
        serde_json::Value::Object(doc).to_string().into_bytes(),
    );
    reply
        .headers
        .push(("cache-control".into(), "max-age=3600".into()));
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ResourceMetadata {
        ResourceMetadata {
            resource: "https://mcp.example.com/mcp".into(),
            url: "https://mcp.example.com/.well-known/oauth-protected-resource/mcp".into(),
            authorization_servers: vec!["https://idp.example.com".into()],
            scopes_supported: vec!["mcp:tools".into()],
            challenge_scopes: vec!["mcp:tools".into()],
            resource_documentation: None,
            paths: vec![],
        }
    }

    fn challenge(reply: &LocalReply) -> &str {
        reply
            .headers
            .iter()
            .find(|(k, _)| k == "www-authenticate")
            .map(|(_, v)| v.as_str())
            .unwrap()
    }

    #[test]
    fn a_missing_token_gets_the_bare_challenge_without_an_error_code() {
        let reply = unauthorized(&AuthFailure::MissingToken, &meta());
        assert_eq!(reply.status, 401);
        assert_eq!(
            challenge(&reply),
            r#"Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", scope="mcp:tools""#
        );
    }

    #[test]
    fn an_invalid_token_gets_invalid_token_with_a_description() {
        let reply = unauthorized(&AuthFailure::Expired, &meta());
        assert!(challenge(&reply)
            .contains(r#"error="invalid_token", error_description="the token has expired""#));
    }

    #[test]
    fn insufficient_scope_names_scopes_and_metadata() {
        let reply = insufficient_scope(&["a".into(), "b".into()], &meta(), None, "tool `x`");
        assert_eq!(reply.status, 403);
        let c = challenge(&reply);
        assert!(c.starts_with(r#"Bearer error="insufficient_scope", scope="a b", resource_metadata="https://mcp.example.com/"#), "{c}");
    }

    #[test]
    fn quoted_values_cannot_break_out_of_the_header() {
        assert_eq!(quoted("a\"b\\c\r\nd"), r#""a\"b\\cd""#);
    }

    #[test]
    fn the_metadata_document_is_rfc_9728_shaped() {
        let reply = resource_metadata_document(&meta());
        let v: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(v["resource"], "https://mcp.example.com/mcp");
        assert_eq!(v["authorization_servers"][0], "https://idp.example.com");
        assert_eq!(v["bearer_methods_supported"][0], "header");
    }
}
