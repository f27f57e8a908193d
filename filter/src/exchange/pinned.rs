//! Pinned tools on the request path: a call of a tool whose listed
//! definition was not the reviewed one, or of a tool no pin names while
//! unpinned tools are hidden, is refused before it is routed, answered
//! like a policy denial (HTTP 200 carrying the JSON-RPC error for a single
//! request under `deny_with: json_rpc_error`, else 403).
//!
//! Must not: judge listings (the `Lister` does, in `fanout`), or refuse a
//! name it cannot place on a backend (routing refuses unknown names).

use crate::backends::Named;
use crate::classify::{Classified, Subject};
use crate::exchange::refusal::Refusal;
use crate::exchange::Exchange;
use crate::listing::ListKind;
use crate::pins::PinVerdict;
use crate::reject::{quote, Reason, Rejection};
use std::borrow::Cow;

impl Exchange {
    /// Refuses the first tool call whose tool its pin does not vouch for.
    pub(super) fn check_pins(&mut self, classified: &Classified) -> Result<(), Refusal> {
        let config = self.config.clone();
        let Some(pins) = &config.pins else {
            return Ok(());
        };
        for message in &classified.messages {
            if classified.batch && message.method.as_deref() == Some(ListKind::Tools.method()) {
                return Err(Rejection::new(
                    Reason::InvalidRequest,
                    "tool listings cannot be batched when tools are pinned; send them alone",
                )
                .with_id(message.id.clone())
                .into());
            }
            let Some(Subject::Tool(public)) = &message.subject else {
                continue;
            };
            let (server, upstream): (usize, Cow<'_, str>) = match &config.backends {
                None => (0, Cow::Borrowed(public)),
                Some(backends) => match backends.resolve(Named::Tool, public) {
                    Some(route) => (route.backend.index(), route.upstream),
                    None => continue,
                },
            };
            let (reason, why) = match pins.judge_call(server, &upstream) {
                PinVerdict::Pass => continue,
                PinVerdict::Changed => {
                    self.pin_changes.push(public.clone());
                    (
                        Reason::ToolChanged,
                        "its definition changed since it was pinned",
                    )
                }
                PinVerdict::Unpinned => (Reason::ToolUnpinned, "it is not pinned"),
            };
            return Err(Refusal::Unvouched {
                rejection: Rejection::new(
                    reason,
                    format!("tool {} is refused: {why}", quote(public)),
                )
                .with_id(message.id.clone()),
                in_batch: classified.batch,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
