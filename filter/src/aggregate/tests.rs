use super::*;
use crate::backends::BackendId;
use crate::backends::{Named, RawBackends};
use crate::listing::Listed;
use serde_json::{json, Value};

fn backends() -> Backends {
    serde_json::from_value::<RawBackends>(json!({"servers": [
        {"name": "github", "tools": {"exclude": ["secret"]}},
        {"name": "jira", "cluster": "jira_cluster", "path": "/v1/mcp"}
    ]}))
    .unwrap()
    .compile()
    .unwrap()
}

fn id(raw: &str) -> RequestId {
    RequestId::from_raw(&serde_json::value::RawValue::from_string(raw.into()).unwrap()).unwrap()
}

const CLIENT: &[u8] =
    br#"{"jsonrpc":"2.0","id":9,"method":"tools/list","params":{"_meta":{"progressToken":"t"}}}"#;

fn start(b: &Backends) -> (Aggregation, Vec<Fetch>) {
    Aggregation::start(
        b,
        ListKind::Tools,
        id("9"),
        CLIENT,
        vec![("mcp-protocol-version".into(), "2025-11-25".into())],
        Some("sess-1".into()),
        1 << 20,
    )
}

/// What the exchange does: the backend's published name, unless the policy says no.
fn decide_for(b: &Backends, backend: usize) -> impl FnMut(&str, &str) -> Listed + '_ {
    move |name: &str, _item: &str| match b.publish(Named::Tool, BackendId::at(backend), name) {
        None => Listed::Hide,
        Some(public) if public.contains("forbidden") => Listed::Hide,
        Some(public) => Listed::Rename(public.into_owned()),
    }
}

fn json_answer(body: &str) -> BackendAnswer<'_> {
    BackendAnswer {
        status: Some(200),
        content_type: Some("application/json"),
        content_encoding: None,
        body: body.as_bytes(),
    }
}

fn header<'a>(fetch: &'a Fetch, name: &str) -> Option<&'a str> {
    fetch
        .headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn the_client_request_goes_to_every_backend_with_its_own_address() {
    let b = backends();
    let (_, fetches) = start(&b);
    assert_eq!(fetches.len(), 2);
    assert_eq!(fetches[0].cluster, "github");
    assert_eq!(header(&fetches[0], ":path"), Some("/mcp"));
    assert_eq!(header(&fetches[1], ":path"), Some("/v1/mcp"));
    assert_eq!(header(&fetches[1], ":authority"), Some("jira_cluster"));
    assert_eq!(fetches[1].cluster, "jira_cluster");
    assert!(fetches.iter().all(|f| f.body == CLIENT));
    assert!(fetches
        .iter()
        .all(|f| header(f, "mcp-protocol-version") == Some("2025-11-25")));
    // The client's session belongs to the default backend only.
    assert_eq!(header(&fetches[0], "mcp-session-id"), Some("sess-1"));
    assert_eq!(header(&fetches[1], "mcp-session-id"), None);
}

