//! The Envoy dynamic-module shell (`libmcp_filter.so`): Envoy's C ABI
//! hooks translated to [`crate::shell::Stream`], as `wasm/` does for
//! proxy-wasm. The same crate, built for the native target with the
//! `module` feature: one core, one configuration, two artifacts.
//!
//! Fail closed: a configuration that does not parse, or asks for what this
//! shell cannot do (claims from `jwt_authn`'s metadata, which the ABI cannot
//! read whole; `backends` on Envoy before 1.40), is refused at load, naming
//! the field. A hook that panics
//! (the module is built to unwind, never to abort Envoy) answers its
//! request 500 and leaves it ended; a worker that cannot build its state
//! closes the stream. Nothing goes on unjudged.
//!
//! Must not: decide anything about a request, or let a panic cross the ABI.
#![allow(unsafe_code)]

mod abi;
mod filter;
mod host;
mod worker;

use abi::{EnvoyBuffer, EnvoyHeader, FilterConfigEnvoyPtr, FilterEnvoyPtr, ModuleBuffer};
use filter::{body_status, headers_status, new_stream, trailers_status, McpFilter};
use host::Filter;
use std::ffi::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use worker::Worker;

use crate::auth::ClaimsSource;
use crate::config::FilterConfig;
use crate::shell::Body;
use crate::telemetry::{self, MetricKind};

/// The ABI version this module was built against (Envoy 1.40).
const ABI_VERSION: &[u8] = b"v0.2.0\0";

/// A filter configuration, shared by every worker (read-only).
pub struct ModuleConfig {
    id: u64,
    /// The configuration JSON, parsed again by each worker.
    json: Vec<u8>,
    /// Each metric of [`telemetry::METRICS`], as Envoy numbered it.
    metric_ids: Vec<Option<usize>>,
    /// The counters known at load were zeroed at configuration time.
    zeroed_at_load: bool,
}

/// The metric (index in [`telemetry::METRICS`]) and label values a stat
/// name records into.
fn resolve(name: &str) -> Option<(usize, Vec<String>)> {
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

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// # Safety
/// `buffer` must point to `length` readable bytes (or be null).
unsafe fn envoy_bytes(buffer: EnvoyBuffer) -> Vec<u8> {
    if buffer.ptr.is_null() || buffer.length == 0 {
        return Vec::new();
    }
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts(buffer.ptr, buffer.length) }.to_vec()
}

fn error(message: &str) {
    host::log(abi::LOG_ERROR, &format!("mcp_filter: {message}"));
}

/// Parses and checks a configuration; the error names the field.
fn load(json: &[u8]) -> Result<FilterConfig, String> {
    let config = FilterConfig::from_json(json).map_err(|e| e.to_string())?;
    if let Some(auth) = &config.auth {
        if matches!(auth.source, ClaimsSource::JwtAuthn { .. }) {
            return Err(
                "auth.claims_from: jwt_authn metadata cannot be read by the dynamic \
                        module (its ABI reads metadata values, not the claims struct): \
                        verify bearer tokens in the filter, or use mcp_filter.wasm"
                    .into(),
            );
        }
    }
    if config.backends.is_some() && !abi::envoy_is_1_40_or_later() {
        return Err(
            "backends: the dynamic module relays calls and gathers listings only on \
                    Envoy 1.40 or later (1.38 and 1.39 crash answering a request from an HTTP \
                    callout's answer): run Envoy 1.40, or mcp_filter.wasm"
                .into(),
        );
    }
    Ok(config)
}

