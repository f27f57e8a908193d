//! Key spellings a lenient decoder maps onto a key the filter reads: a Go MCP
//! server matches JSON keys to struct fields case-insensitively
//! (CVE-2026-27896), a parser of the same SDK took `name\u0000` for `name`
//! (GHSA-q382-vc8q-7jhj). Each is refused with 400 / -32600
//! (`ambiguous_key`) before the upstream sees a byte.

use crate::common::{config_denying, nothing_reached};
use anyhow::Result;
use mcp_filter_integration::idp::Issuer;
use mcp_filter_integration::{envoy_bin, post_raw, Envoy, EnvoySetup, Peer, PeerMode};
use serde_json::{json, Value};

fn config() -> Value {
    let mut config = config_denying(Some("secret"));
    config["policy"]["rules"] = json!([
        {"name": "no-secret", "tools": ["secret"], "effect": "deny"},
        {"name": "no-secret-file", "resources": ["file:///secret"], "effect": "deny"},
        {"name": "tools", "tools": ["*"], "effect": "allow"},
        {"name": "files", "resources": ["*"], "effect": "allow"},
    ]);
    config
}

/// `params` of a `tools/call` the filter reads as a call to `echo`.
fn call(params: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{params}}}"#)
}

/// (what, body): bodies a lenient server reads differently from the filter.
fn cases() -> Vec<(&'static str, String)> {
    vec![
        (
            "Name beside name (Go runs `secret`)",
            call(r#"{"name":"echo","Name":"secret"}"#),
        ),
        ("NAME alone", call(r#"{"NAME":"secret"}"#)),
        (
            "Name spelled with escapes",
            call(r#"{"name":"echo","\u004e\u0041\u004d\u0045":"secret"}"#),
        ),
        (
            "trailing NUL",
            call(r#"{"name":"echo","name\u0000":"secret"}"#),
        ),
        (
            "NUL inside",
            call(r#"{"name":"echo","nam\u0000e":"secret"}"#),
        ),
        (
            "spaces a decoder trims",
            call(r#"{"name":"echo"," name ":"secret"}"#),
        ),
        (
            "zero-width space",
            call(r#"{"name":"echo","na\u200bme":"secret"}"#),
        ),
        (
            "underscore (encoding/json/v2 case:ignore)",
            call(r#"{"name":"echo","na_me":"secret"}"#),
        ),
        (
            // No key the filter reads has a `k`: the Kelvin sign stands for an
            // unknown letter, as every character outside ASCII does.
            "Kelvin sign",
            call(r#"{"name":"echo","na\u212ae":"secret"}"#),
        ),
        (
            "fullwidth letters",
            call(r#"{"name":"echo","\uff4e\uff41\uff4d\uff45":"secret"}"#),
        ),
        (
            "paramſ (long s folds to s)",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"},"paramſ":{"name":"secret"}}"#.into(),
        ),
        (
            "param\\u017f escaped",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"},"param\u017f":{"name":"secret"}}"#.into(),
        ),
        (
            "Params beside params",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"},"Params":{"name":"secret"}}"#.into(),
        ),
        (
            "Method: a ping to the filter, a tool call to Go",
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","Method":"tools/call","params":{"name":"secret"}}"#.into(),
        ),
        (
            "URI beside uri",
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///ok","URI":"file:///secret"}}"#.into(),
        ),
        (
            "urı (dotless i: Go's ToUpper(ToLower) gives I)",
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///ok","ur\u0131":"file:///secret"}}"#.into(),
        ),
        (
            "Id beside id",
            r#"{"jsonrpc":"2.0","id":1,"Id":2,"method":"ping"}"#.into(),
        ),
        (
            "_meta protocol version in another case",
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"io.modelcontextprotocol/protocolversion":"2025-06-18"}}}"#.into(),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_a_lenient_server_reads_differently_are_refused() -> Result<()> {
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    let issuer = Issuer::start().await?;
    let peer = Peer::start(PeerMode::StatelessJson)?;
    let token = issuer.token("mallory", json!({}));
    let bearer = format!("Bearer {token}");
    let auth = ("authorization", bearer.as_str());
    let cases = cases();

    for allow_headers_stop in [true, false] {
        let mut setup = EnvoySetup::new(peer.port, config());
        issuer.serve(&mut setup);
        setup.allow_headers_stop = allow_headers_stop;
        let envoy = Envoy::start(&bin, &setup)?;
        peer.forget().await?;
        for (what, body) in &cases {
            let r = post_raw(&envoy.url(), &[auth], body.clone()).await?;
            assert_eq!(
                r.status,
                400,
                "{what} (flag {allow_headers_stop}): {}",
                r.text()
            );
            let v = r.json();
            assert_eq!(v["jsonrpc"], "2.0", "{what}: {v}");
            assert_eq!(v["error"]["code"], -32600, "{what}: {v}");
            let message = v["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("ambiguous key"), "{what}: {v}");
        }
        nothing_reached(&peer, &envoy, "ambiguous_key", cases.len()).await?;

        // A legitimate call still works: nothing above trapped the VM.
        let ok = post_raw(
            &envoy.url(),
            &[auth],
            call(r#"{"name":"echo","arguments":{"message":"ok"}}"#),
        )
        .await?;
        assert_eq!(ok.status, 200, "{}", ok.text());
        assert_eq!(peer.received().await?.len(), 1);
        assert!(
            envoy.log().lines().all(|l| !l.contains("panicked")),
            "{}",
            envoy.log()
        );
    }
    Ok(())
}
