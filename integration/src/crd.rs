//! Validates Kubernetes manifests against the `openAPIV3Schema` of real CRDs
//! (`../shared/crds`), strictly: unknown fields are errors (the API server
//! would silently prune them, hiding a typo). CEL rules
//! (`x-kubernetes-validations`) are not evaluated; [`cel_rules`] checks the
//! ones that matter for our manifests explicitly.

use regex::Regex;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;

/// The YAML documents of a file, as JSON values.
pub fn documents(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .filter_map(|doc| serde_yaml::Value::deserialize(doc).ok())
        .filter(|v| !v.is_null())
        .filter_map(|v| serde_json::to_value(v).ok())
        .collect()
}

/// Schemas by `apiVersion` and `kind`.
pub struct Crds {
    schemas: HashMap<(String, String), Value>,
}

impl Crds {
    /// The CRDs beside the repo; `None` (with a message) outside CI when absent.
    pub fn load() -> Option<Self> {
        let dir = crate::repo_root().join("../shared/crds");
        if !dir.is_dir() {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but {} is missing", dir.display());
            }
            eprintln!(
                "skipping: {} not found (it ships beside the repo in CI only)",
                dir.display()
            );
            return None;
        }
        let mut schemas = HashMap::new();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).ok()?;
            for crd in documents(&text) {
                let group = crd["spec"]["group"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let kind = crd["spec"]["names"]["kind"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                for version in crd["spec"]["versions"].as_array().into_iter().flatten() {
                    let name = version["name"].as_str().unwrap_or_default();
                    let schema = version["schema"]["openAPIV3Schema"].clone();
                    schemas.insert((format!("{group}/{name}"), kind.clone()), schema);
                }
            }
        }
        Some(Self { schemas })
    }

    /// Every violation in a manifest (empty: valid).
    pub fn validate(&self, doc: &Value) -> Vec<String> {
        let key = (
            doc["apiVersion"].as_str().unwrap_or_default().to_string(),
            doc["kind"].as_str().unwrap_or_default().to_string(),
        );
        let Some(schema) = self.schemas.get(&key) else {
            return vec![format!("no CRD for {key:?}")];
        };
        let mut errors = Vec::new();
        check(schema, doc, "", &mut errors);
        errors
    }
}

fn check(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let mut fail = |msg: String| {
        errors.push(format!(
            "{}: {msg}",
            if path.is_empty() { "." } else { path }
        ))
    };
    if schema["x-kubernetes-int-or-string"] == true {
        if !(value.is_i64() || value.is_u64() || value.is_string()) {
            fail("expected an integer or a string".into());
        }
        return;
    }
    if let Some(all) = schema["allOf"].as_array() {
        for s in all {
            check(s, value, path, errors);
        }
    }
    let mut fail = |msg: String| {
        errors.push(format!(
            "{}: {msg}",
            if path.is_empty() { "." } else { path }
        ))
    };
    if let Some(t) = schema["type"].as_str() {
        let ok = match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            _ => true,
        };
        if !ok {
            fail(format!("expected {t}, got {value}"));
            return;
        }
    }
    if let Some(options) = schema["enum"].as_array() {
        if !options.contains(value) {
            fail(format!("{value} is not one of {options:?}"));
        }
    }
    if let (Some(pattern), Some(s)) = (schema["pattern"].as_str(), value.as_str()) {
        match Regex::new(pattern) {
            Ok(re) if re.is_match(s) => {}
            Ok(_) => fail(format!("`{s}` does not match {pattern}")),
            Err(e) => fail(format!("pattern {pattern} unusable: {e}")),
        }
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if schema["maxLength"].as_u64().is_some_and(|m| len > m) {
            fail(format!("longer than {}", schema["maxLength"]));
        }
        if schema["minLength"].as_u64().is_some_and(|m| len < m) {
            fail(format!("shorter than {}", schema["minLength"]));
        }
    }
    if let Some(n) = value.as_f64() {
        if schema["maximum"].as_f64().is_some_and(|m| n > m) {
            fail(format!("above {}", schema["maximum"]));
        }
        if schema["minimum"].as_f64().is_some_and(|m| n < m) {
            fail(format!("below {}", schema["minimum"]));
        }
    }
    if let Some(items) = value.as_array() {
        if schema["maxItems"]
            .as_u64()
            .is_some_and(|m| items.len() as u64 > m)
        {
            fail(format!("more than {} items", schema["maxItems"]));
        }
        if schema["minItems"]
            .as_u64()
            .is_some_and(|m| (items.len() as u64) < m)
        {
            fail(format!("fewer than {} items", schema["minItems"]));
        }
        for (i, item) in items.iter().enumerate() {
            check(&schema["items"], item, &format!("{path}[{i}]"), errors);
        }
        return;
    }
    let Some(object) = value.as_object() else {
        return;
    };
    for required in schema["required"].as_array().into_iter().flatten() {
        if let Some(name) = required.as_str() {
            if !object.contains_key(name) {
                errors.push(format!("{path}: missing required `{name}`"));
            }
        }
    }
    let properties = schema["properties"].as_object();
    let preserve = schema["x-kubernetes-preserve-unknown-fields"] == true;
    for (key, child) in object {
        let child_path = format!("{path}.{key}");
        if let Some(prop) = properties.and_then(|p| p.get(key)) {
            check(prop, child, &child_path, errors);
        } else if schema["additionalProperties"].is_object() {
            check(&schema["additionalProperties"], child, &child_path, errors);
        } else if !preserve && (properties.is_some() || schema["additionalProperties"] == false) {
            errors.push(format!("{child_path}: unknown field"));
        }
    }
}

/// The CEL rules of our CRDs that a manifest here could break.
pub fn cel_rules(doc: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let spec = &doc["spec"];
    match doc["kind"].as_str() {
        Some("EnvoyExtensionPolicy") | Some("EnvoyPatchPolicy") => {
            let refs: Vec<&Value> = match (&spec["targetRef"], &spec["targetRefs"]) {
                (Value::Object(_), Value::Null) => vec![&spec["targetRef"]],
                (Value::Null, Value::Array(refs)) if doc["kind"] == "EnvoyExtensionPolicy" => {
                    refs.iter().collect()
                }
                _ => {
                    errors.push("exactly one of targetRef / targetRefs".into());
                    Vec::new()
                }
            };
            for r in refs {
                if r["group"] != "gateway.networking.k8s.io" {
                    errors.push(format!("targetRef group {}", r["group"]));
                }
                let kinds = [
                    "Gateway",
                    "ListenerSet",
                    "HTTPRoute",
                    "GRPCRoute",
                    "UDPRoute",
                    "TCPRoute",
                    "TLSRoute",
                ];
                if !kinds.iter().any(|k| r["kind"] == *k) {
                    errors.push(format!("targetRef kind {}", r["kind"]));
                }
            }
            for wasm in spec["wasm"].as_array().into_iter().flatten() {
                let code = &wasm["code"];
                for (kind, field) in [("HTTP", "http"), ("Image", "image")] {
                    let typed = code["type"] == kind;
                    if typed != code.get(field).is_some() {
                        errors.push(format!("code.type {kind} and code.{field} go together"));
                    }
                }
            }
        }
        Some("EnvoyProxy") => {
            let b = &spec["bootstrap"];
            if !b.is_null() {
                let ok = if b["type"] == "JSONPatch" {
                    b["jsonPatches"].as_array().is_some_and(|p| !p.is_empty())
                } else {
                    b.get("value").is_some()
                };
                if !ok {
                    errors.push("bootstrap patch does not match its type".into());
                }
            }
        }
        _ => {}
    }
    errors
}
