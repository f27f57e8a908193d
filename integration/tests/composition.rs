//! The filter composed with what Envoy users already run, each from its
//! shipped example (`examples/<name>/envoy.yaml`, ports, the identity
//! provider and the .wasm path changed for the test): Envoy's local rate
//! limits per tool and per tenant, external authorization on what the
//! filter verified and parsed, and TLS both ways (the Python SDK's client
//! and server). Every header those filters act on comes
//! from the filter; a client's own copies never count.

use anyhow::Result;
use axum::http::{HeaderMap, StatusCode};
use mcp_filter_integration::idp::{Issuer, AUDIENCE, ISSUER};
use mcp_filter_integration::sdk::{python_sdk, run_python_client_with};
use mcp_filter_integration::{
    envoy_bin, post_raw, repo_root, wasm_only, wasm_path, Envoy, Peer, PeerMode, Received,
};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// A shipped example, pointed at this test's servers.
fn example(name: &str, issuer: &Issuer, peer: &Peer, extra: &[(&str, String)]) -> Result<String> {
    let path = repo_root().join(format!("examples/{name}/envoy.yaml"));
    let shipped = std::fs::read_to_string(path)?;
    let mut yaml = shipped
        .replace("http://127.0.0.1:10000/mcp", AUDIENCE)
        .replace("http://127.0.0.1:8082", ISSUER)
        .replace("port_value: 10000", "port_value: 0")
        .replace("port_value: 9901", "port_value: 0")
        .replace(
            "port_value: 8082",
            &format!("port_value: {}", issuer.idp.port),
        )
        .replace("port_value: 8081", &format!("port_value: {}", peer.port))
        .replace(
            "filename: target/wasm32-wasip1/release/mcp_filter.wasm",
            &format!("filename: {}", wasm_path().display()),
        );
    for (from, to) in extra {
        yaml = yaml.replace(from, to);
    }
    anyhow::ensure!(yaml.contains(ISSUER) && yaml.contains(&peer.port.to_string()));
    Ok(yaml)
}

/// The Envoy to run a shipped example on: none when absent, or when the
/// suite runs the dynamic module (the examples ship the .wasm).
fn envoy_for_examples() -> Option<std::path::PathBuf> {
    let bin = envoy_bin()?;
    (!wasm_only("the example ships the .wasm filter")).then_some(bin)
}

/// The identity provider and the MCP server the examples point at.
async fn servers() -> Result<(Issuer, Peer)> {
    Ok((
        Issuer::start().await?,
        Peer::start(PeerMode::StatelessJson)?,
    ))
}

fn call(tool: &str) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"name": tool, "arguments": {"message": "hi", "a": 1, "b": 2}}})
    .to_string()
}

