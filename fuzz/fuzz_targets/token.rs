//! Token parsing and validation (HS256 secret and an inline JWKS), JWKS
//! documents, and claims read from Envoy's jwt_authn metadata.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_filter::auth::{claims_from_metadata, Authenticator};
use mcp_filter::config::FilterConfig;
use std::cell::RefCell;

thread_local! {
    static AUTH: RefCell<Option<Authenticator>> = RefCell::new(
        FilterConfig::from_json(
            br#"{"auth":{"issuers":["https://idp"],"audiences":["https://mcp"],
                "algorithms":["HS256","ES256","RS256"],
                "shared_secret":{"kid":"s","base64":"CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk="},
                "resource_metadata":{"resource":"https://mcp","authorization_servers":["https://idp"]}}}"#,
        )
        .ok()
        .and_then(|c| c.auth)
        .map(Authenticator::new),
    );
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    AUTH.with(|auth| {
        let Ok(mut auth) = auth.try_borrow_mut() else { return };
        let Some(auth) = auth.as_mut() else { return };
        let header = format!("Bearer {text}");
        let _ = auth.authenticate_bearer(Some(&header), &[], 1_900_000_000_000);
        let _ = auth.authenticate_bearer(Some(&text), &[], 1_900_000_000_000);
        let _ = auth.install_remote_jwks(data, 1_900_000_000_000);
    });
    let _ = claims_from_metadata(data, "envoy.filters.http.jwt_authn", "payload");
});
