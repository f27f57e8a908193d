//! Per-request context: Envoy's callbacks in, [`Exchange`] steps out.

use super::host;
use super::root::Shared;
use super::ROOT_ID;
use crate::aggregate::{BackendAnswer, Fetch};
use crate::exchange::{Action as StepAction, Exchange, HeaderEdit, Step};
use log::warn;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};
use std::rc::Rc;
use std::time::Duration;

pub struct McpHttp {
    shared: Rc<Shared>,
    exchange: Exchange,
    /// Request headers are still in the filter's hands (their own callback,
    /// or held by a Pause): only then may they be edited.
    request_headers_held: bool,
    /// Cumulative request body size last reported (trailers end the body).
    request_body_len: usize,
    request_body_done: bool,
    /// Response body bytes already handed to the exchange while paused
    /// (Envoy then reports the cumulative buffer, not the new chunk).
    response_body_seen: usize,
    /// Waiting for a JWKS fetch this context started.
    awaiting_keys: bool,
    /// Listing requests sent to backends: (call token, backend index).
    listing_calls: Vec<(u32, usize)>,
}

impl McpHttp {
    pub fn new(shared: Rc<Shared>, now_ms: u64) -> Self {
        let for_auth = shared.clone();
        let learn = shared
            .labels
            .try_borrow()
            .is_ok_and(|labels| !labels.tools.is_full());
        let exchange = Exchange::new(shared.config.clone(), now_ms)
            .with_authenticator(Box::new(move |headers| {
                for_auth.authenticate(headers, host::now_ms())
            }))
            .with_label_learning(learn);
        Self {
            shared,
            exchange,
            request_headers_held: false,
            request_body_len: 0,
            request_body_done: false,
            response_body_seen: 0,
            awaiting_keys: false,
            listing_calls: Vec::new(),
        }
    }

    /// Applies a step's edits, properties and action, and starts the JWKS
    /// fetch it may ask for.
    fn apply(&mut self, step: Step, headers: MapType) -> Action {
        let fetch_keys = step.fetch_keys;
        let action = self.apply_step(step, headers);
        if !fetch_keys {
            return action;
        }
        if self.shared.fetch_jwks(self, host::now_ms()) {
            self.awaiting_keys = true;
            return action;
        }
        // No fetch could start: finish authentication now (it fails closed).
        let step = self.exchange_keys_ready();
        let next = self.apply_step(step, headers);
        if self.exchange.answered() {
            Action::Pause
        } else if self.request_body_done {
            next
        } else {
            action
        }
    }

