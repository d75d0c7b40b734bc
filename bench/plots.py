#!/usr/bin/env python3
"""PNG plots of `pagoda loadgen --json` results, drawn by gnuplot (Debian's gnuplot-nox).

  python3 bench/plots.py RESULT.json [RESULT.json ...] --out PREFIX

Results of several servers (each run's "server" label, e.g. `--server llama.cpp`) and rounds are plotted
together: `chat` gives PREFIX-chat-latency-throughput.png (TTFT p50/p99 against output tok/s, one point per
arrival rate) and PREFIX-chat-ttft-cdf.png (every request's TTFT at the highest rate); `concurrency` gives
PREFIX-concurrency.png (aggregate output tok/s against streams, median over rounds). Standard library only.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile


def log(msg):
    print(f"[plots] {msg}", file=sys.stderr, flush=True)


def gnuplot(script, out_png):
    if not shutil.which("gnuplot"):
        log("gnuplot not found (apt-get install gnuplot-nox): no plots")
        return False
    p = subprocess.run(["gnuplot"], input=f"set terminal pngcairo size 900,600\nset output '{out_png}'\n{script}",
                       text=True, capture_output=True)
    if p.returncode != 0:
        log(f"gnuplot failed for {out_png}: {p.stderr.strip()}")
    return p.returncode == 0


def last_run(rounds):
    return next((r for r in reversed(rounds) if r), None)


def safe(name):
    return "".join(c if c.isalnum() else "_" for c in name)


def chat_latency_throughput(chat, prefix, tmp):
    """TTFT p50 and p99 against output tok/s, one point per arrival rate, per server (its last round)."""
    data = {}
    for server, rounds in chat.items():
        r = last_run(rounds)
        if not r:
            continue
        path = os.path.join(tmp, f"chat_{safe(server)}.dat")
        with open(path, "w") as f:
            for p in r["points"]:
                t = p["summary"]["ttft"]
                if t["p50_s"] is not None and p["summary"]["output_tok_s"] is not None:
                    f.write(f"{p['summary']['output_tok_s']} {t['p50_s'] * 1e3} {t['p99_s'] * 1e3}\n")
        data[server] = path
    png = prefix + "-chat-latency-throughput.png"
    script = ("set title 'chat: TTFT vs output throughput (one point per arrival rate, last round)'\n"
              "set xlabel 'output tok/s'\nset ylabel 'TTFT (ms)'\nset logscale y\nset key top left\nset grid\n"
              "plot " + ", ".join(f"'{p}' using 1:{c} with linespoints title '{s} {n}'"
                                  for s, p in data.items() for c, n in ((2, "p50"), (3, "p99"))))
    return [("chat latency vs throughput", png)] if data and gnuplot(script, png) else []


def chat_ttft_cdf(chat, prefix, tmp):
    """The distribution of every request's TTFT at the highest arrival rate, per server (its last round)."""
    cdf = {}
    for server, rounds in chat.items():
        r = last_run(rounds)
        if not r or not r["points"]:
            continue
        point = max(r["points"], key=lambda p: p["rate"])
        ttfts = sorted(q["ttft_s"] * 1e3 for q in point["per_request"] if q.get("ttft_s") is not None)
        if not ttfts:
            continue
        path = os.path.join(tmp, f"cdf_{safe(server)}.dat")
        with open(path, "w") as f:
            for i, v in enumerate(ttfts):
                f.write(f"{v} {(i + 1) / len(ttfts)}\n")
        cdf[server] = (path, point["label"])
    png = prefix + "-chat-ttft-cdf.png"
    script = ("set title 'chat: TTFT CDF at the highest rate (last round)'\nset xlabel 'TTFT (ms)'\n"
              "set ylabel 'fraction of requests'\nset logscale x\nset key bottom right\nset grid\nplot " +
              ", ".join(f"'{p}' using 1:2 with steps title '{s} ({label})'" for s, (p, label) in cdf.items()))
    return [("chat TTFT CDF", png)] if cdf and gnuplot(script, png) else []


def concurrency_throughput(conc, prefix, tmp):
    """Aggregate output tok/s against concurrent streams, median over rounds, per server."""
    data = {}
    for server, rounds in conc.items():
        per_level = {}
        for r in rounds:
            for p in (r or {}).get("points", []):
                if p["summary"]["output_tok_s"] is not None:
                    per_level.setdefault(p["concurrency"], []).append(p["summary"]["output_tok_s"])
        if not per_level:
            continue
        path = os.path.join(tmp, f"conc_{safe(server)}.dat")
        with open(path, "w") as f:
            for c in sorted(per_level):
                f.write(f"{c} {statistics.median(per_level[c])}\n")
        data[server] = path
    png = prefix + "-concurrency.png"
    script = ("set title 'concurrency: aggregate output tok/s (median over rounds)'\nset xlabel 'concurrent "
              "streams'\nset ylabel 'output tok/s'\nset logscale x 2\nset key top left\nset grid\nplot " +
              ", ".join(f"'{p}' using 1:2 with linespoints title '{s}'" for s, p in data.items()))
    return [("concurrency throughput", png)] if data and gnuplot(script, png) else []


def plot_runs(runs, prefix, tmp=None):
    """runs: {workload: {server: [loadgen JSON per round]}}. Returns [(title, png path)] of the plots made."""
    tmp = tmp or tempfile.mkdtemp(prefix="pagoda-plots-")
    made = []
    if runs.get("chat"):
        made += chat_latency_throughput(runs["chat"], prefix, tmp)
        made += chat_ttft_cdf(runs["chat"], prefix, tmp)
    if runs.get("concurrency"):
        made += concurrency_throughput(runs["concurrency"], prefix, tmp)
    return made


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", help="JSON files written by `pagoda loadgen --json`")
    ap.add_argument("--out", required=True, help="path prefix of the PNG files")
    a = ap.parse_args()
    runs = {}
    for path in a.results:
        r = json.load(open(path))
        runs.setdefault(r["workload"], {}).setdefault(r["server"], []).append(r)
    made = plot_runs(runs, a.out)
    for title, png in made:
        print(f"{title}: {png}")
    return 0 if made else 1


if __name__ == "__main__":
    sys.exit(main())
