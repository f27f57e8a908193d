//! Requests the filter sends to a backend itself, through an Envoy cluster
//! (a listing gathered from every backend, a call relayed to the backend its
//! headers did not go to), and the answers the shell hands back.
//!
//! Owns: the shape of such a request (pseudo-headers, content negotiation,
//! which client headers go with it) and of the answer. Must not: decide what
//! is sent or what the answer means (`aggregate` and `relay` do), or name a
//! host ABI (each shell turns a [`Fetch`] into its own callout).

use crate::backends::{Backend, BackendId};

/// One request the shell sends to a backend cluster on the filter's behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    pub backend: BackendId,
    pub cluster: String,
    /// Every header, pseudo-headers first.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout_ms: u64,
}

/// A backend's answer as Envoy delivered it; `status` is `None` when the
/// call failed (connection refused, reset, timeout).
#[derive(Debug, Clone, Copy)]
pub struct BackendAnswer<'a> {
    pub status: Option<u16>,
    pub content_type: Option<&'a str>,
    /// `Content-Encoding`, if the backend set one: the filter asks for none
    /// and cannot read (or vouch for) an encoded answer.
    pub content_encoding: Option<&'a str>,
    pub body: &'a [u8],
}

impl BackendAnswer<'_> {
    /// Whether the body is encoded (anything but absent or `identity`).
    pub fn encoded(&self) -> bool {
        self.content_encoding
            .is_some_and(|e| !e.trim().is_empty() && !e.trim().eq_ignore_ascii_case("identity"))
    }
}

/// An MCP POST of `body` to `server` (index `backend`): the client's
/// `forward`ed headers (protocol version, mirrored method, credential) and,
/// if given, the session id that backend knows.
pub fn post(
    server: &Backend,
    backend: BackendId,
    forward: &[(String, String)],
    session: Option<&str>,
    body: Vec<u8>,
    timeout_ms: u64,
) -> Fetch {
    let mut headers = vec![
        (":method".to_string(), "POST".to_string()),
        (":path".to_string(), server.path.clone()),
        (":authority".to_string(), server.authority.clone()),
        ("content-type".to_string(), "application/json".to_string()),
        (
            "accept".to_string(),
            "application/json, text/event-stream".to_string(),
        ),
    ];
    headers.extend(forward.iter().cloned());
    if let Some(session) = session {
        headers.push(("mcp-session-id".to_string(), session.to_string()));
    }
    Fetch {
        backend,
        cluster: server.cluster.clone(),
        headers,
        body,
        timeout_ms,
    }
}
