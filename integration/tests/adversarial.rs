//! Adversarial requests and answers against a policy that denies the tool
//! `secret`, in a real Envoy, with and without `allow_on_headers_stop_iteration`.
//! The upstream records every byte it receives: a refused request must leave it
//! with nothing, and each refusal is a 4xx with a JSON-RPC error.
//!
//! One module per class of attack (one writer each), in `adversarial/`:
//! - `smuggling`: what one body can hide (duplicate keys, escapes, trailing data...);
//! - `paths`: request paths and methods an MCP server could still take as MCP;
//! - `keys`: key spellings a lenient decoder maps onto a key the filter reads;
//! - `listings`: answers that could carry a listing past the filter unfiltered;
//! - `host_calls`: header edits and local replies Envoy refuses;
//! - `keys_refresh`: JWKS fetches lost with their request, clocks, JWS oddities;
//! - `keys_wait`: what happens around a request waiting for the JWKS;
//! - `uris`: resource URIs a server resolves to another before it looks them up.

#[path = "adversarial/common.rs"]
mod common;
#[path = "adversarial/host_calls.rs"]
mod host_calls;
#[path = "adversarial/keys.rs"]
mod keys;
#[path = "adversarial/keys_refresh.rs"]
mod keys_refresh;
#[path = "adversarial/keys_wait.rs"]
mod keys_wait;
#[path = "adversarial/listings.rs"]
mod listings;
#[path = "adversarial/paths.rs"]
mod paths;
#[path = "adversarial/smuggling.rs"]
mod smuggling;
#[path = "adversarial/uris.rs"]
mod uris;
