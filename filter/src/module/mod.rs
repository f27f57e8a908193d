//! The Envoy dynamic-module shell (`libmcp_filter.so`): Envoy's C ABI
//! hooks translated to [`crate::shell::Stream`], as `wasm/` does for
//! proxy-wasm. The same crate, built for the native target with the
//! `module` feature: one core, one configuration, two artifacts.
//!
//! Fail closed: the module refuses to load on an Envoy before 1.40 (1.38
//! and 1.39 load a 1.40 module, and crashed running it); a configuration
//! that does not parse, or asks for what this shell cannot do (claims from
//! `jwt_authn`'s metadata, which the ABI cannot read whole), is refused at
//! load, naming the field. A hook that panics (the module is built to unwind, never to
//! abort Envoy) answers its request 500 and leaves it ended; a worker that
//! cannot build its state closes the stream. Nothing goes on unjudged.
//!
//! Layout: `abi` (the declarations), `host` (safe wrappers), `config`
//! (loading on the main thread), `worker` (per-thread state), `filter`
//! (one stream), `hooks` (the exported symbols).
//!
//! Must not: decide anything about a request, or let a panic cross the ABI.
#![allow(unsafe_code)]

mod abi;
mod config;
mod filter;
mod host;
mod worker;

use abi::{EnvoyBuffer, EnvoyHeader, FilterConfigEnvoyPtr, FilterEnvoyPtr};
use filter::{body_status, headers_status, new_stream, trailers_status, McpFilter};
use host::Filter;
use std::ffi::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use worker::Worker;

use crate::shell::Body;

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
mod hooks;
