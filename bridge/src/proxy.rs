//! Forwarding between HTTP-side MCP sessions and stdio children. The bridge
//! answers nothing itself: each request, notification and answer is passed
//! on (as its sender wrote it: see the end of this header). The SDK's client
//! assigns its own request ids and progress tokens towards a child, so
//! sessions sharing one child never see each other's answers; this module
//! maps progress tokens back.
//!
//! What a child sends on its own goes to the session it concerns ([`Routes`]):
//! progress by its token; its requests (sampling, elicitation, roots) and log
//! messages to the one session with requests in flight to it. With
//! `--shared`, when that is not exactly one session (several are waiting, or
//! none), a request is refused (an error to the child) and a log message
//! dropped, never guessed; resource updates go to the sessions subscribed to
//! the resource, and `list_changed` notifications to every session.
//!
//! What is forwarded is each message as its sender wrote it (see `raw`): the
//! typed forms only decide where it goes and whether it is the right kind.

// Logging and resources/subscribe are deprecated for 2026-07-28 but still
// forwarded: clients on older versions use them.
#![allow(deprecated)]

use crate::child;
use crate::options::{Options, RemoteTransport};
use crate::raw::{self, Answers, KeepAnswer};
use crate::sse_client::LegacySse;
use crate::stamped::Stamped;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, ClientConfig, ClientNotification,
    ClientRequest, ClientResult, CompleteRequest, CompleteRequestParams, CompleteResult,
    CustomNotification, CustomRequest, CustomResult, Extensions, GetExtensions, GetMeta,
    GetPromptRequest, GetPromptRequestParams, GetPromptResponse, InitializeResult,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ProgressToken, ReadResourceRequest, ReadResourceRequestParams,
    ReadResourceResponse, RequestId, RequestOptionalParam, ServerConfig, ServerNotification,
    ServerRequest, ServerResult, SetLevelRequest, SetLevelRequestParams, SubscribeRequest,
    SubscribeRequestParams, UnsubscribeRequest, UnsubscribeRequestParams,
};
use rmcp::service::{
    NotificationContext, OriginatingRequestId, Peer, PeerRequestOptions, RequestContext,
    RoleClient, RoleServer, RunningService, ServiceError,
};
use rmcp::{ErrorData, ServerHandler, Service, ServiceExt};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How many sessions are open, bounded by `--max-sessions`, and how many
/// children they run (bounded the same, where a child is started: a 2026
/// stateless request or a check raced past the HTTP layer's count still
/// cannot start one more).
pub struct Sessions {
    live: AtomicUsize,
    children: AtomicUsize,
    max: usize,
}

/// One of the `--max-sessions` children, given back when its session ends.
struct ChildSlot(Arc<Sessions>);

impl Drop for ChildSlot {
    fn drop(&mut self) {
        self.0.children.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Sessions {
    pub fn new(max: usize) -> Self {
        Self {
            live: AtomicUsize::new(0),
            children: AtomicUsize::new(0),
            max,
        }
    }

    /// A child may start: a slot, or `None` when `max` run already.
    fn reserve_child(self: &Arc<Self>) -> Option<ChildSlot> {
        self.children
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| ChildSlot(self.clone()))
    }

    pub fn is_full(&self) -> bool {
        self.live.load(Ordering::SeqCst) >= self.max
    }

    pub fn max(&self) -> usize {
        self.max
    }

    pub async fn wait_until_empty(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.live.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// How long a notification waits for a session's stream to take it.
const NOTIFY_PATIENCE: Duration = Duration::from_secs(5);

/// The longest message a child may send (the SDK's own default).
const CHILD_LINE_LIMIT: usize = 16 * 1024 * 1024;

/// Where a child's messages go back to: one HTTP-side session.
#[derive(Clone)]
struct Route {
    session: u64,
    server: Peer<RoleServer>,
}

/// A session's request the child has not answered yet.
#[derive(Clone)]
struct Waiting {
    session: u64,
    server: Peer<RoleServer>,
    /// The request's id in that session (not the child's id for it).
    request: RequestId,
}

/// A request in flight to the child; dropping it forgets the request and its
/// progress token.
struct InFlight {
    routes: Arc<Routes>,
    session: u64,
    request: RequestId,
    progress: Option<ProgressToken>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut in_flight) = self.routes.in_flight.lock() {
            in_flight.retain(|w| !(w.session == self.session && w.request == self.request));
        }
        if let (Some(token), Ok(mut progress)) = (&self.progress, self.routes.progress.lock()) {
            progress.remove(token);
        }
    }
}

/// Who a message from the child is for.
#[derive(Clone)]
enum Cause {
    /// This session; the request of it that is in flight, if any.
    Session(Peer<RoleServer>, Option<RequestId>),
    /// Nobody can be named for sure: why.
    Unknown(String),
}

/// Notes on each message an upstream sends, as it is read, whom it concerns
/// (see `stamped`: its handler may run after the answer that followed it).
fn stamp(routes: &Arc<Routes>) -> impl Fn(&mut Extensions) + Send + 'static {
    let routes = Arc::downgrade(routes);
    move |extensions| {
        if let Some(routes) = routes.upgrade() {
            extensions.insert(routes.cause());
        }
    }
}

