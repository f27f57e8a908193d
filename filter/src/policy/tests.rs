use super::*;
use serde_json::json;

fn policy(tenancy: bool, config: Value) -> Policy {
    let raw: RawPolicy = serde_json::from_value(config).unwrap();
    raw.compile(tenancy, &mut Vec::new()).unwrap()
}

fn caller(sub: &str, tenant: Option<&str>, scopes: &[&str], claims: Value) -> Caller {
    Caller {
        issuer: "https://issuer".into(),
        subject: sub.into(),
        tenant: tenant.map(str::to_string),
        workspace: None,
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        claims: claims.as_object().cloned().unwrap_or_default(),
    }
}

fn tool(name: &str) -> Target<'_> {
    Target::call(SubjectKind::Tool, name)
}

/// The decision table the product promises: subjects x targets x tenants.
#[test]
fn decision_table_over_subjects_targets_and_tenants() {
    let p = policy(
        true,
        json!({"rules": [
            {"name": "no-secret", "tenants": ["*"], "tools": ["secret"], "effect": "deny"},
            {"name": "acme-devs", "tenants": ["acme"], "claims": {"groups": "dev"},
             "tools": ["github__*", "add"], "effect": "allow"},
            {"name": "acme-admin-write", "tenants": ["acme"], "tools": ["admin_*"],
             "effect": "allow", "require_scopes": ["mcp:admin"]},
            {"name": "globex-all", "tenants": ["globex"], "tools": ["*"], "effect": "allow"},
            {"name": "acme-prompts", "tenants": ["acme"], "prompts": ["greet"], "effect": "allow"},
            {"name": "acme-docs", "tenants": ["acme"], "resources": ["file:///docs/*"], "effect": "allow"},
        ]}),
    );
    let dev = caller("alice", Some("acme"), &[], json!({"groups": ["dev", "x"]}));
    let admin = caller(
        "root",
        Some("acme"),
        &["mcp:admin"],
        json!({"groups": ["ops"]}),
    );
    let outsider = caller("bob", Some("acme"), &[], json!({"groups": "sales"}));
    let globex = caller("carol", Some("globex"), &[], json!({"groups": ["dev"]}));
    let nobody = caller("dave", None, &[], json!({"groups": ["dev"]}));

    let table: &[(&Caller, Target<'_>, &str)] = &[
        (&dev, tool("github__create_issue"), "allow"),
        (&dev, tool("add"), "allow"),
        (&dev, tool("secret"), "deny"),
        (&dev, tool("jira__x"), "deny"),
        (&dev, tool("admin_reset"), "insufficient_scope"),
        (&admin, tool("admin_reset"), "allow"),
        (&admin, tool("github__create_issue"), "deny"),
        (&outsider, tool("add"), "deny"),
        // The same claims in another tenant grant nothing of acme's.
        (&globex, tool("anything"), "allow"),
        (&globex, tool("secret"), "deny"),
        (&globex, Target::call(SubjectKind::Prompt, "greet"), "deny"),
        (&nobody, tool("add"), "deny"),
        (&nobody, Target::method("initialize"), "deny"),
        (&dev, Target::call(SubjectKind::Prompt, "greet"), "allow"),
        (&dev, Target::call(SubjectKind::Prompt, "other"), "deny"),
        (
            &dev,
            Target::call(SubjectKind::Resource, "file:///docs/a.md"),
            "allow",
        ),
        (
            &dev,
            Target::call(SubjectKind::Resource, "file:///etc/passwd"),
            "deny",
        ),
        // Lifecycle and listings are open to any authenticated caller with a tenant.
        (&outsider, Target::method("initialize"), "allow"),
        (&outsider, Target::method("tools/list"), "allow"),
        (
            &outsider,
            Target::method("notifications/initialized"),
            "allow",
        ),
        (&outsider, Target::method(RESPONSE_METHOD), "allow"),
        // Session housekeeping is allowed unless a rule names it.
        (&dev, Target::method("logging/setLevel"), "allow"),
        (&dev, Target::method("tasks/result"), "allow"),
        (&dev, Target::method("tasks/update"), "allow"),
        // Other methods follow the default, which is deny once rules exist.
        (&dev, Target::method("vendor/unknown"), "deny"),
    ];
    for (who, target, want) in table {
        let got = p.decide(who, target);
        assert_eq!(got.label(), *want, "{} -> {target:?}: {got:?}", who.subject);
    }
}

#[test]
fn first_matching_rule_wins_and_is_named_in_the_reason() {
    let p = policy(
        false,
        json!({"rules": [
            {"name": "deny-rm", "tools": ["rm"], "effect": "deny"},
            {"name": "all", "tools": ["*"], "effect": "allow"},
        ]}),
    );
    let c = caller("a", None, &[], json!({}));
    let d = p.decide(&c, &tool("rm"));
    assert_eq!(d.verdict, Verdict::Deny);
    assert_eq!(d.reason.label(), "rule:deny-rm");
    assert_eq!(p.decide(&c, &tool("ls")).reason.label(), "rule:all");
}

#[test]
fn no_rules_allows_everything_and_explicit_default_is_kept() {
    let c = caller("a", None, &[], json!({}));
    assert!(Policy::allow_all().decide(&c, &tool("x")).is_allowed());
    let p = policy(
        false,
        json!({"default": "allow", "rules": [
        {"tools": ["x"], "effect": "deny"}]}),
    );
    assert!(!p.decide(&c, &tool("x")).is_allowed());
    assert!(p.decide(&c, &tool("y")).is_allowed());
    assert_eq!(p.decide(&c, &tool("y")).reason, DecisionReason::Default);
}

#[test]
fn a_method_rule_can_close_a_builtin_method() {
    let p = policy(
        false,
        json!({"rules": [{"methods": ["tools/list"], "subjects": ["guest"], "effect": "deny"}]}),
    );
    let guest = caller("guest", None, &[], json!({}));
    let user = caller("user", None, &[], json!({}));
    assert!(!p.decide(&guest, &Target::method("tools/list")).is_allowed());
    assert!(p.decide(&user, &Target::method("tools/list")).is_allowed());
}

#[test]
fn a_rule_naming_tools_does_not_answer_for_prompts_or_methods() {
    let p = policy(
        false,
        json!({"rules": [{"tools": ["*"], "effect": "allow"}]}),
    );
    let c = caller("a", None, &[], json!({}));
    assert!(p.decide(&c, &tool("t")).is_allowed());
    assert!(!p
        .decide(&c, &Target::call(SubjectKind::Prompt, "p"))
        .is_allowed());
    assert!(!p
        .decide(&c, &Target::method("completion/complete"))
        .is_allowed());
}

#[test]
fn scope_conditions_and_nested_claims() {
    let p = policy(
        false,
        json!({"rules": [
            {"name": "readers", "scopes": ["files:read"], "tools": ["read_*"], "effect": "allow"},
            {"name": "realm", "claims": {"realm_access.roles": ["writer"]}, "tools": ["write_*"], "effect": "allow"},
        ]}),
    );
    let reader = caller("r", None, &["files:read"], json!({}));
    let writer = caller(
        "w",
        None,
        &[],
        json!({"realm_access": {"roles": ["writer"]}}),
    );
    let faker = caller(
        "f",
        None,
        &[],
        json!({"realm_access.roles": "writer", "realm_access": 1}),
    );
    assert!(p.decide(&reader, &tool("read_x")).is_allowed());
    assert!(!p.decide(&writer, &tool("read_x")).is_allowed());
    assert!(p.decide(&writer, &tool("write_x")).is_allowed());
    assert!(!p.decide(&faker, &tool("write_x")).is_allowed());
}

/// A claim an identity provider writes as a boolean or a number matches
/// the configuration's text for it (`"true"`, `"3"`): a deny rule on it must
/// not silently skip such a caller.
#[test]
fn boolean_and_number_claims_match_their_text() {
    let p = policy(
        false,
        json!({"rules": [
            {"name": "suspended", "claims": {"suspended": ["true"]}, "effect": "deny"},
            {"name": "levels", "claims": {"level": ["3", "4"]}, "tools": ["ops_*"], "effect": "deny"},
            {"name": "all", "tools": ["*"], "effect": "allow"},
        ]}),
    );
    let suspended = caller("s", None, &[], json!({"suspended": true}));
    let level3 = caller("l", None, &[], json!({"level": 3, "suspended": false}));
    let listed = caller("a", None, &[], json!({"level": [1, 4]}));
    assert!(!p.decide(&suspended, &tool("x")).is_allowed());
    assert!(p.decide(&level3, &tool("x")).is_allowed());
    assert!(!p.decide(&level3, &tool("ops_x")).is_allowed());
    assert!(!p.decide(&listed, &tool("ops_x")).is_allowed());
}

#[test]
fn insufficient_scope_names_the_required_scopes() {
    let p = policy(
        false,
        json!({"rules": [{"tools": ["deploy"], "effect": "allow", "require_scopes": ["ops:deploy", "ops:read"]}]}),
    );
    let some = caller("a", None, &["ops:read"], json!({}));
    assert_eq!(
        p.decide(&some, &tool("deploy")).verdict,
        Verdict::InsufficientScope(vec!["ops:deploy".into(), "ops:read".into()])
    );
}

#[test]
fn bad_rules_are_refused_with_their_field() {
    let err = |tenancy: bool, v: Value| {
        serde_json::from_value::<RawPolicy>(v)
            .unwrap()
            .compile(tenancy, &mut Vec::new())
            .unwrap_err()
            .field
    };
    assert_eq!(
        err(
            true,
            json!({"rules": [{"tools": ["a"], "effect": "allow"}]})
        ),
        "policy.rules[0].tenants"
    );
    assert_eq!(
        err(
            false,
            json!({"rules": [{"tenants": ["a"], "effect": "allow"}]})
        ),
        "policy.rules[0].tenants"
    );
    assert_eq!(
        err(false, json!({"rules": [{"tools": [], "effect": "allow"}]})),
        "policy.rules[0].tools"
    );
    assert_eq!(
        err(
            false,
            json!({"rules": [{"effect": "deny", "require_scopes": ["x"]}]})
        ),
        "policy.rules[0].require_scopes"
    );
    assert_eq!(
        err(
            false,
            json!({"rules": [{"effect": "allow", "scopes": ["a b"]}]})
        ),
        "policy.rules[0].scopes[0]"
    );
    assert!(serde_json::from_value::<RawPolicy>(json!({"rules": [{"effect": "maybe"}]})).is_err());
}

/// Completion and (un)subscription follow their subject's decision, a rule
/// that names the method itself decides instead, and nothing without a
/// subject is judged as "no subject".
#[test]
fn housekeeping_about_a_subject_follows_the_subjects_decision() {
    let readme_style = json!({"rules": [
        {"name": "greet", "prompts": ["greet"], "effect": "allow"},
        {"name": "docs", "resources": ["file:///docs/*"], "effect": "allow"},
        {"name": "tools", "tools": ["add"], "effect": "allow"},
    ]});
    let p = policy(false, readme_style);
    let alice = caller("alice", None, &[], json!({}));
    let on = |method, kind, name| Target {
        method,
        subject: Some((kind, name)),
    };
    let table = [
        (
            on("completion/complete", SubjectKind::Prompt, "greet"),
            "allow",
        ),
        (
            on("completion/complete", SubjectKind::Prompt, "secret"),
            "deny",
        ),
        (
            on(
                "completion/complete",
                SubjectKind::Resource,
                "file:///docs/{p}",
            ),
            "allow",
        ),
        (
            on(
                "completion/complete",
                SubjectKind::Resource,
                "file:///etc/{p}",
            ),
            "deny",
        ),
        (
            on(
                "resources/subscribe",
                SubjectKind::Resource,
                "file:///docs/a",
            ),
            "allow",
        ),
        (
            on(
                "resources/unsubscribe",
                SubjectKind::Resource,
                "file:///etc/passwd",
            ),
            "deny",
        ),
    ];
    for (target, want) in table {
        assert_eq!(p.decide(&alice, &target).label(), want, "{target:?}");
    }

    // A rule naming the method decides it, before the subject's rules.
    let p = policy(
        false,
        json!({"rules": [
            {"name": "no-completion", "methods": ["completion/complete"], "effect": "deny"},
            {"name": "greet", "prompts": ["greet"], "effect": "allow"},
        ]}),
    );
    let complete_greet = on("completion/complete", SubjectKind::Prompt, "greet");
    let decision = p.decide(&alice, &complete_greet);
    assert_eq!(decision.label(), "deny");
    assert_eq!(
        decision.reason,
        DecisionReason::Rule("no-completion".into())
    );
}

#[test]
fn a_rule_that_denies_housekeeping_by_accident_is_flagged_at_load() {
    let warned = |rules: Value| {
        let raw: RawPolicy = serde_json::from_value(json!({ "rules": rules })).unwrap();
        let mut warnings = Vec::new();
        raw.compile(false, &mut warnings).unwrap();
        warnings
    };
    let w = warned(json!([
        {"name": "tools", "tools": ["add"], "effect": "allow"},
        {"name": "rest", "methods": ["*"], "effect": "deny"},
    ]));
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].starts_with("policy.rules[1] (rest):"), "{w:?}");
    assert!(
        w[0].contains("initialize") && w[0].contains("logging/setLevel"),
        "{w:?}"
    );
    // A catch-all deny with no methods is the same accident.
    assert_eq!(warned(json!([{"effect": "deny"}])).len(), 1);
    // Naming the methods is deliberate; subject rules and allows are fine.
    for rules in [
        json!([{"methods": ["logging/setLevel"], "effect": "deny"}]),
        json!([{"tools": ["*"], "effect": "deny"}]),
        json!([{"methods": ["*"], "effect": "allow"}]),
        json!([{"methods": ["tools/call", "prompts/get"], "effect": "deny"}]),
    ] {
        assert!(warned(rules.clone()).is_empty(), "{rules}");
    }
}

