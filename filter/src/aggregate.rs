//! A listing gathered from every backend. The filter sends the listing to
//! each backend itself (the shell dispatches the requests through Envoy
//! clusters), follows each backend's pages, renames and filters every item,
//! and answers the client with the union in backend order. A backend that
//! fails is left out and counted; the others are still listed.

use crate::backends::{BackendId, Backends};
pub use crate::fetch::{BackendAnswer, Fetch};
use crate::jsonrpc::{code, error_body, RequestId};
use crate::listing::{read_page, Decide, ListKind, Page};
use crate::raw_json::param;
use crate::reject::LocalReply;
use crate::response::Framing;
use crate::sse::SseFramer;

/// Why a backend is missing from a gathered listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No answer at all (the request could not be sent, or Envoy gave none).
    Unreachable,
    /// An HTTP error status: from the backend, or Envoy's own (503 when no
    /// server is reachable, 504 when `listing_timeout_ms` passed).
    HttpStatus(u16),
    /// An answer the filter could not read (fails closed: nothing listed from it).
    Unreadable,
    /// A JSON-RPC error.
    RpcError,
    /// More pages than the filter follows; the pages read are listed.
    TooManyPages,
    /// The items gathered so far outgrew `max_response_bytes` in total.
    TooLarge,
}

impl Failure {
    /// Every `reason` label of the backend failure counter.
    pub const LABELS: &'static [&'static str] = &[
        "unreachable",
        "http_5xx",
        "http_4xx",
        "unreadable",
        "rpc_error",
        "too_many_pages",
        "too_large",
    ];

    /// The `reason` label of the backend failure counter.
    pub fn label(self) -> &'static str {
        match self {
            Failure::Unreachable => "unreachable",
            Failure::HttpStatus(status) if status >= 500 => "http_5xx",
            Failure::HttpStatus(_) => "http_4xx",
            Failure::Unreadable => "unreadable",
            Failure::RpcError => "rpc_error",
            Failure::TooManyPages => "too_many_pages",
            Failure::TooLarge => "too_large",
        }
    }
}

/// Pages followed per backend: a bound on what one listing costs.
pub const MAX_PAGES: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting { pages: usize },
    Done,
}

#[derive(Debug)]
pub struct Aggregation {
    kind: ListKind,
    request_id: RequestId,
    /// Headers every fetch carries (protocol version, mirrored method, credential).
    forward: Vec<(String, String)>,
    /// The client's session id as the default backend knows it.
    default_session: Option<(BackendId, String)>,
    /// `params._meta` of the client's request, raw, repeated on later pages.
    meta: Option<String>,
    states: Vec<State>,
    items: Vec<Vec<String>>,
    failures: Vec<(BackendId, Failure)>,
    hidden: usize,
    max_answer_bytes: usize,
    gathered_bytes: usize,
    /// The request negotiated MCP 2026-07-28 or later: its result must say
    /// `resultType`, `ttlMs` and `cacheScope`.
    stamped: bool,
}

impl Aggregation {
    /// Starts gathering: the first page is the client's own request, sent to every backend.
    pub fn start(
        backends: &Backends,
        kind: ListKind,
        request_id: RequestId,
        client_body: &[u8],
        forward: Vec<(String, String)>,
        session: Option<String>,
        max_answer_bytes: usize,
    ) -> (Self, Vec<Fetch>) {
        let meta = param(client_body, "_meta").map(|m| m.get().to_string());
        let stamped =
            negotiated(&forward, meta.as_deref()).is_some_and(|v| v.as_str() >= "2026-07-28");
        let n = backends.servers.len();
        let aggregation = Self {
            kind,
            request_id,
            forward,
            default_session: session.map(|s| (backends.default, s)),
            meta,
            states: vec![State::Waiting { pages: 1 }; n],
            items: vec![Vec::new(); n],
            failures: Vec::new(),
            hidden: 0,
            max_answer_bytes,
            gathered_bytes: 0,
            stamped,
        };
        let fetches = backends
            .ids()
            .filter_map(|b| aggregation.fetch(backends, b, client_body.to_vec()))
            .collect();
        (aggregation, fetches)
    }

    fn fetch(&self, backends: &Backends, backend: BackendId, body: Vec<u8>) -> Option<Fetch> {
        let server = backends.server(backend)?;
        let session = self
            .default_session
            .as_ref()
            .filter(|(default, _)| *default == backend)
            .map(|(_, session)| session.as_str());
        Some(crate::fetch::post(
            server,
            backend,
            &self.forward,
            session,
            body,
            backends.listing_timeout_ms,
        ))
    }

    fn next_page_body(&self, cursor: &str) -> Vec<u8> {
        let cursor = crate::raw_json::json_string(cursor);
        let meta = self
            .meta
            .as_deref()
            .map(|m| format!(",\"_meta\":{m}"))
            .unwrap_or_default();
        format!(
            r#"{{"jsonrpc":"2.0","id":{},"method":"{}","params":{{"cursor":{cursor}{meta}}}}}"#,
            self.request_id.as_json(),
            self.kind.method()
        )
        .into_bytes()
    }

    /// What is being listed.
    pub fn kind(&self) -> ListKind {
        self.kind
    }

