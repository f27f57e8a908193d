//! One HTTP exchange through the filter, as a state machine: the shell feeds it
//! Envoy's events (request headers, body progress, response headers and
//! chunks, end) and applies the [`Step`] each returns. Nothing here talks to
//! Envoy, so every path is testable natively, chunk by chunk.
//!
//! Without `routing_headers.enabled` the request headers go upstream at once
//! and the body is buffered in Envoy until complete; a refusal is then a local
//! reply (Envoy resets the upstream request, which never got a body). With it,
//! the headers are held too, so headers derived from the body can be set
//! before Envoy picks the route; that needs `allow_on_headers_stop_iteration`.

use crate::aggregate::{Aggregation, BackendAnswer, Failure, Fetch};
use crate::auth::challenge;
use crate::auth::token::AuthFailure;
use crate::auth::Authenticated;
use crate::backends::{Backends, Named};
use crate::classify::{classify, Classified, Message, MessageKind, Subject};
use crate::config::{FilterConfig, NonMcpTraffic};
use crate::endpoint::PathClass;
use crate::jsonrpc::{code, error_body, RequestId};
use crate::listing::{self, ListKind, Listed, SseListingFilter, Unfilterable};
use crate::mirrored::MirroredHeaders;
use crate::policy::{Caller, Decision, SubjectKind, Target, Verdict, RESPONSE_METHOD};
use crate::reject::{quote, LocalReply, Reason, Rejection};
use crate::response::{Framing, Outcome, ResponseObserver};
use crate::session::SessionError;
use crate::telemetry::{self, method_label, stat_name, Labels, Sample};
use base64::Engine;
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
    /// Send these requests to backends (a gathered listing), then call
    /// [`Exchange::on_listing_answer`] with each answer.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not the MCP endpoint's business (other path, OPTIONS...): untouched.
    Passthrough,
    /// GET (server stream) or DELETE (end session): forwarded untouched, but a body is refused.
    NoBodyAllowed,
    /// Headers held while the JWKS is fetched (a request without a body).
    AwaitingKeys,
    /// An MCP POST whose body is being buffered; `held` when headers wait too.
    AwaitingBody { held: bool },
    /// The request was judged and forwarded.
    Forwarded,
    /// A listing is being gathered from every backend.
    Aggregating,
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

/// A listing response being filtered.
struct ListingRewrite {
    kind: ListKind,
    framing: ListingFraming,
    /// The public names published (before the caller's policy), collected
    /// for metric labels (tools, while label slots are free): the rewrite
    /// reads every name anyway, so the response is not parsed a second time.
    listed: Option<Vec<String>>,
}

enum ListingFraming {
    /// The whole body is held, then rewritten: `application/json`, or
    /// (`json: false`) another or no content type, rewritten if it is JSON,
    /// refused if it could still carry the listing, else passed.
    Held {
        request_id: RequestId,
        body: Vec<u8>,
        json: bool,
    },
    /// `text/event-stream`: events are rewritten as they complete.
    Sse(SseListingFilter),
    /// An answer the filter cannot read (encoded, or over
    /// `max_response_bytes`): nothing of it passes; an error takes its place.
    Refused { request_id: RequestId, why: String },
}

