//! Root context: parses the plugin configuration once and hands each request
//! a shared handle to it, the metric ids and the learned tool labels. It
//! alone fetches the remote JWKS.
//!
//! Fail closed, and never stuck: a JWKS fetch is sent from the root
//! context's own tick, so its answer comes back to the root context whatever
//! becomes of the request that wanted it (one sent from a request's context
//! was dropped with that request, leaving the fetch "in flight" for good:
//! no key rotation was ever picked up again). Requests that need keys wait
//! as waiters and are woken when the fetch is over, either way; a request
//! that cannot wait is judged with the keys there are, and refused.

mod metrics;

use super::host;
use super::http::{self, McpHttp, WasmStream};
use super::ROOT_ID;
use crate::auth::{claims_from_metadata, Authenticated, ClaimsSource};
use crate::config::FilterConfig;
use crate::shell::keys::Keys;
use crate::telemetry::{Labels, ToolLabels};
use log::{error, info, warn};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, MapType};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::time::Duration;

/// The root context's tick: drives the JWKS schedule.
const TICK: Duration = Duration::from_secs(1);
/// The tick while a request waits for a fetch to start: at once.
const NUDGE: Duration = Duration::from_millis(1);
/// How long a request's headers may be held before its body's first bytes
/// arrive. Envoy without `allow_on_headers_stop_iteration` never delivers
/// them to a filter that held the headers; a real client sends a JSON-RPC
/// body right after its headers.
const HELD_HEADERS_LIMIT_MS: u64 = 5_000;

/// A request context waiting for something the root context receives.
type Waiter = (u32, Weak<RefCell<WasmStream>>);

/// State one VM (one Envoy worker) shares across its requests. It only
/// accelerates and labels: no decision depends on it.
pub struct Shared {
    pub config: Rc<FilterConfig>,
    pub labels: RefCell<Labels>,
    metric_ids: RefCell<HashMap<String, u32>>,
    keys: Keys,
    /// Requests waiting for the JWKS fetch to be over.
    waiters: RefCell<Vec<Waiter>>,
    /// Requests whose headers are held for a body, with their deadline.
    held: RefCell<Vec<(Waiter, u64)>>,
    /// The missing-flag error was logged (once per worker).
    held_logged: Cell<bool>,
    /// The JWKS fetch in flight (its call token).
    jwks_call: Cell<Option<u32>>,
    /// The tick was shortened for a waiting request.
    nudged: Cell<bool>,
    /// Calls a request sent while woken from the root context: their
    /// answers come to the root context, and go back to the request.
    adopted: RefCell<Vec<(u32, Waiter)>>,
}

impl Shared {
    fn new(config: FilterConfig) -> Self {
        let labels = Labels::new(
            ToolLabels::new(&config.metrics.tool_labels, config.metrics.max_tool_labels),
            ToolLabels::new(&[], config.metrics.max_tenant_labels),
        );
        let keys = Keys::new(&config);
        Self {
            config: Rc::new(config),
            labels: RefCell::new(labels),
            metric_ids: RefCell::new(HashMap::new()),
            keys,
            waiters: RefCell::new(Vec::new()),
            held: RefCell::new(Vec::new()),
            held_logged: Cell::new(false),
            jwks_call: Cell::new(None),
            nudged: Cell::new(false),
            adopted: RefCell::new(Vec::new()),
        }
    }

    /// Authenticates a request: a bearer token against this VM's keys (read
    /// at `now_ms`; `None`, no clock: refused), or the claims `jwt_authn`
    /// left in dynamic metadata. `may_wait`: the request can wait for keys.
    pub fn authenticate(
        &self,
        headers: &[(String, String)],
        now_ms: Option<u64>,
        may_wait: bool,
    ) -> Authenticated {
        match self.keys.source() {
            Some(ClaimsSource::JwtAuthn { namespace, key }) => {
                // The whole `Metadata` message: a sub-path comes back in the
                // map encoding, which loses the claims' types.
                let claims = host::property(&["metadata"])
                    .and_then(|bytes| claims_from_metadata(&bytes, &namespace, &key));
                self.keys.authenticate_claims(claims.as_deref(), headers)
            }
            _ => self.keys.authenticate_bearer(headers, now_ms, may_wait),
        }
    }

