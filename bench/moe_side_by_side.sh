#!/usr/bin/env bash
# The mixture-of-experts benchmark of issue 16, Pagoda next to llama.cpp on one random-weight GGUF of
# Qwen3-30B-A3B's shape (128 experts, 8 per token; `pagoda make-model --preset qwen3-30b-a3b`, cut to
# LAYERS layers so it fits a small machine):
#   1. BENCH.md's `single` (256-token prompt, 256 generated): bench/single_side_by_side.sh, llama-bench;
#   2. output tok/s at 1 and 64 concurrent streams (128-token prompts, 128 generated, all streams
#      starting together): `pagoda bench concurrency` next to llama-batched-bench (-npl 1,64), rounds
#      interleaved. Both count the token the prefill's logits give: llama-batched-bench runs -ntg 127
#      decode steps after its prefill and is credited 128 tokens per stream, as Pagoda's 127 steps are;
#   3. where Pagoda's step time goes at each level (`--profile-ops`): routing (router matmul, softmax,
#      top-k, grouping by expert) and dispatch (gathering each expert's rows, weighting and combining)
#      against the experts' own matmuls: the token-to-expert cost ExFlow is about.
# Writes bench/results/<date>-cpu-moe.{json,md}.
#   bash bench/moe_side_by_side.sh [MODEL]   env: ROUNDS=2 THREADS=2 LAYERS=4 STREAMS=64 LLAMA_BIN=<dir> OUT=<prefix>
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ROUNDS="${ROUNDS:-2}"
THREADS="${THREADS:-2}"
LAYERS="${LAYERS:-4}"
STREAMS="${STREAMS:-64}"
PROMPT=128 GEN=128
PAGODA="${PAGODA:-build/cli/pagoda}"
OUT="${OUT:-bench/results/$(date -u +%Y-%m-%d)-cpu-moe}"
[ -x "$PAGODA" ] || bash scripts/build.sh >&2
LLAMA_BIN="${LLAMA_BIN:-$(bash scripts/build_llamacpp.sh | tail -n1)}"
[ -x "$LLAMA_BIN/llama-batched-bench" ] || { echo "llama-batched-bench not found in $LLAMA_BIN" >&2; exit 1; }
MODEL="${1:-}"
if [ -z "$MODEL" ]; then
  MODEL="${MODELS_DIR:-$HOME/.cache/pagoda/bench-models}/qwen3-30b-a3b-${LAYERS}l.gguf"
  mkdir -p "$(dirname "$MODEL")"
  [ -f "$MODEL" ] || "$PAGODA" make-model --preset qwen3-30b-a3b --layers "$LAYERS" --out "$MODEL" >&2
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
ROUNDS="$ROUNDS" THREADS="$THREADS" OUT="$tmp/single" LLAMA_BIN="$LLAMA_BIN" bash bench/single_side_by_side.sh "$MODEL" >&2
for r in $(seq 1 "$ROUNDS"); do
  echo "[moe] round $r/$ROUNDS: pagoda concurrency 1,$STREAMS" >&2
  "$PAGODA" bench concurrency --backend cpu --model "$MODEL" --threads "$THREADS" \
    --streams "1,$STREAMS" --prompt-len "$PROMPT" --max-tokens "$GEN" --requests-per-stream 1 --rounds 1 \
    --profile-ops --json "$tmp/pagoda_$r.json" >&2
  echo "[moe] round $r/$ROUNDS: llama-batched-bench 1,$STREAMS" >&2
  LD_LIBRARY_PATH="$LLAMA_BIN${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$LLAMA_BIN/llama-batched-bench" -m "$MODEL" \
    -t "$THREADS" -c $((STREAMS * (PROMPT + GEN))) -npp "$PROMPT" -ntg $((GEN - 1)) -npl "1,$STREAMS" \
    --output-format jsonl > "$tmp/llama_$r.txt" 2>&1 || { cat "$tmp/llama_$r.txt" >&2; exit 1; }
done

# The tree is clean when nothing but earlier results differs from the commit.
python3 - "$tmp" "$ROUNDS" "$OUT" "$MODEL" "$THREADS" "$STREAMS" "$LAYERS" "$PROMPT" "$GEN" "$(git rev-parse --short HEAD)" \
  "$(git status --porcelain --untracked-files=no -- . ':!bench/results' | grep -q . && echo dirty || echo clean)" \
  "$(lscpu | sed -n 's/^Model name: *//p' | head -n1)" "$(nproc)" <<'PY'
