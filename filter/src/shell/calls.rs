//! Requests a stream sends to backends on the filter's behalf (a gathered
//! listing, a relayed call): sent through the host, their answers handed to
//! the exchange.
//!
//! Must not: read or judge an answer (the exchange does), or leave a request
//! waiting for a call that could not be sent: that counts as the backend
//! failing.

use super::steps::Headers;
use super::stream::{Stream, StreamHost};
use super::CallId;
use crate::backends::BackendId;
use crate::exchange::{Action, Step};
use crate::fetch::{BackendAnswer, Fetch};

impl<H: StreamHost> Stream<H> {
    /// Sends requests to backends; one that cannot be sent counts as that
    /// backend failing.
    pub(super) fn send_fetches(&mut self, fetches: Vec<Fetch>) {
        for fetch in fetches {
            match self.host.send(&fetch) {
                Ok(call) => self.backend_calls.push((call, fetch.backend)),
                Err(status) => {
                    self.host.warn(&format!(
                        "cannot send a request to cluster `{}`: status {}",
                        fetch.cluster, status.0
                    ));
                    let step = self.exchange().on_backend_unreachable(fetch.backend);
                    self.apply_backend_step(step);
                }
            }
        }
    }

    /// Applies a step from a request sent to a backend: more requests, or
    /// the answer.
    fn apply_backend_step(&mut self, step: Step) {
        if matches!(step.action, Action::Respond(_)) {
            for failure in self.exchange().backend_failures() {
                self.host.warn(&failure);
            }
        }
        self.apply_step(step, Headers::Request);
    }

    /// Whether `call` is one this request sent and still waits for.
    pub fn sent(&self, call: CallId) -> bool {
        self.backend_calls.iter().any(|(c, _)| *c == call)
    }

    /// A call this request sent was answered: `headers` (empty when the call
    /// failed: refused, reset, timed out) and the whole body.
    pub fn call_answered(&mut self, call: CallId, headers: &[(String, String)], body: &[u8]) {
        let Some(i) = self.backend_calls.iter().position(|(c, _)| *c == call) else {
            return;
        };
        let (_, backend): (CallId, BackendId) = self.backend_calls.swap_remove(i);
        let find = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let answer = BackendAnswer {
            status: find(":status").and_then(|s| s.parse().ok()),
            content_type: find("content-type"),
            content_encoding: find("content-encoding"),
            body,
        };
        let step = self.exchange().on_backend_answer(backend, answer);
        self.apply_backend_step(step);
    }
}
