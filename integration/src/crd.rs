//! Validates Kubernetes manifests against the `openAPIV3Schema` of real CRDs
//! (`../shared/crds`, or the folder `CRDS_DIR` names), the way the API
//! server would see them, and stricter where the API server would silently
//! drop something.
//!
//! **Reading YAML as Kubernetes does.** `kubectl` and the API server turn
//! YAML into JSON with `sigs.k8s.io/yaml` over go-yaml v2, which types an
//! unquoted scalar by YAML 1.1 rules: `000…0` and `0755` are octal integers,
//! `08` is a float, `1_000` and `0x1F` are integers, `yes`/`no`/`on`/`off`/
//! `y`/`n` are booleans. `serde_yaml` 0.9 (YAML 1.2 core schema, and stricter
//! still: digits with a leading zero stay strings) reads all of those as
//! strings, so a manifest could pass here and be refused by a cluster
//! (`sha256: 000…0` did). [`documents`] therefore types every plain scalar
//! itself with go-yaml v2's rules ([`resolve_plain`]), and keeps quoted ones
//! strings. Whether a scalar was quoted is read from the source: serde_yaml
//! hands most scalars over as a slice of the input, so the characters around
//! it show its quotes (see `KubeYaml::quoted`). A scalar it does not hand
//! over that way (a block scalar, a multi-line plain scalar, some escapes)
//! is a string, unless YAML 1.1 would type it otherwise: then the document is
//! refused as ambiguous. Also refused: duplicate keys, merge keys (`<<`), non-string
//! keys other than integers and booleans, `.inf`/`.nan`, custom tags, and any
//! document that does not parse (never skipped). Where serde_yaml types a
//! scalar that go-yaml would leave a string (e.g. an explicit `!!str` before
//! an integer-looking plain scalar), the result is a refusal too: every
//! difference falls on the refusing side.
//!
//! **What is checked** ([`Crds::validate`]): `type` (string, integer,
//! number, boolean, object, array), `enum`, `pattern` (Go RE2; the `regex`
//! crate has the same syntax), `required`, `minLength`/`maxLength`,
//! `minimum`/`maximum`, `minItems`/`maxItems`, `minProperties`/
//! `maxProperties`, `format` (`int32`, `int64`, `byte`, `ipv4`, `ipv6`; others
//! are not checked), `allOf`/`anyOf`/`oneOf`/`not`,
//! `x-kubernetes-int-or-string`, `x-kubernetes-list-type` `set`/`map`
//! uniqueness, and `metadata` (name, namespace, string labels and
//! annotations). Unknown fields are errors wherever the structural schema has
//! no `x-kubernetes-preserve-unknown-fields: true` (Kubernetes would prune
//! them silently, hiding a typo), and a `null` is an error (Kubernetes prunes
//! it). CEL rules (`x-kubernetes-validations`) are not evaluated;
//! [`cel_rules`] checks the ones that matter for our manifests explicitly.
//!
//! **Why by hand, not the `jsonschema` crate:** a CRD schema is not plain JSON
//! Schema. Its unknown-field rule is Kubernetes' pruning (no schema says
//! `additionalProperties: false`), `x-kubernetes-int-or-string` and
//! `-preserve-unknown-fields` are extensions, the branches of `anyOf`/`oneOf`
//! must not prune, and its patterns are RE2 (jsonschema uses ECMA-262 via
//! `fancy-regex`). Using the crate would mean rewriting every schema first
//! and still adding the Kubernetes rules, for a large dependency tree; the
//! checks below are about 200 lines, each tested in this module.

