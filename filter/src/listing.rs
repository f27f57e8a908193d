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
use crate::jsonrpc::{code, error_body, RequestId};
use crate::keyfold::ReadKey;
use crate::policy::SubjectKind;
use crate::raw_json::json_string;
use crate::sse::{SseError, SseEvent, SseFramer};
use answer::{item_name, read_answer, Answer, Fields, Slot};
use serde_json::value::RawValue;
use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
    ResourceTemplates,
}

impl ListKind {
    /// Every kind, in the order their methods are listed in the spec.
    pub const ALL: [ListKind; 4] = [
        ListKind::Tools,
        ListKind::Prompts,
        ListKind::Resources,
        ListKind::ResourceTemplates,
    ];

    pub fn from_method(method: &str) -> Option<Self> {
        Some(match method {
            "tools/list" => ListKind::Tools,
            "prompts/list" => ListKind::Prompts,
            "resources/list" => ListKind::Resources,
            "resources/templates/list" => ListKind::ResourceTemplates,
            _ => return None,
        })
    }

    pub fn array_key(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources => "resources",
            ListKind::ResourceTemplates => "resourceTemplates",
        }
    }

    /// The listed items' key, as a key a lenient client could misspell.
    fn array_read_key(self) -> ReadKey {
        match self {
            ListKind::Tools => ReadKey::new("tools", "tools"),
            ListKind::Prompts => ReadKey::new("prompts", "prompts"),
            ListKind::Resources => ReadKey::new("resources", "resources"),
            ListKind::ResourceTemplates => ReadKey::new("resourceTemplates", "resourcetemplates"),
        }
    }

    fn name_read_key(self) -> ReadKey {
        match self {
            ListKind::Tools | ListKind::Prompts => ReadKey::new("name", "name"),
            ListKind::Resources => ReadKey::new("uri", "uri"),
            ListKind::ResourceTemplates => ReadKey::new("uriTemplate", "uritemplate"),
        }
    }

    /// The kind of name a backend may rename (tools and prompts).
    pub fn named(self) -> Option<crate::backends::Named> {
        match self {
            ListKind::Tools => Some(crate::backends::Named::Tool),
            ListKind::Prompts => Some(crate::backends::Named::Prompt),
            ListKind::Resources | ListKind::ResourceTemplates => None,
        }
    }

    /// The JSON-RPC method that lists this kind.
    pub fn method(self) -> &'static str {
        match self {
            ListKind::Tools => "tools/list",
            ListKind::Prompts => "prompts/list",
            ListKind::Resources => "resources/list",
            ListKind::ResourceTemplates => "resources/templates/list",
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

/// What becomes of one listed item, decided from its (upstream) name and definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    Hide,
    Keep,
    /// Listed under another name (its public name); every other byte kept.
    Rename(String),
}

impl From<bool> for Listed {
    fn from(visible: bool) -> Self {
        if visible {
            Listed::Keep
        } else {
            Listed::Hide
        }
    }
}

/// Decides each listed item by its name (as listed) and its whole JSON text.
pub type Decide<'a> = dyn FnMut(&str, &str) -> Listed + 'a;

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

/// The items to list, each decided by its name (renamed ones rewritten),
/// and how many were hidden.
fn decide_items<'a>(
    items: &[&'a RawValue],
    kind: ListKind,
    decide: &mut Decide<'_>,
) -> Result<(Vec<Cow<'a, str>>, usize), Unfilterable> {
    let mut kept: Vec<Cow<'a, str>> = Vec::with_capacity(items.len());
    let mut hidden = 0;
    for item in items {
        let text = item.get();
        let (name, raw_name) = item_name(text, kind.name_read_key())?;
        match decide(&name, text) {
            Listed::Hide => hidden += 1,
            Listed::Keep => kept.push(Cow::Borrowed(text)),
            Listed::Rename(public) => {
                let renamed = replace_in(text, raw_name, &public)
                    .ok_or_else(|| Unfilterable("a listed item could not be renamed".into()))?;
                kept.push(Cow::Owned(renamed));
            }
        }
    }
    Ok((kept, hidden))
}

/// Filters one JSON-RPC message if it answers `request_id`.
pub fn filter_message(
    message: &[u8],
    kind: ListKind,
    request_id: &RequestId,
    decide: &mut Decide<'_>,
) -> Result<Filtered, Unfilterable> {
    match read_answer(message, kind, request_id)? {
        Answer::Result {
            message: object,
            result,
            items,
        } => rewrite(message.len(), &object, &result, &items, kind, decide),
        Answer::Lacking => Err(lacking(kind)),
        Answer::Other | Answer::Error => Ok(Filtered::Untouched),
    }
}

