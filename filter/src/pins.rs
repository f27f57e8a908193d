//! Tool pinning: protection against a server that changes a tool after an
//! operator reviewed it (the MCP "rug pull": a description or schema that
//! turns into instructions for the model).
//!
//! Owns: the `tool_pins` configuration section, the canonical form of a tool
//! definition and its digest, the verdict on a listed tool and on a call, and
//! what this worker last saw of each pinned tool.
//!
//! Must not: read a listing's framing (`listing` hands each item over) or
//! decide policy; a pin narrows what the policy allows, never widens it.
//!
//! The canonical form of a tool definition is the tool object exactly as the
//! server listed it (its own name, not a public one), without its top-level
//! `_meta` (per-response data), written as JSON with no whitespace, object
//! members sorted by key (byte order of their UTF-8) at every depth, strings
//! as `serde_json` writes them (only `"`, `\` and control characters escaped)
//! and numbers as `serde_json` reads and writes them. Every member counts:
//! `description`, `title`, `inputSchema`, `outputSchema`, `annotations`,
//! `icons` and any member a later protocol adds (an unknown change is a
//! change). The pin is `sha256:` and the lowercase hex SHA-256 of that text.

use crate::auth::strict_json::StrictObject;
use crate::config_error::{invalid, ConfigError};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::cell::Cell;
#[cfg(test)]
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

/// The SHA-256 of a tool definition's canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ToolDigest([u8; 32]);

impl ToolDigest {
    /// The digest of a listed tool (its JSON text), or `None` when it is not
    /// a JSON object.
    pub fn of(tool: &str) -> Option<Self> {
        // The configuration's strict reader (a key twice is refused: two
        // readers could see two definitions), whose code the .wasm holds.
        let Ok(StrictObject(object)) = serde_json::from_slice::<StrictObject>(tool.as_bytes())
        else {
            return None;
        };
        // serde_json's compact form is the canonical one (see the module
        // header): no whitespace, its own escaping and numbers, and the keys
        // in `serde_json::Map`'s order, a `BTreeMap`'s here (no
        // `preserve_order`): byte order (the tests fail if a build changes it).
        // Written straight into the hash: no copy of the text.
        let mut hash = Hashing(Sha256::new());
        serde_json::to_writer(&mut hash, &WithoutMeta(&object)).ok()?;
        Some(Self(hash.0.finalize().into()))
    }

    /// Reads `sha256:` and 64 hex digits.
    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.strip_prefix("sha256:")?;
        if hex.len() != 64 {
            return None;
        }
        let nibble = |b: u8| match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        };
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            if let [high, low] = pair {
                *byte = nibble(*high)? << 4 | nibble(*low)?;
            }
        }
        Some(Self(bytes))
    }
}

impl fmt::Display for ToolDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Bytes written to it go into the hash.
struct Hashing(Sha256);

impl std::io::Write for Hashing {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A tool object as serialized for its digest: every member but `_meta`.
struct WithoutMeta<'a>(&'a serde_json::Map<String, Value>);

impl serde::Serialize for WithoutMeta<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().filter(|(key, _)| *key != "_meta"))
    }
}

/// What becomes of a tool no pin names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unpinned {
    /// Listed and callable as the policy says.
    Allow,
    /// Hidden from listings and refused on call (the default: once tools are
    /// pinned, only reviewed tools reach callers).
    Hide,
}

// The JSON Schema's view of the section. The filter reads the section from
// its JSON value ([`compile`]): one more typed section would cost the
// .wasm, which has a size budget, its own deserializer code.
/// `tool_pins` in the plugin configuration.
#[cfg(test)]
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct RawToolPins {
    /// Tools no pin names: `hide` (default) or `allow`.
    unpinned: Option<RawUnpinned>,
    /// Per server (a backend's name; `default` without `backends`): the
    /// server's own tool name -> `sha256:<hex>` of its reviewed definition
    /// (`mcp-filter pin` writes them).
    #[serde(default)]
    servers: BTreeMap<String, BTreeMap<String, String>>,
}

#[cfg(test)]
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum RawUnpinned {
    /// Listed and callable as the policy says.
    Allow,
    /// Hidden from listings and refused on call (the default).
    Hide,
}

/// The name the single upstream has in `tool_pins.servers` without `backends`.
pub const SINGLE_SERVER: &str = "default";

/// The validated pins: per server (by backend index; index 0 without
/// `backends`), the reviewed digest of each pinned tool.
///
/// A sorted slice searched by (server, tool) rather than maps: pins are
/// few, and the .wasm has a size budget that each map type costs.
#[derive(Debug, Clone)]
pub struct ToolPins {
    pub unpinned: Unpinned,
    /// Sorted by (server, tool); shared by the configuration's clones.
    pins: Rc<[Pin]>,
}

#[derive(Debug)]
struct Pin {
    server: usize,
    tool: String,
    digest: ToolDigest,
    /// What this worker last saw listed (`None`: not yet): observations,
    /// not configuration.
    seen: Cell<Option<bool>>,
}

impl PartialEq for ToolPins {
    fn eq(&self, other: &Self) -> bool {
        let key = |p: &Pin| (p.server, p.tool.clone(), p.digest);
        self.unpinned == other.unpinned && self.pins.iter().map(key).eq(other.pins.iter().map(key))
    }
}

/// The verdict on one tool, listed or called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinVerdict {
    /// Pinned and (as listed, or as last seen) matching its pin; or unpinned and allowed.
    Pass,
    /// Pinned, and its definition is not the reviewed one.
    Changed,
    /// No pin names it, and unpinned tools are hidden.
    Unpinned,
}

