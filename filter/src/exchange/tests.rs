//! Simulated-host tests: Envoy-shaped event sequences (cumulative body sizes
//! while paused, chunked responses) fed to the exchange, asserting each step.

use super::*;
use crate::backends::BackendId;
use crate::telemetry::{Labels, MetricKind, Sample, ToolLabels};

fn config(json: &str) -> Rc<FilterConfig> {
    Rc::new(FilterConfig::from_json(json.as_bytes()).unwrap())
}

/// A Streamable HTTP POST's headers, plus `extra` (shared with the other
/// exchange test modules).
pub(super) fn post(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = [
        (":method", "POST"),
        (":path", "/mcp"),
        (":authority", "127.0.0.1"),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    h.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    h
}

fn request(method: &str, path: &str) -> Vec<(String, String)> {
    vec![
        (":method".into(), method.into()),
        (":path".into(), path.into()),
    ]
}

const CALL: &str = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"add","arguments":{"a":2,"b":40}}}"#;

/// Feeds a body as Envoy does while the filter pauses: each callback reports
/// the cumulative buffered size; the last one ends the stream.
fn feed_body(ex: &mut Exchange, body: &[u8], chunk: usize) -> Step {
    let chunk = chunk.max(1);
    let mut buffered = 0;
    loop {
        buffered = (buffered + chunk).min(body.len());
        let eos = buffered == body.len();
        let step = ex.on_request_body(buffered, eos, || Some(body[..buffered].to_vec()));
        if eos || step.action != Action::Pause {
            return step;
        }
    }
}

fn respond(ex: &mut Exchange, status: u16, content_type: &str, body: &[u8], chunk: usize) {
    let headers = vec![("content-type".to_string(), content_type.to_string())];
    assert_eq!(
        ex.on_response_headers(status, &headers).action,
        Action::Continue
    );
    for piece in body.chunks(chunk.max(1)) {
        let step = ex.on_response_body(piece, false);
        assert_eq!(
            step.action,
            Action::Continue,
            "observe-only never holds response bytes"
        );
    }
}

fn names(samples: &[Sample]) -> Vec<String> {
    samples.iter().map(|s| s.name.to_string()).collect()
}

fn reply_of(step: &Step) -> (u16, serde_json::Value) {
    match &step.action {
        Action::Respond(r) => (r.status, serde_json::from_slice(&r.body).unwrap()),
        other => panic!("expected a local reply, got {other:?}"),
    }
}

#[test]
fn an_observed_tool_call_is_forwarded_untouched_and_measured() {
    let mut ex = Exchange::new(config("{}"), 1_000);
    let step = ex.on_request_headers(&post(&[]), false);
    assert_eq!(
        step,
        Step::go(),
        "observe-only releases headers at once and edits nothing"
    );
    let step = feed_body(&mut ex, CALL.as_bytes(), 10);
    assert_eq!(step.action, Action::Continue);
    assert!(
        step.header_edits.is_empty(),
        "headers already left: never edited from the body"
    );
    assert_eq!(
        step.properties,
        vec![
            ("mcp_method", "tools/call".into()),
            ("mcp_name", "add".into()),
            ("mcp_tool", "add".into())
        ]
    );
    respond(
        &mut ex,
        200,
        "application/json",
        br#"{"jsonrpc":"2.0","id":3,"result":{"content":[]}}"#,
        7,
    );
    let samples = ex.finish(
        1_012,
        &mut Labels::with_tools(ToolLabels::new(&["add".into()], 10)),
    );
    assert_eq!(
        names(&samples),
        vec![
            "mcp_requests_total.mcp_method_name=tools/call",
            "mcp_tool_calls_total.gen_ai_tool_name=add",
            "mcp_responses_total.mcp_method_name=tools/call.outcome=result",
            "mcp_server_operation_duration_milliseconds.mcp_method_name=tools/call.gen_ai_tool_name=add",
        ]
    );
    let duration = samples.last().unwrap();
    assert_eq!((duration.kind, duration.value), (MetricKind::Histogram, 12));
}

#[test]
fn body_is_buffered_until_complete() {
    let mut ex = Exchange::new(config("{}"), 0);
    ex.on_request_headers(&post(&[]), false);
    assert_eq!(
        ex.on_request_body(10, false, || unreachable!()).action,
        Action::Pause
    );
    assert_eq!(
        ex.on_request_body(20, false, || unreachable!()).action,
        Action::Pause
    );
}

#[test]
fn routing_headers_hold_the_request_and_are_set_from_the_body() {
    let mut ex = Exchange::new(config(r#"{"routing_headers":{"enabled":true}}"#), 0);
    let step = ex.on_request_headers(&post(&[]), false);
    assert_eq!(step.action, Action::Pause);
    let step = feed_body(&mut ex, CALL.as_bytes(), 1);
    assert_eq!(step.action, Action::Continue);
    assert_eq!(
        step.header_edits,
        vec![
            HeaderEdit::Set("x-mcp-method".into(), "tools/call".into()),
            HeaderEdit::Set("x-mcp-tool".into(), "add".into())
        ]
    );
}

#[test]
fn client_supplied_routing_headers_are_removed() {
    let mut ex = Exchange::new(config("{}"), 0);
    let step = ex.on_request_headers(
        &post(&[("x-mcp-tool", "allowed_tool"), ("x-mcp-method", "ping")]),
        false,
    );
    assert_eq!(
        step.header_edits,
        vec![
            HeaderEdit::Remove("x-mcp-method".into()),
            HeaderEdit::Remove("x-mcp-tool".into())
        ]
    );
}

#[test]
fn routing_header_values_that_are_not_plain_ascii_are_base64_sentinel_encoded() {
    let mut ex = Exchange::new(config(r#"{"routing_headers":{"enabled":true}}"#), 0);
    ex.on_request_headers(&post(&[]), false);
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"caf\u00e9\r\nx-evil: 1"}}"#;
    let step = feed_body(&mut ex, body.as_bytes(), 64);
    let HeaderEdit::Set(_, value) = &step.header_edits[1] else {
        panic!()
    };
    assert!(
        value.starts_with("=?base64?") && value.ends_with("?="),
        "{value}"
    );
    assert!(!value.contains('\n'));
}

#[test]
fn unparseable_json_is_answered_400_with_a_parse_error() {
    let mut ex = Exchange::new(config("{}"), 0);
    ex.on_request_headers(&post(&[]), false);
    let step = feed_body(&mut ex, b"{\"jsonrpc\":", 4);
    let (status, body) = reply_of(&step);
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], -32700);
    assert_eq!(body["id"], serde_json::Value::Null);
    let samples = ex.finish(0, &mut Labels::default());
    assert_eq!(
        names(&samples),
        vec!["mcp_rejections_total.reason=parse_error"]
    );
}

#[test]
fn a_json_value_that_is_not_jsonrpc_is_an_invalid_request() {
    let mut ex = Exchange::new(config("{}"), 0);
    ex.on_request_headers(&post(&[]), false);
    let (status, body) = reply_of(&feed_body(&mut ex, br#"{"hello":"world"}"#, 100));
    assert_eq!(
        (status, body["error"]["code"].as_i64()),
        (400, Some(-32600))
    );
}

#[test]
fn oversized_bodies_get_413_by_header_or_by_bytes() {
    let cfg = config(r#"{"max_request_bytes": 64}"#);
    let mut ex = Exchange::new(cfg.clone(), 0);
    let (status, body) =
        reply_of(&ex.on_request_headers(&post(&[("content-length", "65")]), false));
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], -32600);

    let mut ex = Exchange::new(cfg, 0);
    assert_eq!(
        ex.on_request_headers(&post(&[]), false).action,
        Action::Continue
    );
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{}"}}}}"#,
        "x".repeat(100)
    );
    let (status, _) = reply_of(&feed_body(&mut ex, big.as_bytes(), 16));
    assert_eq!(status, 413);
    assert_eq!(
        names(&ex.finish(0, &mut Labels::default())),
        vec!["mcp_rejections_total.reason=too_large"]
    );
}

#[test]
fn encoded_or_non_json_requests_are_refused_with_415() {
    for extra in [("content-encoding", "gzip"), ("content-encoding", "br")] {
        let mut ex = Exchange::new(config("{}"), 0);
        let (status, _) = reply_of(&ex.on_request_headers(&post(&[extra]), false));
        assert_eq!(status, 415);
    }
    let mut ex = Exchange::new(config("{}"), 0);
    let mut headers = post(&[]);
    headers[3].1 = "application/x-www-form-urlencoded".into();
    assert_eq!(reply_of(&ex.on_request_headers(&headers, false)).0, 415);
    let mut ex = Exchange::new(config("{}"), 0);
    assert_eq!(
        ex.on_request_headers(&post(&[("content-encoding", "identity")]), false)
            .action,
        Action::Continue
    );
}

#[test]
fn an_empty_post_is_a_parse_error() {
    let mut ex = Exchange::new(config("{}"), 0);
    let (status, body) = reply_of(&ex.on_request_headers(&post(&[]), true));
    assert_eq!(
        (status, body["error"]["code"].as_i64()),
        (400, Some(-32700))
    );
}