fn define_metrics(envoy: FilterConfigEnvoyPtr) -> Vec<Option<usize>> {
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
fn zero_series_at_load(
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

/// Runs a hook body; a panic becomes `fallback` (never unwinds into Envoy).
fn guarded<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// # Safety
/// `module` must be a pointer `on_http_filter_new` returned, not destroyed.
unsafe fn filter_of<'a>(module: *const c_void) -> Option<&'a McpFilter> {
    // SAFETY: the caller's contract.
    unsafe { module.cast::<McpFilter>().as_ref() }
}

/// Runs a stream hook: `f` on the stream, `stopped` if the stream is broken
/// or busy; a panic answers the request 500 and breaks the stream.
fn on_stream(
    module: *const c_void,
    in_body: bool,
    stopped: u32,
    f: impl FnOnce(&mut filter::ModuleStream) -> u32,
) -> u32 {
    // SAFETY: Envoy hands back the pointer `on_http_filter_new` returned.
    let Some(mcp) = (unsafe { filter_of(module) }) else {
        return stopped;
    };
    if mcp.broken.get() {
        return stopped;
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let Ok(mut stream) = mcp.stream.try_borrow_mut() else {
            return None;
        };
        stream.host.in_body = in_body;
        let status = f(&mut stream);
        stream.host.in_body = false;
        if std::mem::take(&mut stream.host.route_dirty) {
            stream.host.filter.clear_route_cache();
        }
        Some(status)
    }));
    if mcp.complete_pending.take() {
        complete(mcp);
    }
    match outcome {
        Ok(Some(status)) => status,
        Ok(None) | Err(_) => {
            mcp.broken.set(true);
            error("a hook failed; the request ends here (500)");
            if let Ok(stream) = mcp.stream.try_borrow() {
                let reply = crate::shell::steps::host_failure_reply(None);
                stream
                    .host
                    .filter
                    .send_response(reply.status, &reply.headers, &reply.body);
            }
            stopped
        }
    }
}

/// The stream is over for Envoy: its samples are recorded (or, when it
/// completed inside another of its hooks, once that hook returns).
fn complete(mcp: &McpFilter) {
    if mcp.broken.get() {
        return;
    }
    let logged = catch_unwind(AssertUnwindSafe(|| match mcp.stream.try_borrow_mut() {
        Ok(mut stream) => {
            stream.log();
            true
        }
        Err(_) => false,
    }));
    if matches!(logged, Ok(false)) {
        mcp.complete_pending.set(true);
    }
}