    /// A request (context `id`) needs keys: it waits for the fetch in
    /// flight, or for one the next tick starts (brought forward to now).
    /// False if there is nothing to wait for (no remote JWKS, or the tick
    /// cannot be brought forward): the request is judged now.
    pub fn wait_for_keys(&self, id: u32, stream: Weak<RefCell<WasmStream>>) -> bool {
        if !self.keys.remote() {
            return false;
        }
        if self.jwks_call.get().is_none() && !self.nudged.get() {
            if let Err(e) = host::set_tick_period(NUDGE) {
                warn!(
                    "{ROOT_ID}: cannot bring the JWKS fetch forward: status {}",
                    e.0
                );
                return false;
            }
            self.nudged.set(true);
        }
        let Ok(mut waiters) = self.waiters.try_borrow_mut() else {
            return false;
        };
        waiters.push((id, stream));
        true
    }

    /// Watches a request whose headers are held until its body arrives.
    pub fn watch_held(&self, id: u32, stream: Weak<RefCell<WasmStream>>) {
        let Some(now) = host::now_ms() else {
            return;
        };
        if let Ok(mut held) = self.held.try_borrow_mut() {
            held.push(((id, stream), now.saturating_add(HELD_HEADERS_LIMIT_MS)));
        }
    }

    /// Answers the held requests whose body never came (each in its own
    /// context), and forgets those that are over or got their body.
    fn check_held(&self, root_id: u32, now_ms: u64) {
        let watched = match self.held.try_borrow_mut() {
            Ok(mut held) if !held.is_empty() => std::mem::take(&mut *held),
            _ => return,
        };
        let mut keep = Vec::new();
        let mut answered = false;
        for ((id, weak), deadline) in watched {
            let Some(stream) = weak.upgrade() else {
                continue;
            };
            let Ok(mut s) = stream.try_borrow_mut() else {
                keep.push(((id, weak), deadline));
                continue;
            };
            if s.settled() {
                continue;
            }
            if now_ms < deadline {
                keep.push(((id, weak), deadline));
                continue;
            }
            if host::set_effective_context(id).is_ok() {
                s.held_too_long();
                answered = true;
            }
        }
        if answered {
            let _ = host::set_effective_context(root_id);
            if !self.held_logged.replace(true) {
                error!(
                    "{ROOT_ID}: routing_headers.enabled holds request headers until the body \
                     is read, but Envoy delivered no body: set allow_on_headers_stop_iteration: \
                     true in the wasm PluginConfig (Envoy >= 1.35), or turn routing_headers off; \
                     such requests are answered 500 after {HELD_HEADERS_LIMIT_MS} ms"
                );
            }
        }
        if let Ok(mut held) = self.held.try_borrow_mut() {
            held.extend(keep);
        }
    }

    /// The root context's tick: starts a fetch if one is due or a request
    /// waits for one. The SDK sends the answer to the context active when
    /// the call is made: here, the root context.
    fn tick(&self, root_id: u32) {
        if let Some(now) = host::now_ms() {
            self.check_held(root_id, now);
        }
        if self.nudged.replace(false) {
            if let Err(e) = host::set_tick_period(TICK) {
                warn!("{ROOT_ID}: cannot restore the tick period: status {}", e.0);
            }
        }
        let waiting = self.waiters.try_borrow().is_ok_and(|w| !w.is_empty());
        let Some(now) = host::now_ms() else {
            // No clock, no schedule: waiting requests are judged (and refused).
            if waiting {
                self.wake_waiters(root_id);
            }
            return;
        };
        let in_flight = self.jwks_call.get().is_some() && self.keys.fetch_pending(now);
        if in_flight || !(waiting || self.keys.fetch_due(now)) {
            return;
        }
        if !self.start_fetch(now) {
            self.wake_waiters(root_id);
        }
    }

    /// Sends the JWKS request. False if it could not be sent.
    fn start_fetch(&self, now_ms: u64) -> bool {
        let Some(request) = self.keys.start_fetch(now_ms) else {
            return false;
        };
        let headers = request
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        match host::http_call(
            &request.cluster,
            headers,
            None,
            Duration::from_millis(request.timeout_ms),
        ) {
            Ok(token) => {
                self.jwks_call.set(Some(token));
                true
            }
            Err(status) => {
                warn!(
                    "{ROOT_ID}: cannot fetch the JWKS from cluster `{}`: status {}",
                    request.cluster, status.0
                );
                self.keys.fetch_failed();
                false
            }
        }
    }

