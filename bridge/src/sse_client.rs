//! `connect --remote-transport sse`: the legacy HTTP+SSE transport (MCP
//! 2024-11-05) as a client. `GET <url>` opens the event stream; its
//! `endpoint` event names where to POST each message; everything the server
//! sends (answers, requests, notifications) arrives as `message` events.
//! Messages are read whole (see `raw`): each carries its raw form, and the
//! answers to forwarded requests are kept whole.
//!
//! Owns: the stream, the endpoint and the POSTs. Must not: route or change
//! a message. The endpoint must be on the stream's own origin: a server
//! naming another host is refused, so the token is never sent elsewhere.
//! Hand-written because the SDK has no legacy SSE client.

use crate::http_client;
use crate::options::Remote;
use crate::raw::{Answers, Attach};
use futures::StreamExt;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::RoleClient;
use serde_json::Value;
use sse_stream::SseStream;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long the server may take to name its endpoint.
const ENDPOINT_WAIT: Duration = Duration::from_secs(30);

pub struct LegacySse {
    http: reqwest::Client,
    endpoint: reqwest::Url,
    headers: reqwest::header::HeaderMap,
    inbound: mpsc::Receiver<Value>,
    answers: Arc<Answers>,
    reader: tokio::task::JoinHandle<()>,
}

fn failed(why: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(why.to_string())
}

impl LegacySse {
    /// Opens the event stream of `remote` and waits for its endpoint.
    pub async fn connect(remote: &Remote, answers: Arc<Answers>) -> std::io::Result<Self> {
        let url = reqwest::Url::parse(&remote.url).map_err(failed)?;
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &remote.headers {
            if let (Ok(name), Ok(value)) = (
                reqwest::header::HeaderName::from_bytes(name.as_bytes()),
                reqwest::header::HeaderValue::from_str(value),
            ) {
                headers.insert(name, value);
            }
        }
        if let Some(token) = &remote.bearer {
            let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(failed)?;
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = http_client::client();
        let response = http
            .get(url.clone())
            .headers(headers.clone())
            .header("accept", "text/event-stream")
            .send()
            .await
            .map_err(failed)?;
        if !response.status().is_success() {
            return Err(failed(format!(
                "{url} answered HTTP {} to the event stream's GET",
                response.status()
            )));
        }
        let mut events = SseStream::from_bytes_stream(http_client::bounded_events(
            response.bytes_stream(),
            http_client::MAX_MESSAGE,
        ));
        let endpoint = tokio::time::timeout(ENDPOINT_WAIT, async {
            while let Some(event) = events.next().await {
                let event = event.map_err(failed)?;
                if event.event.as_deref() == Some("endpoint") {
                    return event.data.ok_or_else(|| failed("an empty endpoint event"));
                }
            }
            Err(failed("the event stream ended before naming its endpoint"))
        })
        .await
        .map_err(|_| failed("the server named no endpoint"))??;
        let endpoint = same_origin(&url, endpoint.trim())?;
        let (to_bridge, inbound) = mpsc::channel(64);
        let reader = tokio::spawn(async move {
            while let Some(Ok(event)) = events.next().await {
                let is_message = matches!(event.event.as_deref(), None | Some("message"));
                let Some(data) = event.data.filter(|_| is_message) else {
                    continue;
                };
                let messages = match serde_json::from_str::<Value>(&data) {
                    Ok(Value::Array(batch)) => batch,
                    Ok(one) => vec![one],
                    Err(e) => {
                        tracing::warn!("dropped an event that is not JSON: {e}");
                        continue;
                    }
                };
                for message in messages {
                    if to_bridge.send(message).await.is_err() {
                        return;
                    }
                }
            }
            tracing::info!("the remote server's event stream ended");
        });
        Ok(Self {
            http,
            endpoint,
            headers,
            inbound,
            answers,
            reader,
        })
    }
}

/// `endpoint` resolved against the stream's `url`, refused unless it has
/// the same scheme, host and port.
fn same_origin(url: &reqwest::Url, endpoint: &str) -> std::io::Result<reqwest::Url> {
    let resolved = url.join(endpoint).map_err(failed)?;
    let origin = |u: &reqwest::Url| {
        (
            u.scheme().to_string(),
            u.host_str().map(str::to_string),
            u.port_or_known_default(),
        )
    };
    if origin(&resolved) != origin(url) {
        return Err(failed(format!(
            "refused: the server named an endpoint on another origin ({resolved})"
        )));
    }
    Ok(resolved)
}

impl Transport<RoleClient> for LegacySse {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.answers.sending(&item);
        let request = serde_json::to_vec(&item).map(|body| {
            self.http
                .post(self.endpoint.clone())
                .headers(self.headers.clone())
                .header("content-type", "application/json")
                .body(body)
        });
        async move {
            let response = request.map_err(failed)?.send().await.map_err(failed)?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(failed(format!(
                    "the server refused a message: HTTP {}",
                    response.status()
                )))
            }
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        loop {
            let raw = self.inbound.recv().await?;
            match serde_json::from_value::<RxJsonRpcMessage<RoleClient>>(raw.clone()) {
                Ok(mut typed) => {
                    typed.attach(raw, Some(&self.answers));
                    return Some(typed);
                }
                Err(e) => tracing::warn!("dropped a message that is not MCP JSON-RPC: {e}"),
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.reader.abort();
        self.inbound.close();
        Ok(())
    }
}

impl Drop for LegacySse {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_must_be_on_the_streams_origin() {
        let url = reqwest::Url::parse("https://gw.example/a/sse").unwrap();
        let ok = same_origin(&url, "/message?sessionId=1").unwrap();
        assert_eq!(ok.as_str(), "https://gw.example/message?sessionId=1");
        assert_eq!(
            same_origin(&url, "msg?x=1").unwrap().as_str(),
            "https://gw.example/a/msg?x=1"
        );
        assert!(same_origin(&url, "https://gw.example:443/m").is_ok());
        for elsewhere in [
            "https://evil.example/message",
            "//evil.example/message",
            "http://gw.example/message",
            "https://gw.example:8443/message",
        ] {
            assert!(same_origin(&url, elsewhere).is_err(), "{elsewhere}");
        }
    }
}
