use super::*;
use rmcp::model::GetMeta;
use rmcp::RoleServer;
use serde_json::json;

#[test]
fn a_custom_request_keeps_every_parameter_but_meta() {
    let raw = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "t", "futureParam": [1], "_meta": {"progressToken": 3}}});
    let custom = custom_request(&raw).expect("a request");
    assert_eq!(custom.method, "tools/call");
    assert_eq!(
        custom.params,
        Some(json!({"name": "t", "futureParam": [1]}))
    );
    assert!(custom_request(&json!({"id": 1})).is_none());
}

#[test]
fn a_kept_result_replaces_the_typed_one_once_on_its_own_open_channel() {
    let ((mine, ending), (other, _other)) = (Channel::open(), Channel::open());
    mine.keep(&json!(4), Kept::Whole(json!({"whole": true})));
    let typed = json!({"jsonrpc": "2.0", "id": 4, "result": {"typed": true}});
    let mut elsewhere = typed.clone();
    assert!(!other.restore(&mut elsewhere));
    assert_eq!(elsewhere, typed, "another channel's answer is not touched");
    let mut answer = typed.clone();
    assert!(mine.restore(&mut answer));
    assert_eq!(answer["result"], json!({"whole": true}));
    let mut again = typed.clone();
    mine.restore(&mut again);
    assert_eq!(again, typed, "taken once");
    // An error answer has no result to replace.
    mine.keep(&json!("s"), Kept::Whole(json!(1)));
    let mut error = json!({"jsonrpc": "2.0", "id": "s", "error": {"code": 1, "message": "m"}});
    mine.restore(&mut error);
    assert!(error.get("result").is_none());
    // An ended channel forgets what waited, and keeps nothing more (an
    // answer that comes after its client went is not held forever).
    mine.keep(&json!(9), Kept::Whole(json!(1)));
    assert!(mine.waits());
    drop(ending);
    assert!(!mine.waits());
    mine.keep(&json!(10), Kept::Whole(json!(1)));
    assert!(!mine.waits());
}

#[test]
fn events_split_anywhere_are_restored_whole_and_the_rest_passes_unchanged() {
    let (channel, _ending) = Channel::open();
    let stream = "event: message\r\nid: 0\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[]}}\n\n: keep-alive\n\ndata: {\"method\":\"x\",\"jsonrpc\":\"2.0\"}\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}\n\n";
    for split in 0..stream.len() {
        channel.keep(&json!(2), Kept::Whole(json!({"tools": [], "future": 1})));
        let (_, unused) = Channel::open();
        let mut events = Events {
            channel: channel.clone(),
            pending: Vec::new(),
            _ending: unused,
        };
        let mut out = events.feed(&stream.as_bytes()[..split]);
        out.extend(events.feed(&stream.as_bytes()[split..]));
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out,
            "event: message\r\nid: 0\ndata: {\"id\":2,\"jsonrpc\":\"2.0\",\"result\":{\"future\":1,\"tools\":[]}}\n\n: keep-alive\n\ndata: {\"method\":\"x\",\"jsonrpc\":\"2.0\"}\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}\n\n",
            "split at {split}"
        );
    }
}

#[tokio::test]
async fn lines_attach_the_raw_message_and_drop_what_is_not_mcp() {
    let input = "\u{feff}{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{\"future\":2}}\r\n\nnot json\n{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}\n";
    let (writer, _) = tokio::io::duplex(64);
    let mut lines: Lines<RoleServer, _, _> = Lines::new(
        std::io::Cursor::new(input.to_string().into_bytes()),
        writer,
        1024,
        None,
    );
    let first = Transport::<RoleServer>::receive(&mut lines)
        .await
        .expect("a message");
    let JsonRpcMessage::Request(request) = first else {
        panic!("a request")
    };
    let Raw(raw) = request
        .request
        .extensions()
        .get::<Raw>()
        .expect("raw")
        .clone();
    assert_eq!(raw["params"]["future"], 2);
    let second = Transport::<RoleServer>::receive(&mut lines)
        .await
        .expect("a message");
    assert!(matches!(second, JsonRpcMessage::Request(r) if r.id == RequestId::Number(2)));
    assert!(Transport::<RoleServer>::receive(&mut lines).await.is_none());
}

