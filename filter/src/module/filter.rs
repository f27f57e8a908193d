//! One HTTP stream in the dynamic module: [`StreamHost`] over the filter's
//! callbacks, and the translation of its hooks to [`Stream`] and back to
//! the ABI's statuses.
//!
//! Must not: decide anything about a request (the stream and its exchange
//! do), or call back into Envoy outside a hook of this filter.

use super::abi;
use super::host::Filter;
use super::worker::Worker;
use crate::auth::Authenticated;
use crate::exchange::Exchange;
use crate::fetch::Fetch;
use crate::reject::LocalReply;
use crate::shell::{Body, CallId, Flow, Headers, Host, HostError, Stream, StreamHost};
use crate::telemetry::Sample;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The module's host, as one stream sees it.
pub struct ModuleHost {
    pub filter: Filter,
    pub worker: Rc<Worker>,
    /// This filter's id on its worker (to own the JWKS fetch).
    pub id: u64,
    /// Inside a body hook (only then does Envoy hold a received chunk).
    pub in_body: bool,
    /// Request headers were edited in this hook: the route is picked again
    /// (routing headers, the backend header).
    pub route_dirty: bool,
}

pub type ModuleStream = Stream<ModuleHost>;

pub fn now_ms() -> Option<u64> {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(since.as_millis()).ok().filter(|ms| *ms > 0)
}

impl Host for ModuleHost {
    fn set_header(&mut self, map: Headers, name: &str, value: &str) -> Result<(), HostError> {
        self.route_dirty |= map == Headers::Request;
        self.filter.set_header(map, name, value)
    }
    fn remove_header(&mut self, map: Headers, name: &str) -> Result<(), HostError> {
        self.route_dirty |= map == Headers::Request;
        self.filter.remove_header(map, name)
    }
    /// The same filter-state keys as the wasm shell (`wasm.<name>`), so an
    /// access log or route configuration works with either artifact.
    fn set_property(&mut self, name: &str, value: &[u8]) -> Result<(), HostError> {
        self.filter.set_filter_state(&format!("wasm.{name}"), value)
    }
    fn set_body(&mut self, body: Body, _: usize, _: usize, data: &[u8]) -> Result<(), HostError> {
        // The stream only ever replaces everything Envoy holds.
        self.filter.replace_body(body, self.in_body, data)
    }
    fn send_local_response(&mut self, reply: &LocalReply) -> Result<(), HostError> {
        self.filter
            .send_response(reply.status, &reply.headers, &reply.body);
        Ok(())
    }
    fn reset(&mut self) -> Result<(), HostError> {
        self.filter.reset();
        Ok(())
    }
    fn warn(&mut self, message: &str) {
        super::host::log(abi::LOG_WARN, &format!("mcp_filter: {message}"));
    }
}

impl StreamHost for ModuleHost {
    fn headers(&mut self, map: Headers) -> Option<Vec<(String, String)>> {
        self.filter.headers(map)
    }
    fn body(&mut self, body: Body, start: usize, len: usize) -> Option<Vec<u8>> {
        self.filter.body(body, self.in_body, start, len)
    }
    fn resume_request(&mut self) -> Result<(), HostError> {
        // Envoy may run the rest of the chain (the router) inside this call,
        // before the hook returns and the route is otherwise picked again.
        if std::mem::take(&mut self.route_dirty) {
            self.filter.clear_route_cache();
        }
        self.filter.continue_decoding();
        Ok(())
    }
    fn now_ms(&mut self) -> Option<u64> {
        now_ms()
    }
    fn send(&mut self, fetch: &Fetch) -> Result<CallId, HostError> {
        self.filter.callout(
            &fetch.cluster,
            &fetch.headers,
            &fetch.body,
            fetch.timeout_ms,
        )
    }
    fn wait_for_keys(&mut self) -> bool {
        let worker = &self.worker;
        if !worker.keys.remote() {
            return false;
        }
        let Some(now) = now_ms() else {
            return false;
        };
        if !worker.fetching() && !worker.start_fetch(self.filter, self.id, now) {
            return false;
        }
        match self.filter.scheduler() {
            Some(scheduler) => worker.wait(scheduler),
            None => false,
        }
    }
    fn watch_held(&mut self) {
        // Envoy always delivers the body of a request whose headers a
        // dynamic module holds: nothing to watch.
    }
    fn record(&mut self, samples: &[Sample]) {
        self.worker.record(self.filter, samples);
    }
    fn finish(&mut self, exchange: &mut Exchange, now_ms: u64) -> Vec<Sample> {
        match self.worker.labels.try_borrow_mut() {
            Ok(mut labels) => exchange.finish(now_ms, &mut labels),
            Err(_) => Vec::new(),
        }
    }
}

/// A stream for a new filter on `worker`.
pub fn new_stream(filter: Filter, worker: Rc<Worker>, id: u64) -> ModuleStream {
    let may_wait = Rc::new(Cell::new(true));
    let waits = may_wait.clone();
    let for_auth = worker.clone();
    let learn = worker
        .labels
        .try_borrow()
        .is_ok_and(|labels| !labels.tools.is_full());
    let exchange = Exchange::new(worker.config.clone(), now_ms().unwrap_or_default())
        .with_authenticator(Box::new(move |headers| -> Authenticated {
            for_auth
                .keys
                .authenticate_bearer(headers, now_ms(), waits.get())
        }))
        .with_label_learning(learn);
    worker.zero_at_load(filter);
    let host = ModuleHost {
        filter,
        worker,
        id,
        in_body: false,
        route_dirty: false,
    };
    Stream::new(host, exchange, may_wait)
}

/// What Envoy holds for one stream (the filter module pointer).
pub struct McpFilter {
    pub stream: RefCell<ModuleStream>,
    /// A hook panicked: the request was answered 500 and nothing more is
    /// done for it.
    pub broken: Cell<bool>,
    /// The stream completed inside another of its hooks (a local reply
    /// ends it inline): it is logged once that hook returns.
    pub complete_pending: Cell<bool>,
}

/// Maps a flow to a headers hook's status.
pub fn headers_status(flow: Flow) -> u32 {
    match flow {
        Flow::Continue => abi::HEADERS_CONTINUE,
        Flow::Pause => abi::HEADERS_STOP_ITERATION,
    }
}

/// Maps a flow to a body hook's status (a paused body is buffered).
pub fn body_status(flow: Flow) -> u32 {
    match flow {
        Flow::Continue => abi::BODY_CONTINUE,
        Flow::Pause => abi::BODY_STOP_ITERATION_AND_BUFFER,
    }
}

pub fn trailers_status(flow: Flow) -> u32 {
    match flow {
        Flow::Continue => abi::TRAILERS_CONTINUE,
        Flow::Pause => abi::TRAILERS_STOP_ITERATION,
    }
}
