//! What every shell does between Envoy and [`crate::exchange::Exchange`],
//! whatever its ABI: the per-request state machine ([`Stream`]: cumulative
//! body sizes, the keys-ready resume rules, calls to backends, how a step is
//! carried out and what a refused host call means). A shell (proxy-wasm in
//! `wasm/`, the dynamic module in `module/`) only implements [`StreamHost`]
//! over its ABI and maps [`Flow`] to its status codes.
//!
//! Must not: name an Envoy or proxy-wasm type, or decide anything about a
//! request (the exchange decides; this carries the decision out).

mod calls;
pub mod keys;
pub mod steps;
mod stream;

pub use steps::{Body, Headers, Host, HostError};
pub use stream::{Stream, StreamHost};

/// What Envoy does with the request or response after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Goes on.
    Continue,
    /// Is held (headers: until a later callback; a body: buffered).
    Pause,
}

/// A call sent to a backend through Envoy, as the shell's ABI numbers it.
pub type CallId = u64;

#[cfg(test)]
mod tests;
