//! `mcp-bridge` end to end: a real stdio MCP server (the rmcp test server in
//! stdio mode, and npm's `@modelcontextprotocol/server-everything` when it is
//! installed) behind the bridge, behind Envoy with the filter, driven by a
//! real MCP client (rmcp).

#![allow(deprecated)] // sampling and logging: deprecated for 2026-07-28, still forwarded

use anyhow::{Context, Result};
use mcp_filter_integration::idp::{claims, secured_config, Idp, SigningKey};
use mcp_filter_integration::{
    envoy_bin, listed_tool_names, peer_bin, post_raw, tool_args, tool_text, Envoy, EnvoySetup,
};
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, CreateMessageRequestParams,
    CreateMessageResult, LoggingMessageNotificationParam, ProgressNotificationParam,
    ResourceUpdatedNotificationParam, SamplingMessage,
};
use rmcp::service::{NotificationContext, RequestContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ErrorData;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `mcp-bridge`; its log (stderr) goes to a file the tests read.
struct Bridge {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Bridge {
    fn start(options: &[&str], command: &[&str]) -> Result<Self> {
        let log = std::env::temp_dir().join(format!(
            "mcp-bridge-test-{}-{}.log",
            std::process::id(),
            rand_suffix()
        ));
        let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-bridge"))
            .args(["--port", "0"])
            .args(options)
            .arg("--")
            .args(command)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting mcp-bridge")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("bridge said {line:?}"))?;
        Ok(Self { child, port, log })
    }

    fn stdio_peer(options: &[&str]) -> Result<Self> {
        let peer = peer_bin();
        let peer = peer.to_str().context("peer path")?;
        Self::start(options, &[peer, "--mode", "stdio"])
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn children_started(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("] started `"))
            .count()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- mcp-bridge log -----\n{}", self.log());
        }
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A client that records the progress notifications it receives.
#[derive(Clone, Default)]
struct Recorder {
    progress: Arc<Mutex<Vec<f64>>>,
}

impl ClientHandler for Recorder {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Ok(mut p) = self.progress.lock() {
            p.push(params.progress);
        }
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::default()
    }
}

/// A client that answers sampling requests with its own name and records
/// what the server asked and told it.
#[derive(Clone, Default)]
struct Asker {
    who: &'static str,
    prompts: Arc<Mutex<Vec<String>>>,
    logs: Arc<Mutex<Vec<serde_json::Value>>>,
    updates: Arc<Mutex<Vec<String>>>,
    list_changed: Arc<std::sync::atomic::AtomicUsize>,
}

impl Asker {
    fn new(who: &'static str) -> Self {
        Self {
            who,
            ..Self::default()
        }
    }

    fn prompts(&self) -> Vec<String> {
        self.prompts.lock().map(|p| p.clone()).unwrap_or_default()
    }

    fn logs(&self) -> Vec<serde_json::Value> {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn updates(&self) -> Vec<String> {
        self.updates.lock().map(|u| u.clone()).unwrap_or_default()
    }

    fn list_changed(&self) -> usize {
        self.list_changed.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl ClientHandler for Asker {
    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let prompt = params
            .messages
            .first()
            .and_then(|m| m.content.first())
            .and_then(|c| c.as_text())
            .map(|t| t.text.clone())
            .unwrap_or_default();
        if let Ok(mut p) = self.prompts.lock() {
            p.push(prompt);
        }
        Ok(CreateMessageResult::new(
            SamplingMessage::assistant_text(format!("reply from {}", self.who)),
            "test-model".into(),
        ))
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Ok(mut l) = self.logs.lock() {
            l.push(params.data);
        }
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Ok(mut u) = self.updates.lock() {
            u.push(params.uri);
        }
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.list_changed
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::builder().enable_sampling().build(),
            rmcp::model::Implementation::new(self.who, "0"),
        )
    }
}

async fn asker(
    url: String,
    who: &'static str,
) -> Result<(Asker, RunningService<RoleClient, Asker>)> {
    let handler = Asker::new(who);
    let running = handler
        .clone()
        .serve(StreamableHttpClientTransport::from_uri(url))
        .await?;
    Ok((handler, running))
}

async fn call(
    client: &RunningService<RoleClient, Asker>,
    tool: &str,
    args: serde_json::Value,
) -> Result<String> {
    let out = client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(tool_args(args)))
        .await?;
    Ok(tool_text(&out))
}

async fn wait_for(what: &str, bridge: &Bridge, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "{what}:\n{}", bridge.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn client(url: String) -> Result<RunningService<RoleClient, ()>> {
    Ok(
        ().serve(StreamableHttpClientTransport::from_uri(url))
            .await?,
    )
}

/// The whole path: stdio server -> bridge -> Envoy with authentication and a
/// policy -> a real client with a token. Listing, a call, a denied call and
/// progress notifications on the call's own stream.
#[tokio::test(flavor = "multi_thread")]
async fn a_stdio_server_behind_the_bridge_and_the_filter_serves_a_real_client() -> Result<()> {
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    let bridge = Bridge::stdio_peer(&[])?;
    let key = SigningKey::generate("k1")?;
    let idp = Idp::start(&[&key]).await?;
    let mut config = secured_config();
    if let Some(rules) = config["policy"]["rules"].as_array_mut() {
        rules.push(json!({"name": "acme-progress", "tenants": ["acme"], "tools": ["progress"], "effect": "allow"}));
    }
    let mut setup = EnvoySetup::new(bridge.port, config);
    setup.named_clusters.push(("idp".into(), idp.port));
    let envoy = Envoy::start(&bin, &setup)?;
    let token = key.sign(&claims(
        "alice",
        json!({"tenant": "acme", "scope": "mcp:tools"}),
    ));

    let recorder = Recorder::default();
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(envoy.url()).auth_header(token),
    );
    let client = recorder.clone().serve(transport).await?;
    let names = listed_tool_names(client.peer()).await?;
    assert_eq!(
        names,
        ["add", "echo", "progress"],
        "the policy filtered the child's list"
    );
    let sum = client
        .call_tool(
            CallToolRequestParams::new("add").with_arguments(tool_args(json!({"a": 2, "b": 40}))),
        )
        .await?;
    assert_eq!(tool_text(&sum), "42");
    let denied = client
        .call_tool(CallToolRequestParams::new("big").with_arguments(tool_args(json!({"n": 1}))))
        .await;
    assert!(denied.is_err(), "{denied:?}");
    let done = client
        .call_tool(
            CallToolRequestParams::new("progress").with_arguments(tool_args(json!({"steps": 3}))),
        )
        .await?;
    assert_eq!(tool_text(&done), "3 steps");
    let seen = recorder
        .progress
        .lock()
        .map(|p| p.clone())
        .unwrap_or_default();
    assert_eq!(seen, [1.0, 2.0, 3.0]);
    client.cancel().await?;
    // The child's own stderr reaches the bridge's log, prefixed.
    assert!(bridge.log().contains("] started `"), "{}", bridge.log());
    Ok(())
}

/// Two clients at once, each in its own session, each sees only its own
/// answers; with `--shared` both sessions run on one child.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_sessions_see_only_their_own_answers() -> Result<()> {
    for (options, children) in [(&[][..], 2), (&["--shared"][..], 1)] {
        let bridge = Bridge::stdio_peer(options)?;
        let (a, b) = (client(bridge.url()).await?, client(bridge.url()).await?);
        let run = |c: &RunningService<RoleClient, ()>, who: &'static str| {
            let peer = c.peer().clone();
            async move {
                for i in 0..25 {
                    let message = format!("{who}-{i}");
                    let out = peer
                        .call_tool(
                            CallToolRequestParams::new("echo")
                                .with_arguments(tool_args(json!({"message": message}))),
                        )
                        .await?;
                    anyhow::ensure!(tool_text(&out) == message, "{who} got {}", tool_text(&out));
                }
                anyhow::Ok(())
            }
        };
        let (ra, rb) = tokio::join!(run(&a, "alice"), run(&b, "bob"));
        ra?;
        rb?;
        a.cancel().await?;
        b.cancel().await?;
        assert_eq!(
            bridge.children_started(),
            children,
            "{options:?}\n{}",
            bridge.log()
        );
    }
    Ok(())
}

