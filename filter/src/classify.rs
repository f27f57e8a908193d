//! Strict classification of an MCP POST body into JSON-RPC messages: kind,
//! method, id and the subject the policy reads (tool, prompt or resource):
//! the one a call names, or the ones a housekeeping request refers to (the
//! prompt or resource template a `completion/complete` completes, the
//! resources a 2026-07-28 `subscriptions/listen` subscribes to).
//!
//! The rule above all: fail closed. The filter and the MCP server must never
//! see two different requests. Where the filter's reading of a body could
//! differ from a server's, the filter judges what the server would see, or
//! refuses the message with a JSON-RPC error and a metric reason. When unsure,
//! refuse.
//!
//! So a key the filter reads that appears twice, an escape that hides a
//! duplicate, a key a lenient decoder could take for a key the filter reads
//! (`Name`, `name\u0000`, `paramſ`: see [`crate::keyfold`]), a batch,
//! trailing bytes or a wrongly typed field is refused. The objects whose keys
//! are read are the message, its `params` (with `taskId`, which 2026-07-28
//! clients mirror in `Mcp-Name`), `params._meta`, `params.ref` and
//! `params.notifications`; every other key of those objects is checked
//! against the read ones. A completion whose `ref` is missing, of an unknown
//! type, or names both a prompt and a resource is refused: a server could
//! complete either. Fields the filter does
//! not read are skipped without building a tree (one pass, no
//! `serde_json::Value`). This module judges bytes; it must not rewrite them
//! or know about policy, routing or headers.

use crate::jsonrpc::RequestId;
use crate::keyfold::{lenient_reading, ReadKey};
use crate::reject::{quote, Reason, Rejection};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Request,
    Notification,
    /// A client's answer to a server-initiated request (sampling, elicitation, roots).
    Response,
}

/// What a message acts on, named as the server will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Tool(String),
    Prompt(String),
    Resource(String),
}

impl Subject {
    pub fn name(&self) -> &str {
        match self {
            Subject::Tool(n) | Subject::Prompt(n) | Subject::Resource(n) => n,
        }
    }
}

/// One classified JSON-RPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub kind: MessageKind,
    /// `None` only for responses.
    pub method: Option<String>,
    pub id: Option<RequestId>,
    /// What a call names as its own subject (`tools/call`, `prompts/get`,
    /// `resources/read`, `resources/subscribe`, `resources/unsubscribe`): the
    /// name `Mcp-Name` mirrors and routing reads.
    pub subject: Option<Subject>,
    /// What a housekeeping request acts on without naming it as its own
    /// subject: the prompt or resource template of a `completion/complete`,
    /// the `resourceSubscriptions` of a `subscriptions/listen`. The policy
    /// judges the request as each of them.
    pub refers_to: Vec<Subject>,
    /// `params.taskId` of `tasks/get`, `tasks/result`, `tasks/cancel` and
    /// `tasks/update`: not a subject (the call that created the task was
    /// judged), but what a 2026-07-28 client mirrors in `Mcp-Name`.
    pub task_id: Option<String>,
    /// `params._meta["io.modelcontextprotocol/protocolVersion"]` (2026-07-28 requests).
    pub protocol_version: Option<String>,
}

/// A classified POST body: one message, or the elements of an allowed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    pub messages: Vec<Message>,
    pub batch: bool,
}

impl Classified {
    /// The single message of a non-batch body.
    pub fn single(&self) -> Option<&Message> {
        if self.batch {
            None
        } else {
            self.messages.first()
        }
    }
}

/// Where each method keeps its subject.
fn subject_of(
    method: &str,
    name: Option<String>,
    uri: Option<String>,
) -> Result<Option<Subject>, &'static str> {
    match method {
        "tools/call" => name.map(|n| Some(Subject::Tool(n))).ok_or("params.name"),
        "prompts/get" => name.map(|n| Some(Subject::Prompt(n))).ok_or("params.name"),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            uri.map(|u| Some(Subject::Resource(u))).ok_or("params.uri")
        }
        _ => Ok(None),
    }
}

/// The keys the filter reads in a message, in its `params` and in
/// `params._meta` (`cursor` is read by the exchange for gathered listings).
/// Every other key of these objects is checked against them.
const MESSAGE_KEYS: &[ReadKey] = &[
    ReadKey::new("jsonrpc", "jsonrpc"),
    ReadKey::new("method", "method"),
    ReadKey::new("id", "id"),
    ReadKey::new("params", "params"),
    ReadKey::new("result", "result"),
    ReadKey::new("error", "error"),
];
const PARAMS_KEYS: &[ReadKey] = &[
    ReadKey::new("name", "name"),
    ReadKey::new("uri", "uri"),
    ReadKey::new("cursor", "cursor"),
    ReadKey::new("_meta", "meta"),
    ReadKey::new("ref", "ref"),
    ReadKey::new("notifications", "notifications"),
    ReadKey::new("taskId", "taskid"),
];
/// The keys read in `params.ref` (a completion's prompt or resource template).
const REF_KEYS: &[ReadKey] = &[
    ReadKey::new("type", "type"),
    ReadKey::new("name", "name"),
    ReadKey::new("uri", "uri"),
];
/// The keys read in `params.notifications` (a 2026-07-28 `subscriptions/listen`).
const NOTIFICATIONS_KEYS: &[ReadKey] = &[ReadKey::new(
    "resourceSubscriptions",
    "resourcesubscriptions",
)];
const META_KEYS: &[ReadKey] = &[ReadKey::new(
    META_PROTOCOL_VERSION,
    "io.modelcontextprotocol/protocolversion",
)];

