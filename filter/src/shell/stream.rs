//! One request's life in a shell: Envoy's callbacks in, [`Exchange`] steps
//! out, carried out through a [`StreamHost`].
//!
//! Fail closed: a step is carried out whole or the request ends
//! ([`steps::carry_out`]): a header edit, property or body rewrite the host
//! refuses ends the request with a local 500 (or a reset if that is refused
//! too), and the request never goes on. A request that waits for keys waits
//! on its worker's fetch, so it cannot take the fetch with it when it dies;
//! it waits once, then is judged with the keys there are.
//!
//! Must not: read Envoy's buffers itself (the host does), or know how a
//! shell wakes a request (it calls [`Stream::woken`]).

use super::steps::{self, Body, Ended, Headers, Host, HostError, Outcome, Refused};
use super::{CallId, Flow};
use crate::backends::BackendId;
use crate::exchange::{Action, Exchange, Step};
use crate::fetch::Fetch;
use crate::reject::LocalReply;
use crate::telemetry::{self, stat_name, Sample};
use std::cell::Cell;
use std::rc::Rc;

/// What a shell gives a stream beyond carrying out steps.
pub trait StreamHost: Host {
    /// Every header of a map, pseudo-headers included; `None` if it cannot
    /// be read whole.
    fn headers(&mut self, map: Headers) -> Option<Vec<(String, String)>>;
    /// Bytes `[start, start + len)` of the body Envoy holds now, `None` if
    /// it cannot be read.
    fn body(&mut self, body: Body, start: usize, len: usize) -> Option<Vec<u8>>;
    /// Lets a request held by a `Pause` go on.
    fn resume_request(&mut self) -> Result<(), HostError>;
    /// Envoy's clock in Unix milliseconds; `None` if it cannot be read.
    fn now_ms(&mut self) -> Option<u64>;
    /// Sends a request to a backend; its answer comes to
    /// [`Stream::call_answered`] with the id returned.
    fn send(&mut self, fetch: &Fetch) -> Result<CallId, HostError>;
    /// Registers this request to be woken ([`Stream::woken`]) when its
    /// worker's JWKS fetch is over; false if there is none to wait for.
    fn wait_for_keys(&mut self) -> bool;
    /// Headers are held for a body that may never come: the shell calls
    /// [`Stream::held_too_long`] if none has come in time.
    fn watch_held(&mut self);
    /// Records metric samples.
    fn record(&mut self, samples: &[Sample]);
    /// The request is over: its samples, with the worker's labels.
    fn finish(&mut self, exchange: &mut Exchange, now_ms: u64) -> Vec<Sample>;
}

pub struct Stream<H> {
    pub host: H,
    exchange: Exchange,
    /// The request may still wait for a JWKS fetch (once); shared with the
    /// exchange's authenticator.
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
    /// Waiting for the worker's JWKS fetch.
    awaiting_keys: bool,
    /// The filter ended the request because the host refused a step; later
    /// callbacks leave the local reply alone.
    failed: bool,
    /// Neither the filter's reply nor a reset went out ([`Ended::Stuck`]):
    /// what Envoy holds is the upstream's, and stays paused.
    stuck: bool,
    /// The stream is over (logged or done): never woken again.
    done: bool,
    /// A request body callback came (the held-headers watchdog stands down).
    body_started: bool,
    /// Requests sent to backends (listings, relayed calls).
    pub(super) backend_calls: Vec<(CallId, BackendId)>,
}

impl<H: StreamHost> Stream<H> {
    /// `may_wait` is the flag the exchange's authenticator reads.
    pub fn new(host: H, exchange: Exchange, may_wait: Rc<Cell<bool>>) -> Self {
        may_wait.set(true);
        Self {
            host,
            exchange,
            may_wait,
            request_headers_held: false,
            request_body_len: 0,
            request_body_done: false,
            response_body_seen: 0,
            response_body_len: 0,
            awaiting_keys: false,
            failed: false,
            stuck: false,
            done: false,
            body_started: false,
            backend_calls: Vec::new(),
        }
    }

    /// Over, failed or past its body: no longer watched.
    pub fn settled(&self) -> bool {
        self.done || self.failed || self.body_started
    }

    /// The stream is over for Envoy: nothing more is done for it.
    pub fn end(&mut self) {
        self.done = true;
    }

