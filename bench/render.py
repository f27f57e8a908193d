#!/usr/bin/env python3
"""Renders bench/results/latest.json into BENCHMARKS.md (between the
`results:start` / `results:end` markers) and bench/results/cpu.png."""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETUPS = ["direct", "plain", "native", "observe", "full", "observe_module", "full_module"]
LABELS = {
    "direct": "client → upstream",
    "plain": "Envoy (router only)",
    "native": "Envoy + native mcp + RBAC",
    "observe": "Envoy + mcp-filter observe-only (wasm)",
    "full": "Envoy + mcp-filter full (wasm)",
    "observe_module": "Envoy + mcp-filter observe-only (module)",
    "full_module": "Envoy + mcp-filter full (module)",
}


def fmt(v, digits=2):
    return "–" if v is None else f"{v:.{digits}f}"


def ratio(cells, a, b):
    x, y = cells.get(a, {}).get("cpu_s_per_10k"), cells.get(b, {}).get("cpu_s_per_10k")
    return None if not x or not y else x / y


def to_plain(cells, setup):
    """The setup's CPU ratio to plain Envoy: median over interleaved rounds
    and its spread, when the run recorded them; else the ratio of medians."""
    r = cells.get(setup, {}).get("cpu_ratio_to_plain")
    if r:
        return f"**{r['median']:.2f}×** ({r['min']:.2f}–{r['max']:.2f} over {r['rounds']} rounds)"
    return f"**{fmt(ratio(cells, setup, 'plain'))}×**"


def tables(results):
    meta = results["meta"]
    out = [
        f"Measured {meta['date']} with `{meta['envoy'].split()[-1] if meta['envoy'] else 'envoy'}`, "
        f"{meta['cpus']} cores, {meta['runs']} runs of {meta['duration_s']} s per cell (medians), "
        f"wrk 1 thread / {meta['connections']} connections, Envoy `--concurrency 1`"
        + ("; Envoy pinned to one core, load generator and upstream to the other, setups in "
           "interleaved rounds" if meta.get("pinned") else "")
        + "; "
        f"`mcp_filter.wasm` {meta['wasm_bytes']:,} bytes"
        + (f", `libmcp_filter.so` {meta['module_bytes']:,} bytes." if meta.get("module_bytes") else "."),
        "",
    ]
    for workload, cells in results["cells"].items():
        out += [f"### {workload}", "",
                "| setup | req/s | p50 ms | p99 ms | Envoy CPU s / 10k req | Envoy RSS MiB | errors |",
                "|---|---:|---:|---:|---:|---:|---:|"]
        for s in SETUPS:
            c = cells.get(s)
            if not c:
                continue
            cpu = "(upstream's)" if s == "direct" else fmt(c.get("cpu_s_per_10k"), 3)
            rss = "–" if s == "direct" else fmt(c.get("rss_mib"), 1)
            out.append(f"| {LABELS[s]} | {fmt(c.get('rps'), 0)} | {fmt(c.get('p50_ms'))} | "
                       f"{fmt(c.get('p99_ms'))} | {cpu} | {rss} | {c.get('errors', 0)} |")
        out += ["", "CPU ratios: "
                f"observe/plain {to_plain(cells, 'observe')}, "
                f"full/plain {to_plain(cells, 'full')}, "
                f"full/native **{fmt(ratio(cells, 'full', 'native'))}×** (of medians), "
                f"native/plain {to_plain(cells, 'native')}"
                + (f"; module: observe/plain {to_plain(cells, 'observe_module')}, "
                   f"full/plain {to_plain(cells, 'full_module')}, "
                   f"full/native **{fmt(ratio(cells, 'full_module', 'native'))}×** (of medians)"
                   if "full_module" in cells else "") + ".", ""]
    out += open_loop(results.get("open_loop", {})) + memory(results.get("memory", {}))
    return "\n".join(out)


