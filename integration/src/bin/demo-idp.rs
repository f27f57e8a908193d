//! A stand-in identity provider for the demo, on loopback only: makes an
//! ES256 key at start, publishes it at `/jwks` (Envoy fetches it through a
//! cluster) and mints tokens at `/token?sub=..&tenant=..&scope=..`. A real
//! deployment points the filter's `remote_jwks` at its own IdP instead.
//!
//!   demo-idp --port 8082 --issuer http://127.0.0.1:8082 --audience http://127.0.0.1:10000/mcp [--alg RS256]  (`--help`)

use anyhow::Result;
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

/// The signing algorithm of the key made at start.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Alg {
    #[value(name = "ES256")]
    Es256,
    #[value(name = "RS256")]
    Rs256,
}

/// A stand-in identity provider on loopback: a JWKS and tokens for the demo.
#[derive(Debug, clap::Parser)]
#[command(name = "demo-idp", version)]
struct Cli {
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 8082)]
    port: u16,
    /// The tokens' `iss`.
    #[arg(long)]
    issuer: String,
    /// The tokens' `aud`.
    #[arg(long)]
    audience: String,
    #[arg(long, value_enum, default_value = "ES256")]
    alg: Alg,
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = <Cli as clap::Parser>::parse();
    let port = cli.port;
    let demo = Arc::new(Demo {
        key: match cli.alg {
            Alg::Rs256 => SigningKey::generate_rs256("demo-rs-1")?,
            Alg::Es256 => SigningKey::generate("demo-1")?,
        },
        issuer: cli.issuer,
        audience: cli.audience,
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
