//! A filter configuration as the module loads it on Envoy's main thread:
//! parsed and checked (what this shell cannot do is refused, naming the
//! field), its metrics defined with their label names, the series known at
//! load given their zero.
//!
//! Must not: touch a stream, or keep anything Envoy owns past the hook.

use super::abi::{self, FilterConfigEnvoyPtr, ModuleBuffer};
use super::error;
use crate::auth::ClaimsSource;
use crate::config::FilterConfig;
use crate::telemetry::{self, MetricKind};

/// The metric (index in [`telemetry::METRICS`]) and label values a stat
/// name records into.
pub fn resolve(name: &str) -> Option<(usize, Vec<String>)> {
    let (base, labels) = telemetry::split_stat_name(name);
    let index = telemetry::METRICS.iter().position(|(m, _, _)| *m == base)?;
    let (_, _, keys) = telemetry::METRICS.get(index)?;
    let values = keys
        .iter()
        .map(|key| {
            labels
                .iter()
                .find(|(k, _)| k == key)
                .map_or(String::new(), |(_, v)| (*v).to_string())
        })
        .collect();
    Some((index, values))
}

/// Parses and checks a configuration; the error names the field.
pub fn load(json: &[u8]) -> Result<FilterConfig, String> {
    let config = FilterConfig::from_json(json).map_err(|e| e.to_string())?;
    if let Some(auth) = &config.auth {
        if matches!(auth.source, ClaimsSource::JwtAuthn { .. }) {
            return Err(
                "auth.source: jwt_authn metadata cannot be read by the dynamic \
                        module (its ABI reads metadata values, not the claims struct): \
                        verify bearer tokens in the filter, or use mcp_filter.wasm"
                    .into(),
            );
        }
    }
    Ok(config)
}

pub fn define_metrics(envoy: FilterConfigEnvoyPtr) -> Vec<Option<usize>> {
    telemetry::METRICS
        .iter()
        .map(|(name, kind, keys)| {
            let mut labels: Vec<ModuleBuffer> = keys
                .iter()
                .map(|k| ModuleBuffer::of(k.as_bytes()))
                .collect();
            let mut id = 0usize;
            // SAFETY: the config pointer of the hook running now; buffers of
            // live slices; an out-pointer to a local.
            let result = unsafe {
                let define = match kind {
                    MetricKind::Counter => {
                        abi::envoy_dynamic_module_callback_http_filter_config_define_counter
                    }
                    MetricKind::Histogram => {
                        abi::envoy_dynamic_module_callback_http_filter_config_define_histogram
                    }
                };
                define(
                    envoy,
                    ModuleBuffer::of(name.as_bytes()),
                    labels.as_mut_ptr(),
                    labels.len(),
                    &mut id,
                )
            };
            if result == abi::METRICS_SUCCESS {
                Some(id)
            } else {
                error(&format!("cannot define metric {name}: status {result}"));
                None
            }
        })
        .collect()
}

/// The counters known at load (within `metrics.max_series`), each with
/// its zero: a scrape shows them before traffic does, as the wasm's do.
pub fn zeros_at_load(config: &FilterConfig) -> Vec<crate::telemetry::Sample> {
    crate::exchange::series_at_load(config)
        .into_iter()
        .filter(|(kind, _)| *kind == MetricKind::Counter)
        .take(config.metrics.max_series)
        .map(|(kind, name)| crate::telemetry::Sample {
            kind,
            name: name.into(),
            value: 0,
        })
        .collect()
}

/// Gives the counters known at load their zero from the main thread (Envoy
/// keeps one store for every worker). False where this Envoy cannot (1.38,
/// 1.39): each worker then does it through its first stream.
pub fn zero_series_at_load(
    envoy: FilterConfigEnvoyPtr,
    config: &FilterConfig,
    ids: &[Option<usize>],
) -> bool {
    let Some(increment) = abi::config_increment_counter() else {
        return false;
    };
    for sample in zeros_at_load(config) {
        let name = &sample.name;
        let Some((metric, values)) = resolve(name) else {
            continue;
        };
        let Some(id) = ids.get(metric).copied().flatten() else {
            continue;
        };
        let mut values: Vec<ModuleBuffer> = values
            .iter()
            .map(|v| ModuleBuffer::of(v.as_bytes()))
            .collect();
        // SAFETY: the config pointer of the hook running now; an array of
        // live buffers.
        let result = unsafe { increment(envoy, id, values.as_mut_ptr(), values.len(), 0) };
        if result != abi::METRICS_SUCCESS {
            error(&format!("cannot define metric {name}: status {result}"));
        }
    }
    true
}
