//! The subset of Envoy's dynamic-modules C ABI this shell calls, declared by
//! hand (the official Rust SDK is not on crates.io, and Envoy's code is not
//! vendored). Each item binds the ABI name it is declared under in
//! `source/extensions/dynamic_modules/abi/abi.h`; every callback here is
//! checked against the symbols Envoy 1.40.0 exports (`nm -D`, see
//! `integration/tests/module.rs`). ABI version `v0.2.0`; Envoy 1.38 and
//! 1.39 (`v0.1.0`) load it with a warning, and the module refuses to start
//! there (Envoy crashed running it; `envoy_is_1_40_or_later`).
//!
//! Must not: hold logic. Enums Envoy passes in are read as `u32` (an
//! unknown value is then not undefined behaviour).
#![allow(non_camel_case_types, dead_code)]

use std::ffi::c_void;

pub type FilterConfigEnvoyPtr = *mut c_void;
pub type FilterEnvoyPtr = *mut c_void;
pub type SchedulerPtr = *mut c_void;

/// Bytes Envoy owns (valid during the call that hands them over).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyBuffer {
    pub ptr: *const u8,
    pub length: usize,
}

/// Bytes the module owns (read by Envoy during the call only).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ModuleBuffer {
    pub ptr: *const u8,
    pub length: usize,
}

impl ModuleBuffer {
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            ptr: bytes.as_ptr(),
            length: bytes.len(),
        }
    }
    /// The null buffer (`set_header` with it removes the header).
    pub fn null() -> Self {
        Self {
            ptr: std::ptr::null(),
            length: 0,
        }
    }
}

/// A header the module owns (`envoy_dynamic_module_type_module_http_header`).
#[repr(C)]
pub struct ModuleHeader {
    pub key_ptr: *const u8,
    pub key_length: usize,
    pub value_ptr: *const u8,
    pub value_length: usize,
}

/// A header Envoy owns (`envoy_dynamic_module_type_envoy_http_header`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyHeader {
    pub key_ptr: *const u8,
    pub key_length: usize,
    pub value_ptr: *const u8,
    pub value_length: usize,
}

/// `envoy_dynamic_module_type_http_header_type`.
pub const REQUEST_HEADER: u32 = 0;
pub const RESPONSE_HEADER: u32 = 2;

/// `envoy_dynamic_module_type_http_body_type`.
pub const RECEIVED_REQUEST_BODY: u32 = 0;
pub const BUFFERED_REQUEST_BODY: u32 = 1;
pub const RECEIVED_RESPONSE_BODY: u32 = 2;
pub const BUFFERED_RESPONSE_BODY: u32 = 3;

/// `envoy_dynamic_module_type_log_level`.
pub const LOG_INFO: u32 = 2;
pub const LOG_WARN: u32 = 3;
pub const LOG_ERROR: u32 = 4;

/// `envoy_dynamic_module_type_http_callout_init_result::Success`.
pub const CALLOUT_INIT_SUCCESS: u32 = 0;
/// `envoy_dynamic_module_type_http_callout_result::Success`.
pub const CALLOUT_SUCCESS: u32 = 0;
/// `envoy_dynamic_module_type_metrics_result::Success`.
pub const METRICS_SUCCESS: u32 = 0;

/// Hook statuses (`envoy_dynamic_module_type_on_http_filter_*_status`).
pub const HEADERS_CONTINUE: u32 = 0;
pub const HEADERS_STOP_ITERATION: u32 = 1;
pub const BODY_CONTINUE: u32 = 0;
pub const BODY_STOP_ITERATION_AND_BUFFER: u32 = 1;
pub const TRAILERS_CONTINUE: u32 = 0;
pub const TRAILERS_STOP_ITERATION: u32 = 1;

/// `envoy_dynamic_module_type_http_filter_stream_reset_reason::LocalReset`.
pub const RESET_LOCAL: u32 = 0;

/// `envoy_dynamic_module_callback_http_filter_config_increment_counter`
/// (Envoy 1.40; absent from 1.38), looked up when the module runs.
pub type ConfigIncrementCounter = unsafe extern "C" fn(
    config: FilterConfigEnvoyPtr,
    id: usize,
    label_values: *mut ModuleBuffer,
    label_values_length: usize,
    value: u64,
) -> u32;

