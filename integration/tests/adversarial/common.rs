//! What the adversarial modules share: the filter configuration they attack
//! (JWT authentication through the test IdP's `idp` cluster, `/mcp` as the
//! endpoint, a policy that denies one tool and allows the rest), which each
//! module then adjusts for its own attack; and the check every refusal
//! ends with (the upstream received nothing, the refusals were counted).

use anyhow::Result;
use mcp_filter_integration::idp::{AUDIENCE, ISSUER};
use mcp_filter_integration::{Envoy, Peer};
use serde_json::{json, Value};

/// After `count` refused requests: `peer` received none of them, and Envoy
/// counted them as rejections for `reason`.
pub async fn nothing_reached(peer: &Peer, envoy: &Envoy, reason: &str, count: usize) -> Result<()> {
    let received = peer.received().await?;
    assert!(
        received.is_empty(),
        "the upstream received refused requests: {received:?}"
    );
    let scrape = envoy.prometheus().await?;
    assert_eq!(
        scrape.value("mcp_rejections_total", &[("reason", reason)]),
        Some(count as f64),
        "{}",
        scrape.text
    );
    Ok(())
}

/// Authentication through the test IdP, and a policy denying `tool`
/// (`None`: every tool allowed).
pub fn config_denying(tool: Option<&str>) -> Value {
    let mut rules = Vec::new();
    if let Some(tool) = tool {
        rules.push(json!({"name": "no-secret", "tools": [tool], "effect": "deny"}));
    }
    rules.push(json!({"name": "rest", "tools": ["*"], "effect": "allow"}));
    json!({
        "mcp_paths": ["/mcp"],
        "auth": {
            "issuers": [ISSUER], "audiences": [AUDIENCE],
            "remote_jwks": {"cluster": "idp", "path": "/jwks"},
            "resource_metadata": {"resource": AUDIENCE, "authorization_servers": [ISSUER]},
        },
        "policy": {"rules": rules},
    })
}
