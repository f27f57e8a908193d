//! The answers the bridge gives itself over HTTP, before any MCP session
//! sees a request: a JSON-RPC error object (`id: null`) with the HTTP
//! status that fits. Owns: their one shape. Must not: answer an MCP
//! message a peer should answer (everything else is forwarded).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// `status` with `{"jsonrpc":"2.0","id":null,"error":{code, message}}`.
pub fn error(status: StatusCode, code: i64, message: &str) -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0", "id": null,
        "error": {"code": code, "message": message}
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A new session past `--max-sessions`: 503, retry in a second.
pub fn sessions_full(max: usize) -> Response {
    let mut response = error(
        StatusCode::SERVICE_UNAVAILABLE,
        -32000,
        &format!("the bridge serves at most {max} sessions; retry later"),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    response
}
