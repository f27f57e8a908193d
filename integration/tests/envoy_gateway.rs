//! The Envoy Gateway examples (`examples/envoy-gateway/`): every manifest is
//! valid against the real CRD schemas in `../shared/crds` (plus the CEL rules
//! that matter, checked explicitly), every embedded filter `config` is one the
//! filter accepts, and the same config works in a real Envoy delivered the
//! way Envoy Gateway delivers it.

use anyhow::Result;
use mcp_filter::config::FilterConfig;
use mcp_filter_integration::crd;
use mcp_filter_integration::idp::{claims, Idp, SigningKey};
use mcp_filter_integration::{envoy_bin, post_raw, repo_root, Envoy, EnvoySetup, Peer, PeerMode};
use serde_json::{json, Value};
use std::path::PathBuf;

fn examples() -> Vec<(PathBuf, Vec<Value>)> {
    let dir = repo_root().join("examples/envoy-gateway");
    let mut out = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/envoy-gateway")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("read manifest");
        let docs = crd::documents(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out.push((path, docs));
    }
    out
}

fn filter_configs() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (path, docs) in examples() {
        for doc in docs {
            if doc["kind"] == "EnvoyExtensionPolicy" {
                for wasm in doc["spec"]["wasm"].as_array().into_iter().flatten() {
                    let name = format!("{}: {}", path.display(), doc["metadata"]["name"]);
                    out.push((name, wasm["config"].clone()));
                }
            }
        }
    }
    out
}

/// Kinds the examples use whose CRD schema is not in `shared/crds/` yet.
const AWAITING_SHARED_CRD: &[&str] = &["ClientTrafficPolicy"];

#[test]
fn every_manifest_is_valid_against_the_crd_schemas() {
    let Some(crds) = crd::Crds::load() else {
        return;
    };
    let mut checked = 0;
    for (path, docs) in examples() {
        for doc in &docs {
            let errors = crds.validate(doc);
            // Kinds whose CRD `shared/crds/` does not hold yet: checked by
            // schema as soon as it does, and meanwhile said loudly.
            let kind = doc["kind"].as_str().unwrap_or_default();
            if AWAITING_SHARED_CRD.contains(&kind)
                && errors.len() == 1
                && errors[0].starts_with("no CRD for")
            {
                eprintln!(
                    "NOT schema-checked: {} `{kind}` (shared/crds/ has no CRD for it yet; CEL rules still checked)",
                    path.display()
                );
            } else {
                assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
            }
            let errors = crd::cel_rules(doc);
            assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 9, "only {checked} manifests");
}

/// The HTTP example with its placeholder digest unquoted, as it once
/// shipped: YAML 1.1 (what Kubernetes reads) makes `000…0` the integer 0,
/// and the CRD wants a string.
#[test]
fn an_unquoted_digest_is_refused_naming_the_field() {
    let Some(crds) = crd::Crds::load() else {
        return;
    };
    let path = repo_root().join("examples/envoy-gateway/extension-policy-http.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let zeros = "0".repeat(64);
    let quoted = format!("sha256: \"{zeros}\"");
    assert!(text.contains(&quoted), "the example quotes its digest");
    let docs = crd::documents(&text.replace(&quoted, &format!("sha256: {zeros}"))).unwrap();
    let errors = crds.validate(&docs[0]);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(".spec.wasm[0].code.http.sha256: expected string")),
        "{errors:?}"
    );
}

