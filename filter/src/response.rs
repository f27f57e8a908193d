//! Reading upstream responses without changing them: which framing they use,
//! and what became of the request (result, tool error, JSON-RPC error, HTTP
//! error), found in a JSON body or in the SSE event that answers the request id.

use crate::jsonrpc::RequestId;
use crate::sse::{SseError, SseFramer};
use serde::Deserialize;
use serde_json::value::RawValue;

/// How a response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Json,
    Sse,
    /// Anything else (empty 202, HTML error page from a proxy...).
    Other,
}

impl Framing {
    pub fn from_content_type(content_type: Option<&str>) -> Self {
        let media = content_type
            .and_then(|ct| ct.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase());
        match media.as_deref() {
            Some("application/json") => Framing::Json,
            Some("text/event-stream") => Framing::Sse,
            _ => Framing::Other,
        }
    }
}

/// What became of a request, as the client will see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Result,
    /// A `tools/call` result with `isError: true`.
    ToolError,
    RpcError(i64),
    /// A notification or response accepted with 202.
    Accepted,
    /// HTTP error status with no JSON-RPC error for the request in the body.
    HttpError(u16),
    /// The response ended without answering the request.
    NoResponse,
}

impl Outcome {
    /// The `outcome` label of the response counter.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Result => "result",
            Outcome::Accepted => "accepted",
            other => other.error_type().unwrap_or("result"),
        }
    }

    /// OpenTelemetry `error.type`: `None` on success, else a bounded class name.
    pub fn error_type(self) -> Option<&'static str> {
        Some(match self {
            Outcome::Result | Outcome::Accepted => return None,
            Outcome::ToolError => "tool_error",
            Outcome::RpcError(code) => match code {
                -32700 => "parse_error",
                -32600 => "invalid_request",
                -32601 => "method_not_found",
                -32602 => "invalid_params",
                -32603 => "internal_error",
                -32020 => "header_mismatch",
                -32099..=-32000 => "server_error",
                _ => "application_error",
            },
            Outcome::HttpError(s) if s >= 500 => "http_5xx",
            Outcome::HttpError(_) => "http_4xx",
            Outcome::NoResponse => "no_response",
        })
    }
}

/// Follows one response body and settles its [`Outcome`].
#[derive(Debug)]
pub struct ResponseObserver {
    framing: Framing,
    status: u16,
    want: Option<serde_json::Value>,
    json: Vec<u8>,
    sse: SseFramer,
    limit: usize,
    /// The body outgrew `limit`: stop reading it (the bytes still flow).
    gave_up: bool,
    outcome: Option<Outcome>,
    /// Tool names of a `tools/list` result, when asked to collect them.
    collect_tools: bool,
    tools: Vec<String>,
}

impl ResponseObserver {
    pub fn new(
        status: u16,
        framing: Framing,
        request_id: Option<&RequestId>,
        limit: usize,
    ) -> Self {
        Self {
            framing,
            status,
            want: request_id.and_then(|id| serde_json::from_str(id.as_json()).ok()),
            json: Vec::new(),
            sse: SseFramer::new(limit),
            limit,
            gave_up: false,
            outcome: None,
            collect_tools: false,
            tools: Vec::new(),
        }
    }

    /// Also collect the tool names of a `tools/list` result.
    pub fn collecting_tools(mut self) -> Self {
        self.collect_tools = true;
        self
    }

    /// Feeds a chunk of the body as it flows to the client.
    pub fn observe(&mut self, chunk: &[u8]) {
        if self.gave_up || self.outcome.is_some() && !self.collect_tools {
            return;
        }
        match self.framing {
            Framing::Json => {
                if self.json.len() + chunk.len() > self.limit {
                    self.give_up();
                } else {
                    self.json.extend_from_slice(chunk);
                }
            }
            Framing::Sse => {
                let mut messages = Vec::new();
                let pushed = self.sse.push(chunk, |event| {
                    if let Some(data) = event.data() {
                        messages.push(data.into_owned());
                    }
                });
                for data in messages {
                    self.read_message(&data);
                }
                if let Err(SseError::EventTooLarge { .. }) = pushed {
                    self.give_up();
                }
            }
            Framing::Other => {}
        }
    }

    fn give_up(&mut self) {
        self.gave_up = true;
        self.json = Vec::new();
        self.sse = SseFramer::default();
    }

