//! The worker's Envoy stats: series defined up front (those the
//! configuration knows) and samples recorded, each stat defined the first
//! time it is seen, within `metrics.max_series` (past it a new series folds
//! into its metric's `_other` one).
//!
//! Must not: make up a label value (the core bounds them), or let a host
//! call that fails stop the request (it is logged and skipped).

use super::Shared;
use crate::telemetry::{MetricKind, Sample};
use crate::wasm::host;
use crate::wasm::ROOT_ID;
use log::warn;
use proxy_wasm::types::MetricType;

impl Shared {
    /// Defines series up front (those known when the configuration loads),
    /// within `metrics.max_series`.
    pub fn define(&self, series: &[(MetricKind, String)]) {
        let Ok(mut ids) = self.metric_ids.try_borrow_mut() else {
            return;
        };
        let max = self.config.metrics.max_series;
        for (kind, name) in series {
            if ids.len() >= max {
                break;
            }
            let kind = match kind {
                MetricKind::Counter => MetricType::Counter,
                MetricKind::Histogram => MetricType::Histogram,
            };
            match host::define_metric(kind, name) {
                Ok(id) => {
                    ids.insert(name.clone(), id);
                }
                Err(e) => warn!("{ROOT_ID}: cannot define metric {name}: status {}", e.0),
            }
        }
    }

    /// Records samples, defining each stat the first time it is seen.
    pub fn record(&self, samples: &[Sample]) {
        let Ok(mut ids) = self.metric_ids.try_borrow_mut() else {
            return;
        };
        let max = self.config.metrics.max_series;
        for sample in samples {
            // Past the bound, a new series folds into its metric's `_other` one.
            let folded;
            let name: &str = if ids.len() < max || ids.contains_key(&*sample.name) {
                &sample.name
            } else {
                folded = crate::telemetry::folded_series(&sample.name);
                &folded
            };
            let id = match ids.get(name) {
                Some(id) => *id,
                None => {
                    let kind = match sample.kind {
                        MetricKind::Counter => MetricType::Counter,
                        MetricKind::Histogram => MetricType::Histogram,
                    };
                    match host::define_metric(kind, name) {
                        Ok(id) => {
                            ids.insert(name.to_string(), id);
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