    /// The JWKS fetch is over: let the exchange finish what waited for it,
    /// and release the request if it is now allowed to go on.
    fn keys_ready(&mut self) {
        let headers_held = self.exchange.headers_await_keys();
        let done = self.request_body_done;
        let step = self.exchange_keys_ready();
        let action = self.apply(step, MapType::HttpRequestHeaders);
        // Held headers, or a complete body held at its end: Envoy waits for us.
        // Otherwise the body is still arriving and its callbacks decide.
        if action == Action::Continue && (headers_held || done) {
            self.request_headers_held = false;
            if let Err(e) = host::resume_request() {
                warn!("{ROOT_ID}: cannot resume the request: status {}", e.0);
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

    fn apply_step(&mut self, mut step: Step, headers: MapType) -> Action {
        if let Some(body) = step.body.take() {
            // A rewritten request body replaces everything Envoy buffered.
            if headers == MapType::HttpRequestHeaders {
                let len = self.request_body_len;
                if let Err(e) = host::set_buffer(BufferType::HttpRequestBody, 0, len, &body) {
                    warn!("{ROOT_ID}: cannot rewrite the request body: status {}", e.0);
                }
            }
        }
        let fetches = std::mem::take(&mut step.fetches);
        if !fetches.is_empty() {
            self.send_fetches(fetches);
            if self.exchange.answered() {
                // Every send failed and the exchange already answered.
                return Action::Pause;
            }
        }
        if !step.header_edits.is_empty() {
            if self.request_headers_held || headers != MapType::HttpRequestHeaders {
                for edit in &step.header_edits {
                    let result = match edit {
                        HeaderEdit::Set(name, value) => host::set_header(headers, name, value),
                        HeaderEdit::Remove(name) => host::remove_header(headers, name),
                    };
                    if let Err(e) = result {
                        warn!(
                            "{ROOT_ID}: header edit on {name} refused: status {}",
                            e.0,
                            name = edit_name(edit)
                        );
                    }
                }
            } else {
                warn!("{ROOT_ID}: request headers already sent; edits dropped");
            }
        }
        for (name, value) in &step.properties {
            if let Err(e) = host::set_property(name, value.as_bytes()) {
                warn!("{ROOT_ID}: cannot set property {name}: status {}", e.0);
            }
        }
        match step.action {
            StepAction::Continue => Action::Continue,
            StepAction::Pause => Action::Pause,
            StepAction::FetchKeys => {
                if self.shared.fetch_jwks(self, host::now_ms()) {
                    self.awaiting_keys = true;
                    Action::Pause
                } else {
                    // No fetch could start: judge again, now without the fetch.
                    let step = self.exchange_keys_ready();
                    self.apply(step, headers)
                }
            }
            StepAction::Respond(reply) => {
                let details = "mcp_filter_local_reply";
                if let Err(e) =
                    host::send_local_response(reply.status, &reply.headers, &reply.body, details)
                {
                    warn!("{ROOT_ID}: local reply refused: status {}", e.0);
                }
                Action::Pause
            }
        }
    }

    /// Sends a gathered listing's requests; one that cannot be sent counts
    /// as that backend failing.
    fn send_fetches(&mut self, fetches: Vec<Fetch>) {
        for fetch in fetches {
            let headers: Vec<(&str, &str)> = fetch
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            match self.dispatch_http_call(
                &fetch.cluster,
                headers,
                Some(&fetch.body),
                vec![],
                Duration::from_millis(fetch.timeout_ms),
            ) {
                Ok(token) => {
                    self.listing_calls.push((token, fetch.backend));
                }
                Err(status) => {
                    warn!(
                        "{ROOT_ID}: cannot send the listing to cluster `{}`: {status:?}",
                        fetch.cluster
                    );
                    let step = self.exchange.on_listing_unreachable(fetch.backend);
                    self.apply_listing_step(step);
                }
            }
        }
    }

    /// Applies a step from a gathered listing: more requests, or the answer.
    fn apply_listing_step(&mut self, step: Step) {
        let answered = matches!(step.action, StepAction::Respond(_));
        if answered {
            for (backend, reason) in self.exchange.backend_failures() {
                warn!("{ROOT_ID}: backend `{backend}` left out of the listing: {reason}");
            }
        }
        self.apply_step(step, MapType::HttpRequestHeaders);
    }

    fn listing_answered(&mut self, backend: usize, num_headers: usize, body_size: usize) {
        let headers = if num_headers == 0 {
            Vec::new()
        } else {
            host::headers(MapType::HttpCallResponseHeaders)
        };
        let find = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let status = find(":status").and_then(|s| s.parse().ok());
        let body = if body_size > 0 {
            host::buffer(BufferType::HttpCallResponseBody, 0, body_size).unwrap_or_default()
        } else {
            Vec::new()
        };
        let answer = BackendAnswer {
            status,
            content_type: find("content-type"),
            body: &body,
        };
        let step = self.exchange.on_listing_answer(backend, answer);
        self.apply_listing_step(step);
    }

    fn request_body(&mut self, buffered: usize, end_of_stream: bool) -> Action {
        self.request_body_len = buffered;
        self.request_body_done |= end_of_stream;
        let step = self.exchange.on_request_body(buffered, end_of_stream, || {
            host::buffer(BufferType::HttpRequestBody, 0, buffered)
        });
        let action = self.apply(step, MapType::HttpRequestHeaders);
        if action == Action::Continue {
            self.request_headers_held = false;
        }
        action
    }
}

fn edit_name(edit: &HeaderEdit) -> &str {
    match edit {
        HeaderEdit::Set(name, _) | HeaderEdit::Remove(name) => name,
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
        if let Some(i) = self.listing_calls.iter().position(|(t, _)| *t == token) {
            let (_, backend) = self.listing_calls.swap_remove(i);
            self.listing_answered(backend, num_headers, body_size);
            return;
        }
        if !self.awaiting_keys {
            return;
        }
        self.awaiting_keys = false;
        self.shared.jwks_fetched(body_size, host::now_ms());
        self.keys_ready();
    }
}

impl HttpContext for McpHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
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
        action
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.request_body(body_size, end_of_stream)
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        // HTTP/2 with trailers never flags the body's end: the trailers do.
        if self.request_body_done {
            return Action::Continue;
        }
        self.request_body(self.request_body_len, true)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let headers = host::headers(MapType::HttpResponseHeaders);
        let status = headers
            .iter()
            .find(|(k, _)| k == ":status")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let step = self.exchange.on_response_headers(status, &headers);
        self.apply(step, MapType::HttpResponseHeaders)
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if body_size == 0 && !end_of_stream {
            return Action::Continue;
        }
        let start = self.response_body_seen.min(body_size);
        let chunk = if body_size > start {
            host::buffer(BufferType::HttpResponseBody, start, body_size - start).unwrap_or_default()
        } else {
            Vec::new()
        };
        let mut step = self.exchange.on_response_body(&chunk, end_of_stream);
        if let Some(body) = step.body.take() {
            // Replaces every byte Envoy holds for this callback (the cumulative
            // buffer after pauses, else just this chunk).
            if let Err(e) = host::set_buffer(BufferType::HttpResponseBody, 0, body_size, &body) {
                warn!(
                    "{ROOT_ID}: cannot rewrite the response body: status {}",
                    e.0
                );
            }
        }
        let action = self.apply(step, MapType::HttpResponseHeaders);
        self.response_body_seen = if action == Action::Pause {
            body_size
        } else {
            0
        };
        action
    }

    fn on_log(&mut self) {
        let samples = self
            .exchange
            .finish(host::now_ms(), &mut self.shared.labels.borrow_mut());
        self.shared.record(&samples);
    }
}
