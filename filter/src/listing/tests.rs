use super::*;
use serde_json::{json, Value};

fn id(raw: &str) -> RequestId {
    let raw = RawValue::from_string(raw.to_string()).unwrap();
    RequestId::from_raw(&raw).unwrap()
}

/// A decision on names alone, for any kind of listing.
fn kinds(
    mut decide: impl FnMut(&str, &str) -> Listed,
) -> impl FnMut(ListKind, &str, &str) -> Listed {
    move |_, name, item| decide(name, item)
}

fn no_secret(name: &str, _item: &str) -> Listed {
    Listed::from(!name.contains("secret"))
}

const TOOLS: &str = r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"add","inputSchema":{"type":"object"}},{"name":"secret","description":"hide me"},{"name":"echo"}],"nextCursor":"abc"}}"#;

#[test]
fn a_json_listing_keeps_only_visible_items_and_every_other_byte() {
    let (out, hidden) =
        filter_json_body(TOOLS.as_bytes(), ListKind::Tools, &id("2"), &mut no_secret);
    assert_eq!(hidden, Some(1));
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"add","inputSchema":{"type":"object"}},{"name":"echo"}],"nextCursor":"abc"}}"#
    );
}

#[test]
fn cache_scope_becomes_private_when_present() {
    let body = r#"{"jsonrpc":"2.0","id":"x","result":{"resultType":"complete","cacheScope":"public","tools":[]}}"#;
    let (out, _) = filter_json_body(
        body.as_bytes(),
        ListKind::Tools,
        &id(r#""x""#),
        &mut no_secret,
    );
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["result"]["cacheScope"], "private");
    assert_eq!(v["result"]["resultType"], "complete");
}

#[test]
fn an_answer_is_filtered_whatever_its_id_says() {
    // A JavaScript server echoes 9007199254740993 rounded; `2` may come back
    // as `2.0` or `"2"`: the listing is filtered all the same.
    for (sent, echoed) in [
        ("9007199254740993", "9007199254740992"),
        ("2", "2.0"),
        ("2", r#""2""#),
        ("2", "3"),
        ("2", "null"),
    ] {
        let answer = format!(
            r#"{{"jsonrpc":"2.0","id":{echoed},"result":{{"tools":[{{"name":"secret"}},{{"name":"add"}}]}}}}"#
        );
        let Ok(Filtered::Rewritten { bytes, hidden }) = filter_message(
            answer.as_bytes(),
            ListKind::Tools,
            &id(sent),
            &mut no_secret,
        ) else {
            panic!("{sent} answered as {echoed} was not filtered");
        };
        assert_eq!(hidden, 1);
        assert!(!String::from_utf8_lossy(&bytes).contains("secret"));
    }
}

#[test]
fn keys_a_lenient_client_reads_as_the_listing_are_refused() {
    for answer in [
        r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"add"}],"Tools":[{"name":"secret"}]}}"#,
        r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[]},"Result":{"tools":[{"name":"secret"}]}}"#,
        r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"add","Name":"secret"}]}}"#,
        r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[],"tool\u0000s":[{"name":"secret"}]}}"#,
    ] {
        let out = filter_message(answer.as_bytes(), ListKind::Tools, &id("2"), &mut no_secret);
        assert!(out.is_err(), "{answer}: {out:?}");
    }
    // Other keys, however named, are no listing.
    let fine = r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"add","description":"d","inputSchema":{}}],"nextCursor":"c","_meta":{}}}"#;
    assert!(filter_message(fine.as_bytes(), ListKind::Tools, &id("2"), &mut no_secret).is_ok());
}

