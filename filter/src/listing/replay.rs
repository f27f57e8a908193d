//! Listings replayed on a resumed stream. A client that resumes a stream with
//! `Last-Event-ID` (a GET) gets the events it missed, answers included, and
//! since MCP 2025-11-25 a server may end a POST's stream after its first
//! event, so that the answer only ever arrives this way. The filter did not
//! see which request a replayed answer is for, so it reads the answer's
//! shape: a result holding a listing's array is filtered as that listing (as
//! each kind whose array it holds), whatever its id; one a client could read
//! a listing out of but the filter cannot read is refused (an error takes
//! its place).
//!
//! Must not: pass a replayed listing unread, or change any other message.

use super::answer::{read_answer, Answer};
use super::{rewrite, Filtered, KindDecide, ListKind, Unfilterable};
use crate::jsonrpc::RequestId;

/// The message with each listing it holds filtered; `Untouched` when it is
/// not a result holding one. Refused: the id when it could be read, and why.
pub(super) fn filter_replayed(
    message: &[u8],
    decide: &mut KindDecide<'_>,
) -> Result<Filtered, (Option<RequestId>, Unfilterable)> {
    let mut current: Option<Vec<u8>> = None;
    let mut hidden = 0;
    // Every answer on the stream is a replayed one, whatever its id.
    let any = RequestId::unknown();
    for kind in ListKind::ALL {
        let text = current.as_deref().unwrap_or(message);
        let (object, result, items) = match read_answer(text, kind, &any) {
            Err(why) => return Err((None, why)),
            Ok(Answer::Result {
                message,
                result,
                items,
            }) => (message, result, items),
            Ok(Answer::Lacking) => continue,
            Ok(Answer::Other | Answer::Error) => return Ok(Filtered::Untouched),
        };
        let mut decide_kind = |name: &str, item: &str| decide(kind, name, item);
        match rewrite(text.len(), &object, &result, &items, kind, &mut decide_kind) {
            Ok(Filtered::Rewritten {
                bytes,
                hidden: more,
            }) => {
                current = Some(bytes);
                hidden += more;
            }
            Ok(Filtered::Untouched) => {}
            Err(why) => return Err((object.raw("id").and_then(RequestId::from_raw), why)),
        }
    }
    Ok(match current {
        Some(bytes) => Filtered::Rewritten { bytes, hidden },
        None => Filtered::Untouched,
    })
}
