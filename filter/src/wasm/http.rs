//! Per-request context: Envoy's callbacks in, [`Exchange`] steps out.
//!
//! Fail closed: a step is carried out whole or the request ends
//! ([`steps::carry_out`]): a header edit, property or body rewrite the host
//! refuses ends the request with a local 500 (or a reset if that is refused
//! too), and the request never goes on. A request that waits for keys waits
//! on the root context's fetch, so it cannot take the fetch with it when it
//! dies; it waits once, then is judged with the keys there are.

use super::host;
use super::root::Shared;
use super::steps::{self, Body, Ended, Headers, Host, HostError, Outcome, Refused};
use super::ROOT_ID;
use crate::backends::BackendId;
use crate::exchange::{Action as StepAction, Exchange, Step};
use crate::reject::LocalReply;
use crate::telemetry::{self, stat_name, Sample};
use log::warn;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

/// The host, for [`steps`].
mod calls;

struct Envoy;

fn map_type(map: Headers) -> MapType {
    match map {
        Headers::Request => MapType::HttpRequestHeaders,
        Headers::Response => MapType::HttpResponseHeaders,
    }
}

impl Host for Envoy {
    fn set_header(&mut self, map: Headers, name: &str, value: &str) -> Result<(), HostError> {
        host::set_header(map_type(map), name, value)
    }
    fn remove_header(&mut self, map: Headers, name: &str) -> Result<(), HostError> {
        host::remove_header(map_type(map), name)
    }
    fn set_property(&mut self, name: &str, value: &[u8]) -> Result<(), HostError> {
        host::set_property(name, value)
    }
    fn set_body(
        &mut self,
        body: Body,
        start: usize,
        size: usize,
        data: &[u8],
    ) -> Result<(), HostError> {
        let kind = match body {
            Body::Request => BufferType::HttpRequestBody,
            Body::Response => BufferType::HttpResponseBody,
        };
        host::set_buffer(kind, start, size, data)
    }
    fn send_local_response(&mut self, reply: &LocalReply) -> Result<(), HostError> {
        let details = "mcp_filter_local_reply";
        host::send_local_response(reply.status, &reply.headers, &reply.body, details)
    }
    fn reset(&mut self) -> Result<(), HostError> {
        host::reset_stream()
    }
    fn warn(&mut self, message: &str) {
        warn!("{ROOT_ID}: {message}");
    }
}

/// What the SDK holds for one request; the state is shared with the root
/// context, which wakes the request when the keys it waits for arrive.
pub struct McpHttp {
    stream: Rc<RefCell<Stream>>,
}

impl McpHttp {
    pub fn new(shared: Rc<Shared>, context_id: u32) -> Self {
        Self {
            stream: Rc::new_cyclic(|me| RefCell::new(Stream::new(shared, context_id, me.clone()))),
        }
    }

    /// Runs a callback on the request's state. It is never busy (callbacks
    /// do not nest); if it were, the request ends rather than go on unjudged.
    fn with(&self, f: impl FnOnce(&mut Stream) -> Action) -> Action {
        match self.stream.try_borrow_mut() {
            Ok(mut stream) => f(&mut stream),
            Err(_) => {
                let refused = Refused {
                    what: "re-entering the request's state".into(),
                    status: 0,
                };
                steps::fail(&mut Envoy, &refused, None);
                Action::Pause
            }
        }
    }
}