#[test]
fn other_messages_and_errors_pass_untouched() {
    let request = br#"{"jsonrpc":"2.0","id":3,"method":"sampling/createMessage","params":{"tools":[{"name":"secret"}]}}"#;
    assert_eq!(
        filter_message(request, ListKind::Tools, &id("2"), &mut no_secret),
        Ok(Filtered::Untouched)
    );
    let error = br#"{"jsonrpc":"2.0","id":2,"error":{"code":-32601,"message":"no"}}"#;
    assert_eq!(
        filter_message(error, ListKind::Tools, &id("2"), &mut no_secret),
        Ok(Filtered::Untouched)
    );
    // A request that is not the answer is not the filter's to read further,
    // whatever shape its `result` has.
    for other in [
        br#"{"jsonrpc":"2.0","id":3,"method":"x","result":{"tools":[],"tools":5}}"#.as_slice(),
        br#"{"jsonrpc":"2.0","id":3,"method":"x","result":[1,{"a":[]}]}"#,
        br#"{"jsonrpc":"2.0","id":3,"method":"x","result":{"tools":{"name":"secret"}}}"#,
        br#"{"jsonrpc":"2.0","id":3,"method":"x","result":null}"#,
    ] {
        assert_eq!(
            filter_message(other, ListKind::Tools, &id("2"), &mut no_secret),
            Ok(Filtered::Untouched),
            "{}",
            String::from_utf8_lossy(other)
        );
    }
}

#[test]
fn what_cannot_be_read_fails_closed() {
    for body in [
        &b"not json"[..],
        br#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"a"},{"name":"secret","name":"a"}]}}"#,
        br#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":5}]}}"#,
        br#"{"jsonrpc":"2.0","id":2,"result":{"tools":{"name":"secret"}}}"#,
        br#"{"jsonrpc":"2.0","id":2,"result":{"nope":[]}}"#,
        br#"{"jsonrpc":"2.0","id":2,"result":{"tools":[]},"result":{"tools":[{"name":"secret"}]}}"#,
        br#"{"jsonrpc":"2.0","id":2,"result":{"tools":[],"tools":[{"name":"secret"}]}}"#,
        br#"{"jsonrpc":"2.0","id":2,"result":{"nextCursor":"a","tools":[{"name":"secret"}],"nextCursor":"b"}}"#,
        br#"{"jsonrpc":"2.0","id":2,"result":[{"name":"secret"}]}"#,
        br#"{"jsonrpc":"2.0","id":2,"result":"secret"}"#,
        br#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"secret"}]}} "secret""#,
    ] {
        let (out, _) = filter_json_body(body, ListKind::Tools, &id("2"), &mut no_secret);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"]["code"], -32603, "{}", String::from_utf8_lossy(body));
        assert!(!String::from_utf8_lossy(&out).contains("\"secret\""));
    }
}

#[test]
fn resources_and_templates_are_judged_by_uri() {
    let body = br#"{"jsonrpc":"2.0","id":1,"result":{"resources":[{"uri":"file:///docs/a","name":"a"},{"uri":"file:///etc/secret","name":"b"}]}}"#;
    let (out, hidden) = filter_json_body(body, ListKind::Resources, &id("1"), &mut no_secret);
    assert_eq!(hidden, Some(1));
    assert!(String::from_utf8_lossy(&out).contains("file:///docs/a"));
    let body = br#"{"jsonrpc":"2.0","id":1,"result":{"resourceTemplates":[{"uriTemplate":"db://secret/{id}","name":"s"}]}}"#;
    let (out, hidden) =
        filter_json_body(body, ListKind::ResourceTemplates, &id("1"), &mut no_secret);
    assert_eq!(hidden, Some(1));
    assert!(String::from_utf8_lossy(&out).contains(r#""resourceTemplates":[]"#));
}

fn sse_body(eol: &str) -> String {
    let pretty =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(TOOLS).unwrap()).unwrap();
    let data: String = pretty.lines().map(|l| format!("data: {l}{eol}")).collect();
    format!(
        "id: 0{eol}retry: 3000{eol}data:{eol}{eol}: keepalive{eol}{eol}event: message{eol}id: 7{eol}{data}{eol}data: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{}}}}{eol}{eol}"
    )
}

fn run_sse(body: &[u8], split: &[usize]) -> (Vec<u8>, usize) {
    let mut f = SseListingFilter::new(ListKind::Tools, id("2"), 1 << 20);
    let mut out = Vec::new();
    let mut last = 0;
    for &at in split.iter().chain(std::iter::once(&body.len())) {
        out.extend(f.push(&body[last..at], false, &mut kinds(&mut no_secret)));
        last = at;
    }
    out.extend(f.push(&[], true, &mut kinds(&mut no_secret)));
    (out, f.hidden)
}

fn data_messages(sse: &[u8]) -> Vec<Value> {
    let mut framer = SseFramer::new(1 << 20);
    let mut out = Vec::new();
    framer
        .push(sse, |e| {
            if let Some(d) = e.data() {
                out.push(serde_json::from_slice(&d).unwrap());
            }
        })
        .unwrap();
    out
}

#[test]
fn an_sse_listing_is_filtered_at_every_chunk_split_with_lf_and_crlf() {
    for eol in ["\n", "\r\n"] {
        let body = sse_body(eol);
        let (whole, hidden) = run_sse(body.as_bytes(), &[]);
        assert_eq!(hidden, 1);
        let messages = data_messages(&whole);
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0]["result"]["tools"].as_array().unwrap().len(), 2);
        assert_eq!(messages[0]["result"]["nextCursor"], "abc");
        assert_eq!(messages[1]["method"], "notifications/progress");
        let text = String::from_utf8(whole.clone()).unwrap();
        assert!(!text.contains("secret"));
        assert!(text.starts_with(&format!("id: 0{eol}retry: 3000{eol}data:{eol}{eol}: keepalive{eol}{eol}event: message{eol}id: 7{eol}")));
        for at in 0..=body.len() {
            assert_eq!(run_sse(body.as_bytes(), &[at]).0, whole, "split at {at}");
        }
    }
}

