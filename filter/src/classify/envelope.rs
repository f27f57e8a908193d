//! The one-pass strict reader of a JSON-RPC message: the message object,
//! its `params` and `params._meta`, read without building a tree. Each key
//! the filter reads is taken once (a duplicate is an error); every other key
//! of those objects is checked against the read ones (see
//! [`crate::keyfold`]) and the first a lenient decoder could take for one is
//! kept, for the caller to refuse.
//!
//! Must not: decide what a message means (the parent module does), or skip
//! a key of a read object without that check.

use crate::keyfold::{lenient_reading, ReadKey};
use crate::reject::{Reason, Rejection};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// The keys the filter reads in a message, in its `params` and in
/// `params._meta` (`cursor` is read by the exchange for gathered listings).
/// Every other key of these objects is checked against them.
pub(super) const MESSAGE_KEYS: &[ReadKey] = &[
    ReadKey::new("jsonrpc", "jsonrpc"),
    ReadKey::new("method", "method"),
    ReadKey::new("id", "id"),
    ReadKey::new("params", "params"),
    ReadKey::new("result", "result"),
    ReadKey::new("error", "error"),
];
pub(super) const PARAMS_KEYS: &[ReadKey] = &[
    ReadKey::new("name", "name"),
    ReadKey::new("uri", "uri"),
    ReadKey::new("cursor", "cursor"),
    ReadKey::new("_meta", "meta"),
    ReadKey::new("ref", "ref"),
    ReadKey::new("notifications", "notifications"),
    ReadKey::new("taskId", "taskid"),
];
/// `params.ref` of `completion/complete`.
pub(super) const REF_KEYS: &[ReadKey] = &[
    ReadKey::new("type", "type"),
    ReadKey::new("name", "name"),
    ReadKey::new("uri", "uri"),
];
/// `params.notifications` of `subscriptions/listen`.
pub(super) const LISTEN_KEYS: &[ReadKey] = &[ReadKey::new(
    "resourceSubscriptions",
    "resourcesubscriptions",
)];
pub(super) const META_KEYS: &[ReadKey] = &[ReadKey::new(
    META_PROTOCOL_VERSION,
    "io.modelcontextprotocol/protocolversion",
)];

/// A string that borrows from the input unless escapes forced a copy.
pub(crate) struct Text<'a>(pub(crate) Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

#[derive(Default)]
pub(super) struct Envelope<'a> {
    pub(super) jsonrpc: Option<Cow<'a, str>>,
    pub(super) method: Option<Cow<'a, str>>,
    pub(super) id: Option<&'a RawValue>,
    pub(super) params: Params<'a>,
    pub(super) has_result: bool,
    pub(super) has_error: bool,
    pub(super) ambiguous: Option<Ambiguous>,
}

/// The first key of an object the filter reads that a lenient decoder could
/// read as one of the filter's keys (see [`crate::keyfold`]).
#[derive(Clone, Copy)]
pub(super) struct Ambiguous {
    /// The path to its object (`params.`) and the read key it could be taken for.
    path: &'static str,
    read_as: &'static str,
}

impl Ambiguous {
    pub(super) fn rejection(self) -> Rejection {
        Rejection::new(
            Reason::AmbiguousKey,
            format!(
                "ambiguous key: a lenient JSON decoder can read a key of this message as `{}{}`; \
                 spell every key exactly as the protocol does",
                self.path, self.read_as
            ),
        )
    }
}

/// Records `key` in `slot` if it is the first key of the object at `path`
/// that a lenient decoder could read as one of `read`.
pub(super) fn note_ambiguous(
    slot: &mut Option<Ambiguous>,
    path: &'static str,
    key: &str,
    read: &[ReadKey],
) {
    if slot.is_none() {
        *slot = lenient_reading(key, read).map(|read_as| Ambiguous { path, read_as });
    }
}

#[derive(Default)]
pub(super) enum Params<'a> {
    #[default]
    Absent,
    NotAnObject,
    Object(ParamFields<'a>),
}

#[derive(Default)]
pub(super) struct ParamFields<'a> {
    pub(super) name: Option<&'a RawValue>,
    pub(super) uri: Option<&'a RawValue>,
    /// `completion/complete`'s reference, read when the method asks for it.
    pub(super) reference: Option<&'a RawValue>,
    /// `subscriptions/listen`'s opt-ins, read when the method asks for it.
    pub(super) notifications: Option<&'a RawValue>,
    /// `tasks/*`'s task id, which 2026-07-28 clients mirror in `Mcp-Name`.
    pub(super) task_id: Option<&'a RawValue>,
    pub(super) protocol_version: Option<Cow<'a, str>>,
    /// In `params` or in `params._meta`.
    pub(super) ambiguous: Option<Ambiguous>,
}

impl<'a> Params<'a> {
    pub(super) fn is_some(&self) -> bool {
        !matches!(self, Params::Absent)
    }

    pub(super) fn take_ambiguous(&mut self) -> Option<Ambiguous> {
        match self {
            Params::Object(fields) => fields.ambiguous.take(),
            _ => None,
        }
    }
}

pub(super) fn once<T, E: de::Error>(slot: &mut Option<T>, key: &str, value: T) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::custom(format_args!("duplicate key `{key}`")));
    }
    *slot = Some(value);
    Ok(())
}

pub(super) fn flag_once<E: de::Error>(flag: &mut bool, key: &str) -> Result<(), E> {
    if *flag {
        return Err(E::custom(format_args!("duplicate key `{key}`")));
    }
    *flag = true;
    Ok(())
}

