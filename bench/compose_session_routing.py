#!/usr/bin/env python3
"""Session routing through the compose stack (deploy/compose.yaml): two pagodad replicas behind nginx,
BENCH.md's shared-prefix workload in its conversations form, with and without the session header.

- `hash`: every request carries x-session-id, so nginx sends each conversation to the replica its
  session hashes to (consistent hashing), where its prefix stays cached;
- `least-conn`: no header, so nginx picks the replica with the fewest open requests; with one request
  at a time, ties, broken round robin: a conversation's turns land on either replica.
Each run starts from cold caches (both replicas restarted) and sends the same requests (seed = round);
the modes alternate which goes first. With more conversations than one replica's KV cache holds, only
routing by session keeps each replica's share of them cached.

Writes <out>.json (every run, every request) and <out>.md (TTFT p50 / p99 / mean per mode: medians
over rounds with min-max; requests and prefix-cache hit rate per replica). Needs root, the images from
`bash scripts/image.sh`, the host build's `pagoda` CLI and free ports 8080-8082, 50051-50053.

  sudo .venv/bin/python bench/compose_session_routing.py [--rounds 3] [--sessions 24] [--requests 96]
        [--prompt-tokens 1024] [--out bench/results/<date>-compose-session-routing]
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("PAGODA_CACHE", os.path.expanduser("~/.cache/pagoda"))
MODEL = os.path.join(CACHE, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
REPLICAS = {"pagoda-a": "http://127.0.0.1:8081", "pagoda-b": "http://127.0.0.1:8082"}
SERVICES = ["pagoda-a", "pagoda-b", "nginx"]
MODES = {"hash": ["--session-header", "x-session-id"], "least-conn": []}


def log(msg):
    print(f"[session-routing] {msg}", file=sys.stderr, flush=True)


def compose(*args, check=True):
    env = dict(os.environ, PAGODA_MODELS=os.path.dirname(MODEL), PAGODA_THREADS="1",
               CONTAINERS_CONF=os.path.join(CACHE, "containers", "containers.conf"))
    cmd = [sys.executable, "-m", "podman_compose", "-f", os.path.join(ROOT, "deploy", "compose.yaml"), *args]
    return subprocess.run(cmd, check=check, capture_output=True, text=True, env=env)


def healthy(url):
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def wait_healthy():
    deadline = time.monotonic() + 300
    while not all(healthy(u) for u in [*REPLICAS.values(), "http://127.0.0.1:8080"]):
        if time.monotonic() > deadline:
            sys.exit("the stack did not come up within 300 s")
        time.sleep(1)


def metrics(url):
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            name = key.split("{", 1)[0]
            out[name] = out.get(name, 0.0) + float(value)
    return out


def run_mode(args, mode, seed, out_json):
    compose("restart", *SERVICES[:2])  # cold prefix caches
    wait_healthy()
    cmd = [os.path.join(ROOT, "build", "cli", "pagoda"), "loadgen", "shared-prefix", "--http-port", "8080",
           "--sessions", str(args.sessions), "--requests", str(args.requests), "--prompt-tokens",
           str(args.prompt_tokens), "--seed", str(seed), "--server", f"pagoda x2 behind nginx, {mode}",
           "--tokenizer-model", MODEL, "--no-progress", "--json", out_json, *MODES[mode]]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(out_json) as f:
        run = json.load(f)
    per_replica = {}
    for name, url in REPLICAS.items():
        m = metrics(url)
        per_replica[name] = {"requests": m.get("pagoda_requests_total", 0.0),
                             "prefix_cache_hit_rate": m.get("pagoda_prefix_cache_hit_rate", 0.0)}
    summary = run["points"][0]["summary"]
    if summary["errors"]:
        sys.exit(f"{mode}, seed {seed}: {summary['errors']} requests failed")
    log(f"seed {seed}, {mode}: TTFT p50 {summary['ttft']['p50_s'] * 1e3:.0f} ms, p99 {summary['ttft']['p99_s'] * 1e3:.0f} ms; "
        + ", ".join(f"{k} {v['requests']:.0f} requests, hit rate {v['prefix_cache_hit_rate']:.2f}"
                    for k, v in per_replica.items()))
    return {"mode": mode, "seed": seed, "summary": summary, "replicas": per_replica, "run": run}


def med(values, scale=1.0, digits=0):
    v = sorted(x * scale for x in values)
    fmt = f"{{:.{digits}f}}"
    return f"{fmt.format(statistics.median(v))} ({fmt.format(v[0])}–{fmt.format(v[-1])})"


def markdown(args, runs, commit):
    by_mode = {m: [r for r in runs if r["mode"] == m] for m in MODES}
    lines = [f"# Session routing through the compose stack ({datetime.date.today()})", "",
             f"Commit {commit}. Two pagodad replicas (1 compute thread each, default 16,384-token KV cache) behind "
             f"nginx on one machine of {os.cpu_count()} cores, host networking; `pagoda loadgen shared-prefix` over HTTP through "
             f"nginx: {args.requests} requests one after another, turns of {args.sessions} conversations in a random "
             f"order, each with its own {args.prompt_tokens}-token prefix plus a 32-token user turn, 16 output "
             f"tokens. {args.rounds} rounds (seed = round), both replicas restarted (cold caches) before every run, "
             "the modes alternating which goes first. Medians over rounds (min–max).", "",
             f"Command: `sudo .venv/bin/python bench/compose_session_routing.py --rounds {args.rounds} --sessions "
             f"{args.sessions} --requests {args.requests} --prompt-tokens {args.prompt_tokens}`", "",
             "| routing | TTFT p50 (ms) | TTFT p99 (ms) | TTFT mean (ms) | requests a / b | prefix-cache hit rate a / b |",
             "|---|---|---|---|---|---|"]
    for mode, rs in by_mode.items():
        t = [r["summary"]["ttft"] for r in rs]
        reqs = " / ".join(med([r["replicas"][k]["requests"] for r in rs]) for k in REPLICAS)
        hits = " / ".join(med([r["replicas"][k]["prefix_cache_hit_rate"] for r in rs], 100) + "%" for k in REPLICAS)
        label = {"hash": "session hash (x-session-id)", "least-conn": "least connections (no header)"}[mode]
        lines.append(f"| {label} | {med([x['p50_s'] for x in t], 1e3)} | {med([x['p99_s'] for x in t], 1e3)} | "
                     f"{med([x['mean_s'] for x in t], 1e3)} | {reqs} | {hits} |")
    ratio = [h["summary"]["ttft"]["mean_s"] / max(l["summary"]["ttft"]["mean_s"], 1e-9)
             for h, l in zip(by_mode["hash"], by_mode["least-conn"])]
    lines += ["", f"Mean TTFT, session hash / least connections, per round: {', '.join(f'{x:.2f}' for x in ratio)}.", ""]
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--sessions", type=int, default=24)
    p.add_argument("--requests", type=int, default=96)
    p.add_argument("--prompt-tokens", type=int, default=1024)
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results",
                                                 f"{datetime.date.today()}-compose-session-routing"))
    args = p.parse_args()
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    if subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "server", "scheduler", "engine", "deploy", "docker"],
                      capture_output=True, text=True).stdout.strip():
        commit += " (with uncommitted changes)"
    compose("down", "-t", "5", check=False)
    compose("up", "-d", *SERVICES)
    runs = []
    try:
        wait_healthy()
        for rnd in range(1, args.rounds + 1):
            order = list(MODES) if rnd % 2 else list(reversed(MODES))
            for mode in order:
                runs.append(run_mode(args, mode, rnd, f"{args.out}.{mode}.{rnd}.json"))
                os.remove(f"{args.out}.{mode}.{rnd}.json")
    finally:
        compose("down", "-v", "-t", "45", check=False)
    with open(args.out + ".json", "w") as f:
        json.dump({"commit": commit, "args": vars(args), "runs": runs}, f)
    md = markdown(args, runs, commit)
    with open(args.out + ".md", "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