#[test]
fn an_oversized_sse_event_ends_the_stream_with_an_error() {
    let mut f = SseListingFilter::new(ListKind::Tools, id("2"), 64);
    let out = f.push(
        format!("data: {}", "x".repeat(100)).as_bytes(),
        false,
        &mut kinds(&mut no_secret),
    );
    let messages = data_messages(&out);
    assert_eq!(messages[0]["error"]["code"], -32603);
    assert!(f
        .push(b"\n\n", false, &mut kinds(&mut no_secret))
        .is_empty());
}

/// Every `tools/list` response captured from real servers, filtered to hide
/// one tool, still parses, lists one tool fewer, and keeps its other events.
#[test]
fn real_captured_listings_are_filtered() {
    let Some(dir) = crate::test_vectors::dir() else {
        return;
    };
    let mut checked = 0;
    for path in crate::test_vectors::files(&dir, "tools-list.response-body.bin") {
        let body = std::fs::read(&path).unwrap();
        let request: Value = serde_json::from_slice(
            &std::fs::read(
                path.to_string_lossy()
                    .replace("response-body.bin", "request.json"),
            )
            .unwrap(),
        )
        .unwrap();
        let request_id = id(&request["id"].to_string());
        let sse =
            body.starts_with(b"data:") || body.starts_with(b"event:") || body.starts_with(b"id:");
        let first = data_or_json(&body, sse)
            .into_iter()
            .find(|m| m["id"] == request["id"])
            .unwrap();
        let victim = first["result"]["tools"][0]["name"]
            .as_str()
            .unwrap()
            .to_string();
        let total = first["result"]["tools"].as_array().unwrap().len();
        let mut hide = |name: &str, _: &str| Listed::from(name != victim);
        let out = if sse {
            let mut f = SseListingFilter::new(ListKind::Tools, request_id.clone(), 1 << 20);
            let mut out = f.push(&body, false, &mut kinds(&mut hide));
            out.extend(f.push(&[], true, &mut kinds(&mut hide)));
            out
        } else {
            filter_json_body(&body, ListKind::Tools, &request_id, &mut hide).0
        };
        let after = data_or_json(&out, sse)
            .into_iter()
            .find(|m| m["id"] == request["id"])
            .unwrap();
        let tools = after["result"]["tools"].as_array().unwrap();
        assert_eq!(tools.len(), total - 1, "{}", path.display());
        assert!(tools.iter().all(|t| t["name"] != victim.as_str()));
        if first["result"].get("cacheScope").is_some() {
            assert_eq!(after["result"]["cacheScope"], "private");
        }
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} captures");
}

