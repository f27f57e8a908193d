//! A worker's verification keys, as both shells drive them: who is
//! authenticated with them, when the remote JWKS is due, the request that
//! fetches it, and what its answer means.
//!
//! Fail closed: a fetch that fails, answers other than 200, or holds no
//! usable key keeps the keys already loaded (never none by accident), and
//! requests waiting for it are judged with those.
//!
//! Must not: send anything (the shell sends [`Keys::start_fetch`]'s
//! request and hands back the answer), or read a clock itself.

use crate::auth::token::AuthFailure;
use crate::auth::{Authenticated, Authenticator, ClaimsSource};
use crate::config::FilterConfig;
use std::cell::RefCell;

/// A JWKS request to send through a cluster.
pub struct JwksRequest {
    pub cluster: String,
    /// `:method`, `:path`, `:authority`, `accept`.
    pub headers: Vec<(String, String)>,
    pub timeout_ms: u64,
}

pub struct Keys {
    auth: Option<RefCell<Authenticator>>,
}

impl Keys {
    pub fn new(config: &FilterConfig) -> Self {
        Self {
            auth: config
                .auth
                .clone()
                .map(|a| RefCell::new(Authenticator::new(a))),
        }
    }

    /// Where callers' claims come from (`None`: no `auth`).
    pub fn source(&self) -> Option<ClaimsSource> {
        let auth = self.auth.as_ref()?.try_borrow().ok()?;
        Some(auth.config.source.clone())
    }

    /// Whether keys are fetched from a remote JWKS.
    pub fn remote(&self) -> bool {
        self.auth
            .as_ref()
            .and_then(|a| a.try_borrow().ok())
            .is_some_and(|a| a.config.remote_jwks.is_some())
    }

    /// Authenticates a bearer token (read at `now_ms`; `None`, no clock:
    /// refused). `may_wait`: the request can wait for a JWKS fetch.
    pub fn authenticate_bearer(
        &self,
        headers: &[(String, String)],
        now_ms: Option<u64>,
        may_wait: bool,
    ) -> Authenticated {
        let Some(Ok(mut auth)) = self.auth.as_ref().map(RefCell::try_borrow_mut) else {
            return Authenticated::Failed(AuthFailure::NoKeys);
        };
        let authorization = headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.as_str());
        auth.authenticate_bearer_with(authorization, headers, now_ms, may_wait)
    }

    /// Authenticates claims another filter verified (`jwt_authn`).
    pub fn authenticate_claims(
        &self,
        claims: Option<&[u8]>,
        headers: &[(String, String)],
    ) -> Authenticated {
        let Some(Ok(auth)) = self.auth.as_ref().map(RefCell::try_borrow) else {
            return Authenticated::Failed(AuthFailure::NoKeys);
        };
        auth.authenticate_claims(claims, headers)
    }

    /// Whether any verification key is loaded.
    pub fn loaded(&self) -> bool {
        self.auth
            .as_ref()
            .and_then(|a| a.try_borrow().ok())
            .is_some_and(|a| a.has_keys())
    }

    /// Whether a fetch sent earlier is still within its timeout.
    pub fn fetch_pending(&self, now_ms: u64) -> bool {
        self.auth
            .as_ref()
            .and_then(|a| a.try_borrow().ok())
            .and_then(|a| a.schedule.as_ref().map(|s| s.in_flight(now_ms)))
            .unwrap_or(false)
    }

    /// Whether the schedule wants a fetch now (first, periodic, retry).
    pub fn fetch_due(&self, now_ms: u64) -> bool {
        self.auth
            .as_ref()
            .and_then(|a| a.try_borrow().ok())
            .and_then(|a| {
                let have = a.has_keys();
                a.schedule.as_ref().map(|s| s.due(now_ms, have))
            })
            .unwrap_or(false)
    }

    /// The request to send for the JWKS, the fetch marked started; `None`
    /// if there is no remote JWKS.
    pub fn start_fetch(&self, now_ms: u64) -> Option<JwksRequest> {
        let mut auth = self.auth.as_ref()?.try_borrow_mut().ok()?;
        let remote = auth.config.remote_jwks.clone()?;
        if let Some(schedule) = auth.schedule.as_mut() {
            schedule.started(now_ms);
        }
        Some(JwksRequest {
            cluster: remote.cluster.clone(),
            headers: vec![
                (":method".into(), "GET".into()),
                (":path".into(), remote.path.clone()),
                (":authority".into(), remote.authority.clone()),
                ("accept".into(), "application/json".into()),
            ],
            timeout_ms: remote.timeout_ms,
        })
    }

    /// The JWKS request could not be sent, or got no answer.
    pub fn fetch_failed(&self) {
        if let Some(Ok(mut auth)) = self.auth.as_ref().map(RefCell::try_borrow_mut) {
            auth.fetch_failed();
        }
    }

    /// The JWKS answer arrived: the line to log, `Ok` if keys were loaded.
    pub fn fetched(
        &self,
        status: Option<&str>,
        body: &[u8],
        now_ms: u64,
    ) -> Result<String, String> {
        let Some(Ok(mut auth)) = self.auth.as_ref().map(RefCell::try_borrow_mut) else {
            return Err("JWKS answer arrived with no authenticator".into());
        };
        if status != Some("200") {
            auth.fetch_failed();
            return Err(format!(
                "JWKS fetch answered {}; keeping the keys already loaded",
                status.unwrap_or("nothing")
            ));
        }
        match auth.install_remote_jwks(body, now_ms) {
            Ok(n) => Ok(format!("loaded {n} verification keys from the remote JWKS")),
            Err(e) => Err(format!(
                "remote JWKS refused ({e}); keeping the keys already loaded"
            )),
        }
    }
}
