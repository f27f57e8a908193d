//! JWKS refresh against a real Envoy: a fetch must not be lost with the
//! request that caused it. Two sequences seen in the field, each with and
//! without `allow_on_headers_stop_iteration`:
//! - a junk token naming an unknown `kid`, its connection reset while the
//!   fetch is in flight; then the provider rotates its key: a token signed
//!   with the new key is accepted;
//! - the provider is down (fetches hang) for the first request, whose client
//!   gives up; then it comes up: valid tokens are accepted;
//! - the client whose request started a fetch disconnects while another
//!   request waits for that fetch: the waiting request still gets the keys.
//!
//! The junk call never reaches the upstream.

use crate::common::config_denying;
use anyhow::{Context, Result};
use mcp_filter_integration::idp::{claims, Idp, SigningKey};
use mcp_filter_integration::{envoy_bin, Envoy, EnvoySetup, Peer, PeerMode, RawResponse};
use serde_json::{json, Value};
use std::time::Duration;

fn config() -> Value {
    let mut config = config_denying(None);
    config["auth"]["remote_jwks"]["min_refetch_seconds"] = json!(1);
    config["auth"]["remote_jwks"]["timeout_ms"] = json!(3000);
    config
}

fn call_body(id: u32) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"call-{id}"}}}}}}"#
    )
}

/// A tools/call with `token`; `None` when the client gave up after `patience`
/// (it then resets the connection, as an impatient client or an attacker does).
async fn call(
    envoy: &Envoy,
    token: &str,
    id: u32,
    patience: Duration,
) -> Result<Option<RawResponse>> {
    let client = reqwest::Client::builder().timeout(patience).build()?;
    let sent = client
        .post(envoy.url())
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(call_body(id))
        .send()
        .await;
    match sent {
        Ok(response) => Ok(Some(RawResponse::read(response).await?)),
        Err(e) if e.is_timeout() => Ok(None),
        Err(e) => Err(e).context("sending the call"),
    }
}

/// A token for `kid` signed with a key the provider never published.
fn junk_token(kid: &str) -> Result<String> {
    Ok(SigningKey::generate(kid)?.sign(&claims("mallory", json!({}))))
}

fn setup(peer: &Peer, idp: &Idp, allow_headers_stop: bool) -> EnvoySetup {
    let mut setup = EnvoySetup::new(peer.port, config());
    setup.named_clusters.push(("idp".into(), idp.port));
    setup.allow_headers_stop = allow_headers_stop;
    setup
}

