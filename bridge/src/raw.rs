//! Messages forwarded as their sender wrote them. The SDK parses every
//! message into its own types, and those forget members they do not know: a
//! newer server's tool annotations, a client's new request parameters. So
//! the bridge keeps each message as received beside its typed form and
//! forwards that: a client's request goes to the server with its own
//! parameters (only `_meta`'s progress token is the bridge's), the server's
//! result, request or notification reaches the client whole, and so does the
//! client's answer to the server's request ([`WholeResult`]; over Streamable
//! HTTP with `replies`).
//!
//! Owns: [`Raw`] (a message as received, carried in the typed message's
//! extensions), the line transport that attaches it ([`Lines`]: a child's
//! stdio, or the bridge's own stdio under `connect`), the table of a child's
//! whole answers ([`Answers`]), and the other end: results kept per
//! [`Channel`] (an HTTP exchange, a legacy SSE session, `connect`'s stdio)
//! and put back into the answer as it leaves ([`whole_messages`] over HTTP,
//! [`Channel::restore`] on the others). The SDK answers with its typed
//! result in between; the exchange's own table is emptied when it ends.
//! Must not: route anything (that is `proxy`), or let through what the typed
//! model refuses: the raw form replaces a typed one only after that parsed as
//! the right kind of message (a result is only used for a request that
//! succeeded). Hand-written rather than the SDK's line transport, which
//! yields only typed messages.

