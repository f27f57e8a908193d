//! The end-of-request report: the metric samples one exchange produced
//! (rejections, authentication failures, decisions, requests and outcomes
//! per method, durations), with bounded labels; and the series whose labels
//! are all known when the configuration loads.
//!
//! Must not: change the exchange's outcome or anything sent.

use crate::aggregate::Failure;
use crate::auth::token::AuthFailure;
use crate::classify::{MessageKind, Subject};
use crate::config::FilterConfig;
use crate::exchange::Exchange;
use crate::reject::Reason;
use crate::response::Outcome;
use crate::telemetry;
use crate::telemetry::{method_label, stat_name, Labels, MetricKind, Sample};

impl Exchange {
    /// The exchange is over: the samples to record. Learns tool labels from
    /// a `tools/list` the upstream answered.
    pub fn finish(&mut self, now_ms: u64, labels: &mut Labels) -> Vec<Sample> {
        let mut samples = Vec::new();
        if let Some(reason) = self.rejected {
            samples.push(Sample::count(
                labels
                    .names
                    .get(telemetry::REJECTIONS, &[("reason", reason.label())]),
            ));
        }
        if let Some(reason) = self.auth_failure {
            samples.push(Sample::count(
                labels
                    .names
                    .get(telemetry::AUTH_FAILURES, &[("reason", reason)]),
            ));
        }
        if let Some((decision, method, tool)) = &self.decision {
            let tenant = self
                .caller
                .as_ref()
                .and_then(|c| c.tenant.as_deref())
                .map_or("", |t| labels.tenant(t));
            let tool = tool.as_deref().map_or("", |t| labels.tools.label(t));
            let method = method.as_str();
            samples.push(Sample::count(labels.names.get(
                telemetry::AUTHZ_DECISIONS,
                &[
                    ("mcp_method_name", method),
                    ("tenant", tenant),
                    ("decision", decision.label()),
                    // Last: tool names may hold dots, so the tag rule matches to the end.
                    ("gen_ai_tool_name", tool),
                ],
            )));
        }
        for (backend, failure) in &self.backend_failures {
            if let Some(name) = self.backend_name(*backend) {
                samples.push(Sample::count(labels.names.get(
                    telemetry::BACKEND_FAILURES,
                    &[("backend", name), ("reason", failure.label())],
                )));
            }
        }
        // Only pinned tools change: their names are bounded by the configuration.
        labels.tools.learn(&self.pin_changes);
        for tool in &self.pin_changes {
            samples.push(Sample::count(labels.names.get(
                telemetry::TOOL_PIN_MISMATCHES,
                &[("gen_ai_tool_name", labels.tools.label(tool))],
            )));
        }
        let tool_labels = &mut labels.tools;
        let Some(judged) = &self.judged else {
            return samples;
        };
        for message in &judged.body.messages {
            let method = message_label(message.kind, message.method.as_deref());
            samples.push(Sample::count(
                labels
                    .names
                    .get(telemetry::REQUESTS, &[("mcp_method_name", method)]),
            ));
            if let Some(Subject::Tool(tool)) = &message.subject {
                samples.push(Sample::count(labels.names.get(
                    telemetry::TOOL_CALLS,
                    &[("gen_ai_tool_name", tool_labels.label(tool))],
                )));
            }
        }
        let Some(message) = judged.body.single() else {
            return samples;
        };
        let outcome = match (&self.composed, &mut self.response, self.responded) {
            (Some((outcome, listed)), _, _) => {
                tool_labels.learn(listed);
                *outcome
            }
            (None, Some(observer), _) => observer.finish(),
            (None, None, false) => Outcome::NoResponse,
            (None, None, true) => Outcome::Accepted,
        };
        if let Some(observer) = &self.response {
            tool_labels.learn(observer.listed_tools());
        }
        let method = message_label(message.kind, message.method.as_deref());
        let tool = match &message.subject {
            Some(Subject::Tool(tool)) => tool_labels.label(tool),
            _ => "",
        };
        samples.push(Sample::count(labels.names.get(
            telemetry::RESPONSES,
            &[("mcp_method_name", method), ("outcome", outcome.label())],
        )));
        samples.push(Sample::record(
            labels.names.get(
                telemetry::DURATION,
                &[
                    ("mcp_method_name", method),
                    ("error_type", outcome.error_type().unwrap_or("")),
                    ("gen_ai_tool_name", tool),
                ],
            ),
            now_ms.saturating_sub(self.started_ms),
        ));
        samples
    }
}

pub(super) fn message_label(kind: MessageKind, method: Option<&str>) -> &str {
    match (kind, method) {
        (MessageKind::Response, _) | (_, None) => "_response",
        (_, Some(m)) => method_label(m),
    }
}

/// The series whose labels are all known when the configuration loads:
/// rejections by reason, requests by method, authentication failures by
/// reason (with `auth`), backend failures by backend and reason (with
/// `backends`). The shell defines them then, so a dashboard shows them at 0
/// before any traffic and the request path finds them defined. Series with a
/// tenant or a tool label are defined as they are first seen (bounded).
pub fn series_at_load(config: &FilterConfig) -> Vec<(MetricKind, String)> {
    let count = |name: String| (MetricKind::Counter, name);
    let mut series: Vec<(MetricKind, String)> = Reason::ALL
        .iter()
        .map(|r| count(stat_name(telemetry::REJECTIONS, &[("reason", r.label())])))
        .collect();
    series.extend(
        telemetry::method_labels()
            .map(|m| count(stat_name(telemetry::REQUESTS, &[("mcp_method_name", m)]))),
    );
    if config.auth.is_some() {
        let sessions = ["session_unknown", "session_other_caller"];
        series.extend(
            AuthFailure::LABELS
                .iter()
                .chain(&sessions)
                .map(|r| count(stat_name(telemetry::AUTH_FAILURES, &[("reason", r)]))),
        );
    }
    for backend in config.backends.iter().flat_map(|b| &b.servers) {
        series.extend(Failure::LABELS.iter().map(|r| {
            count(stat_name(
                telemetry::BACKEND_FAILURES,
                &[("backend", &backend.name), ("reason", r)],
            ))
        }));
    }
    series
}