import json, os, statistics, sys, datetime
tmp, rounds, out, model, threads, streams, layers, prompt, gen, commit, tree, cpu, cores = sys.argv[1:]
rounds, streams, prompt, gen = int(rounds), int(streams), int(prompt), int(gen)
single = json.load(open(f"{tmp}/single.json"))
summ = lambda v: {"median": round(statistics.median(v), 2), "min": round(min(v), 2), "max": round(max(v), 2)}
fmt = lambda d: f"{d['median']} ({d['min']}–{d['max']})"
levels = {}
for r in range(1, rounds + 1):
    p = json.load(open(f"{tmp}/pagoda_{r}.json"))
    llama = [json.loads(l[l.index("{"):]) for l in open(f"{tmp}/llama_{r}.txt") if '"n_kv_max"' in l]
    for lv in p["levels"]:
        n = lv["streams"]
        e = levels.setdefault(n, {"pagoda": [], "llamacpp": [], "profile": {}, "steps": 0})
        e["pagoda"].append(lv["per_round_output_tok_s"][0])
        prof = lv.get("op_profile")
        if prof is None:
            sys.exit(f"no op profile from Pagoda at {n} streams (a backend that does not profile?)")
        e["steps"] += prof["steps"]
        for kind, v in prof["kinds"].items():
            e["profile"][kind] = e["profile"].get(kind, 0.0) + v["seconds"]
        bb = next((x for x in llama if x["pl"] == n), None)
        if bb is None:
            tail = "".join(open(f"{tmp}/llama_{r}.txt").readlines()[-5:])
            sys.exit(f"llama-batched-bench printed no result for {n} streams (round {r}); its output ends:\n{tail}")
        # Output tokens over the whole run, prefill included: tg decode steps plus the prefill's token.
        e["llamacpp"].append(bb["pl"] * (bb["tg"] + 1) / bb["t"])
rows = []
for n, e in sorted(levels.items()):
    total = sum(e["profile"].values())
    share = {k: round(v / total, 4) for k, v in e["profile"].items()}
    moe = sum(e["profile"].get(k, 0.0) for k in ("moe_routing", "moe_dispatch", "moe_experts"))
    rows.append({"streams": n, "pagoda_output_tok_s": summ(e["pagoda"]), "llamacpp_output_tok_s": summ(e["llamacpp"]),
                 "ratio": summ([a / b for a, b in zip(e["pagoda"], e["llamacpp"])]),
                 "pagoda_ms_per_step": round(1e3 * total / e["steps"], 2), "op_share": share,
                 "routing_dispatch_share_of_moe":
                     round((e["profile"]["moe_routing"] + e["profile"]["moe_dispatch"]) / moe, 4) if moe > 0 else None})
s = single["summary"]
doc = {"workloads": f"single; concurrency at 1 and {streams} streams ({prompt}-token prompts, {gen} generated, all at once)",
       "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
       "machine": {"cpu": cpu, "cores": int(cores)}, "threads": int(threads), "pagoda_commit": commit, "tree": tree,
       "peer": single["peer"].replace("llama-bench", "llama-bench and llama-batched-bench"),
       "model": os.path.basename(model), "layers": int(layers), "rounds": rounds,
       "command": f"ROUNDS={rounds} THREADS={threads} LAYERS={layers} bash bench/moe_side_by_side.sh",
       "single": s, "concurrency": rows}
json.dump(doc, open(out + ".json", "w"), indent=2)
kinds = ["attn_matmuls", "attention", "ffn", "moe_routing", "moe_dispatch", "moe_experts", "lm_head", "norms", "embed"]
name = os.path.basename(model)
if name.startswith("qwen3-30b-a3b-"):  # the script's own model
    title = f"Qwen3-30B-A3B's shape ({layers} of 48 layers)"
    about = (f"Random weights (Q4_0, `pagoda make-model --preset qwen3-30b-a3b --layers {layers}`), 128 experts, "
             "8 per token.")
else:
    title, about = name, f"Model: {name}."
lines = [f"# Mixture of experts: {title}, {threads} threads, {rounds} rounds\n", about,
         f"Pagoda {commit} ({tree} tree) against {doc['peer']}; {cpu}, {cores} cores. Median (min–max) over the rounds.",
         f"Reproduce: `{doc['command']}`.\n",
         "## `single` (256-token prompt, 256 generated; llama-bench pp256 / tg256)\n",
         "| prefill Pagoda | prefill llama.cpp | ratio | decode Pagoda | decode llama.cpp | ratio |", "|---|---|---|---|---|---|",
         f"| {fmt(s['pagoda_prefill_tok_s'])} | {fmt(s['llamacpp_pp256_tok_s'])} | {fmt(s['prefill_ratio'])} | "
         f"{fmt(s['pagoda_decode_tok_s'])} | {fmt(s['llamacpp_tg256_tok_s'])} | {fmt(s['decode_ratio'])} |\n",
         f"## Output tok/s, all streams starting together ({prompt}-token prompts, {gen} generated; prefill included)\n",
         f"Pagoda: `pagoda bench concurrency --requests-per-stream 1`; llama.cpp: `llama-batched-bench -npp {prompt} "
         f"-ntg {gen - 1}`,",
         "output tokens (pl x (tg + 1): its decode steps and the prefill's token) over its whole time t.\n",
         "| streams | Pagoda | llama.cpp | ratio |", "|---|---|---|---|"]
for r in rows:
    lines.append(f"| {r['streams']} | {fmt(r['pagoda_output_tok_s'])} | {fmt(r['llamacpp_output_tok_s'])} | {fmt(r['ratio'])} |")
lines += ["", "## Where Pagoda's step time goes (`--profile-ops`, all rounds)\n",
          "| streams | ms/step | " + " | ".join(kinds) + " | routing + dispatch / MoE FFN |",
          "|---|---|" + "---|" * len(kinds) + "---|"]
for r in rows:
    share = r["routing_dispatch_share_of_moe"]
    lines.append(f"| {r['streams']} | {r['pagoda_ms_per_step']} | " +
                 " | ".join(f"{100 * r['op_share'].get(k, 0):.1f}%" for k in kinds) +
                 f" | {'-' if share is None else f'{100 * share:.1f}%'} |")
open(out + ".md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