/// `--shared`: a child's own request (sampling) reaches the one session whose
/// call is in flight; when several sessions have calls in flight, or none
/// (the child asks on its own, after its answer), nobody is asked: the child
/// gets an error, and the other session never sees the prompt.
#[tokio::test(flavor = "multi_thread")]
async fn shared_child_requests_reach_only_the_session_that_caused_them() -> Result<()> {
    let bridge = Bridge::stdio_peer(&["--shared"])?;
    let (alice, a) = asker(bridge.url(), "alice").await?;
    let (bob, b) = asker(bridge.url(), "bob").await?;

    // Only bob is waiting on the child: bob is asked.
    let out = call(&b, "sample", json!({"prompt": "for bob"})).await?;
    assert_eq!(out, "model said: reply from bob", "{}", bridge.log());
    assert_eq!(bob.prompts(), ["for bob"]);
    assert!(alice.prompts().is_empty(), "{:?}", alice.prompts());

    // Bob's call asks after 800 ms; alice's call is in flight by then too.
    let bobs = call(
        &b,
        "sample",
        json!({"prompt": "bob's secret", "delay_ms": 800}),
    );
    let alices = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        call(
            &a,
            "sample",
            json!({"prompt": "for alice", "delay_ms": 2500}),
        )
        .await
    };
    let (bobs, alices) = tokio::join!(bobs, alices);
    let bobs = bobs?;
    assert!(
        bobs.starts_with("sampling failed"),
        "{bobs}\n{}",
        bridge.log()
    );
    // Alice asks after bob's call ended: hers is the only one in flight.
    assert_eq!(alices?, "model said: reply from alice", "{}", bridge.log());
    assert!(
        !alice
            .prompts()
            .iter()
            .chain(bob.prompts().iter())
            .any(|p| p == "bob's secret"),
        "alice {:?} bob {:?}",
        alice.prompts(),
        bob.prompts()
    );
    assert!(
        bridge.log().contains("several sessions"),
        "the refusal is logged:\n{}",
        bridge.log()
    );

    // Asked with no call in flight: nobody to attribute it to.
    assert_eq!(
        call(&a, "sample_later", json!({"prompt": "later"})).await?,
        "scheduled"
    );
    wait_for("the background request's outcome", &bridge, || {
        bridge.log().contains("background sampling")
    })
    .await;
    assert!(
        bridge.log().contains("background sampling failed"),
        "{}",
        bridge.log()
    );
    assert!(!alice
        .prompts()
        .iter()
        .chain(bob.prompts().iter())
        .any(|p| p == "later"));
    a.cancel().await?;
    b.cancel().await?;
    Ok(())
}

/// Notifications: with `--shared` a log message goes only to the session
/// whose call caused it, a resource update only to sessions subscribed to
/// it, and `tools/list_changed` to every session; with a child per session
/// the session gets everything its child sends.
#[tokio::test(flavor = "multi_thread")]
async fn notifications_reach_the_sessions_they_concern() -> Result<()> {
    let bridge = Bridge::stdio_peer(&["--shared"])?;
    let (alice, a) = asker(bridge.url(), "alice").await?;
    let (bob, b) = asker(bridge.url(), "bob").await?;
    assert_eq!(
        call(&b, "announce", json!({"message": "bob-news"})).await?,
        "announced"
    );
    wait_for("list_changed to both sessions", &bridge, || {
        alice.list_changed() >= 1 && bob.list_changed() >= 1
    })
    .await;
    wait_for("bob's log message", &bridge, || !bob.logs().is_empty()).await;
    // Anything else would have arrived with list_changed, which came after.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(bob.logs(), [json!("bob-news")]);
    assert!(alice.logs().is_empty(), "{:?}", alice.logs());
    assert!(alice.updates().is_empty(), "{:?}", alice.updates());
    assert!(
        bob.updates().is_empty(),
        "not subscribed: {:?}",
        bob.updates()
    );
    a.cancel().await?;
    b.cancel().await?;
    drop(bridge);

    let bridge = Bridge::stdio_peer(&[])?;
    let (alice, a) = asker(bridge.url(), "alice").await?;
    assert_eq!(
        call(&a, "announce", json!({"message": "news"})).await?,
        "announced"
    );
    wait_for("everything to the only session", &bridge, || {
        alice.list_changed() >= 1 && !alice.logs().is_empty() && !alice.updates().is_empty()
    })
    .await;
    assert_eq!(alice.updates(), ["peer://news"]);
    // Its own child, nobody else's: unsolicited requests reach it too.
    assert_eq!(
        call(&a, "sample_later", json!({"prompt": "later"})).await?,
        "scheduled"
    );
    wait_for("the background request", &bridge, || {
        bridge.log().contains("background sampling")
    })
    .await;
    assert!(
        bridge
            .log()
            .contains("background sampling answered: reply from alice"),
        "{}",
        bridge.log()
    );
    a.cancel().await?;
    Ok(())
}

