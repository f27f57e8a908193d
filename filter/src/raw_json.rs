//! JSON read as raw text: an object as its keys and the exact text of each
//! value, and where a value sits in the bytes it was read from. Rewrites then
//! change one value and keep every other byte as the client or server wrote it.

use crate::classify::Text;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

/// A JSON object as its keys and raw values, in order; a repeated key is an error.
pub(crate) struct RawObject<'a>(pub(crate) Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> RawObject<'a> {
    pub(crate) fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

impl<'de> Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::new();
                while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                    if fields.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
                    }
                    fields.push((key, map.next_value()?));
                }
                Ok(RawObject(fields))
            }
        }
        d.deserialize_map(V)
    }
}

/// A string as JSON text (quoted and escaped).
pub(crate) fn json_string(s: &str) -> String {
    // Most names need no escaping: quoted as they are, without serde_json's
    // formatter (one allocation, not two; listings call this per item).
    if s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        let mut quoted = String::with_capacity(s.len() + 2);
        quoted.push('"');
        quoted.push_str(s);
        quoted.push('"');
        return quoted;
    }
    serde_json::Value::String(s.to_string()).to_string()
}

/// Where `inner` (a slice borrowed from `outer`) sits in `outer`.
fn span_in(outer: &[u8], inner: &str) -> Option<Range<usize>> {
    let start = (inner.as_ptr() as usize).checked_sub(outer.as_ptr() as usize)?;
    let end = start.checked_add(inner.len())?;
    (end <= outer.len()).then_some(start..end)
}

/// `outer` with the JSON value `value` (a slice borrowed from `outer`)
/// replaced by the JSON string `with`; every other byte is kept.
pub(crate) fn replace_with_string(outer: &[u8], value: &str, with: &str) -> Option<Vec<u8>> {
    let span = span_in(outer, value)?;
    let head = outer.get(..span.start)?;
    let tail = outer.get(span.end..)?;
    let with = json_string(with);
    let mut out = Vec::with_capacity(head.len() + with.len() + tail.len());
    out.extend_from_slice(head);
    out.extend_from_slice(with.as_bytes());
    out.extend_from_slice(tail);
    Some(out)
}

/// `params.<key>` of one JSON-RPC message, as its raw JSON text.
pub(crate) fn param<'a>(body: &'a [u8], key: &str) -> Option<&'a RawValue> {
    let message: RawObject<'a> = serde_json::from_slice(body).ok()?;
    let params: RawObject<'a> = serde_json::from_str(message.get("params")?.get()).ok()?;
    params.get(key)
}

/// The body of one JSON-RPC message with `params.<path>` (a string, e.g.
/// `["name"]`, or `["ref", "name"]`) replaced by `value`; every other byte is
/// kept. `None` if the body has no such string (the classifier has already
/// refused duplicates and wrong types).
pub fn replace_param_string(body: &[u8], path: &[&str], value: &str) -> Option<Vec<u8>> {
    let (first, rest) = path.split_first()?;
    let mut current = param(body, first)?.get();
    for key in rest {
        let object: RawObject<'_> = serde_json::from_str(current).ok()?;
        current = object.get(key)?.get();
    }
    if !current.starts_with('"') {
        return None;
    }
    replace_with_string(body, current, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_string_is_quoted_as_serde_json_quotes_it() {
        for s in [
            "",
            "gh__create_issue",
            "a\"b",
            "a\\b",
            "line\nbreak",
            "\u{7f}",
            "\u{1f}",
            "ünï",
            "tab\t",
            "</script>",
            "'",
        ] {
            assert_eq!(json_string(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn only_the_named_param_changes() {
        let body = br#"{ "jsonrpc":"2.0", "id":1, "method":"tools/call",
            "params": {"name" : "gh__create", "arguments": {"name": "keep"}} }"#;
        let out = replace_param_string(body, &["name"], "create").unwrap();
        let expected = String::from_utf8_lossy(body).replacen("gh__create", "create", 1);
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn an_escaped_name_is_replaced_whole() {
        let body =
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"g\u0068__x"}}"#;
        let out = replace_param_string(body, &["name"], "x").unwrap();
        assert_eq!(
            out,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#
        );
    }

    #[test]
    fn names_needing_escapes_are_written_as_json() {
        let body = br#"{"params":{"name":"a"}}"#;
        let out = replace_param_string(body, &["name"], "q\"\u{7}").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["params"]["name"], "q\"\u{7}");
    }

    #[test]
    fn missing_or_non_string_params_give_none() {
        assert!(replace_param_string(br#"{"params":{"name":3}}"#, &["name"], "x").is_none());
        assert!(replace_param_string(br#"{"params":{}}"#, &["name"], "x").is_none());
        assert!(replace_param_string(br#"{"id":1}"#, &["name"], "x").is_none());
        assert!(replace_param_string(br#"[]"#, &["name"], "x").is_none());
    }
}