    /// End of the body (or of the stream): the settled outcome.
    pub fn finish(&mut self) -> Outcome {
        if self.framing == Framing::Json && !self.gave_up {
            let json = std::mem::take(&mut self.json);
            self.read_message(&json);
        }
        if let Some(outcome) = self.outcome {
            return outcome;
        }
        match self.status {
            202 => Outcome::Accepted,
            s if s >= 400 => Outcome::HttpError(s),
            _ if self.want.is_none() => Outcome::Accepted,
            _ => Outcome::NoResponse,
        }
    }

    /// Tool names seen in a `tools/list` result.
    pub fn listed_tools(&self) -> &[String] {
        &self.tools
    }

    fn read_message(&mut self, bytes: &[u8]) {
        // One pass either way; tool names are only built when asked for (a
        // 1,000-tool listing is not turned into strings for nothing).
        let view = if self.collect_tools {
            serde_json::from_slice::<ResponseView<'_, ResultWithTools>>(bytes)
                .map(|m| (m.id, m.error, m.result.map(|r| (r.is_error, r.tools))))
        } else {
            serde_json::from_slice::<ResponseView<'_, ResultView>>(bytes)
                .map(|m| (m.id, m.error, m.result.map(|r| (r.is_error, None))))
        };
        let Ok((id, error, result)) = view else {
            return;
        };
        let answers_request = match (&self.want, id) {
            (Some(want), Some(raw)) => {
                serde_json::from_str::<serde_json::Value>(raw.get()).is_ok_and(|id| &id == want)
            }
            _ => false,
        };
        if !answers_request || self.outcome.is_some() {
            return;
        }
        self.outcome = Some(match (&result, &error) {
            (_, Some(error)) => Outcome::RpcError(error.code),
            (Some((Some(true), _)), None) => Outcome::ToolError,
            (Some(_), None) => Outcome::Result,
            (None, None) => return,
        });
        if let Some((_, Some(tools))) = result {
            self.tools = tools.into_iter().map(|t| t.name).collect();
        }
    }
}

#[derive(Deserialize)]
struct ResponseView<'a, R> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    result: Option<R>,
    error: Option<ErrorView>,
}

#[derive(Deserialize)]
struct ResultView {
    #[serde(rename = "isError")]
    is_error: Option<bool>,
}

#[derive(Deserialize)]
struct ResultWithTools {
    #[serde(rename = "isError")]
    is_error: Option<bool>,
    tools: Option<Vec<NamedItem>>,
}

#[derive(Deserialize)]
struct NamedItem {
    name: String,
}

#[derive(Deserialize)]
struct ErrorView {
    code: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn id(n: &str) -> RequestId {
        RequestId::from_raw(&RawValue::from_string(n.into()).unwrap()).unwrap()
    }

    fn outcome(status: u16, framing: Framing, body: &[u8], request: &str) -> Outcome {
        let mut o = ResponseObserver::new(status, framing, Some(&id(request)), 1 << 20);
        for chunk in body.chunks(5) {
            o.observe(chunk);
        }
        o.finish()
    }

    #[test]
    fn content_types_pick_the_framing() {
        assert_eq!(
            Framing::from_content_type(Some("application/json")),
            Framing::Json
        );
        assert_eq!(
            Framing::from_content_type(Some("Application/JSON; charset=utf-8")),
            Framing::Json
        );
        assert_eq!(
            Framing::from_content_type(Some("text/event-stream")),
            Framing::Sse
        );
        assert_eq!(
            Framing::from_content_type(Some("text/html")),
            Framing::Other
        );
        assert_eq!(Framing::from_content_type(None), Framing::Other);
    }

    #[test]
    fn json_results_errors_and_tool_errors_are_told_apart() {
        let j = Framing::Json;
        assert_eq!(
            outcome(
                200,
                j,
                br#"{"jsonrpc":"2.0","id":3,"result":{"content":[]}}"#,
                "3"
            ),
            Outcome::Result
        );
        assert_eq!(
            outcome(
                200,
                j,
                br#"{"jsonrpc":"2.0","id":3,"result":{"isError":true}}"#,
                "3"
            ),
            Outcome::ToolError
        );
        assert_eq!(
            outcome(
                200,
                j,
                br#"{"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"x"}}"#,
                "3"
            ),
            Outcome::RpcError(-32602)
        );
        assert_eq!(
            outcome(
                400,
                j,
                br#"{"jsonrpc":"2.0","id":3,"error":{"code":-32020,"message":"x"}}"#,
                "3"
            ),
            Outcome::RpcError(-32020)
        );
        assert_eq!(
            outcome(503, Framing::Other, b"upstream down", "3"),
            Outcome::HttpError(503)
        );
        assert_eq!(outcome(202, Framing::Other, b"", "3"), Outcome::Accepted);
    }