#[test]
fn get_and_delete_pass_untouched_but_not_with_a_body() {
    for method in ["GET", "DELETE"] {
        let mut ex = Exchange::new(config("{}"), 0);
        let mut h = request(method, "/mcp");
        h.push(("mcp-session-id".into(), "abc".into()));
        h.push(("last-event-id".into(), "0/3".into()));
        assert_eq!(ex.on_request_headers(&h, true), Step::go());
        assert_eq!(
            ex.on_request_body(0, true, || None).action,
            Action::Continue
        );
        assert!(ex.finish(0, &mut Labels::default()).is_empty());

        let mut ex = Exchange::new(config("{}"), 0);
        let mut h = request(method, "/mcp");
        h.push(("content-length".into(), "10".into()));
        assert_eq!(reply_of(&ex.on_request_headers(&h, false)).0, 400);

        // HTTP/2 without content-length: refused when bytes show up.
        let mut ex = Exchange::new(config("{}"), 0);
        assert_eq!(
            ex.on_request_headers(&request(method, "/mcp"), false)
                .action,
            Action::Continue
        );
        assert_eq!(reply_of(&ex.on_request_body(5, true, || None)).0, 400);
    }
}

#[test]
fn other_paths_and_methods_pass_or_are_refused_per_config() {
    let pass = config(r#"{"mcp_paths":["/mcp"]}"#);
    let mut ex = Exchange::new(pass.clone(), 0);
    assert_eq!(
        ex.on_request_headers(&request("POST", "/healthz"), false),
        Step::go()
    );
    assert_eq!(
        ex.on_request_body(3, true, || Some(b"xyz".to_vec())).action,
        Action::Continue
    );
    let mut ex = Exchange::new(pass, 0);
    assert_eq!(
        ex.on_request_headers(&request("PUT", "/mcp"), false),
        Step::go()
    );

    let reject = config(r#"{"mcp_paths":["/mcp"],"non_mcp_traffic":"reject"}"#);
    let mut ex = Exchange::new(reject.clone(), 0);
    assert_eq!(
        reply_of(&ex.on_request_headers(&request("POST", "/other"), false)).0,
        404
    );
    let mut ex = Exchange::new(reject, 0);
    let step = ex.on_request_headers(&request("PUT", "/mcp"), false);
    let Action::Respond(reply) = &step.action else {
        panic!()
    };
    assert_eq!(reply.status, 405);
    assert!(reply.headers.iter().any(|(k, _)| k == "allow"));
}

#[test]
fn with_backends_guarded_other_and_ambiguous_paths_are_refused_and_options_bodies_too() {
    let guarded = config(
        r#"{"mcp_paths":["/mcp"],"public_paths":["/healthz"],
            "backends":{"servers":[{"name":"a","cluster":"a"}]}}"#,
    );
    for (method, path, eos, status) in [
        ("POST", "/other", false, 404),
        ("GET", "/healthz/", true, 404),
        ("POST", "/mcp%2f", false, 400),
        ("POST", "/%256dcp", false, 400),
        ("PUT", "/mcp/x", false, 405),
        ("OPTIONS", "/MCP/", false, 400),
    ] {
        let mut ex = Exchange::new(guarded.clone(), 0);
        let step = ex.on_request_headers(&request(method, path), eos);
        assert_eq!(reply_of(&step).0, status, "{method} {path}");
    }
    let mut ex = Exchange::new(guarded.clone(), 0);
    let step = ex.on_request_headers(&request("OPTIONS", "/mcp"), true);
    assert_eq!(step.action, Action::Continue);
    let mut ex = Exchange::new(guarded.clone(), 0);
    let step = ex.on_request_headers(&request("GET", "/healthz"), true);
    assert_eq!(step.action, Action::Continue);
    // `/mcp/` is the MCP endpoint: a POST there is parsed and judged.
    let mut ex = Exchange::new(guarded, 0);
    let mut headers = post(&[]);
    headers[1].1 = "/mcp/".into();
    assert_eq!(
        ex.on_request_headers(&headers, false).action,
        Action::Continue
    );
    let step = feed_body(&mut ex, b"{not json", 64);
    assert_eq!(reply_of(&step).0, 400);
}

#[test]
fn header_body_mismatch_is_answered_400_with_32020() {
    let mut ex = Exchange::new(config("{}"), 0);
    let h = post(&[
        ("mcp-method", "tools/call"),
        ("mcp-name", "echo"),
        ("mcp-protocol-version", "2026-07-28"),
    ]);
    assert_eq!(ex.on_request_headers(&h, false).action, Action::Continue);
    let (status, body) = reply_of(&feed_body(&mut ex, CALL.as_bytes(), 8));
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], -32020);
    assert_eq!(body["id"], 3);
}

