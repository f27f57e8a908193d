//! `mcp-bridge`: serves MCP Streamable HTTP on loopback for a stdio MCP
//! server it spawns, so stdio servers can sit behind Envoy and mcp-filter.
//!
//! ```text
//! mcp-bridge [--bind 127.0.0.1] [--port 8081] [--path /mcp]
//!            [--output-transport streamable-http|sse|both] [--sse-path /sse] [--message-path /message]
//!            [--health-endpoint PATH]... [--cors [ORIGIN...]] [--shared] [--max-sessions 64]
//!            [--max-message-bytes 4194304] [--request-timeout-secs 300]
//!            [--idle-timeout-secs 300] [--allowed-host NAME[:PORT]]...
//!            [--allowed-origin ORIGIN]... [--allow-any-host] [--allow-any-origin]
//!            -- <command> [args...]
//! ```
//!
//! `mcp-bridge connect URL [--header "N: v"]... [--bearer T | --bearer-env VAR]
//! [--remote-transport streamable-http|sse]` goes the other way: a stdio MCP
//! server for a desktop client, forwarding to a remote Streamable HTTP (or
//! legacy SSE) server (e.g. behind Envoy and mcp-filter).
//!
//! Each MCP session gets its own child by default (stdio servers serve one
//! client); `--shared` multiplexes every session onto one child. Built on the
//! official Rust SDK: its Streamable HTTP server (sessions, SSE, 2026-07-28
//! stateless requests, 404 for unknown sessions, body limit, idle timeout)
//! on one side, a child's stdio on the other; the bridge itself only
//! forwards messages between the two, as their senders wrote them (`raw`).

mod child;
mod guard;
mod http_client;
mod legacy;
mod options;
mod proxy;
mod raw;
mod remote;
mod replies;
mod reply;
mod sse_client;
mod stamped;

use anyhow::Result;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use options::Options;
use proxy::{Bridge, Sessions};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::ServiceExt;
use std::sync::Arc;

fn log(line: &str) {
    tracing::info!("{line}");
}

/// Logs to stderr through `tracing`, rmcp's included: `RUST_LOG` when set
/// (e.g. `RUST_LOG=rmcp=debug`), else `--log-level` for the bridge and
/// warnings from everything else.
fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| match level {
            "off" => tracing_subscriber::EnvFilter::try_new("off"),
            level => tracing_subscriber::EnvFilter::try_new(format!("warn,mcp_bridge={level}")),
        })
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,mcp_bridge=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

/// Refuses a new session past `--max-sessions` (503, a JSON-RPC error) before
/// any child is spawned for it.
async fn limit_sessions(
    State(sessions): State<Arc<Sessions>>,
    request: Request,
    next: Next,
) -> Response {
    let new_session = request.method() == axum::http::Method::POST
        && !request.headers().contains_key("mcp-session-id");
    if new_session && sessions.is_full() {
        return reply::sessions_full(sessions.max());
    }
    next.run(request).await
}

