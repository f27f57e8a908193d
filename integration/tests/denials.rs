//! A policy denial as each official SDK shows it to an application, for both
//! answers `policy.deny_with` offers. A denied call must read as "not
//! allowed" (JSON-RPC error -32043) while the session stays usable: the next
//! allowed call on it works. The server never receives the denied call.

use anyhow::Result;
use mcp_filter_integration::idp::{Issuer, AUDIENCE, ISSUER};
use mcp_filter_integration::sdk::{python_sdk, run_node_client, run_python_client, ts_sdk};
use mcp_filter_integration::{envoy_bin, Envoy, EnvoySetup, Peer, PeerMode, Received};
use rmcp::model::CallToolRequestParams;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::{json, Value};

fn config(deny_with: &str) -> Value {
    json!({
        "mcp_paths": ["/mcp"],
        "auth": {
            "issuers": [ISSUER], "audiences": [AUDIENCE],
            "remote_jwks": {"cluster": "idp", "path": "/jwks"},
            "resource_metadata": {"resource": AUDIENCE, "authorization_servers": [ISSUER]},
        },
        "policy": {"deny_with": deny_with, "rules": [
            {"name": "no-secret", "tools": ["secret"], "effect": "deny"},
            {"name": "rest", "tools": ["*"], "effect": "allow"},
        ]},
    })
}

fn steps(output: &str) -> Vec<Value> {
    output
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn step(steps: &[Value], name: &str) -> Value {
    steps
        .iter()
        .find(|s| s["step"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no step {name} in {steps:?}"))
}

fn secret_calls(received: &[Received]) -> usize {
    received
        .iter()
        .filter(|r| r.body.contains("\"secret\""))
        .count()
}

/// What rmcp's client shows: the denied call's error, then the allowed call's text.
async fn rmcp_view(url: String, token: &str) -> Result<(String, String)> {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url).auth_header(token),
    );
    let client = ().serve(transport).await?;
    let denied = client
        .call_tool(CallToolRequestParams::new("secret"))
        .await
        .expect_err("a denied call fails");
    let allowed = client
        .call_tool(CallToolRequestParams::new("echo").with_arguments(
            mcp_filter_integration::tool_args(json!({"message": "still here"})),
        ))
        .await
        .map(|r| mcp_filter_integration::tool_text(&r))
        .unwrap_or_else(|e| format!("failed: {e}"));
    client.cancel().await?;
    Ok((format!("{denied}"), allowed))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_sdk_shows_a_denial_as_not_allowed_on_a_live_session() -> Result<()> {
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    let Some(python) = python_sdk()? else {
        return Ok(());
    };
    let Some(ts) = ts_sdk()? else {
        return Ok(());
    };
    let issuer = Issuer::start().await?;
    let token = issuer.token("alice", json!({}));
    for deny_with in ["json_rpc_error", "http_403"] {
        let peer = Peer::start(PeerMode::Stateful)?;
        let mut setup = EnvoySetup::new(peer.port, config(deny_with));
        issuer.serve(&mut setup);
        let envoy = Envoy::start(&bin, &setup)?;
        let url = envoy.url();
        let args = [url.as_str(), token.as_str(), "secret", "echo"];

        let py =
            tokio::task::block_in_place(|| run_python_client(&python, "python_denial.py", &args))?;
        let js = tokio::task::block_in_place(|| run_node_client(&ts, "ts_denial.mjs", &args))?;
        let (rmcp_denied, rmcp_allowed) = rmcp_view(url.clone(), &token).await?;
        println!(
            "== deny_with {deny_with}\npython: {}\ntypescript: {}\nrmcp: {rmcp_denied} / {rmcp_allowed}",
            py.output, js.output
        );

        let (py, js) = (steps(&py.output), steps(&js.output));
        // Python: an MCPError with the code, either way; the session goes on.
        assert_eq!(step(&py, "denied")["code"], -32043, "{py:?}");
        assert_eq!(step(&py, "allowed")["text"], "still here", "{py:?}");
        // rmcp: the session goes on either way.
        assert_eq!(rmcp_allowed, "still here");
        let ts_denied = step(&js, "denied");
        match deny_with {
            "json_rpc_error" => {
                // TypeScript: a protocol error with the code, no onerror.
                assert_eq!(ts_denied["type"], "McpError", "{js:?}");
                assert_eq!(ts_denied["code"], -32043, "{js:?}");
                assert_eq!(step(&js, "onerror")["afterDenial"], 0, "{js:?}");
                assert!(rmcp_denied.contains("-32043"), "{rmcp_denied}");
            }
            _ => {
                // TypeScript: a transport error carrying the HTTP status,
                // and onerror fires: what applications take for a broken
                // connection. Why json_rpc_error is the default.
                assert_eq!(ts_denied["code"], 403, "{js:?}");
                assert!(
                    step(&js, "onerror")["afterDenial"].as_u64() > Some(0),
                    "{js:?}"
                );
                // rmcp: a transport error, not an MCP error.
                assert!(rmcp_denied.contains("403"), "{rmcp_denied}");
            }
        }
        assert_eq!(step(&js, "allowed")["text"], "still here", "{js:?}");
        assert_eq!(
            secret_calls(&peer.received().await?),
            0,
            "the server never sees a denied call"
        );
    }
    Ok(())
}
