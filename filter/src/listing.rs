//! Filtering `tools/list`, `prompts/list`, `resources/list` and
//! `resources/templates/list` results down to what the caller may use, in a
//! JSON body or in the SSE event that carries the answer.
//!
//! Only the answer to the listing request is touched, and only its item
//! array (and `cacheScope`, forced to `"private"`: the list now depends on the
//! caller). Every other byte, key order, `nextCursor`, other events, keeps
//! its exact text. What cannot be read where policy applies is not passed on:
//! it becomes a JSON-RPC error (fail closed).

use crate::classify::Text;
use crate::raw_json::RawObject;
use crate::jsonrpc::{code, error_body, RequestId};
use crate::policy::SubjectKind;
use crate::sse::{SseError, SseEvent, SseFramer};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
    ResourceTemplates,
}

impl ListKind {
    pub fn from_method(method: &str) -> Option<Self> {
        Some(match method {
            "tools/list" => ListKind::Tools,
            "prompts/list" => ListKind::Prompts,
            "resources/list" => ListKind::Resources,
            "resources/templates/list" => ListKind::ResourceTemplates,
            _ => return None,
        })
    }

    fn array_key(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources => "resources",
            ListKind::ResourceTemplates => "resourceTemplates",
        }
    }

    fn name_key(self) -> &'static str {
        match self {
            ListKind::Tools | ListKind::Prompts => "name",
            ListKind::Resources => "uri",
            ListKind::ResourceTemplates => "uriTemplate",
        }
    }

    /// What a listed item is judged as (a template by its template text).
    pub fn subject_kind(self) -> SubjectKind {
        match self {
            ListKind::Tools => SubjectKind::Tool,
            ListKind::Prompts => SubjectKind::Prompt,
            ListKind::Resources | ListKind::ResourceTemplates => SubjectKind::Resource,
        }
    }
}

/// What one message of the response is, with respect to the listing request.
#[derive(Debug, PartialEq, Eq)]
pub enum Filtered {
    /// Not the answer to the listing (another id, a notification, an error): unchanged.
    Untouched,
    /// The answer, rewritten, and how many items were removed.
    Rewritten { bytes: Vec<u8>, hidden: usize },
}

/// Why the answer could not be filtered (it is then replaced by an error).
#[derive(Debug, PartialEq, Eq)]
pub struct Unfilterable(pub String);