fn data_or_json(body: &[u8], sse: bool) -> Vec<Value> {
    if sse {
        data_messages(body)
    } else {
        vec![serde_json::from_slice(body).unwrap()]
    }
}

#[test]
fn a_thousand_tool_listing_is_filtered() {
    let tools: Vec<Value> = (0..1000)
        .map(|i| json!({"name": format!("tool_{i}"), "inputSchema": {"type": "object"}}))
        .collect();
    let body = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}}).to_string();
    let mut even = |name: &str, _: &str| {
        Listed::from(name.trim_start_matches("tool_").parse::<u32>().unwrap() % 2 == 0)
    };
    let (out, hidden) = filter_json_body(body.as_bytes(), ListKind::Tools, &id("1"), &mut even);
    assert_eq!(hidden, Some(500));
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["result"]["tools"].as_array().unwrap().len(), 500);
}

fn prefixed_except_secret(name: &str, _item: &str) -> Listed {
    if name.contains("secret") {
        Listed::Hide
    } else {
        Listed::Rename(format!("gh__{name}"))
    }
}

#[test]
fn renamed_items_change_only_their_name() {
    let (out, hidden) = filter_json_body(
        TOOLS.as_bytes(),
        ListKind::Tools,
        &id("2"),
        &mut prefixed_except_secret,
    );
    assert_eq!(hidden, Some(1));
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"gh__add","inputSchema":{"type":"object"}},{"name":"gh__echo"}],"nextCursor":"abc"}}"#
    );
}

#[test]
fn an_escaped_or_spaced_name_is_renamed_whole() {
    let body = br#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"description":"name","name" : "\u0061dd","x":{"name":"inner"}}]}}"#;
    let (out, _) = filter_json_body(body, ListKind::Tools, &id("2"), &mut prefixed_except_secret);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"description":"name","name" : "gh__add","x":{"name":"inner"}}]}}"#
    );
}

#[test]
fn a_name_that_is_not_a_string_fails_closed() {
    let body = br#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":7}]}}"#;
    let (out, _) = filter_json_body(body, ListKind::Tools, &id("2"), &mut prefixed_except_secret);
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["error"]["code"], -32603);
    assert!(v.get("result").is_none());
}

/// SSE rewrite with renaming: the same output at every split point of the
/// stream, LF and CRLF alike, and equal to the unsplit rewrite.
#[test]
fn sse_rename_is_the_same_at_every_chunk_split() {
    for eol in ["\n", "\r\n"] {
        let body = sse_body(eol);
        let body = body.as_bytes();
        let mut whole = SseListingFilter::new(ListKind::Tools, id("2"), 1 << 20);
        let mut expected = whole.push(body, false, &mut kinds(&mut prefixed_except_secret));
        expected.extend(whole.push(&[], true, &mut kinds(&mut prefixed_except_secret)));
        let names: Vec<Value> = data_messages(&expected)
            .into_iter()
            .filter(|m| m["id"] == 2)
            .flat_map(|m| m["result"]["tools"].as_array().cloned().unwrap_or_default())
            .map(|t| t["name"].clone())
            .collect();
        assert_eq!(names, vec![json!("gh__add"), json!("gh__echo")]);
        for at in 0..=body.len() {
            for second in [at, (at + 7).min(body.len())] {
                let mut f = SseListingFilter::new(ListKind::Tools, id("2"), 1 << 20);
                let mut out = f.push(&body[..at], false, &mut kinds(&mut prefixed_except_secret));
                out.extend(f.push(
                    &body[at..second],
                    false,
                    &mut kinds(&mut prefixed_except_secret),
                ));
                out.extend(f.push(
                    &body[second..],
                    false,
                    &mut kinds(&mut prefixed_except_secret),
                ));
                out.extend(f.push(&[], true, &mut kinds(&mut prefixed_except_secret)));
                assert_eq!(out, expected, "split at {at}/{second} ({eol:?})");
            }
        }
    }
}