/// Deepest nesting of arrays and objects accepted. The filter itself skips
/// nested values without recursing, but the upstream's parser may not.
pub const MAX_DEPTH: usize = 128;

/// Classifies a complete POST body.
pub fn classify(body: &[u8], allow_batches: bool) -> Result<Classified, Rejection> {
    // JSON text is UTF-8 (RFC 8259). The parser skips the fields the filter
    // does not read without decoding them, so check every byte here: an
    // upstream could otherwise read bytes the filter never judged.
    if let Err(e) = std::str::from_utf8(body) {
        return Err(Rejection::new(
            Reason::ParseError,
            format!(
                "request body is not valid UTF-8 (at byte {})",
                e.valid_up_to()
            ),
        ));
    }
    check_depth(body)?;
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        if !allow_batches {
            return Err(Rejection::new(
                Reason::BatchNotAllowed,
                "JSON-RPC batches are not accepted; send one message per request",
            ));
        }
        let elements: Vec<&RawValue> = serde_json::from_slice(body).map_err(json_rejection)?;
        if elements.is_empty() {
            return Err(Rejection::new(
                Reason::InvalidRequest,
                "empty JSON-RPC batch",
            ));
        }
        let messages = elements
            .into_iter()
            .map(|raw| classify_message(raw.get().as_bytes()))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Classified {
            messages,
            batch: true,
        });
    }
    Ok(Classified {
        messages: vec![classify_message(body)?],
        batch: false,
    })
}