fn calls_of(received: &[Received], tool: &str) -> usize {
    received
        .iter()
        .filter(|r| {
            serde_json::from_str::<Value>(&r.body)
                .is_ok_and(|v| v["method"] == "tools/call" && v["params"]["name"] == tool)
        })
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_per_tool_and_tenant_count_only_that_tool_of_that_tenant() -> Result<()> {
    let Some(bin) = envoy_for_examples() else {
        return Ok(());
    };
    let (issuer, peer) = servers().await?;
    // The shipped rate, its refill stretched so the test cannot straddle one.
    let slow = "{ max_tokens: 10, tokens_per_fill: 10, fill_interval: 3600s }".to_string();
    let yaml = example(
        "rate-limits",
        &issuer,
        &peer,
        &[(
            "{ max_tokens: 10, tokens_per_fill: 10, fill_interval: 1s }",
            slow,
        )],
    )?;
    let envoy = Envoy::start_yaml(&bin, &yaml)?;
    let acme = issuer.bearer("alice", json!({"tenant": "acme"}));
    let globex = issuer.bearer("gina", json!({"tenant": "globex"}));

    for i in 0..10 {
        let reply = post_raw(&envoy.url(), &[("authorization", &acme)], call("echo")).await?;
        assert_eq!(
            reply.status,
            200,
            "call {i}: {}",
            String::from_utf8_lossy(&reply.body)
        );
    }
    // The 11th, even claiming to be another tenant and another tool.
    let forged = [
        ("authorization", acme.as_str()),
        ("x-mcp-tenant", "globex"),
        ("x-mcp-tool", "add"),
    ];
    let reply = post_raw(&envoy.url(), &forged, call("echo")).await?;
    assert_eq!(
        reply.status,
        429,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let error = reply.json();
    assert_eq!(error["jsonrpc"], "2.0");
    assert_eq!(error["error"]["code"], -32000);
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("echo") && message.contains("acme"),
        "{message}"
    );

    // Another tool of the same tenant, and the same tool of another tenant.
    let reply = post_raw(&envoy.url(), &[("authorization", &acme)], call("add")).await?;
    assert_eq!(reply.status, 200);
    let reply = post_raw(&envoy.url(), &[("authorization", &globex)], call("echo")).await?;
    assert_eq!(reply.status, 200);
    let received = peer.received().await?;
    assert_eq!(
        calls_of(&received, "echo"),
        11,
        "10 of acme's, 1 of globex's"
    );
    assert_eq!(calls_of(&received, "add"), 1);
    Ok(())
}

/// An OPA-style decision service: it sees only the headers ext_authz
/// forwards, and denies `add` to bob.
async fn policy_engine() -> Result<(u16, Arc<Mutex<Vec<HeaderMap>>>)> {
    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap| {
        let log = log.clone();
        async move {
            let get = |n: &str| {
                headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let denied = get("x-mcp-tool").as_deref() == Some("add")
                && get("x-mcp-subject").as_deref() == Some("bob");
            if let Ok(mut log) = log.lock() {
                log.push(headers);
            }
            if denied {
                let body = json!({"jsonrpc": "2.0", "id": null,
                    "error": {"code": -32043, "message": "the policy engine denies `add` to bob"}});
                (
                    StatusCode::FORBIDDEN,
                    [("content-type", "application/json")],
                    body.to_string(),
                )
            } else {
                (
                    StatusCode::OK,
                    [("content-type", "text/plain")],
                    String::new(),
                )
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((port, seen))
}

#[tokio::test(flavor = "multi_thread")]
async fn ext_authz_decides_on_the_verified_caller_and_the_parsed_call() -> Result<()> {
    let Some(bin) = envoy_for_examples() else {
        return Ok(());
    };
    let (issuer, peer) = servers().await?;
    let (engine, seen) = policy_engine().await?;
    let yaml = example(
        "ext-authz",
        &issuer,
        &peer,
        &[("port_value: 8083", format!("port_value: {engine}"))],
    )?;
    let envoy = Envoy::start_yaml(&bin, &yaml)?;
    let alice = issuer.bearer("alice", json!({"tenant": "acme"}));
    let bob = issuer.bearer("bob", json!({"tenant": "acme"}));
    let gina = issuer.bearer("gina", json!({"tenant": "globex"}));
    let header =
        |h: &HeaderMap, n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);

    let reply = post_raw(&envoy.url(), &[("authorization", &alice)], call("add")).await?;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    {
        let seen = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        let last = seen.last().expect("the engine was asked");
        assert_eq!(header(last, "x-mcp-method").as_deref(), Some("tools/call"));
        assert_eq!(header(last, "x-mcp-tool").as_deref(), Some("add"));
        assert_eq!(header(last, "x-mcp-subject").as_deref(), Some("alice"));
        assert_eq!(header(last, "x-mcp-tenant").as_deref(), Some("acme"));
        assert!(
            last.get("authorization").is_none(),
            "only the four headers go to the engine"
        );
    }

    // bob is denied `add` by the engine, even when claiming to be alice.
    for forged in [None, Some("alice")] {
        let mut headers = vec![("authorization", bob.as_str())];
        if let Some(subject) = forged {
            headers.push(("x-mcp-subject", subject));
        }
        peer.forget().await?;
        let reply = post_raw(&envoy.url(), &headers, call("add")).await?;
        assert_eq!(
            reply.status,
            403,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(reply.json()["error"]["code"], -32043);
        assert!(peer.received().await?.is_empty(), "the server got nothing");
        let seen = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        let last = seen.last().expect("asked");
        assert_eq!(header(last, "x-mcp-subject").as_deref(), Some("bob"));
    }
    let reply = post_raw(&envoy.url(), &[("authorization", &bob)], call("echo")).await?;
    assert_eq!(reply.status, 200);

    // What the filter refuses never reaches the engine (nor the server).
    let asked = seen.lock().map(|s| s.len()).unwrap_or_default();
    peer.forget().await?;
    let reply = post_raw(&envoy.url(), &[("authorization", &gina)], call("add")).await?;
    assert_eq!(
        reply.json()["error"]["code"],
        -32043,
        "the filter's own denial"
    );
    let reply = post_raw(&envoy.url(), &[], call("add")).await?;
    assert_eq!(reply.status, 401);
    assert_eq!(seen.lock().map(|s| s.len()).unwrap_or_default(), asked);
    assert!(peer.received().await?.is_empty());
    Ok(())
}

/// A test CA, and certificates for `localhost` / 127.0.0.1 it signed, as
/// files: `ca.crt`, `envoy.crt`/`envoy.key`, `server.crt`/`server.key`.
fn certificates(dir: &std::path::Path) -> Result<()> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "mcp-filter test CA");
    let ca_key = KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("ca.crt"), ca.pem())?;
    for name in ["envoy", "server"] {
        let params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca, &ca_key)?;
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem())?;
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem())?;
    }
    Ok(())
}