    /// Wakes every request waiting for keys, each in its own context.
    fn wake_waiters(&self, root_id: u32) {
        let waiters = match self.waiters.try_borrow_mut() {
            Ok(mut w) => std::mem::take(&mut *w),
            Err(_) => return,
        };
        for (id, stream) in waiters {
            let Some(stream) = stream.upgrade() else {
                continue;
            };
            // A context gone from the host is not woken.
            if host::set_effective_context(id).is_err() {
                continue;
            }
            if let Ok(mut woken) = stream.try_borrow_mut() {
                woken.host.waking = true;
                woken.woken();
                woken.host.waking = false;
            };
        }
        let _ = host::set_effective_context(root_id);
    }

    /// Remembers a call a woken request sent from the root context's callback.
    pub fn adopt_call(&self, token: u32, id: u32, stream: Weak<RefCell<WasmStream>>) {
        if let Ok(mut adopted) = self.adopted.try_borrow_mut() {
            adopted.push((token, (id, stream)));
        }
    }

    /// An HTTP call the root context sent (or adopted) was answered.
    fn call_answered(&self, root_id: u32, token: u32, num_headers: usize, body_size: usize) {
        if self.jwks_call.get() == Some(token) {
            self.jwks_call.set(None);
            self.jwks_fetched(body_size, host::now_ms().unwrap_or_default());
            self.wake_waiters(root_id);
            return;
        }
        let adopted = self.adopted.try_borrow_mut().ok().and_then(|mut a| {
            let i = a.iter().position(|(t, _)| *t == token)?;
            Some(a.swap_remove(i).1)
        });
        let Some((id, stream)) = adopted else {
            return;
        };
        let Some(stream) = stream.upgrade() else {
            return;
        };
        if host::set_effective_context(id).is_ok() {
            if let Ok(mut answered) = stream.try_borrow_mut() {
                answered.host.waking = true;
                http::call_answered(&mut answered, token, num_headers, body_size);
                answered.host.waking = false;
            };
        }
        let _ = host::set_effective_context(root_id);
    }

    /// The answer to a JWKS fetch arrived (read from the call's buffers).
    pub fn jwks_fetched(&self, body_size: usize, now_ms: u64) {
        let status = host::headers(MapType::HttpCallResponseHeaders)
            .unwrap_or_default()
            .into_iter()
            .find(|(k, _)| k == ":status")
            .map(|(_, v)| v);
        let body = if status.as_deref() == Some("200") {
            host::buffer(BufferType::HttpCallResponseBody, 0, body_size).unwrap_or_default()
        } else {
            Vec::new()
        };
        match self.keys.fetched(status.as_deref(), &body, now_ms) {
            Ok(line) => info!("{ROOT_ID}: {line}"),
            Err(line) => warn!("{ROOT_ID}: {line}"),
        }
    }
}

pub struct Root {
    id: u32,
    shared: Option<Rc<Shared>>,
}

impl Root {
    pub fn new(id: u32) -> Self {
        Self { id, shared: None }
    }
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        if let Some(shared) = &self.shared {
            shared.call_answered(self.id, token, num_headers, body_size);
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let bytes = host::buffer(BufferType::PluginConfiguration, 0, size).unwrap_or_default();
        match FilterConfig::from_json(&bytes) {
            Ok(config) => {
                info!(
                    "{ROOT_ID}: configured (routing headers {}, batches {}, max request {} bytes)",
                    if config.routing_headers.enabled {
                        "on"
                    } else {
                        "off"
                    },
                    if config.allow_batches {
                        "allowed"
                    } else {
                        "refused"
                    },
                    config.max_request_bytes
                );
                for warning in &config.warnings {
                    warn!("{ROOT_ID}: configuration warning: {warning}");
                }
                let remote = config
                    .auth
                    .as_ref()
                    .is_some_and(|a| a.remote_jwks.is_some());
                // The tick also watches requests held for their body.
                if remote || config.routing_headers.enabled {
                    // The tick drives the JWKS schedule: first fetch, period,
                    // retries, and fetches requests wait for. Without it no
                    // key would ever load: refuse the configuration.
                    if let Err(e) = host::set_tick_period(TICK) {
                        error!("{ROOT_ID}: cannot start the JWKS tick: status {}", e.0);
                        return false;
                    }
                }
                let shared = Shared::new(config);
                shared.define(&crate::exchange::series_at_load(&shared.config));
                self.shared = Some(Rc::new(shared));
                true
            }
            Err(e) => {
                // Returning false makes Envoy refuse this plugin configuration.
                error!("{ROOT_ID}: {e}");
                false
            }
        }
    }

    fn on_tick(&mut self) {
        if let Some(shared) = self.shared.clone() {
            shared.tick(self.id);
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let shared = self.shared.clone()?;
        Some(Box::new(McpHttp::new(shared, context_id)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
