#!/usr/bin/env python3
"""Side-by-side load benchmark of mcp-filter (scripts/bench runs this).

Setups, each against the same real MCP server (rmcp, `mcp-peer --bench`):
  direct    client -> upstream
  plain     client -> Envoy (router only)
  native    client -> Envoy + envoy.filters.http.mcp + RBAC allowing a tool list
  observe   client -> Envoy + mcp-filter, `{}` (parse + metrics)
  full      client -> Envoy + mcp-filter: RS256 JWT (remote JWKS) + per-tool
            policy + tenant + filtered listings + session binding + tool
            renaming (every tool published as `gh__<name>`) + metrics
  observe_module, full_module
            the same two configurations, loaded as the dynamic module
            (libmcp_filter.so) instead of the .wasm
Workloads: small tools/call and a 16 KiB argument (JSON), a 1,000-tool
tools/list (JSON and SSE), small tools/call over SSE (stateful sessions).
Then p50/p99 of small calls at a fixed offered load (h2load --rps, the same
for every setup), and Envoy's RSS with 1, 2 and 4 workers, plain vs full.

The primary figure is Envoy CPU time per request, read from /proc/<pid>/stat
around each run. Envoy runs with --concurrency 1, pinned to one core; the
load generator, the upstream (a release build) and the identity provider are
pinned to the other, so they never compete with Envoy for its core (unpinned,
Envoy's CPU per request read 2-3x higher: migrations and a shared core).
Setups run in interleaved rounds (plain, native, observe, full, plain, ...)
so drift hits every setup alike; each cell reports the median of its rounds,
and each ratio to plain Envoy its median and spread over the rounds (each
round's setup divided by the same round's plain).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENVOY = os.environ.get("ENVOY_BIN", "envoy")
PEER = os.path.join(ROOT, "target/release/mcp-peer")
IDP = os.path.join(ROOT, "target/release/demo-idp")
WASM = os.environ.get("MCP_FILTER_WASM", os.path.join(ROOT, "target/wasm32-wasip1/release/mcp_filter.wasm"))
MODULE = os.environ.get("MCP_FILTER_MODULE", os.path.join(ROOT, "target/module/libmcp_filter.so"))
TICK = os.sysconf("SC_CLK_TCK")
# Envoy on one core, everything else on another (when there are two).
PINNED = (os.cpu_count() or 1) >= 2 and subprocess.run(["sh", "-c", "command -v taskset"],
                                                        capture_output=True).returncode == 0


def on_envoy_core(cmd):
    return ["taskset", "-c", "0"] + cmd if PINNED else cmd


def on_load_core(cmd):
    return ["taskset", "-c", "1"] + cmd if PINNED else cmd

ENVOY_PORT, ADMIN_PORT, UPSTREAM_PORT, IDP_PORT = 18080, 18901, 18081, 18082
ISSUER = f"http://127.0.0.1:{IDP_PORT}"
AUDIENCE = f"http://127.0.0.1:{ENVOY_PORT}/mcp"


# The full setup publishes every tool under this prefix: clients call
# `gh__echo`, the upstream sees `echo`, listings are renamed.
FULL_PREFIX = "gh__"


def full_config(sessions):
    config = {
        "backends": {"servers": [{"name": "gh"}]},
        "mcp_paths": ["/mcp"],
        "auth": {
            "issuers": [ISSUER],
            "audiences": [AUDIENCE],
            "algorithms": ["RS256"],
            "remote_jwks": {"cluster": "idp", "path": "/jwks"},
            "resource_metadata": {"resource": AUDIENCE, "authorization_servers": [ISSUER]},
        },
        "tenancy": {"tenant_claim": "tenant"},
        "policy": {"rules": [
            {"name": "no-secret", "tenants": ["*"], "tools": ["gh__secret"], "effect": "deny"},
            # Half of the generated tools: the listing filter has work to do.
            {"name": "evens", "tenants": ["bench"], "tools": ["gh__tool_*0", "gh__tool_*2", "gh__tool_*4", "gh__tool_*6", "gh__tool_*8"], "effect": "allow"},
            {"name": "basics", "tenants": ["bench"], "tools": ["gh__add", "gh__echo", "gh__big"], "effect": "allow"},
        ]},
    }
    if sessions:
        config["sessions"] = {"binding_keys": [{"id": "b1", "secret": "YmVuY2gtc2Vzc2lvbi1rZXktMzItYnl0ZXMtbG9uZyEh"}]}
    return config


def wasm_filter(config):
    return f"""
                  - name: mcp_filter
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
                      config:
                        name: mcp_filter
                        root_id: mcp_filter
                        failure_policy: FAIL_RELOAD
                        vm_config:
                          runtime: envoy.wasm.runtime.v8
                          code: {{ local: {{ filename: {json.dumps(WASM)} }} }}
                        configuration:
                          "@type": type.googleapis.com/google.protobuf.StringValue
                          value: {json.dumps(json.dumps(config))}"""


def module_filter(config):
    # Envoy finds lib<name>.so in ENVOY_DYNAMIC_MODULES_SEARCH_PATH (set on its process).
    return f"""
                  - name: mcp_filter
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
                      dynamic_module_config: {{ name: mcp_filter }}
                      filter_name: mcp_filter
                      filter_config:
                        "@type": type.googleapis.com/google.protobuf.StringValue
                        value: {json.dumps(json.dumps(config))}"""


def is_full(setup):
    return setup in ("full", "full_module")


NATIVE = """
                  - name: envoy.filters.http.mcp
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.mcp.v3.Mcp
                  - name: envoy.filters.http.rbac
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
                      rules:
                        action: ALLOW
                        policies:
                          tools:
                            principals: [{ any: true }]
                            permissions:
                              - or_rules:
                                  rules:
                                    - not_rule: { metadata: { filter: envoy.filters.http.mcp, path: [{ key: method }], value: { string_match: { exact: tools/call } } } }
                                    - metadata: { filter: envoy.filters.http.mcp, path: [{ key: params }, { key: name }], value: { string_match: { exact: add } } }
                                    - metadata: { filter: envoy.filters.http.mcp, path: [{ key: params }, { key: name }], value: { string_match: { exact: echo } } }"""


def envoy_yaml(filters):
    return f"""
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {ADMIN_PORT} }} }}
static_resources:
  listeners:
    - name: mcp
      address: {{ socket_address: {{ address: 127.0.0.1, port_value: {ENVOY_PORT} }} }}
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: mcp
                route_config:
                  virtual_hosts:
                    - name: mcp
                      domains: ["*"]
                      routes:
                        - match: {{ prefix: "/" }}
                          route: {{ cluster: upstream, timeout: 0s }}
                http_filters:{filters}
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
    - name: upstream
      connect_timeout: 1s
      type: STATIC
      load_assignment:
        cluster_name: upstream
        endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {UPSTREAM_PORT} }} }} }} }}] }}]
    - name: idp
      connect_timeout: 1s
      type: STATIC
      load_assignment:
        cluster_name: idp
        endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {IDP_PORT} }} }} }} }}] }}]
