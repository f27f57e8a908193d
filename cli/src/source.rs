//! Where a filter configuration is found: a JSON file, an Envoy bootstrap
//! or listener YAML (the wasm filter's `configuration` or the dynamic
//! module's `filter_config`), or an Envoy Gateway `EnvoyExtensionPolicy`
//! (`spec.wasm[].config`). Each is handed to the core's own loader.
//!
//! Must not: interpret the configuration (the core does), or guess: a file
//! holding no filter configuration is an error naming what was looked for.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_yaml::Value;
use std::path::Path;

/// A filter configuration found in a file: where, and its JSON text.
pub struct Found {
    pub place: String,
    pub json: String,
}

/// Every filter configuration in `path` (`-`: standard input, JSON).
pub fn configs(path: &Path) -> Result<Vec<Found>> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading standard input")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    let name = path.display().to_string();
    if text.trim_start().starts_with('{') {
        return Ok(vec![Found {
            place: name,
            json: text,
        }]);
    }
    let mut found = Vec::new();
    for (n, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let doc = Value::deserialize(doc).with_context(|| format!("{name}: YAML document {n}"))?;
        walk(&doc, &format!("{name}#{n}"), &mut found)?;
    }
    if found.is_empty() {
        bail!(
            "{name}: no mcp-filter configuration found (looked for a wasm filter's \
             `configuration`, a dynamic module's `filter_config`, and an \
             EnvoyExtensionPolicy's `spec.wasm[].config`)"
        );
    }
    Ok(found)
}

/// The JSON of an `Any` holding the configuration (`StringValue` or `Struct`).
fn any_json(any: &Value) -> Result<Option<String>> {
    let kind = any.get("@type").and_then(Value::as_str).unwrap_or_default();
    let value = any.get("value");
    match (kind, value) {
        (k, Some(Value::String(s))) if k.ends_with("google.protobuf.StringValue") => {
            Ok(Some(s.clone()))
        }
        (k, Some(v)) if k.ends_with("google.protobuf.Struct") => {
            Ok(Some(serde_json::to_string(&yaml_to_json(v)?)?))
        }
        _ => Ok(None),
    }
}

fn yaml_to_json(v: &Value) -> Result<serde_json::Value> {
    Ok(serde_json::to_value(v)?)
}

fn walk(v: &Value, place: &str, found: &mut Vec<Found>) -> Result<()> {
    match v {
        Value::Mapping(map) => {
            let kind = map.get("@type").and_then(Value::as_str).unwrap_or_default();
            if kind.ends_with("envoy.extensions.filters.http.wasm.v3.Wasm") {
                let config = &v["config"];
                if config["root_id"].as_str() == Some("mcp_filter") {
                    if let Some(json) = any_json(&config["configuration"])? {
                        found.push(Found {
                            place: format!("{place} (wasm filter)"),
                            json,
                        });
                    }
                }
                return Ok(());
            }
            if kind.ends_with("dynamic_modules.v3.DynamicModuleFilter") {
                if v["dynamic_module_config"]["name"].as_str() == Some("mcp_filter") {
                    if let Some(json) = any_json(&v["filter_config"])? {
                        found.push(Found {
                            place: format!("{place} (dynamic module)"),
                            json,
                        });
                    }
                }
                return Ok(());
            }
            if v["kind"].as_str() == Some("EnvoyExtensionPolicy") {
                for (i, wasm) in v["spec"]["wasm"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    if wasm["rootID"].as_str() == Some("mcp_filter") {
                        let json = serde_json::to_string(&yaml_to_json(&wasm["config"])?)?;
                        found.push(Found {
                            place: format!("{place} (EnvoyExtensionPolicy spec.wasm[{i}])"),
                            json,
                        });
                    }
                }
                return Ok(());
            }
            for value in map.values() {
                walk(value, place, found)?;
            }
        }
        Value::Sequence(items) => {
            for item in items {
                walk(item, place, found)?;
            }
        }
        _ => {}
    }
    Ok(())
}
