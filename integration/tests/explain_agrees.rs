//! `mcp-filter explain` and the filter in a real Envoy agree: the same
//! table of callers and requests, each sent through Envoy (with a token for
//! the caller's claims) and explained offline (with those claims): whether
//! it reaches the server, and if not, the status and JSON-RPC error the
//! client gets. Runs against the artifact the suite runs (MCP_FILTER_SHELL).

use anyhow::{Context, Result};
use mcp_filter_integration::idp::{secured_config, Issuer};
use mcp_filter_integration::{
    envoy_bin, mcp_filter_cli, post_raw, Envoy, EnvoySetup, Peer, PeerMode,
};
use serde_json::{json, Value};
use std::process::Command;

#[tokio::test(flavor = "multi_thread")]
async fn explain_and_the_filter_agree_on_every_case_of_the_table() -> Result<()> {
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    let mcp_filter = mcp_filter_cli()?;
    let issuer = Issuer::start().await?;
    let peer = Peer::start(PeerMode::StatelessJson)?;
    let config = secured_config();
    let mut setup = EnvoySetup::new(peer.port, config.clone());
    issuer.serve(&mut setup);
    let envoy = Envoy::start(&bin, &setup)?;
    let dir = std::env::temp_dir().join(format!("mcp-filter-explain-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config_path = dir.join("config.json");
    std::fs::write(&config_path, config.to_string())?;

    // (subject, extra claims, method, tool)
    let table = [
        (
            "alice",
            json!({"tenant": "acme", "scope": "mcp:tools"}),
            "tools/call",
            "add",
        ),
        (
            "alice",
            json!({"tenant": "acme", "scope": "mcp:tools"}),
            "tools/call",
            "big",
        ),
        (
            "alice",
            json!({"tenant": "acme", "scope": "mcp:tools"}),
            "tools/call",
            "secret",
        ),
        (
            "root",
            json!({"tenant": "acme", "scope": "mcp:tools mcp:admin"}),
            "tools/call",
            "secret",
        ),
        (
            "gina",
            json!({"tenant": "globex", "scope": "mcp:tools"}),
            "tools/call",
            "echo",
        ),
        (
            "gina",
            json!({"tenant": "globex", "scope": "mcp:tools"}),
            "tools/call",
            "add",
        ),
        ("nobody", json!({"scope": "mcp:tools"}), "tools/call", "add"),
        ("alice", json!({"tenant": "acme"}), "prompts/get", "greet"),
        ("alice", json!({"tenant": "acme"}), "tools/list", ""),
    ];
    for (sub, extra, method, tool) in table {
        let what = format!("{sub} {extra} {method} {tool}");
        let params = match method {
            "tools/call" | "prompts/get" => {
                json!({"name": tool, "arguments": {"a": 1, "b": 2, "message": "x"}})
            }
            _ => json!({}),
        };
        let body =
            json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).to_string();
        peer.forget().await?;
        let auth = issuer.bearer(sub, extra.clone());
        let through = post_raw(
            &envoy.url(),
            &[("authorization", auth.as_str())],
            body.clone(),
        )
        .await?;
        let reached = !peer.received().await?.is_empty();

        let body_path = dir.join("body.json");
        std::fs::write(&body_path, &body)?;
        let mut claims = extra.clone();
        claims["sub"] = json!(sub);
        let out = Command::new(&mcp_filter)
            .arg("explain")
            .arg(&config_path)
            .arg("--json")
            .args(["--claims", &claims.to_string()])
            .arg("--body")
            .arg(&body_path)
            .output()?;
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let explained: Value = serde_json::from_slice(&out.stdout).context("explain --json")?;

        assert_eq!(
            explained["forwarded"],
            json!(reached),
            "{what}: {explained} vs {}",
            through.text()
        );
        if !reached {
            assert_eq!(
                explained["answer"]["status"],
                json!(through.status),
                "{what}: {explained}"
            );
            assert_eq!(
                explained["answer"]["body"]["error"]["code"],
                through.json()["error"]["code"],
                "{what}: {explained} vs {}",
                through.text()
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