#[test]
fn batches_are_refused_by_default_and_counted_per_element_when_allowed() {
    let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"secret"}}]"#;
    let mut ex = Exchange::new(config("{}"), 0);
    ex.on_request_headers(&post(&[]), false);
    let (status, body) = reply_of(&feed_body(&mut ex, batch, 1000));
    assert_eq!(
        (status, body["error"]["code"].as_i64()),
        (400, Some(-32600))
    );

    let mut ex = Exchange::new(config(r#"{"allow_batches":true}"#), 0);
    ex.on_request_headers(&post(&[]), false);
    assert_eq!(feed_body(&mut ex, batch, 1000).action, Action::Continue);
    let samples = ex.finish(0, &mut Labels::default());
    assert_eq!(
        names(&samples),
        vec![
            "mcp_requests_total.mcp_method_name=ping",
            "mcp_requests_total.mcp_method_name=tools/call",
            "mcp_tool_calls_total.gen_ai_tool_name=_other",
        ]
    );
}

#[test]
fn tools_listed_by_the_upstream_get_their_own_label() {
    let cfg = config("{}");
    let mut labels = Labels::with_tools(ToolLabels::new(&[], 100));
    let mut ex = Exchange::new(cfg.clone(), 0);
    ex.on_request_headers(&post(&[]), false);
    feed_body(
        &mut ex,
        br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        100,
    );
    respond(
        &mut ex,
        200,
        "text/event-stream",
        b"data: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[{\"name\":\"add\"}]}}\n\n",
        3,
    );
    ex.finish(0, &mut labels);

    let mut ex = Exchange::new(cfg, 0);
    ex.on_request_headers(&post(&[]), false);
    feed_body(&mut ex, CALL.as_bytes(), 100);
    respond(
        &mut ex,
        200,
        "application/json",
        br#"{"jsonrpc":"2.0","id":3,"result":{}}"#,
        100,
    );
    let samples = ex.finish(0, &mut labels);
    assert!(names(&samples).contains(&"mcp_tool_calls_total.gen_ai_tool_name=add".to_string()));
}

#[test]
fn sse_outcome_is_the_same_at_every_chunk_split() {
    let body = b"data: \nid: 0/1\nretry: 3000\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-32602,\"message\":\"tool not found\"}}\nid: 1/1\n\n";
    for cut in 0..=body.len() {
        let mut ex = Exchange::new(config("{}"), 0);
        ex.on_request_headers(&post(&[]), false);
        feed_body(&mut ex, CALL.as_bytes(), 100);
        ex.on_response_headers(200, &[("content-type".into(), "text/event-stream".into())]);
        ex.on_response_body(&body[..cut], false);
        ex.on_response_body(&body[cut..], true);
        let samples = ex.finish(0, &mut Labels::default());
        assert!(
            names(&samples).contains(
                &"mcp_responses_total.mcp_method_name=tools/call.outcome=invalid_params".into()
            ),
            "cut {cut}: {samples:?}"
        );
    }
}

#[test]
fn an_upstream_that_never_answers_is_counted_as_no_response() {
    let mut ex = Exchange::new(config("{}"), 0);
    ex.on_request_headers(&post(&[]), false);
    feed_body(&mut ex, CALL.as_bytes(), 100);
    let samples = ex.finish(0, &mut Labels::default());
    assert!(names(&samples)
        .contains(&"mcp_responses_total.mcp_method_name=tools/call.outcome=no_response".into()));
}

#[test]
fn notifications_are_accepted_with_202() {
    let mut ex = Exchange::new(config("{}"), 0);
    ex.on_request_headers(&post(&[]), false);
    feed_body(
        &mut ex,
        br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        100,
    );
    respond(&mut ex, 202, "application/json", b"", 1);
    let samples = ex.finish(0, &mut Labels::default());
    assert!(names(&samples).contains(
        &"mcp_responses_total.mcp_method_name=notifications/initialized.outcome=accepted".into()
    ));
}

/// Replays every captured request through the filter: all are forwarded
/// except the header mismatches, which the filter refuses exactly as the real
/// server did (400, -32020).
#[test]
fn captured_exchanges_are_judged_like_the_real_servers_judged_them() {
    let Some(dir) = crate::test_vectors::dir() else {
        return;
    };
    let mut replayed = 0;
    for request_path in crate::test_vectors::files(&dir, ".request.json") {
        let stem = request_path.to_string_lossy().replace(".request.json", "");
        let body = std::fs::read(&request_path).unwrap();
        let header_text = std::fs::read_to_string(format!("{stem}.request-headers.txt")).unwrap();
        let mut headers = request("POST", "/mcp");
        for line in header_text.lines().filter(|l| !l.trim().is_empty()) {
            let (k, v) = line.split_once(':').unwrap();
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        let response_headers =
            std::fs::read_to_string(format!("{stem}.response-headers.txt")).unwrap();
        let server_status: u16 = response_headers.lines().next().unwrap()[8..]
            .trim()
            .parse()
            .unwrap();

        let mut ex = Exchange::new(config("{}"), 0);
        assert_eq!(
            ex.on_request_headers(&headers, false).action,
            Action::Continue,
            "{stem}"
        );
        let step = feed_body(&mut ex, &body, 17);
        if stem.contains("header-mismatch") {
            let (status, reply) = reply_of(&step);
            let server: serde_json::Value = serde_json::from_slice(
                &std::fs::read(format!("{stem}.response-body.bin")).unwrap(),
            )
            .unwrap();
            assert_eq!(status, server_status, "{stem}");
            assert_eq!(reply["error"]["code"], server["error"]["code"], "{stem}");
            assert_eq!(reply["id"], server["id"], "{stem}");
        } else {
            assert_eq!(step.action, Action::Continue, "{stem}");
        }
        replayed += 1;
    }
    assert!(replayed >= 30, "replayed {replayed}");
}

// ---- authentication, authorization, sessions, filtered listings --------------

mod authorized {
    use super::*;
    use crate::auth::token::AuthFailure;
    use crate::policy::Caller;
    use base64::Engine;

    fn secure_config() -> Rc<FilterConfig> {
        let secret = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        config(
            &serde_json::json!({
                "auth": {
                    "issuers": ["https://idp"], "audiences": ["https://mcp.example.com/mcp"],
                    "shared_secret": {"base64": secret},
                    "resource_metadata": {"resource": "https://mcp.example.com/mcp",
                        "authorization_servers": ["https://idp"]},
                },
                "tenancy": {"tenant_claim": "tenant"},
                "policy": {"rules": [
                    {"name": "no-secret", "tenants": ["*"], "tools": ["secret"], "effect": "deny"},
                    {"name": "deploy", "tenants": ["acme"], "tools": ["deploy"], "effect": "allow",
                     "require_scopes": ["ops"]},
                    {"name": "acme", "tenants": ["acme"], "tools": ["*"], "effect": "allow"},
                ]},
                "sessions": {"binding_keys": [{"id": "k1", "secret": secret}]},
            })
            .to_string(),
        )
    }

    fn alice() -> Authenticated {
        Authenticated::Caller(Rc::new(Caller {
            issuer: "https://idp".into(),
            subject: "alice".into(),
            tenant: Some("acme".into()),
            ..Caller::default()
        }))
    }

    fn exchange(outcome: Authenticated) -> Exchange {
        Exchange::new(secure_config(), 0).with_authenticator(Box::new(move |_| outcome.clone()))
    }

    fn call(tool: &str) -> String {
        format!(r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"{tool}"}}}}"#)
    }

    /// A body from alice (tenant acme) under these policy rules, as the
    /// exchange answers it (fed in small chunks).
    fn alice_under(rules: serde_json::Value) -> impl Fn(&str) -> Step {
        let secret = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        let cfg = config(
            &serde_json::json!({
                "auth": {
                    "issuers": ["https://idp"], "audiences": ["https://mcp.example.com/mcp"],
                    "shared_secret": {"base64": secret},
                    "resource_metadata": {"resource": "https://mcp.example.com/mcp",
                        "authorization_servers": ["https://idp"]},
                },
                "policy": {"rules": rules},
            })
            .to_string(),
        );
        move |body: &str| {
            let outcome = alice();
            let mut ex = Exchange::new(cfg.clone(), 0)
                .with_authenticator(Box::new(move |_| outcome.clone()));
            ex.on_request_headers(&post(&[]), false);
            feed_body(&mut ex, body.as_bytes(), 4)
        }
    }

    /// Servers resolve a resource URI before they look it up (the Python SDK
    /// as pydantic's `AnyUrl`, the TypeScript SDK with WHATWG `new URL()`):
    /// one they would read as another URI than the one judged is refused,
    /// and nothing reaches them; one they read as written is judged.
    #[test]
    fn a_resource_uri_a_server_resolves_otherwise_is_refused() {
        let run = alice_under(serde_json::json!([
                    {"name": "no-secrets", "resources": ["file:///docs/secret/*",
                        "https://docs.example.com/secret*", "custom://h/secret*"], "effect": "deny"},
                    {"name": "docs", "resources": ["file:///docs/*", "https://docs.example.com/*",
                        "https://docs.example.com:8443/*", "https://127.0.0.1/*", "custom://*"],
                     "effect": "allow"},
        ]));
        let read = |uri: &str| {
            let body = serde_json::json!({"jsonrpc": "2.0", "id": 1,
                "method": "resources/read", "params": {"uri": uri}});
            run(&body.to_string())
        };
        for uri in [
            "file:///docs/../etc/passwd",
            "file:///docs/%2e%2e/etc/passwd",
            "file:///docs/x/../secret/key",
            "file:///docs/./secret/key",
            "file:///docs/.%2E/secret/key",
            "file:///docs/secret/..",
            "FILE:///docs/secret/key",
            "file:///docs/se\tcret/key",
            "file:///docs/se\ncret/key",
            " file:///docs/secret/key",
            "file:///docs\\secret\\key",
            "file://localhost/docs/secret/key",
            "https://DOCS.example.com/secret",
            "https://docs.example.com:443/secret",
            "https://docs.example.com:/secret",
            "https://docs.ex%61mple.com/secret",
            "https://ｄocs.example.com/secret",
            "https://user@docs.example.com/secret",
            "https://0x7f.1/secret",
            "https://127.0.0.1/secret",
            "https://[::1]/secret",
            "custom://h/docs/../secret",
            "file:/docs/secret/key",
            "https:docs.example.com/secret",
            "file:///docs/s\u{e9}cret/key",
        ] {
            let (status, body) = reply_of(&read(uri));
            assert_eq!(status, 400, "{uri:?}");
            assert_eq!(body["error"]["code"], -32602, "{uri:?}");
            assert_eq!(body["id"], 1, "{uri:?}");
        }
        for uri in [
            "file:///docs/a",
            "file:///docs/{name}",
            "file:///docs/a.b/..c/...",
            "https://docs.example.com/a?x=../y#../z",
            "https://docs.example.com:8443/a",
            "custom://H/a",
        ] {
            assert_eq!(read(uri).action, Action::Continue, "{uri:?}");
        }
    }

    /// A README-style policy (rules about tools, prompts and resources only):
    /// session housekeeping passes; completion and subscriptions follow
    /// what they are about, and are refused (never passed) when that is denied.
    #[test]
    fn housekeeping_passes_and_follows_its_subject() {
        let run = alice_under(serde_json::json!([
                    {"name": "tools", "tools": ["add"], "effect": "allow"},
                    {"name": "greet", "prompts": ["greet"], "effect": "allow"},
                    {"name": "docs", "resources": ["file:///docs/*"], "effect": "allow"},
        ]));
        let passes = [
            r#"{"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"info"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":"t1"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"greet"},"argument":{"name":"n","value":"a"}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"file:///docs/a"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"_meta":{},"notifications":{"toolsListChanged":true,"resourceSubscriptions":["file:///docs/a"]}}}"#,
        ];
        for body in passes {
            assert_eq!(run(body).action, Action::Continue, "{body}");
        }
        let refused = [
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"secret"},"argument":{"name":"n","value":"a"}}}"#,
                "prompt `secret`",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"file:///etc/{f}"},"argument":{"name":"f","value":"p"}}}"#,
                "resource `file:///etc/{f}`",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"file:///etc/passwd"}}"#,
                "resource `file:///etc/passwd`",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"_meta":{},"notifications":{"resourceSubscriptions":["file:///docs/a","file:///etc/passwd"]}}}"#,
                "resource `file:///etc/passwd`",
            ),
        ];
        for (body, what) in refused {
            let (status, reply) = reply_of(&run(body));
            assert_eq!(status, 200, "{body}");
            assert_eq!(reply["error"]["code"], -32043, "{body}");
            assert!(
                reply["error"]["message"].as_str().unwrap().contains(what),
                "{body}: {reply}"
            );
        }
    }

    #[test]
    fn no_token_gets_401_with_the_resource_metadata_challenge() {
        let mut ex = exchange(Authenticated::Failed(AuthFailure::MissingToken));
        let step = ex.on_request_headers(&post(&[]), false);
        let Action::Respond(reply) = &step.action else {
            panic!("{step:?}")
        };
        assert_eq!(reply.status, 401);
        let challenge = reply
            .headers
            .iter()
            .find(|(k, _)| k == "www-authenticate")
            .unwrap();
        assert_eq!(
            challenge.1,
            r#"Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp""#
        );
        let samples = ex.finish(0, &mut Labels::default());
        assert!(names(&samples).contains(&"mcp_auth_failures_total.reason=missing_token".into()));
    }

    #[test]
    fn the_protected_resource_metadata_is_served_without_a_token() {
        let mut ex = exchange(Authenticated::Failed(AuthFailure::MissingToken));
        let step = ex.on_request_headers(
            &request("GET", "/.well-known/oauth-protected-resource/mcp"),
            true,
        );
        let (status, body) = reply_of(&step);
        assert_eq!(status, 200);
        assert_eq!(body["resource"], "https://mcp.example.com/mcp");
    }

    #[test]
    fn an_allowed_call_goes_upstream_without_the_client_token() {
        let mut ex = exchange(alice());
        let step = ex.on_request_headers(&post(&[("authorization", "Bearer x")]), false);
        assert_eq!(step.action, Action::Continue);
        assert!(step
            .header_edits
            .contains(&HeaderEdit::Remove("authorization".into())));
        let step = feed_body(&mut ex, call("add").as_bytes(), 100);
        assert_eq!(step.action, Action::Continue);
        assert!(step.properties.contains(&("mcp_decision", "allow".into())));
        assert!(step
            .properties
            .contains(&("mcp_decision_reason", "rule:acme".into())));
        let mut labels = Labels {
            tools: ToolLabels::default(),
            tenants: ToolLabels::new(&[], 10),
            names: Default::default(),
        };
        let samples = ex.finish(0, &mut labels);
        assert!(names(&samples).contains(
            &"mcp_authz_decisions_total.mcp_method_name=tools/call.tenant=acme.decision=allow.gen_ai_tool_name=_other".into()
        ));
    }

    /// By default a denied request is answered by its JSON-RPC error (HTTP
    /// 200), which every SDK hands the application as a failed call on a live
    /// session; `deny_with: http_403` answers 403. Either way: its id, what
    /// was asked for, nothing of the policy.
    #[test]
    fn a_denied_call_is_answered_with_its_id_and_no_policy_internals() {
        let mut http_403 = (*secure_config()).clone();
        http_403.policy.deny_with = crate::policy::DenyWith::Http403;
        let http_403 = Rc::new(http_403);
        for (cfg, want) in [(secure_config(), 200), (http_403, 403)] {
            let outcome = alice();
            let mut ex =
                Exchange::new(cfg, 0).with_authenticator(Box::new(move |_| outcome.clone()));
            ex.on_request_headers(&post(&[]), false);
            let (status, body) = reply_of(&feed_body(&mut ex, call("secret").as_bytes(), 100));
            assert_eq!(status, want);
            assert_eq!(body["id"], 7);
            assert_eq!(body["error"]["code"], -32043);
            assert_eq!(body["error"]["message"], "tool `secret` is not allowed");
            assert!(!body.to_string().contains("no-secret"));
        }
        // A denied element of a batch has no single request to answer: 403.
        let mut batches = (*secure_config()).clone();
        batches.allow_batches = true;
        let outcome = alice();
        let mut ex = Exchange::new(Rc::new(batches), 0)
            .with_authenticator(Box::new(move |_| outcome.clone()));
        ex.on_request_headers(&post(&[]), false);
        let batch = format!("[{}]", call("secret"));
        assert_eq!(reply_of(&feed_body(&mut ex, batch.as_bytes(), 100)).0, 403);
    }

    #[test]
    fn a_call_needing_a_scope_gets_the_insufficient_scope_challenge() {
        let mut ex = exchange(alice());
        ex.on_request_headers(&post(&[]), false);
        let step = feed_body(&mut ex, call("deploy").as_bytes(), 100);
        let Action::Respond(reply) = &step.action else {
            panic!()
        };
        assert_eq!(reply.status, 403);
        let challenge = &reply
            .headers
            .iter()
            .find(|(k, _)| k == "www-authenticate")
            .unwrap()
            .1;
        assert!(challenge
            .starts_with(r#"Bearer error="insufficient_scope", scope="ops", resource_metadata=""#));
    }

    /// An authenticator that answers `NeedKeys` until `ready` is set.
    fn keys_arrive_later(after: Authenticated) -> (Exchange, Rc<std::cell::Cell<bool>>) {
        let ready = Rc::new(std::cell::Cell::new(false));
        let flag = ready.clone();
        let ex = Exchange::new(secure_config(), 0).with_authenticator(Box::new(move |_| {
            if flag.get() {
                after.clone()
            } else {
                Authenticated::NeedKeys
            }
        }));
        (ex, ready)
    }

    #[test]
    fn a_bodiless_request_with_an_unknown_key_is_held_until_keys_are_fetched() {
        let (mut ex, ready) = keys_arrive_later(alice());
        let step = ex.on_request_headers(&request("GET", "/mcp"), true);
        assert_eq!(step.action, Action::FetchKeys);
        assert!(ex.headers_await_keys());
        ready.set(true);
        assert_eq!(ex.keys_ready(false, 0, || None).action, Action::Continue);
    }

    /// A GET or DELETE whose body (HTTP/2 DATA without a length) came while
    /// its headers waited for the keys: Envoy buffered it unread, and will
    /// not show it again once the headers go on. It is refused like one that
    /// came after them.
    #[test]
    fn a_body_that_came_while_bodiless_headers_waited_for_keys_is_refused() {
        for method in ["GET", "DELETE"] {
            for body_done in [true, false] {
                let (mut ex, ready) = keys_arrive_later(alice());
                let step = ex.on_request_headers(&request(method, "/mcp"), false);
                assert_eq!(step.action, Action::FetchKeys);
                let body = call("secret");
                assert_eq!(
                    feed_body(&mut ex, body.as_bytes(), 100).action,
                    Action::Pause
                );
                ready.set(true);
                let step = ex.keys_ready(body_done, body.len(), || Some(body.clone().into_bytes()));
                let (status, reply) = reply_of(&step);
                assert_eq!(status, 400, "{method} {body_done}: {reply}");
                assert!(
                    reply.to_string().contains("must not carry a body"),
                    "{reply}"
                );
            }
        }
    }

    #[test]
    fn a_post_with_an_unknown_key_goes_on_but_its_body_waits_for_the_keys() {
        for keys_before_body_ends in [false, true] {
            let (mut ex, ready) = keys_arrive_later(alice());
            let step = ex.on_request_headers(&post(&[("authorization", "Bearer t")]), false);
            assert_eq!(step.action, Action::Continue);
            assert!(step.fetch_keys);
            assert!(step
                .header_edits
                .contains(&HeaderEdit::Remove("authorization".into())));
            let body = call("add");
            if keys_before_body_ends {
                ready.set(true);
                assert_eq!(ex.keys_ready(false, 0, || None).action, Action::Pause);
                assert_eq!(
                    feed_body(&mut ex, body.as_bytes(), 7).action,
                    Action::Continue
                );
            } else {
                assert_eq!(feed_body(&mut ex, body.as_bytes(), 7).action, Action::Pause);
                ready.set(true);
                let step = ex.keys_ready(true, body.len(), || Some(body.clone().into_bytes()));
                assert_eq!(step.action, Action::Continue);
                assert!(step.properties.contains(&("mcp_decision", "allow".into())));
            }
        }
    }

    #[test]
    fn a_deferred_authentication_that_fails_answers_401_before_the_body_goes() {
        let (mut ex, ready) = keys_arrive_later(Authenticated::Failed(AuthFailure::BadSignature));
        ex.on_request_headers(&post(&[]), false);
        let body = call("add");
        assert_eq!(
            feed_body(&mut ex, body.as_bytes(), 100).action,
            Action::Pause
        );
        ready.set(true);
        let (status, _) =
            reply_of(&ex.keys_ready(true, body.len(), || Some(body.clone().into_bytes())));
        assert_eq!(status, 401);
    }

    #[test]
    fn session_ids_are_wrapped_for_the_client_and_unwrapped_for_the_upstream() {
        let mut ex = exchange(alice());
        ex.on_request_headers(&post(&[]), false);
        feed_body(
            &mut ex,
            br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#,
            100,
        );
        let step = ex.on_response_headers(
            200,
            &[
                ("mcp-session-id".into(), "up-1".into()),
                ("content-type".into(), "application/json".into()),
            ],
        );
        let wrapped = step
            .header_edits
            .iter()
            .find_map(|e| match e {
                HeaderEdit::Set(k, v) if k == "mcp-session-id" => Some(v.clone()),
                _ => None,
            })
            .unwrap();
        assert!(wrapped.starts_with("mf1.k1."));

        let mut next = exchange(alice());
        let step = next.on_request_headers(&post(&[("mcp-session-id", &wrapped)]), false);
        assert!(step
            .header_edits
            .contains(&HeaderEdit::Set("mcp-session-id".into(), "up-1".into())));

        let bob = Authenticated::Caller(Rc::new(Caller {
            issuer: "https://idp".into(),
            subject: "bob".into(),
            tenant: Some("acme".into()),
            ..Caller::default()
        }));
        let mut stolen = exchange(bob);
        let (status, body) =
            reply_of(&stolen.on_request_headers(&post(&[("mcp-session-id", &wrapped)]), false));
        assert_eq!(status, 404);
        assert_eq!(body["error"]["code"], -32001);
        let mut raw = exchange(alice());
        assert_eq!(
            reply_of(&raw.on_request_headers(&post(&[("mcp-session-id", "up-1")]), false)).0,
            404
        );
    }

    fn listing_through(
        content_type: &str,
        body: &[u8],
        chunk: usize,
    ) -> (Vec<u8>, Vec<HeaderEdit>) {
        let length = body.len().to_string();
        let headers = [
            ("content-type", content_type),
            ("content-length", length.as_str()),
        ];
        listing_answer(200, &headers, body, chunk, false)
    }

    /// A listing answer as the client receives it: status, headers, body
    /// in chunks, optionally ended by trailers instead of end of stream.
    fn listing_answer(
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
        chunk: usize,
        trailers: bool,
    ) -> (Vec<u8>, Vec<HeaderEdit>) {
        let mut ex = exchange(alice());
        ex.on_request_headers(&post(&[]), false);
        feed_body(
            &mut ex,
            br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
            100,
        );
        answer_through(&mut ex, status, headers, body, chunk, trailers)
    }

    /// The answer to the request `ex` judged, as the client receives it.
    fn answer_through(
        ex: &mut Exchange,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
        chunk: usize,
        trailers: bool,
    ) -> (Vec<u8>, Vec<HeaderEdit>) {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let edits = ex.on_response_headers(status, &headers).header_edits;
        let mut out = Vec::new();
        let mut held = Vec::new();
        let pieces: Vec<&[u8]> = body.chunks(chunk.max(1)).collect();
        let mut apply = |step: Step, piece: &[u8], out: &mut Vec<u8>| {
            held.extend_from_slice(piece);
            match (step.action, step.body) {
                (Action::Pause, Some(_)) => panic!("a paused step replaces nothing"),
                (Action::Pause, None) => {}
                (Action::Continue, Some(replacement)) => {
                    out.extend(replacement);
                    held.clear();
                }
                // What Envoy held goes on as it was.
                (Action::Continue, None) => out.append(&mut held),
                other => panic!("{other:?}"),
            }
        };
        for (i, piece) in pieces.iter().enumerate() {
            let last = i + 1 == pieces.len() && !trailers;
            let step = ex.on_response_body(piece, last);
            apply(step, piece, &mut out);
        }
        if trailers {
            let step = ex.on_response_trailers();
            apply(step, b"", &mut out);
        }
        (out, edits)
    }

    const SECRET_LISTING: &[u8] =
        br#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"add"},{"name":"secret"}]}}"#;

    #[test]
    fn no_listing_leaves_unfiltered_whatever_its_status_type_encoding_size_or_end() {
        let json = ("content-type", "application/json");
        for (what, status, headers, trailers) in [
            ("non-2xx JSON", 500, vec![json], false),
            ("no content type", 200, vec![], false),
            (
                "text/plain",
                200,
                vec![("content-type", "text/plain")],
                false,
            ),
            ("ended by trailers", 200, vec![json], true),
            ("gzip", 200, vec![json, ("content-encoding", "gzip")], false),
            (
                "br over SSE",
                200,
                vec![
                    ("content-type", "text/event-stream"),
                    ("content-encoding", "br"),
                ],
                false,
            ),
        ] {
            for chunk in [1, 9, 1000] {
                let (out, edits) =
                    listing_answer(status, &headers, SECRET_LISTING, chunk, trailers);
                let text = String::from_utf8_lossy(&out);
                assert!(!text.contains("secret"), "{what}/{chunk}: {text}");
                let v: serde_json::Value = serde_json::from_slice(&out)
                    .unwrap_or_else(|e| panic!("{what}/{chunk}: {e}: {text}"));
                assert_eq!(v["jsonrpc"], "2.0", "{what}");
                assert!(
                    v["result"].is_object() || v["error"].is_object(),
                    "{what}: {v}"
                );
                if headers.iter().any(|(k, _)| *k == "content-encoding") {
                    assert!(edits.contains(&HeaderEdit::Remove("content-encoding".into())));
                    assert_eq!(v["error"]["code"], -32603, "{what}");
                }
            }
        }
        // Bytes that are not JSON and name no listing pass as they are.
        let (out, _) = listing_answer(
            502,
            &[("content-type", "text/plain")],
            b"upstream down",
            4,
            false,
        );
        assert_eq!(out, b"upstream down");
        // An SSE event left unfinished when trailers end the stream is dropped.
        let sse = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[{\"name\":\"secret\"}]}}";
        let (out, _) = listing_answer(200, &[("content-type", "text/event-stream")], sse, 7, true);
        assert!(!String::from_utf8_lossy(&out).contains("secret"));
    }

    /// Bytes the filter does not frame as JSON or SSE are refused when a
    /// client could still read a listing out of them, also when the array's
    /// key is written with an escape (every JSON parser decodes it) and
    /// under a content type the SDKs take for SSE (`includes` /
    /// `startswith`) but the filter does not.
    #[test]
    fn an_unframed_listing_is_refused_even_with_its_key_escaped() {
        let sse = br#"data: {"jsonrpc":"2.0","id":2,"result":{"t\u006fols":[{"name":"secret"}]}}

"#;
        for headers in [
            vec![],
            vec![("content-type", "text/event-stream,text/plain")],
            vec![("content-type", "text/plain")],
        ] {
            let (out, _) = listing_answer(200, &headers, sse, 1000, false);
            let text = String::from_utf8_lossy(&out);
            assert!(!text.contains("secret"), "{headers:?}: {text}");
            let v: serde_json::Value = serde_json::from_slice(&out).expect("a JSON-RPC error");
            assert_eq!(v["error"]["code"], -32603, "{headers:?}");
        }
    }

    /// A GET resuming a stream with `Last-Event-ID` (as 2025-11-25 clients
    /// also do when a server ends a POST's stream early) gets the events the
    /// client missed, answers included. A listing among them is filtered as
    /// on the POST, whatever its id and chunking; other events pass as they
    /// are; a result a client could read a listing out of but the filter
    /// cannot is replaced by an error.
    #[test]
    fn a_listing_replayed_on_a_resumed_stream_is_filtered() {
        let events: &[&[u8]] = &[
            b"id: 0/1\ndata: ",
            br#"data: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"secret"}}"#,
            br#"id: 2/1
data: {"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"add"},{"name":"secret"}],"nextCursor":"c"}}"#,
            br#"data: {"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"secret"}]}}"#,
            br#"data: {"jsonrpc":"2.0","id":4,"result":{"Tools":[{"name":"secret"}]}}"#,
        ];
        let stream: Vec<u8> = events.iter().flat_map(|e| [*e, b"\n\n"].concat()).collect();
        for chunk in [1, 5, 1000] {
            let mut ex = exchange(alice());
            let mut get = request("GET", "/mcp");
            get.push(("accept".into(), "text/event-stream".into()));
            get.push(("accept-encoding".into(), "gzip".into()));
            get.push(("last-event-id".into(), "0/1".into()));
            let step = ex.on_request_headers(&get, true);
            assert_eq!(step.action, Action::Continue);
            assert!(step
                .header_edits
                .contains(&HeaderEdit::Remove("accept-encoding".into())));
            let sse = [("content-type", "text/event-stream")];
            let (out, _) = answer_through(&mut ex, 200, &sse, &stream, chunk, false);
            let text = String::from_utf8_lossy(&out).to_string();
            let data: Vec<&str> = text
                .split("\n\n")
                .map(|e| {
                    e.lines()
                        .find_map(|l| l.strip_prefix("data:"))
                        .unwrap_or("")
                        .trim()
                })
                .collect();
            assert!(text.starts_with("id: 0/1\ndata: \n\n"), "{chunk}: {text}");
            assert_eq!(data[1].as_bytes(), &events[1][6..], "{chunk}");
            assert_eq!(
                data[2],
                r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"add"}],"nextCursor":"c"}}"#,
                "{chunk}"
            );
            assert!(text.contains("id: 2/1\n"), "{chunk}: {text}");
            assert_eq!(data[3].as_bytes(), &events[3][6..], "{chunk}");
            let refused: serde_json::Value = serde_json::from_str(data[4]).expect("JSON");
            assert_eq!(refused["error"]["code"], -32603, "{chunk}: {text}");
            assert!(!data[4].contains("secret"), "{chunk}");
        }
        // An answer the filter cannot read at all (encoded) is not passed.
        let mut ex = exchange(alice());
        ex.on_request_headers(&request("GET", "/mcp"), true);
        let gzip = [
            ("content-type", "text/event-stream"),
            ("content-encoding", "gzip"),
        ];
        let (out, edits) = answer_through(&mut ex, 200, &gzip, &stream, 1000, false);
        assert!(!String::from_utf8_lossy(&out).contains("secret"));
        assert!(edits.contains(&HeaderEdit::Remove("content-encoding".into())));
    }

    /// A UTF-8 BOM opening an SSE answer is dropped by the client's decoder
    /// (WHATWG's UTF-8 decode, which the TypeScript SDK's `TextDecoderStream`
    /// runs), so the first line is still a `data:` line to it.
    #[test]
    fn an_sse_listing_after_a_bom_is_filtered() {
        let mut sse = b"\xEF\xBB\xBF".to_vec();
        sse.extend_from_slice(b"data: ");
        sse.extend_from_slice(SECRET_LISTING);
        sse.extend_from_slice(b"\n\n");
        for chunk in [1, 2, 7, 1000] {
            let (out, _) = listing_answer(
                200,
                &[("content-type", "text/event-stream")],
                &sse,
                chunk,
                false,
            );
            let text = String::from_utf8_lossy(&out);
            assert!(!text.contains("secret"), "chunk {chunk}: {text}");
            assert!(text.contains("\"add\""), "chunk {chunk}: {text}");
        }
    }

    #[test]
    fn a_listing_over_max_response_bytes_is_replaced_by_an_error() {
        let secret = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        let cfg = config(
            &serde_json::json!({
                "max_response_bytes": 64,
                "auth": {"issuers": ["https://idp"], "audiences": ["a"],
                    "shared_secret": {"base64": secret},
                    "resource_metadata": {"resource": "https://m/mcp", "authorization_servers": ["https://idp"]}},
                "policy": {"rules": [{"name": "r", "tools": ["add"], "effect": "allow"}]},
            })
            .to_string(),
        );
        let mut ex = Exchange::new(cfg, 0).with_authenticator(Box::new(|_| alice()));
        ex.on_request_headers(&post(&[("accept-encoding", "gzip")]), false);
        feed_body(
            &mut ex,
            br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
            100,
        );
        ex.on_response_headers(200, &[("content-type".into(), "application/json".into())]);
        let mut out = Vec::new();
        for (i, piece) in SECRET_LISTING.chunks(16).enumerate() {
            let step = ex.on_response_body(piece, (i + 1) * 16 >= SECRET_LISTING.len());
            if let Some(b) = step.body {
                out = b;
            }
        }
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"]["code"], -32603, "{v}");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_response_bytes"));
    }

    #[test]
    fn accept_encoding_is_removed_where_listings_are_filtered() {
        let mut ex = exchange(alice());
        let step = ex.on_request_headers(&post(&[("accept-encoding", "gzip, br")]), false);
        assert!(step
            .header_edits
            .contains(&HeaderEdit::Remove("accept-encoding".into())));
    }

    #[test]
    fn listings_are_filtered_in_json_and_sse_and_lose_their_content_length() {
        let json = br#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"add"},{"name":"secret"},{"name":"deploy"}]}}"#;
        let (out, edits) = listing_through("application/json", json, 7);
        assert!(edits.contains(&HeaderEdit::Remove("content-length".into())));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        // `deploy` needs a scope alice lacks: not callable now, so not listed.
        assert_eq!(v["result"]["tools"], serde_json::json!([{"name": "add"}]));

        let sse = format!(
            "event: message\ndata: {}\n\n",
            String::from_utf8_lossy(json)
        );
        for chunk in 1..sse.len() {
            let (out, _) = listing_through("text/event-stream", sse.as_bytes(), chunk);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[{\"name\":\"add\"}]}}\n\n",
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn without_an_authenticator_a_secured_filter_fails_closed() {
        let mut ex = Exchange::new(secure_config(), 0);
        let (status, _) = reply_of(&ex.on_request_headers(&post(&[]), false));
        assert_eq!(status, 503);
    }
}

mod secured_edges {
    use super::*;
    use crate::auth::Authenticated;
    use crate::policy::Caller;

    fn secured(extra: serde_json::Value) -> Exchange {
        let mut json = serde_json::json!({
            "auth": {
                "issuers": ["https://idp"], "audiences": ["https://mcp.example.com/mcp"],
                "remote_jwks": {"cluster": "idp", "path": "/jwks"},
                "resource_metadata": {"resource": "https://mcp.example.com/mcp",
                    "authorization_servers": ["https://idp"]},
            },
        });
        for (k, v) in extra.as_object().unwrap() {
            json["auth"][k] = v.clone();
        }
        let caller = Authenticated::Caller(Rc::new(Caller {
            subject: "alice".into(),
            ..Caller::default()
        }));
        Exchange::new(config(&json.to_string()), 0)
            .with_authenticator(Box::new(move |_| caller.clone()))
    }

    #[test]
    fn other_methods_on_the_mcp_endpoint_are_refused_when_authentication_is_on() {
        let mut ex = secured(serde_json::json!({}));
        assert_eq!(
            reply_of(&ex.on_request_headers(&request("PUT", "/mcp"), false)).0,
            405
        );
    }

    #[test]
    fn an_upstream_credential_replaces_the_clients_token() {
        let mut ex =
            secured(serde_json::json!({"upstream_authorization": "Bearer upstream-secret"}));
        let step = ex.on_request_headers(&post(&[("authorization", "Bearer client")]), false);
        assert_eq!(
            step.header_edits,
            vec![
                HeaderEdit::Remove("authorization".into()),
                HeaderEdit::Set("authorization".into(), "Bearer upstream-secret".into()),
                HeaderEdit::Set("x-mcp-subject".into(), "alice".into()),
            ]
        );
        let mut ex = secured(serde_json::json!({"forward_token": true}));
        let step = ex.on_request_headers(&post(&[("authorization", "Bearer client")]), false);
        assert_eq!(
            step.header_edits,
            vec![HeaderEdit::Set("x-mcp-subject".into(), "alice".into())]
        );
    }

    fn as_caller(subject: &str, tenant: Option<&str>) -> Exchange {
        let json = serde_json::json!({
            "auth": {
                "issuers": ["https://idp"], "audiences": ["https://mcp.example.com/mcp"],
                "remote_jwks": {"cluster": "idp", "path": "/jwks"},
                "resource_metadata": {"resource": "https://mcp.example.com/mcp",
                    "authorization_servers": ["https://idp"]},
                "forward_token": true,
            },
        });
        let caller = Authenticated::Caller(Rc::new(Caller {
            subject: subject.into(),
            tenant: tenant.map(str::to_string),
            ..Caller::default()
        }));
        Exchange::new(config(&json.to_string()), 0)
            .with_authenticator(Box::new(move |_| caller.clone()))
    }

    #[test]
    fn the_verified_caller_is_passed_on_and_a_client_cannot_forge_it() {
        for method in ["POST", "GET", "DELETE"] {
            let mut ex = as_caller("alice", Some("acme"));
            let mut headers = post(&[("x-mcp-subject", "root"), ("X-MCP-Tenant", "globex")]);
            headers[0].1 = method.into();
            let step = ex.on_request_headers(&headers, method != "POST");
            let edits = &step.header_edits;
            let remove = |n: &str| {
                edits
                    .iter()
                    .position(|e| e == &HeaderEdit::Remove(n.into()))
            };
            let set = |n: &str, v: &str| {
                edits
                    .iter()
                    .position(|e| e == &HeaderEdit::Set(n.into(), v.into()))
            };
            // The client's copies go first, then the filter's own.
            assert!(
                remove("x-mcp-subject") < set("x-mcp-subject", "alice"),
                "{edits:?}"
            );
            assert!(remove("x-mcp-tenant").is_some(), "{method}: {edits:?}");
            assert!(
                remove("x-mcp-tenant") < set("x-mcp-tenant", "acme"),
                "{edits:?}"
            );
        }
        // No tenant: the header is only removed.
        let mut ex = as_caller("alice", None);
        let step = ex.on_request_headers(&post(&[("x-mcp-tenant", "globex")]), false);
        assert!(!step
            .header_edits
            .iter()
            .any(|e| matches!(e, HeaderEdit::Set(n, _) if n == "x-mcp-tenant")));
        // Values that are not short printable ASCII are encoded whole, never cut.
        for (subject, expected) in [
            ("ünïcode", "=?base64?w7xuw69jb2Rl?="),
            (" padded", "=?base64?IHBhZGRlZA==?="),
        ] {
            let mut ex = as_caller(subject, None);
            let step = ex.on_request_headers(&post(&[]), false);
            assert!(
                step.header_edits
                    .contains(&HeaderEdit::Set("x-mcp-subject".into(), expected.into())),
                "{:?}",
                step.header_edits
            );
        }
        let long = "a".repeat(300);
        let mut ex = as_caller(&long, None);
        let step = ex.on_request_headers(&post(&[]), false);
        let value = step
            .header_edits
            .iter()
            .find_map(|e| match e {
                HeaderEdit::Set(n, v) if n == "x-mcp-subject" => Some(v.clone()),
                _ => None,
            })
            .unwrap();
        assert!(value.len() > 400, "the whole subject: {value}");
    }
}

// ---- several backends: renaming, routing, gathered listings ------------------

mod backends {
    use super::*;
    use crate::aggregate::BackendAnswer;
    use crate::policy::Caller;
    use serde_json::{json, Value};

    const SERVERS: &str = r#"{"servers": [
        {"name": "github", "tools": {"exclude": ["secret"], "aliases": {"open_issue": "create_issue"}}},
        {"name": "jira"}
    ]}"#;

    fn routed(held: bool) -> Exchange {
        let json =
            format!(r#"{{"routing_headers": {{"enabled": {held}}}, "backends": {SERVERS}}}"#);
        Exchange::new(config(&json), 0)
    }

    fn call(tool: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"{tool}","arguments":{{"name":"{tool}"}}}}}}"#
        )
    }

    fn set(name: &str, value: &str) -> HeaderEdit {
        HeaderEdit::Set(name.into(), value.into())
    }

    fn body_of(step: &Step) -> Value {
        serde_json::from_slice(step.body.as_ref().expect("a rewritten body")).unwrap()
    }

    #[test]
    fn held_headers_are_routed_and_the_body_renamed_from_the_public_name() {
        let mut ex = routed(true);
        assert_eq!(
            ex.on_request_headers(&post(&[]), false).action,
            Action::Pause
        );
        let step = feed_body(&mut ex, call("jira__create_issue").as_bytes(), 9);
        assert_eq!(step.action, Action::Continue);
        assert!(step.header_edits.contains(&set("x-mcp-backend", "jira")));
        assert!(step
            .header_edits
            .contains(&HeaderEdit::Remove("content-length".into())));
        // The routing header carries the public name, like the policy.
        assert!(step
            .header_edits
            .contains(&set("x-mcp-tool", "jira__create_issue")));
        let body = body_of(&step);
        assert_eq!(body["params"]["name"], "create_issue");
        assert_eq!(
            body["params"]["arguments"]["name"], "jira__create_issue",
            "only params.name changes"
        );
        assert!(step.properties.contains(&("mcp_backend", "jira".into())));
        assert!(step
            .properties
            .contains(&("mcp_tool", "jira__create_issue".into())));
    }

    #[test]
    fn an_alias_reaches_its_upstream_name() {
        let mut ex = routed(true);
        ex.on_request_headers(&post(&[]), false);
        let step = feed_body(&mut ex, call("open_issue").as_bytes(), 100);
        assert!(step.header_edits.contains(&set("x-mcp-backend", "github")));
        assert_eq!(body_of(&step)["params"]["name"], "create_issue");
    }

    #[test]
    fn unknown_hidden_and_unprefixed_names_are_refused_never_passed() {
        for tool in [
            "gitlab__x",
            "github__secret",
            "github__create_issue",
            "add",
            "jira__",
        ] {
            let mut ex = routed(true);
            ex.on_request_headers(&post(&[]), false);
            let step = feed_body(&mut ex, call(tool).as_bytes(), 100);
            let (status, reply) = reply_of(&step);
            assert_eq!(status, 400, "{tool}");
            assert_eq!(reply["error"]["code"], -32602, "{tool}");
            assert_eq!(reply["id"], 7);
            assert!(
                reply["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("Unknown tool"),
                "{reply}"
            );
        }
    }

    #[test]
    fn a_clients_own_backend_header_is_removed() {
        let mut ex = routed(true);
        let step = ex.on_request_headers(&post(&[("x-mcp-backend", "jira")]), false);
        assert!(step
            .header_edits
            .contains(&HeaderEdit::Remove("x-mcp-backend".into())));
    }

    #[test]
    fn unheld_legacy_requests_go_to_the_default_backend_only() {
        let mut ex = routed(false);
        let step = ex.on_request_headers(&post(&[("content-length", "99")]), false);
        assert_eq!(step.action, Action::Continue);
        assert_eq!(
            step.header_edits,
            vec![
                HeaderEdit::Remove("content-length".into()),
                set("x-mcp-backend", "github"),
            ]
        );
        let step = feed_body(&mut ex, call("github__search").as_bytes(), 100);
        assert_eq!(step.action, Action::Continue);
        assert!(step.header_edits.is_empty(), "headers already left");
        assert_eq!(body_of(&step)["params"]["name"], "search");
    }

    /// Headers that left for the default backend cannot follow a call for
    /// another: the filter relays it there and answers with its answer.
    #[test]
    fn unheld_calls_for_another_backend_are_relayed_by_the_filter() {
        let mut ex = routed(false);
        ex.on_request_headers(
            &post(&[
                ("mcp-protocol-version", "2025-06-18"),
                ("mcp-session-id", "s-1"),
            ]),
            false,
        );
        let step = feed_body(&mut ex, call("jira__create_issue").as_bytes(), 100);
        assert_eq!(step.action, Action::Pause, "the client waits for jira");
        assert!(step.body.is_none() && step.header_edits.is_empty());
        assert!(step.properties.contains(&("mcp_backend", "jira".into())));
        let [fetch] = step.fetches.as_slice() else {
            panic!("one request to jira: {:?}", step.fetches)
        };
        assert_eq!(fetch.cluster, "jira");
        let body: Value = serde_json::from_slice(&fetch.body).unwrap();
        assert_eq!(body["params"]["name"], "create_issue");
        assert_eq!(body["params"]["arguments"]["name"], "jira__create_issue");
        assert!(fetch
            .headers
            .contains(&("mcp-protocol-version".into(), "2025-06-18".into())));
        assert!(
            !fetch.headers.iter().any(|(k, _)| k == "mcp-session-id"),
            "the session is the default backend's"
        );

        let answer =
            r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"ok"}]}}"#;
        let step = ex.on_backend_answer(
            BackendId::at(1),
            BackendAnswer {
                status: Some(200),
                content_type: Some("application/json"),
                content_encoding: None,
                body: answer.as_bytes(),
            },
        );
        let Action::Respond(reply) = &step.action else {
            panic!("{step:?}")
        };
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, answer.as_bytes());
        assert!(ex.answered());
        let samples = ex.finish(5, &mut Labels::default());
        assert!(
            samples.iter().any(|s| s.name.contains("outcome=result")),
            "{samples:?}"
        );

        // A backend that cannot be reached: an error, the failure counted.
        let mut ex = routed(false);
        ex.on_request_headers(&post(&[]), false);
        let step = feed_body(&mut ex, call("jira__x").as_bytes(), 100);
        assert_eq!(step.fetches.len(), 1);
        let (status, reply) = reply_of(&ex.on_backend_unreachable(BackendId::at(1)));
        assert_eq!(status, 502);
        assert_eq!(reply["id"], 7);
        assert_eq!(reply["error"]["code"], -32603);
        assert_eq!(
            ex.backend_failures(),
            ["backend `jira` gave no answer to pass on for the relayed call: unreachable"]
        );
    }

    #[test]
    fn mcp_name_headers_route_unheld_2026_requests_and_are_renamed_too() {
        let mut ex = routed(false);
        let headers = post(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "jira__create_issue"),
        ]);
        let step = ex.on_request_headers(&headers, false);
        assert_eq!(step.action, Action::Continue);
        assert!(step.header_edits.contains(&set("mcp-name", "create_issue")));
        assert!(step.header_edits.contains(&set("x-mcp-backend", "jira")));
        let body = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"jira__create_issue","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        let step = feed_body(&mut ex, body.as_bytes(), 100);
        assert_eq!(step.action, Action::Continue);
        assert_eq!(body_of(&step)["params"]["name"], "create_issue");

        // A body naming another tool than the header is still refused.
        let mut ex = routed(false);
        ex.on_request_headers(&headers, false);
        let other = body.replace("jira__create_issue", "github__search");
        assert_eq!(reply_of(&feed_body(&mut ex, other.as_bytes(), 100)).0, 400);
    }

    #[test]
    fn held_2026_requests_get_the_upstream_name_in_mcp_name() {
        let mut ex = routed(true);
        ex.on_request_headers(
            &post(&[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "open_issue"),
            ]),
            false,
        );
        let body = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"open_issue","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        let step = feed_body(&mut ex, body.as_bytes(), 100);
        assert!(step.header_edits.contains(&set("mcp-name", "create_issue")));
        assert!(step.header_edits.contains(&set("x-mcp-backend", "github")));
    }

    #[test]
    fn batches_cannot_carry_renamed_calls() {
        let json = format!(
            r#"{{"allow_batches": true, "routing_headers": {{"enabled": true}}, "backends": {SERVERS}}}"#
        );
        let mut ex = Exchange::new(config(&json), 0);
        ex.on_request_headers(&post(&[]), false);
        let batch = format!("[{}]", call("jira__x"));
        assert_eq!(reply_of(&feed_body(&mut ex, batch.as_bytes(), 100)).0, 400);
    }

    const LIST: &str = r#"{"jsonrpc":"2.0","id":5,"method":"tools/list","params":{}}"#;

    fn answer(body: &str) -> BackendAnswer<'_> {
        BackendAnswer {
            status: Some(200),
            content_type: Some("application/json"),
            content_encoding: None,
            body: body.as_bytes(),
        }
    }

    #[test]
    fn a_listing_is_gathered_from_every_backend_and_answered_by_the_filter() {
        for held in [true, false] {
            let mut ex = routed(held);
            ex.on_request_headers(&post(&[("mcp-protocol-version", "2025-11-25")]), false);
            let step = feed_body(&mut ex, LIST.as_bytes(), 100);
            assert_eq!(step.action, Action::Pause, "the upstream gets no listing");
            assert_eq!(step.fetches.len(), 2);
            assert!(step.fetches[0]
                .headers
                .contains(&("mcp-protocol-version".into(), "2025-11-25".into())));
            let step = ex.on_backend_answer(
                BackendId::at(1),
                answer(r#"{"jsonrpc":"2.0","id":5,"result":{"tools":[{"name":"create_issue"}]}}"#),
            );
            assert_eq!(step.action, Action::Pause);
            let step = ex.on_backend_answer(
                BackendId::at(0),
                answer(r#"{"jsonrpc":"2.0","id":5,"result":{"tools":[{"name":"create_issue"},{"name":"secret"},{"name":"search"}]}}"#),
            );
            let (status, reply) = reply_of(&step);
            assert_eq!(status, 200);
            let names: Vec<&str> = reply["result"]["tools"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap())
                .collect();
            assert_eq!(
                names,
                ["open_issue", "github__search", "jira__create_issue"]
            );
            let samples = ex.finish(3, &mut Labels::with_tools(ToolLabels::new(&[], 10)));
            assert!(names_of(&samples).contains(
                &"mcp_responses_total.mcp_method_name=tools/list.outcome=result".to_string()
            ));
        }
    }

    fn names_of(samples: &[Sample]) -> Vec<String> {
        samples.iter().map(|s| s.name.to_string()).collect()
    }

    #[test]
    fn a_backend_down_leaves_the_others_listed_and_is_counted() {
        let mut ex = routed(true);
        ex.on_request_headers(&post(&[]), false);
        feed_body(&mut ex, LIST.as_bytes(), 100);
        ex.on_backend_unreachable(BackendId::at(1));
        let (status, reply) = reply_of(&ex.on_backend_answer(
            BackendId::at(0),
            answer(r#"{"jsonrpc":"2.0","id":5,"result":{"tools":[{"name":"search"}]}}"#),
        ));
        assert_eq!(status, 200);
        assert_eq!(
            reply["result"]["tools"],
            json!([{"name": "github__search"}])
        );
        assert_eq!(
            ex.backend_failures(),
            ["backend `jira` left out of the listing: unreachable"]
        );
        let mut labels = Labels::with_tools(ToolLabels::new(&[], 10));
        let samples = ex.finish(3, &mut labels);
        assert!(names_of(&samples)
            .contains(&"mcp_backend_failures_total.backend=jira.reason=unreachable".to_string()));
        // The listed public names become metric labels.
        assert_eq!(labels.tools.label("github__search"), "github__search");
    }

    #[test]
    fn a_cursor_on_a_gathered_listing_is_invalid() {
        let mut ex = routed(true);
        ex.on_request_headers(&post(&[]), false);
        let body = r#"{"jsonrpc":"2.0","id":5,"method":"tools/list","params":{"cursor":"x"}}"#;
        let (status, reply) = reply_of(&feed_body(&mut ex, body.as_bytes(), 100));
        assert_eq!(
            (status, reply["error"]["code"].clone()),
            (400, json!(-32602))
        );
    }

    #[test]
    fn one_backend_is_renamed_in_stream_not_gathered() {
        let json =
            r#"{"backends": {"servers": [{"name": "gh", "tools": {"exclude": ["secret"]}}]}}"#;
        let mut ex = Exchange::new(config(json), 0);
        ex.on_request_headers(&post(&[]), false);
        let step = feed_body(&mut ex, LIST.as_bytes(), 100);
        assert_eq!(step.action, Action::Continue);
        assert!(step.fetches.is_empty());
        let headers = vec![("content-type".to_string(), "application/json".to_string())];
        let step = ex.on_response_headers(200, &headers);
        assert!(step
            .header_edits
            .contains(&HeaderEdit::Remove("content-length".into())));
        let listing =
            br#"{"jsonrpc":"2.0","id":5,"result":{"tools":[{"name":"add"},{"name":"secret"}]}}"#;
        let step = ex.on_response_body(&listing[..20], false);
        assert_eq!(step.action, Action::Pause);
        let step = ex.on_response_body(&listing[20..], true);
        let out: Value = serde_json::from_slice(&step.body.unwrap()).unwrap();
        assert_eq!(out["result"]["tools"], json!([{"name": "gh__add"}]));
    }

    #[test]
    fn the_policy_judges_public_names_for_calls_and_listings_alike() {
        let json = json!({
            "routing_headers": {"enabled": true},
            "backends": serde_json::from_str::<Value>(SERVERS).unwrap(),
            "auth": {
                "issuers": ["https://idp"], "audiences": ["https://mcp"],
                "shared_secret": {"base64": "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk="},
                "resource_metadata": {"resource": "https://mcp", "authorization_servers": ["https://idp"]}
            },
            "policy": {"rules": [{"tools": ["jira__*"], "effect": "deny"}, {"tools": ["*"], "effect": "allow"}]}
        });
        let caller = Authenticated::Caller(Rc::new(Caller {
            subject: "alice".into(),
            ..Caller::default()
        }));
        let make = || {
            let caller = caller.clone();
            Exchange::new(config(&json.to_string()), 0)
                .with_authenticator(Box::new(move |_| caller.clone()))
        };
        let mut ex = make();
        ex.on_request_headers(&post(&[]), false);
        assert_eq!(
            reply_of(&feed_body(
                &mut ex,
                call("jira__create_issue").as_bytes(),
                100
            ))
            .0,
            200
        );
        let mut ex = make();
        ex.on_request_headers(&post(&[]), false);
        assert_eq!(
            feed_body(&mut ex, call("github__search").as_bytes(), 100).action,
            Action::Continue
        );
        let mut ex = make();
        ex.on_request_headers(&post(&[]), false);
        feed_body(&mut ex, LIST.as_bytes(), 100);
        ex.on_backend_answer(
            BackendId::at(1),
            answer(r#"{"jsonrpc":"2.0","id":5,"result":{"tools":[{"name":"create_issue"}]}}"#),
        );
        let (_, reply) = reply_of(&ex.on_backend_answer(
            BackendId::at(0),
            answer(r#"{"jsonrpc":"2.0","id":5,"result":{"tools":[{"name":"search"}]}}"#),
        ));
        assert_eq!(
            reply["result"]["tools"],
            json!([{"name": "github__search"}])
        );
    }

    #[test]
    fn prefixed_prompts_are_routed_and_renamed_like_tools() {
        let json = r#"{"routing_headers": {"enabled": true}, "backends": {"servers": [
            {"name": "github", "prefix_tools": false},
            {"name": "jira", "prefix_prompts": true}
        ]}}"#;
        let get = |name: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":8,"method":"prompts/get","params":{{"name":"{name}"}}}}"#
            )
        };
        let mut ex = Exchange::new(config(json), 0);
        ex.on_request_headers(&post(&[]), false);
        let step = feed_body(&mut ex, get("jira__triage").as_bytes(), 100);
        assert!(step.header_edits.contains(&set("x-mcp-backend", "jira")));
        assert_eq!(body_of(&step)["params"]["name"], "triage");
        // github publishes its prompts unprefixed, so they stay as they are.
        let mut ex = Exchange::new(config(json), 0);
        ex.on_request_headers(&post(&[]), false);
        let step = feed_body(&mut ex, get("review").as_bytes(), 100);
        assert!(step.header_edits.contains(&set("x-mcp-backend", "github")));
        assert!(step.body.is_none(), "nothing to rename");
        // Calls to tools of the unprefixed default backend keep their names too.
        let mut ex = Exchange::new(config(json), 0);
        ex.on_request_headers(&post(&[]), false);
        let step = feed_body(&mut ex, call("add").as_bytes(), 100);
        assert!(step.header_edits.contains(&set("x-mcp-backend", "github")));
        assert!(step.body.is_none());
        assert!(!step
            .header_edits
            .contains(&HeaderEdit::Remove("content-length".into())));
    }

    /// A completion of a prefixed prompt names it in `params.ref.name`: that
    /// is what is renamed (a stray `params.name` is left as it is), so the
    /// server completes the prompt that was judged and routed.
    #[test]
    fn completing_a_prefixed_prompt_renames_its_ref() {
        let json = r#"{"routing_headers": {"enabled": true}, "backends": {"servers": [
            {"name": "github", "prefix_tools": false},
            {"name": "jira", "prefix_prompts": true}
        ]}}"#;
        for (body, stray) in [
            (
                r#"{"jsonrpc":"2.0","id":9,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"jira__triage"},"argument":{"name":"a","value":"x"}}}"#,
                None,
            ),
            (
                r#"{"jsonrpc":"2.0","id":9,"method":"completion/complete","params":{"name":"jira__triage","ref":{"type":"ref/prompt","name":"jira__triage"},"argument":{"name":"a","value":"x"}}}"#,
                Some("jira__triage"),
            ),
        ] {
            let mut ex = Exchange::new(config(json), 0);
            ex.on_request_headers(&post(&[]), false);
            let step = feed_body(&mut ex, body.as_bytes(), 100);
            assert_eq!(step.action, Action::Continue, "{body}");
            assert!(step.header_edits.contains(&set("x-mcp-backend", "jira")));
            let sent = body_of(&step);
            assert_eq!(sent["params"]["ref"]["name"], "triage", "{body}");
            assert_eq!(sent["params"]["argument"]["name"], "a");
            assert_eq!(sent["params"].get("name").and_then(Value::as_str), stray);
        }
    }

    #[test]
    fn get_and_delete_go_to_the_default_backend() {
        let mut ex = routed(false);
        let step = ex.on_request_headers(&request("GET", "/mcp"), true);
        assert_eq!(step.header_edits, vec![set("x-mcp-backend", "github")]);
        let mut ex = routed(true);
        let step = ex.on_request_headers(&request("DELETE", "/mcp"), true);
        assert_eq!(step.header_edits, vec![set("x-mcp-backend", "github")]);
    }
}

