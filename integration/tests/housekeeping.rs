//! Protocol housekeeping through a real Envoy under a policy written like the
//! README's: rules naming only tools, prompts and resources, so the default
//! is deny. Real clients set the logging level, complete the arguments of an
//! allowed prompt or resource template and subscribe to an allowed resource;
//! the same requests about a denied prompt or resource are refused and never
//! reach the server. rmcp 3.11 clients against our rmcp server (`mcp-peer`),
//! with the 2025-11-25 handshake and with MCP 2026-07-28 (`server/discover`,
//! `subscriptions/listen`); the official Python SDK (`mcp` 2.3.0) against
//! npm's server-everything, behind a recording proxy.

use anyhow::{bail, Context, Result};
use mcp_filter_integration::everything::Everything;
use mcp_filter_integration::idp::{claims, secured_config, Idp, SigningKey};
use mcp_filter_integration::recorder::Recorder;
use mcp_filter_integration::{envoy_bin, repo_root, Envoy, EnvoySetup, Peer, PeerMode, Received};
use rmcp::model::{ProtocolVersion, SubscriptionFilter};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, RunningService, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::RoleClient;
use serde_json::{json, Value};
use std::time::Duration;

/// The README's policy shape: acme may use two tools, the `greet` prompt
/// and what is under `file:///docs/` (mcp-peer also offers `admin` and
/// `file:///secret/...`).
fn peer_config() -> Value {
    let mut config = secured_config();
    config["policy"]["rules"] = json!([
        {"name": "acme-tools", "tenants": ["acme"], "tools": ["add", "echo"], "effect": "allow"},
        {"name": "acme-greet", "tenants": ["acme"], "prompts": ["greet"], "effect": "allow"},
        {"name": "acme-docs", "tenants": ["acme"], "resources": ["file:///docs/*"], "effect": "allow"},
    ]);
    config
}

fn alice(key: &SigningKey) -> String {
    key.sign(&claims(
        "alice",
        json!({"tenant": "acme", "scope": "mcp:tools"}),
    ))
}

struct World {
    envoy: Envoy,
    _idp: Idp,
    key: SigningKey,
}

async fn world(upstream: u16, config: Value, allow_headers_stop: bool) -> Result<Option<World>> {
    let Some(bin) = envoy_bin() else {
        return Ok(None);
    };
    let key = SigningKey::generate("key-1")?;
    let idp = Idp::start(&[&key]).await?;
    let mut setup = EnvoySetup::new(upstream, config);
    setup.named_clusters.push(("idp".into(), idp.port));
    setup.allow_headers_stop = allow_headers_stop;
    let envoy = Envoy::start(&bin, &setup)?;
    Ok(Some(World {
        envoy,
        _idp: idp,
        key,
    }))
}

async fn rmcp_client(
    url: String,
    token: &str,
    lifecycle: ClientLifecycleMode,
) -> Result<RunningService<RoleClient, ()>> {
    let config = StreamableHttpClientTransportConfig::with_uri(url).auth_header(token);
    Ok(()
        .serve_with_lifecycle(
            StreamableHttpClientTransport::from_config(config),
            lifecycle,
        )
        .await?)
}

