//! How a shell carries out a step through its host, and what it does when
//! the host refuses. Kept free of Envoy types behind [`Host`], so the
//! decisions are tested natively against a host that refuses on demand.
//!
//! Fail closed: every edit a step asks for (a header removed or set, a
//! property, a body rewritten) is part of the request the exchange judged.
//! The client's `Authorization` removed, client-sent routing headers removed,
//! routing and backend headers set, the session id swapped: if the host
//! refuses any of them, the request Envoy would forward is not the request
//! that was judged, so it does not go on. It ends with a local error (500,
//! JSON-RPC internal error); if even that local reply is refused, the stream
//! is reset, so nothing is left hanging and nothing unjudged passes.
//!
//! A step that already answers the request (a refusal) applies its edits as
//! well as it can: the request ends either way, with the reply it chose.
use crate::exchange::{Action, HeaderEdit, Step};
use crate::jsonrpc::{code, error_body, RequestId};
use crate::reject::LocalReply;

/// The `reason` label a refused host call is counted under (rejections).
pub const HOST_REFUSED: &str = "host_refused";

/// A host call that did not succeed, with the status the ABI returned
/// (proxy-wasm's status, or 0 where the ABI only says no).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostError(pub u32);

/// Which header map an edit targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Headers {
    Request,
    Response,
}

/// Which body a rewrite targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    Request,
    Response,
}

/// The host calls a step is carried out with.
pub trait Host {
    fn set_header(&mut self, map: Headers, name: &str, value: &str) -> Result<(), HostError>;
    fn remove_header(&mut self, map: Headers, name: &str) -> Result<(), HostError>;
    fn set_property(&mut self, name: &str, value: &[u8]) -> Result<(), HostError>;
    /// Replaces bytes `[start, start + size)` of a body with `data`.
    fn set_body(
        &mut self,
        body: Body,
        start: usize,
        size: usize,
        data: &[u8],
    ) -> Result<(), HostError>;
    fn send_local_response(&mut self, reply: &LocalReply) -> Result<(), HostError>;
    /// Resets the stream (the last resort: the client sees the stream fail).
    fn reset(&mut self) -> Result<(), HostError>;
    /// A line for the operator (never fails, never panics).
    fn warn(&mut self, message: &str);
}

/// A host call refused while carrying out a step: what it was, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub what: String,
    pub status: u32,
}

/// How a request the filter had to end, ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The local reply went out.
    Replied,
    /// The local reply was refused; the stream was reset instead.
    Reset,
    /// The host refused both: Envoy's own timeouts end the stream. Nothing
    /// was forwarded (the caller keeps the stream paused).
    Stuck,
}

fn edit_name(edit: &HeaderEdit) -> &str {
    match edit {
        HeaderEdit::Set(name, _) | HeaderEdit::Remove(name) => name,
    }
}

/// Applies header edits in order; stops at the first one refused.
pub fn apply_edits(host: &mut dyn Host, map: Headers, edits: &[HeaderEdit]) -> Result<(), Refused> {
    for edit in edits {
        let result = match edit {
            HeaderEdit::Set(name, value) => host.set_header(map, name, value),
            HeaderEdit::Remove(name) => host.remove_header(map, name),
        };
        if let Err(e) = result {
            let verb = match edit {
                HeaderEdit::Set(..) => "setting",
                HeaderEdit::Remove(_) => "removing",
            };
            return Err(Refused {
                what: format!("{verb} header `{}`", edit_name(edit)),
                status: e.0,
            });
        }
    }
    Ok(())
}

