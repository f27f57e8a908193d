//! What the filter would do with one request from one caller, found by
//! running the filter's own [`Exchange`] on it (the same code Envoy runs:
//! no second implementation of any decision): the decision and the rule
//! that made it, the answer a refused request gets (with the scopes a
//! step-up asks for), the name the server would see, the backend, and the
//! metric samples it would count.
//!
//! Must not: decide anything itself; it only reads the exchange's steps.

use anyhow::{bail, Context, Result};
use mcp_filter::auth::{caller_from_claims, Authenticated, Authenticator};
use mcp_filter::config::FilterConfig;
use mcp_filter::exchange::{Action, Exchange, HeaderEdit, Step};
use mcp_filter::telemetry::{Labels, ToolLabels};
use serde_json::{json, Map, Value};
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Who asks: claims (as a verifier would have accepted them), or a token
/// verified with the configuration's keys (plus a JWKS file's).
pub enum Who {
    Claims(Map<String, Value>),
    Token {
        token: String,
        jwks: Option<Vec<u8>>,
    },
    Anonymous,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// The caller as the filter would authenticate it (`None`: the
/// configuration authenticates nobody).
fn authenticate(config: &FilterConfig, who: &Who) -> Result<Option<Authenticated>> {
    let Some(auth) = &config.auth else {
        return Ok(None);
    };
    Ok(Some(match who {
        Who::Claims(claims) => {
            let sub = claims
                .get("sub")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if sub.is_empty() {
                bail!("--claims needs a non-empty \"sub\"");
            }
            Authenticated::Caller(Rc::new(caller_from_claims(claims.clone(), &auth.tenancy)))
        }
        Who::Token { token, jwks } => {
            let mut authenticator = Authenticator::new(auth.clone());
            if let Some(jwks) = jwks {
                authenticator
                    .install_remote_jwks(jwks, now_ms())
                    .map_err(|e| anyhow::anyhow!("--jwks: {e}"))?;
            }
            let header = format!("Bearer {token}");
            authenticator.authenticate_bearer_with(Some(&header), &[], Some(now_ms()), false)
        }
        Who::Anonymous => Authenticated::Failed(mcp_filter::auth::token::AuthFailure::MissingToken),
    }))
}

/// A path the configuration treats as its MCP endpoint.
fn endpoint_path(config: &FilterConfig) -> String {
    config
        .endpoint
        .mcp_paths
        .first()
        .map_or_else(|| "/mcp".to_string(), |p| p.as_str().to_string())
}

/// The request headers a Streamable HTTP client sends.
fn request_headers(config: &FilterConfig, body: &[u8]) -> Vec<(String, String)> {
    [
        (":method", "POST".to_string()),
        (":path", endpoint_path(config)),
        (":authority", "mcp.example".to_string()),
        ("content-type", "application/json".to_string()),
        ("accept", "application/json, text/event-stream".to_string()),
        ("content-length", body.len().to_string()),
        ("authorization", "Bearer (explain)".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// An exchange over `config` whose authenticator answers `caller`.
pub fn exchange(config: &Rc<FilterConfig>, who: &Who) -> Result<Exchange> {
    let ex = Exchange::new(config.clone(), now_ms());
    Ok(match authenticate(config, who)? {
        Some(caller) => ex.with_authenticator(Box::new(move |_| caller.clone())),
        None => ex,
    })
}

/// Runs one request through a fresh exchange: the steps of its headers and
/// of its (whole) body, and the exchange (for its samples).
pub fn run(config: &Rc<FilterConfig>, who: &Who, body: &[u8]) -> Result<(Vec<Step>, Exchange)> {
    let mut ex = exchange(config, who)?;
    let headers = request_headers(config, body);
    let first = ex.on_request_headers(&headers, false);
    let mut steps = vec![first];
    if !matches!(steps[0].action, Action::Respond(_)) {
        let body = body.to_vec();
        steps.push(ex.on_request_body(body.len(), true, || Some(body)));
    }
    Ok((steps, ex))
}

fn property<'a>(steps: &'a [Step], name: &str) -> Option<&'a str> {
    steps
        .iter()
        .flat_map(|s| s.properties.iter())
        .rev()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
}

/// The explanation, as JSON (the text form is printed from it).
pub fn explain(config: &Rc<FilterConfig>, who: &Who, body: &[u8]) -> Result<Value> {
    let (steps, mut ex) = run(config, who, body)?;
    let answered = steps.iter().find_map(|s| match &s.action {
        Action::Respond(reply) => Some(reply.clone()),
        _ => None,
    });
    let forwarded_body = steps.iter().rev().find_map(|s| s.body.clone());
    let upstream: Value =
        serde_json::from_slice(forwarded_body.as_deref().unwrap_or(body)).unwrap_or(Value::Null);
    let header_set = |name: &str| {
        steps
            .iter()
            .flat_map(|s| s.header_edits.iter())
            .find_map(|e| match e {
                HeaderEdit::Set(k, v) if k.eq_ignore_ascii_case(name) => Some(v.clone()),
                _ => None,
            })
    };
    let mut labels = Labels::new(
        ToolLabels::new(&config.metrics.tool_labels, config.metrics.max_tool_labels),
        ToolLabels::new(&[], config.metrics.max_tenant_labels),
    );
    // The server's answer is not simulated: its outcome and duration are
    // counted when it comes, and left out here.
    let samples: Vec<String> = ex
        .finish(now_ms(), &mut labels)
        .iter()
        .map(|s| s.name.to_string())
        .filter(|n| {
            let (base, _) = mcp_filter::telemetry::split_stat_name(n);
            base != mcp_filter::telemetry::RESPONSES && base != mcp_filter::telemetry::DURATION
        })
        .collect();
    let mut out = json!({
        "forwarded": answered.is_none(),
        "decision": property(&steps, "mcp_decision"),
        "reason": property(&steps, "mcp_decision_reason"),
        "method": property(&steps, "mcp_method"),
        "name": property(&steps, "mcp_name"),
        "subject": property(&steps, "mcp_subject"),
        "tenant": property(&steps, "mcp_tenant"),
        "metrics": samples,
    });
    if let Some(reply) = answered {
        let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        let challenge = reply
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("www-authenticate"))
            .map(|(_, v)| v.clone());
        out["answer"] =
            json!({"status": reply.status, "body": body, "www_authenticate": challenge});
    } else {
        out["upstream_sees"] = json!({
            "name": upstream["params"]["name"].as_str().or(upstream["params"]["uri"].as_str()),
            "backend": property(&steps, "mcp_backend").map(str::to_string)
                .or_else(|| config.backends.as_ref().and_then(|b| header_set(&b.header))),
        });
    }
    Ok(out)
}

/// A JSON-RPC request for `method` about a tool, prompt or resource.
pub fn request(
    method: &str,
    tool: Option<&str>,
    prompt: Option<&str>,
    uri: Option<&str>,
) -> Vec<u8> {
    let params = match (tool, prompt, uri) {
        (Some(t), _, _) => json!({"name": t, "arguments": {}}),
        (_, Some(p), _) => json!({"name": p, "arguments": {}}),
        (_, _, Some(u)) => json!({"uri": u}),
        _ => json!({}),
    };
    json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        .to_string()
        .into_bytes()
}

/// The claims a `--claims` argument holds.
pub fn claims(text: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str::<Value>(text).context("--claims is not JSON")? {
        Value::Object(map) => Ok(map),
        _ => bail!("--claims must be a JSON object"),
    }
}

/// Prints an explanation for a reader.
pub fn print(e: &Value) {
    let get = |k: &str| e[k].as_str().unwrap_or("-").to_string();
    println!("request:  {} {}", get("method"), get("name"));
    println!("caller:   {} (tenant {})", get("subject"), get("tenant"));
    println!("decision: {} ({})", get("decision"), get("reason"));
    if let Some(answer) = e.get("answer") {
        println!(
            "answer:   HTTP {} {}",
            answer["status"], answer["body"]["error"]
        );
        if let Some(challenge) = answer["www_authenticate"].as_str() {
            println!("challenge: {challenge}");
        }
    } else {
        let up = &e["upstream_sees"];
        println!(
            "forwarded: the server sees `{}`{}",
            up["name"].as_str().unwrap_or("-"),
            up["backend"]
                .as_str()
                .map(|b| format!(" (backend {b})"))
                .unwrap_or_default()
        );
    }
    for m in e["metrics"].as_array().into_iter().flatten() {
        println!("counts:   {}", m.as_str().unwrap_or_default());
    }
}
