#!/usr/bin/env bash
# Peer benchmark: llama.cpp's llama-bench on the same GGUF file Pagoda uses (BENCH.md, workload `single`:
# 256-token prompt, 256 generated tokens), once per thread count, 3 repetitions each.
# Writes bench/results/<YYYY-MM-DD>-cpu-llamacpp-bench.json (machine, command, llama.cpp commit, raw
# llama-bench output, median/min/max tok/s) and prints a summary table.
#   bash bench/peer_llamacpp.sh [MODEL]        env: THREADS="1 2" REPS=3 LLAMA_BIN=<dir> OUT=<file>
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

MODEL="${1:-$(bash scripts/fetch_model.sh | tail -n1)}"
LLAMA_BIN="${LLAMA_BIN:-$(bash scripts/build_llamacpp.sh | tail -n1)}"
THREADS="${THREADS:-2 1}"
REPS="${REPS:-3}"
OUT="${OUT:-bench/results/$(date -u +%Y-%m-%d)-cpu-llamacpp-bench.json}"
BENCH="$LLAMA_BIN/llama-bench"
[ -x "$BENCH" ] || { echo "llama-bench not found in $LLAMA_BIN" >&2; exit 1; }
[ -f "$MODEL" ] || { echo "model not found: $MODEL" >&2; exit 1; }

# Percentage of CPU time that was busy (other processes: the machine is shared) over 2 seconds.
cpu_busy_pct() {
  local a b
  read -r -a a < <(grep '^cpu ' /proc/stat)
  sleep 2
  read -r -a b < <(grep '^cpu ' /proc/stat)
  local total=0 idle i
  for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
  idle=$((b[4] - a[4] + b[5] - a[5]))
  echo $(( total > 0 ? 100 * (total - idle) / total : 0 ))
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
: > "$tmp/runs.tsv"
for t in $THREADS; do
  cmd=("$BENCH" -m "$MODEL" -t "$t" -p 256 -n 256 -r "$REPS" -o json)
  echo "[peer_llamacpp] threads=$t: ${cmd[*]}" >&2
  load="$(cut -d' ' -f1-3 /proc/loadavg), cpu busy $(cpu_busy_pct)% over 2 s"
  # CPU time used by other processes during the run = all busy CPU time - llama-bench's own.
  read -r -a s0 < <(grep '^cpu ' /proc/stat)
  t0=$(date +%s.%N)
  TIMEFORMAT='%U %S'
  { time LD_LIBRARY_PATH="$LLAMA_BIN${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "${cmd[@]}" > "$tmp/t$t.json" 2> "$tmp/err"; } 2> "$tmp/time" \
    || { cat "$tmp/err" >&2; exit 1; }
  read -r -a s1 < <(grep '^cpu ' /proc/stat)
  wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  busy_j=0; for i in 1 2 3 6 7 8; do busy_j=$((busy_j + s1[i] - s0[i])); done
  hz=$(getconf CLK_TCK)
  others=$(awk -v b="$busy_j" -v hz="$hz" -v w="$wall" -v u="$(cut -d' ' -f1 "$tmp/time")" -v sy="$(cut -d' ' -f2 "$tmp/time")" \
    'BEGIN { o = b / hz - u - sy; if (o < 0) o = 0; printf "%.1f", 100 * o / w }')
  load="$load; other processes used ${others}% of one core during the run (${wall} s)"
  echo "[peer_llamacpp] $load" >&2
  printf '%s\t%s\t%s\t%s\n' "$t" "$tmp/t$t.json" "$load" \
    "llama-bench -m $(basename "$MODEL") -t $t -p 256 -n 256 -r $REPS -o json" >> "$tmp/runs.tsv"
done

commit="$(git -C "$LLAMA_BIN/../.." rev-parse HEAD 2>/dev/null || echo unknown)"
model_sha="$(sha256sum "$MODEL" | cut -d' ' -f1)"
cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -n1)"
cores="$(nproc)"
mem_kib="$(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo)"
pagoda_commit="$(git rev-parse HEAD 2>/dev/null || echo none)"

python3 - "$tmp/runs.tsv" "$OUT" "$commit" "$model_sha" "$(basename "$MODEL")" "$cpu" "$cores" "$mem_kib" \
  "$pagoda_commit" "$(uname -r)" <<'PY'
import json, statistics, sys, datetime
runs_tsv, out, commit, model_sha, model_name, cpu, cores, mem_kib, pagoda_commit, kernel = sys.argv[1:]
runs, summary = [], []
for line in open(runs_tsv):
    t, path, load, cmd = line.rstrip("\n").split("\t")
    res = json.load(open(path))
    runs.append({"threads": int(t), "command": cmd, "machine_load": load, "llama_bench": res})
    for r in res:
        test = f"pp{r['n_prompt']}" if r.get("n_gen", 0) == 0 else f"tg{r['n_gen']}"
        s = [float(x) for x in r["samples_ts"]]
        summary.append({"test": test, "threads": int(t), "median_tok_s": round(statistics.median(s), 2),
                        "min_tok_s": round(min(s), 2), "max_tok_s": round(max(s), 2),
                        "samples_tok_s": [round(x, 2) for x in s]})
doc = {
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "what": "peer baseline: llama.cpp llama-bench, BENCH.md workload 'single' (256-token prompt, 256 generated)",
    "machine": {"cpu": cpu, "cores": int(cores), "memory_gib": round(int(mem_kib) / 2**20, 1), "kernel": kernel,
                "note": "shared, noisy machine: compare only with figures from the same run"},
    "peer": {"package": "llama-cpp-python 0.3.36 (vendored llama.cpp)", "llama_cpp_commit": commit,
             "build": "Release, BUILD_SHARED_LIBS=ON, GGML_NATIVE=ON, CPU (scripts/build_llamacpp.sh)"},
    "model": {"file": model_name, "sha256": model_sha},
    "pagoda_commit": pagoda_commit,
    "command": "bash bench/peer_llamacpp.sh",
    "summary": summary,
    "runs": runs,
}
with open(out, "w") as f:
    json.dump(doc, f, indent=1)
    f.write("\n")
print(f"{'test':8s} {'threads':>7s} {'median tok/s':>13s} {'min-max':>20s}")
for s in summary:
    print(f"{s['test']:8s} {s['threads']:7d} {s['median_tok_s']:13.2f} {s['min_tok_s']:>9.2f}-{s['max_tok_s']:<9.2f}")
print(f"wrote {out}")
PY