    /// The watchdog: this request's headers were held for its body, and no
    /// body came (proxy-wasm without `allow_on_headers_stop_iteration`
    /// never delivers it): answer now, naming the missing flag.
    pub fn held_too_long(&mut self) {
        if self.done || self.failed || self.body_started || self.exchange.answered() {
            return;
        }
        let reply = LocalReply {
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
        self.apply(Step::from(Action::Respond(reply)), Headers::Request);
        self.failed = true;
    }

    /// Applies a step's edits, properties and action, and waits for the
    /// keys it may ask for.
    fn apply(&mut self, step: Step, headers: Headers) -> Flow {
        let fetch_keys = step.fetch_keys;
        let flow = self.apply_step(step, headers);
        if !fetch_keys || self.failed {
            return flow;
        }
        if self.wait_for_keys() {
            return flow;
        }
        // No fetch to wait for: finish authentication now (it fails closed).
        let step = self.exchange_keys_ready();
        let next = self.apply_step(step, headers);
        if self.exchange.answered() || self.failed {
            Flow::Pause
        } else if self.request_body_done {
            next
        } else {
            flow
        }
    }

    /// Asks the worker for keys; false if there is no fetch to wait for.
    fn wait_for_keys(&mut self) -> bool {
        // Once: after this wait the request is judged with the keys there are.
        self.may_wait.set(false);
        if self.host.wait_for_keys() {
            self.awaiting_keys = true;
            true
        } else {
            false
        }
    }

    /// The worker's JWKS fetch is over: let the exchange finish what waited
    /// for it, and release the request if it is now allowed to go on.
    pub fn woken(&mut self) {
        if self.done || !self.awaiting_keys {
            return;
        }
        self.awaiting_keys = false;
        if self.failed || self.stuck {
            return;
        }
        let headers_held = self.exchange.headers_await_keys();
        let done = self.request_body_done;
        let step = self.exchange_keys_ready();
        let flow = self.apply(step, Headers::Request);
        // Held headers, or a complete body held at its end: Envoy waits for us.
        // Otherwise the body is still arriving and its callbacks decide.
        if flow == Flow::Continue && (headers_held || done) && !self.failed {
            self.request_headers_held = false;
            if let Err(e) = self.host.resume_request() {
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
        let host = &mut self.host;
        self.exchange
            .keys_ready(done, len, || host.body(Body::Request, 0, len))
    }

    /// Ends the request: the host refused what its judgement needs.
    fn fail(&mut self, refused: &Refused) -> Ended {
        self.failed = true;
        self.count_refusal();
        let ended = steps::fail(&mut self.host, refused, self.exchange.request_id());
        self.stuck |= ended == Ended::Stuck;
        ended
    }

    /// What a callback after the filter ended the request lets through: its
    /// own reply, never an answer it could not end.
    fn after_failure(&self) -> Flow {
        if self.stuck {
            Flow::Pause
        } else {
            Flow::Continue
        }
    }

    fn count_refusal(&mut self) {
        self.host.record(&[Sample::count(stat_name(
            telemetry::REJECTIONS,
            &[("reason", steps::HOST_REFUSED)],
        ))]);
    }

    pub(super) fn apply_step(&mut self, mut step: Step, headers: Headers) -> Flow {
        if self.failed || self.stuck {
            return Flow::Pause;
        }
        // Sent once the step's edits and properties are in: a backend must
        // not act on a request whose step could not be carried out.
        let fetches = std::mem::take(&mut step.fetches);
        let (body_len, editable) = match headers {
            Headers::Request => (self.request_body_len, self.request_headers_held),
            Headers::Response => (self.response_body_len, true),
        };
        let id = self.exchange.request_id().cloned();
        match steps::carry_out(
            &mut self.host,
            &step,
            headers,
            body_len,
            editable,
            id.as_ref(),
        ) {
            Outcome::Applied => {}
            Outcome::Answered(ended) => {
                self.stuck |= ended == Ended::Stuck;
                return Flow::Pause;
            }
            Outcome::Failed(ended) => {
                self.stuck |= ended == Ended::Stuck;
                self.failed = true;
                self.count_refusal();
                return Flow::Pause;
            }
        }
        if !fetches.is_empty() {
            self.send_fetches(fetches);
            if self.exchange.answered() || self.failed || self.stuck {
                // Every send failed and the exchange already answered.
                return Flow::Pause;
            }
        }
        match step.action {
            Action::Continue => Flow::Continue,
            Action::Pause | Action::Respond(_) => Flow::Pause,
            Action::FetchKeys => {
                if self.wait_for_keys() {
                    Flow::Pause
                } else {
                    // No fetch to wait for: judge again, now without one.
                    let step = self.exchange_keys_ready();
                    self.apply(step, headers)
                }
            }
        }
    }

    /// Request headers arrived (`end_of_stream`: no body follows).
    pub fn request_headers(&mut self, end_of_stream: bool) -> Flow {
        self.request_headers_held = true;
        let Some(headers) = self.host.headers(Headers::Request) else {
            self.fail(&Refused {
                what: "reading the request headers".into(),
                status: 0,
            });
            return Flow::Pause;
        };
        let step = self.exchange.on_request_headers(&headers, end_of_stream);
        let flow = self.apply(step, Headers::Request);
        self.request_headers_held = flow == Flow::Pause;
        // Headers held for a body Envoy may never deliver: watched.
        if flow == Flow::Pause
            && !end_of_stream
            && self.exchange.routing_headers_enabled()
            && !self.awaiting_keys
        {
            self.host.watch_held();
        }
        flow
    }

    /// Request body progress: `buffered` is every body byte Envoy holds.
    pub fn request_body(&mut self, buffered: usize, end_of_stream: bool) -> Flow {
        self.body_started = true;
        self.request_body_len = buffered;
        self.request_body_done |= end_of_stream;
        if self.failed || self.stuck {
            return Flow::Pause;
        }
        let host = &mut self.host;
        let step = self.exchange.on_request_body(buffered, end_of_stream, || {
            host.body(Body::Request, 0, buffered)
        });
        let flow = self.apply(step, Headers::Request);
        if flow == Flow::Continue {
            self.request_headers_held = false;
        }
        flow
    }

    /// Request trailers: HTTP/2 with trailers never flags the body's end.
    pub fn request_trailers(&mut self) -> Flow {
        if self.request_body_done {
            return Flow::Continue;
        }
        self.request_body(self.request_body_len, true)
    }

    pub fn response_headers(&mut self) -> Flow {
        if self.failed || self.stuck {
            // Our own error reply passes untouched.
            return self.after_failure();
        }
        let Some(headers) = self.host.headers(Headers::Response) else {
            self.fail(&Refused {
                what: "reading the response headers".into(),
                status: 0,
            });
            return Flow::Pause;
        };
        let status = headers
            .iter()
            .find(|(k, _)| k == ":status")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let step = self.exchange.on_response_headers(status, &headers);
        self.apply(step, Headers::Response)
    }

    /// Response body progress: `body_size` is every byte Envoy holds now
    /// (the cumulative buffer after pauses, else the new chunk).
    pub fn response_body(&mut self, body_size: usize, end_of_stream: bool) -> Flow {
        if self.failed || self.stuck {
            return self.after_failure();
        }
        if body_size == 0 && !end_of_stream {
            return Flow::Continue;
        }
        let start = self.response_body_seen.min(body_size);
        let chunk = if body_size > start {
            match self.host.body(Body::Response, start, body_size - start) {
                Some(chunk) => chunk,
                None => {
                    self.fail(&Refused {
                        what: "reading the response body".into(),
                        status: 0,
                    });
                    return Flow::Pause;
                }
            }
        } else {
            Vec::new()
        };
        let step = self.exchange.on_response_body(&chunk, end_of_stream);
        // A rewrite replaces every byte Envoy holds for this callback.
        self.response_body_len = body_size;
        let flow = self.apply(step, Headers::Response);
        self.response_body_seen = if flow == Flow::Pause { body_size } else { 0 };
        flow
    }

    /// Trailers end the response: a listing Envoy holds is rewritten now,
    /// never released unread by the trailers callback.
    pub fn response_trailers(&mut self) -> Flow {
        if self.failed || self.stuck {
            return self.after_failure();
        }
        let step = self.exchange.on_response_trailers();
        // What Envoy holds: everything buffered while the body was paused.
        self.response_body_len = self.response_body_seen;
        self.apply(step, Headers::Response)
    }

    /// The request is logged: its samples are recorded.
    pub fn log(&mut self) {
        self.done = true;
        let now = self.host.now_ms().unwrap_or_default();
        let samples = self.host.finish(&mut self.exchange, now);
        self.host.record(&samples);
    }

    pub(super) fn exchange(&mut self) -> &mut Exchange {
        &mut self.exchange
    }
}
