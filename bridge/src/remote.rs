//! `connect`'s HTTP client: the SDK's Streamable HTTP client transport
//! (sessions, the protocol's standard headers, the GET stream, resumption,
//! DELETE at the end) over an HTTP client that also keeps the remote
//! server's answers whole (see `raw`): each answer's `result` is recorded in
//! the child's [`Answers`] as the server wrote it, before the SDK parses it
//! into its typed model; so is each request and notification it sends.
//!
//! Owns: one POST exchange (its statuses, JSON or an event stream) and the
//! tap on every event stream. Must not: route or change a message.
//! Hand-written because the SDK's reqwest client hands JSON answers over
//! already typed; the GET stream and DELETE are the SDK's own client's.

use crate::http_client;
use crate::raw::Answers;
use axum::http::{HeaderName, HeaderValue};
use futures::stream::BoxStream;
use futures::StreamExt;
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};
use serde_json::Value;
use sse_stream::{Sse, SseStream};
use std::collections::HashMap;
use std::sync::Arc;

type Error = StreamableHttpError<reqwest::Error>;
type Events = BoxStream<'static, Result<Sse, sse_stream::Error>>;

/// The remote server's HTTP client, recording whole answers in `answers`.
#[derive(Clone)]
pub struct WholeAnswers {
    http: reqwest::Client,
    answers: Arc<Answers>,
}

impl WholeAnswers {
    pub fn new(answers: Arc<Answers>) -> Self {
        Self {
            http: http_client::client(),
            answers,
        }
    }

    /// Records `data` (one JSON-RPC message or a batch): an answer to a
    /// request whose whole answer is wanted, or the server's own message.
    fn record(&self, data: &[u8]) {
        let Ok(value) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        let messages = match value {
            Value::Array(batch) => batch,
            one => vec![one],
        };
        for mut message in messages {
            let id = message
                .get("id")
                .and_then(|id| serde_json::from_value(id.clone()).ok());
            if let (Some(id), Some(result)) = (&id, message.get_mut("result")) {
                self.answers.record(id, result.take());
            } else if message.get("method").is_some() {
                // The server's own request or notification.
                if let Ok(typed) = serde_json::from_value(message.clone()) {
                    self.answers.hear(&typed, message);
                }
            }
        }
    }

    fn tap(&self, events: Events) -> Events {
        let this = self.clone();
        events
            .inspect(move |event| {
                if let Ok(Sse {
                    data: Some(data), ..
                }) = event
                {
                    this.record(data.as_bytes());
                }
            })
            .boxed()
    }
}

fn unexpected(why: String) -> Error {
    StreamableHttpError::UnexpectedServerResponse(why.into())
}

impl StreamableHttpClient for WholeAnswers {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, Error> {
        let limits = StreamableHttpResponseLimits::default();
        self.post_message_with_response_limits(
            uri,
            message,
            session_id,
            auth_header,
            custom_headers,
            limits,
        )
        .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, Error> {
        // Before it is sent: its answer cannot come earlier.
        self.answers.sending(&message);
        let mut request = self
            .http
            .post(uri.as_ref())
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json");
        if let Some(token) = auth_header {
            request = request.bearer_auth(token);
        }
        for (name, value) in custom_headers {
            request = request.header(name, value);
        }
        let had_session = session_id.is_some();
        if let Some(session) = &session_id {
            request = request.header("mcp-session-id", session.as_ref());
        }
        let body = serde_json::to_vec(&message)?;
        let response = request
            .body(body)
            .send()
            .await
            .map_err(StreamableHttpError::Client)?;
        let status = response.status();
        let session = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let expects_answer = matches!(message, ClientJsonRpcMessage::Request(_));
        if status.as_u16() == 202 || status.as_u16() == 204 {
            return Ok(StreamableHttpPostResponse::Accepted);
        }
        if status.as_u16() == 404 && had_session {
            return Err(StreamableHttpError::SessionExpired);
        }
        if content_type.starts_with("text/event-stream") && status.is_success() {
            let bytes =
                http_client::bounded_events(response.bytes_stream(), limits.max_sse_event_size);
            let events = SseStream::from_bytes_stream(bytes).boxed();
            return Ok(StreamableHttpPostResponse::Sse(self.tap(events), session));
        }
        if content_type.starts_with("application/json") {
            let bytes = http_client::bounded_body(response, limits.max_json_response_size)
                .await
                .map_err(|_| StreamableHttpError::ResponseBodyTooLarge {
                    max_size: limits.max_json_response_size,
                })?;
            // A JSON-RPC error is the answer also under an error status.
            return match serde_json::from_slice::<ClientAnswer>(&bytes) {
                Ok(ClientAnswer(answer)) => {
                    self.record(&bytes);
                    Ok(StreamableHttpPostResponse::Json(answer, session))
                }
                Err(_) if !status.is_success() => Err(unexpected(format!("HTTP {status}"))),
                Err(e) => Err(e.into()),
            };
        }
        if status.is_success() && !expects_answer {
            // Some servers answer a notification with an empty 200.
            return Ok(StreamableHttpPostResponse::Accepted);
        }
        if !status.is_success() {
            return Err(unexpected(format!("HTTP {status}")));
        }
        Err(StreamableHttpError::UnexpectedContentType(Some(
            content_type,
        )))
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), Error> {
        self.http
            .delete_session(uri, session_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<Events, Error> {
        let events = self
            .http
            .get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
            .await?;
        Ok(self.tap(events))
    }
}

/// One server message as the SDK's client parses it.
#[derive(serde::Deserialize)]
#[serde(transparent)]
struct ClientAnswer(rmcp::model::ServerJsonRpcMessage);

#[cfg(test)]
mod tests;
