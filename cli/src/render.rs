//! Ready-to-paste snippets with a configuration embedded: an Envoy HTTP
//! filter entry (the .wasm or the dynamic module) and an Envoy Gateway
//! `EnvoyExtensionPolicy` (with the `sha256` of the built .wasm), so nobody
//! escapes JSON into YAML by hand.
//!
//! Must not: change the configuration: it is embedded as loaded and
//! checked by the core first (the caller does that).

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The configuration as one YAML string scalar (JSON-escaped, which YAML reads).
fn yaml_string(json: &str) -> String {
    serde_json::to_string(json).unwrap_or_default()
}

pub fn envoy_wasm(json: &str, wasm: &Path) -> String {
    format!(
        r#"- name: mcp_filter
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
    config:
      name: mcp_filter
      root_id: mcp_filter
      allow_on_headers_stop_iteration: true
      failure_policy: FAIL_RELOAD
      vm_config:
        runtime: envoy.wasm.runtime.v8
        code: {{ local: {{ filename: {wasm} }} }}
      configuration:
        "@type": type.googleapis.com/google.protobuf.StringValue
        value: {value}
"#,
        wasm = yaml_string(&wasm.display().to_string()),
        value = yaml_string(json),
    )
}

pub fn envoy_module(json: &str) -> String {
    format!(
        r#"# libmcp_filter.so must be in ENVOY_DYNAMIC_MODULES_SEARCH_PATH (Envoy 1.38-1.40).
- name: mcp_filter
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
    dynamic_module_config: {{ name: mcp_filter }}
    filter_name: mcp_filter
    filter_config:
      "@type": type.googleapis.com/google.protobuf.StringValue
      value: {value}
"#,
        value = yaml_string(json),
    )
}

pub fn envoy_gateway(json: &str, wasm: &Path, url: &str) -> Result<String> {
    let bytes = std::fs::read(wasm).with_context(|| {
        format!(
            "reading {} (for its sha256; --wasm names another)",
            wasm.display()
        )
    })?;
    let sha = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let config: serde_json::Value = serde_json::from_str(json)?;
    // JSON is YAML: the config block is the configuration itself.
    let config = serde_json::to_string(&config)?;
    Ok(format!(
        r#"apiVersion: gateway.envoyproxy.io/v1alpha1
kind: EnvoyExtensionPolicy
metadata:
  name: mcp-filter
spec:
  targetRefs:
    - group: gateway.networking.k8s.io
      kind: HTTPRoute
      name: mcp
  wasm:
    - name: mcp-filter
      rootID: mcp_filter
      failOpen: false
      code:
        type: HTTP
        http:
          url: {url}
          sha256: "{sha}"
      config: {config}
"#,
        url = yaml_string(url),
    ))
}
