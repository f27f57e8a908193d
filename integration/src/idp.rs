//! A test identity provider on loopback: ES256 keys made at run time, tokens
//! signed with them, and the public keys served as a JWKS that Envoy fetches
//! through a cluster. Keys can be rotated while it runs, and it can go down
//! (fetches are held open, unanswered, as behind a black hole) and come back
//! up (held fetches are then answered with the keys published by then).

use anyhow::{Context, Result};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::EnvoySetup;

pub const ISSUER: &str = "https://idp.test";
pub const AUDIENCE: &str = "http://127.0.0.1/mcp";

/// A signing key with its `kid`.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    alg: Algorithm,
    key: EncodingKey,
    jwk: Value,
}

impl SigningKey {
    /// A fresh P-256 key.
    pub fn generate(kid: &str) -> Result<Self> {
        let secret = p256::SecretKey::random(&mut rand_core::OsRng);
        let pem = secret
            .to_pkcs8_pem(LineEnding::LF)
            .context("encoding the test key")?;
        let key = EncodingKey::from_ec_pem(pem.as_bytes())?;
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256)?;
        jwk.common.key_id = Some(kid.to_string());
        Ok(Self {
            kid: kid.to_string(),
            alg: Algorithm::ES256,
            key,
            jwk: serde_json::to_value(jwk)?,
        })
    }

    /// The public half, as a JWK.
    pub fn public_jwk(&self) -> Value {
        self.jwk.clone()
    }

    /// A fresh 2048-bit RSA key (RS256).
    pub fn generate_rs256(kid: &str) -> Result<Self> {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        let private = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048)?;
        let der = private.to_pkcs1_der().context("encoding the RSA key")?;
        let key = EncodingKey::from_rsa_der(der.as_bytes());
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256)?;
        jwk.common.key_id = Some(kid.to_string());
        Ok(Self {
            kid: kid.to_string(),
            alg: Algorithm::RS256,
            key,
            jwk: serde_json::to_value(jwk)?,
        })
    }

    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        encode(&header, claims, &self.key).expect("signing a test token")
    }
}

struct Shared {
    published: Mutex<Vec<Value>>,
    fetches: AtomicUsize,
    /// `true` while up: fetches are answered; `false`: they wait.
    up: tokio::sync::watch::Sender<bool>,
    /// Fetches received and not answered yet.
    waiting: AtomicUsize,
}

/// The running provider.
pub struct Idp {
    pub port: u16,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Claims of a valid token for `sub`, valid for ten minutes.
pub fn claims(sub: &str, extra: Value) -> Value {
    let mut claims = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": sub,
        "iat": now(), "exp": now() + 600,
    });
    if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    claims
}

impl Idp {
    /// Serves `/jwks` with the public halves of `keys`.
    pub async fn start(keys: &[&SigningKey]) -> Result<Self> {
        let shared = Arc::new(Shared {
            published: Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect()),
            fetches: AtomicUsize::new(0),
            up: tokio::sync::watch::channel(true).0,
            waiting: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/jwks", get(jwks))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            port,
            shared,
            server,
        })
    }

    /// Publishes another key set (a rotation).
    pub fn publish(&self, keys: &[&SigningKey]) {
        if let Ok(mut published) = self.shared.published.lock() {
            *published = keys.iter().map(|k| k.jwk.clone()).collect();
        }
    }

    /// How many times the JWKS was fetched.
    pub fn fetches(&self) -> usize {
        self.shared.fetches.load(Ordering::SeqCst)
    }

    /// Goes down: from now on fetches are held open, unanswered (what a
    /// black-holed or hung provider looks like to Envoy).
    pub fn go_down(&self) {
        self.shared.up.send_replace(false);
    }

    /// Comes back up: held fetches and later ones are answered.
    pub fn come_up(&self) {
        self.shared.up.send_replace(true);
    }

    /// Fetches received and held, not answered yet.
    pub fn held(&self) -> usize {
        self.shared.waiting.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` fetches are held (a fetch is in flight).
    pub async fn wait_held(&self, n: usize, within: std::time::Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        while self.held() < n {
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("no JWKS fetch arrived within {within:?}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Json<Value> {
    shared.fetches.fetch_add(1, Ordering::SeqCst);
    let mut up = shared.up.subscribe();
    if !*up.borrow_and_update() {
        /// Counts a held fetch until it is answered or Envoy drops it.
        struct Held<'a>(&'a AtomicUsize);
        impl Drop for Held<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        shared.waiting.fetch_add(1, Ordering::SeqCst);
        let _held = Held(&shared.waiting);
        // Held until the provider comes up (or Envoy gives up and resets).
        let _ = up.wait_for(|up| *up).await;
    }
    let keys = shared
        .published
        .lock()
        .map(|k| k.clone())
        .unwrap_or_default();
    Json(json!({ "keys": keys }))
}

/// A filter configuration that authenticates with this provider (its JWKS
/// through the Envoy cluster `idp`), with tenants, a policy and session
/// binding: acme may use `add` and `echo`, `secret` needs `mcp:admin`.
pub fn secured_config() -> Value {
    let session_key =
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [42u8; 32]);
    json!({
        "mcp_paths": ["/mcp"],
        "auth": {
            "issuers": [ISSUER],
            "audiences": [AUDIENCE],
            "remote_jwks": {"cluster": "idp", "path": "/jwks", "min_refetch_seconds": 1},
            "resource_metadata": {
                "resource": AUDIENCE,
                "authorization_servers": [ISSUER],
                "scopes_supported": ["mcp:tools", "mcp:admin"],
                "challenge_scopes": ["mcp:tools"],
            },
        },
        "tenancy": {"tenant_claim": "tenant"},
        "policy": {"rules": [
            {"name": "secret-needs-admin", "tenants": ["acme"], "tools": ["secret"],
             "effect": "allow", "require_scopes": ["mcp:admin"]},
            {"name": "acme-tools", "tenants": ["acme"], "tools": ["add", "echo"], "effect": "allow"},
            {"name": "globex-echo", "tenants": ["globex"], "tools": ["echo"], "effect": "allow"},
        ]},
        "sessions": {"binding_keys": [{"id": "k1", "secret": session_key}]},
    })
}

/// The fixture most end-to-end tests need: one signing key, the provider
/// serving its public half, and the Envoy cluster (`idp`) the filter's
/// configurations (`secured_config`, the adversarial ones) fetch it through.
pub struct Issuer {
    pub key: SigningKey,
    pub idp: Idp,
}

impl Issuer {
    pub async fn start() -> Result<Self> {
        let key = SigningKey::generate("key-1")?;
        let idp = Idp::start(&[&key]).await?;
        Ok(Self { key, idp })
    }

    /// A valid token for `sub`, with `extra` claims.
    pub fn token(&self, sub: &str, extra: Value) -> String {
        self.key.sign(&claims(sub, extra))
    }

    /// `Bearer` and a valid token for `sub`, with `extra` claims.
    pub fn bearer(&self, sub: &str, extra: Value) -> String {
        format!("Bearer {}", self.token(sub, extra))
    }

    /// Gives `setup` the `idp` cluster.
    pub fn serve(&self, setup: &mut EnvoySetup) {
        setup.named_clusters.push(("idp".into(), self.idp.port));
    }
}