    #[test]
    fn sse_outcome_comes_from_the_event_answering_the_request() {
        let body =
            b"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n\
data: {\"jsonrpc\":\"2.0\",\"id\":\"other\",\"error\":{\"code\":-1,\"message\":\"x\"}}\n\n\
data: {\"jsonrpc\":\"2.0\",\"id\":\"r1\",\"result\":{\"isError\":true}}\n\n";
        assert_eq!(
            outcome(200, Framing::Sse, body, r#""r1""#),
            Outcome::ToolError
        );
        assert_eq!(
            outcome(200, Framing::Sse, b"data: \nretry: 5\n\n", "1"),
            Outcome::NoResponse
        );
    }

    #[test]
    fn error_types_are_bounded_classes() {
        assert_eq!(Outcome::Result.error_type(), None);
        assert_eq!(Outcome::RpcError(-32001).error_type(), Some("server_error"));
        assert_eq!(
            Outcome::RpcError(42).error_type(),
            Some("application_error")
        );
        assert_eq!(Outcome::HttpError(502).error_type(), Some("http_5xx"));
        assert_eq!(Outcome::RpcError(-32601).label(), "method_not_found");
    }

    #[test]
    fn tools_list_names_are_collected() {
        let body = br#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"add","inputSchema":{}},{"name":"echo"}]}}"#;
        let mut o =
            ResponseObserver::new(200, Framing::Json, Some(&id("2")), 1 << 20).collecting_tools();
        o.observe(body);
        assert_eq!(o.finish(), Outcome::Result);
        assert_eq!(o.listed_tools(), ["add", "echo"]);
    }

    #[test]
    fn an_oversized_json_body_is_not_read_and_not_judged() {
        let mut o = ResponseObserver::new(200, Framing::Json, Some(&id("1")), 8);
        o.observe(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
        assert_eq!(o.finish(), Outcome::NoResponse);
    }

    #[test]
    fn captured_responses_settle_as_the_server_meant() {
        let Some(dir) = crate::test_vectors::dir() else {
            return;
        };
        let mut checked = 0;
        for body_path in crate::test_vectors::files(&dir, "response-body.bin") {
            let stem = body_path
                .to_string_lossy()
                .replace(".response-body.bin", "");
            let body = std::fs::read(&body_path).unwrap();
            let headers = std::fs::read_to_string(format!("{stem}.response-headers.txt")).unwrap();
            let request: serde_json::Value =
                serde_json::from_slice(&std::fs::read(format!("{stem}.request.json")).unwrap())
                    .unwrap();
            let status: u16 = headers
                .lines()
                .next()
                .unwrap()
                .trim_start_matches("status: ")
                .trim()
                .parse()
                .unwrap();
            let content_type = headers.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-type:")
                    .map(|v| v.trim().to_string())
            });
            let framing = Framing::from_content_type(content_type.as_deref());
            let request_id = request.get("id").map(|v| id(&v.to_string()));
            let mut o = ResponseObserver::new(status, framing, request_id.as_ref(), 1 << 20);
            for chunk in body.chunks(3) {
                o.observe(chunk);
            }
            let got = o.finish();
            let name = stem.rsplit('/').next().unwrap().to_string();
            let expected = if request_id.is_none() {
                Outcome::Accepted
            } else if name.contains("header-mismatch") {
                Outcome::RpcError(-32020)
            } else if name.contains("unknown-tool") {
                // Servers disagree: a JSON-RPC error or an isError result.
                assert!(
                    matches!(got, Outcome::RpcError(-32602) | Outcome::ToolError),
                    "{name}: {got:?}"
                );
                checked += 1;
                continue;
            } else {
                Outcome::Result
            };
            assert_eq!(got, expected, "{stem}");
            checked += 1;
        }
        assert!(checked >= 20, "checked {checked}");
    }
}