"""


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def wait_http(url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except Exception:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def post(url, body, headers):
    req = urllib.request.Request(url, data=body.encode(), method="POST")
    req.add_header("content-type", "application/json")
    req.add_header("accept", "application/json, text/event-stream")
    for k, v in headers.items():
        req.add_header(k, v)
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, dict(r.headers), r.read()


class Process:
    def __init__(self, args, log):
        env = dict(os.environ, ENVOY_DYNAMIC_MODULES_SEARCH_PATH=os.path.dirname(MODULE))
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def wrk_script(tmp, body_expr, headers):
    lines = ["local n = 0", "request = function()", "  n = n + 1"]
    lines.append(f"  local body = {body_expr}")
    hdr = ", ".join(f'["{k}"] = "{v}"' for k, v in headers.items())
    lines.append(f"  return wrk.format('POST', '/mcp', {{ {hdr} }}, body)")
    lines.append("end")
    path = os.path.join(tmp, "wrk.lua")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


WORKLOADS = {
    # name: (peer mode, tools, Lua body expression)
    "call_small_json": ("stateless-json", 0,
        """string.format('{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"}}}', n)"""),
    "call_16k_json": ("stateless-json", 0,
        """string.format('{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"message":"%s"}}}', n, string.rep("x", 16384))"""),
    "list_1000_json": ("stateless-json", 1000,
        """string.format('{"jsonrpc":"2.0","id":%d,"method":"tools/list"}', n)"""),
    "list_1000_sse": ("stateful", 1000,
        """string.format('{"jsonrpc":"2.0","id":%d,"method":"tools/list"}', n)"""),
    "call_small_sse": ("stateful", 0,
        """string.format('{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"}}}', n)"""),
}
SETUPS = ["direct", "plain", "native", "observe", "full", "observe_module", "full_module"]


def parse_wrk(text):
    out = {"requests": 0, "rps": 0.0, "p50_ms": None, "p99_ms": None, "errors": 0}

    def ms(v):
        for unit, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
            if v.endswith(unit):
                return float(v[: -len(unit)]) * f
        return float(v)

    for line in text.splitlines():
        parts = line.split()
        if line.strip().startswith("50%"):
            out["p50_ms"] = ms(parts[1])
        elif line.strip().startswith("99%"):
            out["p99_ms"] = ms(parts[1])
        elif "requests in" in line:
            out["requests"] = int(parts[0])
        elif line.startswith("Requests/sec:"):
            out["rps"] = float(parts[1])
        elif "Non-2xx" in line or "Socket errors" in line:
            out["errors"] += sum(int(p.rstrip(",")) for p in parts if p.rstrip(",").isdigit())
    return out


class Running:
    """One setup up and answering: its processes, URL, headers and body."""

    def __init__(self, setup, workload, tmp, token, concurrency=1):
        mode, tools, body = WORKLOADS[workload]
        prefix = FULL_PREFIX if is_full(setup) else ""
        self.body = body.replace('"name":"echo"', f'"name":"{prefix}echo"')
        self.log = open(os.path.join(tmp, f"{setup}-{workload}.log"), "w")
        self.procs = []
        self.envoy = None
        try:
            self._start(setup, workload, mode, tools, prefix, tmp, token, concurrency)
        except BaseException:
            self.stop()
            raise

    def _start(self, setup, workload, mode, tools, prefix, tmp, token, concurrency):
        peer_args = [PEER, "--port", str(UPSTREAM_PORT), "--mode", mode, "--bench"]
        if tools:
            peer_args += ["--tools", str(tools)]
        self.procs.append(Process(on_load_core(peer_args), self.log))
        if setup != "direct":
            full = full_config(mode == "stateful")
            filters = {"plain": "", "native": NATIVE, "observe": wasm_filter({}),
                       "full": wasm_filter(full), "observe_module": module_filter({}),
                       "full_module": module_filter(full)}[setup]
            cfg = os.path.join(tmp, "envoy.yaml")
            with open(cfg, "w") as f:
                f.write(envoy_yaml(filters))
            self.envoy = Process(on_envoy_core([ENVOY, "-c", cfg, "--concurrency", str(concurrency),
                                  "--disable-hot-restart", "--log-level", "warn"]), self.log)
            self.procs.append(self.envoy)
            wait_http(f"http://127.0.0.1:{ADMIN_PORT}/ready")
        port = UPSTREAM_PORT if setup == "direct" else ENVOY_PORT
        self.url = f"http://127.0.0.1:{port}/mcp"
        self.headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
        if is_full(setup):
            self.headers["authorization"] = f"Bearer {token}"
        deadline = time.time() + 30
        while True:
            try:
                if mode == "stateful":
                    init = '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}'
                    status, h, _ = post(self.url, init, self.headers)
                    session = {k.lower(): v for k, v in h.items()}.get("mcp-session-id", "")
                    self.headers["mcp-session-id"] = session
                    self.headers["mcp-protocol-version"] = "2025-06-18"
                    post(self.url, '{"jsonrpc":"2.0","method":"notifications/initialized"}', self.headers)
                status, _, answer = post(self.url, '{"jsonrpc":"2.0","id":1,"method":"tools/list"}', self.headers)
                if status == 200:
                    break
            except Exception as e:  # the upstream or the JWKS may not be up yet
                if time.time() > deadline:
                    raise RuntimeError(f"{setup}/{workload}: no answer: {e}")
                time.sleep(0.1)
        self.listed = answer.count(f'"name":"{prefix}tool_'.encode())
        self.pid = self.envoy.proc.pid if self.envoy else self.procs[0].proc.pid

    def stop(self):
        for p in reversed(self.procs):
            p.stop()
        self.log.close()


def run_cell(setup, workload, args, tmp, token):
    running = Running(setup, workload, tmp, token)
    try:
        script = wrk_script(tmp, running.body, running.headers)
        wrk = on_load_core(["wrk", "-t1", f"-c{args.connections}", "--latency", "-s", script, running.url])
        # Warm-up (JIT, caches, connections), then the measured run.
        subprocess.run(wrk + ["-d", "1s"], capture_output=True, text=True)
        before = cpu_seconds(running.pid)
        result = subprocess.run(wrk + ["-d", f"{args.duration}s"], capture_output=True, text=True)
        spent = cpu_seconds(running.pid) - before
        out = parse_wrk(result.stdout)
        out["cpu_s_per_10k"] = spent / out["requests"] * 10_000 if out["requests"] else None
        out["rss_mib"] = rss_mib(running.pid)
        out["listed_generated_tools"] = running.listed
        return out
    finally:
        running.stop()


# Fixed offered load for the latency comparison: h2load sends each client's
# requests at a fixed rate (not closed-loop like wrk), so every setup gets the
# same load; well below capacity, so queueing behind a slow answer is rare.
# Several h2load clients fire in step (bursts that queue behind each other),
# so one client carries the whole rate.
OPEN_LOOP_CLIENTS, OPEN_LOOP_RPS_PER_CLIENT = 1, 500


def small_call(setup, request_id=1):
    prefix = FULL_PREFIX if is_full(setup) else ""
    return ('{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"%secho","arguments":{"message":"hello"}}}'
            % (request_id, prefix))


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else None


def run_open_loop(setup, args, tmp, token):
    """p50/p99 of small JSON calls at a fixed offered load (h2load --rps)."""
    running = Running(setup, "call_small_json", tmp, token)
    try:
        # The same call every time (stateless JSON: each request is its own exchange).
        body_path = os.path.join(tmp, "call.json")
        with open(body_path, "w") as f:
            f.write(small_call(setup))
        log_path = os.path.join(tmp, f"h2load-{setup}.tsv")
        if os.path.exists(log_path):  # h2load appends; each run reads its own
            os.remove(log_path)
        def h2load(seconds, log):
            cmd = on_load_core(["h2load", "--h1", "-t1", f"-c{OPEN_LOOP_CLIENTS}",
                                f"--rps={OPEN_LOOP_RPS_PER_CLIENT}", "-D", str(seconds), "-d", body_path]
                               + (["--log-file", log] if log else []))
            for k, v in running.headers.items():
                cmd += ["-H", f"{k}: {v}"]
            result = subprocess.run(cmd + [running.url], capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"h2load against {setup} failed: {result.stderr or result.stdout}")
        # Warm-up (JIT, caches, connections), then the measured run: every
        # setup serves the same request rate, so Envoy's CPU per request is
        # compared at the same load (closed-loop cells are not: a faster
        # setup gets more requests per wake-up).
        h2load(2, None)
        before = cpu_seconds(running.pid)
        h2load(args.open_loop_seconds, log_path)
        cpu = cpu_seconds(running.pid) - before
        rows = [line.split("\t") for line in open(log_path) if line.strip()]
        ok = [int(r[2]) / 1000 for r in rows if len(r) >= 3 and r[1] == "200"]
        return {"offered_rps": OPEN_LOOP_CLIENTS * OPEN_LOOP_RPS_PER_CLIENT, "requests": len(rows),
                "errors": len(rows) - len(ok), "p50_ms": percentile(ok, 0.50),
                "p99_ms": percentile(ok, 0.99),
                "cpu_us_per_request": cpu * 1e6 / len(rows) if rows else None}
    finally:
        running.stop()


def run_memory(setup, concurrency, tmp, token):
    """Envoy's RSS with `concurrency` workers after some calls (idle, settled)."""
    running = Running(setup, "call_small_json", tmp, token, concurrency)
    try:
        for i in range(50):
            post(running.url, small_call(setup, i), running.headers)
        time.sleep(1)
        return rss_mib(running.pid)
    finally:
        running.stop()


