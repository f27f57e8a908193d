//! The shipped `mcp_filter.wasm`: the proxy-wasm ABI it exports, only host
//! functions Envoy provides as imports, and the size budget.

use mcp_filter_integration::wasm_path;
use wasmparser::{Parser, Payload, TypeRef};

/// Host functions Envoy's wasm runtimes provide that the filter may import.
const ALLOWED_WASI: &[&str] = &[
    "fd_write",
    "environ_get",
    "environ_sizes_get",
    "clock_time_get",
    "random_get",
    "proc_exit",
];

fn read_artifact() -> Option<Vec<u8>> {
    match std::fs::read(wasm_path()) {
        Ok(bytes) => Some(bytes),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but {} is missing", wasm_path().display())
        }
        Err(_) => {
            eprintln!(
                "skipping: {} not built (scripts/test builds it)",
                wasm_path().display()
            );
            None
        }
    }
}

#[test]
fn the_wasm_exports_the_proxy_wasm_abi_and_imports_only_what_envoy_provides() {
    let Some(bytes) = read_artifact() else { return };
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    for payload in Parser::new(0).parse_all(&bytes) {
        match payload.expect("valid wasm") {
            Payload::ImportSection(section) => {
                for import in section.into_imports() {
                    let import = import.expect("import");
                    if matches!(import.ty, TypeRef::Func(_)) {
                        imports.push((import.module.to_string(), import.name.to_string()));
                    }
                }
            }
            Payload::ExportSection(section) => {
                for export in section {
                    exports.push(export.expect("export").name.to_string());
                }
            }
            _ => {}
        }
    }
    for required in [
        "_initialize",
        "proxy_abi_version_0_2_1",
        "proxy_on_memory_allocate",
        "proxy_on_context_create",
        "proxy_on_configure",
        "proxy_on_request_headers",
        "proxy_on_request_body",
        "proxy_on_request_trailers",
        "proxy_on_response_headers",
        "proxy_on_response_body",
        "proxy_on_log",
    ] {
        assert!(
            exports.iter().any(|e| e == required),
            "missing export {required}: {exports:?}"
        );
    }
    for (module, name) in &imports {
        let allowed = match module.as_str() {
            "env" => name.starts_with("proxy_"),
            "wasi_snapshot_preview1" => ALLOWED_WASI.contains(&name.as_str()),
            _ => false,
        };
        assert!(allowed, "unexpected import {module}.{name}");
    }
}

#[test]
fn the_wasm_fits_the_size_budget() {
    let Some(bytes) = read_artifact() else { return };
    assert!(
        bytes.len() <= 1024 * 1024,
        "mcp_filter.wasm is {} bytes, over the 1 MiB budget",
        bytes.len()
    );
}