/// Whom a message concerns: as noted when it was read, else as of now.
fn heard(extensions: &Extensions, routes: &Routes) -> Cause {
    extensions
        .get::<Cause>()
        .cloned()
        .unwrap_or_else(|| routes.cause())
}

/// The sessions a child serves, and where its messages go.
#[derive(Default)]
struct Routes {
    /// `--shared`: sessions of different clients on this child.
    shared: bool,
    sessions: Mutex<Vec<Route>>,
    /// Progress token given to the child -> the session and the token it chose.
    progress: Mutex<HashMap<ProgressToken, (Peer<RoleServer>, ProgressToken)>>,
    /// Held from sending a request until its progress token is recorded, so
    /// the child's first progress notification cannot be looked up before.
    registering: tokio::sync::Mutex<()>,
    /// Requests waiting for the child's answer, oldest first.
    in_flight: Mutex<Vec<Waiting>>,
    /// Resource URI -> the sessions subscribed to it (`--shared`).
    subscriptions: Mutex<HashMap<String, Vec<u64>>>,
    /// The child's whole answers to forwarded requests.
    answers: Arc<Answers>,
    /// The child's `initialize` result as it wrote it.
    initialized: Mutex<Option<Value>>,
}

impl Routes {
    fn new(shared: bool) -> Self {
        Self {
            shared,
            ..Self::default()
        }
    }

