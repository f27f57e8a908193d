//! Policy decisions: rules and names from the input (globs included), and
//! the backend naming tables built from it. A decision always comes out; a
//! published name always resolves back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_filter::backends::{Named, RawBackends};
use mcp_filter::config::FilterConfig;
use mcp_filter::policy::{Caller, SubjectKind, Target};
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parts: Vec<&str> = text.split('\n').collect();
    let [glob, name, rest @ ..] = parts.as_slice() else { return };
    let config = json!({
        "auth": {"issuers": ["https://idp"], "audiences": ["https://mcp"],
                 "shared_secret": {"base64": "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk="},
                 "resource_metadata": {"resource": "https://mcp", "authorization_servers": ["https://idp"]}},
        "policy": {"rules": [
            {"tools": [glob], "effect": "deny"},
            {"subjects": [rest.first().copied().unwrap_or("*")], "tools": ["*"], "effect": "allow"}
        ]}
    });
    if let Ok(config) = FilterConfig::from_json(config.to_string().as_bytes()) {
        let caller = Caller { subject: name.to_string(), ..Caller::default() };
        let _ = config.policy.decide(&caller, &Target::call(SubjectKind::Tool, name));
        let _ = config.policy.decide(&caller, &Target::method(name));
    }
    let backends = serde_json::from_value::<RawBackends>(json!({"servers": [
        {"name": "a", "prefix_tools": false, "tools": {"exclude": [glob]}},
        {"name": "b", "prefix": rest.get(1).copied().unwrap_or("b")},
    ]}));
    if let Ok(Ok(backends)) = backends.map(RawBackends::compile) {
        for backend in backends.ids() {
            if let Some(public) = backends.publish(Named::Tool, backend, name) {
                let route = backends.resolve(Named::Tool, &public);
                assert!(route.is_some_and(|r| r.backend == backend && r.upstream == *name));
            }
        }
        let _ = backends.resolve(Named::Tool, name);
    }
});
