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

use crate::config_error::{invalid, ConfigError};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::rc::Rc;

/// The SHA-256 of a tool definition's canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ToolDigest([u8; 32]);

impl ToolDigest {
    /// The digest of a listed tool (its JSON text), or `None` when it is not
    /// a JSON object.
    pub fn of(tool: &str) -> Option<Self> {
        let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(tool) else {
            return None;
        };
        object.remove("_meta");
        let mut text = String::with_capacity(tool.len());
        canonical(&Value::Object(object), &mut text);
        Some(Self(Sha256::digest(text.as_bytes()).into()))
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

/// Writes `value` in the canonical form (see the module header).
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, value)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&crate::raw_json::json_string(key));
                out.push(':');
                canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        Value::String(s) => out.push_str(&crate::raw_json::json_string(s)),
        other => out.push_str(&other.to_string()),
    }
}

/// What becomes of a tool no pin names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Unpinned {
    /// Listed and callable as the policy says.
    Allow,
    /// Hidden from listings and refused on call (the default: once tools are
    /// pinned, only reviewed tools reach callers).
    Hide,
}

/// `tool_pins` in the plugin configuration.
#[derive(Debug, Deserialize, Default)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawToolPins {
    /// Tools no pin names: `hide` (default) or `allow`.
    pub unpinned: Option<Unpinned>,
    /// Per server (a backend's name; `default` without `backends`): the
    /// server's own tool name -> `sha256:<hex>` of its reviewed definition
    /// (`mcp-filter pin` writes them).
    #[serde(default)]
    pub servers: BTreeMap<String, BTreeMap<String, String>>,
}

/// The name the single upstream has in `tool_pins.servers` without `backends`.
pub const SINGLE_SERVER: &str = "default";

/// The validated pins: per server (by backend index; index 0 without
/// `backends`), the reviewed digest of each pinned tool.
#[derive(Debug, Clone)]
pub struct ToolPins {
    pub unpinned: Unpinned,
    servers: Vec<HashMap<String, ToolDigest>>,
    /// What this worker last saw of each pinned tool; shared by the
    /// configuration's clones (observations, not configuration).
    seen: Rc<RefCell<HashMap<(usize, String), bool>>>,
}

impl PartialEq for ToolPins {
    fn eq(&self, other: &Self) -> bool {
        self.unpinned == other.unpinned && self.servers == other.servers
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

impl RawToolPins {
    /// `backends`: the backend names in index order (`None` without `backends`).
    pub fn compile(self, backends: Option<&[&str]>) -> Result<ToolPins, ConfigError> {
        let count = backends.map_or(1, <[&str]>::len);
        let mut servers = vec![HashMap::new(); count];
        for (server, tools) in self.servers {
            let field = format!("tool_pins.servers.{server}");
            let index = match backends {
                None if server == SINGLE_SERVER => 0,
                None => {
                    return Err(invalid(
                        &field,
                        format!("without `backends` the one server is named `{SINGLE_SERVER}`"),
                    ))
                }
                Some(names) => names
                    .iter()
                    .position(|n| *n == server)
                    .ok_or_else(|| invalid(&field, format!("no backend is named `{server}`")))?,
            };
            let Some(pins) = servers.get_mut(index) else {
                continue;
            };
            for (tool, digest) in tools {
                let parsed = ToolDigest::parse(&digest).ok_or_else(|| {
                    invalid(
                        &format!("{field}.{tool}"),
                        "a pin is `sha256:` and 64 lowercase hex digits",
                    )
                })?;
                pins.insert(tool, parsed);
            }
        }
        Ok(ToolPins {
            unpinned: self.unpinned.unwrap_or(Unpinned::Hide),
            servers,
            seen: Rc::default(),
        })
    }
}

impl ToolPins {
    fn pin(&self, server: usize, tool: &str) -> Option<&ToolDigest> {
        self.servers.get(server)?.get(tool)
    }

    /// Whether `server` has any pin.
    pub fn pins_any(&self, server: usize) -> bool {
        self.servers.get(server).is_some_and(|p| !p.is_empty())
    }

    /// The verdict on a tool `server` lists as `item` (its JSON text) under
    /// its own name `tool`; remembered for calls.
    pub fn judge_listed(&self, server: usize, tool: &str, item: &str) -> PinVerdict {
        let Some(pin) = self.pin(server, tool) else {
            return self.unpinned_verdict();
        };
        let matches = ToolDigest::of(item).as_ref() == Some(pin);
        // Not recorded (never happens: one request at a time): fail closed.
        let Ok(mut seen) = self.seen.try_borrow_mut() else {
            return PinVerdict::Changed;
        };
        seen.insert((server, tool.to_string()), matches);
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
        if self.pin(server, tool).is_none() {
            return self.unpinned_verdict();
        }
        let Ok(seen) = self.seen.try_borrow() else {
            return PinVerdict::Changed;
        };
        match seen.get(&(server, tool.to_string())) {
            Some(false) => PinVerdict::Changed,
            _ => PinVerdict::Pass,
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