pub struct Stream {
    shared: Rc<Shared>,
    /// This request's context id (to be woken from the root context).
    id: u32,
    me: Weak<RefCell<Stream>>,
    exchange: Exchange,
    /// The request may still wait for a JWKS fetch (once).
    may_wait: Rc<Cell<bool>>,
    /// Request headers are still in the filter's hands (their own callback,
    /// or held by a Pause): only then may they be edited.
    request_headers_held: bool,
    /// Cumulative request body size last reported (trailers end the body).
    request_body_len: usize,
    request_body_done: bool,
    /// Response body bytes already handed to the exchange while paused
    /// (Envoy then reports the cumulative buffer, not the new chunk).
    response_body_seen: usize,
    /// Response body bytes Envoy holds in the current callback.
    response_body_len: usize,
    /// Waiting for the root context's JWKS fetch.
    awaiting_keys: bool,
    /// Being woken from the root context (calls sent now answer there).
    waking: bool,
    /// The filter ended the request because the host refused a step; later
    /// callbacks leave the local reply alone.
    failed: bool,
    /// The stream is over (logged or done): never woken again.
    done: bool,
    /// A request body callback came (the held-headers watchdog stands down).
    body_started: bool,
    /// Requests sent to backends (listings, relayed calls): (call token, backend index).
    backend_calls: Vec<(u32, BackendId)>,
}

impl Stream {
    fn new(shared: Rc<Shared>, id: u32, me: Weak<RefCell<Stream>>) -> Self {
        let for_auth = shared.clone();
        let may_wait = Rc::new(Cell::new(true));
        let waits = may_wait.clone();
        let learn = shared
            .labels
            .try_borrow()
            .is_ok_and(|labels| !labels.tools.is_full());
        let exchange = Exchange::new(shared.config.clone(), host::now_ms().unwrap_or_default())
            .with_authenticator(Box::new(move |headers| {
                for_auth.authenticate(headers, host::now_ms(), waits.get())
            }))
            .with_label_learning(learn);
        Self {
            shared,
            id,
            me,
            exchange,
            may_wait,
            request_headers_held: false,
            request_body_len: 0,
            request_body_done: false,
            response_body_seen: 0,
            response_body_len: 0,
            awaiting_keys: false,
            waking: false,
            failed: false,
            done: false,
            body_started: false,
            backend_calls: Vec::new(),
        }
    }

    /// Over, failed or past its body: no longer watched.
    pub fn settled(&self) -> bool {
        self.done || self.failed || self.body_started
    }

    /// The root context's watchdog: this request's headers were held for its
    /// body, and no body came. Without `allow_on_headers_stop_iteration`
    /// Envoy never delivers it (the request would hang until a timeout, or
    /// forever): answer now, naming the missing flag.
    pub fn held_too_long(&mut self) {
        if self.done || self.failed || self.body_started || self.exchange.answered() {
            return;
        }
        let reply = crate::reject::LocalReply {
            status: 500,
            headers: vec![("content-type".into(), "application/json".into())],
            body: crate::jsonrpc::error_body(
                None,
                crate::jsonrpc::code::INTERNAL_ERROR,
                "the gateway is misconfigured: routing_headers.enabled needs \
                 allow_on_headers_stop_iteration: true in the wasm PluginConfig \
                 (Envoy >= 1.35); the request body never reached the filter",
            ),
        };
        self.apply(
            crate::exchange::Step::from(crate::exchange::Action::Respond(reply)),
            MapType::HttpRequestHeaders,
        );
        self.failed = true;
    }

    /// Applies a step's edits, properties and action, and waits for the
    /// keys it may ask for.
    fn apply(&mut self, step: Step, headers: MapType) -> Action {
        let fetch_keys = step.fetch_keys;
        let action = self.apply_step(step, headers);
        if !fetch_keys || self.failed {
            return action;
        }
        if self.wait_for_keys() {
            return action;
        }
        // No fetch to wait for: finish authentication now (it fails closed).
        let step = self.exchange_keys_ready();
        let next = self.apply_step(step, headers);
        if self.exchange.answered() || self.failed {
            Action::Pause
        } else if self.request_body_done {
            next
        } else {
            action
        }
    }

    /// Asks the root context for keys; false if there is no fetch to wait for.
    fn wait_for_keys(&mut self) -> bool {
        // Once: after this wait the request is judged with the keys there are.
        self.may_wait.set(false);
        if self.shared.wait_for_keys(self.id, self.me.clone()) {
            self.awaiting_keys = true;
            true
        } else {
            false
        }
    }