/// The `tool_pins` section (`section`, a JSON value) validated, every error
/// naming its field. `backends`: the backend names in index order (`None`
/// without `backends`).
pub fn compile(section: &Value, backends: Option<&[&str]>) -> Result<ToolPins, ConfigError> {
    let Value::Object(section) = section else {
        return Err(invalid("tool_pins", "expected an object"));
    };
    let mut unpinned = Unpinned::Hide;
    let mut pins = Vec::new();
    for (key, value) in section {
        match (key.as_str(), value) {
            ("unpinned", Value::String(v)) if v == "hide" => unpinned = Unpinned::Hide,
            ("unpinned", Value::String(v)) if v == "allow" => unpinned = Unpinned::Allow,
            ("unpinned", _) => {
                return Err(invalid("tool_pins.unpinned", "expected `hide` or `allow`"))
            }
            ("servers", Value::Object(servers)) => {
                for (server, tools) in servers {
                    read_server(server, tools, backends, &mut pins)?;
                }
            }
            ("servers", _) => return Err(invalid("tool_pins.servers", "expected an object")),
            (other, _) => {
                return Err(invalid(
                    &format!("tool_pins.{other}"),
                    "unknown field (expected `unpinned` or `servers`)",
                ))
            }
        }
    }
    Ok(ToolPins {
        unpinned,
        pins: pins.into(),
    })
}

/// One server's pins, inserted in (server, tool) order.
fn read_server(
    server: &str,
    tools: &Value,
    backends: Option<&[&str]>,
    pins: &mut Vec<Pin>,
) -> Result<(), ConfigError> {
    let field = format!("tool_pins.servers.{server}");
    let index = match backends {
        None if server == SINGLE_SERVER => Some(0),
        None => None,
        Some(names) => names.iter().position(|n| *n == server),
    }
    .ok_or_else(|| {
        invalid(
            &field,
            format!("names no server (a backend's name, or `{SINGLE_SERVER}` without backends)"),
        )
    })?;
    let Value::Object(tools) = tools else {
        return Err(invalid(&field, "expected an object of tool name -> pin"));
    };
    for (tool, digest) in tools {
        let Some(digest) = digest.as_str().and_then(ToolDigest::parse) else {
            return Err(invalid(
                &format!("{field}.{tool}"),
                "a pin is `sha256:` and 64 lowercase hex digits",
            ));
        };
        // A JSON object's keys are unique: no (server, tool) twice.
        let at = pins
            .binary_search_by(|p: &Pin| (p.server, p.tool.as_str()).cmp(&(index, tool)))
            .unwrap_or_else(|at| at);
        let pin = Pin {
            server: index,
            tool: tool.clone(),
            digest,
            seen: Cell::new(None),
        };
        pins.insert(at, pin);
    }
    Ok(())
}

impl ToolPins {
    fn pin(&self, server: usize, tool: &str) -> Option<&Pin> {
        let at = self
            .pins
            .binary_search_by(|p| (p.server, p.tool.as_str()).cmp(&(server, tool)))
            .ok()?;
        self.pins.get(at)
    }

    /// Whether `server` has any pin.
    pub fn pins_any(&self, server: usize) -> bool {
        self.pins.iter().any(|p| p.server == server)
    }

    /// The verdict on a tool `server` lists as `item` (its JSON text) under
    /// its own name `tool`; remembered for calls.
    pub fn judge_listed(&self, server: usize, tool: &str, item: &str) -> PinVerdict {
        let Some(pin) = self.pin(server, tool) else {
            return self.unpinned_verdict();
        };
        let matches = ToolDigest::of(item) == Some(pin.digest);
        pin.seen.set(Some(matches));
        if matches {
            PinVerdict::Pass
        } else {
            PinVerdict::Changed
        }
    }

    /// The verdict on a call of `server`'s tool `tool`: refused when unpinned
    /// tools are hidden, or when this worker last saw it listed changed. A
    /// pinned tool not yet seen in a listing passes (its listing, wherever
    /// the client got it through this filter, hid it if it had changed).
    pub fn judge_call(&self, server: usize, tool: &str) -> PinVerdict {
        match self.pin(server, tool) {
            None => self.unpinned_verdict(),
            Some(pin) if pin.seen.get() == Some(false) => PinVerdict::Changed,
            Some(_) => PinVerdict::Pass,
        }
    }

    fn unpinned_verdict(&self) -> PinVerdict {
        match self.unpinned {
            Unpinned::Allow => PinVerdict::Pass,
            Unpinned::Hide => PinVerdict::Unpinned,
        }
    }
}

/// The `tool_pins` section that pins every tool of a listing answer (the
/// JSON-RPC message, or its `result`), for `server`, for review.
pub fn pins_of_listing(listing: &Value, server: &str) -> Result<Value, String> {
    let result = listing.get("result").unwrap_or(listing);
    let tools = result
        .get("tools")
        .and_then(Value::as_array)
        .ok_or("no `tools` array in the listing (a tools/list answer, or its `result`)")?;
    let mut pins = serde_json::Map::new();
    for (i, tool) in tools.iter().enumerate() {
        let name = tool
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("tools[{i}] has no string `name`"))?;
        let digest = ToolDigest::of(&tool.to_string())
            .ok_or_else(|| format!("tools[{i}] is not an object"))?;
        if pins
            .insert(name.to_string(), Value::String(digest.to_string()))
            .is_some()
        {
            return Err(format!("tool `{name}` is listed twice"));
        }
    }
    let mut servers = serde_json::Map::new();
    servers.insert(server.to_string(), Value::Object(pins));
    Ok(serde_json::json!({ "tool_pins": { "unpinned": "hide", "servers": servers } }))
}

#[cfg(test)]
mod tests;
