use super::*;
use serde_json::json;

fn policy(tenancy: bool, config: Value) -> Policy {
    let raw: RawPolicy = serde_json::from_value(config).unwrap();
    raw.compile(tenancy).unwrap()
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

fn about<'a>(method: &'a str, kind: SubjectKind, name: &'a str) -> Target<'a> {
    Target {
        method,
        subject: Some((kind, name)),
    }
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
        // Session housekeeping is open to them too, though no rule names it.
        (&outsider, Target::method("logging/setLevel"), "allow"),
        (&outsider, Target::method("tasks/get"), "allow"),
        (&outsider, Target::method("tasks/result"), "allow"),
        (&outsider, Target::method("subscriptions/listen"), "allow"),
        (&nobody, Target::method("logging/setLevel"), "deny"),
        // Housekeeping about a subject follows the subject's decision.
        (
            &dev,
            about("completion/complete", SubjectKind::Prompt, "greet"),
            "allow",
        ),
        (
            &dev,
            about("completion/complete", SubjectKind::Prompt, "other"),
            "deny",
        ),
        (
            &globex,
            about("completion/complete", SubjectKind::Prompt, "greet"),
            "deny",
        ),
        (
            &dev,
            about(
                "completion/complete",
                SubjectKind::Resource,
                "file:///docs/{name}",
            ),
            "allow",
        ),
        (
            &dev,
            about(
                "completion/complete",
                SubjectKind::Resource,
                "file:///etc/{name}",
            ),
            "deny",
        ),
        (
            &dev,
            about(
                "resources/subscribe",
                SubjectKind::Resource,
                "file:///docs/a.md",
            ),
            "allow",
        ),
        (
            &dev,
            about(
                "resources/subscribe",
                SubjectKind::Resource,
                "file:///etc/passwd",
            ),
            "deny",
        ),
        (
            &dev,
            about(
                "resources/unsubscribe",
                SubjectKind::Resource,
                "file:///docs/a.md",
            ),
            "allow",
        ),
        (
            &dev,
            about(
                "subscriptions/listen",
                SubjectKind::Resource,
                "file:///docs/a.md",
            ),
            "allow",
        ),
        (
            &dev,
            about(
                "subscriptions/listen",
                SubjectKind::Resource,
                "file:///etc/passwd",
            ),
            "deny",
        ),
        // Other methods follow the default, which is deny once rules exist.
        (&dev, Target::method("vendor/custom"), "deny"),
        (&dev, Target::method("skills/list"), "deny"),
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
        .decide(&c, &about("completion/complete", SubjectKind::Prompt, "p"))
        .is_allowed());
}

/// The README's example policies name only tools, prompts and resources: the
/// protocol's housekeeping must keep working under them, with the default
/// deny, and follow the subject it is about.
#[test]
fn housekeeping_is_not_denied_by_rules_that_name_only_subjects() {
    let p = policy(
        false,
        json!({"rules": [
            {"name": "greet", "prompts": ["greet"], "effect": "allow"},
            {"name": "docs", "methods": ["resources/read"], "resources": ["file:///docs/*"], "effect": "allow"},
            {"name": "tools", "tools": ["add"], "effect": "allow"},
        ]}),
    );
    let c = caller("a", None, &[], json!({}));
    for method in [
        "initialize",
        "ping",
        "server/discover",
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/roots/list_changed",
        "logging/setLevel",
        "tasks/get",
        "tasks/result",
        "tasks/cancel",
        "tasks/list",
        "tasks/update",
        "subscriptions/listen",
        "tools/list",
        "prompts/list",
        "resources/list",
        "resources/templates/list",
        RESPONSE_METHOD,
    ] {
        let d = p.decide(&c, &Target::method(method));
        assert_eq!(d.verdict, Verdict::Allow, "{method}: {d:?}");
        assert_eq!(d.reason, DecisionReason::Builtin, "{method}");
    }
    // A completion is judged as getting its prompt, a subscription as
    // reading its resource: the rule that decides is named.
    let d = p.decide(
        &c,
        &about("completion/complete", SubjectKind::Prompt, "greet"),
    );
    assert_eq!(
        (d.label(), d.reason.label()),
        ("allow", "rule:greet".into())
    );
    let d = p.decide(
        &c,
        &about("completion/complete", SubjectKind::Prompt, "other"),
    );
    assert_eq!((d.label(), d.reason.label()), ("deny", "default".into()));
    for method in [
        "resources/subscribe",
        "resources/unsubscribe",
        "subscriptions/listen",
        "completion/complete",
    ] {
        let d = p.decide(&c, &about(method, SubjectKind::Resource, "file:///docs/a"));
        assert_eq!(
            (d.label(), d.reason.label()),
            ("allow", "rule:docs".into()),
            "{method}"
        );
        let d = p.decide(&c, &about(method, SubjectKind::Resource, "file:///etc/a"));
        assert_eq!(d.label(), "deny", "{method}");
    }
    // A tool rule says nothing about prompts, and a method-level question
    // is not a subject's.
    assert!(!p
        .decide(
            &c,
            &about("completion/complete", SubjectKind::Prompt, "add")
        )
        .is_allowed());
    assert!(!p
        .decide(&c, &Target::method("completion/complete"))
        .is_allowed());
}

