//! Protocol housekeeping through a real Envoy for rmcp 3.11's client, under
//! a policy written like the README's (rules naming only tools, prompts and
//! resources): on the 2025-11-25 handshake (`logging/setLevel`,
//! `completion/complete`, `resources/subscribe`) and on MCP 2026-07-28
//! (`server/discover`, mirrored headers, `subscriptions/listen`, tasks). What
//! the policy allows works; the same requests about a denied prompt or
//! resource are refused and never reach the server (`mcp-peer`, an rmcp
//! server, records what it receives). The Python SDK's side is
//! `housekeeping.rs`.

use anyhow::{bail, Context, Result};
use mcp_filter_integration::idp::{claims, secured_config, Idp, SigningKey};
use mcp_filter_integration::{envoy_bin, Envoy, EnvoySetup, Peer, PeerMode, Received};
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

        // Access log lines are flushed every 100 ms. (Headers are not held
        // here, so they go upstream while the body is judged; the server's
        // own record above shows no refused message reached it.)
        tokio::time::sleep(Duration::from_millis(400)).await;
        let log = w.envoy.access_log();
        assert!(
            log.lines().any(|l| l.contains("method=completion/complete")
                && l.contains("name=admin")
                && l.contains("decision=deny")),
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
        warnings[0].contains("policy.rules[3]") && warnings[0].contains("logging/setLevel"),
        "{}",
        warnings[0]
    );
    Ok(())
}
