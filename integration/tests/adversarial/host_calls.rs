//! The header edits security depends on, in a real Envoy with and without
//! `allow_on_headers_stop_iteration`: the client's token never reaches the
//! upstream (the configured credential does), and client-sent routing
//! headers are replaced by the filter's own or removed.
//!
//! Envoy does not refuse these edits in practice, so what the shell does
//! when it does (the request ends with a local 500, or a reset if that reply
//! is refused too; never "log and go on") is tested against a fake host in
//! `filter/src/wasm/steps.rs`.

use crate::common::config_denying;
use anyhow::Result;
use mcp_filter_integration::idp::Issuer;
use mcp_filter_integration::{envoy_bin, post_raw, Envoy, EnvoySetup, Peer, PeerMode};
use serde_json::{json, Value};

fn config(routing_headers: bool) -> Value {
    let mut config = config_denying(None);
    config["routing_headers"] = json!({"enabled": routing_headers});
    config["auth"]["upstream_authorization"] = json!("Bearer upstream-credential");
    config
}

#[tokio::test(flavor = "multi_thread")]
async fn the_clients_token_and_routing_headers_never_reach_the_upstream() -> Result<()> {
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    let issuer = Issuer::start().await?;
    let peer = Peer::start(PeerMode::StatelessJson)?;
    let token = issuer.token("alice", json!({}));
    let bearer = format!("Bearer {token}");
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}"#;
    let spoofed = [
        ("authorization", bearer.as_str()),
        ("x-mcp-method", "ping"),
        ("x-mcp-tool", "secret"),
    ];
    // Routing headers need held request headers, hence the flag.
    for (allow_headers_stop, routing_headers) in [(true, true), (true, false), (false, false)] {
        let flag = format!("flag {allow_headers_stop}, routing headers {routing_headers}");
        let mut setup = EnvoySetup::new(peer.port, config(routing_headers));
        issuer.serve(&mut setup);
        setup.allow_headers_stop = allow_headers_stop;
        let envoy = Envoy::start(&bin, &setup)?;
        peer.forget().await?;

        let r = post_raw(&envoy.url(), &spoofed, call).await?;
        assert_eq!(r.status, 200, "{flag}: {}", r.text());
        let received = peer.received().await?;
        let [seen] = received.as_slice() else {
            panic!("{flag}: the upstream saw {received:?}");
        };
        assert_eq!(
            seen.header("authorization"),
            Some("Bearer upstream-credential"),
            "{flag}"
        );
        assert!(
            seen.headers.iter().all(|(_, v)| !v.contains(&token)),
            "{flag}: the client's token reached the upstream"
        );
        let (method, tool) = if routing_headers {
            (Some("tools/call"), Some("echo"))
        } else {
            (None, None)
        };
        assert_eq!(seen.header("x-mcp-method"), method, "{flag}");
        assert_eq!(seen.header("x-mcp-tool"), tool, "{flag}");

        // A refused request: the upstream gets nothing, not even headers.
        peer.forget().await?;
        let forged = format!("Bearer {}.x", &token[..token.len() - 2]);
        let r = post_raw(&envoy.url(), &[("authorization", forged.as_str())], call).await?;
        assert_eq!(r.status, 401, "{flag}: {}", r.text());
        assert!(r.json()["error"]["code"].is_i64(), "{flag}: {}", r.text());
        assert!(peer.received().await?.is_empty(), "{flag}");
        assert!(
            envoy.log().lines().all(|l| !l.contains("panicked")),
            "{}",
            envoy.log()
        );
    }
    Ok(())
}
