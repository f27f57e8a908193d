//! A request that waits for the JWKS, against a real Envoy: what it and its
//! neighbours do meanwhile must not change what reaches the upstream.
//! - A call whose keys are fetched first is routed on the filter's headers,
//!   not on the ones the client sent (`x-mcp-backend` spoofed).
//! - Another request's backend answer, arriving while the JWKS fetch is in
//!   flight, is not taken for the JWKS: a backend answering with a key set
//!   of its own cannot mint tokens.

use crate::common::config_denying;
use anyhow::{Context, Result};
use axum::routing::post as on_post;
use axum::{Json, Router};
use mcp_filter_integration::idp::{claims, Idp, SigningKey};
use mcp_filter_integration::{envoy_bin, post_raw, Envoy, EnvoySetup, Peer, PeerMode, RawResponse};
use serde_json::{json, Value};
use std::time::Duration;

/// Two backends: `alpha` (the default route) and `beta` (`x-mcp-backend:
/// beta`), behind JWKS authentication.
fn two_backends(alpha: u16, beta: u16, idp: &Idp) -> EnvoySetup {
    let mut config = config_denying(None);
    config["auth"]["remote_jwks"]["min_refetch_seconds"] = json!(1);
    config["routing_headers"] = json!({"enabled": true});
    config["backends"] = json!({
        "listing_timeout_ms": 1500,
        "servers": [
            {"name": "alpha", "cluster": "upstream_0"},
            {"name": "beta", "cluster": "upstream_1"}
        ]
    });
    let mut setup = EnvoySetup::new(alpha, config);
    setup.allow_headers_stop = true;
    setup.named_clusters.push(("idp".into(), idp.port));
    setup
        .header_routes
        .push(("x-mcp-backend".into(), "beta".into(), beta));
    setup
}

fn call(name: &str, message: &str) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"name": name, "arguments": {"message": message}}})
    .to_string()
}

/// The messages of the calls `peer` received.
async fn calls(peer: &Peer) -> Result<Vec<String>> {
    Ok(peer
        .received()
        .await?
        .into_iter()
        .filter(|r| r.rpc_method().as_deref() == Some("tools/call"))
        .filter_map(|r| {
            let body: Value = serde_json::from_str(&r.body).ok()?;
            Some(format!(
                "{} {}",
                body["params"]["name"].as_str()?,
                body["params"]["arguments"]["message"].as_str()?
            ))
        })
        .collect())
}

/// `post_raw`, given up after ten seconds.
async fn post(url: &str, headers: &[(&str, &str)], body: String) -> Result<RawResponse> {
    tokio::time::timeout(Duration::from_secs(10), post_raw(url, headers, body))
        .await
        .context("no answer within ten seconds")?
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_that_waited_for_keys_goes_where_the_filter_routed_it() -> Result<()> {
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    // A spoofed backend header, and none: in both, the call is for the
    // backend its tool's prefix names.
    for (spoofed, tool, to_alpha) in [
        (Some("beta"), "alpha__echo", true),
        (None, "beta__echo", false),
    ] {
        let key = SigningKey::generate("key-1")?;
        let idp = Idp::start(&[&key]).await?;
        let alpha = Peer::start(PeerMode::StatelessJson)?;
        let beta = Peer::start(PeerMode::StatelessJson)?;
        let envoy = Envoy::start(&bin, &two_backends(alpha.port, beta.port, &idp))?;
        let bearer = format!("Bearer {}", key.sign(&claims("alice", json!({}))));
        let mut headers = vec![("authorization", bearer.as_str())];
        headers.extend(spoofed.map(|b| ("x-mcp-backend", b)));
        // The first request: no key is loaded yet, so it waits for the fetch.
        let r = post(&envoy.url(), &headers, call(tool, "first")).await?;
        assert_eq!(r.status, 200, "{tool}: {}", r.text());
        assert!(idp.fetches() >= 1);
        let (to, other) = if to_alpha {
            (&alpha, &beta)
        } else {
            (&beta, &alpha)
        };
        assert_eq!(calls(to).await?, ["echo first"], "{tool}");
        assert_eq!(
            calls(other).await?,
            Vec::<String>::new(),
            "{tool}: judged for the other backend"
        );
    }
    Ok(())
}

/// A backend that answers every POST with a key set of its own.
async fn key_minting_backend(jwk: Value) -> Result<u16> {
    let app = Router::new().fallback(on_post(move || {
        let jwk = jwk.clone();
        async move { Json(json!({"keys": [jwk]})) }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(port)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_answer_is_never_taken_for_the_jwks() -> Result<()> {
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    let key = SigningKey::generate("key-1")?;
    let rotated = SigningKey::generate("key-2")?;
    let evil = SigningKey::generate("evil")?;
    let idp = Idp::start(&[&key]).await?;
    let alpha = Peer::start(PeerMode::StatelessJson)?;
    let beta = key_minting_backend(evil.public_jwk()).await?;
    let envoy = Envoy::start(&bin, &two_backends(alpha.port, beta, &idp))?;
    let bearer = |k: &SigningKey| format!("Bearer {}", k.sign(&claims("alice", json!({}))));

    // Keys load.
    let r = post(
        &envoy.url(),
        &[("authorization", &bearer(&key))],
        call("alpha__echo", "loaded"),
    )
    .await?;
    assert_eq!(r.status, 200, "{}", r.text());

    // A token naming a key not loaded: the filter fetches again, and the
    // provider holds the fetch.
    tokio::time::sleep(Duration::from_millis(1200)).await; // past min_refetch
    idp.go_down();
    let held = idp.held();
    let url = envoy.url();
    let waiting_bearer = bearer(&rotated);
    let waiting = tokio::spawn(async move {
        post(
            &url,
            &[("authorization", &waiting_bearer)],
            call("alpha__echo", "waited"),
        )
        .await
    });
    idp.wait_held(held + 1, Duration::from_secs(5)).await?;

    // Meanwhile a listing gathered from both backends: beta's answer is a
    // key set.
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let listed = post(
        &envoy.url(),
        &[("authorization", &bearer(&key))],
        list.into(),
    )
    .await?;
    assert_eq!(listed.status, 200, "{}", listed.text());
    idp.come_up();
    let waited = waiting.await??;
    assert_eq!(
        waited.status,
        401,
        "key-2 was never published: {}",
        waited.text()
    );

    // beta's key set did not become the filter's.
    let r = post(
        &envoy.url(),
        &[("authorization", &bearer(&evil))],
        call("alpha__echo", "minted"),
    )
    .await?;
    assert_eq!(
        r.status,
        401,
        "a token signed with the backend's key: {}",
        r.text()
    );
    let r = post(
        &envoy.url(),
        &[("authorization", &bearer(&key))],
        call("alpha__echo", "after"),
    )
    .await?;
    assert_eq!(
        r.status,
        200,
        "the provider's key still verifies: {}",
        r.text()
    );
    assert_eq!(calls(&alpha).await?, ["echo loaded", "echo after"]);
    Ok(())
}