use crate::replies;
use crate::reply;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;
use rmcp::model::{
    ClientResult, CustomRequest, CustomResult, GetExtensions, JsonRpcMessage, RequestId,
    ServerJsonRpcMessage, ServerNotification, ServerResult,
};
use rmcp::service::ServiceRole;
use rmcp::service::{RequestContext, RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

/// A JSON-RPC message exactly as its sender wrote it (as JSON: member order
/// and spacing are not kept, members are).
#[derive(Clone, Debug)]
pub struct Raw(pub Arc<Value>);

/// A POST's body as JSON, kept for the session that serves it to find its
/// request in.
#[derive(Clone, Debug)]
struct Body(Arc<Value>);

/// Marks a request the bridge forwards to a child: its answer is kept whole.
#[derive(Clone, Debug)]
pub struct KeepAnswer;

/// What a child or remote server said, kept whole until the bridge uses it:
/// the `result` of its answers to requests marked [`KeepAnswer`] (by the
/// request id), and, from a remote server whose messages arrive typed, its
/// own requests (by id) and notifications (by their typed form).
#[derive(Default)]
pub struct Answers {
    results: Mutex<HashMap<RequestId, Option<Value>>>,
    /// Requests given up before they were sent (a remote's client sends from
    /// a task of its own): their answers are not expected.
    abandoned: Mutex<VecDeque<RequestId>>,
    /// The SDK's own `initialize` request to the server, whose answer is
    /// kept too.
    initialize: Mutex<Option<RequestId>>,
    heard: Mutex<VecDeque<(String, Value)>>,
}

/// Messages heard and not yet forwarded, at most (the oldest go first: a
/// message the SDK dropped is never asked for).
const HEARD_MAX: usize = 256;

impl Answers {
    /// Before the request is written: its answer cannot arrive earlier.
    pub fn expect(&self, id: RequestId) {
        if let Ok(mut abandoned) = self.abandoned.lock() {
            if let Some(at) = abandoned.iter().position(|a| *a == id) {
                abandoned.remove(at);
                return;
            }
        }
        if let Ok(mut results) = self.results.lock() {
            results.insert(id, None);
        }
    }

    pub fn record(&self, id: &RequestId, result: Value) {
        if let Ok(mut results) = self.results.lock() {
            if let Some(slot) = results.get_mut(id) {
                *slot = Some(result);
            }
        }
    }

    /// The answer's whole result, if it came; the request is forgotten either
    /// way (an answer arriving later is not kept).
    pub fn take(&self, id: &RequestId) -> Option<Value> {
        let taken = self.results.lock().ok()?.remove(id);
        if taken.is_none() {
            // Not expected yet: if it is sent after all, it is not.
            if let Ok(mut abandoned) = self.abandoned.lock() {
                abandoned.push_back(id.clone());
                while abandoned.len() > HEARD_MAX {
                    abandoned.pop_front();
                }
            }
        }
        taken.flatten()
    }

    /// The SDK's `initialize` request `id` goes out: its answer is kept.
    fn initializing(&self, id: RequestId) {
        if let Ok(mut initialize) = self.initialize.lock() {
            *initialize = Some(id.clone());
        }
        self.expect(id);
    }

    /// The server's `initialize` result as written, once (after the SDK's
    /// handshake).
    pub fn initialize_result(&self) -> Option<Value> {
        let id = self.initialize.lock().ok()?.take()?;
        self.take(&id)
    }

    /// Records what a message going out to the server means for its
    /// answer: kept if it is marked [`KeepAnswer`] or is the `initialize`.
    pub fn sending<M: Attach + Initializes>(&self, message: &M) {
        if let Some(id) = message.keeps_answer() {
            self.expect(id);
        } else if let Some(id) = message.initialize_id() {
            self.initializing(id);
        }
    }

    /// A request or notification as the server wrote it, before the SDK
    /// parses it into `typed`.
    pub fn hear(&self, typed: &ServerJsonRpcMessage, raw: Value) {
        // Forwarded in their typed form (pings answered, progress and
        // cancellation routed by the SDK): nobody would ask for them.
        let method = raw.get("method").and_then(Value::as_str);
        if matches!(
            method,
            Some("ping" | "notifications/progress" | "notifications/cancelled")
        ) {
            return;
        }
        let key = match typed {
            JsonRpcMessage::Request(request) => request_key(&request.id),
            JsonRpcMessage::Notification(n) => match notification_key(&n.notification) {
                Some(key) => key,
                None => return,
            },
            _ => return,
        };
        if let Ok(mut heard) = self.heard.lock() {
            heard.push_back((key, raw));
            while heard.len() > HEARD_MAX {
                heard.pop_front();
            }
        }
    }

    /// The server's request `id` as written, if it was heard.
    pub fn heard_request(&self, id: &RequestId) -> Option<Value> {
        self.take_heard(&request_key(id))
    }

    /// The oldest notification heard whose typed form is `notification`'s.
    pub fn heard_notification(&self, notification: &ServerNotification) -> Option<Value> {
        self.take_heard(&notification_key(notification)?)
    }

    fn take_heard(&self, key: &str) -> Option<Value> {
        let mut heard = self.heard.lock().ok()?;
        let at = heard.iter().position(|(k, _)| k == key)?;
        heard.remove(at).map(|(_, raw)| raw)
    }
}

fn request_key(id: &RequestId) -> String {
    format!("request {id}")
}

/// A notification's typed form, without `_meta` (which the SDK moves out of
/// the message before the bridge sees it).
fn notification_key(notification: &ServerNotification) -> Option<String> {
    let mut value = serde_json::to_value(notification).ok()?;
    if let Some(params) = value.get_mut("params").and_then(Value::as_object_mut) {
        params.remove("_meta");
    }
    Some(format!("notification {value}"))
}

/// The request `id` of `context` as its client wrote it: from the line it
/// came on, or from the POST body that carried it.
pub fn request_of<R: ServiceRole>(context: &RequestContext<R>) -> Option<Arc<Value>> {
    if let Some(Raw(raw)) = context.extensions.get::<Raw>() {
        return Some(raw.clone());
    }
    let Body(body) = context
        .extensions
        .get::<axum::http::request::Parts>()?
        .extensions
        .get::<Body>()?;
    let same_id = |message: &Value| {
        message
            .get("id")
            .and_then(|id| serde_json::from_value::<RequestId>(id.clone()).ok())
            .is_some_and(|id| id == context.id)
            && message.get("method").is_some()
    };
    // One message: the SDK refuses a batch before any session sees it.
    same_id(body).then(|| body.clone())
}

/// A request as a custom request of the same method and parameters: what
/// the SDK serializes as written. `_meta` is left out: the caller sets the
/// request's meta (its own progress token among the client's members).
pub fn custom_request(raw: &Value) -> Option<CustomRequest> {
    let method = raw.get("method")?.as_str()?;
    let params = raw.get("params").cloned().map(|mut params| {
        if let Some(members) = params.as_object_mut() {
            members.remove("_meta");
        }
        params
    });
    Some(CustomRequest::new(method, params))
}

/// The method and parameters of a notification or request, as written.
pub fn method_and_params(raw: &Value) -> Option<(String, Option<Value>)> {
    Some((
        raw.get("method")?.as_str()?.to_string(),
        raw.get("params").cloned(),
    ))
}

/// Where answers leave the bridge: one HTTP exchange, one legacy SSE
/// session, or `connect`'s stdio. Results kept for it wait in [`TABLE`] by
/// its number and the request id until its answer leaves, or until it ends
/// ([`Ending`]); nothing is kept for a channel that has ended.
#[derive(Clone, Debug)]
pub struct Channel(u64);

/// Channels open now, and the whole results waiting to leave on them.
struct Table {
    open: BTreeSet<u64>,
    kept: BTreeMap<(u64, String), Kept>,
}

/// A result as its server wrote it, for the SDK's typed answer.
enum Kept {
    /// It replaces the typed result.
    Whole(Value),
    /// Its members the typed result lacks are added, at any depth; the
    /// typed result's own stay (an `initialize` result, whose protocol
    /// version the SDK negotiates per client).
    Under(Value),
}

/// `whole`'s members that `typed` lacks, added to it, at every depth.
fn fill_in(typed: &mut Value, whole: Value) {
    let (Value::Object(typed), Value::Object(whole)) = (typed, whole) else {
        return;
    };
    for (key, member) in whole {
        match typed.get_mut(&key) {
            Some(own) => fill_in(own, member),
            None => {
                typed.insert(key, member);
            }
        }
    }
}

static NEXT_CHANNEL: AtomicU64 = AtomicU64::new(1);
const KEPT_PER_CHANNEL: usize = 256;
static TABLE: Mutex<Table> = Mutex::new(Table {
    open: BTreeSet::new(),
    kept: BTreeMap::new(),
});

fn id_key(id: &Value) -> String {
    id.to_string()
}

/// The keys of one channel's entries.
fn of(channel: u64) -> std::ops::Range<(u64, String)> {
    (channel, String::new())..(channel + 1, String::new())
}

impl Channel {
    /// A new channel, open until the [`Ending`] is dropped.
    pub fn open() -> (Self, Ending) {
        let number = NEXT_CHANNEL.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut table) = TABLE.lock() {
            table.open.insert(number);
        }
        (Self(number), Ending(number))
    }

    /// The answer `message` (a JSON-RPC message going out on this channel)
    /// with the whole result kept for it, if one was: whether it changed.
    pub fn restore(&self, message: &mut Value) -> bool {
        // Only an answer (the bridge's own requests to the client count ids
        // of their own, which may equal a client's).
        if message.get("method").is_some() {
            return false;
        }
        let Some(id) = message.get("id").map(id_key) else {
            return false;
        };
        let whole = TABLE
            .lock()
            .ok()
            .and_then(|mut table| table.kept.remove(&(self.0, id)));
        match (whole, message.get_mut("result")) {
            (Some(Kept::Whole(whole)), Some(result)) => {
                *result = whole;
                true
            }
            (Some(Kept::Under(whole)), Some(result)) => {
                fill_in(result, whole);
                true
            }
            _ => false,
        }
    }

    /// Keeps `whole` for the answer to request `id`, if this channel is open
    /// (at most [`KEPT_PER_CHANNEL`]: an answer the SDK dropped, its request
    /// cancelled, is never asked for).
    fn keep(&self, id: &Value, whole: Kept) {
        if let Ok(mut table) = TABLE.lock() {
            if table.open.contains(&self.0)
                && table.kept.range(of(self.0)).count() < KEPT_PER_CHANNEL
            {
                table.kept.insert((self.0, id_key(id)), whole);
            }
        }
    }

    /// A request `id` starts on this channel: nothing kept under its id
    /// (from an earlier request the SDK did not answer) may answer it.
    fn starts(&self, id: &RequestId) {
        let (Ok(id), Ok(mut table)) = (serde_json::to_value(id), TABLE.lock()) else {
            return;
        };
        table.kept.remove(&(self.0, id_key(&id)));
    }

    /// Whether anything waits to go out on this channel (else its messages
    /// pass as they are, unparsed).
    fn waits(&self) -> bool {
        TABLE
            .lock()
            .map(|table| table.kept.range(of(self.0)).next().is_some())
            .unwrap_or(false)
    }
}

