//! Root context: parses the plugin configuration once and hands each request
//! a shared handle to it, the metric ids and the learned tool labels.

use super::host;
use super::http::McpHttp;
use super::ROOT_ID;
use crate::auth::token::AuthFailure;
use crate::auth::{claims_from_metadata, Authenticated, Authenticator, ClaimsSource};
use crate::config::FilterConfig;
use crate::telemetry::{Labels, MetricKind, Sample, ToolLabels};
use log::{error, info, warn};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, MapType, MetricType};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

/// State one VM (one Envoy worker) shares across its requests. It only
/// accelerates and labels: no decision depends on it.
pub struct Shared {
    pub config: Rc<FilterConfig>,
    pub labels: RefCell<Labels>,
    metric_ids: RefCell<HashMap<String, u32>>,
    auth: Option<RefCell<Authenticator>>,
}

impl Shared {
    fn new(config: FilterConfig) -> Self {
        let labels = Labels {
            tools: ToolLabels::new(&config.metrics.tool_labels, config.metrics.max_tool_labels),
            tenants: ToolLabels::new(&[], config.metrics.max_tenant_labels),
        };
        let auth = config
            .auth
            .clone()
            .map(|a| RefCell::new(Authenticator::new(a)));
        Self {
            config: Rc::new(config),
            labels: RefCell::new(labels),
            metric_ids: RefCell::new(HashMap::new()),
            auth,
        }
    }

    /// Authenticates a request: a bearer token against this VM's keys, or the
    /// claims `jwt_authn` left in dynamic metadata.
    pub fn authenticate(&self, headers: &[(String, String)], now_ms: u64) -> Authenticated {
        let Some(Ok(mut auth)) = self.auth.as_ref().map(RefCell::try_borrow_mut) else {
            return Authenticated::Failed(AuthFailure::NoKeys);
        };
        match auth.config.source.clone() {
            ClaimsSource::Bearer => {
                let authorization = headers
                    .iter()
                    .find(|(k, _)| k == "authorization")
                    .map(|(_, v)| v.as_str());
                auth.authenticate_bearer(authorization, headers, now_ms)
            }
            ClaimsSource::JwtAuthn { namespace, key } => {
                // The whole `Metadata` message: a sub-path comes back in the
                // map encoding, which loses the claims' types.
                let claims = host::property(&["metadata"])
                    .and_then(|bytes| claims_from_metadata(&bytes, &namespace, &key));
                auth.authenticate_claims(claims.as_deref(), headers)
            }
        }
    }

    /// Starts a remote JWKS fetch from `ctx` (whose `on_http_call_response`
    /// then calls [`Shared::jwks_fetched`]). False if none could be started.
    pub fn fetch_jwks(&self, ctx: &dyn Context, now_ms: u64) -> bool {
        let Some(Ok(mut auth)) = self.auth.as_ref().map(RefCell::try_borrow_mut) else {
            return false;
        };
        let Some(remote) = auth.config.remote_jwks.clone() else {
            return false;
        };
        if let Some(schedule) = auth.schedule.as_mut() {
            schedule.started(now_ms);
        }
        let headers = vec![
            (":method", "GET"),
            (":path", remote.path.as_str()),
            (":authority", remote.authority.as_str()),
            ("accept", "application/json"),
        ];
        // The SDK's dispatch registers the call so the answer reaches `ctx`;
        // it returns the statuses Envoy gives for a bad cluster as errors.
        match ctx.dispatch_http_call(
            &remote.cluster,
            headers,
            None,
            vec![],
            Duration::from_millis(remote.timeout_ms),
        ) {
            Ok(_) => true,
            Err(status) => {
                warn!(
                    "{ROOT_ID}: cannot fetch the JWKS from cluster `{}`: {status:?}",
                    remote.cluster
                );
                auth.fetch_failed();
                false
            }
        }
    }

    /// The answer to a JWKS fetch arrived (read from the call's buffers).
    pub fn jwks_fetched(&self, body_size: usize, now_ms: u64) {
        let Some(Ok(mut auth)) = self.auth.as_ref().map(RefCell::try_borrow_mut) else {
            return;
        };
        let status = host::headers(MapType::HttpCallResponseHeaders)
            .into_iter()
            .find(|(k, _)| k == ":status")
            .map(|(_, v)| v);
        if status.as_deref() != Some("200") {
            warn!(
                "{ROOT_ID}: JWKS fetch answered {}; keeping the keys already loaded",
                status.as_deref().unwrap_or("nothing")
            );
            auth.fetch_failed();
            return;
        }
        let body = host::buffer(BufferType::HttpCallResponseBody, 0, body_size).unwrap_or_default();
        match auth.install_remote_jwks(&body, now_ms) {
            Ok(n) => info!("{ROOT_ID}: loaded {n} verification keys from the remote JWKS"),
            Err(e) => {
                warn!("{ROOT_ID}: remote JWKS refused ({e}); keeping the keys already loaded")
            }
        }
    }

    fn jwks_due(&self, now_ms: u64) -> bool {
        self.auth
            .as_ref()
            .and_then(|a| a.try_borrow().ok())
            .and_then(|a| {
                let have = a.has_keys();
                a.schedule.as_ref().map(|s| s.due(now_ms, have))
            })
            .unwrap_or(false)
    }

    /// Records samples, defining each stat the first time it is seen.
    pub fn record(&self, samples: &[Sample]) {
        let mut ids = self.metric_ids.borrow_mut();
        for sample in samples {
            let id = match ids.get(&sample.name) {
                Some(id) => *id,
                None => {
                    let kind = match sample.kind {
                        MetricKind::Counter => MetricType::Counter,
                        MetricKind::Histogram => MetricType::Histogram,
                    };
                    match host::define_metric(kind, &sample.name) {
                        Ok(id) => {
                            ids.insert(sample.name.clone(), id);
                            id
                        }
                        Err(e) => {
                            warn!(
                                "{ROOT_ID}: cannot define metric {}: status {}",
                                sample.name, e.0
                            );
                            continue;
                        }
                    }
                }
            };
            let recorded = match sample.kind {
                MetricKind::Counter => {
                    host::increment_metric(id, i64::try_from(sample.value).unwrap_or(i64::MAX))
                }
                MetricKind::Histogram => host::record_metric(id, sample.value),
            };
            if let Err(e) = recorded {
                warn!(
                    "{ROOT_ID}: cannot record metric {}: status {}",
                    sample.name, e.0
                );
            }
        }
    }
}

#[derive(Default)]
pub struct Root {
    shared: Option<Rc<Shared>>,
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        _token: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        if let Some(shared) = &self.shared {
            shared.jwks_fetched(body_size, host::now_ms());
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
                let remote = config
                    .auth
                    .as_ref()
                    .is_some_and(|a| a.remote_jwks.is_some());
                self.shared = Some(Rc::new(Shared::new(config)));
                if remote {
                    // The tick drives the JWKS schedule: first fetch, period, retries.
                    self.set_tick_period(Duration::from_secs(1));
                }
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
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let now = host::now_ms();
        if shared.jwks_due(now) {
            shared.fetch_jwks(self, now);
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let shared = self.shared.clone()?;
        Some(Box::new(McpHttp::new(shared, host::now_ms())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
