//! The filter in a real Envoy, in front of a real MCP server (rmcp), driven by
//! a real MCP client (rmcp) and by raw HTTP for bad input.

use anyhow::Result;
use mcp_filter_integration::{
    envoy_bin, post_raw, ConfigEncoding, Envoy, EnvoySetup, Peer, PeerMode,
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

fn args(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// initialize → tools/list → tools/call with the official Rust SDK client,
/// through Envoy and the filter, against the official Rust SDK server.
#[tokio::test(flavor = "multi_thread")]
async fn a_real_mcp_client_lists_and_calls_tools_through_the_filter() -> Result<()> {
    let bin = envoy_or_skip!();
    for mode in [PeerMode::Stateful, PeerMode::StatelessJson] {
        let peer = Peer::start(mode)?;
        let envoy = Envoy::start(&bin, &EnvoySetup::new(peer.port, json!({})))?;

        let client = ().serve(StreamableHttpClientTransport::from_uri(envoy.url())).await?;
        let tools = client.list_all_tools().await?;
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        assert!(
            names.contains(&"add") && names.contains(&"echo"),
            "{mode:?}: {names:?}"
        );
        let result = client
            .call_tool(
                CallToolRequestParams::new("add").with_arguments(args(json!({"a": 2, "b": 40}))),
            )
            .await?;
        assert_eq!(
            serde_json::to_value(&result.content)?[0]["text"],
            "42",
            "{mode:?}"
        );
        client.cancel().await?;

        let methods: Vec<String> = peer
            .received()
            .await?
            .iter()
            .filter_map(|r| r.rpc_method())
            .collect();
        assert!(methods.contains(&"tools/list".to_string()), "{methods:?}");
        assert!(methods.contains(&"tools/call".to_string()), "{methods:?}");

        let scrape = envoy.prometheus().await?;
        assert_eq!(
            scrape.value("mcp_requests_total", &[("mcp_method_name", "tools/call")]),
            Some(1.0),
            "{mode:?}"
        );
        // `add` was listed by the upstream before it was called, so it has its own label.
        assert_eq!(
            scrape.value("mcp_tool_calls_total", &[("gen_ai_tool_name", "add")]),
            Some(1.0),
            "{mode:?}"
        );
        assert_eq!(
            scrape.value(
                "mcp_responses_total",
                &[("mcp_method_name", "tools/call"), ("outcome", "result")]
            ),
            Some(1.0),
            "{mode:?}"
        );
        assert_eq!(
            scrape.value(
                "mcp_server_operation_duration_milliseconds_count",
                &[
                    ("mcp_method_name", "tools/call"),
                    ("gen_ai_tool_name", "add")
                ]
            ),
            Some(1.0),
            "{mode:?}\n{}",
            scrape.text
        );
        assert_eq!(
            scrape.value(
                "mcp_responses_total",
                &[("mcp_method_name", "tools/list"), ("outcome", "result")]
            ),
            Some(1.0)
        );
    }
    Ok(())
}

/// With nothing to rewrite, the upstream receives the client's bytes exactly
/// (odd spacing, escapes, key order) and the client receives the upstream's.
#[tokio::test(flavor = "multi_thread")]
async fn bytes_pass_through_unchanged_both_ways() -> Result<()> {
    let bin = envoy_or_skip!();
    let peer = Peer::start(PeerMode::StatelessJson)?;
    let envoy = Envoy::start(&bin, &EnvoySetup::new(peer.port, json!({})))?;
    let body = "{ \"params\" : {\"arguments\":{\"message\":\"caf\\u00e9 \u{1F980} \\\"q\\\"\"}, \"name\":\"echo\"},\n\t\"method\":\"tools/call\",\"id\":\"x-1\" , \"jsonrpc\":\"2.0\"}";
    let headers = [("mcp-protocol-version", "2025-06-18")];

    let direct = post_raw(&peer.url(), &headers, body).await?;
    peer.forget().await?;
    let through = post_raw(&envoy.url(), &headers, body).await?;
    assert_eq!(through.status, 200, "{}", through.text());
    assert_eq!(
        through.body, direct.body,
        "the client sees the upstream's bytes"
    );
    assert_eq!(
        through.json()["result"]["content"][0]["text"],
        "café 🦀 \"q\""
    );

    let received = peer.received().await?;
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].body, body,
        "the upstream sees the client's bytes"
    );
    assert_eq!(received[0].body_len, body.len());
    Ok(())
}