use regex::Regex;
use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The YAML documents of a text as the JSON Kubernetes would make of them;
/// empty documents are left out. Any document that does not parse, or
/// whose typing is ambiguous, is an error (never skipped).
pub fn documents(text: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = KubeYaml { text }
            .deserialize(doc)
            .map_err(|e| format!("YAML document {}: {e}", i + 1))?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

/// A plain (unquoted) scalar typed as go-yaml v2 types it, as JSON.
pub fn resolve_plain(s: &str) -> Result<Value, String> {
    match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Ok(Value::Bool(true))
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Ok(Value::Bool(false))
        }
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        _ => {}
    }
    match s.as_bytes().first() {
        Some(b'.') => match s.parse::<f64>() {
            Ok(f) => float(f),
            // `.inf`, `.nan` and the like.
            Err(_) if s.len() > 1 && s[1..].eq_ignore_ascii_case("inf") => float(f64::INFINITY),
            Err(_) if s.len() > 1 && s[1..].eq_ignore_ascii_case("nan") => float(f64::NAN),
            Err(_) => Ok(Value::String(s.into())),
        },
        Some(b'0'..=b'9' | b'+' | b'-') => {
            if matches!(s, "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF") {
                return float(f64::INFINITY);
            }
            let plain = s.replace('_', "");
            if let Some(int) = go_int(&plain) {
                return Ok(int);
            }
            static FLOAT: OnceLock<Regex> = OnceLock::new();
            let re = FLOAT.get_or_init(|| {
                Regex::new(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$").unwrap()
            });
            match plain.parse::<f64>() {
                Ok(f) if re.is_match(&plain) => float(f),
                _ => Ok(Value::String(s.into())),
            }
        }
        _ => Ok(Value::String(s.into())),
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`, then `ParseUint` (what go-yaml tries):
/// `0x`/`0o`/`0b` prefixes, and a leading `0` is octal.
fn go_int(s: &str) -> Option<Value> {
    let (negative, signed, body) = match s.as_bytes().first() {
        Some(b'-') => (true, true, &s[1..]),
        Some(b'+') => (false, true, &s[1..]),
        _ => (false, false, s),
    };
    let prefixed = |p: &str| {
        body.strip_prefix(p)
            .or_else(|| body.strip_prefix(&p.to_uppercase()))
    };
    let (radix, digits) = if let Some(d) = prefixed("0x") {
        (16, d)
    } else if let Some(d) = prefixed("0o") {
        (8, d)
    } else if let Some(d) = prefixed("0b") {
        (2, d)
    } else if body.len() > 1 && body.starts_with('0') {
        (8, &body[1..])
    } else {
        (10, body)
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let magnitude = u128::from_str_radix(digits, radix).ok()?;
    if negative {
        let v = i128::try_from(magnitude).ok()?.checked_neg()?;
        return i64::try_from(v).ok().map(Value::from);
    }
    if let Ok(v) = i64::try_from(magnitude) {
        return Some(Value::from(v));
    }
    // ParseUint takes no sign.
    (!signed)
        .then(|| u64::try_from(magnitude).ok().map(Value::from))
        .flatten()
}

/// A float as JSON: `sigs.k8s.io/yaml` writes a whole float without a
/// fraction (`8`), which the API server reads as an integer.
fn float(f: f64) -> Result<Value, String> {
    if !f.is_finite() {
        return Err(format!("{f} is not representable in JSON"));
    }
    if f.fract() == 0.0 && f.abs() < 9.2e18 {
        return Ok(Value::from(f as i64));
    }
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| format!("{f} is not representable in JSON"))
}

/// Builds JSON from serde_yaml's events, typing plain scalars itself (see
/// the module header).
#[derive(Clone, Copy)]
struct KubeYaml<'a> {
    text: &'a str,
}

impl KubeYaml<'_> {
    /// Whether a scalar borrowed from the source was quoted: `None` when that
    /// cannot be told. serde_yaml borrows a quoted scalar as the text just
    /// before its closing quote (even when escapes before it decoded to the
    /// same bytes), and a plain scalar as itself, which no quote can follow
    /// (it would be part of it) and only a separator can precede.
    fn quoted(&self, v: &str) -> Option<bool> {
        let base = self.text.as_ptr() as usize;
        let start = (v.as_ptr() as usize).checked_sub(base)?;
        let end = start.checked_add(v.len())?;
        if end > self.text.len() {
            return None;
        }
        let bytes = self.text.as_bytes();
        if matches!(bytes.get(end), Some(b'"' | b'\'')) {
            return Some(true);
        }
        let separated = match start.checked_sub(1).and_then(|i| bytes.get(i)) {
            None => true,
            Some(b) => matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'[' | b'{' | b',' | b':'),
        };
        separated.then_some(false)
    }
}

impl<'de> DeserializeSeed<'de> for KubeYaml<'de> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KubeYaml<'de> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value without custom tags")
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        float(v).map_err(E::custom)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Value, E> {
        match self.quoted(v) {
            Some(true) => Ok(Value::String(v.into())),
            Some(false) => resolve_plain(v).map_err(E::custom),
            None => self.visit_str(v),
        }
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        match resolve_plain(v) {
            Ok(Value::String(_)) => Ok(Value::String(v.into())),
            _ => Err(E::custom(format!(
                "cannot tell whether {v:?} was quoted (YAML 1.1 would not read it \
                 as a string unquoted); write it on one line, quoted without escapes"
            ))),
        }
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key_seed(self)? {
            // As sigs.k8s.io/yaml turns keys into JSON's strings.
            let key = match key {
                Value::String(k) if k == "<<" => {
                    // A quoted "<<" arrives as a string too; refusing both is
                    // on the safe side.
                    return Err(A::Error::custom("merge keys (`<<`) are not supported"));
                }
                Value::String(k) => k,
                Value::Bool(b) => b.to_string(),
                Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
                other => return Err(A::Error::custom(format!("unsupported map key {other}"))),
            };
            let value = map.next_value_seed(self)?;
            if out.insert(key.clone(), value).is_some() {
                return Err(A::Error::custom(format!("duplicate key `{key}`")));
            }
        }
        Ok(Value::Object(out))
    }
}

/// Schemas by `apiVersion` and `kind`.
pub struct Crds {
    schemas: HashMap<(String, String), Value>,
}

impl Crds {
    /// The CRDs in `CRDS_DIR`, else in `../shared/crds` beside the repo;
    /// `None` (with a message) outside CI when that is absent. A folder that
    /// is there but cannot be read, or a CRD that does not parse, panics.
    pub fn load() -> Option<Self> {
        let dir = match std::env::var_os("CRDS_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => crate::repo_root().join("../shared/crds"),
        };
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
        Some(Self::load_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())))
    }

    fn load_dir(dir: &Path) -> Result<Self, String> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
        files.sort();
        let mut crds = Self {
            schemas: HashMap::new(),
        };
        for file in files {
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let more = Self::from_yaml(&text).map_err(|e| format!("{}: {e}", file.display()))?;
            crds.schemas.extend(more.schemas);
        }
        if crds.schemas.is_empty() {
            return Err("no CRD schemas found".into());
        }
        Ok(crds)
    }

    /// The schemas of the CRDs in a YAML text; anything that is not a CRD
    /// with a schema for every version is an error.
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        let mut schemas = HashMap::new();
        for crd in documents(text)? {
            let (Some(group), Some(kind)) = (
                crd["spec"]["group"].as_str(),
                crd["spec"]["names"]["kind"].as_str(),
            ) else {
                return Err(format!("not a CRD: {}", crd["metadata"]["name"]));
            };
            let versions = crd["spec"]["versions"].as_array();
            for version in versions.into_iter().flatten() {
                let schema = &version["schema"]["openAPIV3Schema"];
                let Some(name) = version["name"].as_str().filter(|_| schema.is_object()) else {
                    return Err(format!("{kind}: a version without a name or schema"));
                };
                schemas.insert((format!("{group}/{name}"), kind.into()), schema.clone());
            }
        }
        Ok(Self { schemas })
    }

    /// Every violation in a manifest (empty: valid), each naming the field.
    pub fn validate(&self, doc: &Value) -> Vec<String> {
        let key = (
            doc["apiVersion"].as_str().unwrap_or_default().to_string(),
            doc["kind"].as_str().unwrap_or_default().to_string(),
        );
        let Some(schema) = self.schemas.get(&key) else {
            return vec![format!("no CRD for {key:?}")];
        };
        let mut errors = Vec::new();
        check_metadata(&doc["metadata"], &mut errors);
        let mut root = schema.clone();
        // The API server checks `metadata` as ObjectMeta, not by this schema.
        if let Some(p) = root["properties"].as_object_mut() {
            p.remove("metadata");
        }
        let mut rest = doc.clone();
        if let Some(o) = rest.as_object_mut() {
            o.remove("metadata");
        }
        check(&root, &rest, "", true, &mut errors);
        errors
    }
}

/// ObjectMeta, as far as a manifest sets it.
fn check_metadata(meta: &Value, errors: &mut Vec<String>) {
    let Some(meta) = meta.as_object() else {
        errors.push(".metadata: expected object".into());
        return;
    };
    for (key, value) in meta {
        let ok = match key.as_str() {
            "name" | "namespace" | "generateName" => value.is_string(),
            "labels" | "annotations" => value
                .as_object()
                .is_some_and(|m| m.values().all(Value::is_string)),
            "finalizers" => value
                .as_array()
                .is_some_and(|a| a.iter().all(Value::is_string)),
            _ => {
                errors.push(format!(".metadata.{key}: unknown field"));
                continue;
            }
        };
        if !ok {
            errors.push(format!(
                ".metadata.{key}: expected a string or strings, got {value}"
            ));
        }
    }
}

/// Checks `value` against `schema`, appending violations. `structural`:
/// unknown fields are errors (false inside `anyOf`/`oneOf`/`not`/`allOf`,
/// which only validate values, as in Kubernetes).
fn check(schema: &Value, value: &Value, path: &str, structural: bool, errors: &mut Vec<String>) {
    let at = if path.is_empty() { "." } else { path };
    let mut fail = |msg: String| errors.push(format!("{at}: {msg}"));
    if value.is_null() {
        fail("null (Kubernetes drops it; leave the field out)".into());
        return;
    }
    let int_or_string = schema["x-kubernetes-int-or-string"] == true;
    if int_or_string {
        if !(value.is_i64() || value.is_u64() || value.is_string()) {
            fail(format!("expected an integer or a string, got {value}"));
            return;
        }
    } else if let Some(t) = schema["type"].as_str() {
        let ok = match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            _ => false,
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
    if let Some(s) = value.as_str() {
        if let Some(pattern) = schema["pattern"].as_str() {
            match Regex::new(pattern) {
                Ok(re) if re.is_match(s) => {}
                Ok(_) => fail(format!("`{s}` does not match {pattern}")),
                Err(e) => fail(format!("pattern {pattern} unusable: {e}")),
            }
        }
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
    if let Some(format) = schema["format"].as_str() {
        if let Some(msg) = bad_format(format, value) {
            fail(msg);
        }
    }
    for sub in schema["allOf"].as_array().into_iter().flatten() {
        check(sub, value, path, false, errors);
    }
    let passes = |sub: &Value| {
        let mut e = Vec::new();
        check(sub, value, path, false, &mut e);
        e.is_empty()
    };
    if let Some(any) = schema["anyOf"].as_array() {
        if !any.iter().any(passes) {
            errors.push(format!("{at}: {value} matches none of anyOf"));
        }
    }
    if let Some(one) = schema["oneOf"].as_array() {
        let n = one.iter().filter(|s| passes(s)).count();
        if n != 1 {
            errors.push(format!("{at}: matches {n} of oneOf, not exactly one"));
        }
    }
    if schema["not"].is_object() && passes(&schema["not"]) {
        errors.push(format!("{at}: matches what `not` forbids"));
    }
    if let Some(items) = value.as_array() {
        check_array(schema, items, path, structural, errors);
    } else if let Some(object) = value.as_object() {
        check_object(schema, object, path, structural, errors);
    }
}

fn check_array(
    schema: &Value,
    items: &[Value],
    path: &str,
    structural: bool,
    errors: &mut Vec<String>,
) {
    let at = if path.is_empty() { "." } else { path };
    let n = items.len() as u64;
    if schema["maxItems"].as_u64().is_some_and(|m| n > m) {
        errors.push(format!("{at}: more than {} items", schema["maxItems"]));
    }
    if schema["minItems"].as_u64().is_some_and(|m| n < m) {
        errors.push(format!("{at}: fewer than {} items", schema["minItems"]));
    }
    match schema["x-kubernetes-list-type"].as_str() {
        Some("set") => {
            let mut seen = HashSet::new();
            if !items.iter().all(|i| seen.insert(i.to_string())) {
                errors.push(format!("{at}: duplicate items in a set"));
            }
        }
        Some("map") => {
            let keys: Vec<&str> = schema["x-kubernetes-list-map-keys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let mut seen = HashSet::new();
            for item in items {
                let id: Vec<String> = keys.iter().map(|k| item[*k].to_string()).collect();
                if !seen.insert(id.clone()) {
                    errors.push(format!("{at}: duplicate list-map key {id:?}"));
                }
            }
        }
        _ => {}
    }
    if schema.get("items").is_some() || structural {
        for (i, item) in items.iter().enumerate() {
            check(
                &schema["items"],
                item,
                &format!("{path}[{i}]"),
                structural,
                errors,
            );
        }
    }
}

fn check_object(
    schema: &Value,
    object: &Map<String, Value>,
    path: &str,
    structural: bool,
    errors: &mut Vec<String>,
) {
    let at = if path.is_empty() { "." } else { path };
    let n = object.len() as u64;
    if schema["maxProperties"].as_u64().is_some_and(|m| n > m) {
        errors.push(format!(
            "{at}: more than {} fields",
            schema["maxProperties"]
        ));
    }
    if schema["minProperties"].as_u64().is_some_and(|m| n < m) {
        errors.push(format!(
            "{at}: fewer than {} fields",
            schema["minProperties"]
        ));
    }
    for required in schema["required"].as_array().into_iter().flatten() {
        if let Some(name) = required.as_str() {
            if !object.contains_key(name) {
                errors.push(format!("{at}: missing required `{name}`"));
            }
        }
    }
    let properties = schema["properties"].as_object();
    let additional = &schema["additionalProperties"];
    let preserve = schema["x-kubernetes-preserve-unknown-fields"] == true;
    for (key, child) in object {
        let child_path = format!("{path}.{key}");
        if let Some(prop) = properties.and_then(|p| p.get(key)) {
            check(prop, child, &child_path, structural, errors);
        } else if additional.is_object() {
            check(additional, child, &child_path, structural, errors);
        } else if structural && !preserve && *additional != Value::Bool(true) {
            errors.push(format!("{child_path}: unknown field"));
        }
    }
}

/// The formats worth checking here; `None`: fine or not checked.
fn bad_format(format: &str, value: &Value) -> Option<String> {
    use base64::Engine;
    let ok = match (format, value) {
        ("int32", v) if v.is_number() => v.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        ("int64", v) if v.is_number() => v.is_i64(),
        ("byte", Value::String(s)) => base64::engine::general_purpose::STANDARD.decode(s).is_ok(),
        ("ipv4", Value::String(s)) => s.parse::<std::net::Ipv4Addr>().is_ok(),
        ("ipv6", Value::String(s)) => s.parse::<std::net::Ipv6Addr>().is_ok(),
        _ => true,
    };
    (!ok).then(|| format!("{value} is not a valid {format}"))
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
        Some("ClientTrafficPolicy") => {
            let refs: Vec<&Value> = match (&spec["targetRef"], &spec["targetRefs"]) {
                (Value::Object(_), Value::Null) => vec![&spec["targetRef"]],
                (Value::Null, Value::Array(refs)) => refs.iter().collect(),
                _ => {
                    errors.push("exactly one of targetRef / targetRefs".into());
                    Vec::new()
                }
            };
            for r in refs {
                if r["group"] != "gateway.networking.k8s.io" {
                    errors.push(format!("targetRef group {}", r["group"]));
                }
                if r["kind"] != "Gateway" && r["kind"] != "ListenerSet" {
                    errors.push(format!("targetRef kind {}", r["kind"]));
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A CRD shaped like EnvoyExtensionPolicy's `wasm[].code.http`, with the
    /// keywords the validator must honour.
    const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
spec:
  group: example.io
  names: { kind: Thing }
  versions:
    - name: v1
      schema:
        openAPIV3Schema:
          type: object
          properties:
            apiVersion: { type: string }
            kind: { type: string }
            metadata: { type: object }
            spec:
              type: object
              required: [url]
              properties:
                url: { type: string, pattern: '^https://' }
                sha256: { type: string }
                enabled: { type: boolean }
                port: { type: integer, format: int32 }
                mode: { type: string, enum: [Fast, Slow] }
                anything: { type: object, x-kubernetes-preserve-unknown-fields: true }
                labels: { type: object, additionalProperties: { type: string } }
                empty: { type: object }
"#;

    fn errors(manifest: &str) -> Vec<String> {
        let crds = Crds::from_yaml(CRD).expect("the test CRD");
        let docs = documents(manifest).expect("parses");
        assert_eq!(docs.len(), 1, "{docs:?}");
        crds.validate(&docs[0])
    }

    fn thing(spec: &str) -> String {
        format!("apiVersion: example.io/v1\nkind: Thing\nmetadata: {{name: t}}\nspec:\n{spec}")
    }

    const ZEROS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn an_unquoted_all_digit_sha256_is_an_integer_and_refused() {
        let found = errors(&thing(&format!("  url: https://x\n  sha256: {ZEROS}\n")));
        assert!(
            found
                .iter()
                .any(|e| e.starts_with(".spec.sha256:") && e.contains("expected string")),
            "{found:?}"
        );
        for quoted in [format!("'{ZEROS}'"), format!("\"{ZEROS}\"")] {
            let found = errors(&thing(&format!("  url: https://x\n  sha256: {quoted}\n")));
            assert!(found.is_empty(), "{quoted}: {found:?}");
        }
    }

    #[test]
    fn an_unparsable_document_is_an_error_not_skipped() {
        let text = format!("{}\n---\nspec: [unclosed\n", thing("  url: https://x\n"));
        assert!(documents(&text).is_err());
        assert!(documents("a: 1\na: 2\n").is_err(), "a duplicate key");
        assert!(Crds::from_yaml("spec: {").is_err());
    }

    #[test]
    fn plain_scalars_are_typed_as_kubernetes_types_them() {
        let cases: &[(&str, Value)] = &[
            (ZEROS, json!(0)),
            ("0755", json!(493)),
            ("08", json!(8)),
            ("0o17", json!(15)),
            ("0x1F", json!(31)),
            ("0b101", json!(5)),
            ("1_000", json!(1000)),
            ("-12", json!(-12)),
            ("1e3", json!(1000)),
            ("1.5", json!(1.5)),
            (".5", json!(0.5)),
            ("yes", json!(true)),
            ("On", json!(true)),
            ("y", json!(true)),
            ("no", json!(false)),
            ("OFF", json!(false)),
            ("n", json!(false)),
            ("~", Value::Null),
            ("Null", Value::Null),
            ("18446744073709551615", json!(u64::MAX)),
            ("2001-12-14", json!("2001-12-14")),
            ("1:20", json!("1:20")),
            ("10s", json!("10s")),
            ("0x", json!("0x")),
            ("yess", json!("yess")),
            ("https://x/y", json!("https://x/y")),
        ];
        for (plain, want) in cases {
            let doc = documents(&format!("k: {plain}\nq: '{plain}'\n")).expect(plain);
            assert_eq!(doc[0]["k"], *want, "plain {plain}");
            assert_eq!(doc[0]["q"], json!(plain), "quoted {plain}");
        }
        for bad in [".inf", "-.inf", ".nan"] {
            assert!(documents(&format!("k: {bad}\n")).is_err(), "{bad}");
        }
        // Keys become strings as sigs.k8s.io/yaml makes them.
        let doc = documents("yes: 1\n80: 2\n\"no\": 3\n").unwrap();
        assert_eq!(doc[0], json!({"true": 1, "80": 2, "no": 3}));
        // Escapes, block and flow scalars, anchors.
        let doc = documents(
            "a: \"x\\ty\"\nb: |\n  0755\nc: [on, 'on',0755]\nd: &v 0755\ne: *v\nf: \"\\x30755\"\ng: '0''1'\n",
        )
        .unwrap();
        assert_eq!(
            doc[0],
            json!({"a": "x\ty", "b": "0755\n", "c": [true, "on", 493], "d": 493, "e": 493,
                   "f": "0755", "g": "0'1"})
        );
    }

    #[test]
    fn what_cannot_be_typed_surely_is_refused() {
        for text in [
            "a: |-\n  0755\n", // a block scalar YAML 1.1 would not type a string
            "<<: {a: 1}\n",    // a merge key
            "a: !custom x\n",  // a custom tag
            "1.5: x\n",        // a float key
            "~: x\n",          // a null key
        ] {
            assert!(documents(text).is_err(), "{text}: {:?}", documents(text));
        }
    }

    #[test]
    fn the_validator_checks_what_the_api_server_checks() {
        let ok = thing("  url: https://x\n  enabled: yes\n  port: 80\n  mode: Fast\n  anything: {a: {b: 1}}\n  labels: {a: b}\n");
        assert_eq!(errors(&ok), Vec::<String>::new());
        let cases: &[(&str, &str)] = &[
            ("  enabled: true\n", ".spec: missing required `url`"),
            ("  url: http://x\n", ".spec.url: `http://x` does not match"),
            (
                "  url: https://x\n  enabled: 'yes'\n",
                ".spec.enabled: expected boolean",
            ),
            (
                "  url: https://x\n  port: '80'\n",
                ".spec.port: expected integer",
            ),
            (
                "  url: https://x\n  port: 3000000000\n",
                ".spec.port: 3000000000 is not a valid int32",
            ),
            (
                "  url: https://x\n  mode: fast\n",
                ".spec.mode: \"fast\" is not one of",
            ),
            ("  url: https://x\n  typo: 1\n", ".spec.typo: unknown field"),
            (
                "  url: https://x\n  empty: {a: 1}\n",
                ".spec.empty.a: unknown field",
            ),
            (
                "  url: https://x\n  labels: {a: 1}\n",
                ".spec.labels.a: expected string",
            ),
            ("  url: https://x\n  sha256:\n", ".spec.sha256: null"),
            (
                "  url: https://x\n  sha256: off\n",
                ".spec.sha256: expected string, got false",
            ),
        ];
        for (spec, want) in cases {
            let found = errors(&thing(spec));
            assert!(
                found.iter().any(|e| e.starts_with(want)),
                "{spec}: {found:?}"
            );
        }
        let labels = "apiVersion: example.io/v1\nkind: Thing\nmetadata: {name: t, labels: {v: 1.0}}\nspec: {url: https://x}\n";
        assert!(errors(labels)
            .iter()
            .any(|e| e.starts_with(".metadata.labels")));
        let unknown = "apiVersion: example.io/v1\nkind: Other\nmetadata: {name: t}\n";
        assert!(errors(unknown).iter().any(|e| e.starts_with("no CRD")));
    }

    #[test]
    fn value_validations_combine_as_in_kubernetes() {
        let schema = json!({"type": "object", "properties": {
            "addr": {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]},
            "q": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}],
                  "allOf": [{"pattern": "^[0-9]+Mi$"}]},
            "one": {"type": "object", "properties": {"t": {"type": "string"}, "v": {"type": "string"}},
                    "oneOf": [{"properties": {"t": {"enum": ["A"]}}}, {"properties": {"t": {"not": {"enum": ["A"]}}}}]},
            "set": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
            "map": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "properties": {"name": {"type": "string"}}}}
        }});
        let errs = |v: Value| {
            let mut e = Vec::new();
            check(&schema, &v, "", true, &mut e);
            e
        };
        assert_eq!(
            errs(
                json!({"addr": "::1", "q": 5, "one": {"t": "A", "v": "x"}, "set": ["a", "b"], "map": [{"name": "a"}, {"name": "b"}]})
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            errs(json!({"q": "64Mi", "one": {"t": "B"}})),
            Vec::<String>::new()
        );
        for bad in [
            json!({"addr": "example.com"}),
            json!({"q": "64MB"}),
            json!({"q": 1.5}),
            json!({"set": ["a", "a"]}),
            json!({"map": [{"name": "a"}, {"name": "a"}]}),
            json!({"map": [{"name": "a", "typo": 1}]}),
        ] {
            assert!(!errs(bad.clone()).is_empty(), "{bad}");
        }
    }
}
