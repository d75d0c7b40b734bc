#!/usr/bin/env bash
# BENCH.md serving workloads in process (requests straight into an EngineLoop, no HTTP): `pagoda bench
# mixed-prefill` (packed vs padded prefill), `concurrency` (closed loop at 1/4/16/64 streams) and
# `shared-prefix` (TTFT with and without prefix caching), each repeated and interleaved inside its own
# invocation. Writes bench/results/<date>-cpu-serving.{json,md} with the commit, the machine, the exact
# commands and the numbers.
#   bash bench/serving_in_process.sh [MODEL]     env: THREADS=2 PAGODA=<binary> OUT=<prefix>
# Sized to finish in under ~10 minutes on a 2-core machine: fewer prompts / requests than BENCH.md's
# defaults (override with MIXED_ARGS, CONC_ARGS, SHARED_ARGS).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

MODEL="${1:-$(bash scripts/fetch_model.sh | tail -n1)}"
THREADS="${THREADS:-2}"
OUT="${OUT:-bench/results/$(date -u +%Y-%m-%d)-cpu-serving}"
PAGODA="${PAGODA:-build/cli/pagoda}"
[ -x "$PAGODA" ] || bash scripts/build.sh >&2
MIXED_ARGS="${MIXED_ARGS:---prompts 16 --min-len 8 --max-len 1024 --budget 2048 --repeats 3 --seed 1}"
CONC_ARGS="${CONC_ARGS:---streams 1,4,16,64 --prompt-len 128 --max-tokens 128 --requests-per-stream 1 --rounds 3}"
SHARED_ARGS="${SHARED_ARGS:---prefix-len 512 --requests 8 --user-len 32 --max-tokens 16 --rounds 3}"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
declare -A CMDS
run() {  # name args...
  local name="$1"; shift
  local cmd="$PAGODA bench $name --model $MODEL --threads $THREADS $* --json $tmp/$name.json"
  CMDS[$name]="pagoda bench $name --threads $THREADS $*"
  echo "[serving] $cmd" >&2
  local t0=$SECONDS
  # shellcheck disable=SC2086
  $cmd | tee "$tmp/$name.txt" >&2
  echo "$((SECONDS - t0))" > "$tmp/$name.secs"
}
run mixed-prefill $MIXED_ARGS
run concurrency $CONC_ARGS
run shared-prefix $SHARED_ARGS

python3 - "$tmp" "$OUT" "$MODEL" "$THREADS" "$(git rev-parse --short HEAD)" \
  "$(git status --porcelain --untracked-files=no | grep -q . && echo dirty || echo clean)" \
  "$(lscpu | sed -n 's/^Model name: *//p' | head -n1)" "$(nproc)" \
  "${CMDS[mixed-prefill]}" "${CMDS[concurrency]}" "${CMDS[shared-prefix]}" <<'PY'
import json, sys, datetime, os
tmp, out, model, threads, commit, tree, cpu, cores, c_mixed, c_conc, c_shared = sys.argv[1:]
load = lambda n: json.load(open(f"{tmp}/{n}.json"))
secs = lambda n: int(open(f"{tmp}/{n}.secs").read())
mixed, conc, shared = load("mixed-prefill"), load("concurrency"), load("shared-prefix")
doc = {
    "workloads": "mixed-prefill, concurrency, shared-prefix (in process, EngineLoop with its engine thread)",
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "machine": {"cpu": cpu, "cores": int(cores)}, "threads": int(threads),
    "pagoda_commit": commit, "working_tree": tree, "model": os.path.basename(model),
    "commands": {"mixed-prefill": c_mixed, "concurrency": c_conc, "shared-prefix": c_shared},
    "run_seconds": {n: secs(n) for n in ("mixed-prefill", "concurrency", "shared-prefix")},
    "mixed_prefill": mixed, "concurrency": conc, "shared_prefix": shared,
}
for part in (mixed, conc, shared):
    part["model"] = os.path.basename(part["model"])
json.dump(doc, open(out + ".json", "w"), indent=2)

f = lambda d, k=1: f"{d['median']:.{k}f} ({d['min']:.{k}f}–{d['max']:.{k}f})"
runs = mixed["runs"]
ex = {r["mode"]: r["executed_tokens"] for r in runs}
st = {r["mode"]: r["steps"] for r in runs}
conc_rows = "\n".join(
    f"| {l['streams']} | {f(l['output_tok_s'])} | {f(l['mean_tpot_ms'], 2)} | {f(l['mean_ttft_ms'])} | "
    f"{f(l['output_tok_s_vs_1_stream'], 2) if 'output_tok_s_vs_1_stream' in l else '–'} |" for l in conc["levels"])
