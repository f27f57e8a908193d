//! The Grafana dashboard cannot drift: after traffic that exercises every
//! panel (calls, a denial, an authentication failure, a refused request, an
//! error), every metric and label the dashboard queries is in a real Envoy's
//! scrape, fetched the way the shipped Prometheus snippet fetches it.

use anyhow::Result;
use mcp_filter_integration::idp::{secured_config, Issuer};
use mcp_filter_integration::scrape::Scrape;
use mcp_filter_integration::{envoy_bin, post_raw, repo_root, Envoy, EnvoySetup, Peer, PeerMode};
use regex::Regex;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// (metric, labels it is grouped or filtered by) for every dashboard query.
fn dashboard_queries() -> Vec<(String, BTreeSet<String>, String)> {
    let path = repo_root().join("examples/observability/grafana-dashboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let metric = Regex::new(r"\b(mcp_[a-z_]+)\s*[\[{]").unwrap();
    let grouped = Regex::new(r"by \(([^)]*)\)").unwrap();
    let matcher = Regex::new(r"\{([^}]*)\}").unwrap();
    let label = Regex::new(r"([a-z_]+)\s*(=~|!~|!=|=)").unwrap();
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap().to_string();
            let mut labels = BTreeSet::new();
            for c in grouped.captures_iter(&expr) {
                labels.extend(
                    c[1].split(',')
                        .map(|l| l.trim().to_string())
                        .filter(|l| l != "le"),
                );
            }
            for c in matcher.captures_iter(&expr) {
                labels.extend(label.captures_iter(&c[1]).map(|l| l[1].to_string()));
            }
            for m in metric.captures_iter(&expr) {
                out.push((m[1].to_string(), labels.clone(), expr.clone()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_the_dashboard_queries_is_in_a_real_scrape() -> Result<()> {
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    let issuer = Issuer::start().await?;
    let peer = Peer::start(PeerMode::StatelessJson)?;
    // A pin `big`'s definition does not match: the listing below hides it
    // and counts the mismatch (the policy denies `big` anyway).
    let mut config = secured_config();
    config["tool_pins"] = json!({"unpinned": "allow",
        "servers": {"default": {"big": format!("sha256:{}", "0".repeat(64))}}});
    let mut setup = EnvoySetup::new(peer.port, config);
    issuer.serve(&mut setup);
    let envoy = Envoy::start(&bin, &setup)?;

    // Series whose labels the configuration knows are defined at load: a
    // dashboard shows them at 0 before any traffic. (The module on Envoy
    // 1.38/1.39 cannot touch a metric outside a request: there they appear
    // with the first one, as the README says.)
    let before = envoy.prometheus().await?;
    let at_load = mcp_filter_integration::Shell::from_env() == mcp_filter_integration::Shell::Wasm
        || mcp_filter_integration::envoy_version(&bin) >= Some((1, 40, 0));
    for (name, label) in [
        ("mcp_rejections_total", ("reason", "ambiguous_key")),
        ("mcp_auth_failures_total", ("reason", "expired")),
        ("mcp_requests_total", ("mcp_method_name", "tools/call")),
    ] {
        if !at_load {
            break;
        }
        assert_eq!(
            before.value(name, &[label]),
            Some(0.0),
            "{name}: {}",
            before.text
        );
    }

    let auth = issuer.bearer("alice", json!({"tenant": "acme", "scope": "mcp:tools"}));
    let h = [("authorization", auth.as_str())];
    let call = |tool: &str, args: Value| {
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": tool, "arguments": args}})
        .to_string()
    };
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    assert_eq!(post_raw(&envoy.url(), &h, list).await?.status, 200);
    assert_eq!(
        post_raw(&envoy.url(), &h, call("add", json!({"a": 1, "b": 2})))
            .await?
            .status,
        200
    );
    // An error answered by the server (missing argument), a denial, an
    // authentication failure and a refused (unparseable) request.
    post_raw(&envoy.url(), &h, call("echo", json!({}))).await?;
    let denied = post_raw(&envoy.url(), &h, call("big", json!({"n": 1}))).await?;
    assert_eq!(denied.json()["error"]["code"], -32043, "{}", denied.text());
    assert_eq!(post_raw(&envoy.url(), &[], list).await?.status, 401);
    assert_eq!(post_raw(&envoy.url(), &h, "{not json").await?.status, 400);

    // Scrape as prometheus-scrape.yaml does (its `filter` parameter).
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let text = reqwest::get(format!(
        "http://{}/stats/prometheus?filter=mcp_",
        envoy.admin
    ))
    .await?
    .text()
    .await?;
    let scrape = Scrape::parse(&text);
    let queries = dashboard_queries();
    assert!(queries.len() >= 8, "{queries:?}");
    for (metric, labels, expr) in queries {
        let series: Vec<_> = scrape.series.iter().filter(|s| s.name == metric).collect();
        assert!(
            !series.is_empty(),
            "`{metric}` (in `{expr}`) is not in the scrape:\n{text}"
        );
        for label in &labels {
            assert!(
                series.iter().any(|s| s.labels.contains_key(label)),
                "no `{metric}` series has label `{label}` (in `{expr}`):\n{text}"
            );
        }
    }
    Ok(())
}

/// A worker defines at most `metrics.max_series` series; past that, samples
/// fold into each metric's all-`_other` series (nothing is lost, nothing new
/// is minted). And a pass-through beside `auth` is warned about at load.
#[tokio::test(flavor = "multi_thread")]
async fn metric_series_are_bounded_and_a_pass_through_is_warned_about() -> Result<()> {
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    let issuer = Issuer::start().await?;
    let peer = Peer::start(PeerMode::StatelessJson)?;
    let mut config = secured_config();
    config["metrics"] = json!({"max_series": 6, "tool_labels": ["add", "echo"]});
    config["non_mcp_traffic"] = json!("pass");
    let mut setup = EnvoySetup::new(peer.port, config);
    issuer.serve(&mut setup);
    let envoy = Envoy::start(&bin, &setup)?;
    assert!(
        envoy.logged("configuration warning: non_mcp_traffic: pass"),
        "{}",
        envoy.log()
    );
    let auth = issuer.bearer("alice", json!({"tenant": "acme", "scope": "mcp:tools"}));
    let h = [("authorization", auth.as_str())];
    for i in 0..6 {
        let tool = if i % 2 == 0 { "add" } else { "echo" };
        let args = if tool == "add" {
            json!({"a": 1, "b": 2})
        } else {
            json!({"message": "m"})
        };
        let call = json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
            "params": {"name": tool, "arguments": args}});
        assert_eq!(
            post_raw(&envoy.url(), &h, call.to_string()).await?.status,
            200
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let text = reqwest::get(format!(
        "http://{}/stats/prometheus?filter=mcp_",
        envoy.admin
    ))
    .await?
    .text()
    .await?;
    let scrape = Scrape::parse(&text);
    let defined: BTreeSet<String> = scrape
        .series
        .iter()
        .filter(|s| s.name.starts_with("mcp_") && !s.name.ends_with("_bucket"))
        .map(|s| {
            format!(
                "{}{:?}",
                s.name.trim_end_matches("_sum").trim_end_matches("_count"),
                s.labels
            )
        })
        .collect();
    let folded = scrape
        .series
        .iter()
        .filter(|s| s.labels.values().all(|v| v == "_other") && !s.labels.is_empty())
        .count();
    assert!(folded > 0, "nothing folded into _other: {text}");
    // Six own series at most, plus one folded series per metric.
    assert!(defined.len() <= 6 + 8, "{defined:#?}");
    Ok(())
}
