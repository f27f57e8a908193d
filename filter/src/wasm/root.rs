//! Root context: parses the plugin configuration once and hands each request
//! a shared handle to it, the metric ids and the learned tool labels.

use super::host;
use super::http::McpHttp;
use super::ROOT_ID;
use crate::config::FilterConfig;
use crate::telemetry::{MetricKind, Sample, ToolLabels};
use log::{error, info, warn};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, MetricType};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// State one VM (one Envoy worker) shares across its requests. It only
/// accelerates and labels: no decision depends on it.
pub struct Shared {
    pub config: Rc<FilterConfig>,
    pub tool_labels: RefCell<ToolLabels>,
    metric_ids: RefCell<HashMap<String, u32>>,
}

impl Shared {
    fn new(config: FilterConfig) -> Self {
        let labels = ToolLabels::new(&config.metrics.tool_labels, config.metrics.max_tool_labels);
        Self {
            config: Rc::new(config),
            tool_labels: RefCell::new(labels),
            metric_ids: RefCell::new(HashMap::new()),
        }
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

impl Context for Root {}

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
                self.shared = Some(Rc::new(Shared::new(config)));
                true
            }
            Err(e) => {
                // Returning false makes Envoy refuse this plugin configuration.
                error!("{ROOT_ID}: {e}");
                false
            }
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
