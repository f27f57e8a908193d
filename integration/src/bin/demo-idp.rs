//! A stand-in identity provider for the demo, on loopback only: makes an
//! ES256 key at start, publishes it at `/jwks` (Envoy fetches it through a
//! cluster) and mints tokens at `/token?sub=..&tenant=..&scope=..`. A real
//! deployment points the filter's `remote_jwks` at its own IdP instead.
//!
//!   demo-idp --port 8082 --issuer http://127.0.0.1:8082 --audience http://127.0.0.1:10000/mcp [--alg RS256]

use anyhow::{Context, Result};
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use mcp_filter_integration::idp::{now, SigningKey};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

struct Demo {
    key: SigningKey,
    issuer: String,
    audience: String,
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = arg(&args, "--port")
        .unwrap_or_else(|| "8082".into())
        .parse()?;
    let demo = Arc::new(Demo {
        key: match arg(&args, "--alg").as_deref() {
            Some("RS256") => SigningKey::generate_rs256("demo-rs-1")?,
            None | Some("ES256") => SigningKey::generate("demo-1")?,
            Some(other) => anyhow::bail!("--alg {other}: ES256 or RS256"),
        },
        issuer: arg(&args, "--issuer").context("--issuer")?,
        audience: arg(&args, "--audience").context("--audience")?,
    });
    let app = Router::new()
        .route("/jwks", get(jwks))
        .route("/token", get(token))
        .with_state(demo);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("demo-idp listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn jwks(State(demo): State<Arc<Demo>>) -> Json<Value> {
    Json(json!({ "keys": [demo.key.public_jwk()] }))
}

async fn token(State(demo): State<Arc<Demo>>, Query(q): Query<HashMap<String, String>>) -> String {
    let mut claims = json!({
        "iss": demo.issuer, "aud": demo.audience,
        "sub": q.get("sub").cloned().unwrap_or_else(|| "alice".into()),
        "iat": now(), "exp": now() + 3600,
    });
    for claim in ["tenant", "scope"] {
        if let Some(v) = q.get(claim) {
            claims[claim] = v.clone().into();
        }
    }
    demo.key.sign(&claims)
}