#[test]
fn answers_in_json_and_sse_pages_are_merged_renamed_and_filtered() {
    let b = backends();
    let (mut agg, _) = start(&b);
    let next = agg.on_answer(
        &b,
        BackendId::at(0),
        json_answer(r#"{"jsonrpc":"2.0","id":9,"result":{"tools":[{"name":"create_issue","x":1},{"name":"secret"}]}}"#),
        &mut decide_for(&b, 0),
    );
    assert!(next.is_none());
    assert!(!agg.is_complete());
    // jira answers over SSE, with a priming event, CRLF line ends and a next page.
    let sse = "id: 0\r\ndata:\r\n\r\nevent: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{\"tools\":[{\"name\":\"create_issue\"},{\"name\":\"forbidden\"}],\"nextCursor\":\"p2\"}}\r\n\r\n";
    let page2 = agg
        .on_answer(
            &b,
            BackendId::at(1),
            BackendAnswer {
                status: Some(200),
                content_type: Some("text/event-stream"),
                content_encoding: None,
                body: sse.as_bytes(),
            },
            &mut decide_for(&b, 1),
        )
        .expect("the next page is fetched");
    let body: Value = serde_json::from_slice(&page2.body).unwrap();
    assert_eq!(
        body,
        json!({"jsonrpc":"2.0","id":9,"method":"tools/list","params":{"cursor":"p2","_meta":{"progressToken":"t"}}})
    );
    assert!(!agg.is_complete());
    agg.on_answer(
        &b,
        BackendId::at(1),
        json_answer(r#"{"jsonrpc":"2.0","id":9,"result":{"tools":[{"name":"search"}]}}"#),
        &mut decide_for(&b, 1),
    );
    assert!(agg.is_complete());
    assert_eq!(agg.hidden(), 2);
    let reply = agg.reply();
    assert_eq!(reply.status, 200);
    let v: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        v,
        json!({"jsonrpc":"2.0","id":9,"result":{"tools":[
            {"name":"github__create_issue","x":1},
            {"name":"jira__create_issue"},
            {"name":"jira__search"}
        ]}})
    );
}

#[test]
fn a_failed_backend_is_left_out_and_counted() {
    let b = backends();
    for (answer, failure) in [
        (
            BackendAnswer {
                status: None,
                content_type: None,
                content_encoding: None,
                body: b"",
            },
            Failure::Unreachable,
        ),
        (
            BackendAnswer {
                status: Some(503),
                content_type: Some("application/json"),
                content_encoding: None,
                body: b"{}",
            },
            Failure::HttpStatus(503),
        ),
        (json_answer("not json"), Failure::Unreadable),
        (
            json_answer(r#"{"jsonrpc":"2.0","id":9,"result":{"tools":[{"name":1}]}}"#),
            Failure::Unreadable,
        ),
        (
            json_answer(r#"{"jsonrpc":"2.0","id":9,"error":{"code":-32601,"message":"no"}}"#),
            Failure::RpcError,
        ),
        (
            BackendAnswer {
                status: Some(200),
                content_type: Some("text/html"),
                content_encoding: None,
                body: b"<html>",
            },
            Failure::Unreadable,
        ),
    ] {
        let (mut agg, _) = start(&b);
        agg.on_answer(
            &b,
            BackendId::at(0),
            json_answer(r#"{"jsonrpc":"2.0","id":9,"result":{"tools":[{"name":"a"}]}}"#),
            &mut decide_for(&b, 0),
        );
        assert!(agg
            .on_answer(&b, BackendId::at(1), answer, &mut decide_for(&b, 1))
            .is_none());
        assert!(agg.is_complete());
        assert_eq!(agg.failures(), &[(BackendId::at(1), failure)]);
        let v: Value = serde_json::from_slice(&agg.reply().body).unwrap();
        assert_eq!(
            v["result"]["tools"],
            json!([{"name": "github__a"}]),
            "{failure:?}"
        );
    }
}

#[test]
fn no_backend_answering_is_an_error_with_the_request_id() {
    let b = backends();
    let (mut agg, _) = start(&b);
    agg.unreachable(BackendId::at(0));
    agg.on_answer(
        &b,
        BackendId::at(1),
        BackendAnswer {
            status: Some(500),
            content_type: None,
            content_encoding: None,
            body: b"",
        },
        &mut decide_for(&b, 1),
    );
    assert!(agg.is_complete());
    let reply = agg.reply();
    assert_eq!(reply.status, 502);
    let v: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(v["id"], 9);
    assert_eq!(v["error"]["code"], -32603);
}

#[test]
fn pages_are_followed_up_to_a_bound() {
    let b = backends();
    let (mut agg, _) = start(&b);
    agg.unreachable(BackendId::at(0));
    let mut fetched = 1;
    loop {
        let page = format!(
            r#"{{"jsonrpc":"2.0","id":9,"result":{{"tools":[{{"name":"t{fetched}"}}],"nextCursor":"c{fetched}"}}}}"#
        );
        match agg.on_answer(
            &b,
            BackendId::at(1),
            json_answer(&page),
            &mut decide_for(&b, 1),
        ) {
            Some(_) => fetched += 1,
            None => break,
        }
    }
    assert_eq!(fetched, MAX_PAGES);
    assert!(agg.is_complete());
    assert!(agg
        .failures()
        .contains(&(BackendId::at(1), Failure::TooManyPages)));
    let v: Value = serde_json::from_slice(&agg.reply().body).unwrap();
    assert_eq!(v["result"]["tools"].as_array().unwrap().len(), MAX_PAGES);
}

#[test]
fn answers_for_unknown_or_finished_backends_are_ignored() {
    let b = backends();
    let (mut agg, _) = start(&b);
    let ok = r#"{"jsonrpc":"2.0","id":9,"result":{"tools":[{"name":"a"}]}}"#;
    assert!(agg
        .on_answer(
            &b,
            BackendId::at(7),
            json_answer(ok),
            &mut decide_for(&b, 0)
        )
        .is_none());
    agg.on_answer(
        &b,
        BackendId::at(0),
        json_answer(ok),
        &mut decide_for(&b, 0),
    );
    agg.on_answer(
        &b,
        BackendId::at(0),
        json_answer(ok),
        &mut decide_for(&b, 0),
    );
    agg.unreachable(BackendId::at(1));
    let v: Value = serde_json::from_slice(&agg.reply().body).unwrap();
    assert_eq!(v["result"]["tools"], json!([{"name": "github__a"}]));
}

/// The gathered answer is valid for the version the request negotiated:
/// from 2026-07-28 it carries the fields that version requires (checked
/// against the published schema where `../shared` is present).
#[test]
fn the_gathered_answer_carries_what_its_protocol_version_requires() {
    let b = backends();
    let schema_of = |version: &str| -> Option<Value> {
        let path = format!(
            "{}/../../shared/mcp-schema/{version}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).ok(),
            Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("CI=true but {path} is missing")
            }
            Err(_) => {
                eprintln!("skipping the schema check: {path} is not here (it is in CI)");
                None
            }
        }
    };
    for (version, header) in [
        ("2025-11-25", true),
        ("2026-07-28", true),
        ("2026-07-28", false),
    ] {
        let (forward, body) = if header {
            (
                vec![("mcp-protocol-version".to_string(), version.to_string())],
                CLIENT.to_vec(),
            )
        } else {
            (
                Vec::new(),
                format!(
                    r#"{{"jsonrpc":"2.0","id":9,"method":"tools/list","params":{{"_meta":{{"io.modelcontextprotocol/protocolVersion":"{version}"}}}}}}"#
                )
                .into_bytes(),
            )
        };
        let (mut agg, _) =
            Aggregation::start(&b, ListKind::Tools, id("9"), &body, forward, None, 1 << 20);
        for backend in 0..2 {
            agg.on_answer(
                &b,
                BackendId::at(backend),
                json_answer(r#"{"jsonrpc":"2.0","id":9,"result":{"tools":[{"name":"a"}]}}"#),
                &mut decide_for(&b, backend),
            );
        }
        let reply: Value = serde_json::from_slice(&agg.reply().body).unwrap();
        let result = reply["result"].as_object().unwrap();
        let stamped = version == "2026-07-28";
        assert_eq!(
            result.contains_key("resultType"),
            stamped,
            "{version}: {reply}"
        );
        if stamped {
            assert_eq!(reply["result"]["cacheScope"], "private");
            assert_eq!(reply["result"]["ttlMs"], 0);
        }
        if let Some(schema) = schema_of(version) {
            let def = &schema["$defs"]["ListToolsResult"];
            let def = if def.is_null() {
                &schema["definitions"]["ListToolsResult"]
            } else {
                def
            };
            for key in def["required"].as_array().unwrap() {
                assert!(
                    result.contains_key(key.as_str().unwrap()),
                    "{version}: {key} missing in {reply}"
                );
            }
            let known = def["properties"].as_object().unwrap();
            for key in result.keys() {
                assert!(
                    known.contains_key(key),
                    "{version}: {key} is not in the schema"
                );
            }
        }
    }
}