/// The calls the upstream received, by the `message` they echo.
async fn upstream_saw(peer: &Peer) -> Result<Vec<String>> {
    Ok(peer
        .received()
        .await?
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| {
            serde_json::from_str::<Value>(&r.body).unwrap_or_default()["params"]["arguments"]
                ["message"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fetch_lost_with_its_request_does_not_stop_key_rotation() -> Result<()> {
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    for allow_headers_stop in [true, false] {
        let old = SigningKey::generate("old")?;
        let new = SigningKey::generate("new")?;
        let idp = Idp::start(&[&old]).await?;
        let peer = Peer::start(PeerMode::StatelessJson)?;
        let envoy = Envoy::start(&bin, &setup(&peer, &idp, allow_headers_stop))?;
        let flag = format!("flag {allow_headers_stop}");

        // Keys load; a valid token is accepted.
        let r = call(
            &envoy,
            &old.sign(&claims("alice", json!({}))),
            1,
            Duration::from_secs(10),
        )
        .await?
        .context("no answer")?;
        assert_eq!(r.status, 200, "{flag}: {}", r.text());

        // The attack: a junk token naming an unknown kid makes the filter
        // fetch; the provider hangs; the attacker resets the connection.
        tokio::time::sleep(Duration::from_millis(1200)).await; // past min_refetch
        idp.go_down();
        let held_before = idp.held();
        let junk = call(&envoy, &junk_token("zzz")?, 2, Duration::from_millis(600)).await?;
        // Either the client gave up while the fetch was held, or the filter
        // refused it already; in both cases (the wasm, whose root context
        // fetches) a fetch must be in flight. The dynamic module fetches
        // through the request: its fetch may end with it, and rotation must
        // still work below.
        if let Some(r) = &junk {
            assert!(r.status == 401 || r.status == 503, "{flag}: {}", r.text());
        }
        if mcp_filter_integration::Shell::from_env() == mcp_filter_integration::Shell::Wasm {
            idp.wait_held(held_before + 1, Duration::from_secs(5))
                .await?;
        }
        // The provider answers the held fetch (still the old key), then rotates.
        idp.come_up();
        tokio::time::sleep(Duration::from_millis(300)).await;
        idp.publish(&[&new]);
        tokio::time::sleep(Duration::from_millis(1200)).await; // past min_refetch

        // A token signed with the new key is accepted: the filter fetched
        // again and found it (well before a lost fetch could time out).
        let token = new.sign(&claims("alice", json!({})));
        let mut last = None;
        for attempt in 0..3u32 {
            let r = call(&envoy, &token, 10 + attempt, Duration::from_secs(10))
                .await?
                .context("no answer")?;
            if r.status == 200 {
                last = None;
                break;
            }
            last = Some(format!("{} {}", r.status, r.text()));
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert_eq!(last, None, "{flag}: the rotated key was never fetched");

        // The junk call never reached the upstream.
        let saw = upstream_saw(&peer).await?;
        assert!(!saw.iter().any(|m| m == "call-2"), "{flag}: {saw:?}");
        assert!(saw.iter().any(|m| m == "call-1"), "{flag}: {saw:?}");
        assert!(
            envoy.log().lines().all(|l| !l.contains("panicked")),
            "{}",
            envoy.log()
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_down_for_the_first_request_does_not_stop_later_fetches() -> Result<()> {
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    for allow_headers_stop in [true, false] {
        let key = SigningKey::generate("k1")?;
        let idp = Idp::start(&[&key]).await?;
        idp.go_down();
        let peer = Peer::start(PeerMode::StatelessJson)?;
        let envoy = Envoy::start(&bin, &setup(&peer, &idp, allow_headers_stop))?;
        let flag = format!("flag {allow_headers_stop}");
        let token = key.sign(&claims("alice", json!({})));

        // The first request waits for keys that do not come; its client gives up.
        let first = call(&envoy, &token, 1, Duration::from_millis(700)).await?;
        if let Some(r) = &first {
            assert_eq!(r.status, 503, "{flag}: {}", r.text());
        }
        // The wasm fetches from its root context: the fetch outlives the
        // request. The dynamic module fetches through the request that
        // needs keys, so the fetch may end with it (and is sent again).
        if mcp_filter_integration::Shell::from_env() == mcp_filter_integration::Shell::Wasm {
            idp.wait_held(1, Duration::from_secs(5)).await?;
        }

        // The provider comes up: valid tokens are accepted from now on.
        idp.come_up();
        tokio::time::sleep(Duration::from_millis(1200)).await; // past min_refetch
        let mut last = None;
        for attempt in 0..3u32 {
            let r = call(&envoy, &token, 10 + attempt, Duration::from_secs(10))
                .await?
                .context("no answer")?;
            if r.status == 200 {
                last = None;
                break;
            }
            last = Some(format!("{} {}", r.status, r.text()));
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert_eq!(
            last, None,
            "{flag}: keys never loaded after the provider came up"
        );
        let r = call(&envoy, &token, 20, Duration::from_secs(10))
            .await?
            .context("no answer")?;
        assert_eq!(r.status, 200, "{flag}: {}", r.text());

        // (The first call carries a valid token: if its client's reset
        // reaches Envoy after the keys do, it is judged and forwarded.)
        let saw = upstream_saw(&peer).await?;
        assert!(saw.iter().any(|m| m == "call-20"), "{flag}: {saw:?}");
        assert!(
            envoy.log().lines().all(|l| !l.contains("panicked")),
            "{}",
            envoy.log()
        );
    }
    Ok(())
}

/// A client whose request started the JWKS fetch disconnects while another
/// request waits for the same fetch (a rotated key): the waiting request
/// still gets the keys and is served. (The wasm's fetch belongs to its root
/// context and outlives the client; the dynamic module's fetch ends with the
/// request that sent it, and a waiting request sends it again.)
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_disconnects_cannot_leave_waiting_requests_without_keys() -> Result<()> {
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    let old = SigningKey::generate("old")?;
    let new = SigningKey::generate("new")?;
    let idp = Idp::start(&[&old]).await?;
    let peer = Peer::start(PeerMode::StatelessJson)?;
    let envoy = Envoy::start(&bin, &setup(&peer, &idp, true))?;
    let ok = call(
        &envoy,
        &old.sign(&claims("alice", json!({}))),
        1,
        Duration::from_secs(10),
    )
    .await?
    .context("no answer")?;
    assert_eq!(ok.status, 200, "{}", ok.text());
    tokio::time::sleep(Duration::from_millis(1200)).await; // past min_refetch

    // The provider hangs; it rotates to `new` and comes back only after the
    // first client gave up.
    idp.go_down();
    let rotated = async {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        idp.publish(&[&new]);
        idp.come_up();
    };
    // The attacker: an unknown kid starts the fetch, then it disconnects.
    let junk = junk_token("zzz")?;
    let attacker = call(&envoy, &junk, 2, Duration::from_millis(600));
    // Alice, with a token signed by the rotated key, waits for the fetch.
    let token = new.sign(&claims("alice", json!({})));
    let alice = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        call(&envoy, &token, 3, Duration::from_secs(10)).await
    };
    let (gave_up, answer, ()) = tokio::join!(attacker, alice, rotated);
    if let Some(r) = gave_up? {
        assert!(r.status == 401 || r.status == 503, "{}", r.text());
    }
    let answer = answer?.context("alice got no answer")?;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let saw = upstream_saw(&peer).await?;
    assert!(saw.iter().any(|m| m == "call-3"), "{saw:?}");
    assert!(!saw.iter().any(|m| m == "call-2"), "{saw:?}");
    Ok(())
}
