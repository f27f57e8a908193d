//! Protocol housekeeping through the filter with a policy written like the
//! README's (rules about tools, prompts and resources only): the official
//! Python SDK's client sets its log level and completes an allowed prompt's
//! argument on npm's reference server; completion of a denied prompt and a
//! subscription to a denied resource are refused with a JSON-RPC error the
//! SDK surfaces, the server never sees them, and the session goes on.

use anyhow::Result;
use mcp_filter_integration::everything::Everything;
use mcp_filter_integration::idp::{Issuer, AUDIENCE, ISSUER};
use mcp_filter_integration::sdk::{python_sdk, run_python_client};
use mcp_filter_integration::{envoy_bin, Envoy, EnvoySetup};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn housekeeping_passes_and_follows_its_subject_for_a_real_sdk() -> Result<()> {
    let Some(bin) = envoy_bin() else {
        return Ok(());
    };
    let Some(python) = python_sdk()? else {
        return Ok(());
    };
    let Some(everything) = Everything::start()? else {
        return Ok(());
    };
    let issuer = Issuer::start().await?;
    let config = json!({
        "mcp_paths": ["/mcp"],
        // Held headers: a refused request never reaches the server at all.
        "routing_headers": {"enabled": true},
        "auth": {
            "issuers": [ISSUER], "audiences": [AUDIENCE],
            "remote_jwks": {"cluster": "idp", "path": "/jwks"},
            "resource_metadata": {"resource": AUDIENCE, "authorization_servers": [ISSUER]},
        },
        "policy": {"rules": [
            {"name": "tools", "tools": ["echo"], "effect": "allow"},
            {"name": "prompts", "prompts": ["simple-prompt", "completable-prompt"], "effect": "allow"},
            {"name": "dynamic", "resources": ["demo://resource/dynamic/*"], "effect": "allow"},
        ]},
    });
    let mut setup = EnvoySetup::new(everything.port, config);
    issuer.serve(&mut setup);
    let envoy = Envoy::start(&bin, &setup)?;
    let token = issuer.token("alice", json!({}));
    let run = tokio::task::block_in_place(|| {
        run_python_client(&python, "python_housekeeping.py", &[&envoy.url(), &token])
    })?;
    assert!(run.success, "{}\n{}", run.output, envoy.log());
    let steps: Vec<Value> = run
        .output
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let step = |name: &str| {
        steps
            .iter()
            .find(|s| s["step"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no step {name}: {}", run.output))
    };
    assert_eq!(step("set_level")["ok"], true, "{}", run.output);
    let completed = step("complete_allowed");
    assert_eq!(completed["ok"], true, "{}", run.output);
    assert_eq!(
        completed["result"]["completion"]["values"],
        json!(["Engineering"])
    );
    for refused in ["complete_denied", "subscribe_denied"] {
        let s = step(refused);
        assert_eq!(s["ok"], false, "{refused}: {}", run.output);
        assert_eq!(s["code"], -32043, "{refused}: {}", run.output);
    }
    assert_eq!(
        step("ping")["ok"],
        true,
        "the session survives: {}",
        run.output
    );

    // What the server saw: the allowed requests went upstream, the refused
    // ones never left Envoy.
    let log = envoy.access_log();
    let line = |method: &str, name: &str| {
        log.lines()
            .find(|l| l.starts_with(&format!("method={method} name={name} ")))
            .unwrap_or_else(|| panic!("no {method} {name} in\n{log}"))
            .to_string()
    };
    assert!(
        !line("logging/setLevel", "-").contains("upstream=-"),
        "{log}"
    );
    assert!(!line("completion/complete", "completable-prompt").contains("upstream=-"));
    for (method, name) in [
        ("completion/complete", "args-prompt"),
        (
            "resources/subscribe",
            "demo://resource/static/document/secret.md",
        ),
    ] {
        let l = line(method, name);
        assert!(
            l.contains("decision=deny") && l.contains("upstream=-"),
            "{l}"
        );
        // Answered by the JSON-RPC error (policy.deny_with's default).
        assert!(l.ends_with("status=200"), "{l}");
    }
    Ok(())
}
