#!/usr/bin/env python3
"""The `copy` workload (repeat a passage word for word, one request at a time) over HTTP against Pagoda and
llama.cpp's llama-server, each with and without speculative decoding, side by side in one run.

Pagoda: `--speculative off`, `ngram` (prompt lookup, every proposal verified) and `auto` (the default).
llama-server: no speculation, and `--spec-type ngram-simple` (its prompt-lookup drafter, at its own
defaults) where its build has it. Every configuration is one server started on its own (the machine's
cores are not shared between two servers), driven by `pagoda loadgen copy`; the configurations rotate
within each round. Reported: output tok/s and decode tok/s (from the first to the last token) per request,
median over the requests of a round, then median (min-max) over rounds, and each speed-up over the same
server without speculation in the same round.

  python3 bench/speculative_side_by_side.py [--rounds 3] [--threads 2] [--requests 4] [--max-tokens 128]
Writes <out>.json and <out>.md (default bench/results/<date>-cpu-speculative-side-by-side).
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serving_side_by_side import ROOT, Server, free_port, last_line, log, machine  # noqa: E402

CONFIGS = [  # (label, server, extra flags)
    ("pagoda off", "pagoda", ["--speculative", "off"]),
    ("pagoda ngram", "pagoda", ["--speculative", "ngram"]),
    ("pagoda auto", "pagoda", ["--speculative", "auto"]),
    ("llama.cpp off", "llama.cpp", []),
    ("llama.cpp ngram-simple", "llama.cpp", ["--spec-type", "ngram-simple"]),
]
BASELINE = {"pagoda ngram": "pagoda off", "pagoda auto": "pagoda off", "llama.cpp ngram-simple": "llama.cpp off"}


def server_cmd(kind, extra, model, llama_bin, pagodad, port, threads):
    if kind == "pagoda":
        return [pagodad, "--backend", "cpu", "--model", model, "--threads", str(threads), "--host", "127.0.0.1",
                "--http-port", str(port), "--grpc-port", "0", "--log-level", "warn", *extra], "/ready", None
    return ([os.path.join(llama_bin, "llama-server"), "-m", model, "-t", str(threads), "-tb", str(threads), "--host",
             "127.0.0.1", "--port", str(port), "-np", "1", "-c", "4096", "--log-verbosity", "0", "--no-webui", *extra],
            "/health", {"LD_LIBRARY_PATH": llama_bin})


def per_request_rates(run):
    """Each request's output tok/s (tokens / total time) and decode tok/s (after the first token)."""
    out, dec = [], []
    for point in run.get("points", []):
        for r in point.get("per_request", []):
            if not r.get("ok") or "tpot_s" not in r:
                continue
            n, total = r["output_tokens"], r["end_s"] - r["submit_s"]
            out.append(n / total)
            dec.append(1.0 / r["tpot_s"])
    return out, dec


def span(values, digits=1):
    if not values:
        return "-"
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--requests", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--model")
    ap.add_argument("--llama-bin")
    ap.add_argument("--pagoda-build", default="build")
    ap.add_argument("--out", default=os.path.join("bench", "results", datetime.date.today().isoformat() +
                                                  "-cpu-speculative-side-by-side"))
    a = ap.parse_args()
    model = a.model or last_line(["bash", "scripts/fetch_model.sh"])
    llama_bin = a.llama_bin or last_line(["bash", "scripts/build_llamacpp.sh"])
    cli = os.path.join(ROOT, a.pagoda_build, "cli", "pagoda")
    pagodad = os.path.join(ROOT, a.pagoda_build, "server", "pagodad")
    tmp = tempfile.mkdtemp(prefix="pagoda-spec-sbs-")
    results = {label: {"output_tok_s": [], "decode_tok_s": []} for label, _, _ in CONFIGS}
    speedups = {label: [] for label in BASELINE}
    commands = {}
    for rnd in range(1, a.rounds + 1):
        shift = (rnd - 1) % len(CONFIGS)
        decode_of_round = {}
        for label, kind, extra in CONFIGS[shift:] + CONFIGS[:shift]:
            port = free_port()
            cmd, ready, env = server_cmd(kind, extra, model, llama_bin, pagodad, port, a.threads)
            commands[label] = " ".join([os.path.basename(cmd[0])] + cmd[1:]).replace(model, "MODEL")
            s = Server(label.replace(" ", "_"), cmd, port, ready, env=env, log_dir=tmp)
            try:
                s.wait_ready()
                out_json = os.path.join(tmp, f"{label.replace(' ', '_')}_{rnd}.json")
                p = subprocess.run([cli, "loadgen", "copy", "--http-port", str(port), "--server", kind,
                                    "--tokenizer-model", model, "--seed", str(rnd), "--requests", str(a.requests),
                                    "--max-tokens", str(a.max_tokens), "--json", out_json, "--no-progress"],
                                   capture_output=True, text=True, cwd=ROOT)
                if p.returncode != 0:
                    log(f"{label}: loadgen exited {p.returncode}: {p.stderr[-500:]}")
                    continue
                out, dec = per_request_rates(json.load(open(out_json)))
            except RuntimeError as e:  # a build without the option, or a start-up failure: reported as missing
                log(f"{label}: {e}")
                continue
            finally:
                s.stop()
            if out:
                results[label]["output_tok_s"].append(statistics.median(out))
                results[label]["decode_tok_s"].append(statistics.median(dec))
                decode_of_round[label] = statistics.median(dec)
            log(f"round {rnd} {label}: decode {decode_of_round.get(label, 0):.1f} tok/s")
        for label, base in BASELINE.items():
            if label in decode_of_round and base in decode_of_round:
                speedups[label].append(decode_of_round[label] / decode_of_round[base])

    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(), "model": os.path.basename(model), "threads": a.threads, "rounds": a.rounds,
            "requests": a.requests, "max_tokens": a.max_tokens,
            "pagoda_commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                            cwd=ROOT).stdout.strip(),
            "commands": commands}
    json.dump({"meta": meta, "results": results, "speedups": speedups}, open(a.out + ".json", "w"), indent=2)
    lines = [f"# `copy` over HTTP, Pagoda and llama-server with and without speculation ({meta['date']})", "",
             f"Machine: {meta['machine']['cpu']}, {meta['machine']['cores']} cores. Model: {meta['model']}. "
             f"Threads: {a.threads} each. Pagoda {meta['pagoda_commit']}. {a.requests} requests one at a time, "
             f"{a.max_tokens} output tokens, {a.rounds} rounds (configurations rotating); per round the median "
             "request, then median (min-max) over rounds.", "",
             "| configuration | output tok/s | decode tok/s | decode speed-up vs its server off |", "|---|---|---|---|"]
    for label, _, _ in CONFIGS:
        r = results[label]
        lines.append(f"| {label} | {span(r['output_tok_s'])} | {span(r['decode_tok_s'])} | "
                     f"{span(speedups[label], 2) if label in speedups else '1.00'} |")
    lines += ["", "Commands:", ""] + [f"- {k}: `{v}`" for k, v in commands.items()]
    open(a.out + ".md", "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
