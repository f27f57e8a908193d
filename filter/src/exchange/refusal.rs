//! Refusals: the error of the request path, and the one place a refusal
//! becomes the client's answer (status, JSON-RPC error, challenge headers)
//! and its metric reason.
//!
//! Must not: decide whether to refuse (the modules that judge do), or say
//! more than what was asked for and which rule of the protocol it broke.

use crate::auth::challenge;
use crate::auth::token::AuthFailure;
use crate::exchange::{json_content_type, Exchange, Step};
use crate::jsonrpc::{code, error_body, RequestId};
use crate::policy::DenyWith;
use crate::reject::{LocalReply, Rejection};
use crate::session::SessionError;

/// Why the filter answers a request itself instead of passing it on.
#[derive(Debug)]
pub(super) enum Refusal {
    /// Malformed, unroutable, unreadable the way the server would read it,
    /// or not the endpoint's business: one of `reject::Reason`.
    Rejected(Rejection),
    /// No valid credential: 401 with the challenge (503 without keys or clock).
    Unauthenticated(AuthFailure),
    /// A session id the filter did not issue to this caller: 404.
    Session(SessionError),
    /// The policy denies what the message asks for: the JSON-RPC error, as
    /// `policy.deny_with` says for a single request, else 403.
    Denied {
        id: Option<RequestId>,
        what: String,
        /// The message is one element of a batch.
        in_batch: bool,
    },
    /// A pinned tool that changed, or an unpinned one: answered like a
    /// denial (`policy.deny_with` for a single request, else 403).
    Unvouched {
        rejection: Rejection,
        in_batch: bool,
    },
    /// More scopes would allow it: 403 `insufficient_scope`, the step-up challenge.
    StepUp {
        id: Option<RequestId>,
        what: String,
        scopes: Vec<String>,
    },
}

impl From<Rejection> for Refusal {
    fn from(rejection: Rejection) -> Self {
        Refusal::Rejected(rejection)
    }
}

impl Exchange {
    /// Answers the request with `refusal`, and records why.
    pub(super) fn refuse(&mut self, refusal: impl Into<Refusal>) -> Step {
        match refusal.into() {
            Refusal::Rejected(rejection) => {
                self.rejected = Some(rejection.reason);
                self.answer(rejection.reply())
            }
            Refusal::Unauthenticated(failure) => {
                self.auth_failure = Some(failure.label());
                let reply = match (&self.config.auth, &failure) {
                    (_, AuthFailure::NoKeys) | (None, _) => challenge::keys_unavailable(),
                    (Some(auth), _) => challenge::unauthorized(&failure, &auth.metadata),
                };
                let mut step = self.answer(reply);
                step.properties.push((
                    "mcp_decision",
                    format!("unauthenticated:{}", failure.label()),
                ));
                step
            }
            Refusal::Session(error) => {
                self.auth_failure = Some(match error {
                    SessionError::Unrecognised => "session_unknown",
                    SessionError::OtherCaller => "session_other_caller",
                });
                // 404 is what the spec prescribes for a session the server
                // does not know; the client starts a new session (with its
                // own token).
                self.answer(LocalReply {
                    status: 404,
                    headers: json_content_type(),
                    body: error_body(None, code::SESSION_NOT_FOUND, "Session not found"),
                })
            }
            Refusal::Denied { id, what, in_batch } => {
                // A request (it has an id) alone in its body is answered by
                // the error itself; anything else cannot be, so it is 403.
                let as_result = id.is_some()
                    && !in_batch
                    && self.config.policy.deny_with == DenyWith::JsonRpcError;
                let status = if as_result { 200 } else { 403 };
                self.answer(challenge::forbidden(id.as_ref(), &what, status))
            }
            Refusal::Unvouched {
                rejection,
                in_batch,
            } => {
                self.rejected = Some(rejection.reason);
                let mut reply = rejection.reply();
                if rejection.id.is_some()
                    && !in_batch
                    && self.config.policy.deny_with == DenyWith::JsonRpcError
                {
                    reply.status = 200;
                }
                self.answer(reply)
            }
            Refusal::StepUp { id, what, scopes } => {
                let reply = match &self.config.auth {
                    Some(auth) => {
                        challenge::insufficient_scope(&scopes, &auth.metadata, id.as_ref(), &what)
                    }
                    None => challenge::forbidden(id.as_ref(), &what, 403),
                };
                self.answer(reply)
            }
        }
    }
}
