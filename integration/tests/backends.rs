//! One MCP endpoint on Envoy in front of two real MCP servers (rmcp): a real
//! MCP client sees the union of their tools under public names, each call
//! reaches the right server under the server's own name, hidden tools are
//! neither listed nor callable, and one server down leaves the other usable.

use anyhow::Result;
use mcp_filter_integration::sdk::{python_sdk, run_python_client};
use mcp_filter_integration::{
    envoy_bin, listed_tool_names, post_raw, static_cluster, tool_args, tool_text, Envoy,
    EnvoySetup, Peer, PeerMode, Received,
};
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::{json, Value};

macro_rules! envoy_or_skip {
    () => {
        match envoy_bin() {
            Some(bin) => bin,
            None => return Ok(()),
        }
    };
}

/// `alpha` is the default route (cluster upstream_0); `x-mcp-backend: beta`
/// routes to cluster upstream_1, exactly as a user's envoy.yaml would.
fn two_backends(alpha: &Peer, beta: &Peer, allow_headers_stop: bool) -> EnvoySetup {
    let config = json!({
        "routing_headers": {"enabled": allow_headers_stop},
        "backends": {
            "listing_timeout_ms": 2000,
            "servers": [
                {"name": "alpha", "cluster": "upstream_0"},
                {"name": "beta", "cluster": "upstream_1",
                 "tools": {"exclude": ["secret"], "aliases": {"shout": "echo"}}}
            ]
        }
    });
    let mut setup = EnvoySetup::new(alpha.port, config);
    setup.allow_headers_stop = allow_headers_stop;
    setup
        .header_routes
        .push(("x-mcp-backend".into(), "beta".into(), beta.port));
    setup
}

