//! Per-tool authorization in a real Envoy: JWTs signed by a test identity
//! provider whose JWKS Envoy fetches through a cluster (and which rotates its
//! keys), a real MCP server and client (rmcp), and raw HTTP for the exact
//! 401/403 answers. The upstream records everything it receives, so "denied"
//! means "never reached it".

use anyhow::Result;
use mcp_filter_integration::idp::{
    self, claims, secured_config as filter_config, Issuer, SigningKey, AUDIENCE, ISSUER,
};
use mcp_filter_integration::{envoy_bin, post_raw, Envoy, EnvoySetup, Peer, PeerMode};
use rmcp::model::CallToolRequestParams;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::{json, Value};
use std::time::Duration;

struct World {
    peer: Peer,
    envoy: Envoy,
    issuer: Issuer,
}

async fn world(mode: PeerMode, allow_headers_stop: bool) -> Result<Option<World>> {
    let Some(bin) = envoy_bin() else {
        return Ok(None);
    };
    let issuer = Issuer::start().await?;
    let peer = Peer::start(mode)?;
    let mut setup = EnvoySetup::new(peer.port, filter_config());
    issuer.serve(&mut setup);
    setup.allow_headers_stop = allow_headers_stop;
    let envoy = Envoy::start(&bin, &setup)?;
    Ok(Some(World {
        peer,
        envoy,
        issuer,
    }))
}

fn alice(key: &SigningKey) -> String {
    key.sign(&claims(
        "alice",
        json!({"tenant": "acme", "scope": "mcp:tools"}),
    ))
}

fn header<'a>(r: &'a mcp_filter_integration::RawResponse, name: &str) -> &'a str {
    r.header(name).unwrap_or_default()
}

async fn mcp_client(
    url: String,
    token: &str,
) -> Result<rmcp::service::RunningService<rmcp::RoleClient, ()>> {
    let config = StreamableHttpClientTransportConfig::with_uri(url).auth_header(token);
    Ok(
        ().serve(StreamableHttpClientTransport::from_config(config))
            .await?,
    )
}

