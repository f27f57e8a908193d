//! Request paths and methods: with `auth` or `policy` on, nothing an MCP
//! server could take as an MCP request passes the filter unjudged. Envoy here
//! routes every path to the server (`prefix: /`, no path normalisation), the
//! worst case the filter must hold alone; requests go out with their exact
//! bytes (no client normalises `/x/../mcp` or `%6d`).

use crate::common::config_denying;
use anyhow::Result;
use mcp_filter_integration::idp::Issuer;
use mcp_filter_integration::raw_http::{self, Answer};
use mcp_filter_integration::{envoy_bin, Envoy, EnvoySetup, Peer, PeerMode};
use serde_json::{json, Value};

fn config() -> Value {
    let mut config = config_denying(Some("secret"));
    config["public_paths"] = json!(["/healthz"]);
    config
}

const SECRET_CALL: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"secret","arguments":{}}}"#;
const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

/// Every spelling of the MCP endpoint seen reaching a server unjudged.
fn mcp_spellings(port: u16) -> Vec<String> {
    let mut paths: Vec<String> = [
        "/mcp/",
        "/mcp/x",
        "/mcp/.",
        "/mcp//",
        "//mcp",
        "/%6dcp",
        "/%6Dcp/",
        "/MCP",
        "/Mcp/",
        "/mcp;x",
        "/mcp;x/",
        "/x/../mcp",
        "/./mcp",
        "/healthz/../mcp",
        "/mcp/../healthz",
        "/mcp?x=1",
        "/mcp/?x=1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // The absolute form of the request target.
    paths.push(format!("http://127.0.0.1:{port}/mcp/"));
    paths
}

/// Paths no single reading can be given to.
const AMBIGUOUS: &[&str] = &[
    "/mcp%2f",
    "/mcp%2F",
    "/x%2f..%2fmcp",
    "/mcp%5c",
    "/mcp%00",
    "/%256dcp",
    "/mcp%zz",
];

fn json_headers(token: Option<&str>) -> Vec<(&'static str, String)> {
    let mut h = vec![
        ("content-type", "application/json".to_string()),
        ("accept", "application/json, text/event-stream".to_string()),
    ];
    if let Some(t) = token {
        h.push(("authorization", format!("Bearer {t}")));
    }
    h
}

fn send(
    envoy: &Envoy,
    http2: bool,
    method: &str,
    target: &str,
    token: Option<&str>,
    body: &str,
) -> Result<Answer> {
    let owned = json_headers(token);
    let headers: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    if http2 {
        raw_http::http2(envoy.port, method, target, &headers, body.as_bytes())
    } else {
        raw_http::http1(envoy.port, method, target, &headers, body.as_bytes())
    }
}

/// A refusal by the filter: the status, a JSON-RPC error, and not an upstream
/// answer. Two other outcomes also leave the server without the message:
/// Envoy resetting the stream (status 0, HTTP/2), and, when the filter lets
/// the headers go on while it reads the body (routing headers off), the
/// server answering those headers early with its own 404 for a path it does
/// not serve (axum's fallback for `/MCP`): the body, held by Envoy until the
/// filter has judged it, never follows.
fn assert_refused(a: &Answer, status: u16, what: &str) {
    if a.status == 0 || (a.status == 404 && a.body.is_empty() && status != 401) {
        return;
    }
    assert_eq!(a.status, status, "{what}: {} {:?}", a.body, a.headers);
    assert!(!a.from_upstream(), "{what}: answered by the upstream");
    let v = a.json();
    assert_eq!(v["jsonrpc"], "2.0", "{what}: {}", a.body);
    assert!(v["error"]["code"].is_i64(), "{what}: {}", a.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_spelling_of_the_mcp_path_passes_unjudged() -> Result<()> {
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    let issuer = Issuer::start().await?;
    let peer = Peer::start(PeerMode::StatelessJson)?;
    let token = issuer.token("mallory", json!({}));

    for allow_headers_stop in [true, false] {
        let mut setup = EnvoySetup::new(peer.port, config());
        issuer.serve(&mut setup);
        setup.allow_headers_stop = allow_headers_stop;
        let envoy = Envoy::start(&bin, &setup)?;
        peer.forget().await?;
        let flag = format!("flag {allow_headers_stop}");

        for http2 in [false, true] {
            let paths = if http2 {
                // curl sends the absolute form as an :authority + :path anyway.
                mcp_spellings(envoy.port)
                    .into_iter()
                    .filter(|p| p.starts_with('/'))
                    .collect()
            } else {
                mcp_spellings(envoy.port)
            };
            for path in &paths {
                let what = format!("{path} (http2 {http2}, {flag})");
                // No token: the MCP 401 challenge, even for initialize.
                let a = send(&envoy, http2, "POST", path, None, INITIALIZE)?;
                assert_refused(&a, 401, &format!("initialize without a token to {what}"));
                assert!(
                    a.status == 0 || a.header("www-authenticate").is_some(),
                    "{what}: {a:?}"
                );
                // A token, but the policy denies the tool.
                let a = send(&envoy, http2, "POST", path, Some(&token), SECRET_CALL)?;
                assert_refused(&a, 200, &format!("denied call to {what}"));
            }
            for path in AMBIGUOUS {
                let what = format!("{path} (http2 {http2}, {flag})");
                let a = send(&envoy, http2, "POST", path, Some(&token), SECRET_CALL)?;
                // Envoy's own codec may refuse some of these first (a 400 or,
                // over HTTP/2, a reset stream).
                assert!(a.status == 400 || a.status == 0, "{what}: {}", a.body);
                assert!(!a.from_upstream(), "{what}");
            }
        }
        // Another path: refused (non_mcp_traffic defaults to reject with auth).
        let a = send(&envoy, false, "POST", "/other", None, SECRET_CALL)?;
        assert_refused(&a, 404, "POST /other");
        // A body on a method other than POST to the endpoint is never forwarded.
        for (method, path) in [
            ("OPTIONS", "/mcp"),
            ("OPTIONS", "/mcp/"),
            ("PUT", "/mcp"),
            ("PATCH", "/MCP"),
        ] {
            let a = send(&envoy, false, method, path, None, SECRET_CALL)?;
            assert!(
                (400..=405).contains(&a.status) && !a.from_upstream(),
                "{method} {path} with a body ({flag}): {} {}",
                a.status,
                a.body
            );
        }

        // What may pass does pass: the public path, a preflight without a
        // body, and a permitted call to the endpoint itself.
        let health = raw_http::http1(envoy.port, "GET", "/healthz", &[], b"")?;
        assert!(health.from_upstream(), "GET /healthz ({flag})");
        let preflight = raw_http::http1(
            envoy.port,
            "OPTIONS",
            "/mcp",
            &[
                ("origin", "http://app.test"),
                ("access-control-request-method", "POST"),
            ],
            b"",
        )?;
        assert!(preflight.from_upstream(), "preflight ({flag})");
        let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"ok"}}}"#;
        let ok = send(&envoy, false, "POST", "/mcp", Some(&token), call)?;
        assert_eq!(ok.status, 200, "permitted call ({flag}): {}", ok.body);

        // The server recorded exactly the two MCP-path ones (it records what
        // its MCP routes receive; `/healthz` answered above from its fallback).
        let received = peer.received().await?;
        let seen: Vec<String> = received
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert_eq!(
            seen,
            ["OPTIONS /mcp", "POST /mcp"],
            "the upstream received ({flag}): {received:#?}"
        );
        assert!(received.iter().all(|r| !r.body.contains("secret")));
        assert!(
            envoy.log().lines().all(|l| !l.contains("panicked")),
            "{}",
            envoy.log()
        );
    }
    Ok(())
}

/// The same spellings in front of npm's server-everything (Express: case
/// and a trailing slash ignored): none reaches it without a token.
#[tokio::test(flavor = "multi_thread")]
async fn server_everything_gets_no_unjudged_spelling_either() -> Result<()> {
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    let Some(everything) = mcp_filter_integration::everything::Everything::start()? else {
        return Ok(());
    };
    let issuer = Issuer::start().await?;
    let token = issuer.token("mallory", json!({}));
    let mut setup = EnvoySetup::new(everything.port, config());
    issuer.serve(&mut setup);
    setup.allow_headers_stop = false;
    let envoy = Envoy::start(&bin, &setup)?;
    for path in mcp_spellings(envoy.port) {
        let a = send(&envoy, false, "POST", &path, None, INITIALIZE)?;
        assert_refused(&a, 401, &format!("initialize without a token to {path}"));
    }
    // With a token the same spellings are judged, and allowed ones served.
    let a = send(&envoy, false, "POST", "/MCP/", Some(&token), INITIALIZE)?;
    assert!(a.from_upstream(), "{} {}", a.status, a.body);
    Ok(())
}