    /// A backend answered (or failed). Returns the request for its next
    /// page, if there is one to follow.
    pub fn on_answer(
        &mut self,
        backends: &Backends,
        backend: BackendId,
        answer: BackendAnswer<'_>,
        decide: &mut Decide<'_>,
    ) -> Option<Fetch> {
        let pages = match self.states.get(backend.index()) {
            Some(State::Waiting { pages }) => *pages,
            _ => return None,
        };
        let outcome = self.read(answer, decide);
        let (items, next) = match outcome {
            Ok(page) => page,
            Err(failure) => {
                self.fail(backend, failure);
                return None;
            }
        };
        // A bound on the whole answer, across backends and pages.
        self.gathered_bytes += items.iter().map(|i| i.len() + 1).sum::<usize>();
        if self.gathered_bytes > self.max_answer_bytes {
            self.fail(backend, Failure::TooLarge);
            return None;
        }
        if let Some(list) = self.items.get_mut(backend.index()) {
            list.extend(items);
        }
        let Some(cursor) = next else {
            self.set_state(backend, State::Done);
            return None;
        };
        if pages >= MAX_PAGES {
            self.fail(backend, Failure::TooManyPages);
            return None;
        }
        self.set_state(backend, State::Waiting { pages: pages + 1 });
        let body = self.next_page_body(&cursor);
        self.fetch(backends, backend, body)
    }

    /// The dispatch to this backend could not even start.
    pub fn unreachable(&mut self, backend: BackendId) {
        self.fail(backend, Failure::Unreachable);
    }

    fn fail(&mut self, backend: BackendId, failure: Failure) {
        self.failures.push((backend, failure));
        self.set_state(backend, State::Done);
    }

    fn set_state(&mut self, backend: BackendId, state: State) {
        if let Some(s) = self.states.get_mut(backend.index()) {
            *s = state;
        }
    }

    fn read(
        &mut self,
        answer: BackendAnswer<'_>,
        decide: &mut Decide<'_>,
    ) -> Result<(Vec<String>, Option<String>), Failure> {
        let status = answer.status.ok_or(Failure::Unreachable)?;
        if !(200..300).contains(&status) {
            return Err(Failure::HttpStatus(status));
        }
        if answer.body.len() > self.max_answer_bytes || answer.encoded() {
            return Err(Failure::Unreadable);
        }
        let messages: Vec<Vec<u8>> = match Framing::from_content_type(answer.content_type) {
            Framing::Json => vec![answer.body.to_vec()],
            Framing::Sse => {
                let mut framer = SseFramer::new(self.max_answer_bytes);
                let mut data = Vec::new();
                let framed = framer.push(answer.body, |event| {
                    if let Some(d) = event.data() {
                        data.push(d.into_owned());
                    }
                });
                framed.map_err(|_| Failure::Unreadable)?;
                // A stream may end without a blank line after its last event.
                let rest = framer.finish();
                if let Some(d) = (crate::sse::SseEvent { raw: &rest }).data() {
                    data.push(d.into_owned());
                }
                data
            }
            Framing::Other => return Err(Failure::Unreadable),
        };
        for message in messages {
            match read_page(&message, self.kind, &self.request_id, decide) {
                Ok(Page::NotTheAnswer) => continue,
                Ok(Page::Error) => return Err(Failure::RpcError),
                Ok(Page::Items {
                    items,
                    next_cursor,
                    hidden,
                }) => {
                    self.hidden += hidden;
                    return Ok((items, next_cursor));
                }
                Err(_) => return Err(Failure::Unreadable),
            }
        }
        Err(Failure::Unreadable)
    }

    /// Every backend has answered, failed or timed out.
    pub fn is_complete(&self) -> bool {
        self.states.iter().all(|s| *s == State::Done)
    }

    pub fn failures(&self) -> &[(BackendId, Failure)] {
        &self.failures
    }

    /// How many items were not listed (not exposed, or not allowed).
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// The answer to the client: the union, or an error if no backend answered.
    pub fn reply(&self) -> LocalReply {
        let headers = vec![("content-type".to_string(), "application/json".to_string())];
        let failed: Vec<usize> = self.failures.iter().map(|(b, _)| b.index()).collect();
        let answered = (0..self.states.len()).any(|b| !failed.contains(&b))
            || self.items.iter().any(|i| !i.is_empty());
        if !answered {
            return LocalReply {
                status: 502,
                headers,
                body: error_body(
                    Some(&self.request_id),
                    code::INTERNAL_ERROR,
                    &format!("no backend answered {}", self.kind.method()),
                ),
            };
        }
        // From MCP 2026-07-28 a result names its type and how it may be
        // cached: this one depends on the caller, so privately and not for long.
        let stamp = if self.stamped {
            r#""resultType":"complete","ttlMs":0,"cacheScope":"private","#
        } else {
            ""
        };
        let mut body = format!(
            r#"{{"jsonrpc":"2.0","id":{},"result":{{{stamp}"{}":["#,
            self.request_id.as_json(),
            self.kind.array_key()
        );
        let mut first = true;
        for item in self.items.iter().flatten() {
            if !first {
                body.push(',');
            }
            first = false;
            body.push_str(item);
        }
        body.push_str("]}}");
        LocalReply {
            status: 200,
            headers,
            body: body.into_bytes(),
        }
    }
}

/// The protocol version a request negotiated: its `MCP-Protocol-Version`
/// header, else (2026-07-28 requests) `_meta`'s protocol version.
fn negotiated(forward: &[(String, String)], meta: Option<&str>) -> Option<String> {
    if let Some((_, v)) = forward.iter().find(|(k, _)| k == "mcp-protocol-version") {
        return Some(v.clone());
    }
    let meta: serde_json::Value = serde_json::from_str(meta?).ok()?;
    meta.get("io.modelcontextprotocol/protocolVersion")?
        .as_str()
        .map(str::to_string)
}

#[cfg(test)]
mod tests;
