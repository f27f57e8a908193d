//! Strict classification of an MCP POST body into JSON-RPC messages: kind,
//! method, id and the subject the policy reads (tool, prompt or resource).
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
//! are read are the message, its `params` and `params._meta`; every other key
//! of those objects is checked against the read ones. Fields the filter does
//! not read are skipped without building a tree (one pass, no
//! `serde_json::Value`). This module judges bytes; it must not rewrite them
//! or know about policy, routing or headers.

use crate::jsonrpc::RequestId;
use crate::reject::{quote, Reason, Rejection};
use serde_json::value::RawValue;
use std::borrow::Cow;

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
    pub subject: Option<Subject>,
    /// Resource URIs the message opts into besides its subject
    /// (`subscriptions/listen`'s `resourceSubscriptions`): each is judged as
    /// reading that resource.
    pub resources: Vec<String>,
    /// `params.taskId` of `tasks/get`, `tasks/result`, `tasks/cancel` and
    /// `tasks/update`: not a subject (the call that made the task was
    /// judged), but what 2026-07-28 clients mirror in `Mcp-Name` (SEP-2663).
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

/// Why a nested object the filter must read could not be.
enum Unread {
    /// A field the method requires is absent (or of an unknown kind).
    Missing(&'static str),
    Ambiguous(envelope::Ambiguous),
    Malformed(serde_json::Error),
}

/// What `completion/complete` completes: the prompt (`ref/prompt`, by name)
/// or the resource template (`ref/resource`, by URI). The completion follows
/// that subject's decision; a reference of another kind is refused.
fn completed(reference: Option<&RawValue>) -> Result<Subject, Unread> {
    let raw = reference.ok_or(Unread::Missing("params.ref"))?;
    let r: envelope::Reference<'_> = serde_json::from_str(raw.get()).map_err(Unread::Malformed)?;
    if let Some(ambiguous) = r.ambiguous {
        return Err(Unread::Ambiguous(ambiguous));
    }
    // A server dispatching on the key present rather than on `type` could
    // complete the other one.
    if r.name.is_some() && r.uri.is_some() {
        return Err(Unread::Missing("params.ref` with one of `name` and `uri"));
    }
    match r.kind.as_deref() {
        Some("ref/prompt") => r
            .name
            .map(|n| Subject::Prompt(n.into_owned()))
            .ok_or(Unread::Missing("params.ref.name")),
        Some("ref/resource") => r
            .uri
            .map(|u| Subject::Resource(u.into_owned()))
            .ok_or(Unread::Missing("params.ref.uri")),
        _ => Err(Unread::Missing(
            "params.ref.type` of `ref/prompt` or `ref/resource",
        )),
    }
}

/// The resource URIs `subscriptions/listen` opts into (none without
/// `params.notifications.resourceSubscriptions`).
fn listened(notifications: Option<&RawValue>) -> Result<Vec<String>, Unread> {
    let Some(raw) = notifications else {
        return Ok(Vec::new());
    };
    let l: envelope::Listen<'_> = serde_json::from_str(raw.get()).map_err(Unread::Malformed)?;
    if let Some(ambiguous) = l.ambiguous {
        return Err(Unread::Ambiguous(ambiguous));
    }
    Ok(l.resources
        .unwrap_or_default()
        .into_iter()
        .map(|t| t.0.into_owned())
        .collect())
}

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
            resources: Vec::new(),
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
    let requires = |field: &str| {
        Rejection::new(
            Reason::InvalidParams,
            format!("{} requires `{field}`", quote(&method)),
        )
        .with_id(id.clone())
    };
    let unread = |e: Unread| match e {
        Unread::Missing(field) => requires(field),
        Unread::Ambiguous(a) => a.rejection().with_id(id.clone()),
        Unread::Malformed(e) => Rejection::new(
            Reason::InvalidParams,
            format!("malformed params for {}: {e}", quote(&method)),
        )
        .with_id(id.clone()),
    };
    let subject = match method.as_ref() {
        "completion/complete" => Some(completed(params.reference).map_err(unread)?),
        _ => subject_of(&method, name, uri).map_err(requires)?,
    };
    let resources = if method == "subscriptions/listen" {
        listened(params.notifications).map_err(unread)?
    } else {
        Vec::new()
    };
    let task_id = match (method.as_ref(), params.task_id) {
        ("tasks/get" | "tasks/result" | "tasks/cancel" | "tasks/update", Some(raw)) => {
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
        resources,
        task_id,
        protocol_version: params.protocol_version.map(Cow::into_owned),
    })
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

mod envelope;

pub(crate) use envelope::Text;
use envelope::{Envelope, ParamFields, Params};

#[cfg(test)]
mod tests {
    use super::envelope::{MESSAGE_KEYS, META_KEYS, PARAMS_KEYS};
    use super::*;
    use crate::keyfold::ReadKey;

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

