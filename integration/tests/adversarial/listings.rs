//! Answers that could carry a listing past the filter unfiltered: an id the
//! server echoes differently (npm's server-everything rounds integers above
//! 2^53), an encoded answer, one in another content type or status, one with
//! a key a lenient client reads as the listing (or escaped), an SSE stream
//! opened by a BOM, and listings replayed on a resumed GET stream. The client
//! must never see a tool the policy hides.

use crate::common::config_denying;
use anyhow::{Context, Result};
use mcp_filter_integration::everything::Everything;
use mcp_filter_integration::idp::Issuer;
use mcp_filter_integration::{envoy_bin, post_raw, Envoy, EnvoySetup};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

fn config(hidden: &str) -> Value {
    config_denying(Some(hidden))
}

/// The JSON-RPC messages of an answer, JSON or SSE.
fn messages(text: &str) -> Vec<Value> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return vec![v];
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rounded_id_from_a_javascript_server_still_gets_its_listing_filtered() -> Result<()> {
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    let Some(everything) = Everything::start()? else {
        return Ok(());
    };
    let issuer = Issuer::start().await?;
    let bearer = issuer.bearer("alice", json!({}));
    for allow_headers_stop in [true, false] {
        let mut setup = EnvoySetup::new(everything.port, config("echo"));
        issuer.serve(&mut setup);
        setup.allow_headers_stop = allow_headers_stop;
        let envoy = Envoy::start(&bin, &setup)?;
        let auth = ("authorization", bearer.as_str());
        let init = post_raw(
            &envoy.url(),
            &[auth],
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
        )
        .await?;
        assert_eq!(init.status, 200, "{}", init.text());
        let session = init
            .header("mcp-session-id")
            .context("server-everything gives a session")?
            .to_string();
        let with_session = [auth, ("mcp-session-id", session.as_str())];
        post_raw(
            &envoy.url(),
            &with_session,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        )
        .await?;
        for id in ["9007199254740993", "2"] {
            let list = post_raw(
                &envoy.url(),
                &with_session,
                format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list"}}"#),
            )
            .await?;
            let text = list.text();
            if id != "2" && list.status == 400 {
                // This SDK version refuses ids past 2^53 itself (zod's safe
                // integers): no listing at all, so nothing to leak.
                assert!(!text.contains("echo") && text.contains("error"), "{text}");
                continue;
            }
            assert_eq!(list.status, 200, "{text}");
            let answers = messages(&text);
            let answer = answers
                .iter()
                .find(|m| m.get("result").is_some())
                .with_context(|| format!("no result in {text}"))?;
            let names: Vec<&str> = answer["result"]["tools"]
                .as_array()
                .context("tools")?
                .iter()
                .filter_map(|t| t["name"].as_str())
                .collect();
            assert!(!names.is_empty(), "id {id}: {text}");
            assert!(
                !names.contains(&"echo"),
                "id {id} (flag {allow_headers_stop}): {names:?}"
            );
            if id != "2" {
                // The server did echo it rounded: the filter recognised it anyway.
                assert!(
                    text.contains("9007199254740992") || text.contains("9007199254740993"),
                    "{text}"
                );
            }
        }
    }
    Ok(())
}