fn lacking(kind: ListKind) -> Unfilterable {
    Unfilterable(format!("the listing result has no `{}`", kind.array_key()))
}

/// The answer with only the kept items in its array.
fn rewrite(
    len: usize,
    object: &Fields<'_>,
    result: &answer::Body<'_>,
    items: &[&RawValue],
    kind: ListKind,
    decide: &mut Decide<'_>,
) -> Result<Filtered, Unfilterable> {
    let (kept, hidden) = decide_items(items, kind, decide)?;
    // One copy: the message's keys in order, its result's keys in order,
    // the kept items; every other value as its exact text.
    let mut text = String::with_capacity(len);
    write_object(&mut text, object, false, |text| {
        write_object(text, &result.fields, true, |text| {
            text.push('[');
            for (i, item) in kept.iter().enumerate() {
                if i > 0 {
                    text.push(',');
                }
                text.push_str(item);
            }
            text.push(']');
        })
    });
    Ok(Filtered::Rewritten {
        bytes: text.into_bytes(),
        hidden,
    })
}

/// Writes an object back in its key order: each raw value as its exact text
/// (the result's `cacheScope` as `"private"`), the one read further by `read`.
fn write_object(
    text: &mut String,
    fields: &Fields<'_>,
    is_result: bool,
    read: impl FnOnce(&mut String),
) {
    let mut read = Some(read);
    text.push('{');
    for (i, (key, value)) in fields.0.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&json_string(key));
        text.push(':');
        match value {
            Slot::Raw(_) if is_result && key == "cacheScope" => text.push_str(r#""private""#),
            Slot::Raw(raw) => text.push_str(raw.get()),
            Slot::Read => {
                if let Some(read) = read.take() {
                    read(text)
                }
            }
        }
    }
    text.push('}');
}

/// `item` with its name (`raw_name`, a slice of it) replaced by the JSON string `with`.
fn replace_in(item: &str, raw_name: &str, with: &str) -> Option<String> {
    let start = (raw_name.as_ptr() as usize).checked_sub(item.as_ptr() as usize)?;
    let end = start.checked_add(raw_name.len())?;
    let (head, tail) = (item.get(..start)?, item.get(end..)?);
    let with = json_string(with);
    let mut out = String::with_capacity(head.len() + with.len() + tail.len());
    out.push_str(head);
    out.push_str(&with);
    out.push_str(tail);
    Some(out)
}

/// One page of a listing the filter asked a backend for itself.
#[derive(Debug, PartialEq, Eq)]
pub enum Page {
    /// This message is not the answer (a notification, another id).
    NotTheAnswer,
    /// The answer is a JSON-RPC error.
    Error,
    /// The items to list (decided and renamed) and the cursor of the next page.
    Items {
        items: Vec<String>,
        next_cursor: Option<String>,
        hidden: usize,
    },
}

/// Reads one page of a backend's listing, deciding each item.
pub fn read_page(
    message: &[u8],
    kind: ListKind,
    request_id: &RequestId,
    decide: &mut Decide<'_>,
) -> Result<Page, Unfilterable> {
    let (result, items) = match read_answer(message, kind, request_id)? {
        Answer::Other => return Ok(Page::NotTheAnswer),
        Answer::Error => return Ok(Page::Error),
        Answer::Lacking => return Err(lacking(kind)),
        Answer::Result { result, items, .. } => (result, items),
    };
    let next_cursor = match result.fields.raw("nextCursor") {
        None => None,
        Some(raw) if raw.get() == "null" => None,
        Some(raw) => Some(
            serde_json::from_str::<Text<'_>>(raw.get())
                .map_err(|_| Unfilterable("`nextCursor` is not a string".into()))?
                .0
                .into_owned(),
        ),
    };
    let (kept, hidden) = decide_items(&items, kind, decide)?;
    Ok(Page::Items {
        items: kept.into_iter().map(Cow::into_owned).collect(),
        next_cursor,
        hidden,
    })
}

/// The error that replaces an answer that could not be filtered.
pub fn unfilterable_error(request_id: &RequestId, why: &Unfilterable) -> Vec<u8> {
    unfilterable(Some(request_id), why)
}

/// The same, for an answer whose id is not known (`null`).
fn unfilterable(request_id: Option<&RequestId>, why: &Unfilterable) -> Vec<u8> {
    error_body(
        request_id,
        code::INTERNAL_ERROR,
        &format!("the upstream's listing could not be filtered: {}", why.0),
    )
}