    /// The root context's JWKS fetch is over (called from the root context,
    /// this request's context made effective).
    pub fn woken(&mut self) {
        if self.done || !self.awaiting_keys {
            return;
        }
        self.waking = true;
        self.keys_ready();
        self.waking = false;
    }

    /// The JWKS fetch is over: let the exchange finish what waited for it,
    /// and release the request if it is now allowed to go on.
    fn keys_ready(&mut self) {
        self.awaiting_keys = false;
        if self.failed {
            return;
        }
        let headers_held = self.exchange.headers_await_keys();
        let done = self.request_body_done;
        let step = self.exchange_keys_ready();
        let action = self.apply(step, MapType::HttpRequestHeaders);
        // Held headers, or a complete body held at its end: Envoy waits for us.
        // Otherwise the body is still arriving and its callbacks decide.
        if action == Action::Continue && (headers_held || done) && !self.failed {
            self.request_headers_held = false;
            if let Err(e) = host::resume_request() {
                self.fail(&Refused {
                    what: "resuming the request".into(),
                    status: e.0,
                });
            }
        }
    }

    /// [`Exchange::keys_ready`] with what Envoy has buffered of the body.
    fn exchange_keys_ready(&mut self) -> Step {
        let (done, len) = (self.request_body_done, self.request_body_len);
        self.exchange.keys_ready(done, len, || {
            host::buffer(BufferType::HttpRequestBody, 0, len)
        })
    }

    /// Ends the request: the host refused what its judgement needs.
    fn fail(&mut self, refused: &Refused) -> Ended {
        self.failed = true;
        self.count_refusal();
        steps::fail(&mut Envoy, refused, self.exchange.request_id())
    }

    fn count_refusal(&self) {
        self.shared.record(&[Sample::count(stat_name(
            telemetry::REJECTIONS,
            &[("reason", steps::HOST_REFUSED)],
        ))]);
    }

    fn apply_step(&mut self, mut step: Step, headers: MapType) -> Action {
        if self.failed {
            return Action::Pause;
        }
        let fetches = std::mem::take(&mut step.fetches);
        if !fetches.is_empty() {
            self.send_fetches(fetches);
            if self.exchange.answered() || self.failed {
                // Every send failed and the exchange already answered.
                return Action::Pause;
            }
        }
        let (map, body_len, editable) = if headers == MapType::HttpRequestHeaders {
            let editable = self.request_headers_held;
            (Headers::Request, self.request_body_len, editable)
        } else {
            (Headers::Response, self.response_body_len, true)
        };
        let id = self.exchange.request_id().cloned();
        match steps::carry_out(&mut Envoy, &step, map, body_len, editable, id.as_ref()) {
            Outcome::Applied => {}
            Outcome::Answered(_) => return Action::Pause,
            Outcome::Failed(_) => {
                self.failed = true;
                self.count_refusal();
                return Action::Pause;
            }
        }
        match step.action {
            StepAction::Continue => Action::Continue,
            StepAction::Pause | StepAction::Respond(_) => Action::Pause,
            StepAction::FetchKeys => {
                if self.wait_for_keys() {
                    Action::Pause
                } else {
                    // No fetch to wait for: judge again, now without one.
                    let step = self.exchange_keys_ready();
                    self.apply(step, headers)
                }
            }
        }
    }

    fn request_body(&mut self, buffered: usize, end_of_stream: bool) -> Action {
        self.body_started = true;
        self.request_body_len = buffered;
        self.request_body_done |= end_of_stream;
        if self.failed {
            return Action::Pause;
        }
        let step = self.exchange.on_request_body(buffered, end_of_stream, || {
            host::buffer(BufferType::HttpRequestBody, 0, buffered)
        });
        let action = self.apply(step, MapType::HttpRequestHeaders);
        if action == Action::Continue {
            self.request_headers_held = false;
        }
        action
    }

