//! The proxy-wasm shell: the only code that knows Envoy. It reads headers and
//! bytes from the host, hands them to [`crate::exchange::Exchange`], and applies
//! the returned step. No decisions are made here.

mod host;
mod http;
mod root;

use proxy_wasm::types::LogLevel;

/// The root context id a `PluginConfig` names to load this filter.
pub const ROOT_ID: &str = "mcp_filter";

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::new(root::Root::default()));
}}
