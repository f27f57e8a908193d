//! `mcp-filter pin`: the `tool_pins` section that pins the tools a server
//! lists now, for an operator to review and paste into the configuration.
//!
//! The tools come from saved `tools/list` answers (one file per page) or
//! from a live server over Streamable HTTP (initialize, initialized, every
//! page of tools/list, then the session is ended). Each tool is kept as the
//! exact JSON the server sent: a typed SDK model would drop members the pin
//! covers. The digest is the core's (`mcp_filter::pins`).
//!
//! Must not: compute a digest itself, or judge anything.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::PathBuf;

/// The protocol version the live listing is asked under.
const PROTOCOL_VERSION: &str = "2025-11-25";
/// Pages read from a live server before giving up (a cursor loop).
const MAX_PAGES: usize = 100;

/// The tools of saved listing answers (`-`: standard input), in order.
pub fn from_files(paths: &[PathBuf]) -> Result<Vec<Value>> {
    let mut tools = Vec::new();
    for path in paths {
        let text = if path.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin()).context("reading standard input")?
        } else {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        };
        let answer: Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a JSON listing answer", path.display()))?;
        tools.extend(page_tools(&answer).with_context(|| path.display().to_string())?);
    }
    Ok(tools)
}

fn page_tools(answer: &Value) -> Result<Vec<Value>> {
    if let Some(error) = answer.get("error") {
        bail!("the listing is a JSON-RPC error: {error}");
    }
    let result = answer.get("result").unwrap_or(answer);
    match result.get("tools").and_then(Value::as_array) {
        Some(tools) => Ok(tools.clone()),
        None => bail!("no `tools` array (a tools/list answer, or its `result`)"),
    }
}

/// The section pinning `tools` for `server`.
pub fn section(tools: Vec<Value>, server: &str, unpinned: &str) -> Result<Value> {
    let mut section = mcp_filter::pins::pins_of_listing(&json!({ "tools": tools }), server)
        .map_err(anyhow::Error::msg)?;
    section["tool_pins"]["unpinned"] = Value::String(unpinned.into());
    Ok(section)
}

/// Every tool a live Streamable HTTP server lists, page by page.
pub fn from_server(url: &str, headers: &[String]) -> Result<Vec<Value>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(list_live(url, headers))
}

async fn list_live(url: &str, extra: &[String]) -> Result<Vec<Value>> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    let mut headers = reqwest::header::HeaderMap::new();
    for h in extra {
        let Some((name, value)) = h.split_once(':') else {
            bail!("--header {h:?}: expected `Name: value`");
        };
        headers.insert(
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())
                .with_context(|| format!("--header {h:?}"))?,
            value
                .trim()
                .parse()
                .with_context(|| format!("--header {h:?}"))?,
        );
    }
    let mut session: Option<String> = None;
    let post = |body: Value, session: Option<&str>| {
        let mut request = client
            .post(url)
            .headers(headers.clone())
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", PROTOCOL_VERSION)
            .body(body.to_string());
        if let Some(id) = session {
            request = request.header("mcp-session-id", id);
        }
        request.send()
    };
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": PROTOCOL_VERSION, "capabilities": {},
        "clientInfo": {"name": "mcp-filter pin", "version": env!("CARGO_PKG_VERSION")}}});
    let response = post(init, None)
        .await
        .with_context(|| format!("POST {url}"))?;
    if let Some(id) = response.headers().get("mcp-session-id") {
        session = Some(id.to_str().context("Mcp-Session-Id")?.to_string());
    }
    answer(response, 1).await.context("initialize")?;
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    post(initialized, session.as_deref()).await?;
    let mut tools = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0..MAX_PAGES {
        let id = 2 + page;
        let mut list = json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"});
        if let Some(c) = &cursor {
            list["params"] = json!({ "cursor": c });
        }
        let response = post(list, session.as_deref()).await?;
        let answer = answer(response, id).await.context("tools/list")?;
        tools.extend(page_tools(&answer)?);
        cursor = answer["result"]["nextCursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    if cursor.is_some() {
        bail!("tools/list still had a next page after {MAX_PAGES} pages");
    }
    if let Some(id) = &session {
        // Ending the session is a courtesy; a server may refuse it (405).
        let _ = client
            .delete(url)
            .headers(headers.clone())
            .header("mcp-session-id", id)
            .send()
            .await;
    }
    Ok(tools)
}

/// The JSON-RPC answer with `id`, from a JSON or SSE response.
async fn answer(response: reqwest::Response, id: usize) -> Result<Value> {
    let status = response.status();
    let sse = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"));
    let text = response.text().await?;
    if !status.is_success() {
        bail!(
            "HTTP {status}: {}",
            text.chars().take(300).collect::<String>()
        );
    }
    let messages: Vec<Value> = if sse {
        events(&text)
            .iter()
            .filter_map(|data| serde_json::from_str(data).ok())
            .collect()
    } else {
        vec![serde_json::from_str(&text).context("the answer is not JSON")?]
    };
    let Some(message) = messages.into_iter().find(|m| m["id"] == json!(id)) else {
        bail!("no answer with id {id}");
    };
    if let Some(error) = message.get("error") {
        bail!("JSON-RPC error: {error}");
    }
    Ok(message)
}

/// The data of each SSE event (its `data:` lines joined by newlines).
fn events(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut data: Vec<&str> = Vec::new();
    for line in text.lines().chain(std::iter::once("")) {
        if line.is_empty() {
            if !data.is_empty() {
                out.push(data.join("\n"));
                data.clear();
            }
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push(value.strip_prefix(' ').unwrap_or(value));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_are_read_line_by_line() {
        let text = "event: message\ndata: {\"a\":\ndata: 1}\n\n: comment\ndata:{\"b\":2}\r\n\r\n";
        assert_eq!(events(text), ["{\"a\":\n1}", "{\"b\":2}"]);
    }
}