/// `--cors`: preflights answered, and CORS headers on every answer, for
/// `origins` (none given: any), exposing what a browser client must read.
fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, HeaderValue, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let allow = if origins.is_empty() {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    let names = |list: &[&'static str]| -> Vec<HeaderName> {
        list.iter().map(|n| HeaderName::from_static(n)).collect()
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers(names(&[
            "authorization",
            "content-type",
            "accept",
            "mcp-session-id",
            "mcp-protocol-version",
            "mcp-method",
            "mcp-name",
            "last-event-id",
        ]))
        .expose_headers(names(&["mcp-session-id", "www-authenticate"]))
        .max_age(std::time::Duration::from_secs(600))
}

/// `connect`: one stdio session (this process's stdin/stdout) forwarded to
/// the remote server; stdout carries only the protocol, logs go to stderr.
async fn serve_stdio(options: Arc<Options>) -> Result<()> {
    let sessions = Arc::new(Sessions::new(1));
    let bridge = Bridge::new(options.clone(), sessions, None);
    let stdio = raw::Lines::new(
        tokio::io::BufReader::new(tokio::io::stdin()),
        tokio::io::stdout(),
        options.max_message_bytes,
        None,
    )
    .answering();
    let running = bridge.serve(stdio).await?;
    tokio::select! {
        _ = running.waiting() => {}
        _ = child::termination() => log("shutting down"),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let options = Arc::new(Options::from_env());
    init_logging(options.log_level.as_str());
    if options.connect.is_some() {
        return serve_stdio(options).await;
    }
    let sessions = Arc::new(Sessions::new(options.max_sessions));
    let shared = options
        .shared
        .then(|| Arc::new(proxy::SharedChild::new(options.clone())));

    let mut manager = LocalSessionManager::default();
    manager.session_config.keep_alive = Some(options.idle_timeout);
    let shutdown = tokio_util::sync::CancellationToken::new();
    // Sessions answer over SSE; a 2026-07-28 request without a session gets
    // JSON unless the child sends something before its answer.
    let config = StreamableHttpServerConfig::default()
        .with_json_response(true)
        .with_max_request_body_bytes(options.max_message_bytes)
        .with_cancellation_token(shutdown.clone())
        // `guard` checks Host and Origin in front of everything.
        .disable_allowed_hosts()
        .disable_allowed_origins();
    let factory = {
        let (options, sessions, shared) = (options.clone(), sessions.clone(), shared.clone());
        move || {
            Ok(Bridge::new(
                options.clone(),
                sessions.clone(),
                shared.clone(),
            ))
        }
    };
    // A client's answers to the child's requests pass whole (`replies`).
    let manager = replies::WholeReplies(manager);
    let service = StreamableHttpService::new(factory, Arc::new(manager), config);
    // The last layer runs first: Host and Origin before anything else.
    let mut app = axum::Router::new();
    if options.output_transport.streamable_http() {
        app = app
            .nest_service(&options.path, service)
            .layer(middleware::from_fn_with_state(
                options.max_message_bytes,
                raw::whole_messages,
            ))
            .layer(middleware::from_fn_with_state(
                sessions.clone(),
                limit_sessions,
            ));
    }
    if options.output_transport.sse() {
        let legacy = Arc::new(legacy::Legacy::new(
            options.clone(),
            sessions.clone(),
            shared.clone(),
        ));
        app = app.merge(
            axum::Router::new()
                .route(&options.sse_path, axum::routing::get(legacy::open_stream))
                .route(
                    &options.message_path,
                    axum::routing::post(legacy::post_message),
                )
                .with_state(legacy),
        );
    }
    for path in &options.health_endpoints {
        app = app.route(path, axum::routing::get(|| async { "ok" }));
    }
    if let Some(origins) = &options.cors {
        app = app.layer(cors(origins));
    }
    let app = app.layer(middleware::from_fn_with_state(
        Arc::new(guard::Guard::new(&options)),
        guard::check_host_and_origin,
    ));

    let listener = tokio::net::TcpListener::bind((options.bind, options.port)).await?;
    println!("listening on {}", listener.local_addr()?);
    log(&format!(
        "serving `{}` ({} child per session)",
        options.command.join(" "),
        if options.shared { "one shared" } else { "one" }
    ));
    log(&format!(
        "accepting Host {} and Origin {}",
        if options.any_host {
            "(any: --allow-any-host)".to_string()
        } else {
            options.allowed_hosts.join(", ")
        },
        if options.any_origin {
            "(any: --allow-any-origin)".to_string()
        } else {
            let mut origins = vec!["none or http(s) on those hosts".to_string()];
            origins.extend(options.allowed_origins.iter().cloned());
            origins.join(", ")
        }
    ));
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let stop = shutdown.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            child::termination().await;
            log("shutting down: ending sessions and their children");
            stop.cancel();
        })
        .await?;
    // Sessions end with the server: their children are killed and reaped as
    // the session services drop; the shared child goes with the last handle.
    drop(shared);
    sessions
        .wait_until_empty(std::time::Duration::from_secs(5))
        .await;
    child::reap_all().await;
    Ok(())
}
