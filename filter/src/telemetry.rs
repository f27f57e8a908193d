//! Metric names. Each sample is an Envoy stat whose name carries its labels as
//! `.key=value` segments; `stats_tags` in the Envoy bootstrap turn them into
//! Prometheus labels (see `envoy.yaml`). Label values are bounded: unknown
//! methods and tools fold into `_other`, so a client cannot mint new series.
//!
//! Names follow the OpenTelemetry MCP semantic conventions where they fit
//! (`mcp_method_name`, `gen_ai_tool_name`, `error_type`); the duration
//! histogram is in milliseconds because Envoy histograms hold integers.

use std::collections::HashSet;
use std::rc::Rc;

mod stat_names;
pub use stat_names::StatNames;

pub const REQUESTS: &str = "mcp_requests_total";
pub const TOOL_CALLS: &str = "mcp_tool_calls_total";
pub const RESPONSES: &str = "mcp_responses_total";
pub const REJECTIONS: &str = "mcp_rejections_total";
pub const DURATION: &str = "mcp_server_operation_duration_milliseconds";
pub const AUTHZ_DECISIONS: &str = "mcp_authz_decisions_total";
pub const AUTH_FAILURES: &str = "mcp_auth_failures_total";
pub const BACKEND_FAILURES: &str = "mcp_backend_failures_total";
pub const TOOL_PIN_MISMATCHES: &str = "mcp_tool_pin_mismatches_total";

/// The label value for anything outside the bounded set.
pub const OTHER: &str = "_other";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Histogram,
}

/// One value to record: counters add `value`, histograms record it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub kind: MetricKind,
    /// Shared: the same series' name is made once per worker ([`StatNames`]).
    pub name: Rc<str>,
    pub value: u64,
}

impl Sample {
    pub fn count(name: impl Into<Rc<str>>) -> Self {
        Self {
            kind: MetricKind::Counter,
            name: name.into(),
            value: 1,
        }
    }

    pub fn record(name: impl Into<Rc<str>>, value: u64) -> Self {
        Self {
            kind: MetricKind::Histogram,
            name: name.into(),
            value,
        }
    }
}

/// Builds a stat name from a base and label segments (empty values are left out).
pub fn stat_name(base: &str, labels: &[(&str, &str)]) -> String {
    let mut name = String::from(base);
    for (key, value) in labels {
        if !value.is_empty() {
            name.push('.');
            name.push_str(key);
            name.push('=');
            name.push_str(value);
        }
    }
    name
}

/// Every label key a stat name may carry, in no particular order.
const LABEL_KEYS: &[&str] = &[
    "mcp_method_name",
    "outcome",
    "error_type",
    "tenant",
    "decision",
    "reason",
    "backend",
    "gen_ai_tool_name",
];

