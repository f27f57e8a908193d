//! Faults around the filter in a real Envoy: the upstream refusing, resetting
//! in the middle of an SSE stream or being slow, the identity provider going
//! away after the keys were loaded, an invalid config pushed over LDS, the
//! filter's VM failing. Each asserts what the client sees and that Envoy keeps
//! serving.

use anyhow::{Context, Result};
use mcp_filter_integration::idp::{claims, secured_config, Issuer, SigningKey};
use mcp_filter_integration::{envoy_bin, post_raw, Envoy, EnvoySetup, Peer, PeerMode};
use serde_json::json;
use std::io::{Read, Write};
use std::time::Duration;

const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
const CALL: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":2}}}"#;

/// An upstream that answers every request with the start of an SSE listing
/// and then closes the connection mid-event.
fn resetting_upstream() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
            let part = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"add\"},{\"na";
            let _ = write!(stream, "{head}{:x}\r\n{part}\r\n", part.len());
            let _ = stream.flush();
            std::thread::sleep(Duration::from_millis(50));
            // Dropping the stream resets the response before it ends.
        }
    });
    Ok(port)
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_refused_or_reset_mid_stream_leaves_envoy_serving() -> Result<()> {
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    let issuer = Issuer::start().await?;
    let token = bearer(&issuer.key, "alice");
    let auth = [("authorization", token.as_str())];

    // Refused: nothing listens on the upstream port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    // Headers are held until the body is judged (routing headers), so the
    // outcome is counted for a judged request.
    let mut config = secured_config();
    config["routing_headers"] = json!({"enabled": true});
    let mut setup = EnvoySetup::new(closed, config);
    issuer.serve(&mut setup);
    let mut envoy = Envoy::start(&bin, &setup)?;
    let r = post_raw(&envoy.url(), &auth, CALL).await?;
    assert_eq!(r.status, 503, "{}", r.text());
    let scrape = envoy.prometheus().await?;
    assert_eq!(
        scrape.value(
            "mcp_responses_total",
            &[("mcp_method_name", "tools/call"), ("outcome", "http_5xx")]
        ),
        Some(1.0),
        "{}",
        scrape.text
    );
    assert!(envoy.alive());
    drop(envoy);

    // Reset mid-SSE: the listing is being filtered (a policy applies), so the
    // filter holds the unfinished event; the client gets a broken stream, never
    // an unfiltered item, and the next request is served.
    let resetting = resetting_upstream()?;
    let peer = Peer::start(PeerMode::StatelessJson)?;
    let mut setup = EnvoySetup::new(peer.port, secured_config());
    issuer.serve(&mut setup);
    setup
        .header_routes
        .push(("x-test-upstream".into(), "resetting".into(), resetting));
    let mut envoy = Envoy::start(&bin, &setup)?;
    let broken = post_raw(
        &envoy.url(),
        &[auth[0], ("x-test-upstream", "resetting")],
        LIST,
    )
    .await;
    if let Ok(r) = &broken {
        assert!(
            !r.text().contains("\"na"),
            "an unfinished item reached the client: {}",
            r.text()
        );
    }
    let ok = post_raw(&envoy.url(), &auth, CALL).await?;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert!(ok.text().contains("\"3\""), "{}", ok.text());
    assert!(envoy.alive());
    Ok(())
}

/// The identity provider goes away after the keys were loaded: verified keys
/// stay in use (a failed refresh keeps them), so callers are still served.
#[tokio::test(flavor = "multi_thread")]
async fn cached_keys_keep_working_when_the_jwks_goes_away() -> Result<()> {
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    let issuer = Issuer::start().await?;
    let peer = Peer::start(PeerMode::StatelessJson)?;
    let mut config = secured_config();
    config["auth"]["remote_jwks"]["refresh_seconds"] = json!(1);
    let mut setup = EnvoySetup::new(peer.port, config);
    issuer.serve(&mut setup);
    let mut envoy = Envoy::start(&bin, &setup)?;
    let token = bearer(&issuer.key, "alice");
    let auth = [("authorization", token.as_str())];
    assert_eq!(post_raw(&envoy.url(), &auth, CALL).await?.status, 200);
    drop(issuer.idp);
    // Past a refresh period or two, with the provider gone.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = post_raw(&envoy.url(), &auth, CALL).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    // A token the filter has never seen is still verified with the kept keys.
    let fresh = bearer(&issuer.key, "bob");
    let r = post_raw(&envoy.url(), &[("authorization", fresh.as_str())], CALL).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        envoy.logged("keeping the keys already loaded"),
        "{}",
        envoy.log()
    );
    assert!(envoy.alive());
    Ok(())
}

