//! A client's answers to the server's own requests (sampling, elicitation,
//! roots), passed on as the client wrote them over Streamable HTTP. The
//! bridge only forwards such an answer, so its typed form is not needed;
//! where the bridge reads messages itself (the legacy SSE output, `connect`'s
//! stdio) `raw::Attach` puts the whole result in place of the typed one. Over
//! Streamable HTTP the SDK reads the POST: the `raw::whole_messages` layer
//! holds the posted answer ([`Posted`]) while the SDK handles that POST, and
//! [`WholeReplies`], the session manager the SDK gives the typed answer to,
//! swaps the whole one in.
//!
//! Owns: the answers being posted, each held only while its POST is handled,
//! and the session manager's wrapper. Must not: keep anything past its POST,
//! or change requests and notifications (those carry their raw form in
//! their extensions).

use crate::raw::WholeResult;
use axum::http::HeaderMap;
use rmcp::model::{ClientJsonRpcMessage, ClientResult, JsonRpcMessage, RequestId};
use rmcp::transport::streamable_http_server::session::{
    EventStore, RestoreOutcome, ServerSseMessage, SessionId, SessionManager,
};
use serde_json::Value;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One posted answer: the session, the id it answers and its result.
struct Entry {
    serial: u64,
    session: String,
    id: RequestId,
    result: Value,
}

/// Answers whose POST is being handled now (as many as such POSTs).
static POSTED: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
static SERIAL: AtomicU64 = AtomicU64::new(0);

/// A posted answer held for the SDK's handling of its POST; dropped after.
pub struct Posted(u64);

impl Posted {
    /// Holds `body` when it is one answer (a result, no method) posted for
    /// a session.
    pub fn hold(headers: &HeaderMap, body: &Value) -> Option<Self> {
        let session = headers.get("mcp-session-id")?.to_str().ok()?;
        if body.get("method").is_some() {
            return None;
        }
        let result = body.get("result")?.clone();
        let id = serde_json::from_value::<RequestId>(body.get("id")?.clone()).ok()?;
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        POSTED.lock().ok()?.push(Entry {
            serial,
            session: session.to_string(),
            id,
            result,
        });
        Some(Self(serial))
    }
}

impl Drop for Posted {
    fn drop(&mut self) {
        if let Ok(mut posted) = POSTED.lock() {
            posted.retain(|entry| entry.serial != self.0);
        }
    }
}

/// The whole result posted for `session` as the answer `id`, once.
fn take(session: &str, id: &RequestId) -> Option<Value> {
    let mut posted = POSTED.lock().ok()?;
    let at = posted
        .iter()
        .position(|entry| entry.session == session && entry.id == *id)?;
    Some(posted.remove(at).result)
}

/// A session manager that hands on a client's answers whole; everything
/// else is its inner manager's.
pub struct WholeReplies<M>(pub M);

impl<M: SessionManager> SessionManager for WholeReplies<M> {
    type Error = M::Error;
    type Transport = M::Transport;

    fn accept_message(
        &self,
        id: &SessionId,
        mut message: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        if let JsonRpcMessage::Response(response) = &mut message {
            if let Some(whole) = take(id, &response.id).and_then(ClientResult::whole) {
                response.result = whole;
            }
        }
        self.0.accept_message(id, message)
    }

    fn create_session(
        &self,
    ) -> impl Future<Output = Result<(SessionId, Self::Transport), Self::Error>> + Send {
        self.0.create_session()
    }

    fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<rmcp::model::ServerJsonRpcMessage, Self::Error>> + Send {
        self.0.initialize_session(id, message)
    }

    fn has_session(
        &self,
        id: &SessionId,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send {
        self.0.has_session(id)
    }

    fn close_session(
        &self,
        id: &SessionId,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.0.close_session(id)
    }

    fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> impl Future<
        Output = Result<
            impl futures::Stream<Item = ServerSseMessage> + Send + Sync + 'static,
            Self::Error,
        >,
    > + Send {
        self.0.create_stream(id, message)
    }

    fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> impl Future<
        Output = Result<
            impl futures::Stream<Item = ServerSseMessage> + Send + Sync + 'static,
            Self::Error,
        >,
    > + Send {
        self.0.create_standalone_stream(id)
    }

    fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> impl Future<
        Output = Result<
            impl futures::Stream<Item = ServerSseMessage> + Send + Sync + 'static,
            Self::Error,
        >,
    > + Send {
        self.0.resume(id, last_event_id)
    }

    fn restore_session(
        &self,
        id: SessionId,
    ) -> impl Future<Output = Result<RestoreOutcome<Self::Transport>, Self::Error>> + Send {
        self.0.restore_session(id)
    }

    fn event_store(&self) -> Option<Arc<dyn EventStore>> {
        self.0.event_store()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn session(id: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("mcp-session-id", id.parse().unwrap());
        headers
    }

    #[test]
    fn only_an_answer_posted_for_a_session_is_held() {
        let answer = json!({"jsonrpc": "2.0", "id": 7, "result": {"x": 1}});
        assert!(Posted::hold(&HeaderMap::new(), &answer).is_none());
        let request = json!({"jsonrpc": "2.0", "id": 7, "method": "ping", "result": {}});
        assert!(Posted::hold(&session("r"), &request).is_none());
        let error = json!({"jsonrpc": "2.0", "id": 7, "error": {"code": 1, "message": "m"}});
        assert!(Posted::hold(&session("r"), &error).is_none());
    }

    #[test]
    fn a_held_answer_is_taken_once_by_its_session_and_id_and_dropped_with_its_post() {
        let answer = json!({"jsonrpc": "2.0", "id": "a", "result": {"x": 1, "new": [2]}});
        let posted = Posted::hold(&session("s1"), &answer).expect("held");
        let id = RequestId::String("a".into());
        assert_eq!(take("s2", &id), None);
        assert_eq!(take("s1", &RequestId::Number(1)), None);
        assert_eq!(take("s1", &id), Some(json!({"x": 1, "new": [2]})));
        assert_eq!(take("s1", &id), None);

        let _again = Posted::hold(&session("s3"), &answer).expect("held");
        drop(posted);
        drop(_again);
        assert_eq!(take("s3", &id), None);
    }
}
