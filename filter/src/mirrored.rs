//! MCP 2026-07-28 mirrored headers (`Mcp-Method`, `Mcp-Name`, `MCP-Protocol-Version`):
//! they let Envoy route and authorize without reading the body, so they must
//! say what the body says. A disagreement is a confused-deputy attempt (the edge
//! judges the header, the server executes the body) and is refused with -32020.

use crate::classify::{Classified, MessageKind};
use crate::reject::{quote, Reason, Rejection};
use base64::Engine;

/// The first protocol version whose clients must send the mirrored headers.
pub const MIRRORED_HEADERS_SINCE: &str = "2026-07-28";

/// The mirrored headers of one request, every value as received (a header
/// repeated is kept repeated, so that it can be refused).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MirroredHeaders {
    pub method: Vec<String>,
    pub name: Vec<String>,
    pub protocol_version: Vec<String>,
}

impl MirroredHeaders {
    /// Collects the mirrored headers from a header list (names compared case-insensitively).
    pub fn from_headers<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut out = Self::default();
        for (name, value) in headers {
            let slot = if name.eq_ignore_ascii_case("mcp-method") {
                &mut out.method
            } else if name.eq_ignore_ascii_case("mcp-name") {
                &mut out.name
            } else if name.eq_ignore_ascii_case("mcp-protocol-version") {
                &mut out.protocol_version
            } else {
                continue;
            };
            slot.push(value.to_string());
        }
        out
    }

    /// The negotiated protocol version the client declared, if any.
    pub fn protocol_version(&self) -> Option<&str> {
        self.protocol_version.first().map(String::as_str)
    }

    /// The method and name the headers declare, decoded, when each appears
    /// exactly once (what routing may read before the body; the body is
    /// checked against the same headers once it arrives).
    pub fn declared(&self) -> Option<(String, String)> {
        let method = decoded(single("Mcp-Method", &self.method).ok()?).ok()??;
        let name = decoded(single("Mcp-Name", &self.name).ok()?).ok()??;
        Some((method, name))
    }

    /// Verifies the headers against the classified body.
    pub fn verify(&self, body: &Classified) -> Result<(), Rejection> {
        let method = single("Mcp-Method", &self.method)?;
        let name = single("Mcp-Name", &self.name)?;
        let version = single("MCP-Protocol-Version", &self.protocol_version)?;
        // Lexical order is date order for YYYY-MM-DD versions.
        let required = version.is_some_and(|v| v >= MIRRORED_HEADERS_SINCE);

        let Some(message) = body.single() else {
            // A batch has no single method to mirror; 2026-07-28 has no batches.
            if method.is_some() || name.is_some() || required {
                return Err(mismatch(
                    "mirrored MCP headers cannot describe a JSON-RPC batch",
                ));
            }
            return Ok(());
        };
        let with_id = |r: Rejection| r.with_id(message.id.clone());

        if let (Some(header), Some(body)) = (version, message.protocol_version.as_deref()) {
            if header != body {
                return Err(with_id(mismatch(format!(
                    "MCP-Protocol-Version header {} does not match body value {}",
                    quote(header),
                    quote(body)
                ))));
            }
        }

        if message.kind == MessageKind::Response {
            if method.is_some() || name.is_some() {
                return Err(with_id(mismatch(
                    "a JSON-RPC response carries no Mcp-Method or Mcp-Name",
                )));
            }
            return Ok(());
        }
        let body_method = message.method.as_deref().unwrap_or_default();
        match decoded(method).map_err(with_id)? {
            Some(header) if header != body_method => {
                return Err(with_id(mismatch(format!(
                    "Mcp-Method header {} does not match body value {}",
                    quote(&header),
                    quote(body_method)
                ))))
            }
            None if required => {
                return Err(with_id(mismatch("missing required Mcp-Method header")));
            }
            _ => {}
        }

        // What a 2026-07-28 client mirrors in `Mcp-Name`: the subject a call
        // names (required), or a task's id (SEP-2663: optional, checked when
        // sent). A completion's prompt is its subject for the policy, not a
        // name the client mirrors.
        let (body_name, required) = match body_method {
            "completion/complete" => (None, false),
            "tasks/get" | "tasks/result" | "tasks/cancel" | "tasks/update" => {
                (message.task_id.as_deref(), false)
            }
            _ => (message.subject.as_ref().map(|s| s.name()), required),
        };
        match (decoded(name).map_err(with_id)?, body_name) {
            (Some(header), Some(body)) if header != body => Err(with_id(mismatch(format!(
                "Mcp-Name header {} does not match body value {}",
                quote(&header),
                quote(body)
            )))),
            (Some(header), None) => Err(with_id(mismatch(format!(
                "Mcp-Name header {} on {}, which names nothing",
                quote(&header),
                quote(body_method)
            )))),
            (None, Some(_)) if required => {
                Err(with_id(mismatch("missing required Mcp-Name header")))
            }
            _ => Ok(()),
        }
    }
}