/// The series defined when the configuration loads cover every label value
/// the request path can produce for them, so none is left for later.
mod series_at_load {
    use super::*;
    use crate::aggregate::Failure;
    use crate::auth::token::AuthFailure;
    use crate::reject::Reason;

    /// Every variant, by an exhaustive match: a new variant fails to
    /// compile here until it is listed.
    fn every_reason() -> Vec<Reason> {
        let all = Reason::ALL.to_vec();
        for r in &all {
            match r {
                Reason::ParseError
                | Reason::InvalidRequest
                | Reason::InvalidParams
                | Reason::BatchNotAllowed
                | Reason::HeaderMismatch
                | Reason::TooLarge
                | Reason::UnsupportedMediaType
                | Reason::UnsupportedEncoding
                | Reason::MethodNotAllowed
                | Reason::NotFound
                | Reason::BodyNotAllowed
                | Reason::AmbiguousPath
                | Reason::UnknownName
                | Reason::Unroutable
                | Reason::AmbiguousKey
                | Reason::ToolChanged
                | Reason::ToolUnpinned => {}
            }
        }
        all
    }

    #[test]
    fn label_lists_are_complete() {
        let reasons = every_reason();
        let labels: std::collections::HashSet<_> = reasons.iter().map(|r| r.label()).collect();
        assert_eq!(labels.len(), 17, "one label per reason");
        for failure in [
            AuthFailure::MissingToken,
            AuthFailure::Malformed("x"),
            AuthFailure::TooLarge,
            AuthFailure::AlgorithmNotAllowed,
            AuthFailure::UnknownKey,
            AuthFailure::NoKeys,
            AuthFailure::NoClock,
            AuthFailure::BadSignature,
            AuthFailure::Expired,
            AuthFailure::NotYetValid,
            AuthFailure::WrongIssuer,
            AuthFailure::WrongAudience,
            AuthFailure::MissingClaim("x".into()),
        ] {
            assert!(
                AuthFailure::LABELS.contains(&failure.label()),
                "{failure:?}"
            );
        }
        for failure in [
            Failure::Unreachable,
            Failure::HttpStatus(503),
            Failure::HttpStatus(404),
            Failure::Unreadable,
            Failure::RpcError,
            Failure::TooManyPages,
            Failure::TooLarge,
        ] {
            assert!(Failure::LABELS.contains(&failure.label()), "{failure:?}");
        }
    }

    #[test]
    fn what_the_configuration_knows_is_defined() {
        let names = |json: &str| -> Vec<String> {
            series_at_load(&config(json))
                .into_iter()
                .map(|(_, n)| n)
                .collect()
        };
        let plain = names("{}");
        assert!(plain.contains(&"mcp_rejections_total.reason=ambiguous_key".into()));
        assert!(plain.contains(&"mcp_requests_total.mcp_method_name=tools/call".into()));
        assert!(plain.contains(&"mcp_requests_total.mcp_method_name=_other".into()));
        assert!(!plain
            .iter()
            .any(|n| n.starts_with("mcp_auth_failures_total")));
        let with_backends =
            names(r#"{"backends": {"servers": [{"name": "github"}, {"name": "jira"}]}}"#);
        assert!(with_backends
            .contains(&"mcp_backend_failures_total.backend=jira.reason=unreachable".into()));
        // Unique: each is defined once.
        let unique: std::collections::HashSet<_> = with_backends.iter().collect();
        assert_eq!(unique.len(), with_backends.len());
    }
}