    /// Completion follows what it completes; a reference the filter cannot
    /// pin down is refused, never judged as "no subject".
    #[test]
    fn completion_names_the_prompt_or_resource_it_completes() {
        let complete = |r: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":4,"method":"completion/complete","params":{{"ref":{r},"argument":{{"name":"a","value":"x"}}}}}}"#
            )
        };
        let m = ok(&complete(
            r#"{"type":"ref/prompt","name":"greet","title":"Greet"}"#,
        ));
        assert_eq!(m.subject, Some(Subject::Prompt("greet".into())));
        let m = ok(&complete(
            r#"{"type":"ref/resource","uri":"file:///{path}"}"#,
        ));
        assert_eq!(m.subject, Some(Subject::Resource("file:///{path}".into())));
        for (r, reason) in [
            ("null", Reason::InvalidParams),
            (r#""greet""#, Reason::InvalidParams),
            (r#"{"type":"ref/prompt"}"#, Reason::InvalidParams),
            (r#"{"type":"ref/tool","name":"x"}"#, Reason::InvalidParams),
            (r#"{"name":"greet"}"#, Reason::InvalidParams),
            (
                r#"{"type":"ref/prompt","name":"a","name":"b"}"#,
                Reason::InvalidParams,
            ),
            (
                r#"{"type":"ref/prompt","name":"a","Name":"b"}"#,
                Reason::AmbiguousKey,
            ),
            (
                r#"{"type":"ref/prompt","name":"a","ur\u0130":"b"}"#,
                Reason::AmbiguousKey,
            ),
        ] {
            let rejection = refused(&complete(r));
            assert_eq!(rejection.reason, reason, "{r}: {rejection:?}");
            assert_eq!(rejection.id.as_ref().map(|i| i.as_json()), Some("4"), "{r}");
        }
        let missing = r#"{"jsonrpc":"2.0","id":4,"method":"completion/complete","params":{"argument":{"name":"a","value":"x"}}}"#;
        assert_eq!(refused(missing).reason, Reason::InvalidParams);
        let lenient = r#"{"jsonrpc":"2.0","id":4,"method":"completion/complete","params":{"Ref":{"type":"ref/prompt","name":"a"}}}"#;
        assert_eq!(refused(lenient).reason, Reason::AmbiguousKey);
    }

    #[test]
    fn a_completion_naming_both_a_prompt_and_a_resource_is_refused() {
        for r in [
            r#"{"type":"ref/prompt","name":"ok","uri":"file:///secret"}"#,
            r#"{"type":"ref/resource","uri":"file:///ok","name":"secret"}"#,
        ] {
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":4,"method":"completion/complete","params":{{"ref":{r},"argument":{{"name":"a","value":"x"}}}}}}"#
            );
            let rejection = refused(&body);
            assert_eq!(rejection.reason, Reason::InvalidParams, "{r}");
            assert!(
                rejection.detail.contains("one of `name` and `uri`"),
                "{}",
                rejection.detail
            );
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
    fn subscriptions_listen_names_the_resources_it_opts_into() {
        let listen = |n: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":5,"method":"subscriptions/listen","params":{{"_meta":{{}},"notifications":{n}}}}}"#
            )
        };
        let m = ok(&listen(
            r#"{"toolsListChanged":true,"resourceSubscriptions":["file:///a","file:///b"]}"#,
        ));
        assert_eq!(m.resources, ["file:///a", "file:///b"]);
        assert_eq!(m.subject, None);
        assert!(ok(&listen(r#"{"toolsListChanged":true}"#))
            .resources
            .is_empty());
        for n in [
            r#"{"resourceSubscriptions":"file:///a"}"#,
            r#"{"resourceSubscriptions":[1]}"#,
            r#"{"resourceSubscriptions":[],"resourceSubscriptions":["file:///a"]}"#,
        ] {
            assert_eq!(refused(&listen(n)).reason, Reason::InvalidParams, "{n}");
        }
        assert_eq!(
            refused(&listen(r#"{"resource_subscriptions":["file:///a"]}"#)).reason,
            Reason::AmbiguousKey
        );
        // Only subscriptions/listen reads them.
        let other = r#"{"jsonrpc":"2.0","id":5,"method":"ping","params":{"notifications":{"resourceSubscriptions":["x"]}}}"#;
        assert!(ok(other).resources.is_empty());
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
        for read in [MESSAGE_KEYS, PARAMS_KEYS, META_KEYS] {
            assert!(read.iter().all(ReadKey::is_consistent));
        }
    }
}
