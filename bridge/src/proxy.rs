//! Forwarding between HTTP-side MCP sessions and stdio children. The bridge
//! answers nothing itself: each request, notification and answer is passed
//! on as the SDK parsed it. The SDK's client assigns its own request ids and
//! progress tokens towards a child, so sessions sharing one child never see
//! each other's answers; this module maps progress tokens back.

// Logging and resources/subscribe are deprecated for 2026-07-28 but still
// forwarded: clients on older versions use them.
#![allow(deprecated)]

use crate::child;
use crate::options::Options;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, ClientConfig, ClientNotification,
    ClientRequest, ClientResult, CompleteRequest, CompleteRequestParams, CompleteResult,
    CustomNotification, CustomRequest, CustomResult, GetMeta, GetPromptRequest,
    GetPromptRequestParams, GetPromptResponse, InitializeResult, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ProgressToken, ReadResourceRequest, ReadResourceRequestParams, ReadResourceResponse,
    RequestOptionalParam, ServerConfig, ServerNotification, ServerRequest, ServerResult,
    SetLevelRequest, SetLevelRequestParams, SubscribeRequest, SubscribeRequestParams,
};
use rmcp::service::{
    NotificationContext, Peer, PeerRequestOptions, RequestContext, RoleClient, RoleServer,
    RunningService, ServiceError,
};
use rmcp::{ErrorData, ServerHandler, Service, ServiceExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// How many sessions are open, bounded by `--max-sessions`.
pub struct Sessions {
    live: AtomicUsize,
    max: usize,
}

impl Sessions {
    pub fn new(max: usize) -> Self {
        Self {
            live: AtomicUsize::new(0),
            max,
        }
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

/// Where a child's messages go back to: one HTTP-side session.
#[derive(Clone)]
struct Route {
    session: u64,
    server: Peer<RoleServer>,
}

/// The sessions a child serves, and where its progress goes.
#[derive(Default)]
struct Routes {
    sessions: Mutex<Vec<Route>>,
    /// Progress token given to the child -> the session and the token it chose.
    progress: Mutex<HashMap<ProgressToken, (Peer<RoleServer>, ProgressToken)>>,
    /// Sessions waiting for an answer, most recent last: where the child's
    /// own requests (sampling, elicitation, roots) go.
    in_flight: Mutex<Vec<Route>>,
}

impl Routes {
    fn attach(&self, route: Route) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.push(route);
        }
    }

    fn detach(&self, session: u64) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.retain(|r| r.session != session);
        }
    }

    fn all(&self) -> Vec<Peer<RoleServer>> {
        self.sessions
            .lock()
            .map(|s| s.iter().map(|r| r.server.clone()).collect())
            .unwrap_or_default()
    }

    /// The session a child's own request is for: the one waiting on it (the
    /// most recent, if several), else the newest session.
    fn asker(&self) -> Option<Peer<RoleServer>> {
        let waiting = self
            .in_flight
            .lock()
            .ok()
            .and_then(|f| f.last().map(|r| r.server.clone()));
        waiting.or_else(|| {
            self.sessions
                .lock()
                .ok()
                .and_then(|s| s.last().map(|r| r.server.clone()))
        })
    }
}

/// The client side of a child: presents the HTTP client's own `initialize`
/// parameters, and passes what the child asks and tells to its sessions.
struct ChildFacing {
    info: ClientConfig,
    routes: Arc<Routes>,
}

impl Service<RoleClient> for ChildFacing {
    async fn handle_request(
        &self,
        request: ServerRequest,
        _context: RequestContext<RoleClient>,
    ) -> Result<ClientResult, ErrorData> {
        let server = self
            .routes
            .asker()
            .ok_or_else(|| ErrorData::internal_error("no client session to ask", None))?;
        server.send_request(request).await.map_err(as_error)
    }

