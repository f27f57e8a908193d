//! The response path: the session id wrapped for the caller, a listing
//! filtered and renamed (JSON held whole, SSE event by event), the outcome
//! observed for metrics.
//!
//! Must not: let a listing answer it cannot read reach the client, or change
//! any other response.

use crate::exchange::{header, Exchange, HeaderEdit, Lister, Phase, Step};
use crate::jsonrpc::RequestId;
use crate::listing;
use crate::listing::{ListKind, SseListingFilter, Unfilterable};
use crate::response::{Framing, Outcome, ResponseObserver};

impl Exchange {
    /// Response headers arrived (from the upstream, or a local reply).
    pub fn on_response_headers(&mut self, status: u16, headers: &[(String, String)]) -> Step {
        let mut edits = Vec::new();
        if let (Some(binding), Some(caller), Some(upstream)) = (
            &self.config.sessions,
            &self.caller,
            header(headers, "mcp-session-id"),
        ) {
            if !matches!(self.phase, Phase::Answered) {
                match binding.wrap(caller, upstream) {
                    Some(wrapped) => edits.push(HeaderEdit::Set("mcp-session-id".into(), wrapped)),
                    None => edits.push(HeaderEdit::Remove("mcp-session-id".into())),
                }
            }
        }
        let mut step = self.observe_response_headers(status, headers);
        if let Some(listing) = &self.listing {
            // The body changes length; Envoy then frames it chunked.
            edits.push(HeaderEdit::Remove("content-length".into()));
            if matches!(listing.framing, ListingFraming::Refused { .. }) {
                // What replaces the answer is plain JSON.
                edits.push(HeaderEdit::Remove("content-encoding".into()));
                edits.push(HeaderEdit::Set(
                    "content-type".into(),
                    "application/json".into(),
                ));
            }
        }
        step.header_edits.extend(edits);
        step
    }

    pub(super) fn observe_response_headers(
        &mut self,
        status: u16,
        headers: &[(String, String)],
    ) -> Step {
        if matches!(self.phase, Phase::NoBodyAllowed) && self.filters_listings() {
            self.listing = Some(self.replay_rewrite(headers));
        }
        if matches!(self.phase, Phase::Forwarded) {
            self.responded = true;
            self.listing = self.listing_rewrite(headers);
            if let Some(judged) = &self.judged {
                if let Some(message) = judged.body.single() {
                    let framing = Framing::from_content_type(header(headers, "content-type"));
                    let observer = ResponseObserver::new(
                        status,
                        framing,
                        message.id.as_ref(),
                        self.config.max_response_bytes,
                    );
                    let learn = self.learn_tool_labels;
                    self.response = Some(
                        if learn && message.method.as_deref() == Some("tools/list") {
                            observer.collecting_tools()
                        } else {
                            observer
                        },
                    );
                }
            }
        }
        Step::go()
    }

    /// Whether listings may be filtered or renamed here (policy rules,
    /// backends that rename or hide names, or pinned tools).
    pub(super) fn filters_listings(&self) -> bool {
        (self.config.auth.is_some() && self.config.policy.has_rules())
            || self.config.backends.is_some()
            || self.config.pins.is_some()
    }

    /// A resumed stream (a GET; a DELETE is held to the same) may replay the
    /// answer to a listing: its events are read for one (`listing::replay`).
    /// Anything else it carries that could hold one is refused.
    fn replay_rewrite(&self, headers: &[(String, String)]) -> ListingRewrite {
        let max = self.config.max_response_bytes;
        let replayed = |_| SseListingFilter::replayed(max);
        ListingRewrite {
            kind: ListKind::Tools,
            framing: framing(headers, RequestId::unknown(), replayed, false),
            listed: None,
        }
    }

    /// Whether (and how) this response's listing is filtered: only when a
    /// policy with rules applies, the backend's names are rewritten or tools
    /// are pinned, the request was a single listing, and the upstream
    /// answered 2xx in JSON or SSE.
    pub(super) fn listing_rewrite(&self, headers: &[(String, String)]) -> Option<ListingRewrite> {
        let message = self.judged.as_ref()?.body.single()?;
        let kind = ListKind::from_method(message.method.as_deref()?)?;
        let policy_applies = self.config.auth.is_some() && self.config.policy.has_rules();
        let renamed = kind
            .named()
            .zip(self.config.backends.as_ref())
            .is_some_and(|(named, backends)| backends.renames(named));
        let pinned = kind == ListKind::Tools && self.config.pins.is_some();
        if !policy_applies && !renamed && !pinned {
            return None;
        }
        let id = message.id.clone()?;
        let max = self.config.max_response_bytes;
        let answer = |id| SseListingFilter::new(kind, id, max);
        let framing = framing(headers, id, answer, true);
        let listed = (self.learn_tool_labels && kind == ListKind::Tools).then(Vec::new);
        Some(ListingRewrite {
            kind,
            framing,
            listed,
        })
    }

