use super::*;
use crate::backends::BackendId;
use crate::config_error::{invalid, ConfigError};
use serde_json::json;

fn backends(value: serde_json::Value) -> Result<Backends, ConfigError> {
    serde_json::from_value::<RawBackends>(value)
        .map_err(|e| invalid("", e.to_string()))?
        .compile()
}

fn two() -> Backends {
    backends(json!({"servers": [
        {"name": "github", "tools": {"exclude": ["delete_*"], "aliases": {"open_issue": "create_issue"}}},
        {"name": "jira", "prefix_prompts": true}
    ]}))
    .unwrap()
}

fn route(b: &Backends, kind: Named, public: &str) -> Option<(String, String)> {
    b.resolve(kind, public).map(|r| {
        (
            b.servers[r.backend.index()].name.clone(),
            r.upstream.into_owned(),
        )
    })
}

#[test]
fn prefixed_names_go_both_ways() {
    let b = two();
    assert_eq!(
        b.publish(Named::Tool, BackendId::at(1), "create_issue")
            .unwrap(),
        "jira__create_issue"
    );
    assert_eq!(
        route(&b, Named::Tool, "jira__create_issue"),
        Some(("jira".into(), "create_issue".into()))
    );
    assert_eq!(
        b.publish(Named::Tool, BackendId::at(0), "search").unwrap(),
        "github__search"
    );
    assert_eq!(
        route(&b, Named::Tool, "github__search"),
        Some(("github".into(), "search".into()))
    );
}

#[test]
fn an_alias_replaces_the_prefixed_name() {
    let b = two();
    assert_eq!(
        b.publish(Named::Tool, BackendId::at(0), "create_issue")
            .unwrap(),
        "open_issue"
    );
    assert_eq!(
        route(&b, Named::Tool, "open_issue"),
        Some(("github".into(), "create_issue".into()))
    );
    // The mechanical name of an aliased tool is not a second way in.
    assert_eq!(route(&b, Named::Tool, "github__create_issue"), None);
}

#[test]
fn hidden_and_unknown_names_resolve_to_nothing() {
    let b = two();
    assert_eq!(
        b.publish(Named::Tool, BackendId::at(0), "delete_repo"),
        None
    );
    assert_eq!(route(&b, Named::Tool, "github__delete_repo"), None);
    assert_eq!(
        route(&b, Named::Tool, "create_issue"),
        None,
        "no unprefixed backend"
    );
    assert_eq!(route(&b, Named::Tool, "gitlab__x"), None);
    assert_eq!(route(&b, Named::Tool, ""), None);
    assert_eq!(route(&b, Named::Tool, "github__"), None);
}

#[test]
fn prompts_are_renamed_only_where_configured() {
    let b = two();
    assert!(b.renames(Named::Prompt));
    assert_eq!(
        b.publish(Named::Prompt, BackendId::at(1), "triage")
            .unwrap(),
        "jira__triage"
    );
    // github does not prefix prompts: it is the unprefixed prompt backend.
    assert_eq!(
        b.publish(Named::Prompt, BackendId::at(0), "review")
            .unwrap(),
        "review"
    );
    assert_eq!(
        route(&b, Named::Prompt, "review"),
        Some(("github".into(), "review".into()))
    );
    // An unprefixed prompt that looks like jira's is not published by github.
    assert_eq!(
        b.publish(Named::Prompt, BackendId::at(0), "jira__triage"),
        None
    );
    assert_eq!(
        route(&b, Named::Prompt, "jira__triage"),
        Some(("jira".into(), "triage".into()))
    );
}

#[test]
fn an_unprefixed_default_backend_cannot_shadow_prefixed_names() {
    let b = backends(json!({"servers": [
        {"name": "main", "prefix_tools": false, "tools": {"aliases": {"calc": "add"}}},
        {"name": "jira"}
    ]}))
    .unwrap();
    assert_eq!(b.default, BackendId::at(0));
    assert_eq!(
        b.publish(Named::Tool, BackendId::at(0), "echo").unwrap(),
        "echo"
    );
    assert_eq!(
        route(&b, Named::Tool, "echo"),
        Some(("main".into(), "echo".into()))
    );
    assert_eq!(b.publish(Named::Tool, BackendId::at(0), "jira__x"), None);
    assert_eq!(
        route(&b, Named::Tool, "jira__x"),
        Some(("jira".into(), "x".into()))
    );
    // `add` is published as `calc` only; an upstream tool literally named `calc`
    // would collide with the alias and is hidden.
    assert_eq!(
        b.publish(Named::Tool, BackendId::at(0), "add").unwrap(),
        "calc"
    );
    assert_eq!(b.publish(Named::Tool, BackendId::at(0), "calc"), None);
    assert_eq!(route(&b, Named::Tool, "add"), None);
}

