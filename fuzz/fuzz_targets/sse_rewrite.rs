//! SSE framing and listing rewrites (filter and rename; the answer to a
//! listing, or listings replayed on a resumed stream) under arbitrary
//! chunking: never a crash, and the rewrite does not depend on where the
//! chunks were cut.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_filter::jsonrpc::RequestId;
use mcp_filter::listing::{filter_json_body, ListKind, Listed, SseListingFilter};
use mcp_filter::pins::ToolDigest;

/// By name, and (as pins do) by the digest of the item's definition.
fn decide(name: &str, item: &str) -> Listed {
    if ToolDigest::of(item).is_some_and(|d| d.to_string().ends_with('0')) {
        return Listed::Hide;
    }
    match name.len() % 3 {
        0 => Listed::Hide,
        1 => Listed::Keep,
        _ => Listed::Rename(format!("gh__{name}")),
    }
}

fn by_kind(_: ListKind, name: &str, item: &str) -> Listed {
    decide(name, item)
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, body)) = data.split_first() else { return };
    let raw = serde_json::value::RawValue::from_string("1".into());
    let Some(id) = raw.ok().and_then(|r| RequestId::from_raw(&r)) else { return };
    let _ = filter_json_body(body, ListKind::Tools, &id, &mut decide);

    // The answer to a listing, and a resumed stream that may replay any.
    let answer = || SseListingFilter::new(ListKind::Tools, id.clone(), 1 << 16);
    let replayed = || SseListingFilter::replayed(1 << 16);
    let filters: [&dyn Fn() -> SseListingFilter; 2] = [&answer, &replayed];
    let step = usize::from(step).max(1);
    for filter in filters {
        let whole = filter().push(body, true, &mut by_kind);
        let mut f = filter();
        let mut out = Vec::new();
        for piece in body.chunks(step) {
            out.extend(f.push(piece, false, &mut by_kind));
        }
        out.extend(f.push(&[], true, &mut by_kind));
        assert_eq!(out, whole, "the rewrite depends on the chunking");
    }
});