/// Keeps `whole` as the result of the request `context` serves, to go out
/// in place of the SDK's typed form of it (if its channel is still open).
pub fn keep<R: ServiceRole>(context: &RequestContext<R>, whole: Value) {
    keep_as(context, Kept::Whole(whole));
}

/// Keeps `whole`'s members for the `initialize` result `context` answers:
/// what the typed result lacks is added to it.
pub fn keep_under<R: ServiceRole>(context: &RequestContext<R>, whole: Value) {
    keep_as(context, Kept::Under(whole));
}

fn keep_as<R: ServiceRole>(context: &RequestContext<R>, whole: Kept) {
    let channel = context.extensions.get::<Channel>().or_else(|| {
        context
            .extensions
            .get::<axum::http::request::Parts>()?
            .extensions
            .get::<Channel>()
    });
    if let (Some(channel), Ok(id)) = (channel, serde_json::to_value(&context.id)) {
        channel.keep(&id, whole);
    }
}

/// Closes a channel when dropped: what was kept for it is forgotten (its
/// answers will not leave), and nothing more is kept for it.
pub struct Ending(u64);

impl Drop for Ending {
    fn drop(&mut self) {
        if let Ok(mut table) = TABLE.lock() {
            table.open.remove(&self.0);
            let keys: Vec<_> = table
                .kept
                .range(of(self.0))
                .map(|(k, _)| k.clone())
                .collect();
            for key in keys {
                table.kept.remove(&key);
            }
        }
    }
}