#[test]
fn invalid_public_tool_names_are_not_published() {
    let b = two();
    assert_eq!(b.publish(Named::Tool, BackendId::at(1), "has space"), None);
    let long = "x".repeat(128 - "jira__".len());
    assert!(b.publish(Named::Tool, BackendId::at(1), &long).is_some());
    let longer = "x".repeat(129 - "jira__".len());
    assert_eq!(b.publish(Named::Tool, BackendId::at(1), &longer), None);
    assert_eq!(route(&b, Named::Tool, &format!("jira__{longer}")), None);
}

#[test]
fn glob_exposure_on_upstream_names() {
    let b = backends(json!({"servers": [
        {"name": "fs", "tools": {"include": ["read_*", "list"], "exclude": ["read_secret*"]}}
    ]}))
    .unwrap();
    assert!(b
        .publish(Named::Tool, BackendId::at(0), "read_file")
        .is_some());
    assert!(b.publish(Named::Tool, BackendId::at(0), "list").is_some());
    assert!(b
        .publish(Named::Tool, BackendId::at(0), "write_file")
        .is_none());
    assert!(b
        .publish(Named::Tool, BackendId::at(0), "read_secrets")
        .is_none());
    assert!(route(&b, Named::Tool, "fs__write_file").is_none());
    assert!(!b.routes());
    assert!(!b.aggregates(Named::Tool));
}

#[test]
fn a_single_unprefixed_backend_without_rules_is_the_identity() {
    let b = backends(json!({"servers": [{"name": "one", "prefix_tools": false}]})).unwrap();
    assert!(!b.renames(Named::Tool));
    assert!(!b.renames(Named::Prompt));
    assert_eq!(
        route(&b, Named::Tool, "add"),
        Some(("one".into(), "add".into()))
    );
}

#[test]
fn defaults() {
    let b = two();
    assert_eq!(b.header, "x-mcp-backend");
    assert_eq!(b.listing_timeout_ms, 5000);
    assert_eq!(b.call_timeout_ms, 60_000);
    assert_eq!(b.servers[1].cluster, "jira");
    assert_eq!(b.servers[1].authority, "jira");
    assert_eq!(b.servers[1].path, "/mcp");
    assert!(b.routes());
    assert!(b.aggregates(Named::Tool));
    assert_eq!(b.default_backend().unwrap().name, "github");
}

fn refused(value: serde_json::Value) -> ConfigError {
    match backends(value.clone()) {
        Err(e) => e,
        Ok(_) => panic!("accepted: {value}"),
    }
}