/// The product's promise, end to end: a real client sees only what its token
/// allows, calls it, and a denied call never reaches the server. Both the
/// SSE-framed (stateful) and JSON (stateless) servers, and both Envoy
/// deliveries (with and without `allow_on_headers_stop_iteration`).
#[tokio::test(flavor = "multi_thread")]
async fn a_real_client_sees_and_calls_only_what_its_token_allows() -> Result<()> {
    for (mode, stop) in [(PeerMode::Stateful, false), (PeerMode::StatelessJson, true)] {
        let Some(w) = world(mode, stop).await? else {
            return Ok(());
        };
        let client = mcp_client(w.envoy.url(), &alice(&w.issuer.key)).await?;
        let names = mcp_filter_integration::listed_tool_names(client.peer()).await?;
        assert_eq!(names, ["add", "echo"], "{mode:?}: the listing is filtered");

        let result = client
            .call_tool(
                CallToolRequestParams::new("add").with_arguments(
                    json!({"a": 2, "b": 40})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                ),
            )
            .await?;
        assert_eq!(serde_json::to_value(&result.content)?[0]["text"], "42");
        let denied = client
            .call_tool(
                CallToolRequestParams::new("big")
                    .with_arguments(json!({"n": 3}).as_object().cloned().unwrap_or_default()),
            )
            .await;
        assert!(denied.is_err(), "{mode:?}: big must be refused: {denied:?}");
        client.cancel().await?;

        let received = w.peer.received().await?;
        let called: Vec<String> = received
            .iter()
            .filter(|r| r.rpc_method().as_deref() == Some("tools/call"))
            .map(|r| r.body.clone())
            .collect();
        assert_eq!(
            called.len(),
            1,
            "{mode:?}: only the allowed call got through: {called:?}"
        );
        assert!(called[0].contains("\"add\""));
        for r in &received {
            assert!(
                r.header("authorization").is_none(),
                "the client's token was passed upstream: {} {} {}",
                r.method,
                r.path,
                r.body
            );
            if let Some(session) = r.header("mcp-session-id") {
                assert!(
                    !session.starts_with("mf1."),
                    "the upstream saw a wrapped session id"
                );
            }
        }

        // Access log lines are flushed every 100 ms.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let log = w.envoy.access_log();
        assert!(
            log.lines().any(|l| l.contains("tool=big")
                && l.contains("decision=deny")
                && l.contains("subject=alice")
                && l.contains("status=200")),
            "{log}"
        );
        let scrape = w.envoy.prometheus().await?;
        assert_eq!(
            scrape.value(
                "mcp_authz_decisions_total",
                &[
                    ("mcp_method_name", "tools/call"),
                    ("tenant", "acme"),
                    ("decision", "deny"),
                    ("gen_ai_tool_name", "big")
                ]
            ),
            Some(1.0),
            "{mode:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_and_invalid_tokens_get_the_mcp_401_challenge() -> Result<()> {
    let Some(w) = world(PeerMode::StatelessJson, false).await? else {
        return Ok(());
    };
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":2}}}"#;
    let metadata = "http://127.0.0.1/.well-known/oauth-protected-resource/mcp";

    let r = post_raw(&w.envoy.url(), &[], call).await?;
    assert_eq!(r.status, 401);
    assert_eq!(
        header(&r, "www-authenticate"),
        format!(r#"Bearer resource_metadata="{metadata}", scope="mcp:tools""#)
    );
    assert_eq!(r.json()["error"]["code"], -32041);

    let expired = w.issuer.key.sign(&claims(
        "alice",
        json!({"tenant": "acme", "exp": idp::now() - 3600}),
    ));
    let wrong_aud = w.issuer.key.sign(&claims(
        "alice",
        json!({"tenant": "acme", "aud": "https://elsewhere"}),
    ));
    let stranger = SigningKey::generate("key-1")?.sign(&claims("alice", json!({"tenant": "acme"})));
    for (token, why) in [
        ("not-a-jwt".to_string(), "malformed token"),
        (expired, "the token has expired"),
        (wrong_aud, "the token is not meant for this resource"),
        (stranger, "the token's signature is invalid"),
    ] {
        let auth = format!("Bearer {token}");
        let r = post_raw(&w.envoy.url(), &[("authorization", &auth)], call).await?;
        assert_eq!(r.status, 401, "{why}");
        let challenge = header(&r, "www-authenticate");
        assert!(
            challenge.starts_with(&format!(r#"Bearer resource_metadata="{metadata}", scope="mcp:tools", error="invalid_token", error_description=""#)),
            "{challenge}"
        );
        assert!(challenge.contains(why), "{challenge}");
    }
    assert!(
        w.peer.received().await?.is_empty(),
        "nothing unauthenticated reached the upstream"
    );

    // The protected resource metadata document (RFC 9728), at both paths.
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let r = reqwest::get(format!("http://127.0.0.1:{}{path}", w.envoy.port)).await?;
        assert_eq!(r.status(), 200);
        let doc: Value = r.json().await?;
        assert_eq!(doc["resource"], AUDIENCE);
        assert_eq!(doc["authorization_servers"], json!([ISSUER]));
        assert_eq!(doc["scopes_supported"], json!(["mcp:tools", "mcp:admin"]));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_needing_another_scope_gets_403_insufficient_scope() -> Result<()> {
    let Some(w) = world(PeerMode::StatelessJson, false).await? else {
        return Ok(());
    };
    let call = r#"{"jsonrpc":"2.0","id":"s1","method":"tools/call","params":{"name":"secret","arguments":{}}}"#;
    let auth = format!("Bearer {}", alice(&w.issuer.key));
    let r = post_raw(&w.envoy.url(), &[("authorization", &auth)], call).await?;
    assert_eq!(r.status, 403);
    assert_eq!(
        header(&r, "www-authenticate"),
        r#"Bearer error="insufficient_scope", scope="mcp:admin", resource_metadata="http://127.0.0.1/.well-known/oauth-protected-resource/mcp", error_description="tool `secret` needs more scopes""#
    );
    assert_eq!(r.json()["id"], "s1");

    let admin = w.issuer.key.sign(&claims(
        "root",
        json!({"tenant": "acme", "scope": "mcp:tools mcp:admin"}),
    ));
    let auth = format!("Bearer {admin}");
    let r = post_raw(&w.envoy.url(), &[("authorization", &auth)], call).await?;
    assert_eq!(r.status, 200, "{}", r.text());

    // Another tenant's caller is not granted acme's tools.
    let carol = w
        .issuer
        .key
        .sign(&claims("carol", json!({"tenant": "globex"})));
    let auth = format!("Bearer {carol}");
    let add = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":2}}}"#;
    let r = post_raw(&w.envoy.url(), &[("authorization", &auth)], add).await?;
    assert_eq!(r.status, 200, "the JSON-RPC error answers the call");
    assert_eq!(r.json()["error"]["code"], -32043);
    assert_eq!(r.json()["error"]["message"], "tool `add` is not allowed");
    let calls = w
        .peer
        .received()
        .await?
        .iter()
        .filter(|r| r.rpc_method().as_deref() == Some("tools/call"))
        .count();
    assert_eq!(calls, 1, "only the admin's call reached the upstream");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_in_key_is_fetched_on_first_sight() -> Result<()> {
    let Some(w) = world(PeerMode::StatelessJson, false).await? else {
        return Ok(());
    };
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let auth = format!("Bearer {}", alice(&w.issuer.key));
    let r = post_raw(&w.envoy.url(), &[("authorization", &auth)], list).await?;
    assert_eq!(r.status, 200, "{}", r.text());

    let next = SigningKey::generate("key-2")?;
    let rotated = format!("Bearer {}", alice(&next));
    // Before the provider publishes it, the new key is unknown.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = post_raw(&w.envoy.url(), &[("authorization", &rotated)], list).await?;
    assert_eq!(r.status, 401);
    w.issuer.idp.publish(&[&w.issuer.key, &next]);
    let fetches = w.issuer.idp.fetches();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = post_raw(&w.envoy.url(), &[("authorization", &rotated)], list).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        w.issuer.idp.fetches() > fetches,
        "the unknown kid triggered a fetch"
    );
    // The old key still works: both are published.
    let r = post_raw(&w.envoy.url(), &[("authorization", &auth)], list).await?;
    assert_eq!(r.status, 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_is_bound_to_the_caller_that_opened_it() -> Result<()> {
    let Some(w) = world(PeerMode::Stateful, false).await? else {
        return Ok(());
    };
    let auth = format!("Bearer {}", alice(&w.issuer.key));
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let r = post_raw(&w.envoy.url(), &[("authorization", &auth)], init).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let session = header(&r, "mcp-session-id").to_string();
    assert!(session.starts_with("mf1.k1."), "{session}");

    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let r = post_raw(
        &w.envoy.url(),
        &[("authorization", &auth), ("mcp-session-id", &session)],
        initialized,
    )
    .await?;
    assert_eq!(r.status, 202, "{}", r.text());

    let mallory = format!(
        "Bearer {}",
        w.issuer
            .key
            .sign(&claims("mallory", json!({"tenant": "acme"})))
    );
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let r = post_raw(
        &w.envoy.url(),
        &[("authorization", &mallory), ("mcp-session-id", &session)],
        list,
    )
    .await?;
    assert_eq!(r.status, 404, "another caller cannot use alice's session");
    assert_eq!(r.json()["error"]["code"], -32001);

    let received = w.peer.received().await?;
    assert!(received
        .iter()
        .all(|r| r.rpc_method().as_deref() != Some("tools/list")));
    let upstream_ids: Vec<&str> = received
        .iter()
        .filter_map(|r| r.header("mcp-session-id"))
        .collect();
    assert!(!upstream_ids.is_empty());
    assert!(
        upstream_ids.iter().all(|id| !id.starts_with("mf1.")),
        "{upstream_ids:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_jwks_fails_closed() -> Result<()> {
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let peer = Peer::start(PeerMode::StatelessJson)?;
    let mut setup = EnvoySetup::new(peer.port, filter_config());
    setup.named_clusters.push(("idp".into(), closed));
    setup.allow_headers_stop = false;
    let mut envoy = Envoy::start(&bin, &setup)?;
    let key = SigningKey::generate("key-1")?;
    let auth = format!("Bearer {}", alice(&key));
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let r = post_raw(&envoy.url(), &[("authorization", &auth)], list).await?;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    assert!(
        peer.received().await?.is_empty(),
        "nothing reached the upstream"
    );
    assert!(envoy.alive());
    Ok(())
}

/// Operators who already run Envoy's `jwt_authn` reuse it: the filter takes
/// the claims it verified from its dynamic metadata and applies the policy.
#[tokio::test(flavor = "multi_thread")]
async fn claims_verified_by_envoys_jwt_authn_are_used_for_the_policy() -> Result<()> {
    if mcp_filter_integration::wasm_only(
        "the module refuses `source: jwt_authn` at load (its ABI cannot read the claims \
         struct): tests/module.rs checks that refusal",
    ) {
        return Ok(());
    }
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    let issuer = Issuer::start().await?;
    let peer = Peer::start(PeerMode::StatelessJson)?;
    let mut config = filter_config();
    config["auth"] = json!({
        "source": "jwt_authn",
        "jwt_authn": {"payload_key": "jwt_payload"},
        "resource_metadata": {"resource": AUDIENCE, "authorization_servers": [ISSUER]},
    });
    config.as_object_mut().map(|c| c.remove("sessions"));
    let mut setup = EnvoySetup::new(peer.port, config);
    issuer.serve(&mut setup);
    setup.allow_headers_stop = false;
    setup.filters_before.push(format!(
        r#"- name: envoy.filters.http.jwt_authn
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
    providers:
      idp:
        issuer: {ISSUER}
        audiences: [{AUDIENCE}]
        remote_jwks:
          http_uri: {{ uri: "http://127.0.0.1:{port}/jwks", cluster: idp, timeout: 2s }}
          cache_duration: 300s
        payload_in_metadata: jwt_payload
    rules:
      - match: {{ prefix: /mcp }}
        requires: {{ provider_name: idp }}"#,
        port = issuer.idp.port
    ));
    let envoy = Envoy::start(&bin, &setup)?;
    let call = |tool: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{{"a":1,"b":2}}}}}}"#
        )
    };
    let auth = format!("Bearer {}", alice(&issuer.key));
    let r = post_raw(&envoy.url(), &[("authorization", &auth)], call("add")).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post_raw(&envoy.url(), &[("authorization", &auth)], call("big")).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], -32043, "{}", r.text());
    // No token: jwt_authn itself refuses (401) before the filter runs.
    let r = post_raw(&envoy.url(), &[], call("add")).await?;
    assert_eq!(r.status, 401);
    let calls: Vec<String> = peer
        .received()
        .await?
        .iter()
        .filter(|r| r.rpc_method().as_deref() == Some("tools/call"))
        .map(|r| r.body.clone())
        .collect();
    assert_eq!(calls.len(), 1, "{calls:?}");
    Ok(())
}