/// Sets filter-state properties; stops at the first one refused.
pub fn apply_properties(
    host: &mut dyn Host,
    properties: &[(&'static str, String)],
) -> Result<(), Refused> {
    for (name, value) in properties {
        if let Err(e) = host.set_property(name, value.as_bytes()) {
            return Err(Refused {
                what: format!("setting property `{name}`"),
                status: e.0,
            });
        }
    }
    Ok(())
}

/// Replaces a whole body.
pub fn rewrite_body(
    host: &mut dyn Host,
    body: Body,
    replaced_len: usize,
    data: &[u8],
) -> Result<(), Refused> {
    host.set_body(body, 0, replaced_len, data)
        .map_err(|e| Refused {
            what: match body {
                Body::Request => "rewriting the request body".into(),
                Body::Response => "rewriting the response body".into(),
            },
            status: e.0,
        })
}

/// Sends a local reply; if the host refuses it, resets the stream.
pub fn respond(host: &mut dyn Host, reply: &LocalReply) -> Ended {
    match host.send_local_response(reply) {
        Ok(()) => Ended::Replied,
        Err(e) => {
            host.warn(&format!(
                "local reply refused (status {}); resetting the stream",
                e.0
            ));
            match host.reset() {
                Ok(()) => Ended::Reset,
                Err(e) => {
                    host.warn(&format!(
                        "stream reset refused (status {}); the request stays paused",
                        e.0
                    ));
                    Ended::Stuck
                }
            }
        }
    }
}

/// What became of a step's edits and reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every edit applied; the step's action (go on, pause...) stands.
    Applied,
    /// The step answered the request itself, and the answer went (or not).
    Answered(Ended),
    /// The host refused an edit: the request was ended by the filter.
    Failed(Ended),
}

/// Carries out a step's body rewrite (of `body_len` bytes held), header
/// edits, properties and, if it answers, its reply. Fetches are the
/// caller's. `headers_editable`: the headers are still Envoy's to edit (an
/// edit asked for headers already sent is a refusal too).
pub fn carry_out(
    host: &mut dyn Host,
    step: &Step,
    map: Headers,
    body_len: usize,
    headers_editable: bool,
    id: Option<&RequestId>,
) -> Outcome {
    let edit = |host: &mut dyn Host| -> Result<(), Refused> {
        if let Some(body) = &step.body {
            let which = match map {
                Headers::Request => Body::Request,
                Headers::Response => Body::Response,
            };
            rewrite_body(host, which, body_len, body)?;
        }
        if !step.header_edits.is_empty() {
            if !headers_editable {
                return Err(Refused {
                    what: "editing request headers already sent".into(),
                    status: 0,
                });
            }
            apply_edits(host, map, &step.header_edits)?;
        }
        apply_properties(host, &step.properties)
    };
    let edited = edit(host);
    if let Action::Respond(reply) = &step.action {
        if let Err(refused) = edited {
            host.warn(&format!(
                "{} refused (status {}) on a request being answered",
                refused.what, refused.status
            ));
        }
        return Outcome::Answered(respond(host, reply));
    }
    match edited {
        Ok(()) => Outcome::Applied,
        Err(refused) => Outcome::Failed(fail(host, &refused, id)),
    }
}

/// The answer when the host refused what the filter's decision needs.
pub fn host_failure_reply(id: Option<&RequestId>) -> LocalReply {
    LocalReply {
        status: 500,
        headers: vec![("content-type".into(), "application/json".into())],
        body: error_body(
            id,
            code::INTERNAL_ERROR,
            "the gateway could not apply its decision to this request",
        ),
    }
}

/// Ends a request whose step the host refused: a local 500, or a reset.
pub fn fail(host: &mut dyn Host, refused: &Refused, id: Option<&RequestId>) -> Ended {
    host.warn(&format!(
        "{} refused (status {}); the request ends here",
        refused.what, refused.status
    ));
    respond(host, &host_failure_reply(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host that records every call and refuses the ones it is told to.
    #[derive(Default)]
    struct FakeHost {
        calls: Vec<String>,
        refuse: Vec<&'static str>,
        warnings: Vec<String>,
    }

    impl FakeHost {
        fn refusing(calls: &[&'static str]) -> Self {
            Self {
                refuse: calls.to_vec(),
                ..Self::default()
            }
        }

        fn call(&mut self, call: String) -> Result<(), HostError> {
            let refused = self.refuse.iter().any(|r| call.starts_with(r));
            self.calls.push(call);
            if refused {
                Err(HostError(2))
            } else {
                Ok(())
            }
        }
    }

    impl Host for FakeHost {
        fn set_header(&mut self, map: Headers, name: &str, value: &str) -> Result<(), HostError> {
            self.call(format!("set {map:?} {name}={value}"))
        }
        fn remove_header(&mut self, map: Headers, name: &str) -> Result<(), HostError> {
            self.call(format!("remove {map:?} {name}"))
        }
        fn set_property(&mut self, name: &str, _: &[u8]) -> Result<(), HostError> {
            self.call(format!("property {name}"))
        }
        fn set_body(&mut self, body: Body, _: usize, _: usize, _: &[u8]) -> Result<(), HostError> {
            self.call(format!("body {body:?}"))
        }
        fn send_local_response(&mut self, reply: &LocalReply) -> Result<(), HostError> {
            self.call(format!("reply {}", reply.status))
        }
        fn reset(&mut self) -> Result<(), HostError> {
            self.call("reset".into())
        }
        fn warn(&mut self, message: &str) {
            self.warnings.push(message.into());
        }
    }

    fn auth_edits() -> Vec<HeaderEdit> {
        vec![
            HeaderEdit::Remove("x-mcp-method".into()),
            HeaderEdit::Remove("authorization".into()),
            HeaderEdit::Set("x-mcp-backend".into(), "b".into()),
        ]
    }

    #[test]
    fn every_edit_applies_in_order_when_the_host_agrees() {
        let mut host = FakeHost::default();
        assert_eq!(
            apply_edits(&mut host, Headers::Request, &auth_edits()),
            Ok(())
        );
        assert_eq!(
            host.calls,
            [
                "remove Request x-mcp-method",
                "remove Request authorization",
                "set Request x-mcp-backend=b"
            ]
        );
    }

    #[test]
    fn a_refused_removal_of_the_clients_token_ends_the_request_with_a_500() {
        let mut host = FakeHost::refusing(&["remove Request authorization"]);
        let refused = apply_edits(&mut host, Headers::Request, &auth_edits()).unwrap_err();
        assert_eq!(refused.what, "removing header `authorization`");
        // Nothing after the refusal is applied: the request is over.
        assert!(!host.calls.iter().any(|c| c.starts_with("set")));
        let raw = serde_json::value::RawValue::from_string("7".into()).unwrap();
        let id = RequestId::from_raw(&raw).unwrap();
        assert_eq!(fail(&mut host, &refused, Some(&id)), Ended::Replied);
        assert_eq!(host.calls.last().map(String::as_str), Some("reply 500"));
        assert!(!host.calls.iter().any(|c| c == "resume"));
        let reply = host_failure_reply(Some(&id));
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["error"]["code"], code::INTERNAL_ERROR);
        assert_eq!(body["id"], 7);
        assert!(
            host.warnings[0].contains("authorization"),
            "{:?}",
            host.warnings
        );
    }

    #[test]
    fn refused_routing_edits_are_each_refusals() {
        for (refuse, what) in [
            (
                "remove Request x-mcp-method",
                "removing header `x-mcp-method`",
            ),
            (
                "set Request x-mcp-backend",
                "setting header `x-mcp-backend`",
            ),
        ] {
            let mut host = FakeHost::refusing(&[refuse]);
            let refused = apply_edits(&mut host, Headers::Request, &auth_edits()).unwrap_err();
            assert_eq!(refused.what, what);
        }
    }

    #[test]
    fn a_refused_property_or_body_rewrite_is_a_refusal_too() {
        let mut host = FakeHost::refusing(&["property mcp_tool"]);
        let props = vec![
            ("mcp_method", "x".to_string()),
            ("mcp_tool", "y".to_string()),
        ];
        assert_eq!(
            apply_properties(&mut host, &props).unwrap_err().what,
            "setting property `mcp_tool`"
        );
        let mut host = FakeHost::refusing(&["body Response"]);
        assert!(rewrite_body(&mut host, Body::Request, 3, b"abc").is_ok());
        assert_eq!(
            rewrite_body(&mut host, Body::Response, 3, b"abc")
                .unwrap_err()
                .what,
            "rewriting the response body"
        );
    }

    fn step(action: Action) -> Step {
        let mut step = Step::from(action);
        step.header_edits = auth_edits();
        step.properties = vec![("mcp_method", "tools/call".into())];
        step
    }

    #[test]
    fn a_step_carried_out_applies_body_edits_and_properties_then_its_action_stands() {
        let mut host = FakeHost::default();
        let mut go = step(Action::Continue);
        go.body = Some(b"{}".to_vec());
        let outcome = carry_out(&mut host, &go, Headers::Request, 2, true, None);
        assert_eq!(outcome, Outcome::Applied);
        assert_eq!(host.calls.first().map(String::as_str), Some("body Request"));
        assert_eq!(
            host.calls.last().map(String::as_str),
            Some("property mcp_method")
        );
        assert!(!host.calls.iter().any(|c| c.starts_with("reply")));
    }

    #[test]
    fn a_step_whose_edit_is_refused_never_goes_on() {
        for refuse in [
            "remove Request authorization",
            "remove Request x-mcp-method",
            "set Request x-mcp-backend",
            "property",
            "body",
        ] {
            let mut host = FakeHost::refusing(&[refuse]);
            let mut go = step(Action::Continue);
            go.body = Some(b"{}".to_vec());
            let outcome = carry_out(&mut host, &go, Headers::Request, 2, true, None);
            assert_eq!(outcome, Outcome::Failed(Ended::Replied), "{refuse}");
            assert_eq!(host.calls.last().map(String::as_str), Some("reply 500"));
        }
        // Edits asked for headers Envoy already sent: refused without asking.
        let mut host = FakeHost::default();
        let outcome = carry_out(
            &mut host,
            &step(Action::Pause),
            Headers::Request,
            0,
            false,
            None,
        );
        assert_eq!(outcome, Outcome::Failed(Ended::Replied));
        assert!(!host.calls.iter().any(|c| c.starts_with("remove")));
        // On the response too: a refused session id rewrite ends it.
        let mut host = FakeHost::refusing(&["set Response"]);
        let mut answer = Step::from(Action::Continue);
        answer.header_edits = vec![HeaderEdit::Set("mcp-session-id".into(), "w".into())];
        let outcome = carry_out(&mut host, &answer, Headers::Response, 0, true, None);
        assert_eq!(outcome, Outcome::Failed(Ended::Replied));
    }

    #[test]
    fn a_refusal_keeps_its_own_reply_when_an_edit_is_refused() {
        let mut host = FakeHost::refusing(&["remove Request authorization"]);
        let reply = LocalReply {
            status: 401,
            headers: vec![],
            body: vec![],
        };
        let outcome = carry_out(
            &mut host,
            &step(Action::Respond(reply)),
            Headers::Request,
            0,
            true,
            None,
        );
        assert_eq!(outcome, Outcome::Answered(Ended::Replied));
        assert_eq!(host.calls.last().map(String::as_str), Some("reply 401"));
    }

    #[test]
    fn a_refused_local_reply_resets_the_stream_rather_than_leave_it_hanging() {
        let mut host = FakeHost::refusing(&["reply"]);
        let reply = host_failure_reply(None);
        assert_eq!(respond(&mut host, &reply), Ended::Reset);
        assert_eq!(host.calls, ["reply 500", "reset"]);
        let mut host = FakeHost::refusing(&["reply", "reset"]);
        assert_eq!(respond(&mut host, &reply), Ended::Stuck);
        assert!(!host.calls.iter().any(|c| c == "resume"));
        assert_eq!(host.warnings.len(), 2);
    }
}