/// Path normalization is on, and only the MCP path reaches the MCP server:
/// every match is `Exact`; the rule with a backend matches exactly the
/// filter's `mcp_paths`; the other matches are the metadata paths the filter
/// answers itself, on a rule with no backend.
#[test]
fn only_the_mcp_path_reaches_the_mcp_server_after_normalization() {
    let docs: Vec<Value> = examples().into_iter().flat_map(|(_, d)| d).collect();
    let route = docs
        .iter()
        .find(|d| d["kind"] == "HTTPRoute" && d["metadata"]["name"] == "mcp")
        .expect("the mcp HTTPRoute");
    let mut to_backend = Vec::new();
    let mut answered_by_filter = Vec::new();
    for rule in route["spec"]["rules"].as_array().unwrap() {
        let has_backend = rule["backendRefs"]
            .as_array()
            .is_some_and(|b| !b.is_empty());
        let matches = rule["matches"]
            .as_array()
            .expect("every rule matches paths");
        for m in matches {
            assert_eq!(m["path"]["type"], "Exact", "{m}");
            assert_eq!(m.as_object().unwrap().len(), 1, "{m}: path matches only");
            let path = m["path"]["value"].as_str().unwrap().to_string();
            if has_backend {
                to_backend.push(path);
            } else {
                answered_by_filter.push(path);
            }
        }
    }
    to_backend.sort();
    answered_by_filter.sort();
    let configs = filter_configs();
    assert!(configs.len() >= 2);
    for (name, config) in configs {
        let parsed = FilterConfig::from_json(config.to_string().as_bytes()).unwrap();
        let mut mcp_paths: Vec<String> = parsed
            .endpoint
            .mcp_paths
            .iter()
            .map(|p| p.as_str().to_string())
            .collect();
        mcp_paths.sort();
        assert_eq!(to_backend, mcp_paths, "{name}");
        let mut metadata = parsed.auth.as_ref().unwrap().metadata.paths.clone();
        metadata.sort();
        assert_eq!(answered_by_filter, metadata, "{name}");
    }

    let ctp: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "ClientTrafficPolicy")
        .collect();
    assert_eq!(ctp.len(), 1);
    let spec = &ctp[0]["spec"];
    assert_eq!(
        spec["targetRefs"],
        json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "mcp"}])
    );
    assert_eq!(spec["path"]["escapedSlashesAction"], "RejectRequest");
    assert_eq!(spec["path"]["disableMergeSlashes"], false);
}

#[test]
fn the_validator_catches_what_a_cluster_would_refuse() {
    let Some(crds) = crd::Crds::load() else {
        return;
    };
    let policy = |spec: Value| {
        json!({"apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "EnvoyExtensionPolicy",
               "metadata": {"name": "x"}, "spec": spec})
    };
    let typo = policy(
        json!({"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "r"}],
        "wasm": [{"rootId": "mcp_filter", "code": {"type": "HTTP", "http": {"url": "https://x/y.wasm"}}}]}),
    );
    assert!(
        !crds.validate(&typo).is_empty(),
        "rootId is not a field (rootID is)"
    );
    let bad_enum = policy(
        json!({"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "r"}],
        "wasm": [{"code": {"type": "Oci"}}]}),
    );
    assert!(!crds.validate(&bad_enum).is_empty());
    let no_http = policy(
        json!({"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "r"}],
        "wasm": [{"code": {"type": "HTTP"}}]}),
    );
    assert!(
        !crd::cel_rules(&no_http).is_empty(),
        "type HTTP needs code.http"
    );
    let ctp = json!({"apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "ClientTrafficPolicy",
        "metadata": {"name": "x"},
        "spec": {"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "r"}],
                 "path": {"escapedSlashesAction": "RejectRequest"}}});
    assert!(
        !crd::cel_rules(&ctp).is_empty(),
        "a ClientTrafficPolicy targets a Gateway or ListenerSet"
    );
    let mut bad = ctp.clone();
    bad["spec"]["targetRefs"][0]["kind"] = "Gateway".into();
    bad["spec"]["path"]["escapedSlashesAction"] = "Reject".into();
    assert!(!crds.validate(&bad).is_empty());
}

#[test]
fn every_embedded_filter_config_is_accepted_by_the_filter() {
    let configs = filter_configs();
    assert!(configs.len() >= 2);
    for (name, config) in configs {
        // Envoy Gateway delivers it as a StringValue holding this JSON.
        let parsed = FilterConfig::from_json(config.to_string().as_bytes());
        let parsed = parsed.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(parsed.auth.is_some(), "{name}");
        assert!(
            !parsed.routing_headers.enabled,
            "{name}: routing headers need a flag Envoy Gateway cannot set"
        );
    }
}

