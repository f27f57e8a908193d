//! Per-request context: proxy-wasm's callbacks translated to
//! [`crate::shell::Stream`], and [`StreamHost`] over the proxy-wasm ABI.
//!
//! Must not: decide anything about a request, or hold request state beyond
//! what proxy-wasm needs to find a request again (its context id, the calls
//! it sent while woken from the root context).

use super::host;
use super::root::Shared;
use super::ROOT_ID;
use crate::exchange::Exchange;
use crate::fetch::Fetch;
use crate::reject::LocalReply;
use crate::shell::steps::{self, Refused};
use crate::shell::{Body, CallId, Flow, Headers, Host, HostError, Stream, StreamHost};
use crate::telemetry::Sample;
use log::warn;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::time::Duration;

/// A request's stream as proxy-wasm holds it (shared with the root
/// context, which wakes it).
pub type WasmStream = Stream<Envoy>;

fn map_type(map: Headers) -> MapType {
    match map {
        Headers::Request => MapType::HttpRequestHeaders,
        Headers::Response => MapType::HttpResponseHeaders,
    }
}

fn buffer_type(body: Body) -> BufferType {
    match body {
        Body::Request => BufferType::HttpRequestBody,
        Body::Response => BufferType::HttpResponseBody,
    }
}

/// The proxy-wasm host, as one request sees it.
pub struct Envoy {
    shared: Rc<Shared>,
    /// This request's context id (to be woken from the root context).
    id: u32,
    me: Weak<RefCell<WasmStream>>,
    /// Being woken from the root context: calls sent now answer there.
    pub waking: bool,
}

/// The host calls that need no request state (also used when the request's
/// state cannot be reached).
struct Bare;

impl Host for Bare {
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
        host::set_buffer(buffer_type(body), start, size, data)
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

impl Host for Envoy {
    fn set_header(&mut self, map: Headers, name: &str, value: &str) -> Result<(), HostError> {
        Bare.set_header(map, name, value)
    }
    fn remove_header(&mut self, map: Headers, name: &str) -> Result<(), HostError> {
        Bare.remove_header(map, name)
    }
    fn set_property(&mut self, name: &str, value: &[u8]) -> Result<(), HostError> {
        Bare.set_property(name, value)
    }
    fn set_body(
        &mut self,
        body: Body,
        start: usize,
        size: usize,
        data: &[u8],
    ) -> Result<(), HostError> {
        Bare.set_body(body, start, size, data)
    }
    fn send_local_response(&mut self, reply: &LocalReply) -> Result<(), HostError> {
        Bare.send_local_response(reply)
    }
    fn reset(&mut self) -> Result<(), HostError> {
        Bare.reset()
    }
    fn warn(&mut self, message: &str) {
        Bare.warn(message);
    }
}

impl StreamHost for Envoy {
    fn headers(&mut self, map: Headers) -> Option<Vec<(String, String)>> {
        host::headers(map_type(map))
    }
    /// Exactly the bytes asked for: a short read is no read.
    fn body(&mut self, body: Body, start: usize, len: usize) -> Option<Vec<u8>> {
        host::buffer(buffer_type(body), start, len).filter(|bytes| bytes.len() == len)
    }
    fn resume_request(&mut self) -> Result<(), HostError> {
        host::resume_request()
    }
    fn now_ms(&mut self) -> Option<u64> {
        host::now_ms()
    }
    fn send(&mut self, fetch: &Fetch) -> Result<CallId, HostError> {
        let headers: Vec<(&str, &str)> = fetch
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let token = host::http_call(
            &fetch.cluster,
            headers,
            Some(&fetch.body),
            Duration::from_millis(fetch.timeout_ms),
        )?;
        if self.waking {
            // Sent from the root context's callback: the answer comes there,
            // and is handed back to this request.
            self.shared.adopt_call(token, self.id, self.me.clone());
        }
        Ok(CallId::from(token))
    }
    fn wait_for_keys(&mut self) -> bool {
        self.shared.wait_for_keys(self.id, self.me.clone())
    }
    fn watch_held(&mut self) {
        self.shared.watch_held(self.id, self.me.clone());
    }
    fn record(&mut self, samples: &[Sample]) {
        self.shared.record(samples);
    }
    fn finish(&mut self, exchange: &mut Exchange, now_ms: u64) -> Vec<Sample> {
        match self.shared.labels.try_borrow_mut() {
            Ok(mut labels) => exchange.finish(now_ms, &mut labels),
            Err(_) => Vec::new(),
        }
    }
}

/// Builds a request's stream: its exchange authenticates with the VM's
/// keys, read at the host's clock.
pub fn new_stream(shared: Rc<Shared>, id: u32) -> Rc<RefCell<WasmStream>> {
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
    Rc::new_cyclic(|me| {
        let envoy = Envoy {
            shared,
            id,
            me: me.clone(),
            waking: false,
        };
        RefCell::new(Stream::new(envoy, exchange, may_wait))
    })
}

/// What the SDK holds for one request.
pub struct McpHttp {
    stream: Rc<RefCell<WasmStream>>,
}

impl McpHttp {
    pub fn new(shared: Rc<Shared>, context_id: u32) -> Self {
        Self {
            stream: new_stream(shared, context_id),
        }
    }

    /// Runs a callback on the request's state. It is never busy (callbacks
    /// do not nest); if it were, the request ends rather than go on unjudged.
    fn with(&self, f: impl FnOnce(&mut WasmStream) -> Flow) -> Action {
        match self.stream.try_borrow_mut() {
            Ok(mut stream) => match f(&mut stream) {
                Flow::Continue => Action::Continue,
                Flow::Pause => Action::Pause,
            },
            Err(_) => {
                let refused = Refused {
                    what: "re-entering the request's state".into(),
                    status: 0,
                };
                steps::fail(&mut Bare, &refused, None);
                Action::Pause
            }
        }
    }
}

/// Reads a proxy-wasm call's answer and hands it to the stream.
pub fn call_answered(stream: &mut WasmStream, token: u32, num_headers: usize, body_size: usize) {
    let call = CallId::from(token);
    if !stream.sent(call) {
        return;
    }
    // An answer that cannot be read whole counts as the call failing (no
    // headers), never as an empty one.
    let headers = if num_headers == 0 {
        None
    } else {
        host::headers(MapType::HttpCallResponseHeaders)
    };
    let body = if body_size > 0 {
        host::buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .filter(|body| body.len() == body_size)
    } else {
        Some(Vec::new())
    };
    match (headers, body) {
        (Some(headers), Some(body)) => stream.call_answered(call, &headers, &body),
        _ => stream.call_answered(call, &[], &[]),
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
            call_answered(s, token, num_headers, body_size);
            Flow::Continue
        });
    }

    fn on_done(&mut self) -> bool {
        if let Ok(mut s) = self.stream.try_borrow_mut() {
            s.end();
        }
        true
    }
}

impl HttpContext for McpHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        #[cfg(feature = "fault-injection")]
        if host::headers(MapType::HttpRequestHeaders)
            .unwrap_or_default()
            .iter()
            .any(|(k, v)| k == "x-mcp-filter-fault" && v == "trap")
        {
            core::arch::wasm32::unreachable();
        }
        self.with(|s| s.request_headers(end_of_stream))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.with(|s| s.request_body(body_size, end_of_stream))
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        self.with(WasmStream::request_trailers)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.with(WasmStream::response_headers)
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.with(|s| s.response_body(body_size, end_of_stream))
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        self.with(WasmStream::response_trailers)
    }

    fn on_log(&mut self) {
        if let Ok(mut s) = self.stream.try_borrow_mut() {
            s.log();
        }
    }
}
