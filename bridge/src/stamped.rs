//! What was true when a peer's message was read, kept with the message.
//!
//! Owns: [`Stamped`], a wrapper around the transport the bridge reads an
//! upstream (a child's stdio, a remote server) through. The SDK hands each
//! received notification to a task of its own, so by the time its handler
//! runs, the answer the upstream wrote right after it may already have ended
//! the request it was about: a log message would then find nobody to go to.
//! The stamp runs here instead, in the order the upstream wrote its messages.
//! Must not: decide where a message goes (that is `proxy`, which supplies the
//! stamp), or change what a message says.

use rmcp::model::{Extensions, GetExtensions, JsonRpcMessage};
use rmcp::service::{RoleClient, RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use std::future::Future;

/// `inner`, with `stamp` run on each request and notification as it is read
/// (responses end requests; nothing is noted on them).
pub struct Stamped<T, F> {
    inner: T,
    stamp: F,
}

impl<T, F> Stamped<T, F> {
    pub fn new(inner: T, stamp: F) -> Self {
        Self { inner, stamp }
    }
}

impl<T, F> Transport<RoleClient> for Stamped<T, F>
where
    T: Transport<RoleClient>,
    F: Fn(&mut Extensions) + Send + 'static,
{
    type Error = T::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    /// As cancel-safe as `inner`'s: the stamp runs after its message is
    /// taken, with no await in between.
    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        let mut message = self.inner.receive().await?;
        match &mut message {
            JsonRpcMessage::Request(request) => (self.stamp)(request.request.extensions_mut()),
            JsonRpcMessage::Notification(notification) => {
                (self.stamp)(notification.notification.extensions_mut())
            }
            JsonRpcMessage::Response(_) | JsonRpcMessage::Error(_) => {}
        }
        Some(message)
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{
        CallToolResult, NumberOrString, ResourceUpdatedNotification,
        ResourceUpdatedNotificationParam, ServerJsonRpcMessage, ServerNotification, ServerResult,
    };
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    /// A transport that yields queued messages.
    struct Queue(VecDeque<ServerJsonRpcMessage>);

    impl Transport<RoleClient> for Queue {
        type Error = std::io::Error;
        #[allow(clippy::manual_async_fn)] // the trait wants a 'static future
        fn send(
            &mut self,
            _: TxJsonRpcMessage<RoleClient>,
        ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
            async { Ok(()) }
        }
        async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
            self.0.pop_front()
        }
        async fn close(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    #[derive(Clone, Debug, PartialEq)]
    struct Seen(u32);

    #[tokio::test]
    async fn each_notification_carries_the_state_when_it_was_read() {
        let log =
            ServerJsonRpcMessage::notification(ServerNotification::ResourceUpdatedNotification(
                ResourceUpdatedNotification::new(ResourceUpdatedNotificationParam::new("peer://x")),
            ));
        let answer = ServerJsonRpcMessage::response(
            ServerResult::CallToolResult(CallToolResult::success(vec![])),
            NumberOrString::Number(1),
        );
        let state = Arc::new(AtomicU32::new(1));
        let reads = state.clone();
        let mut transport = Stamped::new(
            Queue(VecDeque::from([log.clone(), answer, log])),
            move |extensions: &mut Extensions| {
                extensions.insert(Seen(reads.load(Ordering::SeqCst)));
            },
        );
        let seen = |message: Option<ServerJsonRpcMessage>| match message {
            Some(JsonRpcMessage::Notification(n)) => {
                n.notification.extensions().get::<Seen>().cloned()
            }
            _ => None,
        };
        let first = transport.receive().await;
        // What happens after the read (the answer ends the request) does
        // not change what the first message carries.
        state.store(2, Ordering::SeqCst);
        let answer = transport.receive().await;
        assert!(matches!(answer, Some(JsonRpcMessage::Response(_))));
        assert_eq!(seen(first), Some(Seen(1)));
        assert_eq!(seen(transport.receive().await), Some(Seen(2)));
    }
}