/// An `Authorization` value for `subject` of tenant acme with `mcp:tools`.
fn bearer(key: &SigningKey, subject: &str) -> String {
    let claims = claims(subject, json!({"tenant": "acme", "scope": "mcp:tools"}));
    format!("Bearer {}", key.sign(&claims))
}

/// Polls `check` every 100 ms for up to 10 s; the last error if it never holds.
async fn eventually<F, Fut>(mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match check().await {
            Ok(()) => return Ok(()),
            Err(e) if std::time::Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A control plane pushes filter configs that do not load (an unknown field,
/// a value out of range): Envoy refuses each update, the log names the field,
/// and the last good config keeps serving. A valid push then takes effect.
#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_config_push_is_refused_and_the_last_good_one_keeps_serving() -> Result<()> {
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    let issuer = Issuer::start().await?;
    let peer = Peer::start(PeerMode::StatelessJson)?;
    let mut setup = EnvoySetup::new(peer.port, secured_config());
    issuer.serve(&mut setup);
    setup.listener_from_file = true;
    let mut envoy = Envoy::start(&bin, &setup)?;
    let token = bearer(&issuer.key, "alice");
    let auth = [("authorization", token.as_str())];
    assert_eq!(post_raw(&envoy.url(), &auth, CALL).await?.status, 200);

    let mut unknown_field = secured_config();
    unknown_field["polcy"] = json!({});
    let mut out_of_range = secured_config();
    out_of_range["max_request_bytes"] = json!(0);
    for (rejected, (config, field)) in [
        (unknown_field, "polcy"),
        (out_of_range, "max_request_bytes"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut pushed = setup.clone();
        pushed.filter_config = config;
        envoy.push(&pushed)?;
        let want = rejected as u64 + 1;
        eventually(|| async {
            let n = envoy.stat("listener_manager.lds.update_rejected")?;
            anyhow::ensure!(n == want, "update_rejected {n}, want {want}");
            Ok(())
        })
        .await?;
        assert!(
            envoy.logged(&format!("invalid mcp_filter configuration at `{field}`")),
            "{}",
            envoy.log()
        );
        // Still the last good config: alice may call `add`.
        let r = post_raw(&envoy.url(), &auth, CALL).await?;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(envoy.stat("listener_manager.lds.update_success")?, 1);

    // A valid push that takes `add` away from acme is applied.
    let mut narrower = secured_config();
    narrower["policy"]["rules"][1]["tools"] = json!(["echo"]);
    let mut pushed = setup.clone();
    pushed.filter_config = narrower;
    envoy.push(&pushed)?;
    eventually(|| async {
        let r = post_raw(&envoy.url(), &auth, CALL).await?;
        anyhow::ensure!(
            r.status == 200 && r.text().contains("-32043"),
            "{} {}",
            r.status,
            r.text()
        );
        Ok(())
    })
    .await?;
    assert_eq!(envoy.stat("listener_manager.lds.update_success")?, 2);
    assert!(envoy.alive());
    Ok(())
}

/// The VM fails (a test-only build of the filter traps on a header): with the
/// shipped `failure_policy: FAIL_RELOAD` the failing request gets a 503, never
/// the upstream, and later requests run in a reloaded VM with the same config
/// (authentication and policy still apply). Envoy stays up.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_vm_fails_closed_and_is_reloaded() -> Result<()> {
    if mcp_filter_integration::wasm_only(
        "a VM and its failure_policy are the wasm's (the module's panic guard is \
         a_panicking_module_hook_answers_500_and_envoy_keeps_serving)",
    ) {
        return Ok(());
    }
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    let issuer = Issuer::start().await?;
    let peer = Peer::start(PeerMode::StatelessJson)?;
    let mut setup = EnvoySetup::new(peer.port, secured_config());
    issuer.serve(&mut setup);
    setup.wasm = mcp_filter_integration::fault_injection_wasm()?;
    let mut envoy = Envoy::start(&bin, &setup)?;
    let token = bearer(&issuer.key, "alice");
    let auth = [("authorization", token.as_str())];
    let trap = [auth[0], ("x-mcp-filter-fault", "trap")];
    assert_eq!(post_raw(&envoy.url(), &auth, CALL).await?.status, 200);

    for reloads in 1..=2u64 {
        peer.forget().await?;
        let r = post_raw(&envoy.url(), &trap, CALL).await?;
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(
            peer.received().await?.is_empty(),
            "the failing request reached the upstream"
        );
        // Refused (503) until the reload backoff lets a fresh VM start.
        eventually(|| async {
            let r = post_raw(&envoy.url(), &auth, CALL).await?;
            anyhow::ensure!(r.status == 200, "{} {}", r.status, r.text());
            Ok(())
        })
        .await?;
        assert_eq!(envoy.stat("wasm.mcp_filter.vm_reload_success")?, reloads);
        // The reloaded VM has the same config.
        let no_token = post_raw(&envoy.url(), &[], CALL).await?;
        assert_eq!(no_token.status, 401, "{}", no_token.text());
        let secret = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"secret","arguments":{}}}"#;
        let denied = post_raw(&envoy.url(), &auth, secret).await?;
        // `secret` needs a scope alice lacks: the step-up answer, 403.
        assert_eq!(denied.status, 403, "{}", denied.text());
        assert_eq!(denied.json()["error"]["code"], -32043, "{}", denied.text());
    }
    assert!(envoy.logged("unreachable"), "{}", envoy.log());
    assert!(envoy.alive());
    drop(envoy);

    // `FAIL_CLOSED` (what Envoy Gateway's `failOpen: false` gives without
    // patch-failure-policy.yaml): closed, never open, and no reload.
    setup.failure_policy = "FAIL_CLOSED";
    let mut envoy = Envoy::start(&bin, &setup)?;
    assert_eq!(post_raw(&envoy.url(), &auth, CALL).await?.status, 200);
    peer.forget().await?;
    assert_eq!(post_raw(&envoy.url(), &trap, CALL).await?.status, 503);
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let r = post_raw(&envoy.url(), &auth, CALL).await?;
        assert_eq!(r.status, 503, "{}", r.text());
    }
    assert!(peer.received().await?.is_empty(), "a request got through");
    assert!(envoy.alive());
    Ok(())
}