#[test]
fn a_rule_an_earlier_one_shadows_is_flagged_at_load() {
    let warned = |tenancy: bool, rules: Value| {
        let raw: RawPolicy = serde_json::from_value(json!({ "rules": rules })).unwrap();
        let mut warnings = Vec::new();
        raw.compile(tenancy, &mut warnings).unwrap();
        warnings
    };
    // Shadowed: the same tools for every tenant before acme's; `*` before
    // a name; a rule with no subjects before one with subjects.
    for (rules, shadowed, by) in [
        (
            json!([
                {"name": "all", "tenants": ["*"], "tools": ["add", "echo"], "effect": "deny"},
                {"name": "acme", "tenants": ["acme"], "tools": ["add"], "effect": "allow"},
            ]),
            "policy.rules[1] (acme)",
            "policy.rules[0] (all)",
        ),
        (
            json!([
                {"name": "gh", "tenants": ["acme"], "tools": ["github__*"], "effect": "allow"},
                {"name": "gh-issue", "tenants": ["acme"], "tools": ["github__issue"], "effect": "deny"},
            ]),
            "policy.rules[1] (gh-issue)",
            "policy.rules[0] (gh)",
        ),
        (
            json!([
                {"name": "acme", "tenants": ["acme"], "effect": "allow"},
                {"name": "acme-secret", "tenants": ["acme"], "tools": ["secret"], "effect": "deny"},
            ]),
            "policy.rules[1] (acme-secret)",
            "policy.rules[0] (acme)",
        ),
    ] {
        let w = warned(true, rules.clone());
        assert_eq!(w.len(), 1, "{rules}: {w:?}");
        assert!(w[0].starts_with(shadowed) && w[0].contains(by), "{w:?}");
        assert!(w[0].contains("never decides"), "{w:?}");
    }
    // Not shadowed: the specific rule first, other tenants, a claim or a
    // scope the earlier rule does not ask for the later... only the reverse.
    for rules in [
        json!([
            {"name": "gh-issue", "tenants": ["acme"], "tools": ["github__issue"], "effect": "deny"},
            {"name": "gh", "tenants": ["acme"], "tools": ["github__*"], "effect": "allow"},
        ]),
        json!([
            {"name": "acme", "tenants": ["acme"], "tools": ["add"], "effect": "allow"},
            {"name": "globex", "tenants": ["globex"], "tools": ["add"], "effect": "allow"},
        ]),
        json!([
            {"name": "devs", "tenants": ["acme"], "claims": {"groups": "dev"}, "tools": ["add"], "effect": "allow"},
            {"name": "acme", "tenants": ["acme"], "tools": ["add"], "effect": "deny"},
        ]),
        json!([
            {"name": "tools", "tenants": ["acme"], "tools": ["add"], "effect": "allow"},
            {"name": "prompts", "tenants": ["acme"], "prompts": ["add"], "effect": "allow"},
        ]),
        json!([
            {"name": "tools", "tenants": ["acme"], "tools": ["add"], "effect": "allow"},
            {"name": "methods", "tenants": ["acme"], "methods": ["tools/call"], "effect": "deny"},
        ]),
    ] {
        assert!(warned(true, rules.clone()).is_empty(), "{rules}");
    }
}

