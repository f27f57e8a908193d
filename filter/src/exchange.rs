//! One HTTP exchange through the filter, as a state machine: the shell feeds it
//! Envoy's events (request headers, body progress, response headers and
//! chunks, end) and applies the [`Step`] each returns. Nothing here talks to
//! Envoy, so every path is testable natively, chunk by chunk.
//!
//! This module coordinates; each concern lives in its own submodule:
//! `head` (the request head: path, method, content), `gate` (who the caller
//! is, and its session), `authorize` (the policy's decision), `route` (which
//! backend, under which name), `fanout` (requests the filter sends itself:
//! gathered listings, relayed calls), `downstream` (the response: session
//! ids, listing filtering, outcome) and `report` (the metric samples).
//!
//! Fail closed: the filter and the server must never read two different
//! requests. Whatever the filter cannot read the way the server would (a
//! path, a key, an id, an encoding, a framing) is refused with a JSON-RPC
//! error and a metric reason, never passed on unjudged.
//!
//! Without `routing_headers.enabled` the request headers go upstream at once
//! and the body is buffered in Envoy until complete; a refusal is then a local
//! reply (Envoy resets the upstream request, which never got a body). With it,
//! the headers are held too, so headers derived from the body can be set
//! before Envoy picks the route; that needs `allow_on_headers_stop_iteration`.

use crate::aggregate::{Aggregation, Failure};
use crate::auth::Authenticated;
use crate::backends::BackendId;
use crate::classify::{classify, Classified, Subject};
use crate::config::{FilterConfig, NonMcpTraffic};
use crate::fetch::Fetch;
use crate::jsonrpc::{code, error_body, RequestId};
use crate::mirrored::MirroredHeaders;
use crate::policy::{Caller, Decision};
use crate::reject::{LocalReply, Reason, Rejection};
use crate::relay::Relay;
use crate::response::{Outcome, ResponseObserver};
use std::borrow::Cow;
use std::rc::Rc;

/// What the shell does with the current event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Let the event's headers or bytes go on.
    Continue,
    /// Hold them (Envoy buffers body bytes meanwhile).
    Pause,
    /// Answer the client now; the request goes no further.
    Respond(LocalReply),
    /// Hold the request headers, fetch the remote JWKS, then call
    /// [`Exchange::keys_ready`] (a request without a body).
    FetchKeys,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderEdit {
    Set(String, String),
    Remove(String),
}

/// The shell's instructions for one event. Header edits only ever target
/// headers Envoy still holds (request headers during their own callback, or
/// while held), so applying them never makes Envoy refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub action: Action,
    pub header_edits: Vec<HeaderEdit>,
    /// Filter-state values for access logs and RBAC (`mcp_method`, `mcp_name`...).
    pub properties: Vec<(&'static str, String)>,
    /// Replace the body bytes the event delivered (all buffered bytes while paused).
    pub body: Option<Vec<u8>>,
    /// Start a remote JWKS fetch, then call [`Exchange::keys_ready`]; the
    /// request goes on meanwhile, and its body is held until then.
    pub fetch_keys: bool,
    /// Send these requests to backends (a gathered listing, a relayed
    /// call), then call [`Exchange::on_backend_answer`] with each answer.
    pub fetches: Vec<Fetch>,
}

impl Step {
    fn go() -> Self {
        Self::from(Action::Continue)
    }

    fn pause() -> Self {
        Self::from(Action::Pause)
    }
}

impl From<Action> for Step {
    fn from(action: Action) -> Self {
        Self {
            action,
            header_edits: Vec::new(),
            properties: Vec::new(),
            body: None,
            fetch_keys: false,
            fetches: Vec::new(),
        }
    }
}

