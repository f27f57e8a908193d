//! Requests the filter sends to backends itself (a listing gathered from
//! every backend, a call relayed to the backend its headers did not go to)
//! and the client's answer they become.
//!
//! Must not: pass on a backend's answer it could not read, or carry the
//! client's session to a backend that does not own it.

use crate::aggregate::Aggregation;
use crate::backends::BackendId;
use crate::classify::Classified;
use crate::config::FilterConfig;
use crate::exchange::{header, Cow, Exchange, HeaderEdit, Judged, Phase, Step};
use crate::fetch::{BackendAnswer, Fetch};
use crate::jsonrpc::code;
use crate::listing::{ListKind, Listed};
use crate::pins::PinVerdict;
use crate::policy::{Caller, Target};
use crate::relay::{Relay, Relayed};
use crate::response::Outcome;

impl Exchange {
    /// What the filter's own requests carry: the client's forwarded headers,
    /// the upstream credential if one is configured, and the session id the
    /// default backend knows.
    fn take_fanout(&mut self) -> (Vec<(String, String)>, Option<String>) {
        let Fanout {
            mut forward,
            session,
        } = self.fanout.take().unwrap_or_default();
        if let Some(credential) = self
            .config
            .auth
            .as_ref()
            .and_then(|a| a.upstream_authorization.clone())
        {
            forward.push(("authorization".into(), credential));
        }
        (forward, session)
    }

    /// What cannot be sent where it was judged to go is not sent anywhere
    /// else (the headers' route would take it to another backend).
    fn unroutable(&mut self, id: Option<crate::jsonrpc::RequestId>) -> Step {
        self.refuse(
            crate::reject::Rejection::new(
                crate::reject::Reason::Unroutable,
                "the request cannot be sent to the backend it names",
            )
            .with_id(id),
        )
    }

