#!/usr/bin/env python3
"""BENCH.md workloads over HTTP against Pagoda and llama.cpp's llama-server, side by side in one run.

Starts `pagodad` and `llama-server` on the same GGUF with the same thread count and comparable batching
(llama-server: continuous batching, 64 slots of 2,048 tokens each, its default per-slot KV streams for an
explicit slot count; pagodad: 64 sequences per step, one paged 65,536-token KV pool), then runs every workload with `pagoda loadgen` against each server, ROUNDS times,
alternating which server goes first. Every round uses its own seed (`--seed ROUND`), so no server can
answer a round from a prefix cached in an earlier one. Writes <out>.json (every run, every request),
<out>.md (one table: medians over rounds with min-max, and the ratio Pagoda / llama.cpp per round) and
PNG plots next to them (gnuplot, Debian's gnuplot-nox): chat latency vs throughput, chat TTFT CDF, and
concurrency throughput. Only the standard library is used; run it with any python3.

  python3 bench/serving_side_by_side.py [--rounds 3] [--threads 2] [--workloads single,chat,...]
          [--out bench/results/<date>-cpu-side-by-side] [--model M] [--llama-bin DIR]
"""
import argparse
import datetime
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from plots import plot_runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKLOADS = ["single", "mixed-prefill", "chat", "concurrency", "shared-prefix", "copy"]
KV_TOKENS = 65536  # pagodad's paged pool, shared by all sequences
SLOTS = 64
SLOT_CTX = 2048  # llama-server reserves this per slot: the longest prompt (1,024) + output fits



def log(msg):
    print(f"[side-by-side] {msg}", file=sys.stderr, flush=True)