/// The JSON-RPC error a refused request surfaced as in rmcp.
fn refusal<T: std::fmt::Debug>(result: Result<T, ServiceError>, what: &str) -> String {
    match result {
        Ok(v) => panic!("{what} must be refused, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

/// The bodies of the requests of `method` that reached the server.
fn bodies(received: &[Received], method: &str) -> Vec<String> {
    received
        .iter()
        .filter(|r| r.rpc_method().as_deref() == Some(method))
        .map(|r| r.body.clone())
        .collect()
}

/// The configuration warnings Envoy logged (each VM logs them once, right
/// after its "configured" line; the log file is flushed every 100 ms).
async fn warnings_in(envoy: &Envoy) -> Vec<String> {
    for _ in 0..50 {
        if envoy.log().contains("mcp_filter: configured") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut warnings: Vec<String> = envoy
        .log()
        .lines()
        .filter_map(|l| l.split_once("configuration warning: "))
        .map(|(_, w)| w.to_string())
        .collect();
    warnings.sort();
    warnings.dedup();
    warnings
}

/// rmcp's client on the 2025-11-25 handshake: `logging/setLevel`,
/// `completion/complete` and `resources/subscribe` for what the policy
/// allows go through; for a denied prompt or resource they are refused with
/// the policy's error and the server receives none of them.
#[tokio::test(flavor = "multi_thread")]
#[allow(deprecated)] // set_level, subscribe: what 2025-11-25 clients use
async fn rmcp_housekeeping_on_the_2025_handshake_follows_the_policy() -> Result<()> {
    for (mode, stop) in [(PeerMode::Stateful, false), (PeerMode::StatelessJson, true)] {
        let peer = Peer::start(mode)?;
        let Some(w) = world(peer.port, peer_config(), stop).await? else {
            return Ok(());
        };
        assert_eq!(
            warnings_in(&w.envoy).await,
            Vec::<String>::new(),
            "the policy loads quietly"
        );
        let client = rmcp_client(
            w.envoy.url(),
            &alice(&w.key),
            ClientLifecycleMode::Initialize,
        )
        .await?;
        let peer_api = client.peer();

        peer_api
            .set_level(rmcp::model::SetLevelRequestParams::new(
                rmcp::model::LoggingLevel::Debug,
            ))
            .await
            .with_context(|| format!("{mode:?}: logging/setLevel"))?;
        let names = peer_api
            .complete_prompt_simple("greet", "who", "Al")
            .await?;
        assert_eq!(names, ["Alice"], "{mode:?}");
        let pages = peer_api
            .complete_resource_simple("file:///docs/{page}", "page", "read")
            .await?;
        assert_eq!(pages, ["readme.md"], "{mode:?}");
        peer_api
            .subscribe(rmcp::model::SubscribeRequestParams::new(
                "file:///docs/readme.md",
            ))
            .await?;
        peer_api
            .unsubscribe(rmcp::model::UnsubscribeRequestParams::new(
                "file:///docs/readme.md",
            ))
            .await?;

        let denied = [
            (
                refusal(
                    peer_api.complete_prompt_simple("admin", "who", "Al").await,
                    "completing the admin prompt",
                ),
                "prompt `admin` is not allowed",
            ),
            (
                refusal(
                    peer_api
                        .complete_resource_simple("file:///secret/{file}", "file", "k")
                        .await,
                    "completing the secret template",
                ),
                "resource `file:///secret/{file}` is not allowed",
            ),
            (
                refusal(
                    peer_api
                        .subscribe(rmcp::model::SubscribeRequestParams::new(
                            "file:///secret/keys.txt",
                        ))
                        .await,
                    "subscribing to the secret resource",
                ),
                "resource `file:///secret/keys.txt` is not allowed",
            ),
        ];
        for (error, says) in denied {
            assert!(error.contains(says), "{mode:?}: {error}");
        }
        client.cancel().await?;

        let received = peer.received().await?;
        assert_eq!(bodies(&received, "logging/setLevel").len(), 1, "{mode:?}");
        let completions = bodies(&received, "completion/complete");
        assert_eq!(completions.len(), 2, "{mode:?}: {completions:?}");
        let subscriptions = bodies(&received, "resources/subscribe");
        assert_eq!(subscriptions.len(), 1, "{mode:?}: {subscriptions:?}");
        for body in completions.iter().chain(&subscriptions) {
            assert!(
                !body.contains("admin") && !body.contains("secret"),
                "{mode:?}: a refused request reached the server: {body}"
            );
        }

        // Access log lines are flushed every 100 ms.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let log = w.envoy.access_log();
        assert!(
            log.lines().any(|l| l.contains("method=completion/complete")
                && l.contains("decision=deny")
                && l.contains("status=403")),
            "{log}"
        );
        assert!(
            log.lines().any(|l| l.contains("method=logging/setLevel")
                && l.contains("decision=allow")
                && l.contains("reason=builtin")),
            "{log}"
        );
    }
    Ok(())
}

/// rmcp's client on MCP 2026-07-28 (`server/discover`, per-request metadata,
/// mirrored headers): completion follows its prompt, and a
/// `subscriptions/listen` stream is judged on every resource it subscribes
/// to; one denied resource refuses the stream.
#[tokio::test(flavor = "multi_thread")]
async fn rmcp_housekeeping_on_2026_07_28_follows_the_policy() -> Result<()> {
    let peer = Peer::start(PeerMode::StatelessJson)?;
    let Some(w) = world(peer.port, peer_config(), true).await? else {
        return Ok(());
    };
    let client = rmcp_client(
        w.envoy.url(),
        &alice(&w.key),
        ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        },
    )
    .await?;
    let peer_api = client.peer();
    assert_eq!(
        peer_api.peer_info().map(|i| i.protocol_version.clone()),
        Some(ProtocolVersion::V_2026_07_28)
    );

    let names = peer_api.complete_prompt_simple("greet", "who", "B").await?;
    assert_eq!(names, ["Bob"]);
    let error = refusal(
        peer_api.complete_prompt_simple("admin", "who", "B").await,
        "completing the admin prompt",
    );
    assert!(error.contains("prompt `admin` is not allowed"), "{error}");

    let docs = SubscriptionFilter::builder()
        .tools_list_changed()
        .resource_subscriptions(vec!["file:///docs/readme.md".to_string()])
        .build();
    let subscription = peer_api.listen(docs).await?;
    assert_eq!(
        subscription
            .acknowledged()
            .resource_subscriptions
            .as_deref(),
        Some(&["file:///docs/readme.md".to_string()][..])
    );
    drop(subscription);
    let mixed = SubscriptionFilter::builder()
        .resource_subscriptions(vec![
            "file:///docs/readme.md".to_string(),
            "file:///secret/keys.txt".to_string(),
        ])
        .build();
    let error = refusal(
        peer_api
            .listen(mixed)
            .await
            .map(|s| s.acknowledged().clone()),
        "listening to the secret resource",
    );
    assert!(
        error.contains("resource `file:///secret/keys.txt` is not allowed"),
        "{error}"
    );
    client.cancel().await?;

    let received = peer.received().await?;
    let completions = bodies(&received, "completion/complete");
    assert_eq!(completions.len(), 1, "{completions:?}");
    let listens = bodies(&received, "subscriptions/listen");
    assert_eq!(listens.len(), 1, "{listens:?}");
    for body in completions.iter().chain(&listens) {
        assert!(
            !body.contains("admin") && !body.contains("secret"),
            "a refused request reached the server: {body}"
        );
    }
    Ok(())
}

/// A client declaring the MCP Tasks extension (SEP-2663).
#[derive(Clone)]
struct TasksClient;

impl rmcp::ClientHandler for TasksClient {
    fn get_info(&self) -> rmcp::model::ClientConfig {
        rmcp::model::ClientConfig::new(
            rmcp::model::ClientCapabilities::builder()
                .enable_tasks()
                .build(),
            rmcp::model::Implementation::new("tasks-client", "1"),
        )
    }
}

/// Tasks are session housekeeping: the `tools/call` that made the task was
/// judged, so polling it is open to the caller, under the same README-style
/// policy. rmcp 3.11 on 2026-07-28 mirrors the task id in `Mcp-Name`, which
/// the filter checks against `params.taskId` (it used to refuse it, -32020).
#[tokio::test(flavor = "multi_thread")]
async fn rmcp_tasks_on_2026_07_28_are_polled_through_the_policy() -> Result<()> {
    let peer = Peer::start(PeerMode::StatelessJson)?;
    let Some(w) = world(peer.port, peer_config(), true).await? else {
        return Ok(());
    };
    let config =
        StreamableHttpClientTransportConfig::with_uri(w.envoy.url()).auth_header(alice(&w.key));
    let client = TasksClient
        .serve_with_lifecycle(
            StreamableHttpClientTransport::from_config(config),
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await?;
    let call = rmcp::model::CallToolRequestParams::new("add").with_arguments(
        json!({"a": 2, "b": 40})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    let created = match client.peer().call_tool_once(call).await? {
        rmcp::model::CallToolResponse::Task(created) => created,
        other => bail!("expected a task, got {other:?}"),
    };
    let id = created.task.task_id.clone();
    let polled = client
        .peer()
        .get_task(rmcp::model::GetTaskParams::new(id.clone()))
        .await
        .context("tasks/get through the filter")?;
    let polled = serde_json::to_value(&polled)?;
    assert_eq!(polled["status"], "completed", "{polled}");
    assert_eq!(polled["result"]["content"][0]["text"], "42", "{polled}");
    client
        .peer()
        .cancel_task(rmcp::model::CancelTaskParams::new(id.clone()))
        .await
        .context("tasks/cancel through the filter")?;
    client.cancel().await?;

    let received = peer.received().await?;
    let polls: Vec<&Received> = received
        .iter()
        .filter(|r| r.rpc_method().as_deref() == Some("tasks/get"))
        .collect();
    assert_eq!(polls.len(), 1);
    assert_eq!(polls[0].header("mcp-name"), Some(id.as_str()));
    Ok(())
}

/// A policy that denies housekeeping by accident is flagged when Envoy
/// loads it, naming the rule's field and the methods.
#[tokio::test(flavor = "multi_thread")]
async fn an_accidental_denial_of_housekeeping_is_flagged_at_load() -> Result<()> {
    let peer = Peer::start(PeerMode::StatelessJson)?;
    let mut config = peer_config();
    config["policy"]["rules"]
        .as_array_mut()
        .context("rules")?
        .push(json!({"name": "lockdown", "tenants": ["*"], "methods": ["*"], "effect": "deny"}));
    let Some(w) = world(peer.port, config, true).await? else {
        return Ok(());
    };
    let warnings = warnings_in(&w.envoy).await;
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("policy.rules[3].methods (`lockdown`)")
            && warnings[0].contains("`logging/setLevel`"),
        "{}",
        warnings[0]
    );
    Ok(())
}

/// One JSON line per step from `scripts/clients/python_housekeeping.py`.
fn python_steps(url: &str, token: &str, steps: &[Value]) -> Result<Option<Vec<Value>>> {
    let python = repo_root().join(".venv/py-mcp/bin/python");
    if !python.is_file() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            bail!(
                "CI=true but the Python MCP SDK is not in .venv/py-mcp (scripts/test installs it)"
            );
        }
        eprintln!("skipping: the Python MCP SDK is not installed (scripts/test installs it into .venv/py-mcp)");
        return Ok(None);
    }
    let out = std::process::Command::new(python)
        .arg(repo_root().join("scripts/clients/python_housekeeping.py"))
        .arg(url)
        .arg(token)
        .args(steps.iter().map(Value::to_string))
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "the Python client failed ({}): {stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("not JSON: {l}")))
        .collect::<Result<Vec<Value>>>()
        .map(Some)
}

/// The official Python SDK's client (mcp 2.3.0) against npm's
/// server-everything (2026.8.31), through Envoy and a recording proxy: with
/// a README-style policy, `logging/setLevel` and completion of an allowed
/// prompt or template work; completion of a denied prompt or template and a
/// subscription to a denied resource are refused, and the server receives
/// nothing of them.
#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdk_keeps_its_housekeeping_through_server_everything() -> Result<()> {
    let Some(everything) = Everything::start()? else {
        return Ok(());
    };
    let recorder = Recorder::start(everything.port).await?;
    let mut config = secured_config();
    config["policy"]["rules"] = json!([
        {"name": "acme-echo", "tenants": ["acme"], "tools": ["echo"], "effect": "allow"},
        {"name": "acme-prompts", "tenants": ["acme"], "prompts": ["simple-prompt", "completable-prompt"],
         "effect": "allow"},
        {"name": "acme-text", "tenants": ["acme"],
         "resources": ["demo://resource/dynamic/text/*", "demo://resource/static/document/*"],
         "effect": "allow"},
    ]);
    let Some(w) = world(recorder.port, config, false).await? else {
        return Ok(());
    };
    assert_eq!(warnings_in(&w.envoy).await, Vec::<String>::new());
    let text = "demo://resource/dynamic/text/{resourceId}";
    let blob = "demo://resource/dynamic/blob/{resourceId}";
    let steps = [
        json!({"op": "list_prompts"}),
        json!({"op": "set_level", "level": "debug"}),
        json!({"op": "complete_prompt", "name": "completable-prompt", "argument": "department", "value": "En"}),
        json!({"op": "complete_resource", "uri": text, "argument": "resourceId", "value": "3"}),
        json!({"op": "subscribe", "uri": "demo://resource/dynamic/text/1"}),
        json!({"op": "unsubscribe", "uri": "demo://resource/dynamic/text/1"}),
        json!({"op": "complete_prompt", "name": "args-prompt", "argument": "city", "value": "Pa"}),
        json!({"op": "complete_resource", "uri": blob, "argument": "resourceId", "value": "3"}),
        json!({"op": "subscribe", "uri": "demo://resource/dynamic/blob/1"}),
    ];
    let token = alice(&w.key);
    let Some(lines) = python_steps(&w.envoy.url(), &token, &steps)? else {
        return Ok(());
    };
    eprintln!("python client: {lines:#?}");
    // server-everything's SDK predates 2026-07-28: the client fell back to the handshake.
    assert_eq!(lines[0]["protocol"], "2025-11-25", "{lines:#?}");
    let results = &lines[1..];
    assert_eq!(results.len(), steps.len(), "{lines:#?}");
    assert_eq!(
        results[0]["prompts"],
        json!(["completable-prompt", "simple-prompt"]),
        "the listing is filtered"
    );
    for ok in &results[1..6] {
        assert_eq!(ok["ok"], true, "{ok}");
    }
    assert_eq!(results[2]["values"], json!(["Engineering"]));
    assert_eq!(results[3]["values"], json!(["3"]));
    for (refused, what) in results[6..].iter().zip([
        "prompt `args-prompt`".to_string(),
        format!("resource `{blob}`"),
        "resource `demo://resource/dynamic/blob/1`".to_string(),
    ]) {
        assert_eq!(refused["ok"], false, "{refused}");
        assert_eq!(refused["code"], -32043, "{refused}");
        assert_eq!(
            refused["message"],
            format!("{what} is not allowed"),
            "{refused}"
        );
    }

    let received = recorder.received();
    assert_eq!(bodies(&received, "logging/setLevel").len(), 1);
    let completions = bodies(&received, "completion/complete");
    assert_eq!(completions.len(), 2, "{completions:?}");
    let subscriptions = bodies(&received, "resources/subscribe");
    assert_eq!(subscriptions.len(), 1, "{subscriptions:?}");
    for body in completions.iter().chain(&subscriptions) {
        assert!(
            !body.contains("args-prompt") && !body.contains("/blob/"),
            "a refused request reached the server: {body}"
        );
    }
    Ok(())
}