/// Where the exchange is, with the state that only means something there.
#[derive(Debug)]
enum Phase {
    /// Not the MCP endpoint's business (other path, OPTIONS...): untouched.
    Passthrough,
    /// GET (server stream) or DELETE (end session): forwarded untouched, but a body is refused.
    NoBodyAllowed,
    /// Headers of a request without a body, held while the JWKS is fetched;
    /// judged again when the keys are in.
    AwaitingKeys {
        headers: Vec<(String, String)>,
        end_of_stream: bool,
    },
    /// An MCP POST whose body is being buffered; `held` when headers wait
    /// too. `deferred_auth`: the headers went on while the JWKS is fetched,
    /// so the caller is authenticated from them (and the body released) once
    /// the keys are in.
    AwaitingBody {
        held: bool,
        deferred_auth: Option<Vec<(String, String)>>,
    },
    /// The request was judged and forwarded.
    Forwarded,
    /// A listing is being gathered from every backend; `names` collects the
    /// public tool names published (metric labels), while label slots are free.
    Aggregating {
        aggregation: Aggregation,
        names: Option<Vec<String>>,
    },
    /// A call is relayed to a backend by the filter itself (see [`crate::relay`]).
    Relaying(Relay),
    /// The filter answered the request itself.
    Answered,
}

/// What was learned from an accepted request body.
#[derive(Debug, Clone)]
struct Judged {
    body: Classified,
}

/// Authenticates a request from its headers (the shell binds it to the VM's
/// authenticator, or to `jwt_authn`'s metadata).
pub type Authenticate = Box<dyn FnMut(&[(String, String)]) -> Authenticated>;

pub struct Exchange {
    config: Rc<FilterConfig>,
    authenticate: Option<Authenticate>,
    caller: Option<Rc<Caller>>,
    auth_failure: Option<&'static str>,
    /// The last policy decision, with the method and tool it was about.
    decision: Option<(Decision, String, Option<String>)>,
    listing: Option<ListingRewrite>,
    /// Tool labels still have room: collect the names a `tools/list` answer lists.
    learn_tool_labels: bool,
    started_ms: u64,
    phase: Phase,
    mirrored: MirroredHeaders,
    judged: Option<Judged>,
    rejected: Option<Reason>,
    response: Option<ResponseObserver>,
    /// Whether the POST's response headers arrived (an upstream reset leaves it false).
    responded: bool,
    /// The backend named in the request headers when they went on unheld.
    routed_at_headers: Option<BackendId>,
    /// The backend the request went to (whose names a listing answer has).
    backend: Option<BackendId>,
    /// What a gathered listing forwards: headers, and the session id as the
    /// default backend knows it.
    fanout: Option<Fanout>,
    /// The request was relayed to a backend by the filter.
    relayed: bool,
    /// Backends missing from a gathered listing, for the failure counter.
    backend_failures: Vec<(BackendId, Failure)>,
    /// Outcome (and listed tools) of an answer the filter composed itself
    /// (a gathered listing, a relayed call) or rewrote (a listing, read by
    /// the rewrite and not parsed again).
    composed: Option<(Outcome, Vec<String>)>,
    /// Pinned tools (public names) this exchange saw with another definition:
    /// listed (and hidden) or called (and refused).
    pin_changes: Vec<String>,
}

/// Longest value copied into filter state or a routing header.
const MAX_EXPOSED_VALUE: usize = 256;

impl Exchange {
    pub fn new(config: Rc<FilterConfig>, now_ms: u64) -> Self {
        Self {
            config,
            authenticate: None,
            caller: None,
            auth_failure: None,
            decision: None,
            listing: None,
            learn_tool_labels: true,
            started_ms: now_ms,
            phase: Phase::Passthrough,
            mirrored: MirroredHeaders::default(),
            judged: None,
            rejected: None,
            response: None,
            responded: false,
            routed_at_headers: None,
            backend: None,
            fanout: None,
            relayed: false,
            backend_failures: Vec::new(),
            composed: None,
            pin_changes: Vec::new(),
        }
    }

    /// Sets how callers are authenticated (required when `auth` is configured:
    /// without it every request is refused, fail closed).
    pub fn with_authenticator(mut self, authenticate: Authenticate) -> Self {
        self.authenticate = Some(authenticate);
        self
    }

    /// Whether to collect tool names from a `tools/list` answer for metric
    /// labels (pointless once the label set is full).
    pub fn with_label_learning(mut self, learn: bool) -> Self {
        self.learn_tool_labels = learn;
        self
    }

    /// Whether the filter answered the request itself.
    pub fn answered(&self) -> bool {
        matches!(self.phase, Phase::Answered)
    }

    /// Whether request headers are held for the body (to set routing headers).
    pub fn routing_headers_enabled(&self) -> bool {
        self.config.routing_headers.enabled
    }

