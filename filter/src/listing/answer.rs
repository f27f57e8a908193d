//! Reading one JSON-RPC message against the listing request it may answer,
//! in one pass over its bytes: the message's keys and raw values, the
//! result's keys and raw values, and the raw text of each listed item.
//!
//! Owns: how a listing's answer is recognised (fail closed on ids) and which
//! keys make it unreadable (repeated, or a key a lenient client reads as one
//! the filter reads). Must not decide or rewrite items (`listing` does).
//!
//! Why a hand-driven serde visitor rather than `RawObject` per level: a
//! 1,000-tool answer is ~120 KB, and reading the message, then its result,
//! then its array as raw text scanned the items three times before each item
//! was read for its name. Here the bytes are scanned once to find the items
//! and once more, item by item, for the names; serde_json still does every
//! scan, so the filter accepts exactly the JSON it accepted before.

use crate::classify::Text;
use crate::keyfold::{lenient_reading, ReadKey};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

use super::{ListKind, Unfilterable};

/// The scalar arms of a visitor whose value may have another shape than
/// the one it wants.
macro_rules! other_shapes {
    () => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Shape::Other)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Shape::Other)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Shape::Other)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Shape::Other)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(Shape::Other)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Shape::Other)
        }
    };
}

/// The keys of a response message the filter reads.
const MESSAGE_KEYS: &[ReadKey] = &[
    ReadKey::new("jsonrpc", "jsonrpc"),
    ReadKey::new("id", "id"),
    ReadKey::new("method", "method"),
    ReadKey::new("result", "result"),
    ReadKey::new("error", "error"),
];

/// One key of an object and its value: raw text, or read further.
pub(super) enum Slot<'a> {
    Raw(&'a RawValue),
    /// The message's `result` (read as [`Body`]) or the result's item array.
    Read,
}

/// An object's keys in order, each with its value.
pub(super) struct Fields<'a>(pub(super) Vec<(Cow<'a, str>, Slot<'a>)>);

impl<'a> Fields<'a> {
    pub(super) fn raw(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().find_map(|(k, v)| match v {
            Slot::Raw(raw) if k == key => Some(*raw),
            _ => None,
        })
    }

    fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    fn push<E: de::Error>(&mut self, key: Cow<'a, str>, slot: Slot<'a>) -> Result<(), E> {
        if self.has(&key) {
            return Err(E::custom(format_args!("duplicate key `{key}`")));
        }
        self.0.push((key, slot));
        Ok(())
    }

    /// Refuses a key a lenient decoder could read as one of `read` without being it.
    fn unambiguous(&self, read: &[ReadKey]) -> Result<(), Unfilterable> {
        for (key, _) in &self.0 {
            if read.iter().any(|r| r.key == key.as_ref()) {
                continue;
            }
            if let Some(read) = lenient_reading(key, read) {
                return Err(Unfilterable(format!(
                    "a key a lenient client reads as `{read}`"
                )));
            }
        }
        Ok(())
    }
}

/// A value the filter wants as an object (the result) or an array (the
/// items), which may turn out to be something else: that only matters if the
/// message is the answer, so it is recorded, not an error.
enum Shape<T> {
    Expected(T),
    Other,
}

/// The message's `result` read as an object.
pub(super) struct Body<'a> {
    pub(super) fields: Fields<'a>,
    /// A key repeated in the result: refused if the message is the answer
    /// (a notification's `result` is not the filter's to judge).
    repeated: Option<String>,
    /// The item array's raw elements, if the array key was there.
    items: Option<Shape<Vec<&'a RawValue>>>,
}

/// A message read against the listing request it may answer.
pub(super) enum Answer<'a> {
    /// Another id, a notification: not the answer.
    Other,
    /// The answer, an error: it lists nothing.
    Error,
    /// A result without the listing's array (unreadable as the answer to a
    /// listing; for a replayed answer, another kind of result).
    Lacking,
    /// The answer's message and result objects, and its items.
    Result {
        message: Fields<'a>,
        result: Body<'a>,
        items: Vec<&'a RawValue>,
    },
}

