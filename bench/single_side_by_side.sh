#!/usr/bin/env bash
# BENCH.md workload `single`, Pagoda next to llama.cpp in one run: ROUNDS rounds, each running
# `pagoda bench single` then `llama-bench` (256-token prompt, 256 generated tokens, same GGUF, same
# threads), interleaved so both see the same machine conditions. Writes
# bench/results/<date>-cpu-single.{json,md}: per-round numbers, median (min-max), the Pagoda/llama.cpp
# ratios and the bandwidth roofline.
#   bash bench/single_side_by_side.sh [MODEL]     env: ROUNDS=3 THREADS=2 LLAMA_BIN=<dir> OUT=<prefix>
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

MODEL="${1:-$(bash scripts/fetch_model.sh | tail -n1)}"
LLAMA_BIN="${LLAMA_BIN:-$(bash scripts/build_llamacpp.sh | tail -n1)}"
ROUNDS="${ROUNDS:-3}"
THREADS="${THREADS:-2}"
OUT="${OUT:-bench/results/$(date -u +%Y-%m-%d)-cpu-single}"
PAGODA="${PAGODA:-build/cli/pagoda}"
[ -x "$PAGODA" ] || bash scripts/build.sh >&2
[ -x "$LLAMA_BIN/llama-bench" ] || { echo "llama-bench not found in $LLAMA_BIN" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for r in $(seq 1 "$ROUNDS"); do
  echo "[single] round $r/$ROUNDS: pagoda" >&2
  "$PAGODA" bench single --backend cpu --model "$MODEL" --threads "$THREADS" --repeats 1 --json "$tmp/pagoda_$r.json" >&2
  echo "[single] round $r/$ROUNDS: llama.cpp" >&2
  LD_LIBRARY_PATH="$LLAMA_BIN${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$LLAMA_BIN/llama-bench" -m "$MODEL" \
    -t "$THREADS" -p 256 -n 256 -r 1 -o json > "$tmp/llama_$r.json"
done

python3 - "$tmp" "$ROUNDS" "$OUT" "$MODEL" "$THREADS" \
  "$(git rev-parse --short HEAD)" "$(git -C "$LLAMA_BIN/../.." rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  "$(lscpu | sed -n 's/^Model name: *//p' | head -n1)" "$(nproc)" <<'PY'
import json, statistics, sys, datetime, os
tmp, rounds, out, model, threads, commit, llama_commit, cpu, cores = sys.argv[1:]
rounds = int(rounds)
rows = []
for r in range(1, rounds + 1):
    p = json.load(open(f"{tmp}/pagoda_{r}.json"))
    l = json.load(open(f"{tmp}/llama_{r}.json"))
    lp = next(x for x in l if x["n_gen"] == 0)["avg_ts"]
    lt = next(x for x in l if x["n_prompt"] == 0)["avg_ts"]
    rows.append({"round": r, "pagoda_prefill": p["prefill_tok_s"]["median"], "pagoda_decode": p["decode_tok_s"]["median"],
                 "llamacpp_pp256": lp, "llamacpp_tg256": lt, "roofline_tok_s": p["roofline_tok_s"],
                 "read_bandwidth_gb_s": p["read_bandwidth_gb_s"], "backend": p["backend"]})
def summ(key):
    v = [x[key] for x in rows]
    return {"median": round(statistics.median(v), 1), "min": round(min(v), 1), "max": round(max(v), 1)}
def ratio(a, b):
    v = [x[a] / x[b] for x in rows]
    return {"median": round(statistics.median(v), 2), "min": round(min(v), 2), "max": round(max(v), 2)}
doc = {
    "workload": "single (256-token prompt, 256 generated tokens, greedy)",
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "machine": {"cpu": cpu, "cores": int(cores)}, "threads": int(threads),
    "pagoda_commit": commit, "peer": f"llama.cpp {llama_commit} (llama-cpp-python 0.3.36 sdist), llama-bench",
    "model": os.path.basename(model),
    "command": f"ROUNDS={rounds} THREADS={threads} bash bench/single_side_by_side.sh",
    "rounds": rows,
    "summary": {"pagoda_prefill_tok_s": summ("pagoda_prefill"), "llamacpp_pp256_tok_s": summ("llamacpp_pp256"),
                "pagoda_decode_tok_s": summ("pagoda_decode"), "llamacpp_tg256_tok_s": summ("llamacpp_tg256"),
                "prefill_ratio": ratio("pagoda_prefill", "llamacpp_pp256"),
                "decode_ratio": ratio("pagoda_decode", "llamacpp_tg256"),
                "roofline_tok_s": summ("roofline_tok_s"), "read_bandwidth_gb_s": summ("read_bandwidth_gb_s")},
}
json.dump(doc, open(out + ".json", "w"), indent=2)
s = doc["summary"]
f = lambda d: f"{d['median']} ({d['min']}–{d['max']})"
md = f"""# `single` on {cpu}, {threads} threads ({doc['date'][:10]})

Pagoda {commit} vs {doc['peer']}, {doc['model']}; {rounds} interleaved rounds, median (min–max).

| | Pagoda | llama.cpp | Pagoda / llama.cpp |
|---|---|---|---|
| prefill, 256-token prompt (tok/s) | {f(s['pagoda_prefill_tok_s'])} | {f(s['llamacpp_pp256_tok_s'])} | {f(s['prefill_ratio'])} |
| decode, 256 tokens (tok/s) | {f(s['pagoda_decode_tok_s'])} | {f(s['llamacpp_tg256_tok_s'])} | {f(s['decode_ratio'])} |

Roofline: read bandwidth {f(s['read_bandwidth_gb_s'])} GB/s over the bytes one decode step reads (weights + mean
KV) = {f(s['roofline_tok_s'])} tok/s; Pagoda's decode is at {round(100 * s['pagoda_decode_tok_s']['median'] / s['roofline_tok_s']['median'])}% of it.
Backend: {rows[0]['backend']}.

Reproduce: `{doc['command']}`
"""
open(out + ".md", "w").write(md)
print(md)
PY