/// Where each `.key=` segment of a stat name starts, in order.
fn label_starts(name: &str) -> Vec<(usize, &'static str)> {
    // Label values may hold dots (tool names), so find the `.key=` segments.
    let mut at: Vec<(usize, &'static str)> = LABEL_KEYS
        .iter()
        .filter_map(|key| {
            let needle = format!(".{key}=");
            name.find(&needle).map(|i| (i, *key))
        })
        .collect();
    at.sort_unstable();
    at
}

/// A stat name read back: its base and its labels in order.
pub fn split_stat_name(name: &str) -> (&str, Vec<(&'static str, &str)>) {
    let at = label_starts(name);
    let base_end = at.first().map_or(name.len(), |(i, _)| *i);
    let mut labels = Vec::with_capacity(at.len());
    for (n, (start, key)) in at.iter().enumerate() {
        let value_start = start + key.len() + 2;
        let value_end = at.get(n + 1).map_or(name.len(), |(next, _)| *next);
        labels.push((*key, name.get(value_start..value_end).unwrap_or("")));
    }
    (name.get(..base_end).unwrap_or(name), labels)
}

/// Each metric with the label keys its samples may carry, in the order a
/// shell that defines labelled metrics up front (the dynamic module) passes
/// them. Every sample's labels are a subset of its metric's, in this order.
pub const METRICS: &[(&str, MetricKind, &[&str])] = &[
    (REQUESTS, MetricKind::Counter, &["mcp_method_name"]),
    (TOOL_CALLS, MetricKind::Counter, &["gen_ai_tool_name"]),
    (
        RESPONSES,
        MetricKind::Counter,
        &["mcp_method_name", "outcome"],
    ),
    (REJECTIONS, MetricKind::Counter, &["reason"]),
    (
        DURATION,
        MetricKind::Histogram,
        &["mcp_method_name", "error_type", "gen_ai_tool_name"],
    ),
    (
        AUTHZ_DECISIONS,
        MetricKind::Counter,
        &["mcp_method_name", "tenant", "decision", "gen_ai_tool_name"],
    ),
    (AUTH_FAILURES, MetricKind::Counter, &["reason"]),
    (
        BACKEND_FAILURES,
        MetricKind::Counter,
        &["backend", "reason"],
    ),
    (
        TOOL_PIN_MISMATCHES,
        MetricKind::Counter,
        &["gen_ai_tool_name"],
    ),
];

/// The series a sample folds into once a VM has defined `max_series`
/// series: every label value becomes `_other`, so the series left to define
/// are at most one per metric and label set, whatever the traffic.
pub fn folded_series(name: &str) -> String {
    let (base, labels) = split_stat_name(name);
    let mut folded = String::from(base);
    for (key, _) in labels {
        folded.push('.');
        folded.push_str(key);
        folded.push('=');
        folded.push_str(OTHER);
    }
    folded
}

/// Methods of MCP 2025-03-26 through 2026-07-28 a client sends to a server.
const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "completion/complete",
    "logging/setLevel",
    "tasks/get",
    "tasks/list",
    "tasks/result",
    "tasks/cancel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "notifications/tasks/status",
    "subscriptions/listen",
];

/// Every `mcp_method_name` label: the known methods, `_other` and, for a
/// client's responses, `_response`.
pub fn method_labels() -> impl Iterator<Item = &'static str> {
    KNOWN_METHODS.iter().copied().chain([OTHER, "_response"])
}

/// The `mcp_method_name` label: the method if it is a known MCP method.
pub fn method_label(method: &str) -> &str {
    KNOWN_METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or(OTHER)
}

/// The spec's tool-name alphabet, which is also safe inside a stat name.
pub fn is_label_safe_tool_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Which tools get their own label: the configured ones, then tools the
/// upstream itself listed, up to a bound. A client calling made-up names
/// cannot add labels; a server listing thousands of tools stops at the bound.
/// The bounded label sets a VM keeps: tools (configured and learned from
/// listings) and tenants (learned from verified tokens).
#[derive(Debug, Clone, Default)]
pub struct Labels {
    pub tools: ToolLabels,
    pub tenants: ToolLabels,
    /// The names of the series seen so far.
    pub names: StatNames,
}

impl Labels {
    pub fn new(tools: ToolLabels, tenants: ToolLabels) -> Self {
        Self {
            tools,
            tenants,
            names: StatNames::default(),
        }
    }

    pub fn with_tools(tools: ToolLabels) -> Self {
        Self::new(tools, ToolLabels::default())
    }

    /// The tenant's label, learning it while there is room.
    pub fn tenant<'a>(&mut self, tenant: &'a str) -> &'a str {
        // Dots would split the stat name into more segments than the tag rules expect.
        if !tenant.contains('.') {
            self.tenants.learn([&tenant.to_string()]);
        }
        self.tenants.label(tenant)
    }
}

#[derive(Debug, Clone, Default)]
pub struct ToolLabels {
    known: HashSet<String>,
    max: usize,
}

impl ToolLabels {
    pub fn new(configured: &[String], max: usize) -> Self {
        let mut labels = Self {
            known: HashSet::new(),
            max,
        };
        for tool in configured {
            labels.known.insert(tool.clone());
        }
        labels
    }

    /// Learns names from a `tools/list` result the upstream sent.
    /// No room for another learned label.
    pub fn is_full(&self) -> bool {
        self.known.len() >= self.max
    }