fn calls(received: &[Received]) -> Vec<String> {
    received
        .iter()
        .filter(|r| r.rpc_method().as_deref() == Some("tools/call"))
        .filter_map(|r| {
            let body: Value = serde_json::from_str(&r.body).ok()?;
            body["params"]["name"].as_str().map(str::to_string)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_client_sees_the_union_and_each_backend_gets_its_own_names() -> Result<()> {
    let bin = envoy_or_skip!();
    let alpha = Peer::start(PeerMode::StatelessJson)?;
    let beta = Peer::start(PeerMode::StatelessJson)?;
    let envoy = Envoy::start(&bin, &two_backends(&alpha, &beta, true))?;

    let client = ().serve(StreamableHttpClientTransport::from_uri(envoy.url())).await?;
    let names = listed_tool_names(client.peer()).await?;
    assert_eq!(
        names,
        [
            "alpha__add",
            "alpha__big",
            "alpha__echo",
            "alpha__secret",
            "beta__add",
            "beta__big",
            "shout"
        ]
    );

    let sum = client
        .call_tool(
            CallToolRequestParams::new("alpha__add")
                .with_arguments(tool_args(json!({"a": 2, "b": 40}))),
        )
        .await?;
    assert_eq!(tool_text(&sum), "42");
    let sum = client
        .call_tool(
            CallToolRequestParams::new("beta__add")
                .with_arguments(tool_args(json!({"a": 1, "b": 2}))),
        )
        .await?;
    assert_eq!(tool_text(&sum), "3");
    let echo = client
        .call_tool(
            CallToolRequestParams::new("shout").with_arguments(tool_args(json!({"message": "hi"}))),
        )
        .await?;
    assert_eq!(tool_text(&echo), "hi");
    // A hidden tool is not callable: the client gets an error, beta never a call.
    let hidden = client
        .call_tool(CallToolRequestParams::new("beta__secret"))
        .await;
    assert!(hidden.is_err(), "{hidden:?}");
    client.cancel().await?;

    let to_alpha = alpha.received().await?;
    let to_beta = beta.received().await?;
    assert_eq!(calls(&to_alpha), ["add"]);
    assert_eq!(calls(&to_beta), ["add", "echo"]);
    for call in to_beta
        .iter()
        .filter(|r| r.rpc_method().as_deref() == Some("tools/call"))
    {
        assert_eq!(call.header("x-mcp-backend"), Some("beta"));
    }
    // The listing was gathered by the filter: each backend was asked once.
    for received in [&to_alpha, &to_beta] {
        let lists = received
            .iter()
            .filter(|r| r.rpc_method().as_deref() == Some("tools/list"))
            .count();
        assert_eq!(lists, 1);
    }

    // The exact refusal a raw client sees for a hidden tool.
    let hidden =
        r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"beta__secret"}}"#;
    let reply = post_raw(&envoy.url(), &[], hidden).await?;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"]["code"], -32602);
    assert_eq!(reply.json()["id"], 9);
    assert!(calls(&beta.received().await?).iter().all(|n| n != "secret"));

    let scrape = envoy.prometheus().await?;
    assert_eq!(
        scrape.value("mcp_tool_calls_total", &[("gen_ai_tool_name", "shout")]),
        Some(1.0),
        "{}",
        scrape.text
    );
    assert_eq!(
        scrape.value("mcp_rejections_total", &[("reason", "unknown_name")]),
        Some(2.0)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_down_leaves_the_other_listed_and_callable() -> Result<()> {
    let bin = envoy_or_skip!();
    let alpha = Peer::start(PeerMode::StatelessJson)?;
    let beta = Peer::start(PeerMode::StatelessJson)?;
    let mut envoy = Envoy::start(&bin, &two_backends(&alpha, &beta, true))?;
    drop(beta);

    let client = ().serve(StreamableHttpClientTransport::from_uri(envoy.url())).await?;
    let names = listed_tool_names(client.peer()).await?;
    assert!(names.contains(&"alpha__add".to_string()), "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("alpha__")), "{names:?}");
    let sum = client
        .call_tool(
            CallToolRequestParams::new("alpha__add")
                .with_arguments(tool_args(json!({"a": 2, "b": 2}))),
        )
        .await?;
    assert_eq!(tool_text(&sum), "4");
    // A call to the server that is down fails; nothing else does.
    assert!(client
        .call_tool(
            CallToolRequestParams::new("beta__add")
                .with_arguments(tool_args(json!({"a": 1, "b": 1})))
        )
        .await
        .is_err());
    client.cancel().await?;

    // Envoy itself answers 503 for the cluster with no server behind it.
    let scrape = envoy.prometheus().await?;
    assert_eq!(
        scrape.value(
            "mcp_backend_failures_total",
            &[("backend", "beta"), ("reason", "http_5xx")]
        ),
        Some(1.0),
        "{}",
        scrape.text
    );
    assert!(envoy.logged("backend `beta` left out of the listing"));
    assert!(envoy.alive());
    Ok(())
}

/// A backend that accepts connections but never answers: the listing waits
/// `listing_timeout_ms`, then lists the other backend's tools.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_backend_times_out_and_the_other_is_still_listed() -> Result<()> {
    let bin = envoy_or_skip!();
    let alpha = Peer::start(PeerMode::StatelessJson)?;
    let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    let silent_port = silent.local_addr()?.port();
    let mut setup = EnvoySetup::new(
        alpha.port,
        json!({
            "routing_headers": {"enabled": true},
            "backends": {"listing_timeout_ms": 300, "servers": [
                {"name": "alpha", "cluster": "upstream_0"},
                {"name": "slow", "cluster": "upstream_1"}
            ]}
        }),
    );
    setup
        .header_routes
        .push(("x-mcp-backend".into(), "slow".into(), silent_port));
    let envoy = Envoy::start(&bin, &setup)?;
    let started = std::time::Instant::now();
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let reply = post_raw(&envoy.url(), &[], list).await?;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let tools = reply.json()["result"]["tools"].clone();
    assert!(tools.as_array().is_some_and(|t| !t.is_empty()), "{tools}");
    assert!(tools
        .as_array()
        .into_iter()
        .flatten()
        .all(|t| t["name"].as_str().is_some_and(|n| n.starts_with("alpha__"))));
    // It waited for the timeout rather than failing at once. Not to the
    // millisecond: Envoy reads its clock once per event-loop turn, and its
    // 300 ms timer was seen to fire after 299.4 ms measured here.
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(250),
        "{waited:?}"
    );
    let scrape = envoy.prometheus().await?;
    // Envoy ends the call with its own 504.
    assert_eq!(
        scrape.value(
            "mcp_backend_failures_total",
            &[("backend", "slow"), ("reason", "http_5xx")]
        ),
        Some(1.0),
        "{}",
        scrape.text
    );
    drop(silent);
    Ok(())
}

/// Without `allow_on_headers_stop_iteration` (Envoy Gateway): listings are
/// still gathered and calls to the default backend renamed; a 2026-07-28
/// request is routed by its `Mcp-Name` header; a legacy call to another
/// backend is refused rather than sent to the wrong server.
/// Without the flag (as Envoy Gateway delivers the filter) a legacy call's
/// headers go to the default backend before the body names the tool. A call
/// for the other backend is relayed there by the filter: the client gets
/// that backend's answer, the default backend gets no MCP message. A
/// 2026-07-28 request is routed by Envoy from its `Mcp-Name` header.
#[tokio::test(flavor = "multi_thread")]
async fn without_the_flag_calls_for_another_backend_are_relayed_by_the_filter() -> Result<()> {
    let bin = envoy_or_skip!();
    let alpha = Peer::start(PeerMode::StatelessJson)?;
    let beta = Peer::start(PeerMode::StatelessJson)?;
    let envoy = Envoy::start(
        &bin,
        &two_backends(&alpha, &beta, false).as_envoy_gateway_delivers(),
    )?;

    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#;
    let reply = post_raw(&envoy.url(), &[], list).await?;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json()["result"]["tools"].as_array().map(Vec::len),
        Some(7)
    );

    let add = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"alpha__add","arguments":{"a":1,"b":1}}}"#;
    let reply = post_raw(&envoy.url(), &[], add).await?;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.text().contains("\"2\""), "{}", reply.text());

    let legacy = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"beta__add","arguments":{"a":20,"b":22}}}"#;
    let reply = post_raw(&envoy.url(), &[], legacy).await?;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["id"], 3);
    assert_eq!(reply.json()["result"]["content"][0]["text"], "42");
    assert!(reply.header("mcp-session-id").is_none());

    let modern = r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"beta__add","arguments":{"a":1,"b":1},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
    post_raw(
        &envoy.url(),
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "beta__add"),
        ],
        modern,
    )
    .await?;
    let to_beta: Vec<Received> = beta
        .received()
        .await?
        .into_iter()
        .filter(|r| r.rpc_method().as_deref() == Some("tools/call"))
        .collect();
    assert_eq!(calls(&to_beta), ["add", "add"]);
    // Relayed by the filter (no route, so no backend header), then routed by Envoy.
    assert_eq!(to_beta[0].header("x-mcp-backend"), None);
    assert_eq!(to_beta[1].header("mcp-name"), Some("add"));
    assert_eq!(to_beta[1].header("x-mcp-backend"), Some("beta"));
    assert_eq!(
        calls(&alpha.received().await?),
        ["add"],
        "the default backend saw only its own call"
    );

    // A real client of the legacy generation, with sessions: it lists the
    // union and calls each backend's tools (an alias included).
    let client = ().serve(StreamableHttpClientTransport::from_uri(envoy.url())).await?;
    assert_eq!(listed_tool_names(client.peer()).await?.len(), 7);
    let echo = client
        .call_tool(
            CallToolRequestParams::new("shout").with_arguments(tool_args(json!({"message": "hi"}))),
        )
        .await?;
    assert_eq!(tool_text(&echo), "hi");
    let sum = client
        .call_tool(
            CallToolRequestParams::new("alpha__add")
                .with_arguments(tool_args(json!({"a": 2, "b": 3}))),
        )
        .await?;
    assert_eq!(tool_text(&sum), "5");
    client.cancel().await?;
    assert_eq!(calls(&beta.received().await?), ["add", "add", "echo"]);
    Ok(())
}