fn classify_message(bytes: &[u8]) -> Result<Message, Rejection> {
    let mut env: Envelope<'_> = serde_json::from_slice(bytes).map_err(json_rejection)?;

    let id = match env.id {
        None => None,
        Some(raw) => Some(RequestId::from_raw(raw).ok_or_else(|| {
            Rejection::new(
                Reason::InvalidRequest,
                "`id` must be a string or an integer",
            )
        })?),
    };
    if let Some(ambiguous) = env.ambiguous.take().or_else(|| env.params.take_ambiguous()) {
        return Err(ambiguous.rejection().with_id(id));
    }
    if env.jsonrpc.as_deref() != Some("2.0") {
        return Err(
            Rejection::new(Reason::InvalidRequest, r#"`jsonrpc` must be "2.0""#).with_id(id),
        );
    }

    let Some(method) = env.method else {
        // No method: only a response (result xor error, with an id) is valid.
        if env.has_result == env.has_error || id.is_none() || env.params.is_some() {
            return Err(Rejection::new(
                Reason::InvalidRequest,
                "not a JSON-RPC request, notification or response",
            )
            .with_id(id));
        }
        return Ok(Message {
            kind: MessageKind::Response,
            method: None,
            id,
            subject: None,
            refers_to: Vec::new(),
            task_id: None,
            protocol_version: None,
        });
    };
    if env.has_result || env.has_error {
        return Err(Rejection::new(
            Reason::InvalidRequest,
            "a message with `method` cannot carry `result` or `error`",
        )
        .with_id(id));
    }
    if method.is_empty() {
        return Err(Rejection::new(Reason::InvalidRequest, "`method` is empty").with_id(id));
    }

    let params = match env.params {
        Params::Absent => ParamFields::default(),
        Params::NotAnObject => {
            return Err(
                Rejection::new(Reason::InvalidParams, "`params` must be an object").with_id(id),
            )
        }
        Params::Object(fields) => fields,
    };
    let invalid_params = |field: &str| {
        Rejection::new(
            Reason::InvalidParams,
            format!("`{field}` must be a string for {}", quote(&method)),
        )
        .with_id(id.clone())
    };
    let name = params
        .name
        .map(|raw| text_of(raw).ok_or_else(|| invalid_params("params.name")))
        .transpose()?;
    let uri = params
        .uri
        .map(|raw| text_of(raw).ok_or_else(|| invalid_params("params.uri")))
        .transpose()?;
    let subject = subject_of(&method, name, uri).map_err(|field| {
        Rejection::new(
            Reason::InvalidParams,
            format!("{} requires `{field}`", quote(&method)),
        )
        .with_id(id.clone())
    })?;
    let refers_to = match method.as_ref() {
        COMPLETE => vec![completion_subject(params.reference).map_err(|r| r.with_id(id.clone()))?],
        LISTEN => listened_resources(params.notifications).map_err(|r| r.with_id(id.clone()))?,
        _ => Vec::new(),
    };
    let task_id = match (method.as_ref(), params.task_id) {
        (TASK_GET | TASK_RESULT | TASK_CANCEL | TASK_UPDATE, Some(raw)) => {
            Some(text_of(raw).ok_or_else(|| invalid_params("params.taskId"))?)
        }
        _ => None,
    };

    Ok(Message {
        kind: if id.is_some() {
            MessageKind::Request
        } else {
            MessageKind::Notification
        },
        method: Some(method.into_owned()),
        id,
        subject,
        refers_to,
        task_id,
        protocol_version: params.protocol_version.map(Cow::into_owned),
    })
}

const COMPLETE: &str = "completion/complete";
const LISTEN: &str = "subscriptions/listen";
const TASK_GET: &str = "tasks/get";
const TASK_RESULT: &str = "tasks/result";
const TASK_CANCEL: &str = "tasks/cancel";
const TASK_UPDATE: &str = "tasks/update";

/// The prompt or resource template a `completion/complete` completes, read
/// by the `type` of `params.ref` as the SDKs read it. A `ref` that is
/// missing, of an unknown type, or that a server could read as the other
/// kind (it names both a `name` and a `uri`) is refused.
fn completion_subject(reference: Option<&RawValue>) -> Result<Subject, Rejection> {
    let invalid = |detail: &'static str| Rejection::new(Reason::InvalidParams, detail);
    let Some(raw) = reference else {
        return Err(invalid("`completion/complete` requires `params.ref`"));
    };
    let [kind, name, uri] = read_object(raw, "params.ref.", REF_KEYS)?;
    if name.is_some() && uri.is_some() {
        return Err(invalid(
            "`params.ref` names both a prompt (`name`) and a resource (`uri`): send one",
        ));
    }
    let text =
        |raw: Option<&RawValue>, detail| raw.and_then(text_of).ok_or_else(|| invalid(detail));
    match text(kind, "`params.ref.type` must be a string")?.as_str() {
        "ref/prompt" => Ok(Subject::Prompt(text(
            name,
            "`params.ref.name` must be a string",
        )?)),
        "ref/resource" => Ok(Subject::Resource(text(
            uri,
            "`params.ref.uri` must be a string",
        )?)),
        _ => Err(invalid(
            "`params.ref.type` is neither `ref/prompt` nor `ref/resource`",
        )),
    }
}

/// The resources a 2026-07-28 `subscriptions/listen` subscribes to:
/// `params.notifications.resourceSubscriptions`, each judged as reading it.
fn listened_resources(notifications: Option<&RawValue>) -> Result<Vec<Subject>, Rejection> {
    let Some(raw) = notifications else {
        return Ok(Vec::new());
    };
    let [Some(uris), ..] = read_object(raw, "params.notifications.", NOTIFICATIONS_KEYS)? else {
        return Ok(Vec::new());
    };
    let uris: Vec<Text<'_>> = serde_json::from_slice(uris.get().as_bytes()).map_err(|_| {
        Rejection::new(
            Reason::InvalidParams,
            "`params.notifications.resourceSubscriptions` must be an array of strings",
        )
    })?;
    Ok(uris
        .into_iter()
        .map(|uri| Subject::Resource(uri.0.into_owned()))
        .collect())
}

