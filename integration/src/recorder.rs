//! A recording reverse proxy on loopback, for an upstream the tests cannot
//! instrument (npm's server-everything): it forwards every request as it
//! came (method, path, headers, body bytes), streams the answer back as it
//! arrives (SSE included), and records what it forwarded, so a test can
//! assert what reached the server. It must not change what it forwards.

use crate::Received;
use anyhow::Result;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::sync::{Arc, Mutex};

/// A running proxy in front of `127.0.0.1:<upstream>`.
pub struct Recorder {
    pub port: u16,
    log: Arc<Mutex<Vec<Received>>>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Shared {
    upstream: u16,
    client: reqwest::Client,
    log: Arc<Mutex<Vec<Received>>>,
}

/// Hop-by-hop headers (RFC 9110 section 7.6.1) and those the HTTP stacks set
/// themselves: not forwarded.
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

impl Recorder {
    pub async fn start(upstream: u16) -> Result<Self> {
        let log: Arc<Mutex<Vec<Received>>> = Arc::default();
        let shared = Shared {
            upstream,
            client: reqwest::Client::builder().no_proxy().build()?,
            log: log.clone(),
        };
        let app = Router::new().fallback(forward).with_state(shared);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { port, log, server })
    }

    /// Every request forwarded so far.
    pub fn received(&self) -> Vec<Received> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn forward(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, 64 << 20).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    if let Ok(mut log) = shared.log.lock() {
        log.push(Received {
            method: parts.method.to_string(),
            path: path.clone(),
            headers: headers.clone(),
            body: String::from_utf8_lossy(&bytes).into_owned(),
            body_len: bytes.len(),
        });
    }
    let url = format!("http://127.0.0.1:{}{path}", shared.upstream);
    let mut upstream = shared.client.request(parts.method, url);
    for (name, value) in parts.headers.iter() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            upstream = upstream.header(name, value);
        }
    }
    let answer = match upstream.body(bytes).send().await {
        Ok(answer) => answer,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            response = response.header(name, value);
        }
    }
    response
        .body(Body::from_stream(answer.bytes_stream()))
        .unwrap_or_else(|e| (StatusCode::BAD_GATEWAY, e.to_string()).into_response())
}
