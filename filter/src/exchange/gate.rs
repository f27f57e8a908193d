//! Authentication and the session gate: who the caller is (a JWT, through
//! the shell's authenticator), the header edits that go with it (the
//! client's token removed, an upstream credential set, the session id
//! unwrapped and checked against the caller, the verified subject and
//! tenant set for Envoy's later filters), and the 401 / 404 answers.
//!
//! Must not: decide what the caller may do (`authorize` does), or let a
//! session id bound to another caller through.

use crate::auth::token::AuthFailure;
use crate::auth::Authenticated;
use crate::exchange::refusal::Refusal;
use crate::exchange::route::{header_value, Fit};
use crate::exchange::{body_follows, bounded, header, Exchange, HeaderEdit, Rc};
use crate::policy::Caller;

/// What authentication lets through.
pub(super) enum Admitted {
    /// The request goes on, with these header edits: the caller is known.
    Through(Vec<HeaderEdit>),
    /// The headers go on with these edits, but the body waits until the
    /// keys are in and the caller is authenticated from the same headers.
    Deferred(Vec<HeaderEdit>),
    /// Headers without a body wait for the JWKS fetch, then are judged again.
    AwaitKeys,
}

impl Exchange {
    /// Authenticates the caller (when `auth` is configured) and returns the
    /// header edits that go with it: the client's token removed (no token
    /// passthrough), an upstream credential set, the session id unwrapped.
    pub(super) fn authenticate_request(
        &mut self,
        headers: &[(String, String)],
        end_of_stream: bool,
    ) -> Result<Admitted, Refusal> {
        let Some(auth) = self.config.auth.clone() else {
            return Ok(Admitted::Through(Vec::new()));
        };
        let outcome = self.run_authenticator(headers);
        // These do not depend on who the caller is, so they are safe to apply
        // before authentication completes.
        let mut edits = Vec::new();
        if !auth.forward_token {
            edits.push(HeaderEdit::Remove("authorization".into()));
        }
        if let Some(credential) = &auth.upstream_authorization {
            edits.push(HeaderEdit::Set("authorization".into(), credential.clone()));
        }
        let caller = match outcome {
            Authenticated::Caller(caller) => caller,
            Authenticated::NeedKeys if body_follows(headers, end_of_stream) => {
                // Without `allow_on_headers_stop_iteration` Envoy cannot hold
                // headers while a body arrives; so the headers go on (the
                // session id provisionally unwrapped), and the body is held
                // until the keys are in and the caller is known.
                if let (Some(binding), Some(presented)) =
                    (&self.config.sessions, header(headers, "mcp-session-id"))
                {
                    match binding.peek(presented) {
                        Ok(upstream) => {
                            edits.push(HeaderEdit::Set("mcp-session-id".into(), upstream))
                        }
                        Err(e) => return Err(Refusal::Session(e)),
                    }
                }
                return Ok(Admitted::Deferred(edits));
            }
            Authenticated::NeedKeys => return Ok(Admitted::AwaitKeys),
            Authenticated::Failed(failure) => return Err(Refusal::Unauthenticated(failure)),
        };
        if let Some(upstream) = self.bind_caller(caller, headers)? {
            edits.push(HeaderEdit::Set("mcp-session-id".into(), upstream));
        }
        edits.extend(self.caller_header_edits());
        Ok(Admitted::Through(edits))
    }

    pub(super) fn run_authenticator(&mut self, headers: &[(String, String)]) -> Authenticated {
        match self.authenticate.as_mut() {
            Some(authenticate) => authenticate(headers),
            None => Authenticated::Failed(AuthFailure::NoKeys),
        }
    }

    /// Records the caller and checks the session id it presents belongs to
    /// it; the upstream's own session id, if one was presented.
    pub(super) fn bind_caller(
        &mut self,
        caller: Rc<Caller>,
        headers: &[(String, String)],
    ) -> Result<Option<String>, Refusal> {
        let presented = header(headers, "mcp-session-id");
        let unwrapped = match (&self.config.sessions, presented) {
            (Some(binding), Some(presented)) => Some(binding.unwrap(&caller, presented)),
            _ => None,
        };
        self.caller = Some(caller);
        match unwrapped {
            Some(Err(e)) => Err(Refusal::Session(e)),
            Some(Ok(upstream)) => Ok(Some(upstream)),
            None => Ok(None),
        }
    }

    /// Authentication deferred at the headers, now that the keys are in.
    pub(super) fn complete_authentication(
        &mut self,
        headers: &[(String, String)],
    ) -> Result<(), Refusal> {
        let caller = match self.run_authenticator(headers) {
            Authenticated::Caller(caller) => caller,
            // Still unknown after a fetch: the key does not exist.
            Authenticated::NeedKeys => {
                return Err(Refusal::Unauthenticated(AuthFailure::UnknownKey))
            }
            Authenticated::Failed(failure) => return Err(Refusal::Unauthenticated(failure)),
        };
        // The provisional unwrap at the headers is now checked against the caller.
        self.bind_caller(caller, headers).map(|_| ())
    }

    /// The verified caller as request headers (`routing_headers.subject`,
    /// `.tenant`) for Envoy's later filters: ext_authz, rate limits, routes.
    /// A client's own copies were removed at the headers.
    pub(super) fn caller_header_edits(&self) -> Vec<HeaderEdit> {
        let Some(caller) = &self.caller else {
            return Vec::new();
        };
        let names = &self.config.routing_headers;
        let mut edits = vec![HeaderEdit::Set(
            names.subject.clone(),
            header_value(&caller.subject, Fit::Whole),
        )];
        if let Some(tenant) = &caller.tenant {
            edits.push(HeaderEdit::Set(
                names.tenant.clone(),
                header_value(tenant, Fit::Whole),
            ));
        }
        edits
    }

    pub(super) fn caller_properties(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(caller) = &self.caller {
            out.push(("mcp_subject", bounded(&caller.subject)));
            if let Some(tenant) = &caller.tenant {
                out.push(("mcp_tenant", bounded(tenant)));
            }
        }
        out
    }
}