/// SSE responses (rmcp stateful: priming event, `id:` after `data:`) reach the
/// client byte for byte; the session and event-id headers pass untouched.
#[tokio::test(flavor = "multi_thread")]
async fn sse_responses_and_session_headers_pass_untouched() -> Result<()> {
    let bin = envoy_or_skip!();
    let peer = Peer::start(PeerMode::Stateful)?;
    let envoy = Envoy::start(&bin, &EnvoySetup::new(peer.port, json!({})))?;
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#;
    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":2}}}"#;

    // The same conversation directly and through Envoy: rmcp numbers events per
    // session, so both transcripts must be identical.
    let mut transcripts = Vec::new();
    for url in [peer.url(), envoy.url()] {
        let r = post_raw(&url, &[], init).await?;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/event-stream"));
        let session = r.header("mcp-session-id").expect("session id").to_string();
        let h = [
            ("mcp-session-id", session.as_str()),
            ("mcp-protocol-version", "2025-06-18"),
        ];
        assert_eq!(post_raw(&url, &h, initialized).await?.status, 202);
        let r2 = post_raw(&url, &h, call).await?;
        transcripts.push((r.body, r2.body, session));
    }
    assert_eq!(transcripts[0].0, transcripts[1].0);
    assert_eq!(transcripts[0].1, transcripts[1].1);
    assert!(String::from_utf8_lossy(&transcripts[1].1).contains("\"text\":\"3\""));

    // GET (server stream) and DELETE (end of session) reach the upstream with
    // their session and Last-Event-ID headers intact.
    peer.forget().await?;
    let session = &transcripts[1].2;
    let client = reqwest::Client::new();
    let get = client
        .get(envoy.url())
        .header("accept", "text/event-stream")
        .header("mcp-session-id", session.as_str())
        .header("last-event-id", "0/0")
        .timeout(std::time::Duration::from_millis(500))
        .send()
        .await;
    drop(get);
    let delete = client
        .delete(envoy.url())
        .header("mcp-session-id", session.as_str())
        .send()
        .await?;
    assert!(delete.status().is_success(), "{}", delete.status());
    let received = peer.received().await?;
    let get = received
        .iter()
        .find(|r| r.method == "GET")
        .expect("GET reached the upstream");
    assert_eq!(get.header("mcp-session-id"), Some(session.as_str()));
    assert_eq!(get.header("last-event-id"), Some("0/0"));
    let delete = received
        .iter()
        .find(|r| r.method == "DELETE")
        .expect("DELETE reached the upstream");
    assert_eq!(delete.header("mcp-session-id"), Some(session.as_str()));
    Ok(())
}

/// Bad input gets an HTTP status and a JSON-RPC error from the filter, is
/// counted by reason, and never reaches the upstream. Checked both with and
/// without `allow_on_headers_stop_iteration` (Envoy Gateway cannot set it).
#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_answered_by_the_filter_and_never_reaches_the_upstream() -> Result<()> {
    let bin = envoy_or_skip!();
    let peer = Peer::start(PeerMode::StatelessJson)?;
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"{}"}}}}}}"#,
        "x".repeat(5000)
    );
    type Headers = Vec<(&'static str, &'static str)>;
    // (what, request headers, body, HTTP status, JSON-RPC code, rejection reason)
    let cases: Vec<(&str, Headers, String, u16, i64, &str)> = vec![
        ("unparseable JSON", vec![], "{\"jsonrpc\":".into(), 400, -32700, "parse_error"),
        ("not JSON-RPC", vec![], r#"{"hello":"world"}"#.into(), 400, -32600, "invalid_request"),
        (
            "duplicate name",
            vec![],
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","name":"secret"}}"#.into(),
            400,
            -32600,
            "invalid_request",
        ),
        (
            "batch",
            vec![],
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"secret"}}]"#.into(),
            400,
            -32600,
            "batch_not_allowed",
        ),
        (
            "header mismatch",
            vec![("mcp-method", "tools/call"), ("mcp-name", "echo"), ("mcp-protocol-version", "2026-07-28")],
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"secret","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#.into(),
            400,
            -32020,
            "header_mismatch",
        ),
        ("too large", vec![], big, 413, -32600, "too_large"),
        (
            "gzip",
            vec![("content-encoding", "gzip")],
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#.into(),
            415,
            -32600,
            "unsupported_encoding",
        ),
        (
            "name not a string",
            vec![],
            r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":{"x":1}}}"#.into(),
            400,
            -32602,
            "invalid_params",
        ),
    ];

    for allow_headers_stop in [true, false] {
        let mut setup = EnvoySetup::new(peer.port, json!({"max_request_bytes": 4096}));
        setup.allow_headers_stop = allow_headers_stop;
        let envoy = Envoy::start(&bin, &setup)?;
        peer.forget().await?;
        for (what, headers, body, status, code, _) in &cases {
            let r = post_raw(&envoy.url(), headers, body.clone()).await?;
            assert_eq!(
                r.status,
                *status,
                "{what} (allow={allow_headers_stop}): {}",
                r.text()
            );
            assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
            let v = r.json();
            assert_eq!(v["jsonrpc"], "2.0", "{what}");
            assert_eq!(v["error"]["code"], *code, "{what}: {v}");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{what}"
            );
        }
        // Chunked (no content-length) oversized body: refused once the bytes pass the limit.
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            (0..8).map(|_| Ok(vec![b' '; 1024])).collect();
        let stream = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
        let r = post_raw(&envoy.url(), &[], stream).await?;
        assert_eq!(
            r.status, 413,
            "chunked oversize (allow={allow_headers_stop})"
        );

        let received = peer.received().await?;
        assert!(
            received.is_empty(),
            "the upstream saw refused requests: {received:?}"
        );

        let scrape = envoy.prometheus().await?;
        for (what, _, _, _, _, reason) in &cases {
            assert!(
                scrape
                    .value("mcp_rejections_total", &[("reason", reason)])
                    .unwrap_or(0.0)
                    >= 1.0,
                "{what}: no rejection counted for {reason}\n{}",
                scrape.text
            );
        }
        assert_eq!(
            scrape.value("mcp_rejections_total", &[("reason", "too_large")]),
            Some(2.0)
        );
        // Defined at load (0), never counted: nothing refused was a request.
        assert_eq!(
            scrape
                .value("mcp_requests_total", &[("mcp_method_name", "tools/call")])
                .unwrap_or(0.0),
            0.0
        );

        // Still serving after all of that: the VM did not trap.
        let ok = post_raw(&envoy.url(), &[], r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":1}}}"#).await?;
        assert_eq!(ok.status, 200, "{}", ok.text());
    }
    Ok(())
}

