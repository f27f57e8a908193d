//! The Envoy host calls the shell makes, declared against the proxy-wasm
//! ABI directly so that a refusal comes back as an error value. The SDK's
//! wrappers `panic!` on any unexpected status (and its logger and trait
//! defaults `unwrap`), and a panic traps the VM for every later request on
//! the worker. This is the only `unsafe` in the crate, and the only place
//! the SDK's host calls are named (`clippy.toml` bans them elsewhere).
//!
//! Fail closed: a refused call is an error value the caller must handle
//! ([`super::steps`] decides what a refused edit means); a failed clock read
//! is `None`, never a made-up time.
#![allow(unsafe_code, clashing_extern_declarations)]

pub use crate::shell::HostError;
use proxy_wasm::types::{BufferType, MapType, MetricType};
use std::ptr::{null, null_mut};
use std::time::Duration;

const OK: u32 = 0;

fn check(status: u32) -> Result<(), HostError> {
    if status == OK {
        Ok(())
    } else {
        Err(HostError(status))
    }
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(map_type: u32, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key: *const u8, key_size: usize) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        details: *const u8,
        details_size: usize,
        body: *const u8,
        body_size: usize,
        headers: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_set_property(
        path: *const u8,
        path_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_get_current_time_nanoseconds(time: *mut u64) -> u32;
    fn proxy_set_buffer_bytes(
        buffer_type: u32,
        start: usize,
        size: usize,
        data: *const u8,
        data_size: usize,
    ) -> u32;
    fn proxy_continue_stream(stream_type: u32) -> u32;
    fn proxy_get_property(
        path: *const u8,
        path_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name: *const u8,
        name_size: usize,
        id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(id: u32, offset: i64) -> u32;
    fn proxy_record_metric(id: u32, value: u64) -> u32;
    fn proxy_log(level: u32, message: *const u8, message_size: usize) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_close_stream(stream_type: u32) -> u32;
}

/// Takes ownership of bytes the host allocated through our allocator export.
fn owned(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() || size == 0 {
        return Vec::new();
    }
    // SAFETY: the host filled `data` via `proxy_on_memory_allocate` (the
    // SDK's allocator, a `Vec<u8>` of capacity `size`), and hands it to us.
    unsafe { Vec::from_raw_parts(data, size, size) }
}

/// All headers of a map; values that are not UTF-8 are converted lossily.
/// `None` if the host refused the read or its answer does not decode (never
/// a partial list: a header the filter did not see could be the one that
/// matters).
pub fn headers(map: MapType) -> Option<Vec<(String, String)>> {
    let mut data = null_mut();
    let mut size = 0;
    // SAFETY: out-pointers to locals, as the ABI requires.
    let status = unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut size) };
    if status != OK {
        return None;
    }
    decode_pairs(&owned(data, size))
}