    async fn handle_notification(
        &self,
        notification: ServerNotification,
        _context: NotificationContext<RoleClient>,
    ) -> Result<(), ErrorData> {
        if let ServerNotification::ProgressNotification(mut progress) = notification {
            let route = self
                .routes
                .progress
                .lock()
                .ok()
                .and_then(|p| p.get(&progress.params.progress_token).cloned());
            if let Some((server, token)) = route {
                progress.params.progress_token = token;
                let _ = server
                    .send_notification(ServerNotification::ProgressNotification(progress))
                    .await;
            }
            return Ok(());
        }
        for server in self.routes.all() {
            let _ = server.send_notification(notification.clone()).await;
        }
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
}

async fn start_child(
    options: &Options,
    info: ClientConfig,
) -> Result<(Running, Arc<Routes>), ErrorData> {
    let spawned = child::spawn(&options.command).map_err(|e| {
        ErrorData::internal_error(format!("the stdio MCP server could not start: {e}"), None)
    })?;
    let routes = Arc::new(Routes::default());
    let facing = ChildFacing {
        info,
        routes: routes.clone(),
    };
    let running = facing.serve(spawned.transport).await.map_err(|e| {
        eprintln!("mcp-bridge: [{}] initialize failed: {e}", spawned.label);
        ErrorData::internal_error(
            format!("the stdio MCP server did not initialize: {e}"),
            None,
        )
    })?;
    Ok((running, routes))
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
        })
    }
}

/// One HTTP-side MCP session (or one 2026-07-28 stateless request).
pub struct Bridge {
    options: Arc<Options>,
    sessions: Arc<Sessions>,
    session: u64,
    shared: Option<Arc<SharedChild>>,
    link: OnceLock<Link>,
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
            link: OnceLock::new(),
        }
    }

    async fn initialize_child(
        &self,
        info: ClientConfig,
        server: Peer<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        let route = Route {
            session: self.session,
            server,
        };
        let link = match &self.shared {
            Some(shared) => shared.attach(info, route).await?,
            None => {
                let (running, routes) = start_child(&self.options, info).await?;
                routes.attach(route);
                Link {
                    peer: running.peer().clone(),
                    routes,
                    init: init_of(&running)?,
                    own: Some(running),
                }
            }
        };
        let init = link.init.clone();
        if self.link.set(link).is_err() {
            return Err(ErrorData::invalid_request("already initialized", None));
        }
        Ok(init)
    }

    /// The child of this session: started by `initialize`, or here for a
    /// 2026-07-28 request that comes without one (with the client
    /// information its `_meta` carries).
    async fn link(&self, context: &RequestContext<RoleServer>) -> Result<&Link, ErrorData> {
        if self.link.get().is_none() {
            let info = context
                .peer
                .peer_info()
                .map(|i| (*i).clone())
                .unwrap_or_default();
            // A concurrent first request may win the race; its link is used.
            let _ = self.initialize_child(info, context.peer.clone()).await;
        }
        self.link
            .get()
            .ok_or_else(|| ErrorData::internal_error("the stdio MCP server is not running", None))
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
        // The client's `_meta` (progress token, 2026-07-28 fields) goes along.
        *request.get_meta_mut() = context.meta.clone();
        let client_token = request.get_meta().get_progress_token();
        let handle = link
            .peer
            .send_cancellable_request(request, PeerRequestOptions::no_options())
            .await
            .map_err(as_error)?;
        let route = Route {
            session: self.session,
            server: context.peer.clone(),
        };
        if let (Some(token), Ok(mut progress)) = (client_token, link.routes.progress.lock()) {
            progress.insert(handle.progress_token.clone(), (route.server.clone(), token));
        }
        if let Ok(mut waiting) = link.routes.in_flight.lock() {
            waiting.push(route);
        }
        let child_token = handle.progress_token.clone();
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
        if let Ok(mut progress) = link.routes.progress.lock() {
            progress.remove(&child_token);
        }
        if let Ok(mut waiting) = link.routes.in_flight.lock() {
            if let Some(i) = waiting.iter().rposition(|r| r.session == self.session) {
                waiting.remove(i);
            }
        }
        outcome
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Some(link) = self.link.get() {
            link.routes.detach(self.session);
            if link.own.is_some() {
                eprintln!(
                    "mcp-bridge: session {} ended; its child is stopped",
                    self.session
                );
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
        context.peer.set_peer_info(request.clone());
        self.initialize_child(request, context.peer.clone()).await
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
        let request = ClientRequest::SubscribeRequest(SubscribeRequest::new(params));
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