/// The HTTP side: a POST's JSON body is kept for [`request_of`] (bounded like
/// the SDK's own limit: a larger body is refused here, 413), and the
/// answers in its response, JSON or an event stream, get their whole results
/// back.
pub async fn whole_messages(State(limit): State<usize>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return reply::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            -32600,
            "the message is larger than --max-message-bytes",
        );
    };
    let (channel, ending) = Channel::open();
    let body = serde_json::from_slice::<Value>(&bytes).ok();
    // A client's answer to the child's request: held while the SDK handles
    // this POST (see `replies`).
    let _posted = body
        .as_ref()
        .and_then(|value| replies::Posted::hold(&parts.headers, value));
    if let Some(value) = body {
        parts.extensions.insert(Body(Arc::new(value)));
    }
    parts.extensions.insert(channel.clone());
    let response = next.run(Request::from_parts(parts, bytes.into())).await;
    let content_type = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if content_type.starts_with("application/json") {
        let (parts, body) = response.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
            return reply::error(StatusCode::BAD_GATEWAY, -32603, "the answer was cut short");
        };
        let restored = restore_json(&channel, &bytes).unwrap_or(bytes.to_vec());
        drop(ending);
        return Response::from_parts(parts, axum::body::Body::from(restored));
    }
    if content_type.starts_with("text/event-stream") {
        let (parts, body) = response.into_parts();
        let events = Events {
            channel,
            pending: Vec::new(),
            _ending: ending,
        };
        let stream = futures::stream::unfold(
            (body.into_data_stream(), events),
            |(mut body, mut events)| async move {
                let chunk = match body.next().await {
                    Some(Ok(chunk)) => Ok(axum::body::Bytes::from(events.feed(&chunk))),
                    Some(Err(e)) => Err(e),
                    // An unfinished last event goes out as it is.
                    None if !events.pending.is_empty() => {
                        Ok(axum::body::Bytes::from(std::mem::take(&mut events.pending)))
                    }
                    None => return None,
                };
                Some((chunk, (body, events)))
            },
        );
        return Response::from_parts(parts, axum::body::Body::from_stream(stream));
    }
    response
}

