//! What a caller would see of a listing (`tools/list`, `prompts/list`,
//! `resources/list`, `resources/templates/list`): the server's answer run
//! through the filter's own exchange, renamed and filtered, and for each
//! item hidden the decision that hides it (asked of the same exchange as a
//! call to that item).
//!
//! Must not: filter or decide anything itself.

use crate::explain::{self, Who};
use anyhow::{bail, Result};
use mcp_filter::config::FilterConfig;
use mcp_filter::exchange::Action;
use serde_json::{json, Value};
use std::rc::Rc;

/// The listing's array key and the call that uses an item, per method.
fn shape(method: &str) -> Result<(&'static str, &'static str, &'static str)> {
    Ok(match method {
        "tools/list" => ("tools", "tools/call", "name"),
        "prompts/list" => ("prompts", "prompts/get", "name"),
        "resources/list" => ("resources", "resources/read", "uri"),
        "resources/templates/list" => ("resourceTemplates", "resources/read", "uriTemplate"),
        other => bail!("--method {other}: not a listing (tools/list, prompts/list, resources/list, resources/templates/list)"),
    })
}

pub fn list(config: &Rc<FilterConfig>, who: &Who, method: &str, answer: &[u8]) -> Result<Value> {
    let (key, use_method, id_field) = shape(method)?;
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": method}).to_string();
    let (steps, mut ex) = explain::run(config, who, request.as_bytes())?;
    if let Some(Action::Respond(reply)) = steps
        .iter()
        .map(|s| &s.action)
        .find(|a| matches!(a, Action::Respond(_)))
    {
        bail!(
            "the filter answers the {method} request itself (HTTP {}): {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
    }
    let headers = vec![
        (":status".to_string(), "200".to_string()),
        ("content-type".to_string(), "application/json".to_string()),
    ];
    let head = ex.on_response_headers(200, &headers);
    let body = ex.on_response_body(answer, true);
    let shown_bytes = body.body.or(head.body).unwrap_or_else(|| answer.to_vec());
    let shown: Value = serde_json::from_slice(&shown_bytes)?;
    let original: Value = serde_json::from_slice(answer)?;
    let ids = |v: &Value| -> Vec<String> {
        v["result"][key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item[id_field].as_str().map(str::to_string))
            .collect()
    };
    let shown_ids = ids(&shown);
    let mut hidden = Vec::new();
    if config.backends.is_none() {
        // Names are not rewritten: what is missing was hidden.
        for id in ids(&original)
            .into_iter()
            .filter(|i| !shown_ids.contains(i))
        {
            let (tool, prompt, uri) = match use_method {
                "tools/call" => (Some(id.as_str()), None, None),
                "prompts/get" => (None, Some(id.as_str()), None),
                _ => (None, None, Some(id.as_str())),
            };
            let why = explain::explain(
                config,
                who,
                &explain::request(use_method, tool, prompt, uri),
            )?;
            // Refused before the policy's say (a pin): the rejection's reason.
            let rejected = why["metrics"]
                .as_array()
                .into_iter()
                .flatten()
                .find_map(|m| {
                    m.as_str()?
                        .strip_prefix("mcp_rejections_total.reason=")
                        .map(str::to_string)
                });
            let (decision, reason) = match rejected {
                Some(reason) => (json!("refused"), json!(reason)),
                None => (why["decision"].clone(), why["reason"].clone()),
            };
            hidden.push(json!({"item": id, "decision": decision, "reason": reason}));
        }
    }
    Ok(json!({
        "shown": shown_ids,
        "hidden": hidden,
        "hidden_count": ids(&original).len().saturating_sub(shown_ids.len()),
        "answer": shown,
    }))
}

pub fn print(v: &Value) {
    for item in v["shown"].as_array().into_iter().flatten() {
        println!("shown:  {}", item.as_str().unwrap_or_default());
    }
    for item in v["hidden"].as_array().into_iter().flatten() {
        println!(
            "hidden: {} ({} by {})",
            item["item"].as_str().unwrap_or_default(),
            item["decision"].as_str().unwrap_or("-"),
            item["reason"].as_str().unwrap_or("-")
        );
    }
    if v["hidden"].as_array().is_none_or(Vec::is_empty) && v["hidden_count"].as_u64() > Some(0) {
        println!(
            "hidden: {} item(s) (renamed listing: see `explain` per tool)",
            v["hidden_count"]
        );
    }
}
