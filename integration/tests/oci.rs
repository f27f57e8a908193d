//! `scripts/package-oci`: the OCI image layout and archive it writes are read
//! back and checked: index -> manifest -> config and layer, every digest and
//! size, the layer holding exactly `plugin.wasm`, byte for byte the built one.

use mcp_filter_integration::{repo_root, wasm_path};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;
use std::process::Command;

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// The blob a descriptor names, checked against its digest and size.
fn blob(layout: &Path, descriptor: &Value) -> Vec<u8> {
    let digest = descriptor["digest"].as_str().expect("digest");
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    let bytes = std::fs::read(layout.join("blobs/sha256").join(hex)).expect("blob");
    assert_eq!(sha256(&bytes), digest, "blob content matches its digest");
    assert_eq!(
        descriptor["size"].as_u64(),
        Some(bytes.len() as u64),
        "size of {digest}"
    );
    bytes
}

#[test]
fn the_oci_image_holds_the_built_wasm_as_plugin_wasm() {
    let Ok(wasm) = std::fs::read(wasm_path()) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but the wasm is not built"
        );
        eprintln!("skipping: {} not built", wasm_path().display());
        return;
    };
    let out = std::env::temp_dir().join(format!("mcp-filter-oci-{}", std::process::id()));
    let status = Command::new(repo_root().join("scripts/package-oci"))
        .arg("--wasm")
        .arg(wasm_path())
        .arg("--out")
        .arg(&out)
        .arg("--tag")
        .arg("test")
        .status()
        .expect("running scripts/package-oci");
    assert!(status.success());
    let layout = out.join("mcp-filter");

    let oci_layout: Value =
        serde_json::from_slice(&std::fs::read(layout.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(oci_layout["imageLayoutVersion"], "1.0.0");
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    assert_eq!(
        manifests[0]["annotations"]["org.opencontainers.image.ref.name"],
        "test"
    );

    let manifest: Value = serde_json::from_slice(&blob(&layout, &manifests[0])).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "a single layer");
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );

    let mut layer_tar = Vec::new();
    flate2::read::GzDecoder::new(&blob(&layout, &layers[0])[..])
        .read_to_end(&mut layer_tar)
        .unwrap();
    let config: Value = serde_json::from_slice(&blob(&layout, &manifest["config"])).unwrap();
    assert_eq!(config["rootfs"]["diff_ids"][0], sha256(&layer_tar));

    let mut archive = tar::Archive::new(&layer_tar[..]);
    let mut entries = archive.entries().unwrap();
    let mut entry = entries.next().expect("one entry").unwrap();
    assert_eq!(entry.path().unwrap().to_string_lossy(), "plugin.wasm");
    let mut content = Vec::new();
    entry.read_to_end(&mut content).unwrap();
    assert!(content == wasm, "plugin.wasm is the built mcp_filter.wasm");
    assert!(entries.next().is_none(), "nothing else in the layer");

    // The archive holds the same layout.
    let archive_bytes = std::fs::read(out.join("mcp-filter.tar")).unwrap();
    let mut names: Vec<String> = tar::Archive::new(&archive_bytes[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.contains(&"index.json".to_string()) && names.contains(&"oci-layout".to_string()));
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("blobs/sha256/"))
            .count(),
        3
    );

    // Reproducible: packaging again gives the same manifest digest.
    let again = out.join("again");
    assert!(Command::new(repo_root().join("scripts/package-oci"))
        .arg("--wasm")
        .arg(wasm_path())
        .arg("--out")
        .arg(&again)
        .arg("--tag")
        .arg("test")
        .status()
        .unwrap()
        .success());
    let index2: Value =
        serde_json::from_slice(&std::fs::read(again.join("mcp-filter/index.json")).unwrap())
            .unwrap();
    assert_eq!(index2["manifests"][0]["digest"], manifests[0]["digest"]);
    let _ = std::fs::remove_dir_all(&out);
}