impl<'de> Deserialize<'de> for Envelope<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Envelope<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON-RPC message object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut env = Envelope::default();
                let mut seen_id = false;
                let mut seen_params = false;
                while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                    match key.as_ref() {
                        "jsonrpc" => once(
                            &mut env.jsonrpc,
                            "jsonrpc",
                            map.next_value::<Text<'de>>()?.0,
                        )?,
                        "method" => {
                            once(&mut env.method, "method", map.next_value::<Text<'de>>()?.0)?
                        }
                        "id" => {
                            flag_once(&mut seen_id, "id")?;
                            let raw: &'de RawValue = map.next_value()?;
                            // `null` is kept so that it is refused as an id, not taken as absent.
                            env.id = Some(raw);
                        }
                        "params" => {
                            flag_once(&mut seen_params, "params")?;
                            env.params = map.next_value::<Params<'de>>()?;
                        }
                        "result" => {
                            flag_once(&mut env.has_result, "result")?;
                            map.next_value::<IgnoredAny>()?;
                        }
                        "error" => {
                            flag_once(&mut env.has_error, "error")?;
                            map.next_value::<IgnoredAny>()?;
                        }
                        _ => {
                            note_ambiguous(&mut env.ambiguous, "", &key, MESSAGE_KEYS);
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(env)
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for Params<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Params<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("params")
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Params::Absent)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Params::NotAnObject)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Params::NotAnObject)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Params::NotAnObject)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Params::NotAnObject)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Params::NotAnObject)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Params::NotAnObject)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = ParamFields::default();
                let mut seen_meta = false;
                let mut seen_cursor = false;
                while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                    match key.as_ref() {
                        "name" => once(&mut fields.name, "params.name", map.next_value()?)?,
                        "uri" => once(&mut fields.uri, "params.uri", map.next_value()?)?,
                        "ref" => once(&mut fields.reference, "params.ref", map.next_value()?)?,
                        "notifications" => once(
                            &mut fields.notifications,
                            "params.notifications",
                            map.next_value()?,
                        )?,
                        "taskId" => once(&mut fields.task_id, "params.taskId", map.next_value()?)?,
                        // Read by the exchange (gathered listings take none).
                        "cursor" => {
                            flag_once(&mut seen_cursor, "params.cursor")?;
                            map.next_value::<IgnoredAny>()?;
                        }
                        "_meta" => {
                            flag_once(&mut seen_meta, "params._meta")?;
                            let meta = map.next_value::<Meta<'de>>()?;
                            fields.protocol_version = meta.version;
                            if fields.ambiguous.is_none() {
                                fields.ambiguous = meta.ambiguous;
                            }
                        }
                        _ => {
                            note_ambiguous(&mut fields.ambiguous, "params.", &key, PARAMS_KEYS);
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Params::Object(fields))
            }
        }
        d.deserialize_any(V)
    }
}

/// `_meta`, read only for the protocol version a 2026-07-28 request carries.
pub(super) struct Meta<'a> {
    pub(super) version: Option<Cow<'a, str>>,
    pub(super) ambiguous: Option<Ambiguous>,
}

const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

impl<'de> Deserialize<'de> for Meta<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Meta<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object for params._meta")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut version = None;
                let mut ambiguous = None;
                while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                    if key == META_PROTOCOL_VERSION {
                        once(
                            &mut version,
                            META_PROTOCOL_VERSION,
                            map.next_value::<Text<'de>>()?.0,
                        )?;
                    } else {
                        note_ambiguous(&mut ambiguous, "params._meta.", &key, META_KEYS);
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Meta { version, ambiguous })
            }
        }
        d.deserialize_map(V)
    }
}

/// `params.ref` of `completion/complete`: what is being completed.
#[derive(Default)]
pub(super) struct Reference<'a> {
    pub(super) kind: Option<Cow<'a, str>>,
    pub(super) name: Option<Cow<'a, str>>,
    pub(super) uri: Option<Cow<'a, str>>,
    pub(super) ambiguous: Option<Ambiguous>,
}

impl<'de> Deserialize<'de> for Reference<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Reference<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object for params.ref")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut r = Reference::default();
                while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                    match key.as_ref() {
                        "type" => once(
                            &mut r.kind,
                            "params.ref.type",
                            map.next_value::<Text<'de>>()?.0,
                        )?,
                        "name" => once(
                            &mut r.name,
                            "params.ref.name",
                            map.next_value::<Text<'de>>()?.0,
                        )?,
                        "uri" => once(
                            &mut r.uri,
                            "params.ref.uri",
                            map.next_value::<Text<'de>>()?.0,
                        )?,
                        _ => {
                            note_ambiguous(&mut r.ambiguous, "params.ref.", &key, REF_KEYS);
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(r)
            }
        }
        d.deserialize_map(V)
    }
}

/// `params.notifications` of `subscriptions/listen`: the resource URIs it
/// opts into (the other opt-ins are flags about listings).
#[derive(Default)]
pub(super) struct Listen<'a> {
    pub(super) resources: Option<Vec<Text<'a>>>,
    pub(super) ambiguous: Option<Ambiguous>,
}

impl<'de> Deserialize<'de> for Listen<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Listen<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object for params.notifications")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut l = Listen::default();
                while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                    if key == "resourceSubscriptions" {
                        once(
                            &mut l.resources,
                            "params.notifications.resourceSubscriptions",
                            map.next_value()?,
                        )?;
                    } else {
                        note_ambiguous(
                            &mut l.ambiguous,
                            "params.notifications.",
                            &key,
                            LISTEN_KEYS,
                        );
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(l)
            }
        }
        d.deserialize_map(V)
    }
}
