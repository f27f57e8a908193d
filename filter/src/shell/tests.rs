//! The stream's rules against a fake Envoy that keeps headers and bodies as
//! Envoy does (a paused body accumulates; a body that went on is gone),
//! records every host call, and refuses the ones it is told to.

use super::*;
use crate::auth::Authenticated;
use crate::config::FilterConfig;
use crate::exchange::Exchange;
use crate::fetch::Fetch;
use crate::policy::Caller;
use crate::reject::LocalReply;
use crate::telemetry::Sample;
use std::cell::Cell;
use std::rc::Rc;

#[derive(Default)]
struct FakeEnvoy {
    request_headers: Vec<(String, String)>,
    response_headers: Vec<(String, String)>,
    /// What Envoy holds of each body now.
    request_body: Vec<u8>,
    response_body: Vec<u8>,
    calls: Vec<String>,
    refuse: Vec<&'static str>,
    keys_fetch: bool,
    sent: u64,
    samples: Vec<String>,
}

impl FakeEnvoy {
    fn call(&mut self, call: String) -> Result<(), HostError> {
        let refused = self.refuse.iter().any(|r| call.starts_with(r));
        self.calls.push(call);
        if refused {
            Err(HostError(0))
        } else {
            Ok(())
        }
    }
    fn replies(&self) -> Vec<&str> {
        self.calls
            .iter()
            .filter(|c| c.starts_with("reply"))
            .map(String::as_str)
            .collect()
    }
}

impl Host for FakeEnvoy {
    fn set_header(&mut self, map: Headers, name: &str, value: &str) -> Result<(), HostError> {
        self.call(format!("set {map:?} {name}={value}"))?;
        let headers = match map {
            Headers::Request => &mut self.request_headers,
            Headers::Response => &mut self.response_headers,
        };
        headers.retain(|(k, _)| k != name);
        headers.push((name.into(), value.into()));
        Ok(())
    }
    fn remove_header(&mut self, map: Headers, name: &str) -> Result<(), HostError> {
        self.call(format!("remove {map:?} {name}"))
    }
    fn set_property(&mut self, name: &str, value: &[u8]) -> Result<(), HostError> {
        let value = String::from_utf8_lossy(value).into_owned();
        self.call(format!("property {name}={value}"))
    }
    fn set_body(
        &mut self,
        body: Body,
        start: usize,
        size: usize,
        data: &[u8],
    ) -> Result<(), HostError> {
        self.call(format!("body {body:?} {start}+{size}"))?;
        let held = match body {
            Body::Request => &mut self.request_body,
            Body::Response => &mut self.response_body,
        };
        held.splice(start..start + size, data.iter().copied());
        Ok(())
    }
    fn send_local_response(&mut self, reply: &LocalReply) -> Result<(), HostError> {
        self.call(format!("reply {}", reply.status))
    }
    fn reset(&mut self) -> Result<(), HostError> {
        self.call("reset".into())
    }
    fn warn(&mut self, message: &str) {
        self.calls.push(format!("warn {message}"));
    }
}

impl StreamHost for FakeEnvoy {
    fn headers(&mut self, map: Headers) -> Option<Vec<(String, String)>> {
        let refused = self.refuse.contains(&"headers");
        let held = match map {
            Headers::Request => self.request_headers.clone(),
            Headers::Response => self.response_headers.clone(),
        };
        (!refused).then_some(held)
    }
    fn body(&mut self, body: Body, start: usize, len: usize) -> Option<Vec<u8>> {
        self.calls.push(format!("read {body:?} {start}+{len}"));
        let held = match body {
            Body::Request => &self.request_body,
            Body::Response => &self.response_body,
        };
        held.get(start..start + len).map(<[u8]>::to_vec)
    }
    fn resume_request(&mut self) -> Result<(), HostError> {
        self.call("resume".into())
    }
    fn now_ms(&mut self) -> Option<u64> {
        Some(1)
    }
    fn send(&mut self, fetch: &Fetch) -> Result<CallId, HostError> {
        self.call(format!("send {}", fetch.cluster))?;
        self.sent += 1;
        Ok(self.sent)
    }
    fn wait_for_keys(&mut self) -> bool {
        self.calls.push("wait for keys".into());
        self.keys_fetch
    }
    fn watch_held(&mut self) {
        self.calls.push("watch".into());
    }
    fn record(&mut self, samples: &[Sample]) {
        self.samples
            .extend(samples.iter().map(|s| s.name.to_string()));
    }
    fn finish(&mut self, exchange: &mut Exchange, now_ms: u64) -> Vec<Sample> {
        let mut labels = crate::telemetry::Labels::new(
            crate::telemetry::ToolLabels::new(&[], 8),
            crate::telemetry::ToolLabels::new(&[], 8),
        );
        exchange.finish(now_ms, &mut labels)
    }
}

