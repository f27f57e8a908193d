#!/usr/bin/env python3
"""Soak run of the full filter (scripts/soak runs this).

Envoy + mcp-filter in the benchmark's full setup (RS256 JWT from a remote
JWKS, tenant policy, renaming, metrics) in front of a real MCP server, driven
at a steady rate for a bounded time (default 600 s) by persistent HTTP/1.1
connections. Checks: zero errors, every request answered, Envoy's resident
memory flat after warm-up (growth < 5%), and the filter's counters equal to
the requests sent. Writes bench/results/soak.json.
"""
import argparse
import http.client
import json
import os
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402  (the benchmark's setups and process helpers)


def worker(rate, until, results, lock, token, worker_id):
    conn = http.client.HTTPConnection("127.0.0.1", bench.ENVOY_PORT, timeout=10)
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream",
               "authorization": f"Bearer {token}"}
    period = 1.0 / rate
    next_at = time.monotonic()
    n = 0
    while time.monotonic() < until:
        n += 1
        body = json.dumps({"jsonrpc": "2.0", "id": worker_id * 10_000_000 + n, "method": "tools/call",
                           "params": {"name": f"{bench.FULL_PREFIX}echo", "arguments": {"message": "soak"}}})
        outcome = "ok"
        try:
            conn.request("POST", "/mcp", body, headers)
            response = conn.getresponse()
            data = response.read()
            if response.status != 200 or b'"soak"' not in data:
                outcome = f"status {response.status}"
        except Exception as e:  # noqa: BLE001  (any failure is an error of the run)
            outcome = f"{type(e).__name__}"
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", bench.ENVOY_PORT, timeout=10)
        with lock:
            results["sent"] += 1
            if outcome != "ok":
                results["errors"][outcome] = results["errors"].get(outcome, 0) + 1
        next_at += period
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    conn.close()


def counter(base, label):
    """Sum of a filter counter from Envoy's plain /stats (full stat names, tags or not)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{bench.ADMIN_PORT}/stats?filter=wasmcustom").read().decode()
    total = 0.0
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if name.startswith(f"wasmcustom.{base}") and label in name and value.strip().isdigit():
            total += float(value)
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=600, help="seconds of load")
    ap.add_argument("--rate", type=int, default=200, help="requests per second in all")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=60, help="seconds before the memory baseline")
    ap.add_argument("--out", default=os.path.join(bench.ROOT, "bench/results/soak.json"))
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="mcp-soak-")
    log = open(os.path.join(tmp, "soak.log"), "w")
    procs = []
    try:
        idp, token = bench.mint_token(tmp)
        procs.append(idp)
        procs.append(bench.Process([bench.PEER, "--port", str(bench.UPSTREAM_PORT), "--mode", "stateless-json",
                                    "--bench"], log))
        cfg = os.path.join(tmp, "envoy.yaml")
        with open(cfg, "w") as f:
            f.write(bench.envoy_yaml(bench.wasm_filter(bench.full_config(False))))
        envoy = bench.Process([bench.ENVOY, "-c", cfg, "--concurrency", "1", "--disable-hot-restart",
                               "--log-level", "warn"], log)
        procs.append(envoy)
        bench.wait_http(f"http://127.0.0.1:{bench.ADMIN_PORT}/ready")
        time.sleep(1)

        results = {"sent": 0, "errors": {}}
        lock = threading.Lock()
        start = time.monotonic()
        until = start + args.duration
        threads = [threading.Thread(target=worker, args=(args.rate / args.workers, until, results, lock, token, i + 1))
                   for i in range(args.workers)]
        for t in threads:
            t.start()
        samples = []
        while any(t.is_alive() for t in threads):
            samples.append((round(time.monotonic() - start, 1), bench.rss_mib(envoy.proc.pid)))
            time.sleep(5)
        for t in threads:
            t.join()
        time.sleep(1.5)  # the last stats reach the admin output

        after_warmup = [rss for at, rss in samples if at >= args.warmup] or [s[1] for s in samples]
        baseline, final = after_warmup[0], after_warmup[-1]
        growth = (final - baseline) / baseline * 100 if baseline else 0.0
        calls = counter("mcp_requests_total", "mcp_method_name=tools/call")
        answered = counter("mcp_responses_total", "mcp_method_name=tools/call")
        report = {
            "duration_s": args.duration, "rate_rps": args.rate, "sent": results["sent"],
            "errors": results["errors"], "filter_counted_calls": calls, "filter_counted_responses": answered,
            "rss_mib_after_warmup": baseline, "rss_mib_final": final, "rss_growth_percent": round(growth, 2),
            "rss_samples": samples,
        }
        ok = (not results["errors"] and calls == results["sent"] and answered == results["sent"]
              and growth < 5.0)
        report["passed"] = ok
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
        print(json.dumps({k: v for k, v in report.items() if k != "rss_samples"}, indent=1))
        print("soak:", "passed" if ok else "FAILED")
        return 0 if ok else 1
    finally:
        for p in reversed(procs):
            p.stop()
        log.close()


if __name__ == "__main__":
    sys.exit(main())
