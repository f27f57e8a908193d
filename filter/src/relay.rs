//! A call the filter carries to a backend itself. Without held headers
//! (Envoy Gateway, or `routing_headers` off), Envoy routes a request before
//! its body says which tool it calls. A legacy `tools/call` (or a renamed
//! `prompts/get`) for another backend than the one its headers went to is
//! then sent by the filter to that backend's cluster, and the backend's whole
//! answer becomes the client's answer. The request that went on is cut off
//! by that local reply before its body left: the first backend receives no
//! MCP message.
//!
//! Owns: the relayed request and the client's reply made of the backend's
//! answer. Must not: judge or route (the request was authorized and resolved
//! before, and its body already carries the backend's own name), or pass an
//! answer it cannot vouch for: an encoded, oversized, failed or non-MCP
//! answer becomes a JSON-RPC error (fail closed). The answer is whole, not
//! streamed: progress and other messages of an SSE answer arrive with it.

use crate::aggregate::Failure;
use crate::backends::{BackendId, Backends};
use crate::fetch::{BackendAnswer, Fetch};
use crate::jsonrpc::{code, error_body, RequestId};
use crate::reject::LocalReply;
use crate::response::{Framing, Outcome, ResponseObserver};

/// HTTP status of an answer the filter composes when the backend gave none
/// it can pass on (as a gateway would: 502 Bad Gateway).
const BAD_GATEWAY: u16 = 502;

/// One relayed call in flight.
#[derive(Debug)]
pub struct Relay {
    name: String,
    request_id: Option<RequestId>,
    max_answer_bytes: usize,
}

/// What the client gets, and what it means for metrics.
#[derive(Debug)]
pub struct Relayed {
    pub reply: LocalReply,
    pub outcome: Outcome,
    /// Set when the backend gave no answer the filter could pass on.
    pub failure: Option<Failure>,
}

impl Relay {
    /// The request to `backend`: the client's `body` (already in the
    /// backend's names), its `forward`ed headers and the session that
    /// backend knows, if any. `None` if there is no such backend.
    pub fn start(
        backends: &Backends,
        backend: BackendId,
        request_id: Option<RequestId>,
        body: Vec<u8>,
        forward: &[(String, String)],
        session: Option<&str>,
        max_answer_bytes: usize,
    ) -> Option<(Self, Fetch)> {
        let server = backends.server(backend)?;
        let fetch = crate::fetch::post(
            server,
            backend,
            forward,
            session,
            body,
            backends.call_timeout_ms,
        );
        let relay = Self {
            name: server.name.clone(),
            request_id,
            max_answer_bytes,
        };
        Some((relay, fetch))
    }

    /// The backend answered (`status` `None`: Envoy got no answer).
    pub fn answer(&self, answer: BackendAnswer<'_>) -> Relayed {
        let Some(status) = answer.status else {
            return self.unreachable();
        };
        if answer.encoded() {
            return self.failed(
                Failure::Unreadable,
                format!(
                    "backend `{}` answered with a Content-Encoding the filter cannot pass on",
                    self.name
                ),
            );
        }
        if answer.body.len() > self.max_answer_bytes {
            return self.failed(
                Failure::TooLarge,
                format!(
                    "the answer of backend `{}` exceeds {} bytes",
                    self.name, self.max_answer_bytes
                ),
            );
        }
        let framing = Framing::from_content_type(answer.content_type);
        let content_type = match framing {
            Framing::Json => "application/json",
            Framing::Sse => "text/event-stream",
            Framing::Other => {
                return self.failed(
                    Failure::HttpStatus(status),
                    format!(
                        "backend `{}` answered HTTP {status} without a JSON-RPC answer",
                        self.name
                    ),
                )
            }
        };
        let mut observer = ResponseObserver::new(
            status,
            framing,
            self.request_id.as_ref(),
            self.max_answer_bytes,
        );
        observer.observe(answer.body);
        Relayed {
            reply: LocalReply {
                status,
                headers: vec![("content-type".into(), content_type.into())],
                body: answer.body.to_vec(),
            },
            outcome: observer.finish(),
            failure: None,
        }
    }

    /// The request could not be sent, or Envoy got no answer.
    pub fn unreachable(&self) -> Relayed {
        self.failed(
            Failure::Unreachable,
            format!("backend `{}` did not answer", self.name),
        )
    }

    fn failed(&self, failure: Failure, message: String) -> Relayed {
        Relayed {
            reply: LocalReply {
                status: BAD_GATEWAY,
                headers: vec![("content-type".into(), "application/json".into())],
                body: error_body(self.request_id.as_ref(), code::INTERNAL_ERROR, &message),
            },
            outcome: Outcome::RpcError(code::INTERNAL_ERROR),
            failure: Some(failure),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::RawBackends;
    use serde_json::Value;

    fn backends() -> Backends {
        let raw: RawBackends = serde_json::from_str(
            r#"{"call_timeout_ms": 1234, "servers": [
                {"name": "github"},
                {"name": "jira", "cluster": "jira-mcp", "path": "/v1/mcp", "authority": "jira.internal"}
            ]}"#,
        )
        .unwrap();
        raw.compile().unwrap()
    }

