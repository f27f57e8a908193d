//! `mcp-filter`: the filter's configuration, checked and explained offline
//! by the filter's own core (the same loader, the same exchange, the same
//! decisions Envoy runs), and rendered into Envoy or Envoy Gateway
//! snippets.
//!
//! Exit codes: 0 done; 1 the configuration is refused (or, with
//! `check --strict`, warned about), or an input could not be read; 2 the
//! command line itself is wrong.
//!
//! Must not: implement a decision: every answer comes from `mcp_filter`.

mod explain;
mod list;
mod pin;
mod render;
mod source;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use explain::Who;
use mcp_filter::config::FilterConfig;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;

#[derive(Parser)]
#[command(name = "mcp-filter", version, about, long_about = None,
    after_help = "Exit codes: 0 done; 1 a configuration refused (or warned about with check --strict) \
                  or an unreadable input; 2 a wrong command line.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load configurations as the filter does (JSON, an envoy.yaml, or an
    /// EnvoyExtensionPolicy); print errors (naming the field) and warnings.
    Check {
        /// Files holding the configuration (`-`: JSON on standard input).
        #[arg(required = true)]
        configs: Vec<PathBuf>,
        /// Also fail (exit 1) on warnings.
        #[arg(long)]
        strict: bool,
    },
    /// What the filter would do with one request from one caller, and why.
    Explain {
        #[command(flatten)]
        on: On,
        /// The JSON-RPC method (with --tool, --prompt or --uri for its subject).
        #[arg(long, conflicts_with = "body")]
        method: Option<String>,
        #[arg(long, requires = "method")]
        tool: Option<String>,
        #[arg(long, requires = "method")]
        prompt: Option<String>,
        #[arg(long, requires = "method")]
        uri: Option<String>,
        /// A JSON-RPC request body, from a file.
        #[arg(long)]
        body: Option<PathBuf>,
        /// A tools/list answer the filter saw first (as the caller's own
        /// listing): what it showed of pinned tools decides their calls.
        #[arg(long, value_name = "FILE")]
        listing: Option<PathBuf>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// What this caller would see of a listing answer (read from standard input).
    List {
        #[command(flatten)]
        on: On,
        /// The listing method the answer answers.
        #[arg(long, default_value = "tools/list")]
        method: String,
        #[arg(long)]
        json: bool,
    },
    /// Print a `tool_pins` section pinning every tool a server lists now,
    /// for review (the digest covers the whole tool definition but `_meta`).
    Pin {
        /// Saved tools/list answers, one per page (`-`: standard input).
        #[arg(
            long = "from",
            value_name = "FILE",
            required_unless_present = "url",
            conflicts_with = "url"
        )]
        from: Vec<PathBuf>,
        /// A live server's Streamable HTTP endpoint to list (e.g. http://127.0.0.1:3001/mcp).
        #[arg(long)]
        url: Option<String>,
        /// A header for the live server ("Name: value"; repeatable).
        #[arg(long = "header", requires = "url")]
        headers: Vec<String>,
        /// The server's name in tool_pins.servers: its backend's name, or
        /// `default` without backends.
        #[arg(long, default_value = "default")]
        server: String,
        /// What becomes of tools no pin names.
        #[arg(long, default_value = "hide", value_parser = ["hide", "allow"])]
        unpinned: String,
    },
    /// Print the configuration's JSON Schema.
    Schema,
    /// Print an Envoy filter entry or an EnvoyExtensionPolicy with a configuration embedded.
    Render {
        config: PathBuf,
        /// An Envoy HTTP filter entry (with --module: for the dynamic module).
        #[arg(long, conflicts_with = "envoy_gateway")]
        envoy: bool,
        /// An Envoy Gateway EnvoyExtensionPolicy loading the .wasm over HTTP.
        #[arg(long)]
        envoy_gateway: bool,
        #[arg(long, requires = "envoy")]
        module: bool,
        /// The built .wasm (its path for --envoy, its sha256 for --envoy-gateway).
        #[arg(long, default_value = "target/wasm32-wasip1/release/mcp_filter.wasm")]
        wasm: PathBuf,
        /// Where Envoy Gateway downloads the .wasm.
        #[arg(long, default_value = "https://downloads.example.com/mcp_filter.wasm")]
        wasm_url: String,
    },
}

/// The configuration and the caller a question is about.
#[derive(Args)]
struct On {
    /// The configuration (JSON, envoy.yaml or EnvoyExtensionPolicy).
    config: PathBuf,
    /// The caller's verified claims, as JSON (e.g. '{"sub":"alice","tenant":"acme"}').
    #[arg(long, conflicts_with = "token")]
    claims: Option<String>,
    /// A JWT, verified with the configuration's keys (and --jwks).
    #[arg(long)]
    token: Option<String>,
    /// A JWKS file (the remote JWKS the filter would fetch).
    #[arg(long, requires = "token")]
    jwks: Option<PathBuf>,
}

