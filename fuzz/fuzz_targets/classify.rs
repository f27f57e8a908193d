//! Request parsing and classification, the mirrored-header check against the
//! body, and the exchange's whole request path (headers + body in any split).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_filter::classify::classify;
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

fuzz_target!(|data: &[u8]| {
    let (split, body) = data.split_first().map_or((0, data), |(s, b)| (*s as usize, b));
    for batches in [false, true] {
        if let Ok(classified) = classify(body, batches) {
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
    let Some(config) = CONFIG.with(Clone::clone) else { return };
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