    fn relay() -> Relay {
        let forward = [("mcp-protocol-version".to_string(), "2025-06-18".to_string())];
        let id = RequestId::from_raw(
            &serde_json::from_str::<Box<serde_json::value::RawValue>>("7").unwrap(),
        );
        let (relay, fetch) = Relay::start(
            &backends(),
            BackendId::at(1),
            id,
            b"{}".to_vec(),
            &forward,
            None,
            128,
        )
        .unwrap();
        assert_eq!(fetch.cluster, "jira-mcp");
        assert_eq!(fetch.timeout_ms, 1234);
        assert!(fetch.headers.contains(&(":path".into(), "/v1/mcp".into())));
        assert!(fetch
            .headers
            .contains(&(":authority".into(), "jira.internal".into())));
        assert!(fetch
            .headers
            .contains(&("mcp-protocol-version".into(), "2025-06-18".into())));
        assert!(!fetch.headers.iter().any(|(k, _)| k == "mcp-session-id"));
        relay
    }

    fn answer<'a>(status: Option<u16>, ct: Option<&'a str>, body: &'a str) -> BackendAnswer<'a> {
        BackendAnswer {
            status,
            content_type: ct,
            content_encoding: None,
            body: body.as_bytes(),
        }
    }

    fn error_of(relayed: &Relayed) -> Value {
        assert_eq!(relayed.reply.status, 502);
        let reply: Value = serde_json::from_slice(&relayed.reply.body).unwrap();
        assert_eq!(reply["id"], 7);
        assert_eq!(reply["error"]["code"], -32603);
        reply
    }

    #[test]
    fn json_and_sse_answers_reach_the_client_as_the_backend_sent_them() {
        let json = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[]}}"#;
        let relayed = relay().answer(answer(
            Some(200),
            Some("application/json; charset=utf-8"),
            json,
        ));
        assert_eq!(relayed.reply.status, 200);
        assert_eq!(relayed.reply.body, json.as_bytes());
        assert_eq!(
            relayed.reply.headers,
            [("content-type".to_string(), "application/json".to_string())]
        );
        assert_eq!(relayed.outcome, Outcome::Result);
        assert!(relayed.failure.is_none());

        let sse = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"isError\":true,\"content\":[]}}\n\n";
        let relayed = relay().answer(answer(Some(200), Some("text/event-stream"), sse));
        assert_eq!(relayed.reply.body, sse.as_bytes());
        assert_eq!(relayed.outcome, Outcome::ToolError);
        assert_eq!(relayed.reply.headers[0].1, "text/event-stream");

        let rpc_error = r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"no"}}"#;
        let relayed = relay().answer(answer(Some(400), Some("application/json"), rpc_error));
        assert_eq!(relayed.reply.status, 400);
        assert_eq!(relayed.outcome, Outcome::RpcError(-32602));
    }

    #[test]
    fn answers_the_filter_cannot_vouch_for_become_errors() {
        let relayed = relay().unreachable();
        assert!(error_of(&relayed)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("backend `jira` did not answer"));
        assert_eq!(relayed.failure, Some(Failure::Unreachable));
        assert_eq!(
            relay().answer(answer(None, None, "")).failure,
            Some(Failure::Unreachable)
        );

        let relayed = relay().answer(answer(Some(503), Some("text/plain"), "no healthy upstream"));
        error_of(&relayed);
        assert_eq!(relayed.failure, Some(Failure::HttpStatus(503)));
        assert!(!String::from_utf8_lossy(&relayed.reply.body).contains("healthy"));

        let relayed = relay().answer(answer(Some(202), None, ""));
        error_of(&relayed);

        let big = format!(
            r#"{{"jsonrpc":"2.0","id":7,"result":{{"x":"{}"}}}}"#,
            "a".repeat(128)
        );
        let relayed = relay().answer(answer(Some(200), Some("application/json"), &big));
        error_of(&relayed);
        assert_eq!(relayed.failure, Some(Failure::TooLarge));

        let mut encoded = answer(Some(200), Some("application/json"), "\u{1f}\u{8b}");
        encoded.content_encoding = Some("gzip");
        let relayed = relay().answer(encoded);
        error_of(&relayed);
        assert_eq!(relayed.failure, Some(Failure::Unreadable));
        assert!(!relayed
            .reply
            .headers
            .iter()
            .any(|(k, _)| k == "content-encoding"));
    }
}