fn config(extra: serde_json::Value) -> Rc<FilterConfig> {
    let mut json = serde_json::json!({
        "auth": {
            "issuers": ["https://idp"], "audiences": ["https://mcp.example.com/mcp"],
            "shared_secret": {"base64": "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk="},
            "resource_metadata": {"resource": "https://mcp.example.com/mcp",
                "authorization_servers": ["https://idp"]},
        },
        "policy": {"rules": [
            {"name": "no-secret", "tools": ["secret"], "effect": "deny"},
            {"name": "rest", "tools": ["*"], "effect": "allow"},
        ]},
    });
    if let (Some(json), Some(extra)) = (json.as_object_mut(), extra.as_object()) {
        json.extend(extra.clone());
    }
    Rc::new(FilterConfig::from_json(json.to_string().as_bytes()).unwrap())
}

fn alice() -> Authenticated {
    Authenticated::Caller(Rc::new(Caller {
        issuer: "https://idp".into(),
        subject: "alice".into(),
        ..Caller::default()
    }))
}

/// A stream whose caller is known once `ready` is set (before: keys needed).
fn stream(config: Rc<FilterConfig>, ready: bool) -> (Stream<FakeEnvoy>, Rc<Cell<bool>>) {
    let ready = Rc::new(Cell::new(ready));
    let may_wait = Rc::new(Cell::new(true));
    let (flag, waits) = (ready.clone(), may_wait.clone());
    let exchange = Exchange::new(config, 0).with_authenticator(Box::new(move |_| {
        if flag.get() {
            alice()
        } else if waits.get() {
            Authenticated::NeedKeys
        } else {
            Authenticated::Failed(crate::auth::token::AuthFailure::NoKeys)
        }
    }));
    let request_headers = [
        (":method", "POST"),
        (":path", "/mcp"),
        (":authority", "mcp.example.com"),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("authorization", "Bearer t"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let envoy = FakeEnvoy {
        request_headers,
        ..FakeEnvoy::default()
    };
    (Stream::new(envoy, exchange, may_wait), ready)
}

fn call(tool: &str) -> Vec<u8> {
    format!(r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"{tool}"}}}}"#)
        .into_bytes()
}

/// Feeds a body as Envoy does: chunks accumulate while the stream pauses.
fn feed(s: &mut Stream<FakeEnvoy>, body: &[u8], chunk: usize) -> Flow {
    let mut flow = Flow::Continue;
    let chunks: Vec<&[u8]> = body.chunks(chunk).collect();
    for (i, part) in chunks.iter().enumerate() {
        if flow == Flow::Continue {
            s.host.request_body.clear();
        }
        s.host.request_body.extend_from_slice(part);
        let held = s.host.request_body.len();
        flow = s.request_body(held, i + 1 == chunks.len());
    }
    flow
}

/// A stream whose `tools/list` went upstream.
fn listing_sent() -> Stream<FakeEnvoy> {
    let (mut s, _) = stream(config(serde_json::json!({})), true);
    s.request_headers(false);
    let list = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    assert_eq!(feed(&mut s, list, 100), Flow::Continue);
    s
}

/// A stream whose `tools/list` went upstream, its JSON answer's headers in.
fn listing_answered() -> Stream<FakeEnvoy> {
    let mut s = listing_sent();
    s.host.response_headers = vec![
        (":status".into(), "200".into()),
        ("content-type".into(), "application/json".into()),
    ];
    s.response_headers();
    s
}

#[test]
fn a_chunked_body_is_read_whole_once_and_its_held_headers_get_the_routing_headers() {
    let (mut s, _) = stream(
        config(serde_json::json!({"routing_headers": {"enabled": true}})),
        true,
    );
    assert_eq!(s.request_headers(false), Flow::Pause);
    assert!(s.host.calls.contains(&"watch".to_string()));
    let body = call("add");
    assert_eq!(feed(&mut s, &body, 10), Flow::Continue);
    let reads: Vec<_> = s
        .host
        .calls
        .iter()
        .filter(|c| c.starts_with("read"))
        .collect();
    assert_eq!(reads, [&format!("read Request 0+{}", body.len())]);
    assert!(
        s.host
            .calls
            .contains(&"set Request x-mcp-method=tools/call".to_string()),
        "{:?}",
        s.host.calls
    );
    assert!(
        s.host
            .calls
            .contains(&"set Request x-mcp-tool=add".to_string()),
        "{:?}",
        s.host.calls
    );
    assert!(s.host.replies().is_empty());
}

