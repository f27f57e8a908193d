//! The symbols Envoy looks up (`envoy_dynamic_module_on_*`), each a thin
//! translation to the stream, its worker or the configuration. Envoy 1.40
//! refuses a filter configuration unless every HTTP-filter hook is
//! exported, the ones this filter has no use for included.
//!
//! Must not: let a panic cross into Envoy (each body runs guarded), or
//! decide anything about a request.
use super::config::{define_metrics, load, zero_series_at_load};
use super::*;
use crate::shell::StreamHost;

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    // Envoy 1.38 and 1.39 load a module built for 1.40's ABI, but crashed
    // (segmentation faults) in this suite's path and relay tests: refuse to
    // load there rather than run.
    if !abi::envoy_is_1_40_or_later() {
        error(
            "this module needs Envoy 1.40 (it is built against ABI v0.2.0; Envoy 1.38 and 1.39 \
             crashed running it): upgrade Envoy, or use mcp_filter.wasm",
        );
        return std::ptr::null();
    }
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
            error(
                "the configuration could not be built on this worker; the request is answered 500",
            );
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
    envoy: FilterEnvoyPtr,
    module: *const c_void,
    end_of_stream: bool,
) -> u32 {
    if module.is_null() {
        // No filter could be made for this stream (`on_http_filter_new`
        // logged why): it is answered now rather than left to time out.
        guarded((), || {
            let reply = crate::shell::steps::host_failure_reply(None);
            Filter(envoy).send_response(reply.status, &reply.headers, &reply.body);
        });
        return abi::HEADERS_STOP_ITERATION;
    }
    on_stream(module, false, abi::HEADERS_STOP_ITERATION, |s| {
        #[cfg(feature = "fault-injection")]
        #[allow(clippy::panic)]
        if s.host
            .filter
            .headers(crate::shell::Headers::Request)
            .unwrap_or_default()
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
        if worker.is_jwks_call(s.host.id, callout_id) {
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
        } else if event_id == worker::KEYS_RETRY && !s.host.wait_for_keys() {
            // No fetch can be sent: judged with the keys there are.
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