/// The official Python SDK in both its modes through the Envoy Gateway
/// setup (no flag): the low-level client (initialize handshake, a legacy
/// protocol version: calls are relayed) and the default client (MCP
/// 2026-07-28: calls are routed by `Mcp-Name`) call a tool of each backend.
#[tokio::test(flavor = "multi_thread")]
async fn both_python_sdk_generations_call_every_backend_without_the_flag() -> Result<()> {
    let bin = envoy_or_skip!();
    let Some(python) = python_sdk()? else {
        return Ok(());
    };
    let alpha = Peer::start(PeerMode::StatelessJson)?;
    let beta = Peer::start(PeerMode::StatelessJson)?;
    let envoy = Envoy::start(
        &bin,
        &two_backends(&alpha, &beta, false).as_envoy_gateway_delivers(),
    )?;
    let url = envoy.url();
    for mode in ["lowlevel", "default"] {
        for (tool, args, want) in [
            ("beta__add", r#"{"a":2,"b":40}"#, "beta__add: 42"),
            ("shout", r#"{"message":"hey"}"#, "shout: hey"),
            ("alpha__add", r#"{"a":1,"b":2}"#, "alpha__add: 3"),
        ] {
            let run = tokio::task::block_in_place(|| {
                run_python_client(
                    &python,
                    "python_list_call.py",
                    &[mode, &url, tool, args, "alpha__add", "beta__add", "shout"],
                )
            })?;
            assert!(
                run.success && run.output.contains(want),
                "{mode} {tool}: {}\n{}",
                run.output,
                envoy.log()
            );
        }
    }
    assert_eq!(
        calls(&beta.received().await?),
        ["add", "echo", "add", "echo"]
    );
    assert_eq!(calls(&alpha.received().await?), ["add", "add"]);
    Ok(())
}

/// A relayed call whose backend is down: the client gets a JSON-RPC error
/// (502), the failure is counted and logged, and the default backend
/// receives nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_relayed_call_to_a_backend_that_is_down_is_a_json_rpc_error() -> Result<()> {
    let bin = envoy_or_skip!();
    let alpha = Peer::start(PeerMode::StatelessJson)?;
    let beta = Peer::start(PeerMode::StatelessJson)?;
    let mut envoy = Envoy::start(
        &bin,
        &two_backends(&alpha, &beta, false).as_envoy_gateway_delivers(),
    )?;
    drop(beta);
    let legacy = r#"{"jsonrpc":"2.0","id":"c-1","method":"tools/call","params":{"name":"beta__add","arguments":{"a":1,"b":1}}}"#;
    let reply = post_raw(&envoy.url(), &[], legacy).await?;
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert_eq!(reply.json()["id"], "c-1");
    assert_eq!(reply.json()["error"]["code"], -32603);
    assert!(calls(&alpha.received().await?).is_empty());
    let scrape = envoy.prometheus().await?;
    assert_eq!(
        scrape.value(
            "mcp_backend_failures_total",
            &[("backend", "beta"), ("reason", "http_5xx")]
        ),
        Some(1.0),
        "{}",
        scrape.text
    );
    assert!(envoy.logged("backend `beta` gave no answer to pass on for the relayed call"));
    assert!(envoy.alive());
    Ok(())
}

/// One backend with a prefix, stateful (sessions, SSE), no flag: the listing
/// is renamed in the SSE stream and calls reach the server by its own names.
#[tokio::test(flavor = "multi_thread")]
async fn one_stateful_backend_renamed_in_stream_without_the_flag() -> Result<()> {
    let bin = envoy_or_skip!();
    let peer = Peer::start(PeerMode::Stateful)?;
    let config = json!({"backends": {"servers": [
        {"name": "gh", "tools": {"include": ["add", "echo"]}}
    ]}});
    let envoy = Envoy::start(
        &bin,
        &EnvoySetup::new(peer.port, config).as_envoy_gateway_delivers(),
    )?;
    let client = ().serve(StreamableHttpClientTransport::from_uri(envoy.url())).await?;
    let names = listed_tool_names(client.peer()).await?;
    assert_eq!(names, ["gh__add", "gh__echo"]);
    let echo = client
        .call_tool(
            CallToolRequestParams::new("gh__echo")
                .with_arguments(tool_args(json!({"message": "ok"}))),
        )
        .await?;
    assert_eq!(tool_text(&echo), "ok");
    assert!(client
        .call_tool(CallToolRequestParams::new("gh__big").with_arguments(tool_args(json!({"n": 1}))))
        .await
        .is_err());
    client.cancel().await?;
    assert_eq!(calls(&peer.received().await?), ["echo"]);
    Ok(())
}

/// `examples/multi-backend/envoy.yaml` as shipped (ports and the .wasm path
/// changed for the test), with two real MCP servers and a real client.
#[tokio::test(flavor = "multi_thread")]
async fn the_shipped_multi_backend_example_runs() -> Result<()> {
    let bin = envoy_or_skip!();
    let github = Peer::start(PeerMode::StatelessJson)?;
    let jira = Peer::start(PeerMode::StatelessJson)?;
    let root = mcp_filter_integration::repo_root();
    let shipped = std::fs::read_to_string(root.join("examples/multi-backend/envoy.yaml"))?;
    let wasm = mcp_filter_integration::wasm_path();
    let yaml = shipped
        .replace("port_value: 10001", "port_value: 0")
        .replace("port_value: 9902", "port_value: 0")
        .replace("port_value: 8091", &format!("port_value: {}", github.port))
        .replace("port_value: 8092", &format!("port_value: {}", jira.port))
        .replace(
            "filename: target/wasm32-wasip1/release/mcp_filter.wasm",
            &format!("filename: {}", wasm.display()),
        );
    assert_ne!(yaml, shipped);
    let envoy = Envoy::start_yaml(&bin, &yaml)?;

    let client = ().serve(StreamableHttpClientTransport::from_uri(envoy.url())).await?;
    let names = listed_tool_names(client.peer()).await?;
    for expected in ["github__add", "jira__add", "shout"] {
        assert!(names.contains(&expected.to_string()), "{names:?}");
    }
    assert!(names.contains(&"github__secret".to_string()), "{names:?}");
    assert!(!names.contains(&"jira__secret".to_string()), "{names:?}");
    let shout = client
        .call_tool(
            CallToolRequestParams::new("shout")
                .with_arguments(tool_args(json!({"message": "hey"}))),
        )
        .await?;
    assert_eq!(tool_text(&shout), "hey");
    let sum = client
        .call_tool(
            CallToolRequestParams::new("github__add")
                .with_arguments(tool_args(json!({"a": 5, "b": 5}))),
        )
        .await?;
    assert_eq!(tool_text(&sum), "10");
    client.cancel().await?;
    assert_eq!(calls(&jira.received().await?), ["echo"]);
    assert_eq!(calls(&github.received().await?), ["add"]);
    Ok(())
}

/// Envoy's own aggregator (`envoy.filters.http.mcp_router`, Envoy >= 1.37,
/// work-in-progress API) behind this filter: it fans out and composes
/// per-backend sessions (stateful servers), while the filter in front still
/// hides what it must (exposure here; a policy alike) and refuses hidden
/// names. Checked on the Envoy that has it; skipped on older ones.
#[tokio::test(flavor = "multi_thread")]
async fn envoys_mcp_router_can_aggregate_behind_the_filter() -> Result<()> {
    let bin = envoy_or_skip!();
    let version = std::process::Command::new(&bin).arg("--version").output()?;
    let version = String::from_utf8_lossy(&version.stdout).to_string();
    if !version.contains("/1.40.") {
        eprintln!("skipping: mcp_router is checked on Envoy 1.40 only ({version})");
        return Ok(());
    }
    let alpha = Peer::start(PeerMode::StatelessJson)?;
    let beta = Peer::start(PeerMode::Stateful)?;
    let config = json!({"backends": {"servers": [
        {"name": "router", "prefix_tools": false, "tools": {"exclude": ["beta__secret"]}}
    ]}})
    .to_string();
    let yaml = format!(
        r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
static_resources:
  listeners:
    - name: mcp
      address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: mcp
                route_config:
                  virtual_hosts:
                  - name: mcp
                    domains: ["*"]
                    routes: [{{ match: {{ prefix: "/" }}, route: {{ cluster: alpha, timeout: 0s }} }}]
                http_filters:
                  - name: mcp_filter
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
                      config:
                        root_id: mcp_filter
                        failure_policy: FAIL_RELOAD
                        vm_config:
                          runtime: envoy.wasm.runtime.v8
                          code: {{ local: {{ filename: {wasm} }} }}
                        configuration:
                          "@type": type.googleapis.com/google.protobuf.StringValue
                          value: {config}
                  - name: envoy.filters.http.mcp
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.mcp.v3.Mcp
                  - name: envoy.filters.http.mcp_router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.mcp_router.v3.McpRouter
                      servers:
                      - {{ name: alpha, mcp_cluster: {{ cluster: alpha, path: /mcp }} }}
                      - {{ name: beta, mcp_cluster: {{ cluster: beta, path: /mcp }} }}
  clusters:
{alpha}{beta}"#,
        wasm = serde_json::to_string(&mcp_filter_integration::wasm_path())?,
        config = serde_json::to_string(&config)?,
        alpha = static_cluster("alpha", alpha.port),
        beta = static_cluster("beta", beta.port),
    );
    let envoy = Envoy::start_yaml(&bin, &yaml)?;
    let client = ().serve(StreamableHttpClientTransport::from_uri(envoy.url())).await?;
    let names = listed_tool_names(client.peer()).await?;
    assert!(names.contains(&"alpha__secret".to_string()), "{names:?}");
    assert!(names.contains(&"beta__add".to_string()), "{names:?}");
    assert!(!names.contains(&"beta__secret".to_string()), "{names:?}");
    // beta is stateful: mcp_router carries its session inside the client's.
    let sum = client
        .call_tool(
            CallToolRequestParams::new("beta__add")
                .with_arguments(tool_args(json!({"a": 20, "b": 22}))),
        )
        .await?;
    assert_eq!(tool_text(&sum), "42");
    assert!(client
        .call_tool(CallToolRequestParams::new("beta__secret"))
        .await
        .is_err());
    client.cancel().await?;
    assert_eq!(calls(&beta.received().await?), ["add"]);
    Ok(())
}