/// A rule that names a housekeeping method is honoured, before or instead
/// of the subject's rule.
#[test]
fn a_rule_naming_a_housekeeping_method_decides_it() {
    let p = policy(
        false,
        json!({"rules": [
            {"name": "quiet", "methods": ["logging/setLevel"], "subjects": ["guest"], "effect": "deny"},
            {"name": "no-completion", "methods": ["completion/complete"], "prompts": ["greet"], "effect": "deny"},
            {"name": "no-subscribe", "methods": ["resources/subscribe"], "effect": "deny"},
            {"name": "no-tasks", "methods": ["tasks/result"], "effect": "deny"},
            {"name": "prompts", "prompts": ["*"], "effect": "allow"},
            {"name": "docs", "resources": ["file:///docs/*"], "effect": "allow"},
        ]}),
    );
    let guest = caller("guest", None, &[], json!({}));
    let user = caller("user", None, &[], json!({}));
    let label = |who: &Caller, t: Target<'_>| {
        let d = p.decide(who, &t);
        format!("{}/{}", d.label(), d.reason.label())
    };
    assert_eq!(
        label(&guest, Target::method("logging/setLevel")),
        "deny/rule:quiet"
    );
    assert_eq!(
        label(&user, Target::method("logging/setLevel")),
        "allow/builtin"
    );
    assert_eq!(
        label(&user, Target::method("tasks/result")),
        "deny/rule:no-tasks"
    );
    assert_eq!(label(&user, Target::method("tasks/get")), "allow/builtin");
    assert_eq!(
        label(
            &user,
            about("completion/complete", SubjectKind::Prompt, "greet")
        ),
        "deny/rule:no-completion"
    );
    assert_eq!(
        label(&user, Target::call(SubjectKind::Prompt, "greet")),
        "allow/rule:prompts"
    );
    assert_eq!(
        label(
            &user,
            about("completion/complete", SubjectKind::Prompt, "other")
        ),
        "allow/rule:prompts"
    );
    // A 2026-07-28 resource subscription is a `resources/subscribe` of it.
    for method in ["resources/subscribe", "subscriptions/listen"] {
        assert_eq!(
            label(
                &user,
                about(method, SubjectKind::Resource, "file:///docs/a")
            ),
            "deny/rule:no-subscribe",
            "{method}"
        );
    }
    assert_eq!(
        label(
            &user,
            about(
                "resources/unsubscribe",
                SubjectKind::Resource,
                "file:///docs/a"
            )
        ),
        "allow/rule:docs"
    );
    assert_eq!(
        label(&user, Target::call(SubjectKind::Resource, "file:///docs/a")),
        "allow/rule:docs"
    );
}