def ratio_to_plain(rounds, setup, key):
    """The setup's figure over the same round's plain Envoy, per round:
    median and spread (None without a plain figure to divide by)."""
    ratios = [r[setup][key] / r["plain"][key] for r in rounds if r[setup][key] and r["plain"][key]]
    if not ratios:
        return None
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios),
            "rounds": len(ratios)}


def spread_text(ratio):
    return f"  x plain {ratio['median']:.2f} ({ratio['min']:.2f}-{ratio['max']:.2f})" if ratio else ""


def mint_token(tmp):
    log = open(os.path.join(tmp, "idp.log"), "w")
    idp = Process(on_load_core([IDP, "--port", str(IDP_PORT), "--issuer", ISSUER, "--audience", AUDIENCE,
                                "--alg", "RS256"]), log)
    wait_http(f"{ISSUER}/jwks")
    token = urllib.request.urlopen(f"{ISSUER}/token?sub=bench&tenant=bench").read().decode()
    return idp, token


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--setups", default=",".join(SETUPS))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench/results/latest.json"))
    ap.add_argument("--open-loop-seconds", type=int, default=10,
                    help="fixed-load latency run per setup (0: skip)")
    ap.add_argument("--memory", default="1,2,4",
                    help="Envoy worker counts for the memory comparison (empty: skip)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="mcp-bench-")
    idp, token = mint_token(tmp)
    results = {"meta": {
        "envoy": subprocess.run([ENVOY, "--version"], capture_output=True, text=True).stdout.strip(),
        "wasm_bytes": os.path.getsize(WASM), "module_bytes": os.path.getsize(MODULE), "duration_s": args.duration, "runs": args.runs,
        "connections": args.connections, "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
        "pinned": PINNED, "interleaved": True,
    }, "cells": {}}
    try:
        setups = args.setups.split(",")
        for workload in filter(None, args.workloads.split(",")):
            # Interleaved rounds: every setup once per round, so drift over
            # time hits all setups alike.
            rounds = [{setup: run_cell(setup, workload, args, tmp, token) for setup in setups}
                      for _ in range(args.runs)]
            for setup in setups:
                runs = [r[setup] for r in rounds]
                med = {k: statistics.median([r[k] for r in runs if r[k] is not None])
                       for k in ("rps", "p50_ms", "p99_ms", "cpu_s_per_10k", "rss_mib")
                       if any(r[k] is not None for r in runs)}
                med["errors"] = sum(r["errors"] for r in runs)
                med["requests"] = sum(r["requests"] for r in runs)
                med["listed_generated_tools"] = runs[0]["listed_generated_tools"]
                med["cpu_s_per_10k_runs"] = [r["cpu_s_per_10k"] for r in runs]
                if "plain" in setups and setup not in ("plain", "direct"):
                    med["cpu_ratio_to_plain"] = ratio_to_plain(rounds, setup, "cpu_s_per_10k")
                results["cells"].setdefault(workload, {})[setup] = med
                spread = spread_text(med.get("cpu_ratio_to_plain"))
                print(f"{workload:16} {setup:14} {med.get('rps', 0):9.0f} rps  p50 {med.get('p50_ms', 0):6.2f} ms  "
                      f"p99 {med.get('p99_ms', 0):6.2f} ms  cpu/10k {med.get('cpu_s_per_10k', 0):6.3f} s  "
                      f"rss {med.get('rss_mib', 0):5.1f} MiB  errors {med['errors']}{spread}", flush=True)
        if args.open_loop_seconds > 0:
            open_setups = [s for s in ("plain", "native", "observe", "full", "observe_module", "full_module")
                           if s in setups or s == "plain"]
            # Interleaved rounds, medians of the runs, as for the closed-loop cells.
            rounds = [{setup: run_open_loop(setup, args, tmp, token) for setup in open_setups}
                      for _ in range(args.runs)]
            for setup in open_setups:
                runs = [r[setup] for r in rounds]
                med = {k: statistics.median([r[k] for r in runs if r[k] is not None])
                       for k in ("p50_ms", "p99_ms", "cpu_us_per_request")}
                med.update(offered_rps=runs[0]["offered_rps"], requests=sum(r["requests"] for r in runs),
                           errors=sum(r["errors"] for r in runs))
                if setup != "plain":
                    med["cpu_ratio_to_plain"] = ratio_to_plain(rounds, setup, "cpu_us_per_request")
                results.setdefault("open_loop", {})[setup] = med
                spread = spread_text(med.get("cpu_ratio_to_plain"))
                print(f"open-loop {med['offered_rps']} req/s {setup:14} p50 {med['p50_ms']:6.3f} ms  "
                      f"p99 {med['p99_ms']:6.3f} ms  cpu {med['cpu_us_per_request']:6.1f} us/req  "
                      f"requests {med['requests']}  errors {med['errors']}{spread}",
                      flush=True)
        for workers in filter(None, args.memory.split(",")):
            for setup in ("plain", "full", "full_module"):
                if setup != "plain" and setup not in setups:
                    continue
                rss = run_memory(setup, int(workers), tmp, token)
                results.setdefault("memory", {}).setdefault(setup, {})[workers] = rss
                print(f"memory {setup:11} --concurrency {workers}: {rss:6.1f} MiB", flush=True)
    finally:
        idp.stop()
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