top = conc["levels"][-1]
md = f"""# Serving workloads in process on {cpu}, {threads} threads ({doc['date'][:10]})

Pagoda {commit} (working tree {tree}), {doc['model']}, backend: {mixed['backend']}.
Requests go straight into a `scheduler::EngineLoop` with its engine thread running; times are steady_clock
from `submit()` to the token events of the request's sink. Prompts are random token ids (1000..vocab-1000),
greedy decoding with `ignore_eos`. Median (min–max) over repeats interleaved inside one invocation. The
machine is shared with other builds and tests: absolute numbers are noisy, the ratios are the result.

Reduced from BENCH.md's sizes to keep the whole script under ~10 minutes on 2 cores: mixed-prefill uses
{mixed['prompts']} prompts (not 64), concurrency {conc['requests_per_stream']} request(s) per stream per round,
shared-prefix {shared['requests']} requests per run.

## mixed-prefill: packed vs padded prefill
{mixed['prompts']} prompts of {mixed['min_len']}..{mixed['max_len']} tokens (uniform, seed {mixed['seed']}, {mixed['total_prompt_tokens']} prompt tokens),
`max_tokens` 1, all queued before the engine thread starts, budget {mixed['budget']} tokens/step, chunked prefill on,
prefix caching off; {mixed['repeats']} repeats of each mode in ABBA order.

| | wall time (s) | prompt tok/s | tokens executed | steps |
|---|---|---|---|---|
| packed (default) | {f(mixed['packed_wall_s'], 2)} | {f(mixed['packed_prompt_tok_s'], 0)} | {ex.get('packed')} | {st.get('packed')} |
| padded (`padded_prefill` ablation) | {f(mixed['padded_wall_s'], 2)} | {f(mixed['padded_prompt_tok_s'], 0)} | {ex.get('padded')} | {st.get('padded')} |

**padded / packed wall time: {f(mixed['padded_over_packed'], 2)}** (BENCH.md goal ≥ 2x). Tokens executed are counted
by a forwarding backend: the padded runs compute {ex.get('padded', 0) - ex.get('packed', 0)} pad tokens on top of the
{ex.get('packed')} prompt tokens ({ex.get('padded', 0) / max(1, ex.get('packed', 1)):.2f}x the tokens).

## concurrency: closed loop
{conc['prompt_len']}-token prompts, {conc['max_tokens']} output tokens each; each of C streams keeps one request in flight
({conc['requests_per_stream']} per stream), levels run in order in each of {conc['rounds']} rounds; prefix caching off.
Output tok/s = all output tokens / (last finish − first submit); TPOT = (last token − first token) / (tokens − 1),
averaged over requests; the ratio is per round against that round's 1-stream run.

| streams | output tok/s | mean TPOT (ms) | mean TTFT (ms) | tok/s vs 1 stream |
|---|---|---|---|---|
{conc_rows}

**{top['streams']} streams vs 1: {f(top['output_tok_s_vs_1_stream'], 2)}x** aggregate output tok/s (BENCH.md goal ≥ 5x).

## shared-prefix: TTFT with and without prefix caching
{shared['prefix_len']}-token shared system prompt + {shared['user_len']}-token distinct user turns, `max_tokens` {shared['max_tokens']},
{shared['requests']} requests sent one after another (each waits for the previous to finish, so TTFT has no queueing),
with a fresh engine per run; {shared['rounds']} rounds alternating caching on / off (ABBA).
The first request of each caching-on run finds a cold cache and is **excluded** from the warm median (shown apart).

| | TTFT (ms) | n |
|---|---|---|
| prefix caching on, warm requests | {f(shared['ttft_ms_caching_on_warm'])} | {shared['ttft_ms_caching_on_warm']['n']} |
| prefix caching on, first (cold) request | {f(shared['ttft_ms_caching_on_cold'])} | {shared['ttft_ms_caching_on_cold']['n']} |
| prefix caching off | {f(shared['ttft_ms_caching_off'])} | {shared['ttft_ms_caching_off']['n']} |

**TTFT off / on: {shared['off_over_on_pooled_medians']:.2f}x** (pooled medians; per round {f(shared['off_over_on_per_round'], 2)}),
BENCH.md goal ≥ 3x. Caching on served {shared['cached_prompt_tokens']} prompt tokens from the cache
(block hits {shared['prefix_hits']} / queries {shared['prefix_queries']}).

## Reproduce
`THREADS={threads} bash bench/serving_in_process.sh` runs (run time in s: {doc['run_seconds']}):
- `{c_mixed}`
- `{c_conc}`
- `{c_shared}`
"""
open(out + ".md", "w").write(md)
print(md)
PY
