#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a failure is a broken setup
//! Microbenchmarks of the pure core, run natively (`scripts/bench --micro`):
//! classifying a `tools/call`, one policy decision over 100 rules, JWT
//! verification (RS256, ES256; uncached, the cost a cache hit avoids),
//! filtering a 1,000-tool listing (SSE, and JSON in 1 KiB chunks; reported
//! per listed tool), and a whole small-call exchange. Allocations per
//! exchange and per listing are printed beside the times (a counting global
//! allocator: the count, not the bytes).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use mcp_filter::auth::keys::KeySet;
use mcp_filter::auth::token::{verify, TokenRules};
use mcp_filter::classify::classify;
use mcp_filter::jsonrpc::RequestId;
use mcp_filter::listing::{ListKind, Listed, SseListingFilter};
use mcp_filter::policy::{Caller, Policy, RawPolicy, SubjectKind, Target};
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

/// The system allocator, counting allocations.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations (and reallocations) `f` makes.
fn allocations<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let out = f();
    (out, ALLOCATIONS.load(Ordering::Relaxed) - before)
}

const CALL: &[u8] = br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"github__create_issue","arguments":{"title":"Bug","body":"It broke","labels":["bug","p1"]}}}"#;

fn parse(c: &mut Criterion) {
    c.bench_function("classify tools/call", |b| {
        b.iter(|| classify(black_box(CALL), false))
    });
}

fn policy(c: &mut Criterion) {
    let rules: Vec<_> = (0..100)
        .map(|i| {
            json!({"name": format!("r{i}"), "tenants": [format!("t{}", i % 10)],
                        "claims": {"groups": [format!("g{i}")]}, "tools": [format!("svc{i}__*")],
                        "effect": "allow"})
        })
        .collect();
    let raw: RawPolicy = serde_json::from_value(json!({"rules": rules})).unwrap();
    let policy: Policy = raw.compile(true, &mut Vec::new()).unwrap();
    let caller = Caller {
        subject: "alice".into(),
        tenant: Some("t9".into()),
        claims: json!({"groups": ["g99"]}).as_object().cloned().unwrap(),
        ..Caller::default()
    };
    c.bench_function("policy decision, 100 rules (last matches)", |b| {
        b.iter(|| {
            policy.decide(
                black_box(&caller),
                &Target::call(SubjectKind::Tool, black_box("svc99__deploy")),
            )
        })
    });
}

/// DER bytes of a PEM block.
fn der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

/// Signs with the RustCrypto crates directly: jsonwebtoken's signing path
/// is not in the filter (its verify-only provider is installed here).
fn token(alg: &str, kid: &str, claims: &serde_json::Value, key_pem: &str) -> String {
    use base64::Engine;
    use p256::pkcs8::DecodePrivateKey;
    use rsa::signature::{SignatureEncoding, Signer};
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let header = json!({"alg": alg, "kid": kid, "typ": "JWT"});
    let message = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = match alg {
        "RS256" => {
            let key = rsa::RsaPrivateKey::from_pkcs8_der(&der(key_pem)).unwrap();
            rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key)
                .sign(message.as_bytes())
                .to_vec()
        }
        _ => {
            let key = p256::ecdsa::SigningKey::from_pkcs8_der(&der(key_pem)).unwrap();
            let sig: p256::ecdsa::Signature = key.sign(message.as_bytes());
            sig.to_vec()
        }
    };
    format!("{message}.{}", b64(&signature))
}

fn jwt(c: &mut Criterion) {
    use jsonwebtoken::Algorithm;
    mcp_filter::auth::verifiers::install();
    let claims = json!({"iss": "https://idp", "aud": "https://mcp/mcp", "sub": "alice", "exp": 4_000_000_000u64});
    let rules = TokenRules {
        issuers: vec!["https://idp".into()],
        audiences: vec!["https://mcp/mcp".into()],
        algorithms: vec![Algorithm::RS256, Algorithm::ES256],
        leeway_seconds: 60,
        required_claims: vec![],
        max_token_bytes: 8192,
    };
    let cases = [
        (
            "RS256",
            "../src/auth/testdata/rsa1.key",
            include_str!("../src/auth/testdata/rsa1.key"),
            include_str!("../src/auth/testdata/rsa1.pub"),
        ),
        (
            "ES256",
            "../src/auth/testdata/ec256.key",
            include_str!("../src/auth/testdata/ec256.key"),
            include_str!("../src/auth/testdata/ec256.pub"),
        ),
    ];
    for (alg, _, private, public) in cases {
        let mut set = KeySet::default();
        set.keys
            .push(KeySet::pem_key(Some("k".into()), public, &rules.algorithms).unwrap());
        let token = token(alg, "k", &claims, private);
        c.bench_function(&format!("JWT verification {alg} (uncached)"), |b| {
            b.iter(|| verify(black_box(&token), &set, &rules, 1_900_000_000).unwrap())
        });
    }
}