#[test]
fn a_denied_call_is_answered_and_never_resumed() {
    let (mut s, _) = stream(config(serde_json::json!({})), true);
    s.request_headers(false);
    assert_eq!(feed(&mut s, &call("secret"), 7), Flow::Pause);
    // Answered by the filter (a JSON-RPC error), once.
    assert_eq!(s.host.replies().len(), 1, "{:?}", s.host.calls);
    assert!(!s.host.calls.iter().any(|c| c == "resume"));
}

#[test]
fn a_refused_routing_header_ends_the_request_with_a_500_and_counts_it() {
    let (mut s, _) = stream(
        config(serde_json::json!({"routing_headers": {"enabled": true}})),
        true,
    );
    s.host.refuse = vec!["set Request x-mcp-tool"];
    s.request_headers(false);
    assert_eq!(feed(&mut s, &call("add"), 100), Flow::Pause);
    assert_eq!(s.host.replies(), ["reply 500"]);
    assert!(
        s.host.samples.iter().any(|n| n.contains("host_refused")),
        "{:?}",
        s.host.samples
    );
    // Later callbacks leave the local reply alone.
    assert_eq!(s.response_headers(), Flow::Continue);
}

#[test]
fn a_request_waiting_for_keys_resumes_once_judged() {
    let (mut s, ready) = stream(
        config(serde_json::json!({"routing_headers": {"enabled": true}})),
        false,
    );
    s.host.keys_fetch = true;
    assert_eq!(s.request_headers(false), Flow::Pause);
    // The body completes while the keys are fetched: it waits at its end.
    assert_eq!(feed(&mut s, &call("add"), 100), Flow::Pause);
    assert!(!s.host.calls.iter().any(|c| c == "resume"));
    ready.set(true);
    s.woken();
    assert_eq!(
        s.host.calls.last().map(String::as_str),
        Some("resume"),
        "{:?}",
        s.host.calls
    );
    assert!(s.host.replies().is_empty());
    // Woken twice (a late fetch): nothing more happens.
    let before = s.host.calls.len();
    s.woken();
    assert_eq!(s.host.calls.len(), before);
}

#[test]
fn a_request_that_cannot_wait_for_keys_is_judged_with_none_and_refused() {
    let (mut s, _) = stream(config(serde_json::json!({})), false);
    s.host.keys_fetch = false;
    // Judged at once, with no keys: 503 (keys unavailable) before anything goes on.
    assert_eq!(s.request_headers(false), Flow::Pause);
    assert!(s.host.calls.contains(&"wait for keys".to_string()));
    assert_eq!(s.host.replies(), ["reply 503"]);
}

#[test]
fn a_refused_resume_ends_the_request_rather_than_leave_it_unjudged() {
    let (mut s, ready) = stream(config(serde_json::json!({})), false);
    s.host.keys_fetch = true;
    s.host.refuse = vec!["resume"];
    s.request_headers(false);
    feed(&mut s, &call("add"), 100);
    ready.set(true);
    s.woken();
    assert_eq!(s.host.replies(), ["reply 500"]);
}