/// A JSON answer (one message or a batch) with its whole results back;
/// `None` when nothing changed (it then goes out byte for byte).
fn restore_json(channel: &Channel, bytes: &[u8]) -> Option<Vec<u8>> {
    if !channel.waits() {
        return None;
    }
    let mut value: Value = serde_json::from_slice(bytes).ok()?;
    let changed = match &mut value {
        Value::Array(batch) => batch
            .iter_mut()
            .fold(false, |changed, m| channel.restore(m) | changed),
        message => channel.restore(message),
    };
    changed.then(|| serde_json::to_vec(&value).ok()).flatten()
}

/// An event stream passing through: whole events, each `data` that is an
/// answer with its whole result back. Bytes of an unfinished event wait.
struct Events {
    channel: Channel,
    pending: Vec<u8>,
    _ending: Ending,
}

impl Events {
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(self.pending.len());
        while let Some(end) = event_end(&self.pending) {
            let event: Vec<u8> = self.pending.drain(..end).collect();
            out.extend_from_slice(&self.restore_event(&event));
        }
        out
    }

    /// One event (its blank line included): a single-line `data` field that
    /// is a JSON-RPC answer is rewritten; anything else passes unchanged.
    fn restore_event(&self, event: &[u8]) -> Vec<u8> {
        let Ok(text) = std::str::from_utf8(event) else {
            return event.to_vec();
        };
        let mut out = String::with_capacity(text.len());
        for line in text.split_inclusive('\n') {
            let restored = line
                .strip_prefix("data:")
                .map(|data| data.trim_start_matches(' ').trim_end_matches(['\r', '\n']))
                .and_then(|data| restore_json(&self.channel, data.as_bytes()))
                .and_then(|json| String::from_utf8(json).ok());
            match restored {
                Some(json) => {
                    out.push_str("data: ");
                    out.push_str(&json);
                    out.push('\n');
                }
                None => out.push_str(line),
            }
        }
        out.into_bytes()
    }
}

/// Where the first whole event in `bytes` ends (after its blank line).
fn event_end(bytes: &[u8]) -> Option<usize> {
    // A line ends at CR LF, CR or LF; an event at an empty line. A CR last
    // may be the first half of a CR LF: the event is not over until it is
    // known.
    let mut line = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' | b'\n' => {
                let mut end = i + 1;
                if bytes[i] == b'\r' {
                    match bytes.get(i + 1) {
                        Some(b'\n') => end += 1,
                        Some(_) => {}
                        None => return None,
                    }
                }
                if line == 0 {
                    return Some(end);
                }
                line = 0;
                i = end;
            }
            _ => {
                line += 1;
                i += 1;
            }
        }
    }
    None
}

/// An `initialize` request going out (only a client sends one).
pub trait Initializes {
    fn initialize_id(&self) -> Option<RequestId>;
}

impl Initializes for rmcp::model::ClientJsonRpcMessage {
    fn initialize_id(&self) -> Option<RequestId> {
        match self {
            JsonRpcMessage::Request(request)
                if matches!(
                    request.request,
                    rmcp::model::ClientRequest::InitializeRequest(_)
                ) =>
            {
                Some(request.id.clone())
            }
            _ => None,
        }
    }
}

impl Initializes for ServerJsonRpcMessage {
    fn initialize_id(&self) -> Option<RequestId> {
        None
    }
}

/// What a received message keeps of its raw form: requests and
/// notifications carry it; a marked request's answer is recorded.
pub trait Attach {
    fn attach(&mut self, raw: Value, answers: Option<&Answers>);
    /// A request's answer leaves on `channel`.
    fn answer_on(&mut self, channel: &Channel);
    /// The id of a request going out marked [`KeepAnswer`].
    fn keeps_answer(&self) -> Option<RequestId>;
}