extern "C" {
    /// The C library's symbol lookup (`RTLD_DEFAULT`: a null handle on
    /// glibc): callbacks only some Envoy versions export are looked up
    /// here, so the module still loads where they are missing.
    fn dlsym(handle: *mut c_void, symbol: *const std::ffi::c_char) -> *mut c_void;
}

/// Envoy's address of a symbol, null if it does not export it.
fn lookup(name: &std::ffi::CStr) -> *mut c_void {
    // SAFETY: a NUL-terminated name; a null handle is RTLD_DEFAULT.
    unsafe { dlsym(std::ptr::null_mut(), name.as_ptr()) }
}

/// Whether this Envoy speaks the whole 1.40 ABI (`v0.2.0`): it exports
/// a callback 1.40 added (1.38 and 1.39 load the module but do not).
pub fn envoy_is_1_40_or_later() -> bool {
    !lookup(c"envoy_dynamic_module_callback_http_set_dynamic_metadata_struct").is_null()
}

/// The config-level counter increment, if this Envoy exports it.
pub fn config_increment_counter() -> Option<ConfigIncrementCounter> {
    let found = lookup(c"envoy_dynamic_module_callback_http_filter_config_increment_counter");
    if found.is_null() {
        None
    } else {
        // SAFETY: Envoy's symbol of that name has this signature (abi.h).
        Some(unsafe { std::mem::transmute::<*mut c_void, ConfigIncrementCounter>(found) })
    }
}

extern "C" {
    pub fn envoy_dynamic_module_callback_http_get_headers_size(
        filter: FilterEnvoyPtr,
        header_type: u32,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_http_get_headers(
        filter: FilterEnvoyPtr,
        header_type: u32,
        result_headers: *mut EnvoyHeader,
    ) -> bool;
    /// A null `value` removes the header.
    pub fn envoy_dynamic_module_callback_http_set_header(
        filter: FilterEnvoyPtr,
        header_type: u32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_http_get_body_chunks_size(
        filter: FilterEnvoyPtr,
        body_type: u32,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_http_get_body_chunks(
        filter: FilterEnvoyPtr,
        body_type: u32,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_get_body_size(
        filter: FilterEnvoyPtr,
        body_type: u32,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_http_append_body(
        filter: FilterEnvoyPtr,
        body_type: u32,
        data: ModuleBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_drain_body(
        filter: FilterEnvoyPtr,
        body_type: u32,
        number_of_bytes: usize,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_received_buffered_request_body(
        filter: FilterEnvoyPtr,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_received_buffered_response_body(
        filter: FilterEnvoyPtr,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_http_send_response(
        filter: FilterEnvoyPtr,
        status_code: u32,
        headers: *mut ModuleHeader,
        headers_size: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );
    pub fn envoy_dynamic_module_callback_http_filter_continue_decoding(filter: FilterEnvoyPtr);
    pub fn envoy_dynamic_module_callback_http_filter_reset_stream(
        filter: FilterEnvoyPtr,
        reason: u32,
        details: ModuleBuffer,
    );

    pub fn envoy_dynamic_module_callback_http_set_filter_state_bytes(
        filter: FilterEnvoyPtr,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config: FilterConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        id: *mut usize,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_config_define_histogram(
        config: FilterConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        id: *mut usize,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter: FilterEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_record_histogram_value(
        filter: FilterEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;

    pub fn envoy_dynamic_module_callback_http_filter_http_callout(
        filter: FilterEnvoyPtr,
        callout_id: *mut u64,
        cluster_name: ModuleBuffer,
        headers: *mut ModuleHeader,
        headers_size: usize,
        body: ModuleBuffer,
        timeout_milliseconds: u64,
    ) -> u32;

    pub fn envoy_dynamic_module_callback_http_filter_scheduler_new(
        filter: FilterEnvoyPtr,
    ) -> SchedulerPtr;
    pub fn envoy_dynamic_module_callback_http_filter_scheduler_commit(
        scheduler: SchedulerPtr,
        event_id: u64,
    );
    pub fn envoy_dynamic_module_callback_http_filter_scheduler_delete(scheduler: SchedulerPtr);

    /// Makes Envoy pick the route again (request headers changed).
    pub fn envoy_dynamic_module_callback_http_clear_route_cache(filter: FilterEnvoyPtr);

    pub fn envoy_dynamic_module_callback_log(level: u32, message: ModuleBuffer);
}