    /// Whether the request headers are held for a JWKS fetch.
    pub fn headers_await_keys(&self) -> bool {
        matches!(self.phase, Phase::AwaitingKeys { .. })
    }

    /// The JWKS fetch asked for is over (either way; the keys, if any, are
    /// installed). Headers held for it are judged again; a deferred
    /// authentication completes, and if the body is already complete
    /// (`body_done`, `buffered_len` bytes) it is judged too. A `Pause`
    /// answer means: keep waiting for the body.
    pub fn keys_ready(
        &mut self,
        body_done: bool,
        buffered_len: usize,
        read_body: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Step {
        let headers = match std::mem::replace(&mut self.phase, Phase::Passthrough) {
            Phase::AwaitingKeys {
                headers,
                end_of_stream,
            } => {
                let step = self.on_request_headers(&headers, end_of_stream);
                // A body that came while the headers waited was buffered
                // unread, and Envoy will not show it again: judged now.
                if buffered_len > 0 && matches!(self.phase, Phase::NoBodyAllowed) {
                    return self.on_request_body(buffered_len, body_done, read_body);
                }
                return step;
            }
            Phase::AwaitingBody {
                held,
                deferred_auth: Some(headers),
            } => {
                self.phase = Phase::AwaitingBody {
                    held,
                    deferred_auth: None,
                };
                headers
            }
            other => {
                self.phase = other;
                return Step::go();
            }
        };
        if let Err(refusal) = self.complete_authentication(&headers) {
            return self.refuse(refusal);
        }
        if body_done {
            self.on_request_body(buffered_len, true, read_body)
        } else {
            Step::pause()
        }
    }

    /// Request headers arrived. `headers` holds every header, pseudo-headers included.
    pub fn on_request_headers(
        &mut self,
        headers: &[(String, String)],
        end_of_stream: bool,
    ) -> Step {
        let mut edits = Vec::new();
        // A client must not be able to pre-set the headers Envoy trusts as ours.
        let backend_header = self.config.backends.as_ref().map(|b| &b.header);
        for name in self
            .config
            .routing_headers
            .all()
            .into_iter()
            .chain(backend_header)
        {
            if header(headers, name).is_some() {
                edits.push(HeaderEdit::Remove(name.clone()));
            }
        }
        let mut step = self.judge_request_head(headers, end_of_stream);
        step.header_edits.splice(0..0, edits);
        step
    }

    /// Request body progress: `buffered_len` is all body bytes so far (Envoy
    /// buffers them while we pause); `read_body` fetches them once complete.
    /// Trailers end the body too: call this with `end_of_stream` set.
    pub fn on_request_body(
        &mut self,
        buffered_len: usize,
        end_of_stream: bool,
        read_body: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Step {
        match &self.phase {
            &Phase::AwaitingBody {
                held,
                ref deferred_auth,
            } => {
                if buffered_len > self.config.max_request_bytes {
                    return self.too_large();
                }
                if !end_of_stream || deferred_auth.is_some() {
                    return Step::pause();
                }
                match read_body() {
                    Some(body) => self.judge_body(&body, held),
                    None => self.answer(LocalReply {
                        status: 500,
                        headers: json_content_type(),
                        body: error_body(
                            None,
                            code::INTERNAL_ERROR,
                            "the request body could not be read",
                        ),
                    }),
                }
            }
            Phase::AwaitingKeys { .. } => Step::pause(),
            Phase::NoBodyAllowed if buffered_len > 0 => self.refuse(Rejection::new(
                Reason::BodyNotAllowed,
                "GET and DELETE to the MCP endpoint must not carry a body",
            )),
            _ => Step::go(),
        }
    }

    fn judge_body(&mut self, body: &[u8], held: bool) -> Step {
        let classified = match classify(body, self.config.allow_batches) {
            Ok(c) => c,
            Err(rejection) => return self.refuse(rejection),
        };
        if let Err(rejection) = self.mirrored.verify(&classified) {
            return self.refuse(rejection);
        }
        // What the request is about goes to filter state whether it is allowed or not.
        let mut properties = Vec::new();
        if let Some(message) = classified.single() {
            if let Some(method) = message.method.as_deref().filter(|m| !m.is_empty()) {
                properties.push(("mcp_method", bounded(method)));
            }
            if let Some(subject) = &message.subject {
                properties.push(("mcp_name", bounded(subject.name())));
                if let Subject::Tool(tool) = subject {
                    properties.push(("mcp_tool", bounded(tool)));
                }
            }
        }
        let authorized = self.authorize(&classified);
        properties.extend(self.decision_properties());
        let routed = authorized
            .and_then(|()| self.check_pins(&classified))
            .and_then(|()| self.route_body(&classified, body, held));
        let routed = match routed {
            Ok(routed) => routed,
            Err(refusal) => {
                let mut step = self.refuse(refusal);
                step.properties.extend(properties);
                return step;
            }
        };
        let (route_edits, new_body) = match routed {
            Routed::Gather(kind) => {
                return self.start_gathering(kind, classified, body, properties)
            }
            Routed::Relay { backend, body } => {
                return self.start_relay(backend, classified, body, properties)
            }
            Routed::Forward { edits, body } => (edits, body),
        };
        if let Some(server) = self.backend.and_then(|b| self.backend_name(b)) {
            properties.push(("mcp_backend", server.to_string()));
        }

        let mut step = Step::go();
        step.properties = properties;
        step.header_edits = route_edits;
        step.body = new_body;
        if let Some(message) = classified.single() {
            let method = message.method.as_deref().unwrap_or("");
            if held {
                let rh = &self.config.routing_headers;
                if !method.is_empty() {
                    step.header_edits.push(HeaderEdit::Set(
                        rh.method.clone(),
                        header_value(method, Fit::Cut),
                    ));
                }
                if let Some(subject) = &message.subject {
                    step.header_edits.push(HeaderEdit::Set(
                        rh.name.clone(),
                        header_value(subject.name(), Fit::Cut),
                    ));
                }
                // A caller authenticated once the keys came in was not known
                // when the headers were first judged.
                step.header_edits.extend(self.caller_header_edits());
            }
        }
        self.judged = Some(Judged { body: classified });
        self.phase = Phase::Forwarded;
        step
    }

    /// The request id of a single forwarded message (for logs).
    pub fn request_id(&self) -> Option<&RequestId> {
        self.judged.as_ref()?.body.single()?.id.as_ref()
    }

    fn non_mcp(&mut self, reason: Reason, detail: &str) -> Step {
        match self.config.non_mcp_traffic {
            NonMcpTraffic::Pass => {
                self.phase = Phase::Passthrough;
                Step::go()
            }
            NonMcpTraffic::Reject => self.refuse(Rejection::new(reason, detail)),
        }
    }

    fn too_large(&mut self) -> Step {
        let limit = self.config.max_request_bytes;
        self.refuse(Rejection::new(
            Reason::TooLarge,
            format!("request body exceeds the limit of {limit} bytes"),
        ))
    }

    /// The phase, leaving `Passthrough` in its place (to move its state out).
    fn take_phase(&mut self) -> Phase {
        std::mem::replace(&mut self.phase, Phase::Passthrough)
    }

    fn answer(&mut self, reply: LocalReply) -> Step {
        self.phase = Phase::Answered;
        Step::from(Action::Respond(reply))
    }
}

/// First value of a header (Envoy hands names lowercased).
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn body_follows(headers: &[(String, String)], end_of_stream: bool) -> bool {
    !end_of_stream && header(headers, ":method") == Some("POST")
}

fn has_body(headers: &[(String, String)]) -> bool {
    header(headers, "transfer-encoding").is_some()
        || header(headers, "content-length").is_some_and(|l| l.trim() != "0")
}

fn json_content_type() -> Vec<(String, String)> {
    vec![("content-type".into(), "application/json".into())]
}

fn bounded(value: &str) -> String {
    let mut end = value.len().min(MAX_EXPOSED_VALUE);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value.get(..end).unwrap_or_default().to_string()
}

mod authorize;
mod downstream;
mod fanout;
mod gate;
mod head;
mod pinned;
mod refusal;
mod report;
mod route;

use downstream::ListingRewrite;
use fanout::{fanout_headers, Fanout, Lister};
use report::message_label;
pub use report::series_at_load;
use route::{header_value, Fit, Routed};

#[cfg(test)]
mod tests;