#[test]
fn configurations_that_make_bad_or_colliding_names_are_refused() {
    let e = refused(json!({"servers": []}));
    assert_eq!(e.field, "backends.servers");
    let e = refused(json!({"servers": [{"name": "a b"}]}));
    assert_eq!(e.field, "backends.servers[0].name");
    let e = refused(json!({"servers": [{"name": "a"}, {"name": "a"}]}));
    assert_eq!(e.field, "backends.servers[1].name");
    let e = refused(json!({"servers": [{"name": "a", "prefix": "gh/"}]}));
    assert_eq!(e.field, "backends.servers[0].prefix");
    let e = refused(json!({"servers": [{"name": "a", "prefix": "x".repeat(130)}]}));
    assert_eq!(e.field, "backends.servers[0].prefix");
    // Two unprefixed backends: a bare name could be either's.
    let e = refused(json!({"servers": [
        {"name": "a", "prefix_tools": false}, {"name": "b", "prefix_tools": false}
    ]}));
    assert_eq!(e.field, "backends.servers[1]");
    // `git__` is a prefix of `git__hub__`: `git__hub__x` would be ambiguous.
    let e = refused(json!({"servers": [
        {"name": "a", "prefix": "git"}, {"name": "b", "prefix": "git__hub"}
    ]}));
    assert_eq!(e.field, "backends.servers[1].prefix");
    let e = refused(json!({"servers": [
        {"name": "a", "tools": {"aliases": {"has space": "x"}}}
    ]}));
    assert_eq!(e.field, "backends.servers[0].tools.aliases.has space");
    let e = refused(json!({"servers": [
        {"name": "a", "tools": {"aliases": {"go": "x"}}},
        {"name": "b", "tools": {"aliases": {"go": "y"}}}
    ]}));
    assert_eq!(e.field, "backends.servers[1].tools.aliases.go");
    assert!(e.message.contains("also an alias of backend `a`"), "{e}");
    let e = refused(json!({"servers": [
        {"name": "a", "tools": {"aliases": {"b__x": "x"}}}, {"name": "b"}
    ]}));
    assert_eq!(e.field, "backends.servers[0].tools.aliases.b__x");
    let e = refused(json!({"servers": [
        {"name": "a", "tools": {"aliases": {"p": "x", "q": "x"}}}
    ]}));
    assert!(e.message.contains("already has the alias"), "{e}");
    let e = refused(json!({"servers": [{"name": "a", "tools": {"aliases": {"x": 3}}}]}));
    assert_eq!(e.field, "backends.servers[0].tools.aliases.x");
    let e = refused(json!({"servers": [{"name": "a", "tools": {"include": []}}]}));
    assert_eq!(e.field, "backends.servers[0].tools.include");
    let e = refused(json!({"servers": [{"name": "a", "path": "mcp"}]}));
    assert_eq!(e.field, "backends.servers[0].path");
    let e = refused(json!({"listing_timeout_ms": 0, "servers": [{"name": "a"}]}));
    assert_eq!(e.field, "backends.listing_timeout_ms");
    for ms in [0, 3_600_001] {
        let e = refused(json!({"call_timeout_ms": ms, "servers": [{"name": "a"}]}));
        assert_eq!(e.field, "backends.call_timeout_ms");
    }
    let e = refused(json!({"header": "X Backend", "servers": [{"name": "a"}]}));
    assert_eq!(e.field, "backends.header");
}

/// Every published name resolves back to where it came from, for a grid of
/// upstream names over every backend, and nothing else resolves.
#[test]
fn publish_then_resolve_is_the_identity() {
    let b = backends(json!({"servers": [
        {"name": "main", "prefix_tools": false, "tools": {"aliases": {"calc": "add"}, "exclude": ["x*"]}},
        {"name": "gh", "tools": {"aliases": {"open": "create"}}, "prefix_prompts": true},
        {"name": "jira", "separator": ".", "prefix_prompts": true, "tools": {"include": ["a*", "c*", "gh__*"]}}
    ]}))
    .unwrap();
    let names = [
        "add", "calc", "create", "open", "xray", "a", "gh__a", "jira.a", "main__a", "c d", "",
        "open_it", "gh__", "jira.",
    ];
    let mut published = std::collections::HashMap::new();
    for kind in [Named::Tool, Named::Prompt] {
        for backend in 0..b.servers.len() {
            for upstream in names {
                if let Some(public) = b.publish(kind, BackendId::at(backend), upstream) {
                    let back = b.resolve(kind, &public).unwrap_or_else(|| {
                        panic!("{public} (from {upstream} on {backend}) does not resolve")
                    });
                    assert_eq!(
                        (back.backend.index(), back.upstream.as_ref()),
                        (backend, upstream)
                    );
                    let previous =
                        published.insert((kind, public.to_string()), (backend, upstream));
                    assert!(previous.is_none(), "{public} published twice");
                }
            }
        }
        // Anything that resolves was published.
        for candidate in names
            .iter()
            .flat_map(|n| ["", "gh__", "jira.", "main__"].map(move |p| format!("{p}{n}")))
        {
            let Some(r) = b.resolve(kind, &candidate) else {
                continue;
            };
            if let Some(upstream) = names.iter().find(|n| **n == r.upstream) {
                assert_eq!(
                    published.get(&(kind, candidate.clone())),
                    Some(&(r.backend.index(), *upstream)),
                    "{candidate} resolves to what never published it"
                );
            }
        }
    }
}