/// Filters one JSON-RPC message if it answers `request_id`.
pub fn filter_message(
    message: &[u8],
    kind: ListKind,
    request_id: &RequestId,
    visible: &mut dyn FnMut(&str) -> bool,
) -> Result<Filtered, Unfilterable> {
    let bad = |why: &str| Unfilterable(why.to_string());
    let object: RawObject<'_> = serde_json::from_slice(message)
        .map_err(|e| Unfilterable(format!("the listing response is not a JSON object: {e}")))?;
    let answers = object
        .get("id")
        .is_some_and(|id| same_id(id.get(), request_id.as_json()));
    if !answers {
        return Ok(Filtered::Untouched);
    }
    let Some(result) = object.get("result") else {
        // An error answer lists nothing.
        return Ok(Filtered::Untouched);
    };
    let result: RawObject<'_> = serde_json::from_str(result.get())
        .map_err(|e| Unfilterable(format!("the listing result is not an object: {e}")))?;
    let array_key = kind.array_key();
    let items = result
        .get(array_key)
        .ok_or_else(|| bad(&format!("the listing result has no `{array_key}`")))?;
    let items: Vec<&RawValue> = serde_json::from_str(items.get())
        .map_err(|_| bad(&format!("`{array_key}` is not an array")))?;

    let mut kept: Vec<&str> = Vec::with_capacity(items.len());
    let mut hidden = 0;
    for item in &items {
        let name = item_name(item.get(), kind.name_key())?;
        if visible(&name) {
            kept.push(item.get());
        } else {
            hidden += 1;
        }
    }

    let array = format!("[{}]", kept.join(","));
    let mut result_text = String::with_capacity(message.len());
    result.write_with(&mut result_text, |key| match key {
        key if key == array_key => Some(array.as_str()),
        "cacheScope" => Some(r#""private""#),
        _ => None,
    });
    let mut text = String::with_capacity(message.len());
    object.write_with(&mut text, |key| {
        (key == "result").then_some(result_text.as_str())
    });
    let bytes = text.into_bytes();
    Ok(Filtered::Rewritten { bytes, hidden })
}

/// The name (or URI) of a listed item: read once, a repeat refused, every
/// other field skipped without building anything (the hot loop of a
/// 1,000-tool listing).
fn item_name<'a>(item: &'a str, key: &'static str) -> Result<Cow<'a, str>, Unfilterable> {
    struct Named<'a>(Option<Cow<'a, str>>);
    struct V(&'static str);
    impl<'de> Visitor<'de> for V {
        type Value = Named<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a listed item (object)")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut name = None;
            while let Some(Text(k)) = map.next_key::<Text<'de>>()? {
                if k == self.0 {
                    if name.is_some() {
                        return Err(de::Error::custom(format_args!("duplicate key `{k}`")));
                    }
                    name = Some(map.next_value::<Text<'de>>()?.0);
                } else {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
            Ok(Named(name))
        }
    }
    let mut de = serde_json::Deserializer::from_str(item);
    let named = de
        .deserialize_map(V(key))
        .map_err(|e| Unfilterable(format!("a listed item is unreadable: {e}")))?;
    named
        .0
        .ok_or_else(|| Unfilterable(format!("a listed item has no string `{key}`")))
}

fn same_id(raw: &str, want: &str) -> bool {
    raw == want
        || serde_json::from_str::<serde_json::Value>(raw).ok()
            == serde_json::from_str::<serde_json::Value>(want).ok()
}

/// The error that replaces an answer that could not be filtered.
pub fn unfilterable_error(request_id: &RequestId, why: &Unfilterable) -> Vec<u8> {
    error_body(
        Some(request_id),
        code::INTERNAL_ERROR,
        &format!("the upstream's listing could not be filtered: {}", why.0),
    )
}

/// Rewrites a whole `application/json` response body.
pub fn filter_json_body(
    body: &[u8],
    kind: ListKind,
    request_id: &RequestId,
    visible: &mut dyn FnMut(&str) -> bool,
) -> (Vec<u8>, usize) {
    match filter_message(body, kind, request_id, visible) {
        Ok(Filtered::Untouched) => (body.to_vec(), 0),
        Ok(Filtered::Rewritten { bytes, hidden }) => (bytes, hidden),
        Err(why) => (unfilterable_error(request_id, &why), 0),
    }
}

/// Rewrites an SSE response chunk by chunk: complete events come out (the
/// answer rewritten), an unfinished one is held back until it completes.
pub struct SseListingFilter {
    framer: SseFramer,
    kind: ListKind,
    request_id: RequestId,
    /// An event outgrew the limit: nothing more is passed, an error ends the stream.
    failed: bool,
    pub hidden: usize,
}

impl SseListingFilter {
    pub fn new(kind: ListKind, request_id: RequestId, max_event_bytes: usize) -> Self {
        Self {
            framer: SseFramer::new(max_event_bytes),
            kind,
            request_id,
            failed: false,
            hidden: 0,
        }
    }

    /// Feeds a chunk; returns the bytes to send on in its place.
    pub fn push(&mut self, chunk: &[u8], visible: &mut dyn FnMut(&str) -> bool) -> Vec<u8> {
        if self.failed {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(chunk.len());
        let (kind, id) = (self.kind, &self.request_id);
        let mut hidden = 0;
        let pushed = self.framer.push(chunk, |event| {
            hidden += rewrite_event(&event, kind, id, visible, &mut out);
        });
        self.hidden += hidden;
        if let Err(SseError::EventTooLarge { limit }) = pushed {
            self.failed = true;
            let why = Unfilterable(format!("an event is larger than {limit} bytes"));
            error_event(&unfilterable_error(&self.request_id, &why), b"\n", &mut out);
        }
        out
    }

    /// End of stream: the held-back bytes of an event that never ended, filtered.
    pub fn finish(&mut self, visible: &mut dyn FnMut(&str) -> bool) -> Vec<u8> {
        let rest = self.framer.finish();
        let mut out = Vec::new();
        if !self.failed && !rest.is_empty() {
            self.hidden += rewrite_event(
                &SseEvent { raw: &rest },
                self.kind,
                &self.request_id,
                visible,
                &mut out,
            );
        }
        out
    }
}

fn error_event(json: &[u8], eol: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"event: message");
    out.extend_from_slice(eol);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(eol);
    out.extend_from_slice(eol);
}

/// Appends the event, rewritten if it carries the answer; returns how many items it hid.
fn rewrite_event(
    event: &SseEvent<'_>,
    kind: ListKind,
    request_id: &RequestId,
    visible: &mut dyn FnMut(&str) -> bool,
    out: &mut Vec<u8>,
) -> usize {
    let Some(data) = event.data() else {
        out.extend_from_slice(event.raw);
        return 0;
    };
    let (replacement, hidden) = match filter_message(&data, kind, request_id, visible) {
        Ok(Filtered::Untouched) => {
            out.extend_from_slice(event.raw);
            return 0;
        }
        Ok(Filtered::Rewritten { bytes, hidden }) => (bytes, hidden),
        Err(why) => (unfilterable_error(request_id, &why), 0),
    };
    let eol: &[u8] = if event.raw.windows(2).any(|w| w == b"\r\n") {
        b"\r\n"
    } else {
        b"\n"
    };
    let mut wrote_data = false;
    for line in crate::sse::lines_with_ends(event.raw) {
        let content = line.content;
        let is_data = content == b"data" || content.starts_with(b"data:");
        if !is_data {
            out.extend_from_slice(line.raw);
            continue;
        }
        if wrote_data {
            continue;
        }
        wrote_data = true;
        // JSON whitespace may hold line breaks; each piece is one `data:` line.
        for piece in replacement.split(|&b| b == b'\n' || b == b'\r') {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(piece);
            out.extend_from_slice(eol);
        }
    }
    hidden
}

#[cfg(test)]
mod tests;