    fn request_headers(&mut self, end_of_stream: bool) -> Action {
        let headers = host::headers(MapType::HttpRequestHeaders);
        #[cfg(feature = "fault-injection")]
        if headers
            .iter()
            .any(|(k, v)| k == "x-mcp-filter-fault" && v == "trap")
        {
            core::arch::wasm32::unreachable();
        }
        self.request_headers_held = true;
        let step = self.exchange.on_request_headers(&headers, end_of_stream);
        let action = self.apply(step, MapType::HttpRequestHeaders);
        self.request_headers_held = action == Action::Pause;
        // Headers held for a body Envoy may never deliver: watched.
        if action == Action::Pause
            && !end_of_stream
            && self.shared.config.routing_headers.enabled
            && !self.awaiting_keys
        {
            self.shared.watch_held(self.id, self.me.clone());
        }
        action
    }

    fn request_trailers(&mut self) -> Action {
        // HTTP/2 with trailers never flags the body's end: the trailers do.
        if self.request_body_done {
            return Action::Continue;
        }
        self.request_body(self.request_body_len, true)
    }

    fn response_headers(&mut self) -> Action {
        if self.failed {
            // Our own error reply passes untouched.
            return Action::Continue;
        }
        let headers = host::headers(MapType::HttpResponseHeaders);
        let status = headers
            .iter()
            .find(|(k, _)| k == ":status")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let step = self.exchange.on_response_headers(status, &headers);
        self.apply(step, MapType::HttpResponseHeaders)
    }

    fn response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.failed || (body_size == 0 && !end_of_stream) {
            return Action::Continue;
        }
        let start = self.response_body_seen.min(body_size);
        let chunk = if body_size > start {
            host::buffer(BufferType::HttpResponseBody, start, body_size - start).unwrap_or_default()
        } else {
            Vec::new()
        };
        let step = self.exchange.on_response_body(&chunk, end_of_stream);
        // A rewrite replaces every byte Envoy holds for this callback (the
        // cumulative buffer after pauses, else just this chunk).
        self.response_body_len = body_size;
        let action = self.apply(step, MapType::HttpResponseHeaders);
        self.response_body_seen = if action == Action::Pause {
            body_size
        } else {
            0
        };
        action
    }

    /// Trailers end the response: a listing Envoy holds is rewritten now,
    /// never released unread by the trailers callback.
    fn response_trailers(&mut self) -> Action {
        if self.failed {
            return Action::Continue;
        }
        let step = self.exchange.on_response_trailers();
        // What Envoy holds: everything buffered while the body was paused.
        self.response_body_len = self.response_body_seen;
        self.apply(step, MapType::HttpResponseHeaders)
    }

    fn log(&mut self) {
        self.done = true;
        let Ok(mut labels) = self.shared.labels.try_borrow_mut() else {
            return;
        };
        let samples = self
            .exchange
            .finish(host::now_ms().unwrap_or_default(), &mut labels);
        drop(labels);
        self.shared.record(&samples);
    }
}

impl Context for McpHttp {
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        self.with(|s| {
            s.call_answered(token, num_headers, body_size);
            Action::Continue
        });
    }

    fn on_done(&mut self) -> bool {
        if let Ok(mut s) = self.stream.try_borrow_mut() {
            s.done = true;
        }
        true
    }
}

impl HttpContext for McpHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.with(|s| s.request_headers(end_of_stream))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.with(|s| s.request_body(body_size, end_of_stream))
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        self.with(Stream::request_trailers)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.with(Stream::response_headers)
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.with(|s| s.response_body(body_size, end_of_stream))
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        self.with(Stream::response_trailers)
    }

    fn on_log(&mut self) {
        if let Ok(mut s) = self.stream.try_borrow_mut() {
            s.log();
        }
    }
}