/// Headers derived from the body are set before routing: a route matching
/// `x-mcp-tool` sends `echo` calls to a second server. A client cannot
/// pre-set the header to steer its own request.
#[tokio::test(flavor = "multi_thread")]
async fn routing_headers_from_the_body_pick_the_route() -> Result<()> {
    let bin = envoy_or_skip!();
    let main = Peer::start(PeerMode::StatelessJson)?;
    let other = Peer::start(PeerMode::StatelessJson)?;
    let mut setup = EnvoySetup::new(main.port, json!({"routing_headers": {"enabled": true}}));
    setup
        .header_routes
        .push(("x-mcp-tool".into(), "echo".into(), other.port));
    let envoy = Envoy::start(&bin, &setup)?;

    let echo = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}"#;
    let add = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":1}}}"#;
    assert_eq!(post_raw(&envoy.url(), &[], echo).await?.status, 200);
    // Spoofing the routing header does not move `add` to the other server.
    assert_eq!(
        post_raw(&envoy.url(), &[("x-mcp-tool", "echo")], add)
            .await?
            .status,
        200
    );

    let to_other = other.received().await?;
    let to_main = main.received().await?;
    assert_eq!(to_other.len(), 1, "{to_other:?}");
    assert!(to_other[0].body.contains("\"echo\""));
    assert_eq!(to_other[0].header("x-mcp-tool"), Some("echo"));
    assert_eq!(to_other[0].header("x-mcp-method"), Some("tools/call"));
    assert_eq!(to_main.len(), 1, "{to_main:?}");
    assert_eq!(to_main[0].header("x-mcp-tool"), Some("add"));

    // Filter state for access logs.
    drop(envoy.prometheus().await?);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let log = envoy.access_log();
        let echo_line = log.lines().any(|l| {
            l.starts_with("method=tools/call name=echo tool=echo ") && l.ends_with("status=200")
        });
        if echo_line && log.contains("tool=add") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "access log: {log}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Envoy Gateway delivers `config` as a StringValue; others use a Struct. Both
/// work, and an invalid config makes Envoy refuse it with the field named.
#[tokio::test(flavor = "multi_thread")]
async fn config_arrives_as_string_or_struct_and_bad_config_is_refused_by_field() -> Result<()> {
    let bin = envoy_or_skip!();
    let peer = Peer::start(PeerMode::StatelessJson)?;
    for encoding in [ConfigEncoding::StringValue, ConfigEncoding::Struct] {
        let mut setup = EnvoySetup::new(peer.port, json!({"max_request_bytes": 100}));
        setup.encoding = encoding;
        let envoy = Envoy::start(&bin, &setup)?;
        let r = post_raw(
            &envoy.url(),
            &[],
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#,
                "x".repeat(200)
            ),
        )
        .await?;
        assert_eq!(r.status, 413, "{encoding:?}: the configured limit applies");
    }
    let setup = EnvoySetup::new(peer.port, json!({"routing_headers": {"enabled": "yes"}}));
    let err = match Envoy::start(&bin, &setup) {
        Ok(_) => panic!("Envoy accepted an invalid filter config"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("routing_headers.enabled"), "{err}");
    Ok(())
}

/// The README's `envoy.yaml` is a valid Envoy config with this filter.
#[tokio::test(flavor = "multi_thread")]
async fn the_shipped_envoy_yaml_validates() -> Result<()> {
    if mcp_filter_integration::wasm_only(
        "envoy.yaml loads the .wasm (tests/module.rs validates the module's example)",
    ) {
        return Ok(());
    }
    let bin = envoy_or_skip!();
    let out = std::process::Command::new(bin)
        .current_dir(mcp_filter_integration::repo_root())
        .args([
            "--mode",
            "validate",
            "-c",
            "envoy.yaml",
            "--disable-hot-restart",
        ])
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("configuration 'envoy.yaml' OK"), "{text}");
    Ok(())
}
