//! The proxy-wasm shell: the only code that knows Envoy. It reads headers and
//! bytes from the host, hands them to [`crate::exchange::Exchange`], and applies
//! the returned step. No decisions about requests are made here; what the
//! shell decides is what a refused host call means ([`crate::shell::steps`]: the request
//! ends, it never goes on unjudged).
//!
//! No SDK call that can panic is made: host calls go through [`host`], and
//! the SDK's logger (which unwraps) is replaced by [`HostLogger`]. The one
//! exception, and why, is [`host::http_call`].

mod host;
mod http;
mod root;

/// The root context id a `PluginConfig` names to load this filter.
pub const ROOT_ID: &str = "mcp_filter";

/// `log` records to Envoy's log, never panicking (the SDK's logger unwraps
/// the host's answer).
struct HostLogger;

static LOGGER: HostLogger = HostLogger;

impl log::Log for HostLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // proxy-wasm levels: trace 0, debug 1, info 2, warn 3, error 4.
        let level = match record.level() {
            log::Level::Trace => 0,
            log::Level::Debug => 1,
            log::Level::Info => 2,
            log::Level::Warn => 3,
            log::Level::Error => 4,
        };
        host::log(level, &record.args().to_string());
    }

    fn flush(&self) {}
}

proxy_wasm::main! {{
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    // No panic hook: std's own writes the message to stderr, which Envoy
    // logs (the SDK's hook unwrapped a host call of its own).
    proxy_wasm::set_root_context(|context_id| Box::new(root::Root::new(context_id)));
}}
