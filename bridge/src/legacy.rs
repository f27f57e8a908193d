//! The legacy HTTP+SSE transport (MCP 2024-11-05) as an output, for clients
//! that predate Streamable HTTP: `GET <sse path>` opens a session and its
//! event stream, whose first event (`endpoint`) names where to post
//! (`<message path>?sessionId=<id>`); each posted message is answered `202`,
//! and what the server sends (answers, requests, notifications) arrives on
//! the stream as `message` events.
//!
//! Owns: the session table, the stream, and the transport that joins them to
//! the same [`Bridge`] the Streamable HTTP side serves (a child per session,
//! or the shared one). Must not: answer any MCP message itself.
//!
//! Session ids are random (UUID v4): a client that knows none cannot post
//! into another's session. Closing the stream ends the session and its child.

use crate::options::Options;
use crate::proxy::{Bridge, Sessions, SharedChild};
use crate::raw::{Attach, Channel, Ending};
use crate::reply;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use rmcp::model::ClientJsonRpcMessage;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::{RoleServer, ServiceExt};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// What the legacy endpoints share.
pub struct Legacy {
    options: Arc<Options>,
    sessions: Arc<Sessions>,
    shared: Option<Arc<SharedChild>>,
    /// Open streams: where a posted message for each session goes.
    open: Mutex<HashMap<String, mpsc::Sender<ClientJsonRpcMessage>>>,
}

impl Legacy {
    pub fn new(
        options: Arc<Options>,
        sessions: Arc<Sessions>,
        shared: Option<Arc<SharedChild>>,
    ) -> Self {
        Self {
            options,
            sessions,
            shared,
            open: Mutex::new(HashMap::new()),
        }
    }
}

/// The session's side of the bridge: messages posted for it in, what the
/// bridge sends out to its stream.
struct StreamTransport {
    inbound: mpsc::Receiver<ClientJsonRpcMessage>,
    outbound: mpsc::Sender<String>,
    /// Answers leave here with the child's whole results.
    channel: Channel,
    _ending: Ending,
}

impl Transport<RoleServer> for StreamTransport {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let outbound = self.outbound.clone();
        let text = serde_json::to_value(&item).and_then(|mut message| {
            self.channel.restore(&mut message);
            serde_json::to_string(&message)
        });
        async move {
            let text = text.map_err(std::io::Error::other)?;
            outbound
                .send(text)
                .await
                .map_err(|_| std::io::Error::other("the client's event stream is closed"))
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        let mut message = self.inbound.recv().await?;
        message.answer_on(&self.channel);
        Some(message)
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.inbound.close();
        Ok(())
    }
}

/// Removes a session from the table when its stream ends (the client went).
struct Open {
    legacy: Arc<Legacy>,
    id: String,
}

impl Drop for Open {
    fn drop(&mut self) {
        if let Ok(mut open) = self.legacy.open.lock() {
            open.remove(&self.id);
        }
        tracing::info!("legacy SSE session {} closed", self.id);
    }
}

/// `GET <sse path>`: a new session, and its event stream.
pub async fn open_stream(State(legacy): State<Arc<Legacy>>) -> Response {
    if legacy.sessions.is_full() {
        return reply::sessions_full(legacy.sessions.max());
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (to_bridge, inbound) = mpsc::channel(64);
    let (outbound, from_bridge) = mpsc::channel::<String>(64);
    if let Ok(mut open) = legacy.open.lock() {
        open.insert(id.clone(), to_bridge);
    }
    let bridge = Bridge::new(
        legacy.options.clone(),
        legacy.sessions.clone(),
        legacy.shared.clone(),
    );
    tokio::spawn(async move {
        let (channel, ending) = Channel::open();
        let transport = StreamTransport {
            inbound,
            outbound,
            channel,
            _ending: ending,
        };
        match bridge.serve(transport).await {
            Ok(running) => {
                let _ = running.waiting().await;
            }
            Err(e) => tracing::warn!("legacy SSE session ended before it began: {e}"),
        }
    });
    let endpoint = format!("{}?sessionId={id}", legacy.options.message_path);
    let guard = Open {
        legacy: legacy.clone(),
        id,
    };
    // The endpoint first, then each message; the guard lives as long as
    // the stream (the client's connection).
    let stream = futures::stream::unfold(
        (Some(endpoint), from_bridge, guard),
        |(first, mut from_bridge, guard)| async move {
            let event = match first {
                Some(endpoint) => Event::default().event("endpoint").data(endpoint),
                None => Event::default()
                    .event("message")
                    .data(from_bridge.recv().await?),
            };
            Some((
                Ok::<_, std::convert::Infallible>(event),
                (None, from_bridge, guard),
            ))
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[derive(serde::Deserialize)]
pub struct Target {
    #[serde(rename = "sessionId")]
    session_id: Option<String>,
}

/// `POST <message path>?sessionId=<id>`: one JSON-RPC message for that
/// session; `202`, its answer goes to the stream.
pub async fn post_message(
    State(legacy): State<Arc<Legacy>>,
    Query(target): Query<Target>,
    body: Bytes,
) -> Response {
    let Some(id) = target.session_id else {
        return reply::error(StatusCode::BAD_REQUEST, -32600, "missing sessionId");
    };
    let sender = legacy
        .open
        .lock()
        .ok()
        .and_then(|open| open.get(&id).cloned());
    let Some(sender) = sender else {
        return reply::error(StatusCode::NOT_FOUND, -32001, "Session not found");
    };
    if body.len() > legacy.options.max_message_bytes {
        return reply::error(StatusCode::PAYLOAD_TOO_LARGE, -32600, "message too large");
    }
    let message = match (
        serde_json::from_slice::<serde_json::Value>(&body),
        serde_json::from_slice::<ClientJsonRpcMessage>(&body),
    ) {
        (Ok(raw), Ok(mut message)) => {
            message.attach(raw, None);
            message
        }
        (_, Err(e)) | (Err(e), _) => {
            return reply::error(
                StatusCode::BAD_REQUEST,
                -32700,
                &format!("not a JSON-RPC message: {e}"),
            )
        }
    };
    match sender.send(message).await {
        Ok(()) => (StatusCode::ACCEPTED, "Accepted").into_response(),
        Err(_) => reply::error(StatusCode::NOT_FOUND, -32001, "Session not found"),
    }
}