/// An upstream answering every POST with one canned answer per scenario
/// (named by the `x-scenario` request header), recording what it received.
struct Canned {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

fn canned(scenario: &str) -> (String, Vec<u8>) {
    let listing =
        r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"add"},{"name":"secret"}]}}"#;
    let head = |status: &str, headers: &str, body: &[u8]| {
        let mut out = format!(
            "HTTP/1.1 {status}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body);
        out
    };
    let bytes = match scenario {
        "gzip" => head(
            "200 OK",
            "content-type: application/json\r\ncontent-encoding: gzip\r\n",
            listing.as_bytes(),
        ),
        "text" => head("200 OK", "content-type: text/plain\r\n", listing.as_bytes()),
        "none" => head("200 OK", "", listing.as_bytes()),
        "status" => head(
            "500 Internal Server Error",
            "content-type: application/json\r\n",
            listing.as_bytes(),
        ),
        "lenient-key" => head(
            "200 OK",
            "content-type: application/json\r\n",
            br#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"add"}],"Tools":[{"name":"secret"}]}}"#,
        ),
        // Chunked, ended by trailers: the filter's trailers callback must
        // not release the held listing unread.
        "trailers" => {
            let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
            out.extend_from_slice(format!("{:x}\r\n{listing}\r\n", listing.len()).as_bytes());
            out.extend_from_slice(b"0\r\nx-checksum: 1\r\n\r\n");
            out
        }
        // A UTF-8 BOM before the first event: a client's decoder drops
        // it, so the listing must be filtered as if it were not there.
        "bom-sse" => head(
            "200 OK",
            "content-type: text/event-stream\r\n",
            format!("\u{feff}data: {listing}\n\n").as_bytes(),
        ),
        // SSE to both SDKs (they look for the type's name), another type to
        // a strict reader.
        "sse-and-text" => head(
            "200 OK",
            "content-type: text/event-stream,text/plain\r\n",
            format!("data: {listing}\n\n").as_bytes(),
        ),
        // Not JSON by its type, the listing's key escaped.
        "escaped-key" => head(
            "200 OK",
            "content-type: text/plain\r\n",
            listing.replace("tools", "t\\u006fols").as_bytes(),
        ),
        // A resumed GET stream: the events the client missed, a listing
        // answer among them, and one a lenient client reads as a listing.
        "replay" => head(
            "200 OK",
            "content-type: text/event-stream\r\n",
            format!(
                "id: 1\ndata: {listing}\n\nid: 2\ndata: {}\n\n",
                r#"{"jsonrpc":"2.0","id":4,"result":{"Tools":[{"name":"secret"}]}}"#
            )
            .as_bytes(),
        ),
        "other-id" => head(
            "200 OK",
            "content-type: application/json\r\n",
            listing.replace(r#""id":2"#, r#""id":"2""#).as_bytes(),
        ),
        _ => head("200 OK", "content-type: application/json\r\n", listing.as_bytes()),
    };
    (scenario.to_string(), bytes)
}

impl Canned {
    fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream);
                    let mut head = String::new();
                    let mut length = 0;
                    let mut scenario = String::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if let Some(v) = lower.strip_prefix("x-scenario:") {
                            scenario = v.trim().to_string();
                        }
                        head.push_str(&lower);
                    }
                    let mut body = vec![0; length];
                    let _ = reader.read_exact(&mut body);
                    if let Ok(mut s) = seen.lock() {
                        s.push(head);
                    }
                    let (_, answer) = canned(&scenario);
                    let mut stream = reader.into_inner();
                    let _ = stream.write_all(&answer);
                });
            }
        });
        Ok(Self { port, requests })
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_listing_answer_passes_unread() -> Result<()> {
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    let upstream = Canned::start()?;
    let issuer = Issuer::start().await?;
    let bearer = issuer.bearer("alice", json!({}));
    for allow_headers_stop in [true, false] {
        let mut setup = EnvoySetup::new(upstream.port, config("secret"));
        issuer.serve(&mut setup);
        setup.allow_headers_stop = allow_headers_stop;
        setup.upstream_trailers = true;
        let envoy = Envoy::start(&bin, &setup)?;
        for scenario in [
            "trailers",
            "plain",
            "gzip",
            "text",
            "none",
            "status",
            "lenient-key",
            "other-id",
            "bom-sse",
            "sse-and-text",
            "escaped-key",
        ] {
            let r = post_raw(
                &envoy.url(),
                &[
                    ("authorization", bearer.as_str()),
                    ("x-scenario", scenario),
                    ("accept-encoding", "gzip, br"),
                ],
                r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
            )
            .await?;
            let text = r.text();
            let what = format!("{scenario} (flag {allow_headers_stop})");
            assert!(!text.contains("secret"), "{what}: the client saw {text}");
            let [v]: [Value; 1] = messages(&text)
                .try_into()
                .map_err(|_| anyhow::anyhow!("{what}: not one JSON-RPC message: {text}"))?;
            assert_eq!(v["jsonrpc"], "2.0", "{what}");
            if matches!(scenario, "plain" | "other-id" | "trailers" | "bom-sse") {
                assert_eq!(v["result"]["tools"], json!([{"name": "add"}]), "{what}");
            } else {
                assert!(
                    v["error"]["code"].is_i64() || v["result"].is_object(),
                    "{what}: {v}"
                );
            }
            assert!(r.header("content-encoding").is_none(), "{what}");
        }
        // A client resuming its stream gets the answers it missed replayed:
        // a listing among them is filtered like the POST's.
        let r = reqwest::Client::new()
            .get(envoy.url())
            .header("authorization", bearer.as_str())
            .header("accept", "text/event-stream")
            .header("accept-encoding", "gzip, br")
            .header("last-event-id", "0")
            .header("x-scenario", "replay")
            .send()
            .await?;
        let r = mcp_filter_integration::RawResponse::read(r).await?;
        let text = r.text();
        let what = format!("replay (flag {allow_headers_stop})");
        assert_eq!(r.status, 200, "{what}: {text}");
        assert!(!text.contains("secret"), "{what}: the client saw {text}");
        let replayed = messages(&text);
        assert_eq!(replayed.len(), 2, "{what}: {text}");
        assert_eq!(
            replayed[0]["result"]["tools"],
            json!([{"name": "add"}]),
            "{what}"
        );
        assert!(replayed[1]["error"]["code"].is_i64(), "{what}: {text}");
        let seen = upstream
            .requests
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        assert!(!seen.is_empty());
        for head in &seen {
            assert!(
                !head.contains("accept-encoding"),
                "the upstream was asked for an encoded answer: {head}"
            );
        }
    }
    Ok(())
}