    fn attach(&self, route: Route) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.push(route);
        }
    }

    fn detach(&self, session: u64) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.retain(|r| r.session != session);
        }
        if let Ok(mut subscriptions) = self.subscriptions.lock() {
            for sessions in subscriptions.values_mut() {
                sessions.retain(|s| *s != session);
            }
            subscriptions.retain(|_, sessions| !sessions.is_empty());
        }
    }

    fn all(&self) -> Vec<Peer<RoleServer>> {
        self.sessions
            .lock()
            .map(|s| s.iter().map(|r| r.server.clone()).collect())
            .unwrap_or_default()
    }

    /// Records a request as in flight until the returned guard drops (also
    /// when the forwarding is abandoned because its session ended).
    fn wait(self: &Arc<Self>, waiting: Waiting) -> InFlight {
        let done = InFlight {
            routes: self.clone(),
            session: waiting.session,
            request: waiting.request.clone(),
            progress: None,
        };
        if let Ok(mut in_flight) = self.in_flight.lock() {
            in_flight.push(waiting);
        }
        done
    }

    /// The session a child's own request or log message is about: the one
    /// whose requests the child is working on. A child of its own session
    /// serves nobody else; a shared child's message is attributed only when
    /// exactly one session is waiting on it (MCP 2026-07-28, SEP-2260: a
    /// server sends its requests while it serves the request that needs
    /// them). That is an attribution, not knowledge: a message the child
    /// sends from background work while one other session waits reaches
    /// that session (README: share a child within one trust domain).
    fn cause(&self) -> Cause {
        let Ok(in_flight) = self.in_flight.lock() else {
            return Cause::Unknown("the bridge's routing state is unavailable".into());
        };
        let mut waiting = in_flight.iter().rev();
        if let Some(newest) = waiting.next() {
            if waiting.all(|w| w.session == newest.session) {
                return Cause::Session(newest.server.clone(), Some(newest.request.clone()));
            }
            if self.shared {
                let mut sessions: Vec<u64> = in_flight.iter().map(|w| w.session).collect();
                sessions.sort_unstable();
                sessions.dedup();
                return Cause::Unknown(format!(
                    "several sessions ({}) have requests in flight to the shared server, \
                     so which one this is for cannot be told",
                    sessions.len()
                ));
            }
        }
        if self.shared {
            return Cause::Unknown(
                "no session has a request in flight to the shared server, so this \
                 cannot be attributed to one"
                    .into(),
            );
        }
        match self.sessions.lock().ok().and_then(|s| s.first().cloned()) {
            Some(route) => Cause::Session(route.server, None),
            None => Cause::Unknown("no client session is connected".into()),
        }
    }

    fn subscribe(&self, uri: &str, session: u64) {
        if let Ok(mut subscriptions) = self.subscriptions.lock() {
            let sessions = subscriptions.entry(uri.to_string()).or_default();
            if !sessions.contains(&session) {
                sessions.push(session);
            }
        }
    }

    /// Drops a session's subscription; true if no session is left on it.
    fn unsubscribe(&self, uri: &str, session: u64) -> bool {
        let Ok(mut subscriptions) = self.subscriptions.lock() else {
            return true;
        };
        let Some(sessions) = subscriptions.get_mut(uri) else {
            return true;
        };
        sessions.retain(|s| *s != session);
        let last = sessions.is_empty();
        if last {
            subscriptions.remove(uri);
        }
        last
    }

    fn subscribers(&self, uri: &str) -> Vec<Peer<RoleServer>> {
        let ids = self
            .subscriptions
            .lock()
            .ok()
            .and_then(|s| s.get(uri).cloned())
            .unwrap_or_default();
        self.sessions
            .lock()
            .map(|s| {
                s.iter()
                    .filter(|r| ids.contains(&r.session))
                    .map(|r| r.server.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The client side of a child: presents the HTTP client's own `initialize`
/// parameters, and passes what the child asks and tells to its sessions.
struct ChildFacing {
    info: ClientConfig,
    routes: Arc<Routes>,
    /// Dropped with this client: the child's process group is terminated.
    _group: child::Group,
}

impl Service<RoleClient> for ChildFacing {
    async fn handle_request(
        &self,
        mut request: ServerRequest,
        context: RequestContext<RoleClient>,
    ) -> Result<ClientResult, ErrorData> {
        if self.routes.shared && matches!(request, ServerRequest::PingRequest(_)) {
            // The bridge is the shared child's client: it answers.
            return Ok(ClientResult::empty(()));
        }
        let (server, origin) = match heard(&context.extensions, &self.routes) {
            Cause::Session(server, origin) => (server, origin),
            Cause::Unknown(why) => {
                let method = method_of(serde_json::to_value(&request));
                tracing::warn!("refused the shared server's {method} request: {why}");
                return Err(ErrorData::invalid_request(
                    format!("mcp-bridge --shared: {method} not delivered: {why}"),
                    None,
                ));
            }
        };
        // As the child wrote it (its `_meta` is the SDK's to set on the way;
        // the SDK moved the message's extensions into its context).
        let raw = context
            .extensions
            .get::<raw::Raw>()
            .map(|raw| (*raw.0).clone())
            .or_else(|| self.routes.answers.heard_request(&context.id));
        if let Some(raw) = raw {
            if let (false, Some(custom)) = (
                matches!(request, ServerRequest::PingRequest(_)),
                raw::custom_request(&raw),
            ) {
                let meta = request.get_meta().clone();
                request = ServerRequest::CustomRequest(custom);
                *request.get_meta_mut() = meta;
            }
        }
        // On the stream of the session's request that caused it. Sent from a
        // task of its own: in this handler the SDK would mark it as caused by
        // the child's request id, which means nothing to the session.
        if let Some(origin) = origin {
            request
                .extensions_mut()
                .insert(OriginatingRequestId(origin));
        }
        let asked = tokio::spawn(async move {
            server
                .send_cancellable_request(request, PeerRequestOptions::no_options())
                .await
        })
        .await
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?
        .map_err(as_error)?;
        tokio::select! {
            answer = asked.rx => answer.unwrap_or(Err(ServiceError::TransportClosed)).map_err(as_error),
            _ = context.ct.cancelled() => {
                // The child withdrew it: so does the session.
                let _ = asked.peer.notify_cancelled(rmcp::model::CancelledNotificationParam::new(
                    Some(asked.id.clone()),
                    Some("cancelled by the stdio MCP server".into()),
                )).await;
                Err(ErrorData::internal_error("cancelled by the stdio MCP server", None))
            }
        }
    }

    async fn handle_notification(
        &self,
        notification: ServerNotification,
        context: NotificationContext<RoleClient>,
    ) -> Result<(), ErrorData> {
        let to = match &notification {
            ServerNotification::ProgressNotification(progress) => {
                drop(self.routes.registering.lock().await);
                let route = self
                    .routes
                    .progress
                    .lock()
                    .ok()
                    .and_then(|p| p.get(&progress.params.progress_token).cloned());
                if let Some((server, token)) = route {
                    let mut progress = progress.clone();
                    progress.params.progress_token = token;
                    let _ = server
                        .send_notification(ServerNotification::ProgressNotification(progress))
                        .await;
                }
                return Ok(());
            }
            // The child withdrew one of its requests: the SDK has cancelled
            // its handler above, which tells the session with the session's
            // own id (the child's id would name another request there).
            ServerNotification::CancelledNotification(_) => return Ok(()),
            // The server's lists are the same for every session on it, and
            // each can list them any time: telling all says nothing new.
            ServerNotification::ToolListChangedNotification(_)
            | ServerNotification::PromptListChangedNotification(_)
            | ServerNotification::ResourceListChangedNotification(_) => self.routes.all(),
            // Only sessions that subscribed to that resource.
            ServerNotification::ResourceUpdatedNotification(updated) if self.routes.shared => {
                self.routes.subscribers(&updated.params.uri)
            }
            // Log messages and the rest: the session they concern, or nobody.
            _ => match heard(&context.extensions, &self.routes) {
                Cause::Session(server, _) => vec![server],
                Cause::Unknown(why) => {
                    tracing::warn!(
                        "dropped the shared server's {} notification: {why}",
                        method_of(serde_json::to_value(&notification))
                    );
                    Vec::new()
                }
            },
        };
        // As the child wrote it.
        // (The SDK moved the message's extensions into its context.)
        let raw = context
            .extensions
            .get::<raw::Raw>()
            .map(|raw| (*raw.0).clone())
            .or_else(|| self.routes.answers.heard_notification(&notification));
        let notification = match raw.as_ref().and_then(raw::method_and_params) {
            Some((method, params)) => {
                ServerNotification::CustomNotification(CustomNotification::new(method, params))
            }
            None => notification,
        };
        // To each at once, each given a while: a session that stops reading
        // its stream must not hold the others' notifications, nor pile up
        // tasks waiting on it.
        let sends = to.into_iter().map(|server| {
            let notification = notification.clone();
            async move {
                let sent = tokio::time::timeout(NOTIFY_PATIENCE, server.send_notification(notification));
                if sent.await.is_err() {
                    tracing::warn!(
                        "dropped a notification for a session that has not read its stream for {} s",
                        NOTIFY_PATIENCE.as_secs()
                    );
                }
            }
        });
        futures::future::join_all(sends).await;
        Ok(())
    }

    fn get_info(&self) -> ClientConfig {
        self.info.clone()
    }
}

type Running = RunningService<RoleClient, ChildFacing>;

/// A child that finished its `initialize`: how to reach it, and its answer.
struct Link {
    peer: Peer<RoleClient>,
    routes: Arc<Routes>,
    init: ServerConfig,
    /// A session's own child lives as long as the session (dropping it kills
    /// the child); a shared child is held by [`SharedChild`].
    own: Option<Running>,
    /// Its place under `--max-sessions` (a session's own child only).
    _slot: Option<ChildSlot>,
}

async fn start_child(
    options: &Options,
    info: ClientConfig,
) -> Result<(Running, Arc<Routes>), ErrorData> {
    let routes = Arc::new(Routes::new(options.shared));
    if let Some(remote) = &options.connect {
        return connect_remote(remote, info, routes).await;
    }
    let spawned = child::spawn(&options.command, CHILD_LINE_LIMIT, routes.answers.clone())
        .map_err(|e| {
            ErrorData::internal_error(format!("the stdio MCP server could not start: {e}"), None)
        })?;
    let facing = ChildFacing {
        info,
        routes: routes.clone(),
        _group: spawned.group,
    };
    let running = facing
        .serve(Stamped::new(spawned.transport, stamp(&routes)))
        .await
        .map_err(|e| {
            tracing::warn!("[{}] initialize failed: {e}", spawned.label);
            ErrorData::internal_error(
                format!("the stdio MCP server did not initialize: {e}"),
                None,
            )
        })?;
    keep_initialize_result(&routes);
    Ok((running, routes))
}

/// `connect`: the upstream is a remote Streamable HTTP server, reached with
/// the configured headers and token; everything else is forwarded as for a
/// child.
async fn connect_remote(
    remote: &crate::options::Remote,
    info: ClientConfig,
    routes: Arc<Routes>,
) -> Result<(Running, Arc<Routes>), ErrorData> {
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    use rmcp::transport::StreamableHttpClientTransport;
    let headers = remote
        .headers
        .iter()
        .filter_map(|(name, value)| {
            Some((
                axum::http::HeaderName::from_bytes(name.as_bytes()).ok()?,
                axum::http::HeaderValue::from_str(value).ok()?,
            ))
        })
        .collect();
    let mut config =
        StreamableHttpClientTransportConfig::with_uri(remote.url.as_str()).custom_headers(headers);
    if let Some(token) = &remote.bearer {
        config = config.auth_header(token.as_str());
    }
    let facing = ChildFacing {
        info,
        routes: routes.clone(),
        _group: child::Group::none(),
    };
    let failed = |e: &dyn std::fmt::Display| {
        tracing::warn!("[{}] initialize failed: {e}", remote.url);
        ErrorData::internal_error(
            format!(
                "the remote MCP server {} did not initialize: {e}",
                remote.url
            ),
            None,
        )
    };
    let running = match remote.transport {
        RemoteTransport::StreamableHttp => facing
            .serve(Stamped::new(
                StreamableHttpClientTransport::with_client(
                    crate::remote::WholeAnswers::new(routes.answers.clone()),
                    config,
                ),
                stamp(&routes),
            ))
            .await
            .map_err(|e| failed(&e))?,
        RemoteTransport::Sse => {
            let transport = LegacySse::connect(remote, routes.answers.clone())
                .await
                .map_err(|e| failed(&e))?;
            facing
                .serve(Stamped::new(transport, stamp(&routes)))
                .await
                .map_err(|e| failed(&e))?
        }
    };
    tracing::info!("connected to {}", remote.url);
    keep_initialize_result(&routes);
    Ok((running, routes))
}

/// After the handshake: the server's `initialize` result as it wrote it.
fn keep_initialize_result(routes: &Routes) {
    if let (Some(whole), Ok(mut initialized)) = (
        routes.answers.initialize_result(),
        routes.initialized.lock(),
    ) {
        *initialized = Some(whole);
    }
}

fn init_of(running: &Running) -> Result<ServerConfig, ErrorData> {
    running
        .peer()
        .peer_info()
        // The same JSON object as the child sent it.
        .and_then(|info| serde_json::to_value(&*info).ok())
        .and_then(|value| serde_json::from_value(value).ok())
        .ok_or_else(|| {
            ErrorData::internal_error("the stdio MCP server sent no initialize result", None)
        })
}

/// `--shared`: one child for every session, started by the first and again
/// after it exits.
pub struct SharedChild {
    options: Arc<Options>,
    current: tokio::sync::Mutex<Option<(Running, Arc<Routes>)>>,
}

impl SharedChild {
    pub fn new(options: Arc<Options>) -> Self {
        Self {
            options,
            current: tokio::sync::Mutex::new(None),
        }
    }

    async fn attach(&self, info: ClientConfig, route: Route) -> Result<Link, ErrorData> {
        let mut current = self.current.lock().await;
        let alive = current.as_ref().is_some_and(|(running, _)| {
            !running.is_closed() && !running.peer().is_transport_closed()
        });
        if !alive {
            *current = Some(start_child(&self.options, info).await?);
        }
        let Some((running, routes)) = current.as_ref() else {
            return Err(ErrorData::internal_error(
                "the shared stdio MCP server is gone",
                None,
            ));
        };
        routes.attach(route);
        Ok(Link {
            peer: running.peer().clone(),
            routes: routes.clone(),
            init: init_of(running)?,
            own: None,
            _slot: None,
        })
    }
}

/// One HTTP-side MCP session (or one 2026-07-28 stateless request).
pub struct Bridge {
    options: Arc<Options>,
    sessions: Arc<Sessions>,
    session: u64,
    shared: Option<Arc<SharedChild>>,
    /// Made once: concurrent first requests wait for the one child.
    link: tokio::sync::OnceCell<Link>,
    /// The client's `initialize` came (a second one is refused before any
    /// child is started for it).
    initialize_seen: AtomicBool,
}

impl Bridge {
    pub fn new(
        options: Arc<Options>,
        sessions: Arc<Sessions>,
        shared: Option<Arc<SharedChild>>,
    ) -> Self {
        sessions.live.fetch_add(1, Ordering::SeqCst);
        Self {
            options,
            sessions,
            session: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
            shared,
            link: tokio::sync::OnceCell::new(),
            initialize_seen: AtomicBool::new(false),
        }
    }

    /// This session's link to its child, made by the first request that
    /// needs it (the others wait for it).
    async fn initialize_child(
        &self,
        info: ClientConfig,
        server: Peer<RoleServer>,
    ) -> Result<&Link, ErrorData> {
        self.link
            .get_or_try_init(|| self.start_link(info, server))
            .await
    }

    async fn start_link(
        &self,
        info: ClientConfig,
        server: Peer<RoleServer>,
    ) -> Result<Link, ErrorData> {
        let route = Route {
            session: self.session,
            server,
        };
        if let Some(shared) = &self.shared {
            return shared.attach(info, route).await;
        }
        let slot = self.sessions.reserve_child().ok_or_else(|| {
            ErrorData::invalid_request(
                format!(
                    "mcp-bridge: {} sessions are open (--max-sessions); try again later",
                    self.sessions.max()
                ),
                None,
            )
        })?;
        let (running, routes) = start_child(&self.options, info).await?;
        routes.attach(route);
        Ok(Link {
            peer: running.peer().clone(),
            routes,
            init: init_of(&running)?,
            own: Some(running),
            _slot: Some(slot),
        })
    }

    /// The child of this session: started by `initialize`, or here for a
    /// 2026-07-28 request that comes without one (with the client
    /// information its `_meta` carries).
    async fn link(&self, context: &RequestContext<RoleServer>) -> Result<&Link, ErrorData> {
        if let Some(link) = self.link.get() {
            return Ok(link);
        }
        let info = context
            .peer
            .peer_info()
            .map(|i| (*i).clone())
            .unwrap_or_default();
        self.initialize_child(info, context.peer.clone()).await
    }

    async fn notify_child(&self, notification: ClientNotification) {
        if let Some(link) = self.link.get() {
            let _ = link.peer.send_notification(notification).await;
        }
    }

    /// Sends a request to the child and waits for its answer, the client's
    /// cancellation, or the request timeout (both cancel it at the child).
    async fn forward(
        &self,
        mut request: ClientRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<ServerResult, ErrorData> {
        let link = self.link(&context).await?;
        if link.peer.is_transport_closed() {
            return Err(child_exited());
        }
        // The request as the client wrote it; the client's `_meta` (progress
        // token, 2026-07-28 fields) goes along, and the answer is kept whole.
        let raw = raw::request_of(&context)
            .filter(|raw| raw.get("method").and_then(|m| m.as_str()) == Some(request.method()));
        if let Some(custom) = raw.and_then(|raw| raw::custom_request(&raw)) {
            request = ClientRequest::CustomRequest(custom);
        }
        *request.get_meta_mut() = context.meta.clone();
        request.extensions_mut().insert(KeepAnswer);
        let client_token = request.get_meta().get_progress_token();
        // In flight before the child can see it: what the child sends while
        // working on it is attributed to this session.
        let mut in_flight = link.routes.wait(Waiting {
            session: self.session,
            server: context.peer.clone(),
            request: context.id.clone(),
        });
        let registering = link.routes.registering.lock().await;
        let handle = link
            .peer
            .send_cancellable_request(request, PeerRequestOptions::no_options())
            .await
            .map_err(as_error)?;
        if let (Some(token), Ok(mut progress)) = (client_token, link.routes.progress.lock()) {
            progress.insert(handle.progress_token.clone(), (context.peer.clone(), token));
            in_flight.progress = Some(handle.progress_token.clone());
        }
        drop(registering);
        let timeout = self.options.request_timeout;
        let outcome = tokio::select! {
            answer = handle.rx => answer.unwrap_or(Err(ServiceError::TransportClosed)).map_err(as_error),
            _ = context.ct.cancelled() => Err(ErrorData::internal_error("cancelled by the client", None)),
            _ = tokio::time::sleep(timeout) => Err(ErrorData::internal_error(
                format!("the stdio MCP server did not answer within {} s", timeout.as_secs()), None)),
        };
        if outcome.is_err() {
            // Tell the child to stop working on it (harmless if it already answered).
            let _ = handle
                .peer
                .notify_cancelled(rmcp::model::CancelledNotificationParam::new(
                    Some(handle.id.clone()),
                    Some("cancelled by the bridge".into()),
                ))
                .await;
        }
        drop(in_flight);
        let whole = link.routes.answers.take(&handle.id);
        if let (Ok(_), Some(whole)) = (&outcome, whole) {
            // Goes out in place of the SDK's typed form of it.
            raw::keep(&context, whole);
        }
        outcome
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Some(link) = self.link.get() {
            link.routes.detach(self.session);
            if link.own.is_some() {
                tracing::info!("session {} ended; its child is stopped", self.session);
            }
        }
        self.sessions.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Every request becomes the same request to the child (its `_meta`
/// included); the SDK wants one method per request type, so each forwards.
macro_rules! forward {
    ($($method:ident($params:ty) -> $out:ty = $variant:ident($make:expr) => $result:ident $(via $wrap:path)?;)*) => {
        $(
            async fn $method(
                &self,
                params: $params,
                context: RequestContext<RoleServer>,
            ) -> Result<$out, ErrorData> {
                let request = ClientRequest::$variant(($make)(params));
                match self.forward(request, context).await? {
                    ServerResult::$result(result) => Ok($($wrap)?(result)),
                    other => Err(unexpected(&other)),
                }
            }
        )*
    };
}

impl ServerHandler for Bridge {
    async fn initialize(
        &self,
        request: ClientConfig,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        if self.initialize_seen.swap(true, Ordering::SeqCst) {
            return Err(ErrorData::invalid_request("already initialized", None));
        }
        context.peer.set_peer_info(request.clone());
        let init = self
            .initialize_child(request, context.peer.clone())
            .await?
            .init
            .clone();
        // What the SDK's model of the result lacks goes out too; its own
        // members (the protocol version it negotiates) stay.
        let whole = self
            .link
            .get()
            .and_then(|link| link.routes.initialized.lock().ok()?.clone());
        if let Some(whole) = whole {
            raw::keep_under(&context, whole);
        }
        Ok(init)
    }

    forward! {
        complete(CompleteRequestParams) -> CompleteResult = CompleteRequest(CompleteRequest::new) => CompleteResult;
        get_prompt(GetPromptRequestParams) -> GetPromptResponse = GetPromptRequest(GetPromptRequest::new) => GetPromptResult via GetPromptResponse::from;
        read_resource(ReadResourceRequestParams) -> ReadResourceResponse = ReadResourceRequest(ReadResourceRequest::new) => ReadResourceResult via ReadResourceResponse::from;
        call_tool(CallToolRequestParams) -> CallToolResponse = CallToolRequest(CallToolRequest::new) => CallToolResult via CallToolResponse::from;
        list_tools(Option<PaginatedRequestParams>) -> ListToolsResult = ListToolsRequest(optional) => ListToolsResult;
        list_prompts(Option<PaginatedRequestParams>) -> ListPromptsResult = ListPromptsRequest(optional) => ListPromptsResult;
        list_resources(Option<PaginatedRequestParams>) -> ListResourcesResult = ListResourcesRequest(optional) => ListResourcesResult;
        list_resource_templates(Option<PaginatedRequestParams>) -> ListResourceTemplatesResult = ListResourceTemplatesRequest(optional) => ListResourceTemplatesResult;
    }

    async fn ping(&self, context: RequestContext<RoleServer>) -> Result<(), ErrorData> {
        let request = ClientRequest::PingRequest(Default::default());
        self.forward(request, context).await.map(|_| ())
    }

    async fn set_level(
        &self,
        params: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let request = ClientRequest::SetLevelRequest(SetLevelRequest::new(params));
        self.forward(request, context).await.map(|_| ())
    }

    async fn subscribe(
        &self,
        params: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let uri = params.uri.clone();
        let routes = self.link(&context).await?.routes.clone();
        let request = ClientRequest::SubscribeRequest(SubscribeRequest::new(params));
        self.forward(request, context).await?;
        // Where this resource's updates go with `--shared`.
        routes.subscribe(&uri, self.session);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        params: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let routes = self.link(&context).await?.routes.clone();
        if !routes.unsubscribe(&params.uri, self.session) && routes.shared {
            // Other sessions on the shared child still want its updates.
            return Ok(());
        }
        let request = ClientRequest::UnsubscribeRequest(UnsubscribeRequest::new(params));
        self.forward(request, context).await.map(|_| ())
    }

    async fn on_custom_request(
        &self,
        request: CustomRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        match self
            .forward(ClientRequest::CustomRequest(request), context)
            .await?
        {
            ServerResult::CustomResult(result) => Ok(result),
            other => Err(unexpected(&other)),
        }
    }

    async fn on_roots_list_changed(&self, _context: NotificationContext<RoleServer>) {
        self.notify_child(ClientNotification::RootsListChangedNotification(
            Default::default(),
        ))
        .await;
    }

    async fn on_custom_notification(
        &self,
        notification: CustomNotification,
        _context: NotificationContext<RoleServer>,
    ) {
        self.notify_child(ClientNotification::CustomNotification(notification))
            .await;
    }

    fn get_info(&self) -> ServerConfig {
        self.link.get().map(|l| l.init.clone()).unwrap_or_default()
    }
}

fn optional<M: Default>(
    params: Option<PaginatedRequestParams>,
) -> RequestOptionalParam<M, PaginatedRequestParams> {
    RequestOptionalParam {
        method: M::default(),
        params,
        extensions: Default::default(),
    }
}

/// A message's JSON-RPC method, for the log.
fn method_of(message: serde_json::Result<serde_json::Value>) -> String {
    message
        .ok()
        .and_then(|v| v.get("method")?.as_str().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn unexpected(result: &ServerResult) -> ErrorData {
    ErrorData::internal_error(
        format!("the stdio MCP server answered with an unexpected result: {result:?}"),
        None,
    )
}

fn child_exited() -> ErrorData {
    ErrorData::internal_error(
        "the stdio MCP server exited; start a new session to get a new one",
        None,
    )
}

fn as_error(error: ServiceError) -> ErrorData {
    match error {
        ServiceError::McpError(e) => e,
        ServiceError::TransportClosed | ServiceError::TransportSend(_) => child_exited(),
        other => ErrorData::internal_error(other.to_string(), None),
    }
}