pub(super) fn read_answer<'a>(
    message: &'a [u8],
    kind: ListKind,
    request_id: &crate::jsonrpc::RequestId,
) -> Result<Answer<'a>, Unfilterable> {
    let mut de = serde_json::Deserializer::from_slice(message);
    let (fields, result) = de
        .deserialize_map(MessageVisitor(kind))
        .and_then(|read| de.end().map(|()| read))
        .map_err(|e| Unfilterable(format!("the listing response is not a JSON object: {e}")))?;
    // A lenient client (Go's `encoding/json`) reads `Result` as `result`:
    // a key the filter would not read but the client would is refused.
    fields.unambiguous(MESSAGE_KEYS)?;
    // Fail closed on ids: a listing POST carries one request, so any
    // response in its answer (no `method`, a `result` or an `error`) is that
    // request's answer, whatever its id says. A JavaScript server echoes an
    // integer id above 2^53 rounded, `1` may come back as `1.0`: matching by
    // id would let such an answer pass unfiltered.
    let is_response = !fields.has("method") && (fields.has("result") || fields.has("error"));
    let answers = is_response
        || fields
            .raw("id")
            .is_some_and(|id| same_id(id.get(), request_id.as_json()));
    if !answers {
        return Ok(Answer::Other);
    }
    let Some(result) = result else {
        return Ok(Answer::Error);
    };
    let Shape::Expected(mut result) = result else {
        return Err(Unfilterable(
            "the listing result is not an object".to_string(),
        ));
    };
    if let Some(key) = &result.repeated {
        return Err(Unfilterable(format!(
            "the listing result is not an object: duplicate key `{key}`"
        )));
    }
    result.fields.unambiguous(&[kind.array_read_key()])?;
    let array_key = kind.array_key();
    let items = match result.items.take() {
        None => return Ok(Answer::Lacking),
        Some(Shape::Other) => return Err(Unfilterable(format!("`{array_key}` is not an array"))),
        Some(Shape::Expected(items)) => items,
    };
    Ok(Answer::Result {
        message: fields,
        result,
        items,
    })
}

fn same_id(raw: &str, want: &str) -> bool {
    raw == want
        || serde_json::from_str::<serde_json::Value>(raw).ok()
            == serde_json::from_str::<serde_json::Value>(want).ok()
}

struct MessageVisitor(ListKind);

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = (Fields<'de>, Option<Shape<Body<'de>>>);
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Fields(Vec::new());
        let mut result = None;
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            if key == "result" && !fields.has("result") {
                result = Some(map.next_value_seed(ResultSeed(self.0))?);
                fields.push(key, Slot::Read)?;
            } else {
                let value = map.next_value()?;
                fields.push(key, Slot::Raw(value))?;
            }
        }
        Ok((fields, result))
    }
}

/// Reads the result as an object, or records that it is not one.
struct ResultSeed(ListKind);

impl<'de> DeserializeSeed<'de> for ResultSeed {
    type Value = Shape<Body<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ResultSeed {
    type Value = Shape<Body<'de>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let array_key = self.0.array_key();
        let mut fields = Fields(Vec::new());
        let mut items = None;
        let mut repeated = None;
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            if fields.has(&key) {
                map.next_value::<IgnoredAny>()?;
                repeated.get_or_insert_with(|| key.into_owned());
            } else if key == array_key {
                items = Some(map.next_value_seed(ItemsSeed)?);
                fields.0.push((key, Slot::Read));
            } else {
                let value = map.next_value()?;
                fields.0.push((key, Slot::Raw(value)));
            }
        }
        Ok(Shape::Expected(Body {
            fields,
            repeated,
            items,
        }))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        drain(seq).map(|()| Shape::Other)
    }
    other_shapes!();
}

/// Reads the item array as each element's raw text, or records that it is
/// not an array.
struct ItemsSeed;

impl<'de> DeserializeSeed<'de> for ItemsSeed {
    type Value = Shape<Vec<&'de RawValue>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed {
    type Value = Shape<Vec<&'de RawValue>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            items.push(item);
        }
        Ok(Shape::Expected(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Shape::Other)
    }
    other_shapes!();
}

fn drain<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// The name (or URI) of a listed item, decoded and as its raw JSON text:
/// read once, a repeat refused, every other field skipped without building
/// anything (the hot loop of a 1,000-tool listing).
pub(super) fn item_name<'a>(
    item: &'a str,
    read: ReadKey,
) -> Result<(Cow<'a, str>, &'a str), Unfilterable> {
    let key = read.key;
    struct Named<'a>(Option<&'a RawValue>);
    struct V(ReadKey);
    impl<'de> Visitor<'de> for V {
        type Value = Named<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a listed item (object)")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut name = None;
            while let Some(Text(k)) = map.next_key::<Text<'de>>()? {
                if k == self.0.key {
                    if name.is_some() {
                        return Err(de::Error::custom(format_args!("duplicate key `{k}`")));
                    }
                    name = Some(map.next_value::<&'de RawValue>()?);
                } else if lenient_reading(&k, &[self.0]).is_some() {
                    // `Name` beside `name`: the client may list the other.
                    return Err(de::Error::custom(format_args!("ambiguous key `{k}`")));
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(Named(name))
        }
    }
    let mut de = serde_json::Deserializer::from_str(item);
    let named = de
        .deserialize_map(V(read))
        .map_err(|e| Unfilterable(format!("a listed item is unreadable: {e}")))?;
    let no_name = || Unfilterable(format!("a listed item has no string `{key}`"));
    let raw = named.0.ok_or_else(no_name)?.get();
    let Text(name) = serde_json::from_str::<Text<'a>>(raw).map_err(|_| no_name())?;
    Ok((name, raw))
}
