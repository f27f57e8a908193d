//! mcp-filter: an MCP (Model Context Protocol) gateway inside Envoy.
//!
//! Everything at this level is the pure core: plain Rust, no Envoy types,
//! tested natively and under WASI. [`shell`] is what every shell does
//! between Envoy and [`exchange::Exchange`], behind a host trait; `wasm/`
//! (proxy-wasm) and `module/` (Envoy's dynamic-module ABI) only translate
//! their ABI to it.

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
pub mod pins;
pub mod policy;
pub mod raw_json;
pub mod reject;
pub mod relay;
pub mod response;
pub mod session;
pub mod shell;
pub mod sse;
mod struct_pb;
pub mod telemetry;
pub mod uri;

#[cfg(test)]
mod test_vectors;

#[cfg(all(target_arch = "wasm32", not(test)))]
mod wasm;

/// The Envoy dynamic-module shell (`libmcp_filter.so`, feature `module`).
#[cfg(all(feature = "module", not(target_arch = "wasm32")))]
mod module;