    pub fn learn<'a>(&mut self, listed: impl IntoIterator<Item = &'a String>) {
        for tool in listed {
            if self.known.len() >= self.max {
                break;
            }
            if is_label_safe_tool_name(tool) && !self.known.contains(tool) {
                self.known.insert(tool.clone());
            }
        }
    }

    /// The `gen_ai_tool_name` label for a called tool.
    pub fn label<'a>(&self, tool: &'a str) -> &'a str {
        if self.known.contains(tool) {
            tool
        } else {
            OTHER
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_name_reads_back_into_its_metric_and_labels_even_with_dotted_values() {
        let labels = [
            ("mcp_method_name", "tools/call"),
            ("tenant", "acme"),
            ("decision", "allow"),
            ("gen_ai_tool_name", "gh.create.issue"),
        ];
        let name = stat_name(AUTHZ_DECISIONS, &labels);
        assert_eq!(split_stat_name(&name), (AUTHZ_DECISIONS, labels.to_vec()));
        assert_eq!(split_stat_name(REQUESTS), (REQUESTS, vec![]));
    }

    #[test]
    fn every_series_known_at_load_fits_its_metrics_declared_labels() {
        let config = crate::config::FilterConfig::from_json(
            br#"{"backends": {"servers": [{"name": "a", "cluster": "a"}, {"name": "b", "cluster": "b"}]}}"#,
        )
        .unwrap();
        let series = crate::exchange::series_at_load(&config);
        assert!(!series.is_empty());
        for (kind, name) in series {
            let (base, labels) = split_stat_name(&name);
            let (_, declared_kind, keys) = METRICS
                .iter()
                .find(|(m, _, _)| *m == base)
                .unwrap_or_else(|| panic!("{base} is not in METRICS"));
            assert_eq!(*declared_kind, kind, "{name}");
            let mut declared = keys.iter();
            for (key, _) in labels {
                assert!(
                    declared.any(|k| *k == key),
                    "{name}: `{key}` out of order or undeclared"
                );
            }
        }
    }

    #[test]
    fn a_folded_series_keeps_the_metric_and_its_label_keys_only() {
        let name = stat_name(
            AUTHZ_DECISIONS,
            &[
                ("mcp_method_name", "tools/call"),
                ("tenant", "acme"),
                ("decision", "allow"),
                ("gen_ai_tool_name", "gh.create.issue"),
            ],
        );
        assert_eq!(
            folded_series(&name),
            "mcp_authz_decisions_total.mcp_method_name=_other.tenant=_other.decision=_other.gen_ai_tool_name=_other"
        );
        assert_eq!(folded_series(REJECTIONS), REJECTIONS);
        // Two different series fold into the same one.
        let other = stat_name(
            AUTHZ_DECISIONS,
            &[
                ("mcp_method_name", "tools/list"),
                ("tenant", "globex"),
                ("decision", "deny"),
                ("gen_ai_tool_name", "x"),
            ],
        );
        assert_eq!(folded_series(&name), folded_series(&other));
    }

    #[test]
    fn stat_names_carry_labels_as_segments() {
        assert_eq!(
            stat_name(DURATION, &[("mcp_method_name", "tools/call"), ("error_type", ""), ("gen_ai_tool_name", "a.b")]),
            "mcp_server_operation_duration_milliseconds.mcp_method_name=tools/call.gen_ai_tool_name=a.b"
        );
    }

    #[test]
    fn unknown_methods_fold_into_other() {
        assert_eq!(method_label("tools/call"), "tools/call");
        assert_eq!(method_label("tools/call.evil=1"), OTHER);
        assert_eq!(method_label(""), OTHER);
    }

    #[test]
    fn only_configured_or_listed_tools_get_a_label_up_to_the_bound() {
        let mut labels = ToolLabels::new(&["add".to_string()], 3);
        assert_eq!(labels.label("add"), "add");
        assert_eq!(labels.label("made_up"), OTHER);
        let listed: Vec<String> = ["echo", "bad name", "x", "y", "z"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        labels.learn(&listed);
        assert_eq!(labels.label("echo"), "echo");
        assert_eq!(labels.label("bad name"), OTHER);
        assert_eq!(labels.label("x"), "x");
        assert_eq!(labels.label("y"), OTHER, "bound of 3 reached");
    }

    #[test]
    fn tool_names_follow_the_spec_alphabet() {
        assert!(is_label_safe_tool_name("github__create_issue"));
        assert!(is_label_safe_tool_name("a.b-c_d"));
        assert!(!is_label_safe_tool_name(""));
        assert!(!is_label_safe_tool_name("a=b"));
        assert!(!is_label_safe_tool_name(&"x".repeat(129)));
    }
}