#[tokio::test]
async fn a_line_longer_than_the_limit_is_dropped_not_cut() {
    let long = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{{\"pad\":\"{}\"}}}}\n",
        "x".repeat(100)
    );
    let input = format!("{long}{{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}}\n");
    let (writer, _) = tokio::io::duplex(64);
    let mut lines: Lines<RoleServer, _, _> = Lines::new(
        std::io::Cursor::new(input.to_string().into_bytes()),
        writer,
        64,
        None,
    );
    let next = Transport::<RoleServer>::receive(&mut lines)
        .await
        .expect("a message");
    assert!(matches!(next, JsonRpcMessage::Request(r) if r.id == RequestId::Number(2)));
}

#[test]
fn what_a_remote_said_on_its_own_is_found_by_id_or_typed_form_and_bounded() {
    let answers = Answers::default();
    let heard = |raw: Value| {
        let typed: ServerJsonRpcMessage = serde_json::from_value(raw.clone()).unwrap();
        answers.hear(&typed, raw);
    };
    let log = json!({"jsonrpc": "2.0", "method": "notifications/message",
        "params": {"level": "info", "data": "d", "futureNote": 1, "_meta": {"k": 1}}});
    heard(log.clone());
    heard(json!({"jsonrpc": "2.0", "id": 9, "method": "roots/list", "params": {"future": true}}));
    let JsonRpcMessage::Notification(n) =
        serde_json::from_value::<ServerJsonRpcMessage>(log.clone()).unwrap()
    else {
        panic!("a notification")
    };
    // As the SDK hands it over: its meta moved out.
    let mut bare = n.notification.clone();
    *bare.get_meta_mut() = Default::default();
    assert_eq!(answers.heard_notification(&bare), Some(log));
    assert_eq!(answers.heard_notification(&bare), None, "taken once");
    assert_eq!(
        answers.heard_request(&RequestId::Number(9)).unwrap()["params"]["future"],
        true
    );
    // Progress stays typed: it is not kept, so it pushes nothing out.
    for _ in 0..HEARD_MAX {
        heard(json!({"jsonrpc": "2.0", "method": "notifications/progress",
            "params": {"progressToken": 1, "progress": 1}}));
    }
    heard(json!({"jsonrpc": "2.0", "id": 9, "method": "roots/list"}));
    assert!(answers.heard_request(&RequestId::Number(9)).is_some());
    for i in 0..(HEARD_MAX as i64 + 10) {
        heard(json!({"jsonrpc": "2.0", "id": i, "method": "roots/list"}));
    }
    assert!(
        answers.heard_request(&RequestId::Number(0)).is_none(),
        "the oldest went"
    );
    assert!(answers
        .heard_request(&RequestId::Number(HEARD_MAX as i64))
        .is_some());
}

#[tokio::test]
async fn a_request_of_the_wrong_shape_is_answered_invalid_request_with_its_id() {
    use tokio::io::AsyncBufReadExt;
    let input = concat!(
        "{\"jsonrpc\":\"1.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{}}\n",
        "{\"jsonrpc\":\"1.0\",\"method\":\"notifications/progress\",\"params\":{}}\n",
        "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"ping\"}\n",
    );
    let (writer, reader) = tokio::io::duplex(4096);
    let mut lines: Lines<RoleServer, _, _> = Lines::new(
        std::io::Cursor::new(input.as_bytes().to_vec()),
        writer,
        1024,
        None,
    );
    let next = Transport::<RoleServer>::receive(&mut lines)
        .await
        .expect("a message");
    assert!(matches!(next, JsonRpcMessage::Request(r) if r.id == RequestId::Number(6)));
    let mut answered = String::new();
    let mut reader = tokio::io::BufReader::new(reader);
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        reader.read_line(&mut answered),
    )
    .await
    .expect("an answer")
    .unwrap();
    let answered: Value = serde_json::from_str(&answered).unwrap();
    assert_eq!(answered["id"], 5);
    assert_eq!(answered["error"]["code"], -32600);
}

#[test]
fn only_answers_take_a_kept_result_and_a_new_request_drops_a_stale_one() {
    let (channel, _ending) = Channel::open();
    channel.keep(&json!(3), Kept::Whole(json!({"whole": true})));
    // The bridge's own request to the client, with an id of its own count.
    let mut asking =
        json!({"jsonrpc": "2.0", "id": 3, "method": "sampling/createMessage", "params": {}});
    assert!(!channel.restore(&mut asking));
    assert!(channel.waits(), "still kept for the answer");
    // The client reuses id 3 for a new request (the first one's answer was
    // dropped): what was kept under it is not that request's.
    let mut request: RxJsonRpcMessage<RoleServer> =
        serde_json::from_value(json!({"jsonrpc": "2.0", "id": 3, "method": "ping"})).unwrap();
    request.answer_on(&channel);
    assert!(!channel.waits());
    // At most so many wait on one channel.
    for i in 0..(KEPT_PER_CHANNEL + 5) {
        channel.keep(&json!(i), Kept::Whole(json!(i)));
    }
    assert_eq!(
        TABLE.lock().unwrap().kept.range(of(channel.0)).count(),
        KEPT_PER_CHANNEL
    );
}

#[test]
fn events_end_at_an_empty_line_whatever_the_line_ends() {
    assert_eq!(event_end(b"data: x\n\nrest"), Some(9));
    assert_eq!(event_end(b"data: x\r\n\r\nrest"), Some(11));
    assert_eq!(event_end(b"data: x\r\rrest"), Some(9));
    assert_eq!(event_end(b"data: x\n\r\nrest"), Some(10));
    assert_eq!(
        event_end(b"data: x\r\n\r"),
        None,
        "the CR may be half a CR LF"
    );
    assert_eq!(event_end(b"data: x\ndata: y\n"), None);
}

#[test]
fn an_answer_given_up_before_its_request_was_sent_is_not_expected() {
    let answers = Answers::default();
    // Given up (timed out) before the client sent it.
    assert_eq!(answers.take(&RequestId::Number(1)), None);
    answers.expect(RequestId::Number(1));
    answers.record(&RequestId::Number(1), json!("late"));
    assert!(answers.results.lock().unwrap().is_empty(), "nothing held");
    // The usual order.
    answers.expect(RequestId::Number(2));
    answers.record(&RequestId::Number(2), json!("whole"));
    assert_eq!(answers.take(&RequestId::Number(2)), Some(json!("whole")));
}

#[test]
fn an_initialize_result_gets_the_members_it_lacks_and_keeps_its_own() {
    let (channel, _ending) = Channel::open();
    channel.keep(
        &json!(1),
        Kept::Under(json!({"protocolVersion": "2026-07-28", "future": 1,
            "capabilities": {"tools": {"listChanged": true}, "futureCap": {}}})),
    );
    let mut answer = json!({"jsonrpc": "2.0", "id": 1, "result": {
        "protocolVersion": "2025-06-18", "capabilities": {"tools": {}}}});
    assert!(channel.restore(&mut answer));
    assert_eq!(
        answer["result"],
        json!({"protocolVersion": "2025-06-18", "future": 1,
            "capabilities": {"tools": {"listChanged": true}, "futureCap": {}}})
    );
}
