//! mcp-filter: an MCP (Model Context Protocol) gateway inside Envoy.
//!
//! Everything at this level is the pure core: plain Rust, no proxy-wasm types,
//! tested natively and under WASI. `wasm/` is the thin shell that moves
//! headers and bytes between Envoy and [`exchange::Exchange`].

#![deny(unsafe_code)]

pub mod aggregate;
pub mod auth;
pub mod backends;
pub mod classify;
pub mod config;
pub mod config_error;
pub mod endpoint;
pub mod exchange;
pub mod fetch;
pub mod jsonrpc;
mod keyfold;
pub mod listing;
pub mod mirrored;
pub mod policy;
pub mod raw_json;
pub mod reject;
pub mod relay;
pub mod response;
pub mod session;
pub mod sse;
mod struct_pb;
pub mod telemetry;

#[cfg(test)]
mod test_vectors;

#[cfg(all(target_arch = "wasm32", not(test)))]
mod wasm;

/// The shell's handling of refused host calls, tested natively.
#[cfg(test)]
#[path = "wasm/steps.rs"]
mod wasm_steps;