/// A result that can travel as written in place of its typed form.
pub trait WholeResult: Sized {
    fn whole(result: Value) -> Option<Self>;
}

/// A client's answers to the server's own requests (sampling, elicitation,
/// roots) are only passed on, so they travel as written.
impl WholeResult for ClientResult {
    fn whole(result: Value) -> Option<Self> {
        Some(ClientResult::CustomResult(CustomResult(result)))
    }
}

/// A server's results stay typed (the bridge checks their kind against the
/// request); their whole form waits in [`Answers`].
impl WholeResult for ServerResult {
    fn whole(_: Value) -> Option<Self> {
        None
    }
}

impl<Req: GetExtensions, Resp: WholeResult, Not: GetExtensions> Attach
    for JsonRpcMessage<Req, Resp, Not>
{
    fn attach(&mut self, mut raw: Value, answers: Option<&Answers>) {
        match self {
            JsonRpcMessage::Request(request) => {
                request.request.extensions_mut().insert(Raw(Arc::new(raw)));
            }
            JsonRpcMessage::Notification(notification) => {
                let raw = Raw(Arc::new(raw));
                notification.notification.extensions_mut().insert(raw);
            }
            JsonRpcMessage::Response(response) => {
                let Some(result) = raw.get_mut("result").map(Value::take) else {
                    return;
                };
                match answers {
                    Some(answers) => answers.record(&response.id, result),
                    None => {
                        if let Some(whole) = Resp::whole(result) {
                            response.result = whole;
                        }
                    }
                }
            }
            JsonRpcMessage::Error(_) => {}
        }
    }

    fn answer_on(&mut self, channel: &Channel) {
        if let JsonRpcMessage::Request(request) = self {
            channel.starts(&request.id);
            request.request.extensions_mut().insert(channel.clone());
        }
    }

    fn keeps_answer(&self) -> Option<RequestId> {
        match self {
            JsonRpcMessage::Request(request)
                if request.request.extensions().get::<KeepAnswer>().is_some() =>
            {
                Some(request.id.clone())
            }
            _ => None,
        }
    }
}

/// The answer to `raw` when it is a request (a method and an id) the typed
/// model refuses: Invalid Request, with its id, as one line.
fn invalid_request(raw: &Value, why: &serde_json::Error) -> Option<Vec<u8>> {
    raw.get("method")?;
    let id = raw
        .get("id")
        .filter(|id| id.is_string() || id.is_i64() || id.is_u64())?;
    let mut line = serde_json::to_vec(&serde_json::json!({
        "jsonrpc": "2.0", "id": id,
        "error": {"code": -32600, "message": format!("Invalid request: {why}")}
    }))
    .ok()?;
    line.push(b'\n');
    Some(line)
}

/// Newline-delimited JSON-RPC over a reader and a writer (MCP's stdio
/// transport), each received message carrying its [`Raw`] form.
pub struct Lines<Role, R, W> {
    reader: R,
    /// The line being read: kept across a cancelled `receive` (the service
    /// polls it in a `select!`), so no partial line is lost.
    line: Vec<u8>,
    oversized: bool,
    max: usize,
    writer: Arc<tokio::sync::Mutex<Option<W>>>,
    answers: Option<Arc<Answers>>,
    /// Set where the bridge answers on these lines (`connect`'s stdio).
    channel: Option<(Channel, Arc<Ending>)>,
    /// A refusal is being written.
    refusing: Arc<AtomicBool>,
    role: PhantomData<fn() -> Role>,
}

impl<Role, R, W> Lines<Role, R, W> {
    pub fn new(reader: R, writer: W, max: usize, answers: Option<Arc<Answers>>) -> Self {
        Self {
            reader,
            line: Vec::new(),
            oversized: false,
            max,
            writer: Arc::new(tokio::sync::Mutex::new(Some(writer))),
            answers,
            channel: None,
            refusing: Arc::new(AtomicBool::new(false)),
            role: PhantomData,
        }
    }

