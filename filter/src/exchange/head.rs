//! The request head: the endpoint (its path, read every way a server might),
//! the HTTP method, the protected-resource metadata document, content type,
//! encoding and length; then authentication and routing for what follows.
//!
//! Must not: read the body, or let a request a server could take for an MCP
//! request past unjudged (an ambiguous path is refused, not guessed).

use crate::auth::challenge;
use crate::backends::Backends;
use crate::config::NonMcpTraffic;
use crate::endpoint::PathClass;
use crate::exchange::gate::Admitted;
use crate::exchange::Action;
use crate::exchange::{fanout_headers, has_body, header, Exchange, HeaderEdit, Phase, Step};
use crate::mirrored::MirroredHeaders;
use crate::reject::{Reason, Rejection};
use crate::response::Framing;

impl Exchange {
    pub(super) fn judge_request_head(
        &mut self,
        headers: &[(String, String)],
        end_of_stream: bool,
    ) -> Step {
        let path = header(headers, ":path").unwrap_or_default();
        let method = header(headers, ":method").unwrap_or_default();
        if let Some(auth) = &self.config.auth {
            let bare = path.split(['?', '#']).next().unwrap_or(path);
            if method == "GET" && auth.metadata.paths.iter().any(|p| p == bare) {
                let reply = challenge::resource_metadata_document(&auth.metadata);
                return self.answer(reply);
            }
        }
        match self.config.endpoint.classify(path) {
            PathClass::Mcp => {}
            PathClass::Public => {
                self.phase = Phase::Passthrough;
                return Step::go();
            }
            PathClass::Other => return self.non_mcp(Reason::NotFound, "not the MCP endpoint"),
            // No single reading: a server could take it as the MCP endpoint.
            PathClass::Ambiguous(why)
                if self.config.guarded()
                    || self.config.non_mcp_traffic == NonMcpTraffic::Reject =>
            {
                return self.refuse(Rejection::new(Reason::AmbiguousPath, why.detail()))
            }
            PathClass::Ambiguous(_) => {
                self.phase = Phase::Passthrough;
                return Step::go();
            }
        }
        match method {
            "POST" => {}
            "GET" | "DELETE" => {
                if has_body(headers) {
                    return self.refuse(Rejection::new(
                        Reason::BodyNotAllowed,
                        format!("{method} to the MCP endpoint must not carry a body"),
                    ));
                }
                let edits = match self.authenticate_request(headers, end_of_stream) {
                    Ok(Admitted::Through(edits)) => edits,
                    // Nothing follows these headers: they wait for the keys.
                    Ok(Admitted::Deferred(_) | Admitted::AwaitKeys) => {
                        return self.await_keys(headers, end_of_stream)
                    }
                    Err(refusal) => return self.refuse(refusal),
                };
                self.phase = Phase::NoBodyAllowed;
                let mut step = Step::go();
                step.header_edits = edits;
                // A resumed stream may replay a listing's answer: it must
                // come uncompressed too.
                if self.filters_listings() && header(headers, "accept-encoding").is_some() {
                    step.header_edits
                        .push(HeaderEdit::Remove("accept-encoding".into()));
                }
                step.header_edits.extend(self.route_head(false, false));
                step.properties = self.caller_properties();
                return step;
            }
            // A CORS preflight (answered by Envoy's cors filter or the server)
            // never has a body; one that does could carry an MCP message.
            "OPTIONS" if end_of_stream && !has_body(headers) => return Step::go(),
            "OPTIONS" => {
                return self.refuse(Rejection::new(
                    Reason::BodyNotAllowed,
                    "OPTIONS to the MCP endpoint must not carry a body",
                ))
            }
            // With anything guarded, nothing unjudged reaches the MCP endpoint.
            _ if self.config.guarded() => {
                return self.refuse(Rejection::new(
                    Reason::MethodNotAllowed,
                    "the MCP endpoint serves GET, POST and DELETE",
                ))
            }
            _ => {
                return self.non_mcp(
                    Reason::MethodNotAllowed,
                    "the MCP endpoint serves GET, POST and DELETE",
                )
            }
        }

        let (mut auth_edits, deferred_auth) =
            match self.authenticate_request(headers, end_of_stream) {
                Ok(Admitted::Through(edits)) => (edits, None),
                Ok(Admitted::Deferred(edits)) => (edits, Some(headers.to_vec())),
                Ok(Admitted::AwaitKeys) => return self.await_keys(headers, end_of_stream),
                Err(refusal) => return self.refuse(refusal),
            };
        // An answer the filter may have to rewrite must come uncompressed
        // (an encoded one is refused anyway).
        if self.filters_listings() && header(headers, "accept-encoding").is_some() {
            auth_edits.push(HeaderEdit::Remove("accept-encoding".into()));
        }
        if let Some(encoding) = header(headers, "content-encoding") {
            if !encoding.trim().eq_ignore_ascii_case("identity") {
                return self.refuse(Rejection::new(
                    Reason::UnsupportedEncoding,
                    "Content-Encoding is not supported on MCP requests; send the JSON uncompressed",
                ));
            }
        }
        if Framing::from_content_type(header(headers, "content-type")) != Framing::Json {
            return self.refuse(Rejection::new(
                Reason::UnsupportedMediaType,
                "MCP requests must have Content-Type: application/json",
            ));
        }
        if let Some(length) = header(headers, "content-length") {
            match length.trim().parse::<u64>() {
                Ok(n) if n > self.config.max_request_bytes as u64 => return self.too_large(),
                Ok(_) => {}
                Err(_) => {
                    return self.refuse(Rejection::new(
                        Reason::InvalidRequest,
                        "malformed Content-Length",
                    ))
                }
            }
        }
        if end_of_stream {
            return self.refuse(Rejection::new(Reason::ParseError, "request body is empty"));
        }

        self.mirrored =
            MirroredHeaders::from_headers(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let held = self.config.routing_headers.enabled;
        let mut step = if held { Step::pause() } else { Step::go() };
        step.fetch_keys = deferred_auth.is_some();
        self.phase = Phase::AwaitingBody {
            held,
            deferred_auth,
        };
        // Only a listing gathered from several backends, or a relayed call, forwards these.
        if self.config.backends.as_ref().is_some_and(Backends::routes) {
            self.fanout = Some(fanout_headers(headers, &auth_edits));
        }
        step.header_edits = auth_edits;
        step.header_edits.extend(self.route_head(held, true));
        step
    }

    /// Holds headers without a body while the JWKS is fetched; they are
    /// judged again when the keys are in.
    fn await_keys(&mut self, headers: &[(String, String)], end_of_stream: bool) -> Step {
        self.phase = Phase::AwaitingKeys {
            headers: headers.to_vec(),
            end_of_stream,
        };
        Step::from(Action::FetchKeys)
    }
}
