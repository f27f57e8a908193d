//! Configuration loading: JSON, a JSON string holding JSON, or a protobuf
//! Struct. Refused with an error, never a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_filter::config::FilterConfig;

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = FilterConfig::from_json(data) {
        let _ = config.endpoint.classify("/mcp?x");
    }
});