    /// The bridge answers on these lines: whole results go out.
    pub fn answering(mut self) -> Self {
        let (channel, ending) = Channel::open();
        self.channel = Some((channel, Arc::new(ending)));
        self
    }
}

impl<Role, R: AsyncBufRead + Unpin, W> Lines<Role, R, W> {
    /// The next whole line, its end removed; `None` at the end of input. A
    /// line longer than the limit is dropped (logged), not cut.
    async fn next_line(&mut self) -> Option<Vec<u8>> {
        loop {
            let available = match self.reader.fill_buf().await {
                Ok(available) => available,
                Err(e) => {
                    tracing::warn!("reading a stdio peer failed: {e}");
                    return None;
                }
            };
            if available.is_empty() {
                return None;
            }
            let end = available.iter().position(|b| *b == b'\n');
            let take = end.map_or(available.len(), |i| i + 1);
            if !self.oversized {
                self.line.extend_from_slice(&available[..take]);
            }
            self.reader.consume(take);
            if self.line.len() > self.max {
                self.oversized = true;
                self.line.clear();
            }
            if end.is_some() {
                if std::mem::take(&mut self.oversized) {
                    tracing::warn!("dropped a message longer than {} bytes", self.max);
                    continue;
                }
                let mut line = std::mem::take(&mut self.line);
                while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    line.pop();
                }
                return Some(line);
            }
        }
    }
}

impl<Role, R, W> Transport<Role> for Lines<Role, R, W>
where
    Role: ServiceRole,
    R: AsyncBufRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
    RxJsonRpcMessage<Role>: Attach,
    TxJsonRpcMessage<Role>: Attach + Initializes,
{
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<Role>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        if let Some(answers) = &self.answers {
            answers.sending(&item);
        }
        let text = match &self.channel {
            Some((channel, _)) => serde_json::to_value(&item).and_then(|mut message| {
                channel.restore(&mut message);
                serde_json::to_vec(&message)
            }),
            None => serde_json::to_vec(&item),
        };
        let writer = self.writer.clone();
        async move {
            let mut text = text.map_err(std::io::Error::other)?;
            text.push(b'\n');
            let mut writer = writer.lock().await;
            let writer = writer
                .as_mut()
                .ok_or_else(|| std::io::Error::other("the stdio peer is closed"))?;
            writer.write_all(&text).await?;
            writer.flush().await
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<Role>> {
        loop {
            let line = self.next_line().await?;
            let line = line.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let (raw, typed) = match (
                serde_json::from_slice::<Value>(line),
                serde_json::from_slice::<RxJsonRpcMessage<Role>>(line),
            ) {
                (Ok(raw), Ok(typed)) => (raw, typed),
                (Ok(raw), Err(e)) => {
                    // A request of the wrong shape is answered (JSON-RPC's
                    // Invalid Request, with its id); anything else dropped.
                    tracing::warn!("refused a message that is not MCP JSON-RPC: {e}");
                    let refusal = invalid_request(&raw, &e);
                    // One refusal at a time: a peer that floods them while
                    // not reading gets the first.
                    if let (Some(refusal), false) =
                        (refusal, self.refusing.swap(true, Ordering::SeqCst))
                    {
                        let (writer, refusing) = (self.writer.clone(), self.refusing.clone());
                        tokio::spawn(async move {
                            if let Some(writer) = writer.lock().await.as_mut() {
                                let _ = writer.write_all(&refusal).await;
                                let _ = writer.flush().await;
                            }
                            refusing.store(false, Ordering::SeqCst);
                        });
                    }
                    continue;
                }
                (Err(e), _) => {
                    // No id can be read: nothing to answer (like the SDK's
                    // own transport, which ignores what does not parse).
                    tracing::warn!("dropped a message that is not JSON: {e}");
                    continue;
                }
            };
            let mut typed = typed;
            typed.attach(raw, self.answers.as_deref());
            if let Some((channel, _)) = &self.channel {
                typed.answer_on(channel);
            }
            return Some(typed);
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        // Closing its stdin is how a stdio server is told to stop.
        if let Some(mut writer) = self.writer.lock().await.take() {
            let _ = writer.shutdown().await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
