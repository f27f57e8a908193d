//! Tool pinning end to end: `mcp-filter pin --url` pins what a real MCP
//! server (rmcp) lists; the server then changes a tool's description (a
//! "rug pull"); a real MCP client (rmcp) through Envoy no longer sees that
//! tool, its call is refused with the tool named and never reaches the
//! server, and both are counted. Once the server puts the reviewed
//! definition back, the tool is listed and callable again.

use anyhow::{Context, Result};
use mcp_filter_integration::{
    envoy_bin, mcp_filter_cli, post_raw, tool_args, tool_text, Envoy, EnvoySetup, Peer, PeerMode,
    Received,
};
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::{json, Value};
use std::process::Command;

fn calls(received: &[Received]) -> usize {
    received
        .iter()
        .filter(|r| r.rpc_method().as_deref() == Some("tools/call"))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_changes_a_pinned_tool_has_it_hidden_and_its_calls_refused() -> Result<()> {
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    let peer = Peer::start(PeerMode::Stateful)?;
    let out = Command::new(mcp_filter_cli()?)
        .args([
            "pin",
            "--url",
            &format!("http://127.0.0.1:{}/mcp", peer.port),
        ])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: Value = serde_json::from_slice(&out.stdout).context("pin prints JSON")?;
    let pins = &config["tool_pins"]["servers"]["default"];
    assert!(
        pins["echo"]
            .as_str()
            .is_some_and(|p| p.starts_with("sha256:")),
        "{config}"
    );
    assert_eq!(config["tool_pins"]["unpinned"], "hide");

    let envoy = Envoy::start(&bin, &EnvoySetup::new(peer.port, config.clone()))?;
    let client = ().serve(StreamableHttpClientTransport::from_uri(envoy.url())).await?;
    let names = |tools: Vec<rmcp::model::Tool>| -> Vec<String> {
        tools.into_iter().map(|t| t.name.to_string()).collect()
    };
    let reviewed = names(client.list_all_tools().await?);
    assert!(reviewed.contains(&"echo".to_string()), "{reviewed:?}");
    assert_eq!(reviewed.len(), pins.as_object().map_or(0, |p| p.len()));

    peer.pull_rug(true).await?;
    peer.forget().await?;
    let changed = names(client.list_all_tools().await?);
    let expected: Vec<String> = reviewed.iter().filter(|n| *n != "echo").cloned().collect();
    assert_eq!(changed, expected, "only the changed tool is hidden");
    let refused = client
        .call_tool(
            CallToolRequestParams::new("echo").with_arguments(tool_args(json!({"message": "hi"}))),
        )
        .await
        .expect_err("a changed tool's call is refused");
    let refused = format!("{refused}");
    assert!(refused.contains("definition changed"), "{refused}");
    assert_eq!(calls(&peer.received().await?), 0, "the server got no call");

    // The exact refusal a raw client sees.
    let call = r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}"#;
    let reply = post_raw(&envoy.url(), &[], call).await?;
    assert_eq!(reply.status, 200, "answered like a policy denial");
    assert_eq!(
        reply.json()["id"],
        4,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.json()["error"]["code"], -32602);
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        message.contains("`echo`") && message.contains("definition changed"),
        "{message}"
    );
    assert_eq!(calls(&peer.received().await?), 0, "the server got no call");

    let scrape = envoy.prometheus().await?;
    assert_eq!(
        scrape.value(
            "mcp_tool_pin_mismatches_total",
            &[("gen_ai_tool_name", "echo")]
        ),
        Some(3.0),
        "one listing and two calls: {}",
        scrape.text
    );
    assert_eq!(
        scrape.value("mcp_rejections_total", &[("reason", "tool_changed")]),
        Some(2.0)
    );

    // The reviewed definition is back: listed and callable again.
    peer.pull_rug(false).await?;
    assert_eq!(names(client.list_all_tools().await?), reviewed);
    let echoed = client
        .call_tool(
            CallToolRequestParams::new("echo").with_arguments(tool_args(json!({"message": "hi"}))),
        )
        .await?;
    assert_eq!(tool_text(&echoed), "hi");
    client.cancel().await?;
    Ok(())
}
