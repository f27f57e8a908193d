//! Properties of the core over generated inputs (proptest), through the
//! same entry points the proxy-wasm shell uses. Native only: under wasm32 the
//! crate links its proxy-wasm shell, whose host imports only Envoy provides
//! (the unit tests cover the core under WASI).
#![cfg(not(target_arch = "wasm32"))]
// Test code: a panic is a failed case.
#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use mcp_filter::auth::Authenticated;
use mcp_filter::backends::{Named, RawBackends};
use mcp_filter::config::FilterConfig;
use mcp_filter::exchange::{Action, Exchange, Step};
use mcp_filter::policy::Caller;
use proptest::prelude::*;
use serde_json::json;
use std::rc::Rc;

fn post() -> Vec<(String, String)> {
    [
        (":method", "POST"),
        (":path", "/mcp"),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Cuts `bytes` at the given fractions (any chunking, empty chunks included).
fn chunks(bytes: &[u8], cuts: &[f64]) -> Vec<Vec<u8>> {
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|f| ((bytes.len() as f64) * f) as usize)
        .collect();
    at.push(0);
    at.push(bytes.len());
    at.sort_unstable();
    at.windows(2).map(|w| bytes[w[0]..w[1]].to_vec()).collect()
}

/// Bodies a client or server may send: valid MCP messages, JSON of other
/// shapes, SSE framings of them, and arbitrary bytes.
fn any_body() -> impl Strategy<Value = Vec<u8>> {
    let message = prop_oneof![
        "[a-z_/]{0,12}".prop_map(|m| json!({"jsonrpc":"2.0","id":1,"method":m,"params":{"name":"add"}}).to_string()),
        "[ -~]{0,40}".prop_map(|t| json!({"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":t}]}}).to_string()),
        Just(r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"b"}],"nextCursor":"c"}}"#.to_string()),
    ];
    prop_oneof![
        message.clone().prop_map(String::into_bytes),
        (message, prop_oneof![Just("\n"), Just("\r\n"), Just("\r")]).prop_map(|(m, eol)| {
            format!("id: 0{eol}data:{eol}{eol}event: message{eol}data: {m}{eol}{eol}").into_bytes()
        }),
        proptest::collection::vec(any::<u8>(), 0..200),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Observe-only (`{}`) never changes a byte, whatever the body and the
    /// chunking: requests it accepts go on as they came, responses flow through.
    #[test]
    fn observe_only_is_the_identity(
        request in any_body(),
        response in any_body(),
        sse in any::<bool>(),
        cuts in proptest::collection::vec(0.0f64..1.0, 0..6),
    ) {
        let mut ex = Exchange::new(Rc::new(FilterConfig::default()), 0);
        let step = ex.on_request_headers(&post(), request.is_empty());
        prop_assert!(step.body.is_none() && step.header_edits.is_empty());
        let mut buffered = 0;
        for (i, piece) in chunks(&request, &cuts).iter().enumerate() {
            buffered += piece.len();
            let done = i == chunks(&request, &cuts).len() - 1;
            let step = ex.on_request_body(buffered, done, || Some(request[..buffered].to_vec()));
            prop_assert!(step.body.is_none(), "a request body was rewritten");
            prop_assert!(step.header_edits.is_empty());
            if matches!(step.action, Action::Respond(_)) {
                return Ok(());
            }
        }
        let content_type = if sse { "text/event-stream" } else { "application/json" };
        let step = ex.on_response_headers(200, &[("content-type".into(), content_type.into())]);
        prop_assert!(step.header_edits.is_empty());
        let pieces = chunks(&response, &cuts);
        for (i, piece) in pieces.iter().enumerate() {
            let step = ex.on_response_body(piece, i == pieces.len() - 1);
            prop_assert_eq!(step, Step::from(Action::Continue));
        }
    }

    /// Publishing an upstream name and resolving the public name gives back
    /// the same backend and upstream name, for any name and naming config.
    #[test]
    fn rename_then_reverse_is_the_identity(
        upstream in "[A-Za-z0-9_.-]{1,40}",
        prefix in "[a-z]{1,6}",
        separator in prop_oneof![Just("__"), Just("."), Just("-")],
        alias in "[a-z]{1,8}",
        backend in 0usize..3,
    ) {
        let backends = serde_json::from_value::<RawBackends>(json!({"servers": [
            {"name": "main", "prefix_tools": false, "tools": {"aliases": {format!("x{alias}"): "aliased"}}},
            {"name": "two", "prefix": format!("{prefix}A"), "separator": separator, "prefix_prompts": true},
            {"name": "three", "prefix": format!("{prefix}B"), "separator": separator, "prefix_prompts": true},
        ]}))
        .map_err(|e| TestCaseError::fail(e.to_string()))?
        .compile()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let backend = backends.ids().nth(backend).unwrap_or_else(|| unreachable!());
        for kind in [Named::Tool, Named::Prompt] {
            for name in [upstream.as_str(), "aliased"] {
                if let Some(public) = backends.publish(kind, backend, name) {
                    let route = backends.resolve(kind, &public);
                    prop_assert!(route.is_some(), "{} does not resolve", public);
                    let route = route.unwrap_or_else(|| unreachable!());
                    prop_assert_eq!((route.backend, route.upstream.as_ref()), (backend, name));
                }
            }
        }
    }

    /// What a listing shows and what a call may do come from one decision:
    /// for any policy over public names and any tool, the tool is listed
    /// exactly when calling it is forwarded.
    #[test]
    fn listed_exactly_when_callable(
        allow in proptest::collection::vec("[a-c*]{1,3}", 0..4),
        deny in proptest::collection::vec("[a-c*]{1,3}", 0..3),
        tool in "[a-c]{1,3}",
        exclude in "[a-c*]{1,2}",
    ) {
        let mut rules: Vec<serde_json::Value> = deny
            .iter()
            .map(|g| json!({"tools": [format!("gh__{g}")], "effect": "deny"}))
            .collect();
        rules.extend(allow.iter().map(|g| json!({"tools": [format!("gh__{g}")], "effect": "allow"})));
        rules.push(json!({"methods": ["tools/list"], "effect": "allow"}));
        let config = json!({
            "routing_headers": {"enabled": true},
            "backends": {"servers": [{"name": "gh", "tools": {"exclude": [exclude]}}]},
            "auth": {
                "issuers": ["https://idp"], "audiences": ["https://mcp"],
                "shared_secret": {"base64": "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk="},
                "resource_metadata": {"resource": "https://mcp", "authorization_servers": ["https://idp"]}
            },
            "policy": {"rules": rules}
        });
        let config = Rc::new(
            FilterConfig::from_json(config.to_string().as_bytes())
                .map_err(|e| TestCaseError::fail(e.to_string()))?,
        );
        let caller = Authenticated::Caller(Rc::new(Caller { subject: "alice".into(), ..Caller::default() }));
        let exchange = || {
            let caller = caller.clone();
            Exchange::new(config.clone(), 0).with_authenticator(Box::new(move |_| caller.clone()))
        };

        let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name": format!("gh__{tool}")}}).to_string();
        let mut ex = exchange();
        ex.on_request_headers(&post(), false);
        let step = ex.on_request_body(call.len(), true, || Some(call.clone().into_bytes()));
        let callable = step.action == Action::Continue;

        let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
        let mut ex = exchange();
        ex.on_request_headers(&post(), false);
        let step = ex.on_request_body(list.len(), true, || Some(list.as_bytes().to_vec()));
        prop_assert_eq!(step.action, Action::Continue);
        ex.on_response_headers(200, &[("content-type".into(), "application/json".into())]);
        let answer = json!({"jsonrpc":"2.0","id":2,"result":{"tools":[{"name": tool}]}}).to_string();
        let step = ex.on_response_body(answer.as_bytes(), true);
        let out: serde_json::Value = serde_json::from_slice(&step.body.unwrap_or_default())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let listed = out["result"]["tools"].as_array().is_some_and(|t| !t.is_empty());
        prop_assert_eq!(listed, callable, "tool {} (rules {:?}, exclude {})", tool, rules, exclude);
    }
}
