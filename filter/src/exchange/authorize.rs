//! Authorization: the policy's decision on every message of an accepted
//! body, the 403 answers (with the step-up challenge when scopes are
//! missing), and the decision as filter state.
//!
//! Must not: tell a caller why it was refused beyond naming what it asked
//! for, or judge anything but the public names the client used.

use crate::auth::token::AuthFailure;
use crate::classify::{Classified, Message, Subject};
use crate::exchange::refusal::Refusal;
use crate::exchange::{bounded, message_label, Exchange};
use crate::listing::ListKind;
use crate::policy::{SubjectKind, Target, Verdict, RESPONSE_METHOD};
use crate::reject::{quote, Reason, Rejection};

impl Exchange {
    /// Decides every message of an accepted body; the first one not allowed
    /// answers the request.
    pub(super) fn authorize(&mut self, classified: &Classified) -> Result<(), Refusal> {
        if self.config.auth.is_none() {
            return Ok(());
        }
        let Some(caller) = self.caller.clone() else {
            return Err(Refusal::Unauthenticated(AuthFailure::MissingToken));
        };
        for message in &classified.messages {
            let method = message.method.as_deref().unwrap_or(RESPONSE_METHOD);
            if classified.batch
                && self.config.policy.has_rules()
                && ListKind::from_method(method).is_some()
            {
                return Err(Rejection::new(
                    Reason::InvalidRequest,
                    "listings cannot be batched when a policy applies; send them alone",
                )
                .with_id(message.id.clone())
                .into());
            }
            let tool = match &message.subject {
                Some(Subject::Tool(t)) => Some(t.clone()),
                _ => None,
            };
            let method_name = message_label(message.kind, message.method.as_deref()).to_string();
            // The message itself, then each resource it opts into (read access).
            let reads = message
                .resources
                .iter()
                .map(|uri| Target::call(SubjectKind::Resource, uri));
            for target in std::iter::once(target_of(message, method)).chain(reads) {
                if let (Some((SubjectKind::Resource, uri)), true) =
                    (target.subject, self.config.policy.has_rules())
                {
                    // The server would judge another URI than the policy.
                    if let Some(why) = crate::uri::ambiguity(uri) {
                        let what = format!("resource {} is refused: {why}", quote(uri));
                        let refusal = Rejection::new(Reason::InvalidParams, what);
                        return Err(refusal.with_id(message.id.clone()).into());
                    }
                }
                let decision = self.config.policy.decide(&caller, &target);
                let verdict = decision.verdict.clone();
                self.decision = Some((decision, method_name.clone(), tool.clone()));
                let what = describe(&target);
                match verdict {
                    Verdict::Allow => {}
                    Verdict::Deny => {
                        return Err(Refusal::Denied {
                            id: message.id.clone(),
                            what,
                            in_batch: classified.batch,
                        })
                    }
                    Verdict::InsufficientScope(scopes) => {
                        return Err(Refusal::StepUp {
                            id: message.id.clone(),
                            what,
                            scopes,
                        })
                    }
                }
            }
        }
        Ok(())
    }

    pub(super) fn decision_properties(&self) -> Vec<(&'static str, String)> {
        let mut out = self.caller_properties();
        if let Some((d, _, _)) = &self.decision {
            out.push(("mcp_decision", d.label().to_string()));
            out.push(("mcp_decision_reason", bounded(&d.reason.label())));
        }
        out
    }
}

/// What the policy judges a message as.
pub(super) fn target_of<'a>(message: &'a Message, method: &'a str) -> Target<'a> {
    let subject = message.subject.as_ref().map(|s| match s {
        Subject::Tool(n) => (SubjectKind::Tool, n.as_str()),
        Subject::Prompt(n) => (SubjectKind::Prompt, n.as_str()),
        Subject::Resource(n) => (SubjectKind::Resource, n.as_str()),
    });
    Target { method, subject }
}

/// How a refusal names what was asked for (never why it was refused).
pub(super) fn describe(target: &Target<'_>) -> String {
    match target.subject {
        Some((SubjectKind::Tool, n)) => format!("tool {}", quote(n)),
        Some((SubjectKind::Prompt, n)) => format!("prompt {}", quote(n)),
        Some((SubjectKind::Resource, n)) => format!("resource {}", quote(n)),
        None if target.method == RESPONSE_METHOD => "this response".into(),
        None => format!("method {}", quote(target.method)),
    }
}