/// A rule about `prompts/get` or `resources/read` answers for the
/// housekeeping that follows them, and only for it.
#[test]
fn a_rule_naming_the_followed_method_answers_for_its_housekeeping() {
    let p = policy(
        false,
        json!({"rules": [
            {"name": "get", "methods": ["prompts/get"], "prompts": ["greet"], "effect": "allow"},
            {"name": "read", "methods": ["resources/read"], "effect": "allow"},
        ]}),
    );
    let c = caller("a", None, &[], json!({}));
    assert!(p
        .decide(
            &c,
            &about("completion/complete", SubjectKind::Prompt, "greet")
        )
        .is_allowed());
    assert!(!p
        .decide(&c, &about("completion/complete", SubjectKind::Prompt, "x"))
        .is_allowed());
    assert!(p
        .decide(
            &c,
            &about("completion/complete", SubjectKind::Resource, "u://{x}")
        )
        .is_allowed());
    assert!(p
        .decide(
            &c,
            &about("subscriptions/listen", SubjectKind::Resource, "u://x")
        )
        .is_allowed());
    // `resources/read` does not stand for a tool call, nor a completion for a read.
    assert!(!p.decide(&c, &tool("t")).is_allowed());
    assert!(!p
        .decide(&c, &about("completion/complete", SubjectKind::Tool, "t"))
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
            .compile(tenancy)
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

fn warnings(tenancy: bool, config: Value) -> Vec<String> {
    policy(tenancy, config).housekeeping_warnings()
}

/// The README's policies, and every policy that names the housekeeping it
/// closes, load without a warning.
#[test]
fn policies_that_deny_no_housekeeping_by_accident_load_quietly() {
    for (tenancy, config) in [
        (
            true,
            json!({"rules": [
                {"name": "secret-needs-admin", "tenants": ["*"], "tools": ["secret"],
                 "effect": "allow", "require_scopes": ["mcp:admin"]},
                {"name": "no-deletes", "tenants": ["*"], "tools": ["*delete*"], "effect": "deny"},
                {"name": "acme-devs", "tenants": ["acme"], "claims": {"groups": ["dev"]},
                 "tools": ["github__*", "add", "echo"], "effect": "allow"},
                {"name": "acme-docs", "tenants": ["acme"], "resources": ["file:///docs/*"], "effect": "allow"},
            ]}),
        ),
        // Method allow-lists leave housekeeping to the built-in rule.
        (
            false,
            json!({"default": "deny", "rules": [
                {"methods": ["tools/call", "tools/list"], "tools": ["add"], "effect": "allow"},
                {"methods": ["prompts/get"], "effect": "allow"},
            ]}),
        ),
        // Housekeeping denied by name is meant.
        (
            false,
            json!({"rules": [
                {"methods": ["logging/setLevel"], "subjects": ["guest"], "effect": "deny"},
                {"methods": ["tasks/get", "tasks/result"], "effect": "deny"},
                {"methods": ["completion/complete"], "prompts": ["*"], "effect": "deny"},
                {"tools": ["*"], "effect": "allow"},
            ]}),
        ),
        // A wildcard that reaches housekeeping only after an earlier rule
        // decided it for every caller.
        (
            false,
            json!({"rules": [
                {"name": "open", "methods": ["logging/*", "tasks/*", "subscriptions/*", "*/list",
                    "initialize", "ping", "server/discover", "notifications/*"], "effect": "allow"},
                {"name": "rest", "methods": ["*"], "subjects": ["guest"], "effect": "deny"},
            ]}),
        ),
        (false, json!({"rules": []})),
    ] {
        let w = warnings(tenancy, config.clone());
        assert!(w.is_empty(), "{config}: {w:#?}");
    }
}

#[test]
fn a_rule_that_denies_housekeeping_without_naming_it_is_flagged_with_its_field() {
    // A wildcard method: names the field, the pattern and the methods.
    let w = warnings(
        false,
        json!({"rules": [
            {"tools": ["add"], "effect": "allow"},
            {"name": "lock", "methods": ["*"], "subjects": ["guest"], "effect": "deny"},
        ]}),
    );
    assert_eq!(w.len(), 1, "{w:#?}");
    for part in [
        "policy.rules[1].methods",
        "`*`",
        "`logging/setLevel`",
        "`initialize`",
        "`tasks/get`",
        "`notifications/initialized`",
    ] {
        assert!(w[0].contains(part), "{part}: {}", w[0]);
    }
    // A narrower wildcard names only what it reaches.
    let w = warnings(
        false,
        json!({"rules": [{"methods": ["logging/*", "tools/call"], "effect": "deny"}]}),
    );
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(w[0].contains("policy.rules[0].methods") && w[0].contains("`logging/*` denies"));
    assert!(
        w[0].contains("`logging/setLevel`") && !w[0].contains("initialize"),
        "{}",
        w[0]
    );
    // A rule about callers only reaches all of it.
    let w = warnings(
        true,
        json!({"rules": [
            {"tenants": ["acme"], "tools": ["*"], "effect": "allow"},
            {"name": "interns", "tenants": ["*"], "claims": {"groups": "interns"}, "effect": "deny"},
        ]}),
    );
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(
        w[0].starts_with("policy.rules[1] (`interns`): naming no methods"),
        "{}",
        w[0]
    );
    assert!(
        w[0].contains("`logging/setLevel`") && w[0].contains("`ping`"),
        "{}",
        w[0]
    );
    // Requiring a scope for everything refuses housekeeping too.
    let w = warnings(
        false,
        json!({"rules": [{"effect": "allow", "require_scopes": ["mcp:use"]}]}),
    );
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(
        w[0].contains("`mcp:use`") && w[0].contains("`initialize`"),
        "{}",
        w[0]
    );
    // Naming one method keeps the rest in the warning.
    let w = warnings(
        false,
        json!({"rules": [
            {"methods": ["logging/setLevel"], "effect": "allow"},
            {"methods": ["*"], "effect": "deny"},
        ]}),
    );
    assert!(
        !w[0].contains("`logging/setLevel`") && w[0].contains("`ping`"),
        "{}",
        w[0]
    );
    // Housekeeping about a subject: a wildcard reaching the completion but
    // not the prompt it is about.
    let w = warnings(
        false,
        json!({"rules": [
            {"methods": ["comp*"], "effect": "deny"},
            {"prompts": ["*"], "effect": "allow"},
        ]}),
    );
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(w[0].contains("`completion/complete`"), "{}", w[0]);
}