#[test]
fn the_gateway_stats_tags_are_the_envoy_yaml_ones() {
    let (_, docs) = examples()
        .into_iter()
        .find(|(p, _)| p.ends_with("envoy-proxy.yaml"))
        .expect("envoy-proxy.yaml");
    let bootstrap: Value = serde_yaml::from_str(
        docs[0]["spec"]["bootstrap"]["value"]
            .as_str()
            .unwrap_or_default(),
    )
    .expect("bootstrap YAML");
    let envoy_yaml: Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo_root().join("envoy.yaml")).unwrap())
            .unwrap();
    assert_eq!(
        bootstrap["stats_config"]["stats_tags"],
        envoy_yaml["stats_config"]["stats_tags"]
    );
    assert!(bootstrap["stats_config"]["stats_tags"]
        .as_array()
        .is_some_and(|t| t.len() >= 7));
}

/// The HTTP example's config in a real Envoy, delivered as Envoy Gateway
/// delivers it: StringValue JSON, V8, fail closed, no
/// `allow_on_headers_stop_iteration`; its JWKS cluster named as in the example.
#[tokio::test(flavor = "multi_thread")]
async fn the_envoy_gateway_config_works_in_a_real_envoy() -> Result<()> {
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    let (_, config) = filter_configs()
        .into_iter()
        .find(|(name, _)| name.contains("extension-policy-http"))
        .expect("the HTTP example");
    let issuer = config["auth"]["issuers"][0].clone();
    let audience = config["auth"]["audiences"][0].clone();
    let cluster = config["auth"]["remote_jwks"]["cluster"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let key = SigningKey::generate("eg-1")?;
    let idp = Idp::start(&[&key]).await?;
    let peer = Peer::start(PeerMode::Stateful)?;
    // The IdP serves /jwks; the example fetches /.well-known/jwks.json.
    let mut config = config.clone();
    config["auth"]["remote_jwks"]["path"] = "/jwks".into();
    let mut setup = EnvoySetup::new(peer.port, config).as_envoy_gateway_delivers();
    setup.named_clusters.push((cluster, idp.port));
    let envoy = Envoy::start(&bin, &setup)?;

    let token = key.sign(&claims(
        "alice",
        json!({"iss": issuer, "aud": audience, "tenant": "acme", "scope": "mcp:tools"}),
    ));
    let auth = format!("Bearer {token}");
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let r = post_raw(&envoy.url(), &[("authorization", &auth)], init).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let session = r.header("mcp-session-id").unwrap_or_default().to_string();
    let h = [
        ("authorization", auth.as_str()),
        ("mcp-session-id", session.as_str()),
    ];
    let call = |tool: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"{tool}","arguments":{{"a":1,"b":2,"n":1}}}}}}"#
        )
    };
    let r = post_raw(&envoy.url(), &h, call("add")).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains(r#""text":"3""#), "{}", r.text());
    let r = post_raw(&envoy.url(), &h, call("big")).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], -32043, "{}", r.text());
    let list = post_raw(
        &envoy.url(),
        &h,
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#,
    )
    .await?;
    assert!(
        list.text().contains(r#""name":"add""#) && !list.text().contains(r#""name":"big""#),
        "{}",
        list.text()
    );
    let called = peer
        .received()
        .await?
        .iter()
        .filter(|r| r.rpc_method().as_deref() == Some("tools/call"))
        .count();
    assert_eq!(called, 1, "the denied call never reached the upstream");

    // The metadata paths the HTTPRoute sends to no backend: the filter
    // answers them itself.
    let client = reqwest::Client::new();
    let base = envoy.url().trim_end_matches("/mcp").to_string();
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let r = client.get(format!("{base}{path}")).send().await?;
        assert_eq!(r.status(), 200, "{path}");
        let doc: Value = r.json().await?;
        assert_eq!(doc["resource"], "https://mcp.example.com/mcp", "{path}");
    }
    let seen = peer.received().await?;
    assert!(
        seen.iter().all(|r| !r.path.contains("well-known")),
        "the upstream saw a metadata request"
    );
    Ok(())
}