/// The dynamic module runs inside Envoy's process: a hook that panics (a
/// test-only build panics on a header) must end that request, with a 500
/// and nothing sent upstream, never Envoy. Later requests are served and
/// judged as before.
#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_module_hook_answers_500_and_envoy_keeps_serving() -> Result<()> {
    if mcp_filter_integration::Shell::from_env() != mcp_filter_integration::Shell::Module {
        eprintln!("skipping: runs in the dynamic module's pass (MCP_FILTER_SHELL=module)");
        return Ok(());
    }
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    let issuer = Issuer::start().await?;
    let peer = Peer::start(PeerMode::StatelessJson)?;
    let mut setup = EnvoySetup::new(peer.port, secured_config());
    issuer.serve(&mut setup);
    setup.module = mcp_filter_integration::fault_injection_module()?;
    let mut envoy = Envoy::start(&bin, &setup)?;
    let token = bearer(&issuer.key, "alice");
    let auth = [("authorization", token.as_str())];
    let panic = [auth[0], ("x-mcp-filter-fault", "panic")];
    for _ in 0..3 {
        peer.forget().await?;
        let r = post_raw(&envoy.url(), &panic, CALL).await?;
        assert_eq!(r.status, 500, "{}", r.text());
        assert_eq!(r.json()["error"]["code"], -32603, "{}", r.text());
        assert!(
            peer.received().await?.is_empty(),
            "the failing request reached the upstream"
        );
        let ok = post_raw(&envoy.url(), &auth, CALL).await?;
        assert_eq!(ok.status, 200, "{}", ok.text());
        let no_token = post_raw(&envoy.url(), &[], CALL).await?;
        assert_eq!(no_token.status, 401, "{}", no_token.text());
    }
    assert!(envoy.logged("a hook failed"), "{}", envoy.log());
    assert!(envoy.alive());
    Ok(())
}

/// Reads one whole HTTP/1.1 request (head and `content-length` body): closing
/// a socket with unread bytes resets it, which would cut the answer short.
fn read_request(stream: &mut std::net::TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&seen).to_ascii_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if seen.len() >= end + 4 + length {
                return;
            }
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// An upstream that answers every request slowly: nothing for `before`, then
/// an SSE stream with a progress event, and the result `between` later.
fn slow_upstream(before: Duration, between: Duration) -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                read_request(&mut stream);
                std::thread::sleep(before);
                let chunk = |s: &mut std::net::TcpStream, text: &str| {
                    let _ = write!(s, "{:x}\r\n{text}\r\n", text.len());
                    let _ = s.flush();
                };
                let _ = write!(stream, "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n");
                chunk(&mut stream, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":7,\"progress\":1}}\n\n");
                std::thread::sleep(between);
                chunk(&mut stream, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"3\"}]}}\n\n");
                let _ = write!(stream, "0\r\n\r\n");
                let _ = stream.flush();
            });
        }
    });
    Ok(port)
}

