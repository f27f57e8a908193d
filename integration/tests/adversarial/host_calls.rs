//! Header edits and local replies Envoy refuses. These are hard to provoke
//! in a real Envoy; the shell's decisions are unit-tested against a fake host
//! (`filter/src/wasm/steps.rs`). Here: the edits security depends on do
//! happen in a real Envoy, on both settings of `allow_on_headers_stop_iteration`.