/// The Python SDK's MCP server over TLS (`scripts/servers/python_tls_server.py`).
struct TlsServer {
    child: std::process::Child,
    port: u16,
}

impl TlsServer {
    fn start(python: &std::path::Path, certs: &std::path::Path) -> Result<Self> {
        use std::io::BufRead;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut child = std::process::Command::new(python)
            .arg(repo_root().join("scripts/servers/python_tls_server.py"))
            .arg(port.to_string())
            .arg(certs.join("server.crt"))
            .arg(certs.join("server.key"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        anyhow::ensure!(
            line.starts_with("listening"),
            "the TLS server did not start: {line:?}"
        );
        Ok(Self { child, port })
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_both_ways_with_a_listing_gathered_across_a_tls_and_a_plaintext_server() -> Result<()> {
    let Some(bin) = envoy_for_examples() else {
        return Ok(());
    };
    let Some(python) = python_sdk()? else {
        return Ok(());
    };
    let certs = std::env::temp_dir().join(format!("mcp-filter-tls-{}", std::process::id()));
    certificates(&certs)?;
    let secure = TlsServer::start(&python, &certs)?;
    let plain = Peer::start(PeerMode::StatelessJson)?;
    let shipped = std::fs::read_to_string(repo_root().join("examples/tls/envoy.yaml"))?;
    let yaml = shipped
        .replace("examples/tls/certs/", &format!("{}/", certs.display()))
        .replace("port_value: 10443", "port_value: 0")
        .replace("port_value: 9901", "port_value: 0")
        .replace("port_value: 8443", &format!("port_value: {}", secure.port))
        .replace("port_value: 8081", &format!("port_value: {}", plain.port))
        .replace(
            "filename: target/wasm32-wasip1/release/mcp_filter.wasm",
            &format!("filename: {}", wasm_path().display()),
        );
    let envoy = Envoy::start_yaml(&bin, &yaml)?;
    let url = envoy.url().replace("http://", "https://");
    let ca = certs.join("ca.crt");
    let ca = ca.to_string_lossy();

    // The Python SDK's client, over HTTPS, in both of its modes: one listing
    // gathered from both servers, a call to each.
    for (mode, tool, args, answer) in [
        ("default", "secure__tls_only", "{}", "over TLS"),
        ("lowlevel", "secure__add", r#"{"a": 2, "b": 40}"#, "42"),
        (
            "default",
            "plain__echo",
            r#"{"message": "in clear"}"#,
            "in clear",
        ),
    ] {
        let run = run_python_client_with(
            &python,
            "python_list_call.py",
            &[
                mode,
                &url,
                tool,
                args,
                "secure__tls_only",
                "secure__add",
                "plain__echo",
                "plain__add",
            ],
            &[("SSL_CERT_FILE", &ca)],
        )?;
        assert!(run.success, "{mode} {tool}: {}", run.output);
        assert!(
            run.output.contains(&format!("{tool}: {answer}")),
            "{}",
            run.output
        );
    }
    // A client that does not trust the CA is refused by TLS itself.
    let run = run_python_client_with(
        &python,
        "python_list_call.py",
        &["default", &url, "plain__echo", "{}"],
        &[("SSL_CERT_FILE", "/dev/null")],
    )?;
    assert!(!run.success, "{}", run.output);
    // Plain HTTP is not served on the TLS listener.
    assert!(post_raw(&envoy.url(), &[], call("plain__echo"))
        .await
        .is_err());
    Ok(())
}

/// Every `(key, string value)` attribute in an OTLP protobuf export: each
/// length-delimited field is read as a possible message, and a message whose
/// field 1 is a string and field 2 an `AnyValue` with a string (field 1) is
/// a `KeyValue`. Hand-read (a few lines) rather than generated from the
/// OTLP protos: only string attributes are asserted.
fn otlp_attributes(bytes: &[u8], out: &mut Vec<(String, String)>) -> bool {
    fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *bytes.get(*at)?;
            *at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    /// The fields of a message, or `None` when the bytes are not one.
    fn fields(bytes: &[u8]) -> Option<Vec<(u64, &[u8])>> {
        let (mut at, mut out) = (0, Vec::new());
        while at < bytes.len() {
            let tag = varint(bytes, &mut at)?;
            match tag & 7 {
                0 => {
                    varint(bytes, &mut at)?;
                }
                1 => at += 8,
                5 => at += 4,
                2 => {
                    let len = usize::try_from(varint(bytes, &mut at)?).ok()?;
                    let value = bytes.get(at..at.checked_add(len)?)?;
                    at += len;
                    out.push((tag >> 3, value));
                }
                _ => return None,
            }
        }
        (at == bytes.len()).then_some(out)
    }
    let Some(fields) = fields(bytes) else {
        return false;
    };
    let text = |field: u64| {
        fields
            .iter()
            .find(|(n, _)| *n == field)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    };
    if let (Some(key), Some((_, any))) = (text(1), fields.iter().find(|(n, _)| *n == 2)) {
        if let Some(value) = fields_text(any) {
            out.push((key.to_string(), value));
            return true;
        }
    }
    for (_, value) in &fields {
        otlp_attributes(value, out);
    }
    true
}

/// The string of an `AnyValue` (`string_value`, field 1).
fn fields_text(any: &[u8]) -> Option<String> {
    let (&tag, rest) = any.split_first()?;
    if tag != 0x0a {
        return None;
    }
    let (&len, rest) = rest.split_first()?;
    if len & 0x80 != 0 || rest.len() != usize::from(len) {
        return None;
    }
    String::from_utf8(rest.to_vec()).ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_carry_the_mcp_method_tool_caller_and_decision() -> Result<()> {
    let Some(bin) = envoy_for_examples() else {
        return Ok(());
    };
    if mcp_filter_integration::envoy_version(&bin).is_some_and(|v| v < (1, 37, 0)) {
        eprintln!("skipping: custom_tags[].value (filter state in span tags) needs Envoy >= 1.37");
        return Ok(());
    }
    let exports: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let log = exports.clone();
    let collector = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let log = log.clone();
            async move {
                if let Ok(mut log) = log.lock() {
                    log.push(body.to_vec());
                }
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let otlp_port = listener.local_addr()?.port();
    tokio::spawn(async move { axum::serve(listener, collector).await });

    let (issuer, peer) = servers().await?;
    let yaml = example(
        "tracing",
        &issuer,
        &peer,
        &[
            ("port_value: 4318", format!("port_value: {otlp_port}")),
            ("127.0.0.1:4318", format!("127.0.0.1:{otlp_port}")),
        ],
    )?;
    let envoy = Envoy::start_yaml(&bin, &yaml)?;
    let alice = issuer.bearer("alice", json!({"tenant": "acme"}));
    let gina = issuer.bearer("gina", json!({"tenant": "globex"}));
    let reply = post_raw(&envoy.url(), &[("authorization", &alice)], call("add")).await?;
    assert_eq!(reply.status, 200);
    let reply = post_raw(&envoy.url(), &[("authorization", &gina)], call("add")).await?;
    assert_eq!(
        reply.json()["error"]["code"],
        -32043,
        "denied by the filter"
    );

    // Envoy's tracer exports in batches (every 5 s by default).
    let wanted = |spans: &[(String, String)], tenant: &str, decision: &str| {
        let has = |k: &str, v: &str| spans.iter().any(|(key, value)| key == k && value == v);
        has("mcp.method.name", "tools/call")
            && has("gen_ai.tool.name", "add")
            && has("mcp_filter.tenant", tenant)
            && has("mcp_filter.decision", decision)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let mut attributes = Vec::new();
        for export in exports.lock().map(|e| e.clone()).unwrap_or_default() {
            otlp_attributes(&export, &mut attributes);
        }
        if wanted(&attributes, "acme", "allow") && wanted(&attributes, "globex", "deny") {
            assert!(attributes.contains(&("enduser.id".into(), "alice".into())));
            assert!(attributes.contains(&("service.name".into(), "mcp-gateway".into())));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no span with the MCP attributes: {attributes:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    Ok(())
}