/// A child that dies mid-call: the client gets an error for that call, the
/// bridge stays up, and the next session gets a fresh child.
#[tokio::test(flavor = "multi_thread")]
async fn a_child_crash_is_an_error_and_the_next_session_works() -> Result<()> {
    for options in [&[][..], &["--shared"][..]] {
        let mut bridge = Bridge::stdio_peer(options)?;
        let doomed = client(bridge.url()).await?;
        let crashed = doomed.call_tool(CallToolRequestParams::new("crash")).await;
        assert!(crashed.is_err(), "{crashed:?}");
        // The same session now answers with an error, not a hang.
        let after = tokio::time::timeout(
            Duration::from_secs(10),
            doomed.call_tool(
                CallToolRequestParams::new("echo")
                    .with_arguments(tool_args(json!({"message": "x"}))),
            ),
        )
        .await?;
        assert!(after.is_err());
        let _ = doomed.cancel().await;
        assert!(bridge.alive(), "the bridge exited with its child");

        let fresh = client(bridge.url()).await?;
        let out = fresh
            .call_tool(
                CallToolRequestParams::new("echo")
                    .with_arguments(tool_args(json!({"message": "again"}))),
            )
            .await?;
        assert_eq!(tool_text(&out), "again");
        fresh.cancel().await?;
        assert_eq!(
            bridge.children_started(),
            2,
            "{options:?}\n{}",
            bridge.log()
        );
        assert!(
            bridge.log().contains("crashing on request"),
            "child stderr is logged"
        );
    }
    Ok(())
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#;

/// DNS-rebinding protection: a `Host` that is not a loopback name (or an
/// `--allowed-host`) and a browser `Origin` that is not allowed get `403` and a
/// JSON-RPC error, and no child is started for them; clients that send no
/// `Origin` are served.
#[tokio::test(flavor = "multi_thread")]
async fn foreign_hosts_and_origins_are_refused_before_the_child() -> Result<()> {
    let refused = |r: &mcp_filter_integration::RawResponse| -> Result<()> {
        let body: serde_json::Value =
            serde_json::from_slice(&r.body).with_context(|| format!("not JSON: {}", r.text()))?;
        anyhow::ensure!(r.status == 403, "status {}: {}", r.status, r.text());
        anyhow::ensure!(
            body["jsonrpc"] == "2.0" && body["error"]["code"] == -32043,
            "{body}"
        );
        Ok(())
    };
    let bridge = Bridge::stdio_peer(&[])?;
    let port = bridge.port.to_string();
    let rebound = format!("evil.example:{port}");
    for headers in [
        vec![("host", rebound.as_str())],
        vec![
            ("host", rebound.as_str()),
            ("origin", "http://evil.example"),
        ],
        vec![("origin", "https://evil.example")],
        vec![("origin", "null")],
    ] {
        let r = post_raw(&bridge.url(), &headers, INIT).await?;
        refused(&r).with_context(|| format!("{headers:?}"))?;
    }
    // Nothing reached a child: none was started.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(bridge.children_started(), 0, "{}", bridge.log());
    assert!(
        bridge.log().contains("refused a request"),
        "{}",
        bridge.log()
    );

    // Loopback names on any port, with no Origin or a loopback one, are served.
    let localhost = format!("localhost:{port}");
    for headers in [
        vec![],
        vec![("host", localhost.as_str())],
        vec![
            ("host", localhost.as_str()),
            ("origin", "http://localhost:6274"),
        ],
    ] {
        let r = post_raw(&bridge.url(), &headers, INIT).await?;
        assert_eq!(r.status, 200, "{headers:?}: {}", r.text());
    }
    drop(bridge);

    // --allowed-host adds a name (e.g. the authority Envoy forwards), and
    // its own origin; --allowed-origin adds an origin.
    let bridge = Bridge::stdio_peer(&[
        "--allowed-host",
        "mcp.example.com",
        "--allowed-origin",
        "https://app.example.com",
    ])?;
    for headers in [
        vec![("host", "mcp.example.com")],
        vec![
            ("host", "mcp.example.com"),
            ("origin", "https://mcp.example.com"),
        ],
        vec![
            ("host", "mcp.example.com"),
            ("origin", "https://app.example.com"),
        ],
    ] {
        let r = post_raw(&bridge.url(), &headers, INIT).await?;
        assert_eq!(r.status, 200, "{headers:?}: {}", r.text());
    }
    let r = post_raw(&bridge.url(), &[("host", "other.example.com")], INIT).await?;
    refused(&r)?;
    drop(bridge);

    // --allow-any-host: any Host (a proxy in front checks it); Origin still checked.
    let bridge = Bridge::stdio_peer(&["--allow-any-host"])?;
    let r = post_raw(&bridge.url(), &[("host", "anything.example")], INIT).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post_raw(
        &bridge.url(),
        &[
            ("host", "anything.example"),
            ("origin", "https://evil.example"),
        ],
        INIT,
    )
    .await?;
    refused(&r)?;
    Ok(())
}

/// Unknown sessions are 404; DELETE ends a session and its child; limits
/// answer with clear errors.
#[tokio::test(flavor = "multi_thread")]
async fn sessions_end_and_limits_hold() -> Result<()> {
    let bridge = Bridge::stdio_peer(&[
        "--max-sessions",
        "1",
        "--max-message-bytes",
        "2000",
        "--request-timeout-secs",
        "1",
    ])?;
    let unknown = post_raw(
        &bridge.url(),
        &[("mcp-session-id", "nope")],
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    )
    .await?;
    assert_eq!(unknown.status, 404, "{}", unknown.text());

    let opened = post_raw(&bridge.url(), &[], INIT).await?;
    assert_eq!(opened.status, 200, "{}", opened.text());
    let session = opened
        .header("mcp-session-id")
        .context("session id")?
        .to_string();
    let second = post_raw(&bridge.url(), &[], INIT).await?;
    assert_eq!(second.status, 503, "{}", second.text());
    assert!(
        second.text().contains("at most 1 sessions"),
        "{}",
        second.text()
    );

    let h = [
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    post_raw(&bridge.url(), &h, INITIALIZED).await?;
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"{}"}}}}}}"#,
        "x".repeat(4000)
    );
    assert_eq!(post_raw(&bridge.url(), &h, big).await?.status, 413);
    let slow = r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"progress","arguments":{"steps":200},"_meta":{"progressToken":"p"}}}"#;
    let timed_out = post_raw(&bridge.url(), &h, slow).await?;
    assert!(
        timed_out.text().contains("did not answer within 1 s"),
        "{}",
        timed_out.text()
    );

    let ended = reqwest::Client::new()
        .delete(bridge.url())
        .header("mcp-session-id", &session)
        .send()
        .await?;
    assert!(ended.status().is_success(), "{}", ended.status());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !bridge.log().contains("] exited") {
        assert!(
            Instant::now() < deadline,
            "child not stopped:\n{}",
            bridge.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The slot is free again.
    assert_eq!(post_raw(&bridge.url(), &[], INIT).await?.status, 200);
    Ok(())
}

/// An idle session ends after `--idle-timeout-secs`, and its child with it;
/// the session id is then unknown (404). Sessions themselves answer over SSE.
#[tokio::test(flavor = "multi_thread")]
async fn idle_sessions_time_out_and_their_children_are_reaped() -> Result<()> {
    let bridge = Bridge::stdio_peer(&["--idle-timeout-secs", "1"])?;
    let opened = post_raw(&bridge.url(), &[], INIT).await?;
    assert_eq!(opened.status, 200);
    assert_eq!(opened.header("content-type"), Some("text/event-stream"));
    let session = opened
        .header("mcp-session-id")
        .context("session id")?
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !bridge.log().contains("] exited") {
        assert!(
            Instant::now() < deadline,
            "idle child not reaped:\n{}",
            bridge.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let h = [
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    let late = post_raw(
        &bridge.url(),
        &h,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    )
    .await?;
    assert_eq!(late.status, 404, "{}", late.text());
    Ok(())
}

/// A 2026-07-28 request (no session, no initialize) is served by a one-shot
/// child, or by the shared child.
#[tokio::test(flavor = "multi_thread")]
async fn stateless_2026_requests_are_served() -> Result<()> {
    let call = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"add","arguments":{"a":2,"b":40},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"raw","version":"0"},"io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    let headers = [
        ("mcp-method", "tools/call"),
        ("mcp-name", "add"),
        ("mcp-protocol-version", "2026-07-28"),
    ];
    for options in [&[][..], &["--shared"][..]] {
        let bridge = Bridge::stdio_peer(options)?;
        for _ in 0..2 {
            let r = post_raw(&bridge.url(), &headers, call).await?;
            assert_eq!(r.status, 200, "{options:?}: {}\n{}", r.text(), bridge.log());
            assert_eq!(r.header("content-type"), Some("application/json"));
            assert!(r.text().contains("\"42\""), "{}", r.text());
        }
    }
    Ok(())
}

/// `--max-sessions` bounds the children, wherever one would start: a second
/// `initialize` in a session, and 2026-07-28 stateless requests carrying a
/// made-up session id (the HTTP layer counts only requests without one),
/// sent at once, start none past the limit.
#[tokio::test(flavor = "multi_thread")]
async fn children_stay_within_max_sessions() -> Result<()> {
    let bridge = Bridge::stdio_peer(&["--max-sessions", "1"])?;
    let started = |bridge: &Bridge| bridge.log().matches("] started `").count();
    let (_, session) = open_session(&bridge, INIT).await?;
    let h = [
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    let url = bridge.url();
    // Whatever the SDK answers them (it may keep their streams open), they
    // start no child.
    let again =
        (0..3).map(|_| tokio::time::timeout(Duration::from_secs(2), post_raw(&url, &h, INIT)));
    futures::future::join_all(again).await;
    let call = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"add","arguments":{"a":2,"b":40},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"raw","version":"0"},"io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    let stateless = [
        ("mcp-method", "tools/call"),
        ("mcp-name", "add"),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-session-id", "made-up"),
    ];
    let calls = (0..4).map(|_| post_raw(&url, &stateless, call));
    for r in futures::future::join_all(calls).await {
        let r = r?;
        assert!(
            !r.text().contains("\"42\""),
            "served past the limit: {}",
            r.text()
        );
    }
    assert_eq!(started(&bridge), 1, "{}", bridge.log());

    // The session ends: its place is free again.
    let ended = reqwest::Client::new()
        .delete(bridge.url())
        .header("mcp-session-id", session.as_str())
        .send()
        .await?;
    assert!(ended.status().is_success(), "{}", ended.status());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = post_raw(&bridge.url(), &stateless[..3], call).await?;
        if r.text().contains("\"42\"") {
            break;
        }
        assert!(Instant::now() < deadline, "{}\n{}", r.text(), bridge.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// SIGTERM: the bridge ends its sessions, terminates every child and exits.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_children_and_the_bridge() -> Result<()> {
    let mut bridge = Bridge::stdio_peer(&[])?;
    let c = client(bridge.url()).await?;
    c.list_all_tools().await?;
    let child_pid: u32 = bridge
        .log()
        .lines()
        .find_map(|l| l.split("(pid ").nth(1)?.trim_end_matches(')').parse().ok())
        .context("child pid in the log")?;
    Command::new("kill")
        .args(["-TERM", &bridge.child.id().to_string()])
        .status()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while bridge.alive() {
        assert!(
            Instant::now() < deadline,
            "bridge still running:\n{}",
            bridge.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Neither running nor a zombie: the pid is gone.
    let proc_entry = PathBuf::from(format!("/proc/{child_pid}"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while proc_entry.exists() {
        assert!(Instant::now() < deadline, "child {child_pid} left behind");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(c);
    Ok(())
}

/// npm's reference server, when `scripts/test` could install it (it needs the
/// npm registry): list, call, and a second session.
#[tokio::test(flavor = "multi_thread")]
async fn server_everything_from_npm_behind_the_bridge() -> Result<()> {
    let root = mcp_filter_integration::repo_root();
    let entry =
        root.join(".venv/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    if !entry.is_file() {
        eprintln!("skipping: @modelcontextprotocol/server-everything is not installed (scripts/test installs it into .venv/npm)");
        return Ok(());
    }
    let entry = entry.to_str().context("path")?.to_string();
    let bridge = Bridge::start(&[], &["node", &entry, "stdio"])?;
    for _ in 0..2 {
        let c = client(bridge.url()).await?;
        let tools = c.list_all_tools().await?;
        assert!(
            tools.iter().any(|t| t.name == "echo"),
            "{:?}",
            tools.iter().map(|t| t.name.to_string()).collect::<Vec<_>>()
        );
        let out = c
            .call_tool(
                CallToolRequestParams::new("echo")
                    .with_arguments(tool_args(json!({"message": "hi"}))),
            )
            .await?;
        assert!(tool_text(&out).contains("hi"), "{}", tool_text(&out));
        c.cancel().await?;
    }
    Ok(())
}

/// `--path`, `--health-endpoint` and `--cors`, as Supergateway users set them.
#[tokio::test(flavor = "multi_thread")]
async fn a_custom_path_health_endpoints_and_cors_are_served() -> Result<()> {
    let bridge = Bridge::stdio_peer(&[
        "--path",
        "/v1/mcp",
        "--health-endpoint",
        "/healthz",
        "--health-endpoint",
        "/ready",
        "--cors",
        "https://app.example.com",
    ])?;
    let base = format!("http://127.0.0.1:{}", bridge.port);
    let r = post_raw(&format!("{base}/v1/mcp"), &[], INIT).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post_raw(&format!("{base}/mcp"), &[], INIT).await?;
    assert_eq!(r.status, 404, "the default path is not served");

    let http = reqwest::Client::new();
    for path in ["/healthz", "/ready"] {
        let r = http.get(format!("{base}{path}")).send().await?;
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await?, "ok");
    }
    // Health endpoints answer GET only, and are behind the Host check too.
    let r = http.post(format!("{base}/healthz")).send().await?;
    assert_eq!(r.status(), 405);
    let r = http
        .get(format!("{base}/healthz"))
        .header("host", "evil.example")
        .send()
        .await?;
    assert_eq!(r.status(), 403);

    // A browser's preflight from the CORS origin, then its request.
    let r = http
        .request(reqwest::Method::OPTIONS, format!("{base}/v1/mcp"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, mcp-session-id",
        )
        .send()
        .await?;
    assert!(r.status().is_success(), "{}", r.status());
    let header = |r: &reqwest::Response, n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
    };
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert!(
        header(&r, "access-control-allow-headers").is_some_and(|h| h.contains("mcp-session-id"))
    );
    let r = post_raw(
        &format!("{base}/v1/mcp"),
        &[("origin", "https://app.example.com")],
        INIT,
    )
    .await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let expose = r
        .headers
        .iter()
        .find(|(k, _)| k == "access-control-expose-headers")
        .map(|(_, v)| v.to_ascii_lowercase())
        .unwrap_or_default();
    assert!(expose.contains("mcp-session-id"), "{:?}", r.headers);
    // Another origin is still refused by the Origin check.
    let r = post_raw(
        &format!("{base}/v1/mcp"),
        &[("origin", "https://evil.example")],
        INIT,
    )
    .await?;
    assert_eq!(r.status, 403);
    drop(bridge);

    // `--cors` alone: any origin, answered with `*`.
    let bridge = Bridge::stdio_peer(&["--cors"])?;
    let r = post_raw(
        &bridge.url(),
        &[("origin", "https://anywhere.example")],
        INIT,
    )
    .await?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r
        .headers
        .iter()
        .any(|(k, v)| k == "access-control-allow-origin" && v == "*"));
    Ok(())
}

/// A stdio server that starts a process of its own (as `npx` starts `node`):
/// when its session ends, and when the bridge stops, nothing of it is left.
#[tokio::test(flavor = "multi_thread")]
async fn processes_a_child_started_end_with_its_session_and_with_the_bridge() -> Result<()> {
    let peer = peer_bin();
    let peer = peer.to_str().context("peer path")?;
    let script = format!("sleep 300 & echo \"grandchild $!\" >&2; exec {peer} --mode stdio");
    let grandchild = |bridge: &Bridge, nth: usize| -> Option<u32> {
        bridge
            .log()
            .lines()
            .filter_map(|l| l.split("grandchild ").nth(1)?.trim().parse().ok())
            .nth(nth)
    };
    let gone = |pid: u32| async move {
        let entry = PathBuf::from(format!("/proc/{pid}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while entry.exists() {
            // A zombie is gone too: reaped by whoever is its parent now.
            let state = std::fs::read_to_string(entry.join("stat")).unwrap_or_default();
            if state.contains(") Z ") {
                break;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    };
    let mut bridge = Bridge::start(&[], &["sh", "-c", &script])?;
    // A session, ended by the client.
    let opened = post_raw(&bridge.url(), &[], INIT).await?;
    assert_eq!(opened.status, 200, "{}", opened.text());
    let session = opened
        .header("mcp-session-id")
        .context("session id")?
        .to_string();
    wait_for("the grandchild's pid", &bridge, || {
        grandchild(&bridge, 0).is_some()
    })
    .await;
    let first = grandchild(&bridge, 0).context("pid")?;
    assert!(PathBuf::from(format!("/proc/{first}")).exists());
    reqwest::Client::new()
        .delete(bridge.url())
        .header("mcp-session-id", &session)
        .send()
        .await?;
    assert!(
        gone(first).await,
        "{first} outlived its session:\n{}",
        bridge.log()
    );

    // A session alive when the bridge stops.
    assert_eq!(post_raw(&bridge.url(), &[], INIT).await?.status, 200);
    wait_for("the second grandchild", &bridge, || {
        grandchild(&bridge, 1).is_some()
    })
    .await;
    let second = grandchild(&bridge, 1).context("pid")?;
    Command::new("kill")
        .args(["-TERM", &bridge.child.id().to_string()])
        .status()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while bridge.alive() {
        assert!(Instant::now() < deadline, "bridge still running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone(second).await, "{second} outlived the bridge");
    Ok(())
}

/// `mcp-bridge connect`: a stdio-only client (here rmcp's, spawning the
/// bridge as its server) reaches a server behind Envoy and the filter with a
/// token from the environment; without the token it gets nothing.
#[tokio::test(flavor = "multi_thread")]
async fn connect_brings_a_stdio_client_to_a_server_behind_the_gateway() -> Result<()> {
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    let peer = mcp_filter_integration::Peer::start(mcp_filter_integration::PeerMode::Stateful)?;
    let key = SigningKey::generate("k1")?;
    let idp = Idp::start(&[&key]).await?;
    let mut setup = EnvoySetup::new(peer.port, secured_config());
    setup.named_clusters.push(("idp".into(), idp.port));
    let envoy = Envoy::start(&bin, &setup)?;
    let token = key.sign(&claims(
        "alice",
        json!({"tenant": "acme", "scope": "mcp:tools"}),
    ));

    let bridge = |env_token: Option<&str>| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-bridge"));
        command.args(["connect", &envoy.url(), "--header", "X-Client: desktop"]);
        if let Some(token) = env_token {
            command
                .env("MCP_TOKEN", token)
                .args(["--bearer-env", "MCP_TOKEN"]);
        }
        rmcp::transport::TokioChildProcess::new(command)
    };
    let client = ().serve(bridge(Some(&token))?).await?;
    let names = listed_tool_names(client.peer()).await?;
    assert_eq!(
        names,
        ["add", "echo"],
        "the filter's policy, through the bridge"
    );
    let echoed = client
        .call_tool(
            CallToolRequestParams::new("echo").with_arguments(tool_args(json!({"message": "hi"}))),
        )
        .await?;
    assert_eq!(tool_text(&echoed), "hi");
    let denied = client
        .call_tool(CallToolRequestParams::new("big").with_arguments(tool_args(json!({"n": 1}))))
        .await;
    assert!(denied.is_err(), "{denied:?}");
    client.cancel().await?;
    let received = peer.received().await?;
    assert!(received
        .iter()
        .all(|r| r.header("x-client") == Some("desktop") && r.header("authorization").is_none()),
        "the header went along; the token stopped at the filter");
    assert!(received.iter().any(|r| r.body.contains("\"echo\"")));

    // No token: the gateway answers 401, the client's initialize fails.
    let refused = ().serve(bridge(None)?).await;
    assert!(refused.is_err(), "initialized without a token");
    Ok(())
}

/// `--output-transport both`: an old client on the legacy HTTP+SSE transport
/// (the Python SDK's `sse_client`) and a Streamable HTTP one, side by side;
/// closing the stream ends the session and its child.
#[tokio::test(flavor = "multi_thread")]
async fn the_legacy_sse_transport_serves_old_clients_beside_streamable_http() -> Result<()> {
    let Some(python) = mcp_filter_integration::sdk::python_sdk()? else {
        return Ok(());
    };
    let bridge = Bridge::stdio_peer(&["--output-transport", "both"])?;
    let sse = format!("http://127.0.0.1:{}/sse", bridge.port);
    let run = mcp_filter_integration::sdk::run_python_client(
        &python,
        "python_list_call.py",
        &["sse", &sse, "add", r#"{"a": 2, "b": 40}"#, "echo", "add"],
    )?;
    assert!(run.success, "{}\n{}", run.output, bridge.log());
    assert!(run.output.contains("add: 42"), "{}", run.output);
    // Streamable HTTP on its own path still.
    let c = client(bridge.url()).await?;
    assert!(listed_tool_names(c.peer())
        .await?
        .contains(&"echo".to_string()));
    c.cancel().await?;
    // The client closed its stream: its session and child are gone.
    wait_for("the legacy session's end", &bridge, || {
        bridge.log().contains("legacy SSE session") && bridge.log().contains("closed")
    })
    .await;

    // What the legacy endpoints refuse: no session, an unknown one, bad JSON.
    let message = format!("http://127.0.0.1:{}/message", bridge.port);
    let r = post_raw(&message, &[], INIT).await?;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = post_raw(&format!("{message}?sessionId=nope"), &[], INIT).await?;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["error"]["message"], "Session not found");
    // Host checks cover the legacy endpoints too.
    let r = reqwest::Client::new()
        .get(&sse)
        .header("host", "evil.example")
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    drop(bridge);

    // `--output-transport sse`: only the legacy endpoints.
    let bridge = Bridge::stdio_peer(&["--output-transport", "sse"])?;
    assert_eq!(post_raw(&bridge.url(), &[], INIT).await?.status, 404);
    let run = mcp_filter_integration::sdk::run_python_client(
        &python,
        "python_list_call.py",
        &[
            "sse",
            &format!("http://127.0.0.1:{}/sse", bridge.port),
            "echo",
            r#"{"message": "old"}"#,
        ],
    )?;
    assert!(
        run.success && run.output.contains("echo: old"),
        "{}",
        run.output
    );
    Ok(())
}

/// The JSON-RPC messages of an answer: its JSON body, or each event's data.
fn messages(r: &mcp_filter_integration::RawResponse) -> Vec<serde_json::Value> {
    if r.header("content-type") == Some("application/json") {
        return match r.json() {
            serde_json::Value::Array(batch) => batch,
            one => vec![one],
        };
    }
    r.text()
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect()
}

/// The answer to request `id` among `messages`.
fn answer(messages: &[serde_json::Value], id: u64) -> serde_json::Value {
    messages
        .iter()
        .find(|m| m["id"] == id)
        .cloned()
        .unwrap_or_default()
}

/// What a newer server says that the SDK's model lacks, checked on a
/// `tools/list` and a `tools/call` answer of `future_stdio_server.py`, and
/// the call's new parameter as the server received it.
fn assert_whole(list: &serde_json::Value, call: &serde_json::Value, how: &str) {
    let tool = &list["result"]["tools"][0];
    assert_eq!(tool["annotations"]["futureHint"], "kept", "{how}: {list}");
    assert_eq!(tool["annotations"]["readOnlyHint"], true, "{how}: {list}");
    assert_eq!(
        tool["futureMember"],
        json!({"nested": [1, 2, 3]}),
        "{how}: {list}"
    );
    assert_eq!(list["result"]["futureResultField"], "kept", "{how}: {list}");
    assert_eq!(call["result"]["futureResultField"], "kept", "{how}: {call}");
    let received: serde_json::Value = serde_json::from_str(
        call["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    assert_eq!(
        received,
        json!({"name": "probe", "arguments": {"x": 1}, "futureParam": {"a": [true]}}),
        "{how}: the server received {call}"
    );
}

/// The `initialize` result's members the SDK does not model, beside the
/// protocol version it negotiated.
fn assert_initialized_whole(init: &serde_json::Value, how: &str) {
    let result = &init["result"];
    assert_eq!(result["futureInit"], "kept", "{how}: {init}");
    assert_eq!(
        result["capabilities"]["futureCapability"],
        json!({"x": 1}),
        "{how}: {init}"
    );
    assert_eq!(result["serverInfo"]["futureInfo"], "kept", "{how}: {init}");
    assert!(result["capabilities"]["tools"].is_object(), "{how}: {init}");
    assert!(result["protocolVersion"].is_string(), "{how}: {init}");
}

/// The log message the server sends while serving the call, with its
/// member the SDK does not model.
fn assert_logged_whole(messages: &[serde_json::Value], how: &str) {
    let logged = messages
        .iter()
        .find(|m| m["method"] == "notifications/message")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        logged["params"]["futureNote"], "kept",
        "{how}: {messages:?}"
    );
    assert_eq!(logged["params"]["data"], "probe called", "{how}: {logged}");
}

const FUTURE_LIST: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}"#;
const FUTURE_CALL: &str = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"probe","arguments":{"x":1},"futureParam":{"a":[true]}}}"#;

fn future_server() -> Vec<String> {
    vec![
        "python3".into(),
        mcp_filter_integration::repo_root()
            .join("scripts/servers/future_stdio_server.py")
            .display()
            .to_string(),
    ]
}

/// Messages pass whole: a newer server's tool annotations and result members
/// reach the client, and a client's new request parameter reaches the
/// server, over a Streamable HTTP session, a 2026-07-28 request without one,
/// and the legacy SSE transport (rmcp's typed model drops all of them).
#[tokio::test(flavor = "multi_thread")]
async fn members_the_sdk_does_not_model_pass_through_whole() -> Result<()> {
    let server = future_server();
    let command: Vec<&str> = server.iter().map(String::as_str).collect();
    let bridge = Bridge::start(&["--output-transport", "both"], &command)?;

    // A session.
    let (initialized, session) = open_session(&bridge, INIT).await?;
    assert_initialized_whole(&initialized, "a session");
    let headers = [
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    let list = answer(
        &messages(&post_raw(&bridge.url(), &headers, FUTURE_LIST).await?),
        2,
    );
    let call = answer(
        &messages(&post_raw(&bridge.url(), &headers, FUTURE_CALL).await?),
        3,
    );
    assert_whole(&list, &call, "a session");

    // A 2026-07-28 request without a session (answered with JSON).
    let meta = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"raw","version":"0"},"io.modelcontextprotocol/clientCapabilities":{}}"#;
    let stateless =
        |request: &str| request.replacen(r#""params":{"#, &format!(r#""params":{{{meta},"#), 1);
    let list_2026 = stateless(FUTURE_LIST).replace(",}", "}");
    let call_2026 = stateless(FUTURE_CALL);
    let h = |method: &'static str, name: Option<&'static str>| {
        let mut h = vec![
            ("mcp-method", method),
            ("mcp-protocol-version", "2026-07-28"),
        ];
        h.extend(name.map(|n| ("mcp-name", n)));
        h
    };
    let list = post_raw(&bridge.url(), &h("tools/list", None), list_2026).await?;
    let call = post_raw(&bridge.url(), &h("tools/call", Some("probe")), call_2026).await?;
    assert_eq!(call.status, 200, "{}\n{}", call.text(), bridge.log());
    assert_whole(
        &answer(&messages(&list), 2),
        &answer(&messages(&call), 3),
        "2026-07-28",
    );

    // The legacy SSE transport: posted messages, answers on the stream.
    let (mut events, endpoint) = legacy_session(&bridge).await?;
    let mut legacy: Vec<serde_json::Value> = Vec::new();
    for (message, id) in [
        (INIT, Some(1)),
        (INITIALIZED, None),
        (FUTURE_LIST, Some(2)),
        (FUTURE_CALL, Some(3)),
    ] {
        assert_eq!(post_raw(&endpoint, &[], message).await?.status, 202);
        while id.is_some_and(|id| !legacy.iter().any(|m| m["id"] == id)) {
            legacy.push(events.next_message().await?);
        }
    }
    // The log message may follow the answer.
    while !legacy
        .iter()
        .any(|m| m["method"] == "notifications/message")
    {
        legacy.push(events.next_message().await?);
    }
    assert_whole(&answer(&legacy, 2), &answer(&legacy, 3), "legacy SSE");
    assert_initialized_whole(&answer(&legacy, 1), "legacy SSE");
    assert_logged_whole(&legacy, "legacy SSE");
    Ok(())
}

const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// A session opened with `init` and told it is initialized: the
/// `initialize` answer and the session's id.
async fn open_session(bridge: &Bridge, init: &str) -> Result<(serde_json::Value, String)> {
    let r = post_raw(&bridge.url(), &[], init.to_string()).await?;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), bridge.log());
    let session = r
        .header("mcp-session-id")
        .context("session id")?
        .to_string();
    let headers = [
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    let initialized = post_raw(&bridge.url(), &headers, INITIALIZED).await?;
    assert_eq!(initialized.status, 202, "{}", initialized.text());
    Ok((answer(&messages(&r), 1), session))
}

/// A legacy SSE session: its event stream, and the URL to post to that
/// its first event names.
async fn legacy_session(bridge: &Bridge) -> Result<(Events, String)> {
    let base = format!("http://127.0.0.1:{}", bridge.port);
    let stream = reqwest::Client::new()
        .get(format!("{base}/sse"))
        .send()
        .await?;
    let mut events = Events::new(stream);
    let endpoint = format!("{base}{}", events.next_data().await?);
    Ok((events, endpoint))
}

/// An event stream read as it arrives: each event's `data`.
struct Events {
    stream: reqwest::Response,
    text: String,
}

impl Events {
    fn new(stream: reqwest::Response) -> Self {
        Self {
            stream,
            text: String::new(),
        }
    }

    async fn next_data(&mut self) -> Result<String> {
        loop {
            if let Some(end) = self.text.find("\n\n") {
                let event: String = self.text.drain(..end + 2).collect();
                if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:")) {
                    return Ok(data.trim().to_string());
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.stream.chunk())
                .await??
                .context("the stream ended")?;
            self.text.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next message (events without data, such as a priming event,
    /// are passed over).
    async fn next_message(&mut self) -> Result<serde_json::Value> {
        loop {
            let data = self.next_data().await?;
            if !data.is_empty() {
                return Ok(serde_json::from_str(&data)?);
            }
        }
    }

    /// Messages until the one that is request `method`'s.
    async fn request(&mut self, method: &str) -> Result<serde_json::Value> {
        loop {
            let message = self.next_message().await?;
            if message["method"] == method && message.get("id").is_some() {
                return Ok(message);
            }
        }
    }

    /// Messages until the answer to request `id`.
    async fn answer(&mut self, id: u64) -> Result<serde_json::Value> {
        loop {
            let message = self.next_message().await?;
            if message["id"] == id && message.get("method").is_none() {
                return Ok(message);
            }
        }
    }
}

const ASK: &str =
    r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"ask","arguments":{}}}"#;

/// The client's answer to the server's sampling request, with a member no
/// SDK models, for the request `asked`.
fn sampled(asked: &serde_json::Value) -> String {
    assert_eq!(asked["params"]["futureAsk"], "kept", "{asked}");
    json!({"jsonrpc": "2.0", "id": asked["id"], "result": {
        "role": "assistant", "content": {"type": "text", "text": "sampled"},
        "model": "m", "futureAnswer": {"k": [1]}}})
    .to_string()
}

/// What the server received as the client's answer, as the `ask` tool
/// reports it: every member.
fn assert_answer_whole(call: &serde_json::Value, how: &str) {
    let text = call["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    let received: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    assert_eq!(
        received,
        json!({"role": "assistant", "content": {"type": "text", "text": "sampled"},
               "model": "m", "futureAnswer": {"k": [1]}}),
        "{how}: {call}"
    );
}

/// A client's answer to the server's own request (sampling here) reaches
/// the server with the members the SDK's typed model lacks, over Streamable
/// HTTP, the legacy SSE transport and `connect`.
#[tokio::test(flavor = "multi_thread")]
async fn a_clients_answer_to_the_servers_request_passes_whole() -> Result<()> {
    let server = future_server();
    let command: Vec<&str> = server.iter().map(String::as_str).collect();
    let bridge = Bridge::start(&["--output-transport", "both"], &command)?;
    let init = INIT.replace(r#""capabilities":{}"#, r#""capabilities":{"sampling":{}}"#);

    // A session: the call's answer comes on its event stream, after the
    // server's request and the client's answer to it.
    let (_, session) = open_session(&bridge, &init).await?;
    let headers = [
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    let call = headers
        .iter()
        .fold(reqwest::Client::new().post(bridge.url()), |r, (k, v)| {
            r.header(*k, *v)
        })
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(ASK)
        .send()
        .await?;
    let mut events = Events::new(call);
    let asked = events.request("sampling/createMessage").await?;
    let posted = post_raw(&bridge.url(), &headers, sampled(&asked)).await?;
    assert_eq!(posted.status, 202, "{}", posted.text());
    assert_answer_whole(&events.answer(4).await?, "a session");

    // The legacy SSE transport.
    let (mut events, endpoint) = legacy_session(&bridge).await?;
    for message in [init.clone(), INITIALIZED.into(), ASK.into()] {
        assert_eq!(post_raw(&endpoint, &[], message).await?.status, 202);
    }
    let asked = events.request("sampling/createMessage").await?;
    assert_eq!(post_raw(&endpoint, &[], sampled(&asked)).await?.status, 202);
    assert_answer_whole(&events.answer(4).await?, "legacy SSE");

    // `connect`: a stdio client answering the remote server's request.
    let mut connect = Connect::start(&[&bridge.url()])?;
    connect.send(&init)?;
    connect.read_until(|m| m["id"] == 1)?;
    connect.send(INITIALIZED)?;
    connect.send(ASK)?;
    let asked = connect.read_until(|m| m["method"] == "sampling/createMessage")?;
    connect.send(&sampled(&asked))?;
    assert_answer_whole(&connect.read_until(|m| m["id"] == 4)?, "connect");
    Ok(())
}

/// `mcp-bridge connect ARGS...` driven over its stdio with raw lines;
/// stopped when dropped.
struct Connect {
    process: Child,
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Connect {
    fn start(args: &[&str]) -> Result<Self> {
        let mut process = Command::new(env!("CARGO_BIN_EXE_mcp-bridge"))
            .arg("connect")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Self {
            stdin: process.stdin.take().context("stdin")?,
            stdout: BufReader::new(process.stdout.take().context("stdout")?),
            process,
        })
    }

    fn send(&mut self, line: &str) -> Result<()> {
        use std::io::Write;
        Ok(writeln!(self.stdin, "{line}")?)
    }

    fn read(&mut self) -> Result<serde_json::Value> {
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        serde_json::from_str(&line).with_context(|| format!("{line:?}"))
    }

    /// What it prints until `done` holds for a line.
    fn read_until(
        &mut self,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<serde_json::Value> {
        loop {
            let message = self.read()?;
            if done(&message) {
                return Ok(message);
            }
        }
    }
}

impl Drop for Connect {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// What `connect ARGS...` printed until the answers to the list and the
/// call of `future_stdio_server.py` and its log message were there.
fn connect_raw(args: &[&str], init: &str) -> Result<Vec<serde_json::Value>> {
    let mut connect = Connect::start(args)?;
    let mut said: Vec<serde_json::Value> = Vec::new();
    for (message, id) in [
        (init, Some(1)),
        (INITIALIZED, None),
        (FUTURE_LIST, Some(2)),
        (FUTURE_CALL, Some(3)),
    ] {
        connect.send(message)?;
        while id.is_some_and(|id| !said.iter().any(|m| m["id"] == id)) {
            said.push(connect.read()?);
        }
    }
    // The log message may follow the answer.
    while !said.iter().any(|m| m["method"] == "notifications/message") {
        said.push(connect.read()?);
    }
    Ok(said)
}

/// `connect`: a stdio client's new parameter reaches the remote server, and
/// the remote server's members reach the stdio client, over Streamable HTTP
/// (2025-06-18 and 2026-07-28 clients) and the legacy SSE transport.
#[tokio::test(flavor = "multi_thread")]
async fn connect_passes_members_the_sdk_does_not_model_both_ways() -> Result<()> {
    let server = future_server();
    let command: Vec<&str> = server.iter().map(String::as_str).collect();
    let remote = Bridge::start(&["--output-transport", "both"], &command)?;
    let sse = format!("http://127.0.0.1:{}/sse", remote.port);
    let init_2026 = INIT.replace("2025-06-18", "2026-07-28");
    for (how, args, init) in [
        ("2025-06-18", vec![remote.url()], INIT.to_string()),
        ("2026-07-28", vec![remote.url()], init_2026),
        (
            "legacy SSE",
            vec![sse, "--remote-transport".into(), "sse".into()],
            INIT.to_string(),
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let said = connect_raw(&args, &init)?;
        assert_whole(&answer(&said, 2), &answer(&said, 3), how);
        assert_initialized_whole(&answer(&said, 1), how);
        assert_logged_whole(&said, how);
    }
    Ok(())
}

/// `connect --remote-transport sse` to a real legacy server: the Python
/// SDK's `sse_app`, with an rmcp stdio client.
#[tokio::test(flavor = "multi_thread")]
async fn connect_reaches_a_legacy_sse_server() -> Result<()> {
    let Some(python) = mcp_filter_integration::sdk::python_sdk()? else {
        return Ok(());
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut server = Command::new(python)
        .arg(mcp_filter_integration::repo_root().join("scripts/servers/python_sse_server.py"))
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(server.stdout.take().context("stdout")?).read_line(&mut line)?;
    assert!(line.starts_with("listening"), "{line:?}");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-bridge"));
    command.args([
        "connect",
        &format!("http://127.0.0.1:{port}/sse"),
        "--remote-transport",
        "sse",
    ]);
    let client = ().serve(rmcp::transport::TokioChildProcess::new(command)?).await;
    let outcome = async {
        let client = client?;
        assert_eq!(listed_tool_names(client.peer()).await?, ["add"]);
        let sum = client
            .call_tool(
                CallToolRequestParams::new("add")
                    .with_arguments(tool_args(json!({"a": 2, "b": 40}))),
            )
            .await?;
        assert_eq!(tool_text(&sum), "42");
        client.cancel().await?;
        anyhow::Ok(())
    }
    .await;
    let _ = server.kill();
    let _ = server.wait();
    outcome
}

/// A session's end closes its child's stdin and gives it time: a server
/// that finishes its work on EOF is not signalled while it does.
#[tokio::test(flavor = "multi_thread")]
async fn a_child_finishes_on_eof_before_any_signal() -> Result<()> {
    let peer = peer_bin();
    let peer = peer.to_str().context("peer path")?;
    let script = format!(
        "trap 'echo got SIGTERM >&2; exit 1' TERM; {peer} --mode stdio; sleep 0.5; echo flushed on EOF >&2"
    );
    let bridge = Bridge::start(&[], &["sh", "-c", &script])?;
    let opened = post_raw(&bridge.url(), &[], INIT).await?;
    let session = opened
        .header("mcp-session-id")
        .context("session id")?
        .to_string();
    reqwest::Client::new()
        .delete(bridge.url())
        .header("mcp-session-id", &session)
        .send()
        .await?;
    wait_for("the child's last words", &bridge, || {
        let log = bridge.log();
        // (Its stderr lines are prefixed `[child 1] `; the command line
        // in the log holds the same words.)
        log.contains("] flushed on EOF") || log.contains("] got SIGTERM")
    })
    .await;
    let log = bridge.log();
    assert!(log.contains("] flushed on EOF"), "{log}");
    assert!(!log.contains("] got SIGTERM"), "{log}");
    Ok(())
}