/// The proxy-wasm map encoding: count, (key len, value len)*, then each key
/// and value followed by a NUL.
fn decode_pairs(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    let u32_at = |at: usize| -> Option<usize> {
        let word: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(u32::from_le_bytes(word) as usize)
    };
    let count = u32_at(0)?;
    let mut pairs = Vec::with_capacity(count.min(256));
    let mut data = count.checked_mul(8)?.checked_add(4)?;
    for i in 0..count {
        let (k, v) = (u32_at(4 + i * 8)?, u32_at(8 + i * 8)?);
        let key_end = data.checked_add(k)?;
        let value_end = key_end.checked_add(1)?.checked_add(v)?;
        let key = bytes.get(data..key_end)?;
        let value = bytes.get(key_end + 1..value_end)?;
        pairs.push((
            String::from_utf8_lossy(key).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
        data = value_end.checked_add(1)?;
    }
    Some(pairs)
}

fn encode_pairs(pairs: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

pub fn set_header(map: MapType, name: &str, value: &str) -> Result<(), HostError> {
    // SAFETY: pointers and lengths of live slices.
    check(unsafe {
        proxy_replace_header_map_value(
            map as u32,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

pub fn remove_header(map: MapType, name: &str) -> Result<(), HostError> {
    // SAFETY: pointer and length of a live slice.
    check(unsafe { proxy_remove_header_map_value(map as u32, name.as_ptr(), name.len()) })
}

/// Bytes `[start, start + max)` of a buffer, `None` if the host has none.
pub fn buffer(kind: BufferType, start: usize, max: usize) -> Option<Vec<u8>> {
    let mut data = null_mut();
    let mut size = 0;
    // SAFETY: out-pointers to locals.
    let status = unsafe { proxy_get_buffer_bytes(kind as u32, start, max, &mut data, &mut size) };
    (status == OK).then(|| owned(data, size))
}

pub fn send_local_response(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    details: &str,
) -> Result<(), HostError> {
    let headers = encode_pairs(headers);
    // SAFETY: pointers and lengths of live slices; -1: not a gRPC status.
    check(unsafe {
        proxy_send_local_response(
            u32::from(status),
            details.as_ptr(),
            details.len(),
            if body.is_empty() {
                null()
            } else {
                body.as_ptr()
            },
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        )
    })
}

/// Sets a filter-state property (Envoy stores it as `wasm.<name>`).
pub fn set_property(name: &str, value: &[u8]) -> Result<(), HostError> {
    // A property path is its segments joined by NUL; ours have one segment.
    // SAFETY: pointers and lengths of live slices.
    check(unsafe { proxy_set_property(name.as_ptr(), name.len(), value.as_ptr(), value.len()) })
}

/// Replaces bytes `[start, start + size)` of a buffer with `data`.
pub fn set_buffer(
    kind: BufferType,
    start: usize,
    size: usize,
    data: &[u8],
) -> Result<(), HostError> {
    // SAFETY: pointer and length of a live slice.
    check(unsafe { proxy_set_buffer_bytes(kind as u32, start, size, data.as_ptr(), data.len()) })
}

/// Lets a paused request go on (`StreamType::HttpRequest` is 0).
pub fn resume_request() -> Result<(), HostError> {
    // SAFETY: a plain value.
    check(unsafe { proxy_continue_stream(0) })
}

/// A property by path segments (e.g. `metadata`, `filter_metadata`, namespace).
pub fn property(path: &[&str]) -> Option<Vec<u8>> {
    let joined = path.join("\0");
    let mut data = null_mut();
    let mut size = 0;
    // SAFETY: pointer and length of a live slice, out-pointers to locals.
    let status = unsafe { proxy_get_property(joined.as_ptr(), joined.len(), &mut data, &mut size) };
    (status == OK).then(|| owned(data, size))
}

/// Envoy's clock, in Unix milliseconds; `None` if it cannot be read (then
/// nothing time-bound may be accepted).
pub fn now_ms() -> Option<u64> {
    let mut nanos = 0u64;
    // SAFETY: out-pointer to a local.
    let status = unsafe { proxy_get_current_time_nanoseconds(&mut nanos) };
    (status == OK && nanos > 0).then_some(nanos / 1_000_000)
}

/// Resets the current HTTP stream (`StreamType::HttpRequest` is 0): the
/// last resort when a local reply is refused.
pub fn reset_stream() -> Result<(), HostError> {
    // SAFETY: a plain value.
    check(unsafe { proxy_close_stream(0) })
}

/// Sets the root context's tick period (from any of its contexts).
pub fn set_tick_period(period: Duration) -> Result<(), HostError> {
    let ms = u32::try_from(period.as_millis()).unwrap_or(u32::MAX);
    // SAFETY: a plain value.
    check(unsafe { proxy_set_tick_period_milliseconds(ms) })
}

/// Makes later host calls of this callback act on another context (a
/// request woken from the root context).
pub fn set_effective_context(context_id: u32) -> Result<(), HostError> {
    // SAFETY: a plain value.
    check(unsafe { proxy_set_effective_context(context_id) })
}

/// Writes a log line at a proxy-wasm level (0 trace .. 5 critical); a
/// refusal is dropped (there is nowhere else to say it).
pub fn log(level: u32, message: &str) {
    // SAFETY: pointer and length of a live slice.
    let _ = unsafe { proxy_log(level, message.as_ptr(), message.len()) };
}

/// Sends an HTTP request through an Envoy cluster; the answer comes to the
/// `on_http_call_response` of the context active now (the root context in
/// its own callbacks, else the request's).
///
/// The one SDK call left: only it registers the call with the SDK's
/// dispatcher, which panics on an answer whose token it does not know. It
/// panics itself on a status other than Ok, BadArgument, InternalFailure;
/// Envoy's `httpCall` returns only those, and the host's `http_call` adds
/// InvalidMemoryAccess, for guest memory it cannot read (ours is live).
#[allow(clippy::disallowed_methods)]
pub fn http_call(
    cluster: &str,
    headers: Vec<(&str, &str)>,
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<u32, HostError> {
    proxy_wasm::hostcalls::dispatch_http_call(cluster, headers, body, vec![], timeout)
        .map_err(|status| HostError(status as u32))
}

pub fn define_metric(kind: MetricType, name: &str) -> Result<u32, HostError> {
    let mut id = 0;
    // SAFETY: pointer and length of a live slice, out-pointer to a local.
    check(unsafe { proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn increment_metric(id: u32, offset: i64) -> Result<(), HostError> {
    // SAFETY: plain values.
    check(unsafe { proxy_increment_metric(id, offset) })
}

pub fn record_metric(id: u32, value: u64) -> Result<(), HostError> {
    // SAFETY: plain values.
    check(unsafe { proxy_record_metric(id, value) })
}
