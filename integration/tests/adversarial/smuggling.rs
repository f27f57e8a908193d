//! Smuggled calls: duplicate keys, escapes, trailing data, bad UTF-8, nesting,
//! wrong types and media types, against a policy that denies `secret`.

use crate::common::config_denying;
use anyhow::Result;
use mcp_filter_integration::idp::Issuer;
use mcp_filter_integration::{envoy_bin, post_raw, Envoy, EnvoySetup, Peer, PeerMode};
use serde_json::{json, Value};

fn config() -> Value {
    let mut config = config_denying(Some("secret"));
    config["max_request_bytes"] = json!(8192);
    config
}

/// Whether a recorded body is (or hides) a call to `secret`.
fn calls_secret(body: &str) -> bool {
    let lowered = body.to_ascii_lowercase();
    lowered.contains("secret") || lowered.contains("\\u0065cret") || lowered.contains("s\\u")
}

#[tokio::test(flavor = "multi_thread")]
async fn no_smuggled_call_reaches_the_upstream() -> Result<()> {
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    let issuer = Issuer::start().await?;
    let peer = Peer::start(PeerMode::StatelessJson)?;
    let token = issuer.token("mallory", json!({}));
    let bearer = format!("Bearer {token}");
    let auth = ("authorization", bearer.as_str());

    let nested = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"secret","arguments":{}1{}}}}}"#,
        "[".repeat(300),
        "]".repeat(300)
    );
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"secret","arguments":{{"p":"{}"}}}}}}"#,
        "x".repeat(9000)
    );
    let mut invalid_utf8 =
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"secret","x":""#
            .to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe]);
    invalid_utf8.extend_from_slice(br#""}}"#);
    let body = |s: &str| s.as_bytes().to_vec();
    // (what, extra headers, body, expected status)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16);
    let cases: Vec<Case> = vec![
        (
            "plain denied call",
            vec![],
            body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"secret"}}"#),
            200,
        ),
        (
            "duplicate name",
            vec![],
            body(
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"secret"}}"#,
            ),
            400,
        ),
        (
            "duplicate method",
            vec![],
            body(
                r#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call","params":{"name":"secret"}}"#,
            ),
            400,
        ),
        (
            "duplicate params",
            vec![],
            body(
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"},"params":{"name":"secret"}}"#,
            ),
            400,
        ),
        (
            "escaped name",
            vec![],
            body(
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"s\u0065cret"}}"#,
            ),
            200,
        ),
        (
            "escaped method",
            vec![],
            body(
                r#"{"jsonrpc":"2.0","id":1,"method":"tools\u002fcall","params":{"name":"secret"}}"#,
            ),
            200,
        ),
        (
            "escaped duplicate key",
            vec![],
            body(
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","n\u0061me":"secret"}}"#,
            ),
            400,
        ),
        (
            "batch hiding the call",
            vec![],
            body(
                r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"secret"}}]"#,
            ),
            400,
        ),
        (
            "Mcp-Name disagrees",
            vec![
                ("mcp-method", "tools/call"),
                ("mcp-name", "echo"),
                ("mcp-protocol-version", "2026-07-28"),
            ],
            body(
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"secret","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
            ),
            400,
        ),
        (
            "gzip",
            vec![("content-encoding", "gzip")],
            body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"secret"}}"#),
            415,
        ),
        (
            "br",
            vec![("content-encoding", "br")],
            body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"secret"}}"#),
            415,
        ),
        ("over the limit", vec![], body(&big), 413),
        (
            "trailing data",
            vec![],
            body(
                r#"{"jsonrpc":"2.0","id":1,"method":"ping"}{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"secret"}}"#,
            ),
            400,
        ),
        ("invalid UTF-8", vec![], invalid_utf8, 400),
        ("deeply nested", vec![], body(&nested), 400),
        (
            "number as name",
            vec![],
            body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}"#),
            400,
        ),
        (
            "null as name",
            vec![],
            body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":null}}"#),
            400,
        ),
        (
            "object as name",
            vec![],
            body(
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":{"secret":1}}}"#,
            ),
            400,
        ),
        (
            "array as method",
            vec![],
            body(r#"{"jsonrpc":"2.0","id":1,"method":["tools/call"],"params":{"name":"secret"}}"#),
            400,
        ),
        (
            "text/plain",
            vec![("content-type", "text/plain")],
            body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"secret"}}"#),
            415,
        ),
    ];

    for allow_headers_stop in [true, false] {
        let mut setup = EnvoySetup::new(peer.port, config());
        issuer.serve(&mut setup);
        setup.allow_headers_stop = allow_headers_stop;
        let envoy = Envoy::start(&bin, &setup)?;
        peer.forget().await?;
        for (what, headers, body, status) in &cases {
            let mut all = vec![auth];
            all.extend(headers.iter().copied());
            let r = post_raw(&envoy.url(), &all, body.clone()).await?;
            assert_eq!(
                r.status,
                *status,
                "{what} (flag {allow_headers_stop}): {}",
                r.text()
            );
            let v = r.json();
            assert_eq!(v["jsonrpc"], "2.0", "{what}: {}", r.text());
            assert!(v["error"]["code"].is_i64(), "{what}: {v}");
        }
        // The denied call, sent one byte per chunk (no Content-Length).
        let call = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"secret"}}"#;
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            call.iter().map(|b| Ok(vec![*b])).collect();
        let stream = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
        let r = post_raw(&envoy.url(), &[auth], stream).await?;
        assert_eq!(r.status, 200, "byte-chunked: {}", r.text());
        assert_eq!(
            r.json()["error"]["code"],
            -32043,
            "byte-chunked: {}",
            r.text()
        );
        // GET and PUT carrying a body.
        let client = reqwest::Client::new();
        for method in [reqwest::Method::GET, reqwest::Method::PUT] {
            let r = client
                .request(method.clone(), envoy.url())
                .header("authorization", &bearer)
                .header("content-type", "application/json")
                .body(&call[..])
                .send()
                .await?;
            assert!(
                r.status().is_client_error(),
                "{method} with a body: {}",
                r.status()
            );
        }

        let received = peer.received().await?;
        for r in &received {
            assert!(
                !calls_secret(&r.body),
                "the upstream saw: {} {}",
                r.method,
                r.body
            );
        }
        // A legitimate call still works: nothing above trapped the VM.
        let ok = post_raw(
            &envoy.url(),
            &[auth],
            r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo","arguments":{"message":"ok"}}}"#,
        )
        .await?;
        assert_eq!(ok.status, 200, "{}", ok.text());
        assert!(
            envoy.log().lines().all(|l| !l.contains("panicked")),
            "{}",
            envoy.log()
        );
    }
    Ok(())
}