#[test]
fn a_scope_the_resource_metadata_does_not_advertise_is_flagged() {
    let raw: RawPolicy = serde_json::from_value(json!({ "rules": [
        {"name": "ops", "tools": ["deploy"], "effect": "allow", "require_scopes": ["mcp:ops"]},
        {"name": "admins", "scopes": ["mcp:admin"], "tools": ["*"], "effect": "allow"},
        {"name": "tools", "scopes": ["mcp:tools"], "tools": ["add"], "effect": "allow"},
    ]}))
    .unwrap();
    let policy = raw.compile(false, &mut Vec::new()).unwrap();
    let w = policy.unadvertised_scopes(&["mcp:tools".into()]);
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w[0].starts_with("policy.rules[0] (ops): require_scopes names `mcp:ops`"),
        "{w:?}"
    );
    assert!(
        w[1].starts_with("policy.rules[1] (admins): scopes names `mcp:admin`"),
        "{w:?}"
    );
    assert!(policy
        .unadvertised_scopes(&["mcp:tools".into(), "mcp:ops".into(), "mcp:admin".into()])
        .is_empty());
    // Metadata that lists no scopes advertises nothing to compare with.
    assert!(policy.unadvertised_scopes(&[]).is_empty());
}

// A cross-section lint: native only (the .wasm leaves it out for its size).
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn a_tool_a_rule_names_that_no_backend_publishes_is_flagged() {
    let config = json!({
        "auth": {"issuers": ["https://idp"], "audiences": ["https://mcp"],
            "shared_secret": {"base64": "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk="},
            "resource_metadata": {"resource": "https://mcp", "authorization_servers": ["https://idp"]}},
        "backends": {"servers": [
            {"name": "github", "tools": {"exclude": ["secret"], "aliases": {"open_issue": "create_issue"}}},
            {"name": "jira"}]},
        "policy": {"rules": [
            {"name": "named", "tools": ["github__search", "open_issue", "jira__x", "gitlab__x", "github__secret"], "effect": "allow"},
            {"name": "globs", "tools": ["gitlab__*", "github__*"], "effect": "deny"},
        ]},
    });
    let cfg = crate::config::FilterConfig::from_json(config.to_string().as_bytes()).unwrap();
    let flagged: Vec<&String> = cfg
        .warnings
        .iter()
        .filter(|w| w.contains("no backend publishes"))
        .collect();
    assert_eq!(flagged.len(), 2, "{:?}", cfg.warnings);
    assert!(flagged[0].starts_with("policy.rules[0] (named): names tool `gitlab__x`"));
    assert!(
        flagged[1].contains("`github__secret`"),
        "excluded: {flagged:?}"
    );
}