impl On {
    fn who(&self) -> Result<Who> {
        Ok(match (&self.claims, &self.token) {
            (Some(c), _) => Who::Claims(explain::claims(c)?),
            (_, Some(t)) => Who::Token {
                token: t.clone(),
                jwks: match &self.jwks {
                    Some(p) => {
                        Some(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?)
                    }
                    None => None,
                },
            },
            _ => Who::Anonymous,
        })
    }
}

/// The one configuration in `path`, loaded by the core.
fn load_one(path: &Path) -> Result<Rc<FilterConfig>> {
    let found = source::configs(path)?;
    if found.len() > 1 {
        let places: Vec<&str> = found.iter().map(|f| f.place.as_str()).collect();
        bail!(
            "{} holds {} configurations ({}); give a file with one",
            path.display(),
            found.len(),
            places.join(", ")
        );
    }
    let Some(one) = found.into_iter().next() else {
        bail!("{}: no configuration", path.display());
    };
    let config = FilterConfig::from_json(one.json.as_bytes())
        .map_err(|e| anyhow::anyhow!("{}: {e}", one.place))?;
    Ok(Rc::new(config))
}

fn check(configs: &[PathBuf], strict: bool) -> Result<bool> {
    let mut ok = true;
    for path in configs {
        let found = match source::configs(path) {
            Ok(found) => found,
            Err(e) => {
                println!("error: {e:#}");
                ok = false;
                continue;
            }
        };
        for f in found {
            match FilterConfig::from_json(f.json.as_bytes()) {
                Ok(config) => {
                    println!("ok: {}", f.place);
                    for w in &config.warnings {
                        println!("warning: {}: {w}", f.place);
                        ok &= !strict;
                    }
                }
                Err(e) => {
                    println!("error: {}: {e}", f.place);
                    ok = false;
                }
            }
        }
    }
    Ok(ok)
}

fn run(cli: Cli) -> Result<bool> {
    match cli.command {
        Command::Check { configs, strict } => check(&configs, strict),
        Command::Explain {
            on,
            method,
            tool,
            prompt,
            uri,
            body,
            listing,
            json,
        } => {
            let config = load_one(&on.config)?;
            if let Some(path) = &listing {
                let answer =
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                list::list(&config, &on.who()?, "tools/list", &answer)?;
            }
            let body = match (&method, &body) {
                (Some(m), _) => {
                    explain::request(m, tool.as_deref(), prompt.as_deref(), uri.as_deref())
                }
                (None, Some(p)) => {
                    std::fs::read(p).with_context(|| format!("reading {}", p.display()))?
                }
                (None, None) => {
                    bail!("explain needs --method (with --tool, --prompt or --uri) or --body FILE")
                }
            };
            let e = explain::explain(&config, &on.who()?, &body)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&e)?);
            } else {
                explain::print(&e);
            }
            Ok(true)
        }
        Command::List { on, method, json } => {
            let config = load_one(&on.config)?;
            let answer = std::io::read_to_string(std::io::stdin())
                .context("reading the listing from standard input")?;
            let v = list::list(&config, &on.who()?, &method, answer.as_bytes())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                list::print(&v);
            }
            Ok(true)
        }
        Command::Pin {
            from,
            url,
            headers,
            server,
            unpinned,
        } => {
            let tools = match &url {
                Some(url) => pin::from_server(url, &headers)?,
                None => pin::from_files(&from)?,
            };
            let section = pin::section(tools, &server, &unpinned)?;
            println!("{}", serde_json::to_string_pretty(&section)?);
            Ok(true)
        }
        Command::Schema => {
            print!("{}", include_str!("../../config.schema.json"));
            Ok(true)
        }
        Command::Render {
            config,
            envoy,
            envoy_gateway,
            module,
            wasm,
            wasm_url,
        } => {
            let found = source::configs(&config)?;
            let Some(one) = found.first() else {
                bail!("no configuration")
            };
            // Refused configurations are not rendered.
            FilterConfig::from_json(one.json.as_bytes())
                .map_err(|e| anyhow::anyhow!("{}: {e}", one.place))?;
            let compact =
                serde_json::to_string(&serde_json::from_str::<serde_json::Value>(&one.json)?)?;
            if envoy_gateway {
                print!("{}", render::envoy_gateway(&compact, &wasm, &wasm_url)?);
            } else if envoy && module {
                print!("{}", render::envoy_module(&compact));
            } else if envoy {
                print!("{}", render::envoy_wasm(&compact, &wasm));
            } else {
                bail!("render needs --envoy or --envoy-gateway");
            }
            Ok(true)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("mcp-filter: {e:#}");
            ExitCode::from(1)
        }
    }
}
