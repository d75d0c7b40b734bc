#!/usr/bin/env bash
# BENCH.md's `single` workload per model family, Pagoda next to llama.cpp: for each preset, a random-weight
# GGUF of the family's real shape from `pagoda make-model` (phi3 cut to 8 layers so each family is ~0.5-1B
# parameters, except gemma2-2b), then bench/single_side_by_side.sh on it. Writes
# bench/results/<date>-cpu-families.{json,md}: one row per family.
#   bash bench/families_side_by_side.sh        env: ROUNDS=2 THREADS=2 LLAMA_BIN=<dir> MODELS_DIR=<dir>
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ROUNDS="${ROUNDS:-2}"
THREADS="${THREADS:-2}"
MODELS_DIR="${MODELS_DIR:-$HOME/.cache/pagoda/bench-models}"
OUT="${OUT:-bench/results/$(date -u +%Y-%m-%d)-cpu-families}"
PAGODA="${PAGODA:-build/cli/pagoda}"
VOCABS="$(ls -d build/_deps/llama_jinja-src/*/vendor/llama.cpp/models | head -n1)"
mkdir -p "$MODELS_DIR"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# preset | extra make-model arguments (llama.cpp wants Phi-3's own vocabulary for a model named phi3)
PRESETS=("qwen2.5-0.5b|" "qwen3-0.6b|" "phi3-mini|--layers 8 --vocab $VOCABS/ggml-vocab-phi-3.gguf" "gemma3-1b|"
         "gemma2-2b|")
for entry in "${PRESETS[@]}"; do
  preset="${entry%%|*}" extra="${entry#*|}"
  # The cached file's name carries its make-model arguments, so changing them makes a new model.
  model="$MODELS_DIR/$preset${extra:+-$(printf '%s' "$extra" | sha256sum | cut -c1-8)}.gguf"
  # shellcheck disable=SC2086
  [ -f "$model" ] || "$PAGODA" make-model --preset "$preset" $extra --out "$model" >&2
  ROUNDS="$ROUNDS" THREADS="$THREADS" OUT="$tmp/$preset" bash bench/single_side_by_side.sh "$model" >&2
done

python3 - "$tmp" "$OUT" "$ROUNDS" "$THREADS" "${PRESETS[@]}" <<'PY'
import json, sys
tmp, out, rounds, threads, *presets = sys.argv[1:]
rows = []
for entry in presets:
    preset = entry.split("|")[0]
    d = json.load(open(f"{tmp}/{preset}.json"))
    rows.append({"preset": preset, "model": d["model"], **d["summary"]})
doc = {"workload": "single (256-token prompt, 256 generated tokens), per family", "rounds": int(rounds),
       "threads": int(threads), "command": f"ROUNDS={rounds} THREADS={threads} bash bench/families_side_by_side.sh",
       "families": rows}
json.dump(doc, open(out + ".json", "w"), indent=2)
f = lambda d: f"{d['median']} ({d['min']}–{d['max']})"
lines = ["| preset | prefill Pagoda | prefill llama.cpp | ratio | decode Pagoda | decode llama.cpp | ratio | decode / roofline |",
         "|---|---|---|---|---|---|---|---|"]
for r in rows:
    roof = round(100 * r["pagoda_decode_tok_s"]["median"] / r["roofline_tok_s"]["median"])
    lines.append(f"| {r['preset']} | {f(r['pagoda_prefill_tok_s'])} | {f(r['llamacpp_pp256_tok_s'])} | "
                 f"{f(r['prefill_ratio'])} | {f(r['pagoda_decode_tok_s'])} | {f(r['llamacpp_tg256_tok_s'])} | "
                 f"{f(r['decode_ratio'])} | {roof}% |")
head = (f"# `single` per model family ({rows[0]['model']} ... ), {threads} threads, {rounds} interleaved rounds\n\n"
        "Random-weight GGUFs of each family's real shape from `pagoda make-model` (phi3-mini cut to 8 layers),\n"
        "Pagoda against llama.cpp's llama-bench on the same file; tok/s, median (min–max). Reproduce: "
        f"`{doc['command']}`.\n\n")
open(out + ".md", "w").write(head + "\n".join(lines) + "\n")
print("\n".join(lines))
PY
