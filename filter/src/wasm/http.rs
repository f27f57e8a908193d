//! Per-request context: Envoy's callbacks in, [`Exchange`] steps out.

use super::host;
use super::root::Shared;
use super::ROOT_ID;
use crate::exchange::{Action as StepAction, Exchange, HeaderEdit, Step};
use log::warn;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};
use std::rc::Rc;

pub struct McpHttp {
    shared: Rc<Shared>,
    exchange: Exchange,
    /// Request headers are still in the filter's hands (their own callback,
    /// or held by a Pause): only then may they be edited.
    request_headers_held: bool,
    /// Cumulative request body size last reported (trailers end the body).
    request_body_len: usize,
    request_body_done: bool,
}

impl McpHttp {
    pub fn new(shared: Rc<Shared>, now_ms: u64) -> Self {
        let exchange = Exchange::new(shared.config.clone(), now_ms);
        Self {
            shared,
            exchange,
            request_headers_held: false,
            request_body_len: 0,
            request_body_done: false,
        }
    }

    /// Applies a step's edits, properties and action.
    fn apply(&mut self, step: Step, headers: MapType) -> Action {
        if !step.header_edits.is_empty() {
            if self.request_headers_held || headers != MapType::HttpRequestHeaders {
                for edit in &step.header_edits {
                    let result = match edit {
                        HeaderEdit::Set(name, value) => host::set_header(headers, name, value),
                        HeaderEdit::Remove(name) => host::remove_header(headers, name),
                    };
                    if let Err(e) = result {
                        warn!("{ROOT_ID}: header edit {edit:?} refused: status {}", e.0);
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

impl Context for McpHttp {}

impl HttpContext for McpHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let headers = host::headers(MapType::HttpRequestHeaders);
        let step = self.exchange.on_request_headers(&headers, end_of_stream);
        self.request_headers_held = true;
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

    fn on_http_response_body(&mut self, body_size: usize, _end_of_stream: bool) -> Action {
        if body_size > 0 {
            let chunk =
                host::buffer(BufferType::HttpResponseBody, 0, body_size).unwrap_or_default();
            let step = self.exchange.on_response_body(&chunk);
            return self.apply(step, MapType::HttpResponseHeaders);
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        let samples = self
            .exchange
            .finish(host::now_ms(), &mut self.shared.tool_labels.borrow_mut());
        self.shared.record(&samples);
    }
}