/// The raw values of `keys` (at most three) in a nested object the filter
/// reads at `path` (given with a trailing dot): a key repeated is an invalid request (as in `params`), a
/// key a lenient decoder could take for one of them is refused, anything but
/// an object is invalid params.
fn read_object<'a>(
    raw: &'a RawValue,
    path: &'static str,
    keys: &'static [ReadKey],
) -> Result<[Option<&'a RawValue>; 3], Rejection> {
    if !raw.get().starts_with('{') {
        return Err(Rejection::new(
            Reason::InvalidParams,
            format!("`{}` must be an object", path.trim_end_matches('.')),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(raw.get().as_bytes());
    let object = de::DeserializeSeed::deserialize(KeyedObject { path, keys }, &mut de)
        .map_err(json_rejection)?;
    match object.ambiguous {
        Some(ambiguous) => Err(ambiguous.rejection()),
        None => Ok(object.values),
    }
}

/// Refuses bodies nested deeper than [`MAX_DEPTH`] (brackets inside strings
/// do not count). Malformed JSON is left for the parser to report.
fn check_depth(body: &[u8]) -> Result<(), Rejection> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(Rejection::new(
                        Reason::InvalidRequest,
                        format!("JSON nested deeper than {MAX_DEPTH} levels"),
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// A syntax problem is a parse error; valid JSON of the wrong shape (including
/// a duplicate key) is an invalid request.
fn json_rejection(e: serde_json::Error) -> Rejection {
    match e.classify() {
        serde_json::error::Category::Data => Rejection::new(
            Reason::InvalidRequest,
            format!("not a valid JSON-RPC message: {e}"),
        ),
        _ => Rejection::new(
            Reason::ParseError,
            format!("request body is not valid JSON: {e}"),
        ),
    }
}

/// The decoded text of a raw JSON string, `None` if it is not a string.
pub(crate) fn text_of(raw: &RawValue) -> Option<String> {
    serde_json::from_str::<Text<'_>>(raw.get())
        .ok()
        .map(|t| t.0.into_owned())
}

// ---- one-pass strict envelope ------------------------------------------------

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
struct Envelope<'a> {
    jsonrpc: Option<Cow<'a, str>>,
    method: Option<Cow<'a, str>>,
    id: Option<&'a RawValue>,
    params: Params<'a>,
    has_result: bool,
    has_error: bool,
    ambiguous: Option<Ambiguous>,
}

/// The first key of an object the filter reads that a lenient decoder could
/// read as one of the filter's keys (see [`crate::keyfold`]).
#[derive(Clone, Copy)]
struct Ambiguous {
    /// The path to its object (`params.`) and the read key it could be taken for.
    path: &'static str,
    read_as: &'static str,
}

impl Ambiguous {
    fn rejection(self) -> Rejection {
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
fn note_ambiguous(slot: &mut Option<Ambiguous>, path: &'static str, key: &str, read: &[ReadKey]) {
    if slot.is_none() {
        *slot = lenient_reading(key, read).map(|read_as| Ambiguous { path, read_as });
    }
}

#[derive(Default)]
enum Params<'a> {
    #[default]
    Absent,
    NotAnObject,
    Object(ParamFields<'a>),
}

#[derive(Default)]
struct ParamFields<'a> {
    name: Option<&'a RawValue>,
    uri: Option<&'a RawValue>,
    reference: Option<&'a RawValue>,
    notifications: Option<&'a RawValue>,
    task_id: Option<&'a RawValue>,
    protocol_version: Option<Cow<'a, str>>,
    /// In `params` or in `params._meta`.
    ambiguous: Option<Ambiguous>,
}

impl<'a> Params<'a> {
    fn is_some(&self) -> bool {
        !matches!(self, Params::Absent)
    }

    fn take_ambiguous(&mut self) -> Option<Ambiguous> {
        match self {
            Params::Object(fields) => fields.ambiguous.take(),
            _ => None,
        }
    }
}

fn once<T, E: de::Error>(slot: &mut Option<T>, key: &str, value: T) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::custom(format_args!("duplicate key `{key}`")));
    }
    *slot = Some(value);
    Ok(())
}

fn flag_once<E: de::Error>(flag: &mut bool, key: &str) -> Result<(), E> {
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
                        // Read for `completion/complete` and `subscriptions/listen`.
                        "ref" => once(&mut fields.reference, "params.ref", map.next_value()?)?,
                        "notifications" => once(
                            &mut fields.notifications,
                            "params.notifications",
                            map.next_value()?,
                        )?,
                        // Read for `tasks/*`, mirrored in `Mcp-Name` by 2026-07-28 clients.
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

/// A nested object read for some of its keys (`params.ref`,
/// `params.notifications`); one visitor for all, to keep the wasm small.
struct KeyedObject {
    /// Its path with a trailing dot (`params.ref.`).
    path: &'static str,
    keys: &'static [ReadKey],
}

struct Keyed<'a> {
    values: [Option<&'a RawValue>; 3],
    ambiguous: Option<Ambiguous>,
}

impl<'de> de::DeserializeSeed<'de> for KeyedObject {
    type Value = Keyed<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for KeyedObject {
    type Value = Keyed<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Keyed {
            values: [None; 3],
            ambiguous: None,
        };
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            let slot = self
                .keys
                .iter()
                .position(|k| k.key == key)
                .and_then(|i| out.values.get_mut(i));
            match slot {
                Some(Some(_)) => {
                    return Err(de::Error::custom(format_args!(
                        "duplicate key `{}{key}`",
                        self.path
                    )))
                }
                Some(slot) => *slot = Some(map.next_value()?),
                None => {
                    if out.ambiguous.is_none() {
                        out.ambiguous = lenient_reading(&key, self.keys).map(|read_as| Ambiguous {
                            path: self.path,
                            read_as,
                        });
                    }
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

/// `_meta`, read only for the protocol version a 2026-07-28 request carries.
struct Meta<'a> {
    version: Option<Cow<'a, str>>,
    ambiguous: Option<Ambiguous>,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> Message {
        let c = classify(body.as_bytes(), false).unwrap_or_else(|r| panic!("{body}: {r:?}"));
        c.single().unwrap().clone()
    }

    fn refused(body: &str) -> Rejection {
        classify(body.as_bytes(), false).expect_err(body)
    }

    #[test]
    fn invalid_utf8_anywhere_is_a_parse_error() {
        // In a field the filter skips, in the name, in a key: all refused,
        // since an upstream parser may read those bytes differently.
        for bytes in [
            &b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"x\":\"\xff\"}}"[..],
            &b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\xc3\"}}"[..],
            &b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"\xed\xa0\x80\":1}"[..],
        ] {
            let rejection = classify(bytes, true).expect_err("invalid UTF-8 accepted");
            assert_eq!(rejection.reason, Reason::ParseError);
        }
    }

    #[test]
    fn tools_call_names_its_tool() {
        let m = ok(
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"add","arguments":{"a":2,"b":40}}}"#,
        );
        assert_eq!(m.kind, MessageKind::Request);
        assert_eq!(m.method.as_deref(), Some("tools/call"));
        assert_eq!(m.id.as_ref().unwrap().as_json(), "3");
        assert_eq!(m.subject, Some(Subject::Tool("add".into())));
    }

    #[test]
    fn prompts_and_resources_name_their_subject() {
        let m =
            ok(r#"{"jsonrpc":"2.0","id":"a","method":"prompts/get","params":{"name":"greet"}}"#);
        assert_eq!(m.subject, Some(Subject::Prompt("greet".into())));
        let m = ok(
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///x"}}"#,
        );
        assert_eq!(m.subject, Some(Subject::Resource("file:///x".into())));
        let m =
            ok(r#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"u"}}"#);
        assert_eq!(m.subject, Some(Subject::Resource("u".into())));
    }

    #[test]
    fn a_completion_refers_to_the_prompt_or_resource_template_it_completes() {
        let m = ok(
            r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"greet","title":"Greet"},"argument":{"name":"name","value":"Al"}}}"#,
        );
        assert_eq!(m.subject, None, "a completion names no subject of its own");
        assert_eq!(m.refers_to, [Subject::Prompt("greet".into())]);
        let m = ok(
            r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"argument":{"name":"id","value":"1"}, "ref" : {"uri":"file:///docs/{name}","type":"ref\u002fresource"}}}"#,
        );
        assert_eq!(
            m.refers_to,
            [Subject::Resource("file:///docs/{name}".into())]
        );
        // Other messages refer to nothing, even with a `ref`.
        let m =
            ok(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","ref":5}}"#);
        assert!(m.refers_to.is_empty());
    }

    #[test]
    fn a_completion_a_server_could_read_otherwise_is_refused() {
        let complete = |params: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":9,"method":"completion/complete","params":{params}}}"#
            )
        };
        for (params, reason, says) in [
            (
                r#"{"argument":{"name":"a","value":""}}"#,
                Reason::InvalidParams,
                "requires `params.ref`",
            ),
            (
                r#"{"ref":null}"#,
                Reason::InvalidParams,
                "must be an object",
            ),
            (
                r#"{"ref":"ref/prompt"}"#,
                Reason::InvalidParams,
                "must be an object",
            ),
            (
                r#"{"ref":[{"type":"ref/prompt","name":"a"}]}"#,
                Reason::InvalidParams,
                "must be an object",
            ),
            (
                r#"{"ref":{"name":"a"}}"#,
                Reason::InvalidParams,
                "`params.ref.type` must be a string",
            ),
            (
                r#"{"ref":{"type":5,"name":"a"}}"#,
                Reason::InvalidParams,
                "`params.ref.type` must be a string",
            ),
            (
                r#"{"ref":{"type":"ref/tool","name":"a"}}"#,
                Reason::InvalidParams,
                "neither",
            ),
            (
                r#"{"ref":{"type":"REF/PROMPT","name":"a"}}"#,
                Reason::InvalidParams,
                "neither",
            ),
            (
                r#"{"ref":{"type":"ref/prompt"}}"#,
                Reason::InvalidParams,
                "`params.ref.name` must be a string",
            ),
            (
                r#"{"ref":{"type":"ref/prompt","name":7}}"#,
                Reason::InvalidParams,
                "`params.ref.name` must be a string",
            ),
            (
                r#"{"ref":{"type":"ref/resource","name":"a"}}"#,
                Reason::InvalidParams,
                "`params.ref.uri` must be a string",
            ),
            // A server dispatching on the key present rather than on `type`.
            (
                r#"{"ref":{"type":"ref/prompt","name":"ok","uri":"file:///secret"}}"#,
                Reason::InvalidParams,
                "both",
            ),
            (
                r#"{"ref":{"type":"ref/resource","uri":"file:///ok","name":"secret"}}"#,
                Reason::InvalidParams,
                "both",
            ),
            (
                r#"{"ref":{"type":"ref/prompt","name":"ok","name":"secret"}}"#,
                Reason::InvalidRequest,
                "duplicate key `params.ref.name`",
            ),
            (
                r#"{"ref":{"type":"ref/prompt","type":"ref/resource","name":"a"}}"#,
                Reason::InvalidRequest,
                "duplicate key `params.ref.type`",
            ),
            (
                r#"{"ref":{"type":"ref/prompt","name":"a"},"ref":{"type":"ref/prompt","name":"b"}}"#,
                Reason::InvalidRequest,
                "duplicate key `params.ref`",
            ),
            // Keys a lenient decoder reads as the ones the filter reads.
            (
                r#"{"ref":{"type":"ref/prompt","name":"ok","Name":"secret"}}"#,
                Reason::AmbiguousKey,
                "`params.ref.name`",
            ),
            (
                r#"{"ref":{"Type":"ref/resource","type":"ref/prompt","name":"ok"}}"#,
                Reason::AmbiguousKey,
                "`params.ref.type`",
            ),
            (
                r#"{"ref":{"type":"ref/resource","uri":"file:///ok","URI":"file:///secret"}}"#,
                Reason::AmbiguousKey,
                "`params.ref.uri`",
            ),
            (
                r#"{"ref":{"type":"ref/prompt","name":"ok","na\u200bme":"secret"}}"#,
                Reason::AmbiguousKey,
                "`params.ref.name`",
            ),
            (
                r#"{"ref":{"type":"ref/prompt","name":"ok"},"Ref":{"type":"ref/prompt","name":"secret"}}"#,
                Reason::AmbiguousKey,
                "`params.ref`",
            ),
        ] {
            let body = complete(params);
            let r = refused(&body);
            assert_eq!(r.reason, reason, "{body}: {r:?}");
            assert!(r.detail.contains(says), "{body}: {}", r.detail);
            // A key repeated in `params` itself stops the parse before the id is known.
            if !(reason == Reason::InvalidRequest && says.ends_with("`params.ref`")) {
                assert_eq!(
                    r.id.map(|id| id.as_json().to_string()).as_deref(),
                    Some("9"),
                    "{body}"
                );
            }
        }
    }

    #[test]
    fn a_2026_listen_refers_to_the_resources_it_subscribes_to() {
        let listen = |params: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":3,"method":"subscriptions/listen","params":{params}}}"#
            )
        };
        let m = ok(&listen(
            r#"{"_meta":{},"notifications":{"toolsListChanged":true,"resourceSubscriptions":["file:///a","file:///b"]}}"#,
        ));
        assert_eq!(m.subject, None);
        assert_eq!(
            m.refers_to,
            [
                Subject::Resource("file:///a".into()),
                Subject::Resource("file:///b".into())
            ]
        );
        for params in [
            r#"{"notifications":{"toolsListChanged":true}}"#,
            r#"{"notifications":{"resourceSubscriptions":[]}}"#,
            r#"{"_meta":{}}"#,
        ] {
            assert!(ok(&listen(params)).refers_to.is_empty(), "{params}");
        }
        for (params, reason, says) in [
            (
                r#"{"notifications":true}"#,
                Reason::InvalidParams,
                "must be an object",
            ),
            (
                r#"{"notifications":{"resourceSubscriptions":"file:///a"}}"#,
                Reason::InvalidParams,
                "array of strings",
            ),
            (
                r#"{"notifications":{"resourceSubscriptions":["file:///a",5]}}"#,
                Reason::InvalidParams,
                "array of strings",
            ),
            (
                r#"{"notifications":{"resourceSubscriptions":["a"],"resourceSubscriptions":["b"]}}"#,
                Reason::InvalidRequest,
                "duplicate key",
            ),
            (
                r#"{"notifications":{"resourceSubscriptions":["a"],"ResourceSubscriptions":["b"]}}"#,
                Reason::AmbiguousKey,
                "resourceSubscriptions",
            ),
            (
                r#"{"notifications":{"resource_subscriptions":["b"]}}"#,
                Reason::AmbiguousKey,
                "resourceSubscriptions",
            ),
            (
                r#"{"notifications":{},"Notifications":{"resourceSubscriptions":["b"]}}"#,
                Reason::AmbiguousKey,
                "`params.notifications`",
            ),
        ] {
            let body = listen(params);
            let r = refused(&body);
            assert_eq!(r.reason, reason, "{body}: {r:?}");
            assert!(r.detail.contains(says), "{body}: {}", r.detail);
        }
    }

    #[test]
    fn a_task_request_carries_its_task_id_for_the_mirrored_header() {
        for method in ["tasks/get", "tasks/result", "tasks/cancel", "tasks/update"] {
            let m = ok(&format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{"taskId":"t\u002d1"}}}}"#
            ));
            assert_eq!(m.task_id.as_deref(), Some("t-1"), "{method}");
            assert_eq!(m.subject, None);
            let r = refused(&format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{"taskId":5}}}}"#
            ));
            assert_eq!(r.reason, Reason::InvalidParams, "{method}");
        }
        assert_eq!(
            ok(r#"{"jsonrpc":"2.0","id":1,"method":"tasks/list","params":{"taskId":"t"}}"#).task_id,
            None
        );
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":"a","taskId":"b"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":"a","TaskID":"b"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"task_id":"b"}}"#,
        ] {
            assert!(classify(body.as_bytes(), false).is_err(), "{body}");
        }
    }

    #[test]
    fn notifications_and_responses_are_told_apart() {
        let m = ok(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert_eq!(m.kind, MessageKind::Notification);
        assert!(m.id.is_none());
        let m = ok(r#"{"jsonrpc":"2.0","id":5,"result":{"roots":[]}}"#);
        assert_eq!(m.kind, MessageKind::Response);
        assert!(m.method.is_none());
        let m = ok(r#"{"jsonrpc":"2.0","id":5,"error":{"code":-1,"message":"no"}}"#);
        assert_eq!(m.kind, MessageKind::Response);
    }

    #[test]
    fn the_2026_protocol_version_is_read_from_meta() {
        let m = ok(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","x":{}}}}"#,
        );
        assert_eq!(m.protocol_version.as_deref(), Some("2026-07-28"));
    }

    #[test]
    fn escaped_names_are_decoded_as_the_server_will_decode_them() {
        let m = ok(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools\u002fcall","params":{"name":"s\u0065cret"}}"#,
        );
        assert_eq!(m.method.as_deref(), Some("tools/call"));
        assert_eq!(m.subject, Some(Subject::Tool("secret".into())));
    }

    #[test]
    fn duplicate_keys_on_the_policy_path_are_refused() {
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","name":"secret"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","n\u0061me":"secret"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"x"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"},"params":{"name":"b"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","jsonrpc":"2.0","id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"a","uri":"b"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{},"_meta":{}}}"#,
        ] {
            let r = refused(body);
            assert_eq!(r.reason, Reason::InvalidRequest, "{body}");
            assert!(r.detail.contains("duplicate key"), "{body}: {}", r.detail);
        }
    }

    #[test]
    fn names_that_are_not_strings_are_invalid_params_with_the_id() {
        for name in ["5", "null", "{}", "[]", "true"] {
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":{name}}}}}"#
            );
            let r = refused(&body);
            assert_eq!(r.reason, Reason::InvalidParams, "{body}");
            assert_eq!(r.id.unwrap().as_json(), "7");
        }
    }

    #[test]
    fn a_call_without_its_subject_is_invalid_params() {
        assert_eq!(
            refused(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#).reason,
            Reason::InvalidParams
        );
        assert_eq!(
            refused(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#).reason,
            Reason::InvalidParams
        );
        assert_eq!(
            refused(r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"name":"x"}}"#)
                .reason,
            Reason::InvalidParams
        );
        assert_eq!(
            refused(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["secret"]}"#).reason,
            Reason::InvalidParams
        );
    }

    #[test]
    fn malformed_json_is_a_parse_error() {
        for body in [
            "",
            "{",
            "not json",
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"} x"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}{"jsonrpc":"2.0","id":2,"method":"ping"}"#,
            "\u{feff}{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}",
        ] {
            assert_eq!(refused(body).reason, Reason::ParseError, "{body:?}");
        }
        let invalid_utf8 = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"\xff\"}}";
        assert_eq!(
            classify(invalid_utf8, false).unwrap_err().reason,
            Reason::ParseError
        );
    }

    #[test]
    fn deep_nesting_is_refused_without_exhausting_the_stack() {
        let depth = 100_000;
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"a","arguments":{}{}}}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let r = classify(body.as_bytes(), false).expect_err("deep nesting must be refused");
        assert_eq!(r.reason, Reason::InvalidRequest);
        assert!(r.detail.contains("nested deeper"), "{}", r.detail);
        let at_limit = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"a","arguments":{{"s":"[[[[{{{{","v":{}{}}}}}}}"#,
            "[".repeat(MAX_DEPTH - 3),
            "]".repeat(MAX_DEPTH - 3)
        );
        assert!(
            classify(at_limit.as_bytes(), false).is_ok(),
            "brackets in strings do not count"
        );
    }

    #[test]
    fn non_jsonrpc_shapes_are_invalid_requests() {
        for body in [
            r#"{"id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":5}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":""}"#,
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#,
            r#"{"jsonrpc":"2.0","result":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}"#,
            r#""just a string""#,
            "42",
            "null",
        ] {
            assert_eq!(refused(body).reason, Reason::InvalidRequest, "{body}");
        }
    }

    #[test]
    fn batches_are_refused_unless_allowed_and_then_every_element_is_classified() {
        let body = r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"secret"}}]"#;
        assert_eq!(refused(body).reason, Reason::BatchNotAllowed);
        assert_eq!(
            refused(&format!("  \n{body}")).reason,
            Reason::BatchNotAllowed
        );
        let c = classify(body.as_bytes(), true).unwrap();
        assert!(c.batch);
        assert!(c.single().is_none());
        assert_eq!(c.messages.len(), 2);
        assert_eq!(c.messages[1].subject, Some(Subject::Tool("secret".into())));
        assert_eq!(
            classify(b"[]", true).unwrap_err().reason,
            Reason::InvalidRequest
        );
        let bad =
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}]"#;
        assert_eq!(
            classify(bad.as_bytes(), true).unwrap_err().reason,
            Reason::InvalidRequest
        );
    }

    #[test]
    fn unknown_fields_are_skipped() {
        let m = ok(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","extra":[1,{"a":null}],"params":{"name":"x","arguments":{"name":"y","name":"z"}}}"#,
        );
        assert_eq!(m.subject, Some(Subject::Tool("x".into())));
    }

    /// Bodies a lenient server (Go `encoding/json` and kin) reads differently
    /// from the filter: each names the key it hides behind.
    const AMBIGUOUS: &[&str] = &[
        // Go matches struct fields case-insensitively: runs `secret`.
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","Name":"secret"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"NAME":"secret"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","\u004eame":"secret"}}"#,
        // A key with a NUL or a space that a decoder strips or trims.
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name\u0000":"secret"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","nam\u0000e":"secret"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"," name ":"secret"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","na\u200bme":"secret"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","\ufeffname":"secret"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name\u0085":"secret"}}"#,
        // Characters outside ASCII that fold or normalise onto ASCII letters.
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","\uff4e\uff41\uff4d\uff45":"secret"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///ok","ur\u0131":"file:///secret"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///ok","URI":"file:///secret"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"},"paramſ":{"name":"secret"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"},"param\u017f":{"name":"secret"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","\u212aname":"secret"}}"#,
        // The method: a Go server runs a tool call the filter took for a ping.
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","Method":"tools/call","params":{"name":"secret"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","METHOD":"tools/call","params":{"name":"secret"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"},"Params":{"name":"secret"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"ID":2,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","\u0130d":2,"method":"ping"}"#,
        r#"{"JSONRPC":"2.0","jsonrpc":"2.0","id":1,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","Error":{"code":1,"message":"x"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{},"Result":{}}"#,
        // encoding/json/v2 `case:ignore` also ignores `_` and `-`.
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","na_me":"secret"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"json-rpc":"2.0","method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"meta":{"io.modelcontextprotocol/protocolVersion":"2025-06-18"}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_Meta":{}}}"#,
        // `_meta` and the cursor are read too.
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"io.modelcontextprotocol/protocolversion":"2025-06-18"}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"Cursor":"abc"}}"#,
    ];

    #[test]
    fn keys_a_lenient_decoder_reads_as_a_read_key_are_refused() {
        for body in AMBIGUOUS {
            let r = refused(body);
            assert_eq!(r.reason, Reason::AmbiguousKey, "{body}: {r:?}");
            let reply = r.reply();
            assert_eq!(reply.status, 400, "{body}");
            let v: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
            assert_eq!(v["error"]["code"], -32600, "{body}");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("ambiguous key"),
                "{body}: {v}"
            );
        }
    }

    #[test]
    fn an_ambiguous_key_is_refused_with_the_request_id_and_in_batches() {
        let r = refused(
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"Name":"secret","name":"echo"}}"#,
        );
        assert_eq!(r.reason, Reason::AmbiguousKey);
        assert_eq!(r.id.unwrap().as_json(), "7");
        assert!(r.detail.contains("`params.name`"), "{}", r.detail);
        let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","NAME":"secret"}}]"#;
        assert_eq!(
            classify(batch.as_bytes(), true).unwrap_err().reason,
            Reason::AmbiguousKey
        );
    }

    #[test]
    fn keys_no_decoder_reads_as_a_read_key_still_pass() {
        let m = ok(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","extra":1,"Names":2,"params":{"name":"echo","names":1,"arguments":{"Name":"x","NAME":"y","paramſ":1,"nam\u0000e":2},"_meta":{"progressToken":1,"io.modelcontextprotocol/related-task":{"Name":1}},"x\u00e9":1}}"#,
        );
        assert_eq!(m.subject, Some(Subject::Tool("echo".into())));
        let m = ok(
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}"#,
        );
        assert_eq!(m.method.as_deref(), Some("initialize"));
    }

    #[test]
    fn every_read_key_spelled_exactly_passes() {
        let m = ok(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"name":"a","uri":"b","cursor":"c","_meta":{"io.modelcontextprotocol/protocolVersion":"v"}}}"#,
        );
        assert_eq!(m.protocol_version.as_deref(), Some("v"));
        assert_eq!(
            ok(r#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"m"}}"#).kind,
            MessageKind::Response
        );
        let r = refused(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"a","cursor":"b"}}"#,
        );
        assert!(
            r.detail.contains("duplicate key `params.cursor`"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn the_read_key_lists_are_consistent() {
        for read in [
            MESSAGE_KEYS,
            PARAMS_KEYS,
            META_KEYS,
            REF_KEYS,
            NOTIFICATIONS_KEYS,
        ] {
            assert!(read.iter().all(ReadKey::is_consistent));
        }
    }
}
