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

use crate::classify::{classify, Classified, MessageKind, Subject};
use crate::config::{FilterConfig, NonMcpTraffic};
use crate::jsonrpc::{code, error_body, RequestId};
use crate::mirrored::MirroredHeaders;
use crate::reject::{LocalReply, Reason, Rejection};
use crate::response::{Framing, Outcome, ResponseObserver};
use crate::telemetry::{self, method_label, stat_name, Sample, ToolLabels};
use base64::Engine;
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
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not the MCP endpoint's business (other path, OPTIONS...): untouched.
    Passthrough,
    /// GET (server stream) or DELETE (end session): forwarded untouched, but a body is refused.
    NoBodyAllowed,
    /// An MCP POST whose body is being buffered; `held` when headers wait too.
    AwaitingBody { held: bool },
    /// The request was judged and forwarded.
    Forwarded,
    /// The filter answered the request itself.
    Answered,
}

/// What was learned from an accepted request body.
#[derive(Debug, Clone)]
struct Judged {
    body: Classified,
}

pub struct Exchange {
    config: Rc<FilterConfig>,
    started_ms: u64,
    phase: Phase,
    mirrored: MirroredHeaders,
    judged: Option<Judged>,
    rejected: Option<Reason>,
    response: Option<ResponseObserver>,
    /// Whether the POST's response headers arrived (an upstream reset leaves it false).
    responded: bool,
}

/// Longest value copied into filter state or a routing header.
const MAX_EXPOSED_VALUE: usize = 256;

impl Exchange {
    pub fn new(config: Rc<FilterConfig>, now_ms: u64) -> Self {
        Self {
            config,
            started_ms: now_ms,
            phase: Phase::Passthrough,
            mirrored: MirroredHeaders::default(),
            judged: None,
            rejected: None,
            response: None,
            responded: false,
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
        for name in [
            &self.config.routing_headers.method,
            &self.config.routing_headers.name,
        ] {
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
        if !self.config.is_mcp_path(path) {
            return self.non_mcp(Reason::NotFound, "not the MCP endpoint");
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
                self.phase = Phase::NoBodyAllowed;
                return Step::go();
            }
            // CORS preflight is answered by Envoy's cors filter or the server.
            "OPTIONS" => return Step::go(),
            _ => {
                return self.non_mcp(
                    Reason::MethodNotAllowed,
                    "the MCP endpoint serves GET, POST and DELETE",
                )
            }
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
        if held {
            Step::pause()
        } else {
            Step::go()
        }
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
                if !end_of_stream {
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

        let mut step = Step::go();
        if let Some(message) = classified.single() {
            let method = message.method.as_deref().unwrap_or("");
            if !method.is_empty() {
                step.properties.push(("mcp_method", bounded(method)));
            }
            if let Some(subject) = &message.subject {
                step.properties.push(("mcp_name", bounded(subject.name())));
                if let Subject::Tool(tool) = subject {
                    step.properties.push(("mcp_tool", bounded(tool)));
                }
            }
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

    /// Response headers arrived (from the upstream, or a local reply).
    pub fn on_response_headers(&mut self, status: u16, headers: &[(String, String)]) -> Step {
        if self.phase == Phase::Forwarded {
            self.responded = true;
            if let Some(judged) = &self.judged {
                if let Some(message) = judged.body.single() {
                    let framing = Framing::from_content_type(header(headers, "content-type"));
                    let observer = ResponseObserver::new(
                        status,
                        framing,
                        message.id.as_ref(),
                        self.config.max_response_bytes,
                    );
                    self.response = Some(if message.method.as_deref() == Some("tools/list") {
                        observer.collecting_tools()
                    } else {
                        observer
                    });
                }
            }
        }
        Step::go()
    }

    /// A response body chunk (only the new bytes). Observed, never changed here.
    pub fn on_response_body(&mut self, chunk: &[u8]) -> Step {
        if let Some(observer) = &mut self.response {
            observer.observe(chunk);
        }
        Step::go()
    }

    /// The exchange is over: the samples to record. Learns tool labels from
    /// a `tools/list` the upstream answered.
    pub fn finish(&mut self, now_ms: u64, tool_labels: &mut ToolLabels) -> Vec<Sample> {
        let mut samples = Vec::new();
        if let Some(reason) = self.rejected {
            samples.push(Sample::count(stat_name(
                telemetry::REJECTIONS,
                &[("reason", reason.label())],
            )));
        }
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
        let outcome = match (&mut self.response, self.responded) {
            (Some(observer), _) => observer.finish(),
            (None, false) => Outcome::NoResponse,
            (None, true) => Outcome::Accepted,
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

    fn refuse(&mut self, rejection: Rejection) -> Step {
        self.rejected = Some(rejection.reason);
        self.answer(rejection.reply())
    }

    fn answer(&mut self, reply: LocalReply) -> Step {
        self.phase = Phase::Answered;
        Step::from(Action::Respond(reply))
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

#[cfg(test)]
mod tests;
