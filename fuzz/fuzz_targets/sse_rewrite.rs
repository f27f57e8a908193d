//! SSE framing and listing rewrites (filter and rename) under arbitrary
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

fuzz_target!(|data: &[u8]| {
    let Some((&step, body)) = data.split_first() else { return };
    let raw = serde_json::value::RawValue::from_string("1".into());
    let Some(id) = raw.ok().and_then(|r| RequestId::from_raw(&r)) else { return };
    let _ = filter_json_body(body, ListKind::Tools, &id, &mut decide);

    let whole = {
        let mut f = SseListingFilter::new(ListKind::Tools, id.clone(), 1 << 16);
        let mut out = f.push(body, &mut decide);
        out.extend(f.finish(&mut decide));
        out
    };
    let step = usize::from(step).max(1);
    let mut f = SseListingFilter::new(ListKind::Tools, id, 1 << 16);
    let mut out = Vec::new();
    for piece in body.chunks(step) {
        out.extend(f.push(piece, &mut decide));
    }
    out.extend(f.finish(&mut decide));
    assert_eq!(out, whole, "the rewrite depends on the chunking");
});