#[test]
fn a_listing_held_in_chunks_is_read_from_where_it_stopped_and_rewritten_whole() {
    let mut s = listing_answered();
    let answer = br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"add","inputSchema":{"type":"object"}},{"name":"secret","inputSchema":{"type":"object"}}]}}"#;
    let mut flow = Flow::Continue;
    let chunks: Vec<&[u8]> = answer.chunks(16).collect();
    for (i, part) in chunks.iter().enumerate() {
        s.host.response_body.extend_from_slice(part);
        let held = s.host.response_body.len();
        flow = s.response_body(held, i + 1 == chunks.len());
    }
    assert_eq!(flow, Flow::Continue);
    // Each chunk read once, from where the last one stopped.
    let reads: Vec<_> = s
        .host
        .calls
        .iter()
        .filter(|c| c.starts_with("read Response"))
        .collect();
    assert_eq!(reads.len(), chunks.len());
    assert_eq!(
        reads.first().map(|c| c.as_str()),
        Some("read Response 0+16")
    );
    assert_eq!(
        reads.get(1).map(|c| c.as_str()),
        Some("read Response 16+16")
    );
    // The rewrite replaced everything Envoy held.
    assert!(
        s.host
            .calls
            .contains(&format!("body Response 0+{}", answer.len())),
        "{:?}",
        s.host.calls
    );
    let listed: serde_json::Value = serde_json::from_slice(&s.host.response_body).unwrap();
    assert_eq!(
        listed["result"]["tools"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
}

#[test]
fn an_answer_to_a_call_this_request_did_not_send_is_ignored() {
    let (mut s, _) = stream(config(serde_json::json!({})), true);
    assert!(!s.sent(3));
    s.call_answered(3, &[(":status".into(), "200".into())], b"{}");
    assert!(s.host.calls.is_empty(), "{:?}", s.host.calls);
}

/// A listing's response header edit refused, and then the 500 and the reset
/// too: the stream stays paused. Its body and trailers, which follow, must
/// not release the unedited answer.
#[test]
fn a_response_the_filter_could_neither_edit_nor_end_is_never_released() {
    let mut s = listing_sent();
    s.host.response_headers = vec![
        (":status".into(), "200".into()),
        ("content-type".into(), "application/json".into()),
        ("content-length".into(), "200".into()),
    ];
    s.host.refuse = vec!["remove Response", "set Response", "reply", "reset"];
    assert_eq!(s.response_headers(), Flow::Pause);
    assert!(
        s.host.calls.iter().any(|c| c == "reset"),
        "{:?}",
        s.host.calls
    );
    s.host.response_body =
        br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"secret"}]}}"#.to_vec();
    let held = s.host.response_body.len();
    assert_eq!(s.response_body(held, false), Flow::Pause);
    assert_eq!(s.response_body(held, true), Flow::Pause);
    assert_eq!(s.response_trailers(), Flow::Pause);
}

/// Headers Envoy would not give are not "no headers": the request ends
/// (500) rather than being judged as one without a path or a token, and a
/// response is not passed on unread.
#[test]
fn headers_that_cannot_be_read_end_the_request() {
    let (mut s, _) = stream(config(serde_json::json!({})), true);
    s.host.refuse = vec!["headers"];
    assert_eq!(s.request_headers(false), Flow::Pause);
    assert_eq!(s.host.replies(), ["reply 500"]);
    assert_eq!(feed(&mut s, &call("add"), 100), Flow::Pause);
    assert!(!s.host.calls.iter().any(|c| c == "resume"));

    let mut s = listing_sent();
    s.host.refuse = vec!["headers"];
    assert_eq!(s.response_headers(), Flow::Pause);
    assert_eq!(s.host.replies(), ["reply 500"]);
}

/// A listing whose bytes cannot be read is not rewritten from what could.
#[test]
fn a_response_body_that_cannot_be_read_ends_the_request() {
    let mut s = listing_answered();
    // Envoy says it holds more than it gives.
    s.host.response_body = br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#.to_vec();
    let claimed = s.host.response_body.len() + 10;
    assert_eq!(s.response_body(claimed, true), Flow::Pause);
    assert_eq!(s.host.replies(), ["reply 500"]);
    assert!(!s.host.calls.iter().any(|c| c.starts_with("body Response")));
}

/// A call relayed to another backend is sent only once its step is carried
/// out: if Envoy refuses what the step records (filter state an access log
/// or a later filter reads), the client gets a 500 and the backend nothing.
#[test]
fn a_relayed_call_is_not_sent_when_its_step_cannot_be_carried_out() {
    let backends = serde_json::json!({"backends": {"servers": [
        {"name": "alpha", "cluster": "c_alpha"},
        {"name": "beta", "cluster": "c_beta"},
    ]}});
    for refused in [None, Some("property")] {
        let (mut s, _) = stream(config(backends.clone()), true);
        s.host.refuse = refused.into_iter().collect();
        s.request_headers(false);
        assert_eq!(feed(&mut s, &call("beta__add"), 100), Flow::Pause);
        let sent = s.host.calls.iter().any(|c| c == "send c_beta");
        assert_eq!(sent, refused.is_none(), "{refused:?}: {:?}", s.host.calls);
        if refused.is_some() {
            assert_eq!(s.host.replies(), ["reply 500"]);
        }
    }
}
