//! Request parsing and classification, the mirrored-header check against the
//! body, and the exchange's whole request path (headers + body in any split).
//!
//! Invariant: a body the classifier accepts reads the same to a lenient
//! server. Every key a lenient decoder could take for a key the filter reads
//! is that key byte for byte, and such a server sees the filter's method and
//! tool name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_filter::classify::{classify, Classified, Message, Subject};
use mcp_filter::config::FilterConfig;
use mcp_filter::exchange::Exchange;
use mcp_filter::mirrored::MirroredHeaders;
use std::rc::Rc;

thread_local! {
    // Built once: loading it is not what this target fuzzes (see `config`).
    static CONFIG: Option<Rc<FilterConfig>> = FilterConfig::from_json(
        br#"{"routing_headers":{"enabled":true},"backends":{"servers":[{"name":"gh"},{"name":"jira","tools":{"exclude":["secret"]}}]}}"#,
    )
    .ok()
    .map(Rc::new);
}

/// The keys the filter reads, per object (listed here apart from the filter).
const MESSAGE_FIELDS: &[&str] = &["jsonrpc", "method", "id", "params", "result", "error"];
const PARAMS_FIELDS: &[&str] = &["name", "uri", "cursor", "_meta"];
const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

/// A key as a lenient server compares it, modelled on what decoders do (and
/// written apart from the filter's rule): characters decoders drop or ignore
/// removed (controls, whitespace, `_` and `-` as in `encoding/json/v2`, format
/// characters, combining marks), fullwidth forms narrowed, then each
/// character lowercased and uppercased with Rust's full mappings, so `İ`,
/// `ı`, `ſ`, the Kelvin sign, `ß` and ligatures fold as Go or ICU fold them.
fn lenient(key: &str) -> String {
    key.chars()
        .filter(|&c| !ignored(c))
        .map(narrow)
        .flat_map(char::to_lowercase)
        .filter(|&c| !ignored(c))
        .flat_map(char::to_uppercase)
        .collect()
}

fn ignored(c: char) -> bool {
    c.is_control()
        || c.is_whitespace()
        || matches!(c,
            '_' | '-' | '\u{ad}' | '\u{300}'..='\u{36f}' | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206f}'
            | '\u{fe00}'..='\u{fe0f}' | '\u{feff}')
}

fn narrow(c: char) -> char {
    match c {
        '\u{ff01}'..='\u{ff5e}' => char::from_u32(c as u32 - 0xfee0).unwrap_or(c),
        _ => c,
    }
}

/// The value a lenient server reads for `field` of `object`, asserting that
/// only `field` itself, spelled exactly, could be read as it.
fn lenient_get<'v>(
    object: &'v serde_json::Map<String, serde_json::Value>,
    field: &str,
) -> Option<&'v serde_json::Value> {
    let want = lenient(field);
    let mut found = None;
    for (key, value) in object {
        if lenient(key) == want {
            assert_eq!(
                key, field,
                "accepted: a lenient server reads {key:?} as {field:?}"
            );
            found = Some(value);
        }
    }
    found
}

fn assert_read_alike(value: &serde_json::Value, message: &Message) {
    let Some(object) = value.as_object() else {
        return;
    };
    for field in MESSAGE_FIELDS {
        lenient_get(object, field);
    }
    let method = lenient_get(object, "method").and_then(|m| m.as_str());
    assert_eq!(method, message.method.as_deref());
    let params = lenient_get(object, "params").and_then(|p| p.as_object());
    if let Some(params) = params {
        for field in PARAMS_FIELDS {
            lenient_get(params, field);
        }
        if let Some(meta) = lenient_get(params, "_meta").and_then(|m| m.as_object()) {
            lenient_get(meta, PROTOCOL_VERSION);
        }
    }
    if let Some(Subject::Tool(name)) = &message.subject {
        let lenient_name = params
            .and_then(|p| lenient_get(p, "name"))
            .and_then(|n| n.as_str());
        assert_eq!(
            lenient_name,
            Some(name.as_str()),
            "a lenient server runs another tool"
        );
    }
}

/// Checks the invariant for every message of an accepted body (a body a
/// `Value` cannot hold, e.g. a number out of `f64` range, is left out).
fn assert_lenient_server_agrees(body: &[u8], classified: &Classified) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    if classified.batch {
        let Some(elements) = value.as_array() else {
            return;
        };
        for (element, message) in elements.iter().zip(&classified.messages) {
            assert_read_alike(element, message);
        }
    } else if let Some(message) = classified.single() {
        assert_read_alike(&value, message);
    }
}

fuzz_target!(|data: &[u8]| {
    let (split, body) = data
        .split_first()
        .map_or((0, data), |(s, b)| (*s as usize, b));
    for batches in [false, true] {
        if let Ok(classified) = classify(body, batches) {
            assert_lenient_server_agrees(body, &classified);
            // Headers that claim what the body says, and that do not.
            let name = classified
                .single()
                .and_then(|m| m.subject.as_ref().map(|s| s.name().to_string()))
                .unwrap_or_default();
            let headers = [
                ("mcp-method", "tools/call"),
                ("mcp-name", name.as_str()),
                ("mcp-protocol-version", "2026-07-28"),
            ];
            let _ = MirroredHeaders::from_headers(headers).verify(&classified);
        }
    }
    let Some(config) = CONFIG.with(Clone::clone) else {
        return;
    };
    let mut exchange = Exchange::new(config, 0);
    let headers: Vec<(String, String)> = [
        (":method", "POST"),
        (":path", "/mcp"),
        ("content-type", "application/json"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    exchange.on_request_headers(&headers, body.is_empty());
    let cut = split.min(body.len());
    exchange.on_request_body(cut, false, || Some(body[..cut].to_vec()));
    exchange.on_request_body(body.len(), true, || Some(body.to_vec()));
});
