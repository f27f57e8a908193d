//! Requests a stream sends to backends on the filter's behalf (a gathered
//! listing, a relayed call): sent through Envoy clusters, their answers read
//! back and handed to the exchange.
//!
//! Must not: read or judge an answer (the exchange does), or leave a request
//! waiting for a call that could not be sent: that counts as the backend
//! failing.

use super::Stream;
use crate::backends::BackendId;
use crate::exchange::{Action as StepAction, Step};
use crate::fetch::{BackendAnswer, Fetch};
use crate::wasm::host;
use crate::wasm::ROOT_ID;
use log::warn;
use proxy_wasm::types::{BufferType, MapType};
use std::time::Duration;

impl Stream {
    /// Sends requests to backends; one that cannot be sent counts
    /// as that backend failing.
    pub(super) fn send_fetches(&mut self, fetches: Vec<Fetch>) {
        for fetch in fetches {
            let headers: Vec<(&str, &str)> = fetch
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            match host::http_call(
                &fetch.cluster,
                headers,
                Some(&fetch.body),
                Duration::from_millis(fetch.timeout_ms),
            ) {
                Ok(token) => {
                    self.backend_calls.push((token, fetch.backend));
                    if self.waking {
                        // Sent from the root context's callback: the answer
                        // comes there, and is handed back to this request.
                        self.shared.adopt_call(token, self.id, self.me.clone());
                    }
                }
                Err(status) => {
                    warn!(
                        "{ROOT_ID}: cannot send a request to cluster `{}`: status {}",
                        fetch.cluster, status.0
                    );
                    let step = self.exchange.on_backend_unreachable(fetch.backend);
                    self.apply_backend_step(step);
                }
            }
        }
    }

    /// Applies a step from a request sent to a backend (a gathered listing,
    /// a relayed call): more requests, or the answer.
    pub(super) fn apply_backend_step(&mut self, step: Step) {
        let answered = matches!(step.action, StepAction::Respond(_));
        if answered {
            for failure in self.exchange.backend_failures() {
                warn!("{ROOT_ID}: {failure}");
            }
        }
        self.apply_step(step, MapType::HttpRequestHeaders);
    }

    /// A call sent while woken was answered at the root context (this
    /// request's context made effective).
    pub fn adopted_call_answered(&mut self, token: u32, num_headers: usize, body_size: usize) {
        self.waking = true;
        self.call_answered(token, num_headers, body_size);
        self.waking = false;
    }

    /// An HTTP call this request sent was answered.
    pub(super) fn call_answered(&mut self, token: u32, num_headers: usize, body_size: usize) {
        if let Some(i) = self.backend_calls.iter().position(|(t, _)| *t == token) {
            let (_, backend) = self.backend_calls.swap_remove(i);
            self.backend_answered(backend, num_headers, body_size);
        }
    }

    fn backend_answered(&mut self, backend: BackendId, num_headers: usize, body_size: usize) {
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
            content_encoding: find("content-encoding"),
            body: &body,
        };
        let step = self.exchange.on_backend_answer(backend, answer);
        self.apply_backend_step(step);
    }
}