def last_line(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout.strip().splitlines()[-1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process on loopback, its log in a file, ready when `ready_path` answers 200."""

    def __init__(self, name, cmd, port, ready_path, env=None, log_dir="."):
        self.name, self.cmd, self.port, self.ready_path = name, cmd, port, ready_path
        self.log_path = os.path.join(log_dir, f"{name}.log")
        self.proc = subprocess.Popen(cmd, stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})}, cwd=ROOT)

    def wait_ready(self, timeout_s=180):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; log: {self.log_path}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{self.ready_path}", timeout=2) as r:
                    if r.status == 200:
                        return
            except Exception:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.name} not ready after {timeout_s} s; log: {self.log_path}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
    mem_kb = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_kb / 2**20, 1),
            "kernel": platform.release(), "gpu": "none used (CPU backends)"}


def load_run(cli, workload, server, port, model, seed, out_json, roofline):
    cmd = [cli, "loadgen", workload, "--http-port", str(port), "--server", server, "--tokenizer-model", model,
           "--seed", str(seed), "--json", out_json, "--no-progress"]
    if workload == "chat":
        cmd += ["--rates", ",".join(str(r) for r in RATES), "--requests", str(CHAT_REQUESTS)]
    if roofline:
        cmd += ["--roofline-model", model]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    sys.stderr.write(p.stdout)
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        log(f"{workload} against {server} exited {p.returncode}")
    log(f"{workload} against {server}: {time.monotonic() - t0:.0f} s")
    try:
        run = json.load(open(out_json))
    except (OSError, ValueError) as e:  # no result: counted as a failed run, the other rounds stay
        log(f"{workload} against {server}: no result ({e})")
        return None
    # Keep the committed JSON small: every request's inter-token gaps stay in loadgen's own file only.
    for point in run.get("points", []):
        for r in point.get("per_request", []):
            r.pop("itl_s", None)
    return run


# Figures per workload: (key, label, path into a point's JSON, higher_is_better).
def fig(point, path):
    v = point
    for k in path:
        v = v.get(k) if isinstance(v, dict) else None
    return v


FIGURES = {
    "single": [("prefill", "prefill tok/s", ("figures", "prefill_tok_s"), True),
               ("decode", "decode tok/s", ("figures", "decode_tok_s"), True),
               ("ttft50", "TTFT p50 ms", ("summary", "ttft", "p50_s"), False)],
    "mixed-prefill": [("wall", "wall time s (all 64 prompts)", ("figures", "wall_s"), False),
                      ("ttft50", "TTFT p50 ms", ("summary", "ttft", "p50_s"), False)],
    "chat": [("ttft50", "TTFT p50 ms", ("summary", "ttft", "p50_s"), False),
             ("ttft99", "TTFT p99 ms", ("summary", "ttft", "p99_s"), False),
             ("tpot50", "TPOT p50 ms", ("summary", "tpot", "p50_s"), False),
             ("itl99", "ITL p99 ms", ("summary", "itl", "p99_s"), False),
             ("tok_s", "output tok/s", ("summary", "output_tok_s"), True),
             ("goodput", "goodput req/s", ("summary", "goodput_request_s"), True)],
    "concurrency": [("tok_s", "aggregate output tok/s", ("summary", "output_tok_s"), True),
                    ("tpot50", "TPOT p50 ms", ("summary", "tpot", "p50_s"), False)],
    "shared-prefix": [("ttft50", "TTFT p50 ms", ("summary", "ttft", "p50_s"), False)],
    "copy": [("decode", "decode tok/s", ("figures", "decode_tok_s"), True)],
}


def as_shown(label, v):
    return v * 1e3 if v is not None and label.endswith(" ms") else v


def rng(values, digits):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    f = lambda x: f"{x:.{digits}f}"
    med = statistics.median(values)
    return f"{f(med)} ({f(min(values))}–{f(max(values))})" if len(values) > 1 else f(med)


def summarize(runs, rounds):
    """rows: one per (workload, point, figure) with per-round values for both servers and the ratio."""
    rows = []
    for w in WORKLOADS:
        if w not in runs:
            continue
        first = next((r for r in runs[w]["pagoda"] + runs[w]["llama.cpp"] if r), None)
        if first is None:
            continue
        for k, point in enumerate(first["points"]):
            for key, label, path, higher in FIGURES[w]:
                vals = {}
                for s in ("pagoda", "llama.cpp"):
                    vals[s] = [as_shown(label, fig(r["points"][k], path)) if r and k < len(r["points"]) else None
                               for r in runs[w][s]]
                # Per round: Pagoda / llama.cpp for rates, llama.cpp / Pagoda for times. A round where Pagoda's
                # rate is 0 counts as 0; one where the peer's is 0 has no finite ratio and is flagged.
                ratios = []
                for a, b in zip(vals["pagoda"], vals["llama.cpp"]):
                    if a is None or b is None:
                        continue
                    if higher:
                        if b > 0:
                            ratios.append(a / b)
                    elif a > 0:
                        ratios.append(b / a)
                peer_zero = higher and any(v == 0 for v in vals["llama.cpp"])
                errors = sum(r["points"][k]["summary"]["errors"] for s in ("pagoda", "llama.cpp") for r in runs[w][s]
                             if r and k < len(r["points"]))
                missing = sum(1 for s in ("pagoda", "llama.cpp") for r in runs[w][s] if not r or k >= len(r["points"]))
                rows.append({"workload": w, "point": point["label"], "figure": label, "higher_is_better": higher,
                             "pagoda": vals["pagoda"], "llama.cpp": vals["llama.cpp"], "advantage": ratios,
                             "peer_zero": peer_zero, "errors": errors, "missing_runs": missing})
    return rows


def roofline_line(runs):
    # Round by round: each round's decode speeds against that round's roofline.
    rounds = list(zip(runs.get("single", {}).get("pagoda", []), runs.get("single", {}).get("llama.cpp", [])))
    rounds = [(p, l) for p, l in rounds if p and "roofline" in p]
    if not rounds:
        return None, ""
    decode = lambda r: r["points"][0]["figures"]["decode_tok_s"] if r and r["points"] else None
    roof = [p["roofline"]["tok_s"] for p, _ in rounds]
    bw = [p["roofline"]["read_bandwidth_gb_s"] for p, _ in rounds]
    mb = rounds[0][0]["roofline"]["bytes_per_token"] / 1e6
    pct_p = [100 * decode(p) / t for (p, _), t in zip(rounds, roof) if decode(p)]
    pct_l = [100 * decode(l) / t for (_, l), t in zip(rounds, roof) if decode(l)]
    doc = {"read_bandwidth_gb_s": bw, "bytes_per_token": mb * 1e6, "roofline_tok_s": roof,
           "pagoda_pct": pct_p, "llamacpp_pct": pct_l}
    text = (f"Decode roofline (`single`): read bandwidth {rng(bw, 1)} GB/s / {mb:.1f} MB per decode step (weights + "
            f"mean KV) = {rng(roof, 0)} tok/s. Pagoda's decode is at {rng(pct_p, 0)}% of it, llama.cpp's at "
            f"{rng(pct_l, 0)}%.")
    return doc, text


def errors_cell(row):
    """Failed requests, and runs that produced no result at all (a crashed server or loadgen)."""
    missing = row.get("missing_runs", 0)
    return f"{row['errors']}, {missing} runs missing" if missing else str(row["errors"])


def write_markdown(path, meta, rows, roof_text, plots):
    lines = [f"# Serving workloads over HTTP: Pagoda vs llama.cpp ({meta['date'][:10]})", "",
             f"Machine: {meta['machine']['cpu']}, {meta['machine']['cores']} cores, {meta['machine']['memory_gib']} GiB. "
             f"Model: {meta['model']}. Threads: {meta['threads']} each.",
             f"Pagoda {meta['pagoda_commit']} (`{meta['pagoda_cmd']}`); peer: {meta['peer']} (`{meta['llama_cmd']}`).",
             f"Command: `{meta['command']}`. {meta['rounds']} rounds, each with its own seed, servers alternating "
             "first; values are median (min–max) over rounds. **Advantage** is Pagoda / llama.cpp for rates and "
             "llama.cpp / Pagoda for times, per round: above 1 means Pagoda is better.",
             "Prompts: windows of the Debian package `fortunes` (English quotations), lengths measured with the "
             "model's tokenizer; every request is greedy with `ignore_eos`, so both servers generate the same "
             "number of tokens. Driven by `pagoda loadgen` over HTTP (streaming `/v1/completions`).", "",
             "| workload | point | figure | Pagoda | llama.cpp | advantage | errors |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        digits = 3 if "req/s" in r["figure"] else (2 if r["figure"].startswith("wall") else 1)
        adv = rng(r["advantage"], 2)
        if r.get("peer_zero"):
            adv = f"{adv} (llama.cpp 0 in some rounds)" if r["advantage"] else "unbounded (llama.cpp 0)"
        lines.append(f"| {r['workload']} | {r['point']} | {r['figure']} | {rng(r['pagoda'], digits)} | "
                     f"{rng(r['llama.cpp'], digits)} | **{adv}** | {errors_cell(r)} |")
    if roof_text:
        lines += ["", roof_text]
    if plots:
        lines += [""] + [f"![{t}]({os.path.basename(p)})" for t, p in plots]
    open(path, "w").write("\n".join(lines) + "\n")


RATES = [1, 2, 4]
CHAT_REQUESTS = 24


def report(out, meta, runs):
    """Writes <out>.json, <out>.md and the plots; returns the number of failed requests."""
    rows = summarize(runs, meta["rounds"])
    roof_doc, roof_text = roofline_line(runs)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    made = plot_runs(runs, out)
    json.dump({"meta": meta, "table": rows, "roofline": roof_doc, "runs": runs}, open(out + ".json", "w"), indent=1)
    write_markdown(out + ".md", meta, rows, roof_text, made)
    log(f"wrote {out}.md, {out}.json, {len(made)} plots")
    print(open(out + ".md").read())
    first = [r for r in rows if r["figure"] == FIGURES[r["workload"]][0][1]]  # one row per point
    return sum(r["errors"] + r.get("missing_runs", 0) for r in first)


def render(path):
    doc = json.load(open(path))
    out = path[:-len(".json")] if path.endswith(".json") else path
    return 0 if report(out, doc["meta"], doc["runs"]) == 0 else 1


def main():
    global RATES, CHAT_REQUESTS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--rates", default=",".join(str(r) for r in RATES), help="chat arrival rates, req/s")
    ap.add_argument("--chat-requests", type=int, default=CHAT_REQUESTS, help="chat requests per rate")
    ap.add_argument("--out", default=os.path.join("bench", "results",
                                                  datetime.date.today().isoformat() + "-cpu-side-by-side"))
    ap.add_argument("--model")
    ap.add_argument("--llama-bin")
    ap.add_argument("--pagoda-build", default="build")
    ap.add_argument("--pagoda-arg", action="append", default=[], metavar="ARG",
                    help="an extra pagodad flag, e.g. --pagoda-arg=--prefill-matmul=bf16 (repeatable)")
    ap.add_argument("--render", metavar="JSON", help="only rewrite the table and plots of an earlier run's JSON "
                    "(next to it)")
    a = ap.parse_args()
    if a.render:
        return render(a.render)
    RATES = [float(x) for x in a.rates.split(",")]
    CHAT_REQUESTS = a.chat_requests
    workloads = [w for w in a.workloads.split(",") if w]
    for w in workloads:
        if w not in WORKLOADS:
            ap.error(f"unknown workload {w}; known: {', '.join(WORKLOADS)}")

    model = a.model or last_line(["bash", "scripts/fetch_model.sh"])
    llama_bin = a.llama_bin or last_line(["bash", "scripts/build_llamacpp.sh"])
    cli = os.path.join(ROOT, a.pagoda_build, "cli", "pagoda")
    pagodad = os.path.join(ROOT, a.pagoda_build, "server", "pagodad")
    if not (os.access(cli, os.X_OK) and os.access(pagodad, os.X_OK)):
        subprocess.run(["bash", "scripts/build.sh"], check=True, cwd=ROOT)
    tmp = tempfile.mkdtemp(prefix="pagoda-sbs-")
    ports = {"pagoda": free_port(), "llama.cpp": free_port()}
    pagoda_cmd = [pagodad, "--backend", "cpu", "--model", model, "--threads", str(a.threads), "--host", "127.0.0.1", "--http-port",
                  str(ports["pagoda"]), "--grpc-port", "0", "--kv-tokens", str(KV_TOKENS), "--max-num-seqs",
                  str(SLOTS), "--log-level", "warn", *a.pagoda_arg]
    llama_cmd = [os.path.join(llama_bin, "llama-server"), "-m", model, "-t", str(a.threads), "-tb", str(a.threads),
                 "--host", "127.0.0.1", "--port", str(ports["llama.cpp"]), "-np", str(SLOTS), "-cb",
                 "-c", str(SLOTS * SLOT_CTX), "--log-verbosity", "0", "--no-webui"]
    servers = {"pagoda": Server("pagoda", pagoda_cmd, ports["pagoda"], "/ready", log_dir=tmp),
               "llama.cpp": Server("llama.cpp", llama_cmd, ports["llama.cpp"], "/health",
                                   env={"LD_LIBRARY_PATH": llama_bin}, log_dir=tmp)}
    runs = {w: {"pagoda": [], "llama.cpp": []} for w in workloads}
    started = time.monotonic()
    try:
        for s in servers.values():
            s.wait_ready()
        log(f"both servers ready (logs in {tmp})")
        for rnd in range(1, a.rounds + 1):
            order = ["pagoda", "llama.cpp"] if rnd % 2 else ["llama.cpp", "pagoda"]
            for w in workloads:
                for s in order:
                    out_json = os.path.join(tmp, f"{w}_{s}_{rnd}.json")
                    runs[w][s].append(load_run(cli, w, s, ports[s], model, rnd, out_json,
                                               roofline=(w == "single" and s == "pagoda")))
    finally:
        for s in servers.values():
            s.stop()
    elapsed = time.monotonic() - started

    git = lambda *args, cwd=ROOT: subprocess.run(["git", *args], capture_output=True, text=True,
                                                cwd=cwd).stdout.strip() or "unknown"
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(), "model": os.path.basename(model), "threads": a.threads, "rounds": a.rounds,
            "pagoda_commit": git("rev-parse", "--short", "HEAD"),
            "peer": f"llama.cpp {git('rev-parse', '--short', 'HEAD', cwd=llama_bin)} from the llama-cpp-python 0.3.36 "
                    "PyPI sdist, llama-server",
            "pagoda_cmd": " ".join(["pagodad"] + pagoda_cmd[1:]).replace(model, "MODEL"),
            "llama_cmd": " ".join(["llama-server"] + llama_cmd[1:]).replace(model, "MODEL"),
            "command": "python3 bench/serving_side_by_side.py " + " ".join(sys.argv[1:]),
            "chat_rates": RATES, "chat_requests_per_rate": CHAT_REQUESTS, "elapsed_s": round(elapsed)}
    log(f"done in {elapsed:.0f} s")
    return 0 if report(a.out, meta, runs) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