pub struct Exchange {
    config: Rc<FilterConfig>,
    authenticate: Option<Authenticate>,
    caller: Option<Rc<Caller>>,
    auth_failure: Option<&'static str>,
    /// The last policy decision, with the method and tool it was about.
    decision: Option<(Decision, String, Option<String>)>,
    /// Request headers kept while the JWKS is fetched and the headers wait.
    pending_headers: Option<(Vec<(String, String)>, bool)>,
    /// Request headers kept while the JWKS is fetched and the headers went
    /// on: authentication completes before the body is released.
    deferred_auth: Option<Vec<(String, String)>>,
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
    routed_at_headers: Option<usize>,
    /// The backend the request went to (whose names a listing answer has).
    backend: Option<usize>,
    /// What a gathered listing forwards: headers, and the session id as the
    /// default backend knows it.
    fanout: Option<Fanout>,
    aggregation: Option<Aggregation>,
    /// Public tool names a gathered listing published (for metric labels).
    gathered_names: Option<Vec<String>>,
    /// Backends missing from a gathered listing, for the failure counter.
    backend_failures: Vec<(usize, Failure)>,
    /// Outcome and listed tools of a listing the filter answered itself or
    /// rewrote (read by the rewrite, not parsed again).
    answered_listing: Option<(Outcome, Vec<String>)>,
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
            pending_headers: None,
            deferred_auth: None,
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
            aggregation: None,
            gathered_names: None,
            backend_failures: Vec::new(),
            answered_listing: None,
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
        self.phase == Phase::Answered
    }

    /// Whether the request headers are held for a JWKS fetch.
    pub fn headers_await_keys(&self) -> bool {
        self.pending_headers.is_some()
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
        if let Some((headers, end_of_stream)) = self.pending_headers.take() {
            self.phase = Phase::Passthrough;
            return self.on_request_headers(&headers, end_of_stream);
        }
        let Some(headers) = self.deferred_auth.take() else {
            return Step::go();
        };
        if let Err(step) = self.complete_authentication(&headers) {
            return *step;
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
        for name in [
            Some(&self.config.routing_headers.method),
            Some(&self.config.routing_headers.name),
            backend_header,
        ]
        .into_iter()
        .flatten()
        {
            if header(headers, name).is_some() {
                edits.push(HeaderEdit::Remove(name.clone()));
            }
        }
        let mut step = self.judge_request_head(headers, end_of_stream);
        step.header_edits.splice(0..0, edits);
        step
    }

    fn judge_request_head(&mut self, headers: &[(String, String)], end_of_stream: bool) -> Step {
        let path = header(headers, ":path").unwrap_or_default();
        let method = header(headers, ":method").unwrap_or_default();
        if let Some(auth) = &self.config.auth {
            let bare = path.split(['?', '#']).next().unwrap_or(path);
            if method == "GET" && auth.metadata.paths.iter().any(|p| p == bare) {
                let reply = challenge::resource_metadata_document(&auth.metadata);
                return self.answer(reply);
            }
        }
        match self.config.endpoint.classify(path) {
            PathClass::Mcp => {}
            PathClass::Public => {
                self.phase = Phase::Passthrough;
                return Step::go();
            }
            PathClass::Other => return self.non_mcp(Reason::NotFound, "not the MCP endpoint"),
            // No single reading: a server could take it as the MCP endpoint.
            PathClass::Ambiguous(why)
                if self.config.guarded()
                    || self.config.non_mcp_traffic == NonMcpTraffic::Reject =>
            {
                return self.refuse(Rejection::new(Reason::AmbiguousPath, why.detail()))
            }
            PathClass::Ambiguous(_) => {
                self.phase = Phase::Passthrough;
                return Step::go();
            }
        }
        match method {
            "POST" => {}
            "GET" | "DELETE" => {
                if has_body(headers) {
                    return self.refuse(Rejection::new(
                        Reason::BodyNotAllowed,
                        format!("{method} to the MCP endpoint must not carry a body"),
                    ));
                }
                let edits = match self.authenticate_request(headers, end_of_stream) {
                    Ok(edits) => edits,
                    Err(step) => return *step,
                };
                self.phase = Phase::NoBodyAllowed;
                let mut step = Step::go();
                step.header_edits = edits;
                step.header_edits.extend(self.route_head(false, false));
                step.properties = self.caller_properties();
                return step;
            }
            // A CORS preflight (answered by Envoy's cors filter or the server)
            // never has a body; one that does could carry an MCP message.
            "OPTIONS" if end_of_stream && !has_body(headers) => return Step::go(),
            "OPTIONS" => {
                return self.refuse(Rejection::new(
                    Reason::BodyNotAllowed,
                    "OPTIONS to the MCP endpoint must not carry a body",
                ))
            }
            // With anything guarded, nothing unjudged reaches the MCP endpoint.
            _ if self.config.guarded() => {
                return self.refuse(Rejection::new(
                    Reason::MethodNotAllowed,
                    "the MCP endpoint serves GET, POST and DELETE",
                ))
            }
            _ => {
                return self.non_mcp(
                    Reason::MethodNotAllowed,
                    "the MCP endpoint serves GET, POST and DELETE",
                )
            }
        }

        let mut auth_edits = match self.authenticate_request(headers, end_of_stream) {
            Ok(edits) => edits,
            Err(step) => return *step,
        };
        // An answer the filter may have to rewrite must come uncompressed
        // (an encoded one is refused anyway).
        if self.filters_listings() && header(headers, "accept-encoding").is_some() {
            auth_edits.push(HeaderEdit::Remove("accept-encoding".into()));
        }
        if let Some(encoding) = header(headers, "content-encoding") {
            if !encoding.trim().eq_ignore_ascii_case("identity") {
                return self.refuse(Rejection::new(
                    Reason::UnsupportedEncoding,
                    "Content-Encoding is not supported on MCP requests; send the JSON uncompressed",
                ));
            }
        }
        if Framing::from_content_type(header(headers, "content-type")) != Framing::Json {
            return self.refuse(Rejection::new(
                Reason::UnsupportedMediaType,
                "MCP requests must have Content-Type: application/json",
            ));
        }
        if let Some(length) = header(headers, "content-length") {
            match length.trim().parse::<u64>() {
                Ok(n) if n > self.config.max_request_bytes as u64 => return self.too_large(),
                Ok(_) => {}
                Err(_) => {
                    return self.refuse(Rejection::new(
                        Reason::InvalidRequest,
                        "malformed Content-Length",
                    ))
                }
            }
        }
        if end_of_stream {
            return self.refuse(Rejection::new(Reason::ParseError, "request body is empty"));
        }

        self.mirrored =
            MirroredHeaders::from_headers(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let held = self.config.routing_headers.enabled;
        self.phase = Phase::AwaitingBody { held };
        let mut step = if held { Step::pause() } else { Step::go() };
        // Only a listing gathered from several backends forwards these.
        if self.config.backends.as_ref().is_some_and(Backends::routes) {
            self.fanout = Some(fanout_headers(headers, &auth_edits));
        }
        step.header_edits = auth_edits;
        step.header_edits.extend(self.route_head(held, true));
        step.fetch_keys = self.deferred_auth.is_some();
        step
    }

    /// Authenticates the caller (when `auth` is configured) and returns the
    /// header edits that go with it: the client's token removed (no token
    /// passthrough), an upstream credential set, the session id unwrapped.
    fn authenticate_request(
        &mut self,
        headers: &[(String, String)],
        end_of_stream: bool,
    ) -> Result<Vec<HeaderEdit>, Box<Step>> {
        let Some(auth) = self.config.auth.clone() else {
            return Ok(Vec::new());
        };
        let outcome = self.run_authenticator(headers);
        // These do not depend on who the caller is, so they are safe to apply
        // before authentication completes.
        let mut edits = Vec::new();
        if !auth.forward_token {
            edits.push(HeaderEdit::Remove("authorization".into()));
        }
        if let Some(credential) = &auth.upstream_authorization {
            edits.push(HeaderEdit::Set("authorization".into(), credential.clone()));
        }
        let caller = match outcome {
            Authenticated::Caller(caller) => caller,
            Authenticated::NeedKeys if body_follows(headers, end_of_stream) => {
                // Without `allow_on_headers_stop_iteration` Envoy cannot hold
                // headers while a body arrives; so the headers go on (the
                // session id provisionally unwrapped), and the body is held
                // until the keys are in and the caller is known.
                if let (Some(binding), Some(presented)) =
                    (&self.config.sessions, header(headers, "mcp-session-id"))
                {
                    match binding.peek(presented) {
                        Ok(upstream) => {
                            edits.push(HeaderEdit::Set("mcp-session-id".into(), upstream))
                        }
                        Err(e) => return Err(Box::new(self.session_not_found(e))),
                    }
                }
                self.deferred_auth = Some(headers.to_vec());
                return Ok(edits);
            }
            Authenticated::NeedKeys => {
                self.pending_headers = Some((headers.to_vec(), end_of_stream));
                self.phase = Phase::AwaitingKeys;
                return Err(Box::new(Step::from(Action::FetchKeys)));
            }
            Authenticated::Failed(failure) => return Err(Box::new(self.unauthenticated(failure))),
        };
        if let Some(upstream) = self.bind_caller(caller, headers)? {
            edits.push(HeaderEdit::Set("mcp-session-id".into(), upstream));
        }
        Ok(edits)
    }

    fn run_authenticator(&mut self, headers: &[(String, String)]) -> Authenticated {
        match self.authenticate.as_mut() {
            Some(authenticate) => authenticate(headers),
            None => Authenticated::Failed(AuthFailure::NoKeys),
        }
    }

    /// Records the caller and checks the session id it presents belongs to
    /// it; the upstream's own session id, if one was presented.
    fn bind_caller(
        &mut self,
        caller: Rc<Caller>,
        headers: &[(String, String)],
    ) -> Result<Option<String>, Box<Step>> {
        let presented = header(headers, "mcp-session-id");
        let unwrapped = match (&self.config.sessions, presented) {
            (Some(binding), Some(presented)) => Some(binding.unwrap(&caller, presented)),
            _ => None,
        };
        self.caller = Some(caller);
        match unwrapped {
            Some(Err(e)) => Err(Box::new(self.session_not_found(e))),
            Some(Ok(upstream)) => Ok(Some(upstream)),
            None => Ok(None),
        }
    }

    /// Authentication deferred at the headers, now that the keys are in.
    fn complete_authentication(&mut self, headers: &[(String, String)]) -> Result<(), Box<Step>> {
        let caller = match self.run_authenticator(headers) {
            Authenticated::Caller(caller) => caller,
            // Still unknown after a fetch: the key does not exist.
            Authenticated::NeedKeys => {
                return Err(Box::new(self.unauthenticated(AuthFailure::UnknownKey)))
            }
            Authenticated::Failed(failure) => return Err(Box::new(self.unauthenticated(failure))),
        };
        // The provisional unwrap at the headers is now checked against the caller.
        self.bind_caller(caller, headers).map(|_| ())
    }

    fn unauthenticated(&mut self, failure: AuthFailure) -> Step {
        self.auth_failure = Some(failure.label());
        let reply = match (&self.config.auth, &failure) {
            (_, AuthFailure::NoKeys) | (None, _) => challenge::keys_unavailable(),
            (Some(auth), _) => challenge::unauthorized(&failure, &auth.metadata),
        };
        let mut step = self.answer(reply);
        step.properties.push((
            "mcp_decision",
            format!("unauthenticated:{}", failure.label()),
        ));
        step
    }

    fn session_not_found(&mut self, error: SessionError) -> Step {
        self.auth_failure = Some(match error {
            SessionError::Unrecognised => "session_unknown",
            SessionError::OtherCaller => "session_other_caller",
        });
        // 404 is what the spec prescribes for a session the server does not
        // know; the client starts a new session (with its own token).
        self.answer(LocalReply {
            status: 404,
            headers: json_content_type(),
            body: error_body(None, code::SESSION_NOT_FOUND, "Session not found"),
        })
    }

    fn caller_properties(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(caller) = &self.caller {
            out.push(("mcp_subject", bounded(&caller.subject)));
            if let Some(tenant) = &caller.tenant {
                out.push(("mcp_tenant", bounded(tenant)));
            }
        }
        out
    }

    /// Decides every message of an accepted body; the first one not allowed
    /// answers the request.
    fn authorize(&mut self, classified: &Classified) -> Result<(), Box<Step>> {
        let Some(auth) = self.config.auth.clone() else {
            return Ok(());
        };
        let Some(caller) = self.caller.clone() else {
            return Err(Box::new(self.answer(challenge::unauthorized(
                &AuthFailure::MissingToken,
                &auth.metadata,
            ))));
        };
        for message in &classified.messages {
            let method = message.method.as_deref().unwrap_or(RESPONSE_METHOD);
            if classified.batch
                && self.config.policy.has_rules()
                && ListKind::from_method(method).is_some()
            {
                return Err(Box::new(
                    self.refuse(
                        Rejection::new(
                            Reason::InvalidRequest,
                            "listings cannot be batched when a policy applies; send them alone",
                        )
                        .with_id(message.id.clone()),
                    ),
                ));
            }
            // Every subject the message acts on must be allowed; the first
            // that is not answers the request.
            for target in targets_of(message, method) {
                let decision = self.config.policy.decide(&caller, &target);
                let verdict = decision.verdict.clone();
                let tool = match &message.subject {
                    Some(Subject::Tool(t)) => Some(t.clone()),
                    _ => None,
                };
                let method_name =
                    message_label(message.kind, message.method.as_deref()).to_string();
                self.decision = Some((decision, method_name, tool));
                let what = describe(&target);
                match verdict {
                    Verdict::Allow => {}
                    Verdict::Deny => {
                        return Err(Box::new(
                            self.answer(challenge::forbidden(message.id.as_ref(), &what)),
                        ))
                    }
                    Verdict::InsufficientScope(scopes) => {
                        return Err(Box::new(self.answer(challenge::insufficient_scope(
                            &scopes,
                            &auth.metadata,
                            message.id.as_ref(),
                            &what,
                        ))))
                    }
                }
            }
        }
        Ok(())
    }

    fn decision_properties(&self) -> Vec<(&'static str, String)> {
        let mut out = self.caller_properties();
        if let Some((d, _, _)) = &self.decision {
            out.push(("mcp_decision", d.label().to_string()));
            out.push(("mcp_decision_reason", bounded(&d.reason.label())));
        }
        out
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
        match self.phase {
            Phase::AwaitingBody { held } => {
                if buffered_len > self.config.max_request_bytes {
                    return self.too_large();
                }
                if !end_of_stream || self.deferred_auth.is_some() {
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
            Phase::AwaitingKeys => Step::pause(),
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
        if let Err(mut step) = authorized {
            step.properties.extend(properties);
            return *step;
        }

        let routed = match self.route_body(&classified, body, held) {
            Ok(routed) => routed,
            Err(step) => {
                let mut step = *step;
                step.properties.extend(properties);
                return step;
            }
        };
        let (route_edits, new_body) = match routed {
            Routed::Gather(kind) => {
                return self.start_gathering(kind, classified, body, properties)
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
                    step.header_edits
                        .push(HeaderEdit::Set(rh.method.clone(), header_safe(method)));
                }
                if let Some(subject) = &message.subject {
                    step.header_edits.push(HeaderEdit::Set(
                        rh.name.clone(),
                        header_safe(subject.name()),
                    ));
                }
            }
        }
        self.judged = Some(Judged { body: classified });
        self.phase = Phase::Forwarded;
        step
    }

    fn backend_name(&self, backend: usize) -> Option<&str> {
        let servers = &self.config.backends.as_ref()?.servers;
        servers.get(backend).map(|s| s.name.as_str())
    }

    /// Routing decided from the request headers alone, for headers that go
    /// on before the body is read: the backend the 2026-07-28 `Mcp-Name`
    /// header names (and that header in the backend's own name), else the
    /// default backend. The body must agree, or it is refused.
    fn route_head(&mut self, held: bool, post: bool) -> Vec<HeaderEdit> {
        let config = self.config.clone();
        let Some(backends) = config.backends.as_ref() else {
            return Vec::new();
        };
        if held {
            // Decided from the body, while Envoy still holds the headers.
            return Vec::new();
        }
        let mut edits = Vec::new();
        let mut backend = backends.default;
        if let Some((method, public)) = self.mirrored.declared() {
            let kind = match method.as_str() {
                "tools/call" => Some(Named::Tool),
                "prompts/get" if backends.renames(Named::Prompt) => Some(Named::Prompt),
                _ => None,
            };
            if let Some(route) = kind.and_then(|k| backends.resolve(k, &public)) {
                backend = route.backend;
                if route.upstream != public {
                    edits.push(HeaderEdit::Set(
                        "mcp-name".into(),
                        header_safe(&route.upstream),
                    ));
                }
            }
        }
        if post && (backends.renames(Named::Tool) || backends.renames(Named::Prompt)) {
            // The body may be rewritten; Envoy then sends it chunked.
            edits.push(HeaderEdit::Remove("content-length".into()));
        }
        edits.extend(backend_header(backends, backend));
        self.routed_at_headers = Some(backend);
        self.backend = Some(backend);
        edits
    }

    /// Where an accepted body goes, and what changes on its way: the backend
    /// header (held headers), the upstream's name in `params.name` and
    /// `Mcp-Name`. Unknown or hidden names are refused, never passed.
    fn route_body(
        &mut self,
        classified: &Classified,
        body: &[u8],
        held: bool,
    ) -> Result<Routed, Box<Step>> {
        let config = self.config.clone();
        let Some(backends) = config.backends.as_ref() else {
            return Ok(Routed::Forward {
                edits: Vec::new(),
                body: None,
            });
        };
        fn named_kind<'s>(
            backends: &Backends,
            subject: &'s Option<Subject>,
        ) -> Option<(Named, &'s str)> {
            match subject {
                Some(Subject::Tool(n)) => Some((Named::Tool, n.as_str())),
                Some(Subject::Prompt(n)) if backends.renames(Named::Prompt) => {
                    Some((Named::Prompt, n.as_str()))
                }
                _ => None,
            }
        }
        let rewritten_listing = |method: Option<&str>| {
            method
                .and_then(ListKind::from_method)
                .and_then(ListKind::named)
                .is_some_and(|n| backends.renames(n))
        };
        if classified.batch {
            if let Some(m) = classified.messages.iter().find(|m| {
                named_kind(backends, &m.subject).is_some() || rewritten_listing(m.method.as_deref())
            }) {
                return Err(self.refusal(Rejection::new(
                        Reason::InvalidRequest,
                        "a batch cannot carry tool calls, renamed prompts or listings behind several backends; send them alone",
                    )
                    .with_id(m.id.clone())));
            }
        }
        let message = classified.single();
        let listing = message
            .filter(|m| m.kind == MessageKind::Request)
            .and_then(|m| m.method.as_deref())
            .and_then(ListKind::from_method);
        if let Some(kind) = listing {
            if kind.named().is_some_and(|n| backends.aggregates(n)) {
                if has_cursor(body) {
                    return Err(self.refusal(
                        Rejection::new(
                            Reason::InvalidParams,
                            "Invalid cursor: this endpoint lists every backend in one page",
                        )
                        .with_id(message.and_then(|m| m.id.clone())),
                    ));
                }
                return Ok(Routed::Gather(kind));
            }
        }

        let mut backend = backends.default;
        let mut upstream = None;
        if let Some((kind, public)) = message.and_then(|m| named_kind(backends, &m.subject)) {
            let Some(route) = backends.resolve(kind, public) else {
                let what = if kind == Named::Tool {
                    "tool"
                } else {
                    "prompt"
                };
                return Err(self.refusal(
                    Rejection::new(
                        Reason::UnknownName,
                        format!("Unknown {what}: {}", quote(public)),
                    )
                    .with_id(message.and_then(|m| m.id.clone())),
                ));
            };
            backend = route.backend;
            if route.upstream != public {
                upstream = Some(route.upstream.into_owned());
            }
        }
        if !held && self.routed_at_headers != Some(backend) {
            let name = self.backend_name(backend).unwrap_or_default().to_string();
            return Err(self.refusal(Rejection::new(
                    Reason::Unroutable,
                    format!(
                        "this request is for backend {}, but its headers were already routed: send the MCP 2026-07-28 Mcp-Name header, or enable routing_headers (needs allow_on_headers_stop_iteration)",
                        quote(&name)
                    ),
                )
                .with_id(message.and_then(|m| m.id.clone()))));
        }
        self.backend = Some(backend);

        let mut edits = Vec::new();
        if held {
            edits.extend(backend_header(backends, backend));
        }
        let Some(upstream) = upstream else {
            return Ok(Routed::Forward { edits, body: None });
        };
        let Some(rewritten) = crate::raw_json::replace_param_string(body, "name", &upstream) else {
            return Err(self.refusal(
                Rejection::new(
                    Reason::InvalidParams,
                    "`params.name` could not be rewritten",
                )
                .with_id(message.and_then(|m| m.id.clone())),
            ));
        };
        if held {
            edits.push(HeaderEdit::Remove("content-length".into()));
            if !self.mirrored.name.is_empty() {
                edits.push(HeaderEdit::Set("mcp-name".into(), header_safe(&upstream)));
            }
        }
        Ok(Routed::Forward {
            edits,
            body: Some(rewritten),
        })
    }

    /// Sends the listing to every backend; the answer waits for theirs.
    fn start_gathering(
        &mut self,
        kind: ListKind,
        classified: Classified,
        body: &[u8],
        properties: Vec<(&'static str, String)>,
    ) -> Step {
        let config = self.config.clone();
        let (Some(backends), Some(id)) = (
            config.backends.as_ref(),
            classified.single().and_then(|m| m.id.clone()),
        ) else {
            return Step::go();
        };
        let Fanout {
            mut forward,
            session,
        } = self.fanout.take().unwrap_or_default();
        if let Some(credential) = config
            .auth
            .as_ref()
            .and_then(|a| a.upstream_authorization.clone())
        {
            forward.push(("authorization".into(), credential));
        }
        let (aggregation, fetches) = Aggregation::start(
            backends,
            kind,
            id,
            body,
            forward,
            session,
            config.max_response_bytes,
        );
        self.aggregation = Some(aggregation);
        self.gathered_names = (self.learn_tool_labels && kind == ListKind::Tools).then(Vec::new);
        self.judged = Some(Judged { body: classified });
        self.phase = Phase::Aggregating;
        let mut step = Step::pause();
        step.properties = properties;
        step.fetches = fetches;
        step
    }

    /// A backend answered a gathered listing (`status` `None`: the call
    /// failed). The last answer completes the listing: the step then answers
    /// the client.
    pub fn on_listing_answer(&mut self, backend: usize, answer: BackendAnswer<'_>) -> Step {
        let Some(mut aggregation) = self.aggregation.take() else {
            return Step::pause();
        };
        let config = self.config.clone();
        let Some(backends) = config.backends.as_ref() else {
            return Step::pause();
        };
        let kind = aggregation.kind();
        let caller = self.caller.clone();
        let mut published = self.gathered_names.take();
        let mut decide = |name: &str| {
            decide_item(
                &config,
                caller.as_deref(),
                kind,
                backend,
                name,
                published.as_mut(),
            )
        };
        let next = aggregation.on_answer(backends, backend, answer, &mut decide);
        self.gathered_names = published;
        self.settle_gathering(aggregation, next)
    }

    /// A request to a backend could not be sent at all.
    pub fn on_listing_unreachable(&mut self, backend: usize) -> Step {
        let Some(mut aggregation) = self.aggregation.take() else {
            return Step::pause();
        };
        aggregation.unreachable(backend);
        self.settle_gathering(aggregation, None)
    }

    fn settle_gathering(&mut self, aggregation: Aggregation, next: Option<Fetch>) -> Step {
        if !aggregation.is_complete() {
            let mut step = Step::pause();
            step.fetches.extend(next);
            self.aggregation = Some(aggregation);
            return step;
        }
        self.backend_failures = aggregation.failures().to_vec();
        let reply = aggregation.reply();
        let outcome = if reply.status == 200 {
            Outcome::Result
        } else {
            Outcome::RpcError(code::INTERNAL_ERROR)
        };
        let names = self.gathered_names.take().unwrap_or_default();
        self.answered_listing = Some((outcome, names));
        self.answer(reply)
    }

    /// Backends that failed the gathered listing, by name (for logs).
    pub fn backend_failures(&self) -> Vec<(&str, &'static str)> {
        self.backend_failures
            .iter()
            .filter_map(|(b, f)| Some((self.backend_name(*b)?, f.label())))
            .collect()
    }

    /// Response headers arrived (from the upstream, or a local reply).
    pub fn on_response_headers(&mut self, status: u16, headers: &[(String, String)]) -> Step {
        let mut edits = Vec::new();
        if let (Some(binding), Some(caller), Some(upstream)) = (
            &self.config.sessions,
            &self.caller,
            header(headers, "mcp-session-id"),
        ) {
            if self.phase != Phase::Answered {
                match binding.wrap(caller, upstream) {
                    Some(wrapped) => edits.push(HeaderEdit::Set("mcp-session-id".into(), wrapped)),
                    None => edits.push(HeaderEdit::Remove("mcp-session-id".into())),
                }
            }
        }
        let mut step = self.observe_response_headers(status, headers);
        if let Some(listing) = &self.listing {
            // The body changes length; Envoy then frames it chunked.
            edits.push(HeaderEdit::Remove("content-length".into()));
            if matches!(listing.framing, ListingFraming::Refused { .. }) {
                // What replaces the answer is plain JSON.
                edits.push(HeaderEdit::Remove("content-encoding".into()));
                edits.push(HeaderEdit::Set(
                    "content-type".into(),
                    "application/json".into(),
                ));
            }
        }
        step.header_edits.extend(edits);
        step
    }

    fn observe_response_headers(&mut self, status: u16, headers: &[(String, String)]) -> Step {
        if self.phase == Phase::Forwarded {
            self.responded = true;
            self.listing = self.listing_rewrite(headers);
            if let Some(judged) = &self.judged {
                if let Some(message) = judged.body.single() {
                    let framing = Framing::from_content_type(header(headers, "content-type"));
                    let observer = ResponseObserver::new(
                        status,
                        framing,
                        message.id.as_ref(),
                        self.config.max_response_bytes,
                    );
                    let learn = self.learn_tool_labels;
                    self.response = Some(
                        if learn && message.method.as_deref() == Some("tools/list") {
                            observer.collecting_tools()
                        } else {
                            observer
                        },
                    );
                }
            }
        }
        Step::go()
    }

    /// Whether listings may be filtered or renamed here (policy rules, or
    /// backends that rename or hide names).
    fn filters_listings(&self) -> bool {
        (self.config.auth.is_some() && self.config.policy.has_rules())
            || self.config.backends.is_some()
    }

    /// Whether (and how) this response's listing is filtered: only when a
    /// policy with rules applies or the backend's names are rewritten, the
    /// request was a single listing, and the upstream answered 2xx in JSON or SSE.
    fn listing_rewrite(&self, headers: &[(String, String)]) -> Option<ListingRewrite> {
        let message = self.judged.as_ref()?.body.single()?;
        let kind = ListKind::from_method(message.method.as_deref()?)?;
        let policy_applies = self.config.auth.is_some() && self.config.policy.has_rules();
        let renamed = kind
            .named()
            .zip(self.config.backends.as_ref())
            .is_some_and(|(named, backends)| backends.renames(named));
        if !policy_applies && !renamed {
            return None;
        }
        let id = message.id.clone()?;
        // Whatever the status or content type: a client may still read a
        // listing out of it (fail closed).
        let encoded = header(headers, "content-encoding")
            .is_some_and(|e| !e.trim().is_empty() && !e.trim().eq_ignore_ascii_case("identity"));
        let framing = if encoded {
            ListingFraming::Refused {
                request_id: id,
                why: "the answer has a Content-Encoding the filter cannot read".into(),
            }
        } else {
            match Framing::from_content_type(header(headers, "content-type")) {
                Framing::Json => ListingFraming::Held {
                    request_id: id,
                    body: Vec::new(),
                    json: true,
                },
                Framing::Sse => ListingFraming::Sse(SseListingFilter::new(
                    kind,
                    id,
                    self.config.max_response_bytes,
                )),
                Framing::Other => ListingFraming::Held {
                    request_id: id,
                    body: Vec::new(),
                    json: false,
                },
            }
        };
        let listed = (self.learn_tool_labels && kind == ListKind::Tools).then(Vec::new);
        Some(ListingRewrite {
            kind,
            framing,
            listed,
        })
    }

    /// A response body chunk: only the bytes new since the last call. Observed
    /// for metrics; a filtered listing is rewritten (JSON: held whole, then
    /// replaced; SSE: each chunk replaced by the events it completes).
    pub fn on_response_body(&mut self, chunk: &[u8], end_of_stream: bool) -> Step {
        let Some(listing) = self.listing.as_mut() else {
            if let Some(observer) = &mut self.response {
                observer.observe(chunk);
            }
            return Step::go();
        };
        let config = &self.config;
        let caller = self.caller.as_deref();
        let backend = self
            .backend
            .or(config.backends.as_ref().map(|b| b.default))
            .unwrap_or(0);
        let ListingRewrite {
            kind,
            framing,
            listed,
        } = listing;
        let kind = *kind;
        let mut decide =
            |name: &str| decide_item(config, caller, kind, backend, name, listed.as_mut());
        let max = config.max_response_bytes;
        let (out, answered) = match framing {
            ListingFraming::Held {
                request_id,
                body,
                json,
            } => {
                if body.len() + chunk.len() > max {
                    let why = format!("the answer is larger than max_response_bytes ({max})");
                    let mut step = Step::go();
                    step.body = Some(if end_of_stream {
                        listing::unfilterable_error(request_id, &Unfilterable(why))
                    } else {
                        let request_id = request_id.clone();
                        *framing = ListingFraming::Refused { request_id, why };
                        Vec::new()
                    });
                    return step;
                }
                body.extend_from_slice(chunk);
                if !end_of_stream {
                    return Step::pause();
                }
                let text = body.trim_ascii();
                if *json || text.first() == Some(&b'{') {
                    let (out, hidden) =
                        listing::filter_json_body(text, kind, request_id, &mut decide);
                    (out, hidden.is_some())
                } else if could_carry(text, kind) {
                    let why = Unfilterable("the answer is not JSON or SSE".into());
                    (listing::unfilterable_error(request_id, &why), false)
                } else {
                    (std::mem::take(body), false)
                }
            }
            ListingFraming::Refused { request_id, why } => {
                let out = if end_of_stream {
                    listing::unfilterable_error(request_id, &Unfilterable(why.clone()))
                } else {
                    Vec::new()
                };
                (out, false)
            }
            ListingFraming::Sse(filter) => {
                let mut out = filter.push(chunk, &mut decide);
                if end_of_stream {
                    out.extend(filter.finish(&mut decide));
                }
                (out, filter.answered)
            }
        };
        if answered && self.answered_listing.is_none() {
            let names = listed.take().unwrap_or_default();
            self.answered_listing = Some((Outcome::Result, names));
        } else if let Some(observer) = &mut self.response {
            // Not (yet) the rewritten answer: an error, or other events.
            observer.observe(&out);
        }
        let mut step = Step::go();
        step.body = Some(out);
        step
    }

    /// Response trailers: the end of the body. A listing held whole is
    /// rewritten now (`body` replaces what Envoy holds), never released
    /// unread; an SSE event left unfinished is dropped.
    pub fn on_response_trailers(&mut self) -> Step {
        let Some(listing) = &mut self.listing else {
            return Step::go();
        };
        match &mut listing.framing {
            ListingFraming::Sse(_) => {
                self.listing = None;
                Step::go()
            }
            _ => self.on_response_body(&[], true),
        }
    }

    /// The exchange is over: the samples to record. Learns tool labels from
    /// a `tools/list` the upstream answered.
    pub fn finish(&mut self, now_ms: u64, labels: &mut Labels) -> Vec<Sample> {
        let mut samples = Vec::new();
        if let Some(reason) = self.rejected {
            samples.push(Sample::count(stat_name(
                telemetry::REJECTIONS,
                &[("reason", reason.label())],
            )));
        }
        if let Some(reason) = self.auth_failure {
            samples.push(Sample::count(stat_name(
                telemetry::AUTH_FAILURES,
                &[("reason", reason)],
            )));
        }
        if let Some((decision, method, tool)) = &self.decision {
            let tenant = self
                .caller
                .as_ref()
                .and_then(|c| c.tenant.as_deref())
                .map_or("", |t| labels.tenant(t));
            let tool = tool.as_deref().map_or("", |t| labels.tools.label(t));
            let method = method.as_str();
            samples.push(Sample::count(stat_name(
                telemetry::AUTHZ_DECISIONS,
                &[
                    ("mcp_method_name", method),
                    ("tenant", tenant),
                    ("decision", decision.label()),
                    // Last: tool names may hold dots, so the tag rule matches to the end.
                    ("gen_ai_tool_name", tool),
                ],
            )));
        }
        for (backend, failure) in &self.backend_failures {
            if let Some(name) = self.backend_name(*backend) {
                samples.push(Sample::count(stat_name(
                    telemetry::BACKEND_FAILURES,
                    &[("backend", name), ("reason", failure.label())],
                )));
            }
        }
        let tool_labels = &mut labels.tools;
        let Some(judged) = &self.judged else {
            return samples;
        };
        for message in &judged.body.messages {
            let method = message_label(message.kind, message.method.as_deref());
            samples.push(Sample::count(stat_name(
                telemetry::REQUESTS,
                &[("mcp_method_name", method)],
            )));
            if let Some(Subject::Tool(tool)) = &message.subject {
                samples.push(Sample::count(stat_name(
                    telemetry::TOOL_CALLS,
                    &[("gen_ai_tool_name", tool_labels.label(tool))],
                )));
            }
        }
        let Some(message) = judged.body.single() else {
            return samples;
        };
        let outcome = match (&self.answered_listing, &mut self.response, self.responded) {
            (Some((outcome, listed)), _, _) => {
                tool_labels.learn(listed);
                *outcome
            }
            (None, Some(observer), _) => observer.finish(),
            (None, None, false) => Outcome::NoResponse,
            (None, None, true) => Outcome::Accepted,
        };
        if let Some(observer) = &self.response {
            tool_labels.learn(observer.listed_tools());
        }
        let method = message_label(message.kind, message.method.as_deref());
        let tool = match &message.subject {
            Some(Subject::Tool(tool)) => tool_labels.label(tool),
            _ => "",
        };
        samples.push(Sample::count(stat_name(
            telemetry::RESPONSES,
            &[("mcp_method_name", method), ("outcome", outcome.label())],
        )));
        samples.push(Sample::record(
            stat_name(
                telemetry::DURATION,
                &[
                    ("mcp_method_name", method),
                    ("error_type", outcome.error_type().unwrap_or("")),
                    ("gen_ai_tool_name", tool),
                ],
            ),
            now_ms.saturating_sub(self.started_ms),
        ));
        samples
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

    fn refusal(&mut self, rejection: Rejection) -> Box<Step> {
        Box::new(self.refuse(rejection))
    }

    fn refuse(&mut self, rejection: Rejection) -> Step {
        self.rejected = Some(rejection.reason);
        self.answer(rejection.reply())
    }

    fn answer(&mut self, reply: LocalReply) -> Step {
        self.phase = Phase::Answered;
        Step::from(Action::Respond(reply))
    }
}

/// What the policy judges a message as: the subject a call names, else each
/// subject a housekeeping request refers to (a completion's prompt, the
/// resources a 2026-07-28 stream subscribes to), else the method alone.
fn targets_of<'a>(message: &'a Message, method: &'a str) -> Vec<Target<'a>> {
    let about = |s: &'a Subject| Target {
        method,
        subject: Some(match s {
            Subject::Tool(n) => (SubjectKind::Tool, n.as_str()),
            Subject::Prompt(n) => (SubjectKind::Prompt, n.as_str()),
            Subject::Resource(n) => (SubjectKind::Resource, n.as_str()),
        }),
    };
    match (&message.subject, message.refers_to.as_slice()) {
        (Some(subject), _) => vec![about(subject)],
        (None, []) => vec![Target::method(method)],
        (None, refers_to) => refers_to.iter().map(about).collect(),
    }
}

/// How a refusal names what was asked for (never why it was refused).
fn describe(target: &Target<'_>) -> String {
    match target.subject {
        Some((SubjectKind::Tool, n)) => format!("tool {}", quote(n)),
        Some((SubjectKind::Prompt, n)) => format!("prompt {}", quote(n)),
        Some((SubjectKind::Resource, n)) => format!("resource {}", quote(n)),
        None if target.method == RESPONSE_METHOD => "this response".into(),
        None => format!("method {}", quote(target.method)),
    }
}

fn message_label(kind: MessageKind, method: Option<&str>) -> &str {
    match (kind, method) {
        (MessageKind::Response, _) | (_, None) => "_response",
        (_, Some(m)) => method_label(m),
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

/// Whether bytes that are neither JSON nor SSE could still be read as a
/// listing by a lenient client: they name the listing's array.
fn could_carry(text: &[u8], kind: ListKind) -> bool {
    let key = kind.array_key().as_bytes();
    text.windows(key.len()).any(|w| w == key)
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

/// A header value Envoy accepts: printable ASCII as is, anything else in the
/// MCP base64 sentinel form (`=?base64?...?=`), the same form `Mcp-Name` uses.
fn header_safe(value: &str) -> String {
    let printable =
        value.bytes().all(|b| (0x20..0x7f).contains(&b)) && !value.starts_with("=?base64?");
    if printable && value.len() <= MAX_EXPOSED_VALUE {
        value.to_string()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(bounded(value))
        )
    }
}

/// The request header that names the backend, for Envoy's route match.
fn backend_header(backends: &Backends, backend: usize) -> Option<HeaderEdit> {
    let server = backends.servers.get(backend)?;
    Some(HeaderEdit::Set(
        backends.header.clone(),
        server.name.clone(),
    ))
}

/// Where an accepted body goes.
enum Routed {
    /// Upstream, with these request edits and (if renamed) this body.
    Forward {
        edits: Vec<HeaderEdit>,
        body: Option<Vec<u8>>,
    },
    /// Nowhere: the filter gathers this listing from every backend.
    Gather(ListKind),
}

/// What a listed item becomes: its backend's public name (or hidden, if that
/// backend does not publish it), then the policy's decision on that name.
/// Calls are decided on the same public name, so listed <=> callable.
/// `published` collects the public names before the policy (metric labels:
/// a tool hidden from one caller is still a tool of the server).
fn decide_item(
    config: &FilterConfig,
    caller: Option<&Caller>,
    kind: ListKind,
    backend: usize,
    name: &str,
    published: Option<&mut Vec<String>>,
) -> Listed {
    let public = match (config.backends.as_ref(), kind.named()) {
        (Some(backends), Some(named)) if backends.renames(named) => {
            match backends.publish(named, backend, name) {
                Some(public) => public,
                None => return Listed::Hide,
            }
        }
        _ => Cow::Borrowed(name),
    };
    if let Some(names) = published {
        names.push(public.to_string());
    }
    if config.auth.is_some() {
        let allowed = caller.is_some_and(|caller| {
            config
                .policy
                .decide(caller, &Target::call(kind.subject_kind(), &public))
                .is_allowed()
        });
        if !allowed {
            return Listed::Hide;
        }
    }
    if public == name {
        Listed::Keep
    } else {
        Listed::Rename(public.into_owned())
    }
}

/// What a gathered listing carries to each backend.
#[derive(Debug, Default)]
struct Fanout {
    /// Headers as the client sent them (protocol version, mirrored method).
    forward: Vec<(String, String)>,
    /// The session id the default backend knows.
    session: Option<String>,
}

/// The headers a gathered listing carries to each backend, as the client
/// sent them, and the session id the default backend knows.
fn fanout_headers(headers: &[(String, String)], auth_edits: &[HeaderEdit]) -> Fanout {
    let forward = ["mcp-protocol-version", "mcp-method"]
        .into_iter()
        .filter_map(|name| header(headers, name).map(|v| (name.to_string(), v.to_string())))
        .collect();
    let unwrapped = auth_edits.iter().find_map(|edit| match edit {
        HeaderEdit::Set(name, value) if name == "mcp-session-id" => Some(value.clone()),
        _ => None,
    });
    let session = unwrapped.or_else(|| header(headers, "mcp-session-id").map(str::to_string));
    Fanout { forward, session }
}

/// Whether a request's params carry a `cursor`.
fn has_cursor(body: &[u8]) -> bool {
    crate::raw_json::param(body, "cursor").is_some_and(|c| c.get() != "null")
}

#[cfg(test)]
mod tests;