fn listing(c: &mut Criterion) {
    let tools: Vec<_> = (0..1000)
        .map(|i| {
            json!({"name": format!("tool_{i:04}"), "description": "A generated tool",
                        "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}}}})
        })
        .collect();
    let body = json!({"jsonrpc": "2.0", "id": 7, "result": {"tools": tools}}).to_string();
    let sse = format!("event: message\ndata: {body}\n\n");
    let id = RequestId::from_raw(&serde_json::value::RawValue::from_string("7".into()).unwrap())
        .unwrap();
    let even = |name: &str, _item: &str| {
        if name.ends_with(['0', '2', '4', '6', '8']) {
            Listed::Rename(format!("gh__{name}"))
        } else {
            Listed::Hide
        }
    };
    let filter_sse = || {
        let mut filter = SseListingFilter::new(ListKind::Tools, id.clone(), 1 << 22);
        let mut decide = |_, name: &str, item: &str| even(name, item);
        black_box(filter.push(black_box(sse.as_bytes()), false, &mut decide))
    };
    let filter_json = || {
        // As Envoy hands a JSON body over: in chunks, held, then rewritten whole.
        let mut held = Vec::new();
        for chunk in body.as_bytes().chunks(1024) {
            held.extend_from_slice(black_box(chunk));
        }
        let mut decide = even;
        black_box(mcp_filter::listing::filter_json_body(
            &held,
            ListKind::Tools,
            &id,
            &mut decide,
        ))
    };
    let (_, sse_allocs) = allocations(filter_sse);
    let (_, json_allocs) = allocations(filter_json);
    println!("allocations per 1,000-tool listing: SSE {sse_allocs}, JSON {json_allocs}");
    let mut group = c.benchmark_group("listing, per tool");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("SSE, 1,000 tools (half hidden, half renamed)", |b| {
        b.iter(filter_sse)
    });
    group.bench_function(
        "JSON in 1 KiB chunks, 1,000 tools (half hidden, half renamed)",
        |b| b.iter(filter_json),
    );
    group.finish();
}

/// One small `tools/call` through the whole exchange (request head and
/// body, JSON answer, metrics samples): the core's share of a request in the
/// load benchmark. `full` is bench/run.py's full setup with the caller
/// already verified (the shell's token cache hit), so JWT cost is excluded.
fn exchange(c: &mut Criterion) {
    use mcp_filter::auth::Authenticated;
    use mcp_filter::config::FilterConfig;
    use mcp_filter::exchange::Exchange;
    use mcp_filter::policy::Caller;
    use mcp_filter::telemetry::Labels;
    use std::rc::Rc;

    let call = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"gh__echo","arguments":{"message":"hello"}}}"#;
    let answer =
        br#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"hello"}]}}"#;
    let head: Vec<(String, String)> = [
        (":method", "POST"),
        (":path", "/mcp"),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("authorization", "Bearer x"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let response_head: Vec<(String, String)> =
        [(":status", "200"), ("content-type", "application/json")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    let full = json!({
        "backends": {"servers": [{"name": "gh"}]},
        "mcp_paths": ["/mcp"],
        "auth": {"issuers": ["https://idp"], "audiences": ["https://mcp"],
                 "shared_secret": {"base64": "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk="},
                 "resource_metadata": {"resource": "https://mcp", "authorization_servers": ["https://idp"]}},
        "tenancy": {"tenant_claim": "tenant"},
        "policy": {"rules": [
            {"name": "no-secret", "tenants": ["*"], "tools": ["gh__secret*"], "effect": "deny"},
            {"name": "tools", "tenants": ["*"], "tools": ["*"], "effect": "allow"}
        ]}
    });
    let caller = Rc::new(Caller {
        issuer: "https://idp".into(),
        subject: "bench".into(),
        tenant: Some("bench".into()),
        ..Caller::default()
    });
    for (name, config) in [("observe", json!({})), ("full", full.clone())] {
        let config = Rc::new(FilterConfig::from_json(config.to_string().as_bytes()).unwrap());
        let mut labels = Labels::default();
        let mut run = || {
            let caller = caller.clone();
            let mut exchange = Exchange::new(config.clone(), 0)
                .with_authenticator(Box::new(move |_| Authenticated::Caller(caller.clone())));
            exchange.on_request_headers(black_box(&head), false);
            let step = exchange.on_request_body(call.len(), true, || Some(call.to_vec()));
            exchange.on_response_headers(200, &response_head);
            exchange.on_response_body(answer, true);
            black_box((step, exchange.finish(1, &mut labels)))
        };
        // Where the allocations are, phase by phase.
        {
            let caller = caller.clone();
            let (mut exchange, a0) = allocations(|| {
                Exchange::new(config.clone(), 0)
                    .with_authenticator(Box::new(move |_| Authenticated::Caller(caller.clone())))
            });
            let (_, a1) = allocations(|| exchange.on_request_headers(black_box(&head), false));
            let (_, a2) =
                allocations(|| exchange.on_request_body(call.len(), true, || Some(call.to_vec())));
            let (_, a3) = allocations(|| exchange.on_response_headers(200, &response_head));
            let (_, a4) = allocations(|| exchange.on_response_body(answer, true));
            let mut fresh = Labels::default();
            let (_, a5) = allocations(|| exchange.finish(1, &mut fresh));
            println!(
                "allocations per phase ({name}): new {a0}, request headers {a1}, request body {a2}, \
                 response headers {a3}, response body {a4}, finish (metric samples) {a5}"
            );
        }
        run();
        let (_, allocs) = allocations(&mut run);
        println!("allocations per exchange ({name}): {allocs}");
        c.bench_function(&format!("exchange: small tools/call, {name}"), |b| {
            b.iter(&mut run)
        });
        if name != "full" {
            continue;
        }
        // A 1,000-tool `tools/list` through the whole exchange with the full
        // setup: every item renamed by its backend and judged by the policy
        // (half are `secret_*`, denied), in 16 KiB chunks as Envoy hands
        // them over, as JSON and as one SSE event.
        let list = br#"{"jsonrpc":"2.0","id":8,"method":"tools/list","params":{}}"#;
        let tools: Vec<_> = (0..1000)
            .map(|i| {
                let name = if i % 2 == 0 {
                    format!("tool_{i:04}")
                } else {
                    format!("secret_{i:04}")
                };
                json!({"name": name, "description": "A generated tool",
                       "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}}}})
            })
            .collect();
        let listing_answer = json!({"jsonrpc": "2.0", "id": 8, "result": {"tools": tools}});
        let json_body = listing_answer.to_string();
        let sse_body = format!("event: message\ndata: {json_body}\n\n");
        // The same with every tool pinned (`tool_pins`): each listed tool is
        // also read and hashed.
        let mut pinned = full.clone();
        let pins = mcp_filter::pins::pins_of_listing(&listing_answer, "gh").unwrap();
        if let (Some(section), Some(pins)) = (pinned.as_object_mut(), pins.get("tool_pins")) {
            section.insert("tool_pins".into(), pins.clone());
        }
        let pinned = Rc::new(FilterConfig::from_json(pinned.to_string().as_bytes()).unwrap());
        for (setup, config) in [
            ("full", config.clone()),
            ("full, every tool pinned", pinned),
        ] {
            let mut group =
                c.benchmark_group(format!("exchange: 1,000-tool listing, {setup}, per tool"));
            group.throughput(Throughput::Elements(1000));
            for (framing, content_type, body) in [
                ("JSON", "application/json", json_body.as_bytes()),
                ("SSE", "text/event-stream", sse_body.as_bytes()),
            ] {
                let head_of_answer: Vec<(String, String)> =
                    [(":status", "200"), ("content-type", content_type)]
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect();
                let mut listing = || {
                    let caller = caller.clone();
                    let mut exchange =
                        Exchange::new(config.clone(), 0).with_authenticator(Box::new(move |_| {
                            Authenticated::Caller(caller.clone())
                        }));
                    exchange.on_request_headers(black_box(&head), false);
                    exchange.on_request_body(list.len(), true, || Some(list.to_vec()));
                    exchange.on_response_headers(200, &head_of_answer);
                    let mut out = 0;
                    let chunks: Vec<&[u8]> = body.chunks(16 * 1024).collect();
                    for (i, chunk) in chunks.iter().enumerate() {
                        let step = exchange.on_response_body(chunk, i + 1 == chunks.len());
                        out += step.body.map_or(0, |b| b.len());
                    }
                    black_box((out, exchange.finish(1, &mut labels)))
                };
                let ((out, _), allocs) = allocations(&mut listing);
                // Half the items, each renamed: about half the bytes.
                assert!(
                    out > body.len() * 4 / 10 && out < body.len() * 6 / 10,
                    "{framing}: {out} bytes out"
                );
                println!(
                "allocations per 1,000-tool listing through the exchange ({setup}, {framing}): {allocs}"
            );
                group.bench_function(framing, |b| b.iter(&mut listing));
            }
            group.finish();
        }
    }
}

criterion_group!(benches, parse, policy, jwt, listing, exchange);
criterion_main!(benches);