/// A slow upstream: a call's SSE events reach the client as they come (the
/// filter does not hold a call's answer back), and one slower than the route
/// timeout gets Envoy's 504, counted, with Envoy still serving.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_upstream_streams_through_or_times_out() -> Result<()> {
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    let issuer = Issuer::start().await?;
    let token = bearer(&issuer.key, "alice");
    let between = Duration::from_millis(1500);
    let trickling = slow_upstream(Duration::ZERO, between)?;
    let stalled = slow_upstream(Duration::from_secs(4), Duration::ZERO)?;
    let peer = Peer::start(PeerMode::StatelessJson)?;
    let mut setup = EnvoySetup::new(peer.port, secured_config());
    issuer.serve(&mut setup);
    setup.route_timeout = "2s";
    for (name, port) in [("trickling", trickling), ("stalled", stalled)] {
        setup
            .header_routes
            .push(("x-test-upstream".into(), name.into(), port));
    }
    let mut envoy = Envoy::start(&bin, &setup)?;

    let started = std::time::Instant::now();
    let mut response = reqwest::Client::new()
        .post(envoy.url())
        .header("authorization", &token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("x-test-upstream", "trickling")
        .body(CALL)
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let first = response
        .chunk()
        .await
        .context("first chunk")?
        .unwrap_or_default();
    let first_at = started.elapsed();
    assert!(
        String::from_utf8_lossy(&first).contains("notifications/progress"),
        "{first:?}"
    );
    assert!(
        first_at < between,
        "the progress event was held back until the result ({first_at:?})"
    );
    let mut rest = Vec::new();
    while let Some(chunk) = response.chunk().await.context("later chunk")? {
        rest.extend_from_slice(&chunk);
    }
    assert!(String::from_utf8_lossy(&rest).contains(r#""text":"3""#));

    let r = post_raw(
        &envoy.url(),
        &[
            ("authorization", token.as_str()),
            ("x-test-upstream", "stalled"),
        ],
        CALL,
    )
    .await?;
    assert_eq!(r.status, 504, "{}", r.text());
    let scrape = envoy.prometheus().await?;
    assert_eq!(
        scrape.value(
            "mcp_responses_total",
            &[("mcp_method_name", "tools/call"), ("outcome", "http_5xx")]
        ),
        Some(1.0),
        "{}",
        scrape.text
    );
    let ok = post_raw(&envoy.url(), &[("authorization", token.as_str())], CALL).await?;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert!(envoy.alive());
    Ok(())
}

/// `routing_headers.enabled` without `allow_on_headers_stop_iteration`:
/// Envoy never delivers the body to a filter that held the headers. The
/// request used to hang until a timeout (forever with `timeout: 0s`); now it
/// is answered with an error naming the flag, and the log says so once.
#[tokio::test(flavor = "multi_thread")]
async fn held_headers_without_the_flag_are_answered_not_left_hanging() -> Result<()> {
    if mcp_filter_integration::wasm_only(
        "the flag is the wasm's: Envoy always gives a module the body of held headers",
    ) {
        return Ok(());
    }
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    let peer = Peer::start(PeerMode::StatelessJson)?;
    let mut setup = EnvoySetup::new(
        peer.port,
        json!({"mcp_paths": ["/mcp"], "routing_headers": {"enabled": true}}),
    );
    setup.allow_headers_stop = false;
    let envoy = Envoy::start(&bin, &setup)?;
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}"#;
    let started = std::time::Instant::now();
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        post_raw(&envoy.url(), &[], call),
    )
    .await
    .map_err(|_| anyhow::anyhow!("the request hung"))??;
    assert_eq!(r.status, 500, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["code"], -32603, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("allow_on_headers_stop_iteration"),
        "{v}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    // Envoy flushes its log file every 100 ms.
    let mut logged = false;
    for _ in 0..30 {
        logged = envoy
            .log()
            .contains("set allow_on_headers_stop_iteration: true");
        if logged {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(logged, "{}", envoy.log());
    assert!(peer.received().await?.iter().all(|r| r.body.is_empty()));
    Ok(())
}