def open_loop(cells):
    if not cells:
        return []
    rate = next(iter(cells.values()))["offered_rps"]
    plain = cells.get("plain", {})
    out = [f"### Latency at a fixed offered load ({rate} req/s, small JSON call)", "",
           "h2load `--rps` (one client at a fixed rate, so every setup gets the same load and "
           "Envoy's CPU per request is compared at the same request rate), after a 2 s warm-up; "
           "setups in interleaved rounds, medians of the rounds.", "",
           "| setup | p50 ms | p99 ms | p99 added over plain ms | Envoy CPU µs / req | × plain (median, min–max of rounds) | requests | errors |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in SETUPS:
        c = cells.get(s)
        if not c:
            continue
        added = None if s == "plain" or plain.get("p99_ms") is None else c["p99_ms"] - plain["p99_ms"]
        r = c.get("cpu_ratio_to_plain")
        spread = "–" if not r else f"{fmt(r['median'])}× ({fmt(r['min'])}–{fmt(r['max'])})"
        out.append(f"| {LABELS[s]} | {fmt(c.get('p50_ms'), 3)} | {fmt(c.get('p99_ms'), 3)} | "
                   f"{'–' if added is None else fmt(added, 3)} | {fmt(c.get('cpu_us_per_request'), 1)} | "
                   f"{spread} | {c.get('requests', 0)} | {c.get('errors', 0)} |")
    return out + [""]


def memory(cells):
    if not cells:
        return []
    plain, full = cells.get("plain", {}), cells.get("full", {})
    module = cells.get("full_module", {})
    workers = sorted(set(plain) & set(full), key=int)
    out = ["### Envoy memory by worker count (full filter vs plain Envoy)", "",
           "RSS after 50 small calls, idle. V8 and the compiled module are shared by the "
           "process; each worker adds its own VM instance. The dynamic module has no VM.", "",
           "| `--concurrency` | plain MiB | full (wasm) MiB | added MiB | full (module) MiB | added MiB |",
           "|---:|---:|---:|---:|---:|---:|"]
    for w in workers:
        m = module.get(w)
        out.append(f"| {w} | {fmt(plain[w], 1)} | {fmt(full[w], 1)} | {fmt(full[w] - plain[w], 1)} | "
                   f"{fmt(m, 1)} | {fmt(None if m is None else m - plain[w], 1)} |")
    if len(workers) >= 2:
        lo, hi = workers[0], workers[-1]
        per = ((full[hi] - plain[hi]) - (full[lo] - plain[lo])) / (int(hi) - int(lo))
        out += ["", f"Added per extra worker: **{per:.1f} MiB** "
                f"(from {lo} to {hi} workers); fixed per process: {full[lo] - plain[lo] - per * int(lo):.1f} MiB."]
    return out + [""]


def chart(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    workloads = list(results["cells"])
    setups = [s for s in SETUPS if s != "direct"]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(setups)
    for i, s in enumerate(setups):
        vals = [results["cells"][w].get(s, {}).get("cpu_s_per_10k") or 0 for w in workloads]
        ax.bar([x + i * width for x in range(len(workloads))], vals, width, label=LABELS[s])
    ax.set_xticks([x + width * (len(setups) - 1) / 2 for x in range(len(workloads))])
    ax.set_xticklabels(workloads, rotation=10)
    ax.set_ylabel("Envoy CPU seconds per 10k requests")
    ax.set_title("Envoy CPU per request (lower is better)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "bench/results/latest.json")
    results = json.load(open(src))
    md_path = os.path.join(ROOT, "BENCHMARKS.md")
    md = open(md_path).read()
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    head, rest = md.split(start, 1)
    _, tail = rest.split(end, 1)
    open(md_path, "w").write(head + start + "\n" + tables(results) + "\n" + end + tail)
    chart(results, os.path.join(ROOT, "bench/results/cpu.png"))
    print(f"updated {md_path} and bench/results/cpu.png")


if __name__ == "__main__":
    main()
