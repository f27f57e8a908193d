//! Safe wrappers over the callbacks in [`super::abi`], one per call, each
//! bound to the filter (stream) pointer Envoy handed the hook. A refused
//! call comes back as [`HostError`]: the dynamic-module ABI only says yes
//! or no, so its status is 0.
//!
//! Must not: decide anything, or keep an Envoy-owned buffer past the call
//! (everything read is copied).
#![allow(unsafe_code)]

use super::abi::{self, EnvoyBuffer, EnvoyHeader, FilterEnvoyPtr, ModuleBuffer, ModuleHeader};
use crate::shell::{Body, Headers, HostError};

fn ok(done: bool) -> Result<(), HostError> {
    if done {
        Ok(())
    } else {
        Err(HostError(0))
    }
}

/// Copies Envoy-owned bytes.
///
/// # Safety
/// `ptr` must point to `len` readable bytes (or be null).
unsafe fn copied(ptr: *const u8, len: usize) -> Vec<u8> {
    if ptr.is_null() || len == 0 {
        return Vec::new();
    }
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec()
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Headers Envoy handed over in an array (a callout's answer).
///
/// # Safety
/// `headers` must point to `count` valid headers (or be null).
pub unsafe fn header_array(headers: *const EnvoyHeader, count: usize) -> Vec<(String, String)> {
    if headers.is_null() || count == 0 {
        return Vec::new();
    }
    // SAFETY: the caller's contract.
    let headers = unsafe { std::slice::from_raw_parts(headers, count) };
    headers
        .iter()
        .map(|h| {
            // SAFETY: Envoy's header entries point to live key and value bytes.
            let (k, v) = unsafe {
                (
                    copied(h.key_ptr, h.key_length),
                    copied(h.value_ptr, h.value_length),
                )
            };
            (text(k), text(v))
        })
        .collect()
}

/// Bytes Envoy handed over as chunks (a callout's answer), concatenated.
///
/// # Safety
/// `chunks` must point to `count` valid buffers (or be null).
pub unsafe fn chunk_array(chunks: *const EnvoyBuffer, count: usize) -> Vec<u8> {
    if chunks.is_null() || count == 0 {
        return Vec::new();
    }
    // SAFETY: the caller's contract.
    let chunks = unsafe { std::slice::from_raw_parts(chunks, count) };
    let mut out = Vec::new();
    for c in chunks {
        if !c.ptr.is_null() && c.length > 0 {
            // SAFETY: Envoy's chunks point to live bytes.
            out.extend_from_slice(unsafe { std::slice::from_raw_parts(c.ptr, c.length) });
        }
    }
    out
}

fn header_type(map: Headers) -> u32 {
    match map {
        Headers::Request => abi::REQUEST_HEADER,
        Headers::Response => abi::RESPONSE_HEADER,
    }
}

/// The two buffers a body is held in: (buffered, received).
fn body_types(body: Body) -> (u32, u32) {
    match body {
        Body::Request => (abi::BUFFERED_REQUEST_BODY, abi::RECEIVED_REQUEST_BODY),
        Body::Response => (abi::BUFFERED_RESPONSE_BODY, abi::RECEIVED_RESPONSE_BODY),
    }
}

/// Module-owned headers for a call, borrowing `pairs`.
fn module_headers(pairs: &[(String, String)]) -> Vec<ModuleHeader> {
    pairs
        .iter()
        .map(|(k, v)| ModuleHeader {
            key_ptr: k.as_ptr(),
            key_length: k.len(),
            value_ptr: v.as_ptr(),
            value_length: v.len(),
        })
        .collect()
}

/// One stream's view of Envoy.
#[derive(Clone, Copy)]
pub struct Filter(pub FilterEnvoyPtr);

impl Filter {
    /// Every header of a map; `None` if Envoy has none to give (a request or
    /// response always has its pseudo-headers) or refused.
    pub fn headers(self, map: Headers) -> Option<Vec<(String, String)>> {
        let kind = header_type(map);
        // SAFETY: a live filter pointer, inside one of its hooks.
        let count =
            unsafe { abi::envoy_dynamic_module_callback_http_get_headers_size(self.0, kind) };
        if count == 0 {
            return None;
        }
        let mut out = vec![
            EnvoyHeader {
                key_ptr: std::ptr::null(),
                key_length: 0,
                value_ptr: std::ptr::null(),
                value_length: 0,
            };
            count
        ];
        // SAFETY: `out` has room for `count` entries, as the ABI requires.
        let filled = unsafe {
            abi::envoy_dynamic_module_callback_http_get_headers(self.0, kind, out.as_mut_ptr())
        };
        if !filled {
            return None;
        }
        // SAFETY: Envoy filled `count` entries.
        Some(unsafe { header_array(out.as_ptr(), count) })
    }

    pub fn set_header(self, map: Headers, name: &str, value: &str) -> Result<(), HostError> {
        // SAFETY: a live filter pointer; buffers of live slices.
        ok(unsafe {
            abi::envoy_dynamic_module_callback_http_set_header(
                self.0,
                header_type(map),
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::of(value.as_bytes()),
            )
        })
    }

    pub fn remove_header(self, map: Headers, name: &str) -> Result<(), HostError> {
        // SAFETY: as above; a null value removes the header.
        ok(unsafe {
            abi::envoy_dynamic_module_callback_http_set_header(
                self.0,
                header_type(map),
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::null(),
            )
        })
    }

    /// The chunks Envoy holds of one body buffer (pointers into Envoy's
    /// memory, valid during this hook).
    fn chunk_list(self, kind: u32) -> Vec<EnvoyBuffer> {
        // SAFETY: a live filter pointer.
        let count =
            unsafe { abi::envoy_dynamic_module_callback_http_get_body_chunks_size(self.0, kind) };
        if count == 0 {
            return Vec::new();
        }
        let mut out = vec![
            EnvoyBuffer {
                ptr: std::ptr::null(),
                length: 0
            };
            count
        ];
        // SAFETY: `out` has room for `count` chunks.
        let filled = unsafe {
            abi::envoy_dynamic_module_callback_http_get_body_chunks(self.0, kind, out.as_mut_ptr())
        };
        if filled {
            out
        } else {
            Vec::new()
        }
    }

    fn size(self, kind: u32) -> usize {
        // SAFETY: a live filter pointer.
        unsafe { abi::envoy_dynamic_module_callback_http_get_body_size(self.0, kind) }
    }

    /// Whether the chunk received now is the buffered body itself (a
    /// filter before this one buffered and resumed): then it counts once.
    fn received_is_buffered(self, body: Body) -> bool {
        // SAFETY: a live filter pointer.
        unsafe {
            match body {
                Body::Request => {
                    abi::envoy_dynamic_module_callback_http_received_buffered_request_body(self.0)
                }
                Body::Response => {
                    abi::envoy_dynamic_module_callback_http_received_buffered_response_body(self.0)
                }
            }
        }
    }

    /// Every body byte Envoy holds now: what it buffered, then the chunk
    /// received (unless that chunk is the buffer). `in_body`: called from
    /// a body hook (only then is there a received chunk).
    pub fn body_size(self, body: Body, in_body: bool) -> usize {
        let (buffered, received) = body_types(body);
        let mut size = self.size(buffered);
        if in_body && !self.received_is_buffered(body) {
            size += self.size(received);
        }
        size
    }

    /// Bytes `[start, start + len)` of what Envoy holds of a body (what it
    /// buffered, then the chunk received), copying only those: a listing
    /// held across many chunks is read once, not once per chunk. `None` if
    /// Envoy holds fewer bytes.
    pub fn body(self, body: Body, in_body: bool, start: usize, len: usize) -> Option<Vec<u8>> {
        let (buffered, received) = body_types(body);
        let mut chunks = self.chunk_list(buffered);
        if in_body && !self.received_is_buffered(body) {
            chunks.extend(self.chunk_list(received));
        }
        let mut out = Vec::with_capacity(len);
        let mut skip = start;
        for c in chunks {
            if out.len() == len {
                break;
            }
            if c.ptr.is_null() || c.length == 0 {
                continue;
            }
            if skip >= c.length {
                skip -= c.length;
                continue;
            }
            // SAFETY: Envoy's chunk points to `length` live bytes during this hook.
            let bytes = unsafe { std::slice::from_raw_parts(c.ptr, c.length) };
            let want = (len - out.len()).min(c.length - skip);
            out.extend_from_slice(bytes.get(skip..skip + want)?);
            skip = 0;
        }
        (out.len() == len).then_some(out)
    }

    /// Replaces every body byte Envoy holds with `data`.
    pub fn replace_body(self, body: Body, in_body: bool, data: &[u8]) -> Result<(), HostError> {
        let (buffered, received) = body_types(body);
        let held_buffered = self.size(buffered);
        // SAFETY: a live filter pointer; a buffer of a live slice.
        unsafe {
            if held_buffered > 0 {
                ok(abi::envoy_dynamic_module_callback_http_drain_body(
                    self.0,
                    buffered,
                    held_buffered,
                ))?;
            }
            let target = if in_body && !self.received_is_buffered(body) {
                let held = self.size(received);
                if held > 0 {
                    ok(abi::envoy_dynamic_module_callback_http_drain_body(
                        self.0, received, held,
                    ))?;
                }
                received
            } else {
                buffered
            };
            if data.is_empty() {
                return Ok(());
            }
            ok(abi::envoy_dynamic_module_callback_http_append_body(
                self.0,
                target,
                ModuleBuffer::of(data),
            ))
        }
    }

    pub fn send_response(self, status: u16, headers: &[(String, String)], body: &[u8]) {
        let mut headers = module_headers(headers);
        let details = b"mcp_filter_local_reply";
        // SAFETY: a live filter pointer; arrays and buffers of live values.
        unsafe {
            abi::envoy_dynamic_module_callback_http_send_response(
                self.0,
                u32::from(status),
                headers.as_mut_ptr(),
                headers.len(),
                ModuleBuffer::of(body),
                ModuleBuffer::of(details),
            );
        }
    }

    pub fn reset(self) {
        // SAFETY: a live filter pointer.
        unsafe {
            abi::envoy_dynamic_module_callback_http_filter_reset_stream(
                self.0,
                abi::RESET_LOCAL,
                ModuleBuffer::of(b"mcp_filter_reset"),
            );
        }
    }

    pub fn clear_route_cache(self) {
        // SAFETY: a live filter pointer, inside one of its hooks.
        unsafe { abi::envoy_dynamic_module_callback_http_clear_route_cache(self.0) }
    }

    pub fn continue_decoding(self) {
        // SAFETY: a live filter pointer, inside one of its hooks.
        unsafe { abi::envoy_dynamic_module_callback_http_filter_continue_decoding(self.0) }
    }

    pub fn set_filter_state(self, key: &str, value: &[u8]) -> Result<(), HostError> {
        // SAFETY: a live filter pointer; buffers of live slices.
        ok(unsafe {
            abi::envoy_dynamic_module_callback_http_set_filter_state_bytes(
                self.0,
                ModuleBuffer::of(key.as_bytes()),
                ModuleBuffer::of(value),
            )
        })
    }

    /// Sends a request through a cluster; its answer comes to this
    /// filter's `http_callout_done` hook with the id returned.
    pub fn callout(
        self,
        cluster: &str,
        headers: &[(String, String)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Result<u64, HostError> {
        let mut headers = module_headers(headers);
        let mut id = 0u64;
        // SAFETY: a live filter pointer; arrays and buffers of live values;
        // an out-pointer to a local.
        let result = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_http_callout(
                self.0,
                &mut id,
                ModuleBuffer::of(cluster.as_bytes()),
                headers.as_mut_ptr(),
                headers.len(),
                ModuleBuffer::of(body),
                timeout_ms,
            )
        };
        if result == abi::CALLOUT_INIT_SUCCESS {
            Ok(id)
        } else {
            Err(HostError(result))
        }
    }

    pub fn increment_counter(
        self,
        id: usize,
        labels: &[&str],
        value: u64,
    ) -> Result<(), HostError> {
        self.metric(
            abi::envoy_dynamic_module_callback_http_filter_increment_counter,
            id,
            labels,
            value,
        )
    }

    pub fn record_histogram(self, id: usize, labels: &[&str], value: u64) -> Result<(), HostError> {
        self.metric(
            abi::envoy_dynamic_module_callback_http_filter_record_histogram_value,
            id,
            labels,
            value,
        )
    }

    /// Records `value` into metric `id` with its label values through `call`.
    fn metric(
        self,
        call: unsafe extern "C" fn(FilterEnvoyPtr, usize, *mut ModuleBuffer, usize, u64) -> u32,
        id: usize,
        labels: &[&str],
        value: u64,
    ) -> Result<(), HostError> {
        let mut labels: Vec<ModuleBuffer> = labels
            .iter()
            .map(|l| ModuleBuffer::of(l.as_bytes()))
            .collect();
        // SAFETY: a live filter pointer; an array of live buffers.
        let result = unsafe { call(self.0, id, labels.as_mut_ptr(), labels.len(), value) };
        ok(result == abi::METRICS_SUCCESS).map_err(|_| HostError(result))
    }

    /// A scheduler that wakes this filter (its `scheduled` hook) from
    /// another filter's hook; deleted on drop.
    pub fn scheduler(self) -> Option<Scheduler> {
        // SAFETY: a live filter pointer, inside one of its hooks.
        let ptr = unsafe { abi::envoy_dynamic_module_callback_http_filter_scheduler_new(self.0) };
        (!ptr.is_null()).then_some(Scheduler(ptr))
    }
}

/// A filter's scheduler (`envoy_dynamic_module_callback_http_filter_scheduler_*`).
pub struct Scheduler(abi::SchedulerPtr);

impl Scheduler {
    /// Asks Envoy to run the filter's `scheduled` hook (a no-op once the
    /// filter is gone).
    pub fn wake(&self, event: u64) {
        // SAFETY: a scheduler not yet deleted.
        unsafe { abi::envoy_dynamic_module_callback_http_filter_scheduler_commit(self.0, event) }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        // SAFETY: deleted exactly once, here.
        unsafe { abi::envoy_dynamic_module_callback_http_filter_scheduler_delete(self.0) }
    }
}

/// Writes a line to Envoy's log (`dynamic_modules` logger).
pub fn log(level: u32, message: &str) {
    // SAFETY: a buffer of a live slice, read during the call.
    unsafe { abi::envoy_dynamic_module_callback_log(level, ModuleBuffer::of(message.as_bytes())) }
}