    /// Sends the call to its backend; the answer waits for the backend's.
    pub(super) fn start_relay(
        &mut self,
        backend: BackendId,
        classified: Classified,
        body: Vec<u8>,
        mut properties: Vec<(&'static str, String)>,
    ) -> Step {
        let config = self.config.clone();
        let id = classified.single().and_then(|m| m.id.clone());
        let Some(backends) = config.backends.as_ref() else {
            return self.unroutable(id);
        };
        let (forward, session) = self.take_fanout();
        // The client's session is the default backend's (and only its).
        let session = session.filter(|_| backend == backends.default);
        let Some((relay, fetch)) = Relay::start(
            backends,
            backend,
            id.clone(),
            body,
            &forward,
            session.as_deref(),
            config.max_response_bytes,
        ) else {
            return self.unroutable(id);
        };
        if let Some(name) = self.backend_name(backend) {
            properties.push(("mcp_backend", name.to_string()));
        }
        self.relayed = true;
        self.judged = Some(Judged { body: classified });
        self.phase = Phase::Relaying(relay);
        let mut step = Step::pause();
        step.properties = properties;
        step.fetches.push(fetch);
        step
    }

    /// Sends the listing to every backend; the answer waits for theirs.
    pub(super) fn start_gathering(
        &mut self,
        kind: ListKind,
        classified: Classified,
        body: &[u8],
        properties: Vec<(&'static str, String)>,
    ) -> Step {
        let config = self.config.clone();
        let (Some(backends), Some(id)) = (
            config.backends.as_ref(),
            classified.single().and_then(|m| m.id.clone()),
        ) else {
            return self.unroutable(classified.single().and_then(|m| m.id.clone()));
        };
        let (forward, session) = self.take_fanout();
        let (aggregation, fetches) = Aggregation::start(
            backends,
            kind,
            id,
            body,
            forward,
            session,
            config.max_response_bytes,
        );
        self.judged = Some(Judged { body: classified });
        self.phase = Phase::Aggregating {
            aggregation,
            names: (self.learn_tool_labels && kind == ListKind::Tools).then(Vec::new),
        };
        let mut step = Step::pause();
        step.properties = properties;
        step.fetches = fetches;
        step
    }

    /// A backend answered a request the filter sent it (`status` `None`:
    /// the call failed): a relayed call's answer is the client's; the last
    /// answer to a gathered listing completes it. Either way the step may
    /// then answer the client.
    pub fn on_backend_answer(&mut self, backend: BackendId, answer: BackendAnswer<'_>) -> Step {
        let (mut aggregation, mut published) = match self.take_phase() {
            Phase::Relaying(relay) => return self.settle_relay(relay.answer(answer)),
            Phase::Aggregating { aggregation, names } => (aggregation, names),
            other => {
                self.phase = other;
                return Step::pause();
            }
        };
        let config = self.config.clone();
        let Some(backends) = config.backends.as_ref() else {
            return Step::pause();
        };
        let kind = aggregation.kind();
        let caller = self.caller.clone();
        let mut lister = Lister {
            config: &config,
            caller: caller.as_deref(),
            kind,
            backend: Some(backend),
            published: published.as_mut(),
            pin_changes: &mut self.pin_changes,
        };
        let mut decide = |name: &str, item: &str| lister.decide(name, item);
        let next = aggregation.on_answer(backends, backend, answer, &mut decide);
        self.settle_gathering(aggregation, published, next)
    }

    /// A request to a backend could not be sent at all.
    pub fn on_backend_unreachable(&mut self, backend: BackendId) -> Step {
        match self.take_phase() {
            Phase::Relaying(relay) => self.settle_relay(relay.unreachable()),
            Phase::Aggregating {
                mut aggregation,
                names,
            } => {
                aggregation.unreachable(backend);
                self.settle_gathering(aggregation, names, None)
            }
            other => {
                self.phase = other;
                Step::pause()
            }
        }
    }

    pub(super) fn settle_relay(&mut self, relayed: Relayed) -> Step {
        if let (Some(failure), Some(backend)) = (relayed.failure, self.backend) {
            self.backend_failures.push((backend, failure));
        }
        self.composed = Some((relayed.outcome, Vec::new()));
        self.answer(relayed.reply)
    }

    pub(super) fn settle_gathering(
        &mut self,
        aggregation: Aggregation,
        names: Option<Vec<String>>,
        next: Option<Fetch>,
    ) -> Step {
        if !aggregation.is_complete() {
            let mut step = Step::pause();
            step.fetches.extend(next);
            self.phase = Phase::Aggregating { aggregation, names };
            return step;
        }
        self.backend_failures = aggregation.failures().to_vec();
        let reply = aggregation.reply();
        let outcome = if reply.status == 200 {
            Outcome::Result
        } else {
            Outcome::RpcError(code::INTERNAL_ERROR)
        };
        self.composed = Some((outcome, names.unwrap_or_default()));
        self.answer(reply)
    }

    /// What became of backends that failed a gathered listing or a relayed
    /// call, one log line each.
    pub fn backend_failures(&self) -> Vec<String> {
        let what = if self.relayed {
            "gave no answer to pass on for the relayed call"
        } else {
            "left out of the listing"
        };
        self.backend_failures
            .iter()
            .filter_map(|(b, f)| {
                let name = self.backend_name(*b)?;
                Some(format!("backend `{name}` {what}: {}", f.label()))
            })
            .collect()
    }
}

/// Decides listed items for one caller, from one backend's listing.
pub(super) struct Lister<'a> {
    pub config: &'a FilterConfig,
    pub caller: Option<&'a Caller>,
    pub kind: ListKind,
    pub backend: Option<BackendId>,
    /// Public names before the policy (metric labels: a tool hidden from
    /// one caller is still a tool of the server), while label slots are free.
    pub published: Option<&'a mut Vec<String>>,
    /// Public names of pinned tools listed with another definition.
    pub pin_changes: &'a mut Vec<String>,
}

impl Lister<'_> {
    /// What a listed item becomes: its backend's public name (or hidden, if
    /// that backend does not publish it), hidden if it is a tool whose
    /// definition is not the pinned one, then the policy's decision on that
    /// name. Calls are decided on the same public name, so listed <=> callable.
    pub fn decide(&mut self, name: &str, item: &str) -> Listed {
        let config = self.config;
        let public = match (config.backends.as_ref(), self.kind.named()) {
            (Some(backends), Some(named)) if backends.renames(named) => {
                match self.backend.and_then(|b| backends.publish(named, b, name)) {
                    Some(public) => public,
                    None => return Listed::Hide,
                }
            }
            _ => Cow::Borrowed(name),
        };
        if let Some(names) = self.published.as_deref_mut() {
            names.push(public.to_string());
        }
        if let (Some(pins), ListKind::Tools) = (&config.pins, self.kind) {
            let server = self.backend.map_or(0, BackendId::index);
            match pins.judge_listed(server, name, item) {
                PinVerdict::Pass => {}
                PinVerdict::Unpinned => return Listed::Hide,
                PinVerdict::Changed => {
                    self.pin_changes.push(public.into_owned());
                    return Listed::Hide;
                }
            }
        }
        if config.auth.is_some() {
            let allowed = self.caller.is_some_and(|caller| {
                config
                    .policy
                    .decide(caller, &Target::call(self.kind.subject_kind(), &public))
                    .is_allowed()
            });
            if !allowed {
                return Listed::Hide;
            }
        }
        if public == name {
            Listed::Keep
        } else {
            Listed::Rename(public.into_owned())
        }
    }
}

/// What a gathered listing carries to each backend.
#[derive(Debug, Default)]
pub(super) struct Fanout {
    /// Headers as the client sent them (protocol version, mirrored method).
    forward: Vec<(String, String)>,
    /// The session id the default backend knows.
    session: Option<String>,
}

/// The headers a gathered listing carries to each backend, as the client
/// sent them, and the session id the default backend knows.
pub(super) fn fanout_headers(headers: &[(String, String)], auth_edits: &[HeaderEdit]) -> Fanout {
    let forward = ["mcp-protocol-version", "mcp-method"]
        .into_iter()
        .filter_map(|name| header(headers, name).map(|v| (name.to_string(), v.to_string())))
        .collect();
    let unwrapped = auth_edits.iter().find_map(|edit| match edit {
        HeaderEdit::Set(name, value) if name == "mcp-session-id" => Some(value.clone()),
        _ => None,
    });
    let session = unwrapped.or_else(|| header(headers, "mcp-session-id").map(str::to_string));
    Fanout { forward, session }
}