    /// A response body chunk: only the bytes new since the last call. Observed
    /// for metrics; a filtered listing is rewritten (JSON: held whole, then
    /// replaced; SSE: each chunk replaced by the events it completes).
    pub fn on_response_body(&mut self, chunk: &[u8], end_of_stream: bool) -> Step {
        let Some(listing) = self.listing.as_mut() else {
            if let Some(observer) = &mut self.response {
                observer.observe(chunk);
            }
            return Step::go();
        };
        let config = &self.config;
        let caller = self.caller.as_deref();
        let backend = self.backend.or(config.backends.as_ref().map(|b| b.default));
        let ListingRewrite {
            kind,
            framing,
            listed,
        } = listing;
        let kind = *kind;
        let mut lister = Lister {
            config,
            caller,
            kind,
            backend,
            published: listed.as_mut(),
            pin_changes: &mut self.pin_changes,
        };
        let mut decide = |name: &str, item: &str| lister.decide(name, item);
        let max = config.max_response_bytes;
        let (out, answered) = match framing {
            ListingFraming::Held {
                request_id,
                body,
                json,
            } => {
                if body.len() + chunk.len() > max {
                    let why = format!("the answer is larger than max_response_bytes ({max})");
                    let mut step = Step::go();
                    step.body = Some(if end_of_stream {
                        listing::unfilterable_error(request_id, &Unfilterable(why))
                    } else {
                        let request_id = request_id.clone();
                        *framing = ListingFraming::Refused { request_id, why };
                        Vec::new()
                    });
                    return step;
                }
                body.extend_from_slice(chunk);
                if !end_of_stream {
                    return Step::pause();
                }
                let text = body.trim_ascii();
                if *json || text.first() == Some(&b'{') {
                    let (out, hidden) =
                        listing::filter_json_body(text, kind, request_id, &mut decide);
                    (out, hidden.is_some())
                } else if could_carry(text) {
                    let why = Unfilterable("the answer is not JSON or SSE".into());
                    (listing::unfilterable_error(request_id, &why), false)
                } else {
                    (std::mem::take(body), false)
                }
            }
            ListingFraming::Refused { request_id, why } => {
                let out = if end_of_stream {
                    listing::unfilterable_error(request_id, &Unfilterable(why.clone()))
                } else {
                    Vec::new()
                };
                (out, false)
            }
            ListingFraming::Sse(filter) => {
                // A resumed stream's answers may be any kind of listing.
                let mut decide = |kind: ListKind, name: &str, item: &str| {
                    lister.kind = kind;
                    lister.decide(name, item)
                };
                let out = filter.push(chunk, end_of_stream, &mut decide);
                (out, filter.answered)
            }
        };
        if answered && self.composed.is_none() {
            let names = listed.take().unwrap_or_default();
            self.composed = Some((Outcome::Result, names));
        } else if let Some(observer) = &mut self.response {
            // Not (yet) the rewritten answer: an error, or other events.
            observer.observe(&out);
        }
        let mut step = Step::go();
        step.body = Some(out);
        step
    }

    /// Response trailers: the end of the body. A listing held whole is
    /// rewritten now (`body` replaces what Envoy holds), never released
    /// unread; an SSE event left unfinished is dropped.
    pub fn on_response_trailers(&mut self) -> Step {
        let Some(listing) = &mut self.listing else {
            return Step::go();
        };
        match &mut listing.framing {
            ListingFraming::Sse(_) => {
                self.listing = None;
                Step::go()
            }
            _ => self.on_response_body(&[], true),
        }
    }
}

/// A listing response being filtered.
pub(super) struct ListingRewrite {
    kind: ListKind,
    framing: ListingFraming,
    /// The public names published (before the caller's policy), collected
    /// for metric labels (tools, while label slots are free): the rewrite
    /// reads every name anyway, so the response is not parsed a second time.
    listed: Option<Vec<String>>,
}

pub(super) enum ListingFraming {
    /// The whole body is held, then rewritten: `application/json`, or
    /// (`json: false`) another or no content type, rewritten if it is JSON,
    /// refused if it could still carry the listing, else passed.
    Held {
        request_id: RequestId,
        body: Vec<u8>,
        json: bool,
    },
    /// `text/event-stream`: events are rewritten as they complete.
    Sse(SseListingFilter),
    /// An answer the filter cannot read (encoded, or over
    /// `max_response_bytes`): nothing of it passes; an error takes its place.
    Refused { request_id: RequestId, why: String },
}

/// How an answer that may carry a listing is read, whatever its status or
/// content type (a client may still read a listing out of it: fail closed):
/// refused when encoded, event by event when SSE (`sse` builds the filter),
/// else held whole. `typed_json`: a body typed as JSON is read as the
/// answer; otherwise it is read like any body the filter does not frame.
fn framing(
    headers: &[(String, String)],
    request_id: RequestId,
    sse: impl FnOnce(RequestId) -> SseListingFilter,
    typed_json: bool,
) -> ListingFraming {
    if encoded(headers) {
        let why = "the answer has a Content-Encoding the filter cannot read".into();
        return ListingFraming::Refused { request_id, why };
    }
    match Framing::from_content_type(header(headers, "content-type")) {
        Framing::Sse => ListingFraming::Sse(sse(request_id)),
        framing => ListingFraming::Held {
            request_id,
            body: Vec::new(),
            json: typed_json && framing == Framing::Json,
        },
    }
}

/// Whether the body comes encoded (the filter cannot read it).
fn encoded(headers: &[(String, String)]) -> bool {
    header(headers, "content-encoding")
        .is_some_and(|e| !e.trim().is_empty() && !e.trim().eq_ignore_ascii_case("identity"))
}

/// Whether bytes that are neither JSON nor SSE to the filter could still be
/// read as a listing by a client: they hold an object. Not a search for the
/// array's key, which a JSON string may spell with escapes (`t\u006fols`);
/// an object's brace has one spelling (a client that reads
/// `text/event-stream,text/plain` as SSE finds its events here).
pub(super) fn could_carry(text: &[u8]) -> bool {
    text.contains(&b'{')
}