#[cfg(not(test))]
mod hooks {
    //! The symbols Envoy looks up (`envoy_dynamic_module_on_*`); Envoy 1.40
    //! refuses a filter configuration unless every HTTP-filter hook is
    //! exported, the ones this filter has no use for included.
    use super::*;

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
        ABI_VERSION.as_ptr().cast()
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
        envoy: FilterConfigEnvoyPtr,
        _name: EnvoyBuffer,
        config: EnvoyBuffer,
    ) -> *const c_void {
        guarded(std::ptr::null(), || {
            // SAFETY: Envoy's buffer, valid during this call.
            let json = unsafe { envoy_bytes(config) };
            let parsed = match load(&json) {
                Ok(c) => c,
                Err(e) => {
                    error(&e);
                    return std::ptr::null();
                }
            };
            host::log(
                abi::LOG_INFO,
                &format!(
                    "mcp_filter: configured (dynamic module; routing headers {}, batches {}, max request {} bytes)",
                    if parsed.routing_headers.enabled { "on" } else { "off" },
                    if parsed.allow_batches { "allowed" } else { "refused" },
                    parsed.max_request_bytes
                ),
            );
            for warning in &parsed.warnings {
                host::log(
                    abi::LOG_WARN,
                    &format!("mcp_filter: configuration warning: {warning}"),
                );
            }
            let metric_ids = define_metrics(envoy);
            let zeroed_at_load = zero_series_at_load(envoy, &parsed, &metric_ids);
            let module = Arc::new(ModuleConfig {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                json,
                metric_ids,
                zeroed_at_load,
            });
            Arc::into_raw(module).cast()
        })
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: *const c_void) {
        guarded((), || {
            if !config.is_null() {
                // SAFETY: the pointer `config_new` made with Arc::into_raw, once.
                drop(unsafe { Arc::from_raw(config.cast::<ModuleConfig>()) });
            }
        })
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(
        _name: EnvoyBuffer,
        _config: EnvoyBuffer,
    ) -> *const c_void {
        error("per-route configuration is not supported: configure the filter on the listener");
        std::ptr::null()
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_destroy(
        _config: *const c_void,
    ) {
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
        config: *const c_void,
        envoy: FilterEnvoyPtr,
    ) -> *const c_void {
        guarded(std::ptr::null(), || {
            if config.is_null() {
                return std::ptr::null();
            }
            // SAFETY: `config_new`'s pointer, alive while Envoy makes filters
            // from it; the count taken here is given back below.
            let module = unsafe {
                Arc::increment_strong_count(config.cast::<ModuleConfig>());
                Arc::from_raw(config.cast::<ModuleConfig>())
            };
            let Some(worker) = Worker::for_config(&module) else {
                error("the configuration could not be built on this worker; the stream is closed");
                return std::ptr::null();
            };
            let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
            let mcp = Box::new(McpFilter {
                stream: std::cell::RefCell::new(new_stream(Filter(envoy), worker, id)),
                broken: std::cell::Cell::new(false),
                complete_pending: std::cell::Cell::new(false),
            });
            Box::into_raw(mcp).cast()
        })
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
        _envoy: FilterEnvoyPtr,
        module: *const c_void,
        end_of_stream: bool,
    ) -> u32 {
        on_stream(module, false, abi::HEADERS_STOP_ITERATION, |s| {
            #[cfg(feature = "fault-injection")]
            #[allow(clippy::panic)]
            if s.host
                .filter
                .headers(crate::shell::Headers::Request)
                .iter()
                .any(|(k, v)| k == "x-mcp-filter-fault" && v == "panic")
            {
                panic!("fault injected (x-mcp-filter-fault: panic)");
            }
            if let Some(now) = filter::now_ms() {
                let (worker, filter, id) = (s.host.worker.clone(), s.host.filter, s.host.id);
                worker.refresh_if_due(filter, id, now);
            }
            headers_status(s.request_headers(end_of_stream))
        })
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
        _envoy: FilterEnvoyPtr,
        module: *const c_void,
        end_of_stream: bool,
    ) -> u32 {
        on_stream(module, true, abi::BODY_STOP_ITERATION_AND_BUFFER, |s| {
            let held = s.host.filter.body_size(Body::Request, true);
            body_status(s.request_body(held, end_of_stream))
        })
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
        _envoy: FilterEnvoyPtr,
        module: *const c_void,
    ) -> u32 {
        on_stream(module, false, abi::TRAILERS_STOP_ITERATION, |s| {
            trailers_status(s.request_trailers())
        })
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
        _envoy: FilterEnvoyPtr,
        module: *const c_void,
        _end_of_stream: bool,
    ) -> u32 {
        // A broken stream's own 500 passes.
        on_stream(module, false, abi::HEADERS_CONTINUE, |s| {
            headers_status(s.response_headers())
        })
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
        _envoy: FilterEnvoyPtr,
        module: *const c_void,
        end_of_stream: bool,
    ) -> u32 {
        on_stream(module, true, abi::BODY_CONTINUE, |s| {
            let held = s.host.filter.body_size(Body::Response, true);
            body_status(s.response_body(held, end_of_stream))
        })
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
        _envoy: FilterEnvoyPtr,
        module: *const c_void,
    ) -> u32 {
        on_stream(module, false, abi::TRAILERS_CONTINUE, |s| {
            trailers_status(s.response_trailers())
        })
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
        _envoy: FilterEnvoyPtr,
        module: *const c_void,
    ) {
        // SAFETY: Envoy hands back the pointer `on_http_filter_new` returned.
        if let Some(mcp) = unsafe { filter_of(module) } {
            complete(mcp);
        }
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(module: *const c_void) {
        guarded((), || {
            if module.is_null() {
                return;
            }
            // SAFETY: the pointer `filter_new` made with Box::into_raw, once.
            let mcp = unsafe { Box::from_raw(module.cast::<McpFilter>().cast_mut()) };
            if let Ok(mut stream) = mcp.stream.try_borrow_mut() {
                stream.end();
                let worker = stream.host.worker.clone();
                if worker.fetched_by(stream.host.id) {
                    // Envoy cancels this filter's calls: nobody else would
                    // ever hear of the fetch.
                    worker.fetch_abandoned();
                }
            };
        })
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
        _envoy: FilterEnvoyPtr,
        module: *const c_void,
        callout_id: u64,
        result: u32,
        headers: *mut EnvoyHeader,
        headers_size: usize,
        body_chunks: *mut EnvoyBuffer,
        body_chunks_size: usize,
    ) {
        on_stream(module, false, 0, |s| {
            // SAFETY: Envoy's arrays, valid during this call.
            let (headers, body) = if result == abi::CALLOUT_SUCCESS {
                unsafe {
                    (
                        host::header_array(headers, headers_size),
                        host::chunk_array(body_chunks, body_chunks_size),
                    )
                }
            } else {
                (Vec::new(), Vec::new())
            };
            let worker = s.host.worker.clone();
            if worker.is_jwks_call(callout_id) {
                let status = headers
                    .iter()
                    .find(|(k, _)| k == ":status")
                    .map(|(_, v)| v.as_str());
                worker.jwks_answered(status, &body, filter::now_ms().unwrap_or_default());
            } else {
                s.call_answered(callout_id, &headers, &body);
            }
            0
        });
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
        _envoy: FilterEnvoyPtr,
        module: *const c_void,
        event_id: u64,
    ) {
        on_stream(module, false, 0, |s| {
            if event_id == worker::KEYS_READY {
                s.woken();
            }
            0
        });
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
        _envoy: FilterEnvoyPtr,
        _module: *const c_void,
        _stream_id: u64,
        _headers: *mut EnvoyHeader,
        _headers_size: usize,
        _end_stream: bool,
    ) {
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
        _envoy: FilterEnvoyPtr,
        _module: *const c_void,
        _stream_id: u64,
        _data: *const EnvoyBuffer,
        _data_count: usize,
        _end_stream: bool,
    ) {
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
        _envoy: FilterEnvoyPtr,
        _module: *const c_void,
        _stream_id: u64,
        _trailers: *mut EnvoyHeader,
        _trailers_size: usize,
    ) {
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
        _envoy: FilterEnvoyPtr,
        _module: *const c_void,
        _stream_id: u64,
    ) {
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
        _envoy: FilterEnvoyPtr,
        _module: *const c_void,
        _stream_id: u64,
        _reason: u32,
    ) {
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
        _envoy: FilterConfigEnvoyPtr,
        _config: *const c_void,
        _event_id: u64,
    ) {
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
        _envoy: FilterConfigEnvoyPtr,
        _config: *const c_void,
        _callout_id: u64,
        _result: u32,
        _headers: *mut EnvoyHeader,
        _headers_size: usize,
        _body_chunks: *mut EnvoyBuffer,
        _body_chunks_size: usize,
    ) {
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_headers(
        _envoy: FilterConfigEnvoyPtr,
        _config: *const c_void,
        _stream_id: u64,
        _headers: *mut EnvoyHeader,
        _headers_size: usize,
        _end_stream: bool,
    ) {
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_data(
        _envoy: FilterConfigEnvoyPtr,
        _config: *const c_void,
        _stream_id: u64,
        _data: *const EnvoyBuffer,
        _data_count: usize,
        _end_stream: bool,
    ) {
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_trailers(
        _envoy: FilterConfigEnvoyPtr,
        _config: *const c_void,
        _stream_id: u64,
        _trailers: *mut EnvoyHeader,
        _trailers_size: usize,
    ) {
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_complete(
        _envoy: FilterConfigEnvoyPtr,
        _config: *const c_void,
        _stream_id: u64,
    ) {
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_reset(
        _envoy: FilterConfigEnvoyPtr,
        _config: *const c_void,
        _stream_id: u64,
        _reason: u32,
    ) {
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
        _envoy: FilterEnvoyPtr,
        _module: *const c_void,
    ) {
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
        _envoy: FilterEnvoyPtr,
        _module: *const c_void,
    ) {
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_on_http_filter_local_reply(
        _envoy: FilterEnvoyPtr,
        _module: *const c_void,
        _response_code: u32,
        _details: EnvoyBuffer,
        _reset_imminent: bool,
    ) -> u32 {
        0
    }
}