/// Rewrites a whole `application/json` response body; the count of hidden
/// items is `Some` when the body was the listing's answer and was rewritten.
pub fn filter_json_body(
    body: &[u8],
    kind: ListKind,
    request_id: &RequestId,
    decide: &mut Decide<'_>,
) -> (Vec<u8>, Option<usize>) {
    match filter_message(body, kind, request_id, decide) {
        Ok(Filtered::Untouched) => (body.to_vec(), None),
        Ok(Filtered::Rewritten { bytes, hidden }) => (bytes, Some(hidden)),
        Err(why) => (unfilterable_error(request_id, &why), None),
    }
}

/// Rewrites an SSE response chunk by chunk: complete events come out (the
/// answer rewritten), an unfinished one is held back until it completes.
pub struct SseListingFilter {
    framer: SseFramer,
    /// The listing request this stream answers; `None`: a resumed stream,
    /// whose answers are read by their shape (`replay`).
    target: Option<(ListKind, RequestId)>,
    /// An event outgrew the limit: nothing more is passed, an error ends the stream.
    failed: bool,
    pub hidden: usize,
    /// The answer to the listing went by, rewritten.
    pub answered: bool,
}

impl SseListingFilter {
    pub fn new(kind: ListKind, request_id: RequestId, max_event_bytes: usize) -> Self {
        Self::to(Some((kind, request_id)), max_event_bytes)
    }

    /// A resumed stream, which may replay the answer to any listing.
    pub fn replayed(max_event_bytes: usize) -> Self {
        Self::to(None, max_event_bytes)
    }

    fn to(target: Option<(ListKind, RequestId)>, max_event_bytes: usize) -> Self {
        Self {
            framer: SseFramer::new(max_event_bytes),
            target,
            failed: false,
            hidden: 0,
            answered: false,
        }
    }

    /// Feeds a chunk (`end`: the last); returns the bytes to send on in its place.
    pub fn push(&mut self, chunk: &[u8], end: bool, decide: &mut KindDecide<'_>) -> Vec<u8> {
        if self.failed {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(chunk.len());
        let target = self.target.as_ref();
        let mut rewritten = None;
        let mut on_event = |event: SseEvent<'_>| {
            if let Some(hidden) = rewrite_event(&event, target, decide, &mut out) {
                rewritten = Some(rewritten.unwrap_or(0) + hidden);
            }
        };
        let pushed = self.framer.push(chunk, &mut on_event);
        if end && pushed.is_ok() {
            // The held-back bytes of an event that never ended.
            let rest = self.framer.finish();
            if !rest.is_empty() {
                on_event(SseEvent { raw: &rest });
            }
        }
        if let Some(hidden) = rewritten {
            self.hidden += hidden;
            self.answered = true;
        }
        if let Err(SseError::EventTooLarge { limit }) = pushed {
            self.failed = true;
            let why = Unfilterable(format!("an event is larger than {limit} bytes"));
            let id = self.target.as_ref().map(|(_, id)| id);
            error_event(&unfilterable(id, &why), b"\n", &mut out);
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

/// Appends the event, rewritten if it carries the answer (to the target, or
/// on a resumed stream to any listing); returns how many items it hid when
/// it was the answer, rewritten.
fn rewrite_event(
    event: &SseEvent<'_>,
    target: Option<&(ListKind, RequestId)>,
    decide: &mut KindDecide<'_>,
    out: &mut Vec<u8>,
) -> Option<usize> {
    let Some(data) = event.data() else {
        out.extend_from_slice(event.raw);
        return None;
    };
    let filtered = match target {
        Some((kind, id)) => {
            let kind = *kind;
            filter_message(&data, kind, id, &mut |n: &str, i: &str| decide(kind, n, i))
                .map_err(|why| (Some(id.clone()), why))
        }
        None => replay::filter_replayed(&data, decide),
    };
    let (replacement, hidden) = match filtered {
        Ok(Filtered::Untouched) => {
            out.extend_from_slice(event.raw);
            return None;
        }
        Ok(Filtered::Rewritten { bytes, hidden }) => (bytes, Some(hidden)),
        Err((id, why)) => (unfilterable(id.as_ref(), &why), None),
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

mod answer;
mod replay;
#[cfg(test)]
mod tests;

/// Decides a listed item of the given kind by its name and its JSON text.
pub type KindDecide<'a> = dyn FnMut(ListKind, &str, &str) -> Listed + 'a;
