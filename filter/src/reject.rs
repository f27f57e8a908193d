//! Downstream errors: why the filter answers a request itself instead of
//! forwarding it, and the spec-shaped reply (HTTP status + JSON-RPC error) for each.

use crate::jsonrpc::{code, error_body, RequestId};

/// Why a request was refused. Each reason has one HTTP status, one JSON-RPC
/// code and one metric label, so the three can never disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The body is not JSON (syntax error, truncated, bad UTF-8, too deep).
    ParseError,
    /// JSON, but not a JSON-RPC 2.0 message (wrong shape, duplicate keys, bad id).
    InvalidRequest,
    /// A known method whose params the filter needs (name, uri) are missing or mistyped.
    InvalidParams,
    /// A JSON-RPC batch while batches are not allowed.
    BatchNotAllowed,
    /// MCP 2026-07-28 mirrored headers missing, malformed or disagreeing with the body.
    HeaderMismatch,
    /// Body larger than `max_request_bytes`.
    TooLarge,
    /// POST whose `Content-Type` is not JSON.
    UnsupportedMediaType,
    /// A `Content-Encoding` the filter cannot read (it would have to trust bytes it cannot see).
    UnsupportedEncoding,
    /// A method the MCP endpoint does not serve, with `non_mcp_traffic: reject`.
    MethodNotAllowed,
    /// A path that is neither the MCP endpoint nor public, with `non_mcp_traffic: reject`.
    NotFound,
    /// A GET, DELETE or OPTIONS to the MCP endpoint that carries a body.
    BodyNotAllowed,
    /// A request path servers could read in different ways (an encoded `/`,
    /// a control character, a double escape), refused while the filter guards anything.
    AmbiguousPath,
    /// A tool or prompt name no backend publishes (unknown, or hidden by exposure).
    UnknownName,
    /// The named tool lives on a backend this request cannot be routed to
    /// (its headers already left naming another).
    Unroutable,
    /// A key a lenient decoder could read as one the filter reads (`Name`,
    /// `name\u0000`, `paramſ`...): the server might judge another request.
    AmbiguousKey,
    /// A call of a pinned tool last listed with another definition than its pin.
    ToolChanged,
    /// A call of a tool no pin names, while unpinned tools are hidden.
    ToolUnpinned,
}

impl Reason {
    pub fn status(self) -> u16 {
        match self {
            Reason::TooLarge => 413,
            Reason::UnsupportedMediaType | Reason::UnsupportedEncoding => 415,
            Reason::MethodNotAllowed => 405,
            Reason::NotFound => 404,
            Reason::ToolChanged | Reason::ToolUnpinned => 403,
            _ => 400,
        }
    }

    pub fn code(self) -> i64 {
        match self {
            Reason::ParseError => code::PARSE_ERROR,
            Reason::InvalidParams
            | Reason::UnknownName
            | Reason::ToolChanged
            | Reason::ToolUnpinned => code::INVALID_PARAMS,
            Reason::HeaderMismatch => code::HEADER_MISMATCH,
            _ => code::INVALID_REQUEST,
        }
    }

    /// Every reason, for the series defined when the configuration loads.
    pub const ALL: &'static [Reason] = &[
        Reason::ParseError,
        Reason::InvalidRequest,
        Reason::InvalidParams,
        Reason::BatchNotAllowed,
        Reason::HeaderMismatch,
        Reason::TooLarge,
        Reason::UnsupportedMediaType,
        Reason::UnsupportedEncoding,
        Reason::MethodNotAllowed,
        Reason::NotFound,
        Reason::BodyNotAllowed,
        Reason::AmbiguousPath,
        Reason::UnknownName,
        Reason::Unroutable,
        Reason::AmbiguousKey,
        Reason::ToolChanged,
        Reason::ToolUnpinned,
    ];

    /// The `reason` label of the rejection counter.
    pub fn label(self) -> &'static str {
        match self {
            Reason::ParseError => "parse_error",
            Reason::InvalidRequest => "invalid_request",
            Reason::InvalidParams => "invalid_params",
            Reason::BatchNotAllowed => "batch_not_allowed",
            Reason::HeaderMismatch => "header_mismatch",
            Reason::TooLarge => "too_large",
            Reason::UnsupportedMediaType => "unsupported_media_type",
            Reason::UnsupportedEncoding => "unsupported_encoding",
            Reason::MethodNotAllowed => "method_not_allowed",
            Reason::NotFound => "not_found",
            Reason::BodyNotAllowed => "body_not_allowed",
            Reason::AmbiguousPath => "ambiguous_path",
            Reason::UnknownName => "unknown_name",
            Reason::Unroutable => "unroutable",
            Reason::AmbiguousKey => "ambiguous_key",
            Reason::ToolChanged => "tool_changed",
            Reason::ToolUnpinned => "tool_unpinned",
        }
    }
}

/// A refused request: the reason, the request id when it could be read, and a
/// human-readable detail that names what was wrong (never policy internals).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: Reason,
    pub id: Option<RequestId>,
    pub detail: String,
}

impl Rejection {
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            id: None,
            detail: detail.into(),
        }
    }

    pub fn with_id(mut self, id: Option<RequestId>) -> Self {
        self.id = id;
        self
    }

    pub fn reply(&self) -> LocalReply {
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        if self.reason == Reason::MethodNotAllowed {
            headers.push(("allow".to_string(), "GET, POST, DELETE".to_string()));
        }
        LocalReply {
            status: self.reason.status(),
            headers,
            body: error_body(self.id.as_ref(), self.reason.code(), &self.detail),
        }
    }
}

/// A response the filter sends itself; the upstream never sees the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Shortens a client-supplied value for an error message: bounded, and with
/// control characters shown escaped, so a reply never reflects a huge or
/// terminal-garbling string.
pub fn quote(value: &str) -> String {
    const MAX: usize = 128;
    let mut out: String = value
        .chars()
        .take(MAX)
        .flat_map(char::escape_debug)
        .collect();
    if value.chars().nth(MAX).is_some() {
        out.push('…');
    }
    format!("`{out}`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_maps_to_one_status_and_code() {
        assert_eq!(Reason::ParseError.status(), 400);
        assert_eq!(Reason::ParseError.code(), -32700);
        assert_eq!(Reason::InvalidRequest.code(), -32600);
        assert_eq!(Reason::HeaderMismatch.code(), -32020);
        assert_eq!(Reason::HeaderMismatch.status(), 400);
        assert_eq!(Reason::TooLarge.status(), 413);
        assert_eq!(Reason::UnsupportedEncoding.status(), 415);
    }

    #[test]
    fn reply_is_json_with_the_request_id() {
        let id =
            RequestId::from_raw(&serde_json::value::RawValue::from_string("9".into()).unwrap());
        let reply = Rejection::new(Reason::InvalidParams, "missing name")
            .with_id(id)
            .reply();
        assert_eq!(reply.status, 400);
        let v: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(v["id"], 9);
        assert_eq!(v["error"]["code"], -32602);
        assert_eq!(v["error"]["message"], "missing name");
    }

    #[test]
    fn quote_bounds_and_escapes_client_values() {
        assert_eq!(quote("a\nb"), "`a\\nb`");
        let long = "x".repeat(500);
        let q = quote(&long);
        assert!(q.chars().count() < 140, "{q}");
        assert!(q.ends_with("…`"));
    }
}
