//! JSON-RPC 2.0 wire pieces the filter writes: error codes, request ids, and the
//! one function that builds every error body. Parsing lives in `classify`.

use serde_json::value::RawValue;

/// Error codes the filter answers with (JSON-RPC 2.0 and MCP).
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// MCP 2026-07-28: mirrored HTTP headers missing, malformed or disagreeing with the body.
    pub const HEADER_MISMATCH: i64 = -32020;
    /// No session with that id for this caller (the code the TypeScript SDK uses).
    pub const SESSION_NOT_FOUND: i64 = -32001;
    /// HTTP 401: no valid token (the code echoes the HTTP status).
    pub const UNAUTHORIZED: i64 = -32041;
    /// HTTP 403: the policy denies the request, or more scopes are needed.
    pub const FORBIDDEN: i64 = -32043;
}

/// A request id exactly as the client wrote it (a JSON string or integer), so
/// that an error reply echoes it byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(Box<str>);

impl RequestId {
    /// Accepts a raw JSON value if it is a string or an integer (MCP forbids
    /// null and fractional ids).
    pub fn from_raw(raw: &RawValue) -> Option<Self> {
        let text = raw.get();
        let is_string = text.starts_with('"');
        let is_integer = {
            let digits = text.strip_prefix('-').unwrap_or(text);
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        };
        (is_string || is_integer).then(|| Self(text.into()))
    }

    /// Stands for a request the filter did not see (`null`, which no valid
    /// request carries), when reading an answer replayed on a resumed stream.
    pub fn unknown() -> Self {
        Self("null".into())
    }

    pub fn as_json(&self) -> &str {
        &self.0
    }
}

/// Builds `{"jsonrpc":"2.0","id":<id|null>,"error":{"code":..,"message":..}}`.
pub fn error_body(id: Option<&RequestId>, code: i64, message: &str) -> Vec<u8> {
    let id = id.map_or("null", RequestId::as_json);
    let message = serde_json::Value::String(message.to_string()).to_string();
    format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":{message}}}}}"#)
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    #[test]
    fn ids_are_strings_or_integers_only() {
        assert!(RequestId::from_raw(&raw("7")).is_some());
        assert!(RequestId::from_raw(&raw("-7")).is_some());
        assert!(RequestId::from_raw(&raw(r#""abc""#)).is_some());
        assert!(RequestId::from_raw(&raw("1.5")).is_none());
        assert!(RequestId::from_raw(&raw("1e3")).is_none());
        assert!(RequestId::from_raw(&raw("null")).is_none());
        assert!(RequestId::from_raw(&raw("{}")).is_none());
    }

    #[test]
    fn error_body_echoes_the_id_and_escapes_the_message() {
        let id = RequestId::from_raw(&raw(r#""a\"b""#)).unwrap();
        let body = error_body(Some(&id), code::INVALID_PARAMS, "bad \"name\"\n");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["jsonrpc"], "2.0");
        assert_eq!(v["id"], "a\"b");
        assert_eq!(v["error"]["code"], -32602);
        assert_eq!(v["error"]["message"], "bad \"name\"\n");
        let none = error_body(None, code::PARSE_ERROR, "x");
        assert!(String::from_utf8(none).unwrap().contains(r#""id":null"#));
    }
}
