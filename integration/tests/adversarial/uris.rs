//! Resource URIs a server resolves to another URI before it looks the
//! resource up (the Python SDK's pydantic `AnyUrl`, WHATWG `new URL()` in
//! the TypeScript SDK): a deny rule matched against the URI as written would
//! miss them. Each is refused with 400 / -32602 before the upstream sees a
//! byte (`filter/src/uri.rs`).

use crate::common::{config_denying, nothing_reached};
use anyhow::Result;
use mcp_filter_integration::idp::Issuer;
use mcp_filter_integration::{envoy_bin, post_raw, Envoy, EnvoySetup, Peer, PeerMode};
use serde_json::json;

fn read(uri: &str) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": uri}})
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn resource_uris_a_server_resolves_otherwise_are_refused() -> Result<()> {
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    let issuer = Issuer::start().await?;
    let peer = Peer::start(PeerMode::StatelessJson)?;
    let token = issuer.token("mallory", json!({}));
    let bearer = format!("Bearer {token}");
    let auth = ("authorization", bearer.as_str());
    let mut config = config_denying(Some("secret"));
    config["policy"]["rules"] = json!([
        {"name": "no-secrets", "resources": ["file:///secret/*"], "effect": "deny"},
        {"name": "files", "resources": ["*"], "effect": "allow"},
    ]);
    // Each names `file:///secret/key` to the servers named above.
    let uris = [
        "file:///docs/../secret/key",
        "file:///docs/%2e%2e/secret/key",
        "FILE:///secret/key",
        "file:/secret/key",
        "file:////secret/key",
        "file://localhost/secret/key",
        "file:///secret\\key",
    ];

    for allow_headers_stop in [true, false] {
        let mut setup = EnvoySetup::new(peer.port, config.clone());
        issuer.serve(&mut setup);
        setup.allow_headers_stop = allow_headers_stop;
        let envoy = Envoy::start(&bin, &setup)?;
        peer.forget().await?;
        for uri in uris {
            let r = post_raw(&envoy.url(), &[auth], read(uri)).await?;
            assert_eq!(
                r.status,
                400,
                "{uri} (flag {allow_headers_stop}): {}",
                r.text()
            );
            let v = r.json();
            assert_eq!(v["error"]["code"], -32602, "{uri}: {v}");
            assert_eq!(v["id"], 1, "{uri}: {v}");
        }
        nothing_reached(&peer, &envoy, "invalid_params", uris.len()).await?;
        // The URI as the servers write it is judged: denied, still nothing
        // upstream; another is allowed and reaches it.
        let denied = post_raw(&envoy.url(), &[auth], read("file:///secret/key")).await?;
        assert_eq!(denied.json()["error"]["code"], -32043, "{}", denied.text());
        assert!(peer.received().await?.is_empty());
        let ok = post_raw(&envoy.url(), &[auth], read("file:///docs/readme.md")).await?;
        assert_eq!(ok.status, 200, "{}", ok.text());
        assert_eq!(peer.received().await?.len(), 1);
    }
    Ok(())
}