fn mismatch(detail: impl Into<String>) -> Rejection {
    Rejection::new(Reason::HeaderMismatch, detail)
}

fn single<'a>(header: &str, values: &'a [String]) -> Result<Option<&'a str>, Rejection> {
    match values {
        [] => Ok(None),
        [one] => Ok(Some(one.as_str())),
        _ => Err(mismatch(format!("{header} header appears more than once"))),
    }
}

/// Header values that cannot be plain ASCII travel as `=?base64?<b64>?=`.
fn decoded(value: Option<&str>) -> Result<Option<String>, Rejection> {
    let Some(value) = value else { return Ok(None) };
    let Some(encoded) = value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    else {
        return Ok(Some(value.to_string()));
    };
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map(Some)
        .ok_or_else(|| {
            mismatch(format!(
                "mirrored header value {} is not valid base64 UTF-8",
                quote(value)
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::classify;

    const CALL: &str = r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"add","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;

    fn check(headers: &[(&str, &str)], body: &str) -> Result<(), Rejection> {
        let h = MirroredHeaders::from_headers(headers.iter().copied());
        h.verify(&classify(body.as_bytes(), true).unwrap())
    }

    fn modern(method: &str, name: &str) -> Vec<(&'static str, String)> {
        vec![
            ("mcp-method", method.to_string()),
            ("mcp-name", name.to_string()),
            ("mcp-protocol-version", "2026-07-28".to_string()),
        ]
    }

    fn check_owned(headers: &[(&str, String)], body: &str) -> Result<(), Rejection> {
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        check(&pairs, body)
    }

    #[test]
    fn matching_headers_pass() {
        check_owned(&modern("tools/call", "add"), CALL).unwrap();
    }

    #[test]
    fn a_name_header_that_disagrees_is_refused_with_the_request_id() {
        let r = check_owned(&modern("tools/call", "echo"), CALL).unwrap_err();
        assert_eq!(r.reason, Reason::HeaderMismatch);
        assert_eq!(r.id.unwrap().as_json(), "4");
        assert!(
            r.detail.contains("`echo`") && r.detail.contains("`add`"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn a_method_header_that_disagrees_is_refused() {
        let r = check_owned(&modern("tools/list", "add"), CALL).unwrap_err();
        assert!(r.detail.contains("Mcp-Method"), "{}", r.detail);
    }

    #[test]
    fn a_2026_request_must_carry_method_and_name() {
        let r = check(
            &[("mcp-protocol-version", "2026-07-28"), ("mcp-name", "add")],
            CALL,
        )
        .unwrap_err();
        assert!(
            r.detail.contains("missing required Mcp-Method"),
            "{}",
            r.detail
        );
        let r = check(
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
            ],
            CALL,
        )
        .unwrap_err();
        assert!(
            r.detail.contains("missing required Mcp-Name"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn older_clients_without_mirrored_headers_pass() {
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add"}}"#;
        check(&[("mcp-protocol-version", "2025-06-18")], body).unwrap();
        check(&[], body).unwrap();
    }

    #[test]
    fn headers_present_on_older_versions_are_still_checked() {
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add"}}"#;
        assert!(check(
            &[
                ("mcp-protocol-version", "2025-06-18"),
                ("mcp-name", "secret")
            ],
            body
        )
        .is_err());
    }

    #[test]
    fn protocol_version_header_must_match_meta() {
        let r = check(
            &[
                ("mcp-method", "tools/call"),
                ("mcp-name", "add"),
                ("mcp-protocol-version", "2026-08-01"),
            ],
            CALL,
        )
        .unwrap_err();
        assert!(r.detail.contains("MCP-Protocol-Version"), "{}", r.detail);
    }

    #[test]
    fn a_repeated_mirrored_header_is_refused() {
        let mut h = modern("tools/call", "add");
        h.push(("Mcp-Name", "secret".into()));
        let r = check_owned(&h, CALL).unwrap_err();
        assert!(r.detail.contains("more than once"), "{}", r.detail);
    }

    #[test]
    fn a_name_header_on_a_method_without_a_subject_is_refused() {
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        assert!(check(&[("mcp-method", "tools/list"), ("mcp-name", "add")], body).is_err());
        check(
            &[
                ("mcp-method", "tools/list"),
                ("mcp-protocol-version", "2026-07-28"),
            ],
            body,
        )
        .unwrap();
    }

    /// What rmcp 3.11 and the Python SDK 2.3 send on 2026-07-28: no
    /// `Mcp-Name` on a completion or a notification stream, the task id on
    /// `tasks/*` (rmcp, SEP-2663).
    #[test]
    fn housekeeping_names_only_what_clients_mirror() {
        for (method, body) in [
            (
                "completion/complete",
                r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"greet"},"argument":{"name":"a","value":""},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
            ),
            (
                "subscriptions/listen",
                r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["file:///a"]},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
            ),
        ] {
            let headers = [
                ("mcp-method", method),
                ("mcp-protocol-version", "2026-07-28"),
            ];
            check(&headers, body).unwrap();
            let mut named = headers.to_vec();
            named.push(("mcp-name", "greet"));
            assert!(check(&named, body).is_err(), "{method}");
        }
        let task = r#"{"jsonrpc":"2.0","id":2,"method":"tasks/get","params":{"taskId":"t-1","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        check_owned(&modern("tasks/get", "t-1"), task).unwrap();
        check(
            &[
                ("mcp-method", "tasks/get"),
                ("mcp-protocol-version", "2026-07-28"),
            ],
            task,
        )
        .unwrap();
        let r = check_owned(&modern("tasks/get", "t-2"), task).unwrap_err();
        assert!(r.detail.contains("`t-2`"), "{}", r.detail);
        // A task id is read only for tasks, so it cannot name another method.
        let other = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"taskId":"t-1"}}"#;
        assert!(check_owned(&modern("tools/list", "t-1"), other).is_err());
    }

    #[test]
    fn base64_sentinel_values_are_decoded_before_comparing() {
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///caf\u00e9"}}"#;
        let encoded = format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode("file:///café")
        );
        check(
            &[("mcp-method", "resources/read"), ("mcp-name", &encoded)],
            body,
        )
        .unwrap();
        let wrong = format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode("file:///x")
        );
        assert!(check(&[("mcp-name", &wrong)], body).is_err());
        assert!(check(&[("mcp-name", "=?base64?!!!?=")], body).is_err());
    }

    #[test]
    fn mirrored_headers_on_a_batch_are_refused() {
        let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#;
        assert!(check(&[("mcp-method", "ping")], batch).is_err());
        check(&[], batch).unwrap();
    }
}
