#!/usr/bin/env python3
"""Structured outputs' cost (issue 14), against a real pagodad on this machine:

  compile   a JSON schema compiled cold (a schema the server has not seen: one property name is fresh)
            and cached (the same schema again), from the daemon's own pagoda_grammar_compile_seconds
            (sum of the histogram, before and after one request); --schemas (20) of each.
  decode    output tokens/s at 1 and 64 concurrent streams with a JSON-schema constraint and without
            (same prompt and length: the constrained output is an array of exactly --items integers,
            the unconstrained one runs the same number of tokens with ignore_eos), --rounds (3) each;
            the ratio is what the mask costs.

Writes <out>.json and <out>.md (default bench/results/<date>-structured-outputs).
  .venv/bin/python bench/structured_outputs.py [--streams 1,64] [--rounds 3] [--items 32]
"""
import argparse
import asyncio
import datetime
import json
import pathlib
import statistics
import sys
import time
import uuid

import httpx

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "server"))
sys.path.insert(0, str(ROOT / "bench"))
from conftest import Daemon  # noqa: E402
from reliability import machine  # noqa: E402

BASE_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 16},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "email": {"type": "string", "format": "email"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 4},
        "address": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                    "required": ["city", "zip"]},
        "role": {"enum": ["admin", "user", "guest"]},
    },
    "required": ["name", "age", "email", "tags", "address", "role"],
}
PROMPT = [{"role": "user", "content": "Write a list of numbers."}]


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, file=sys.stderr, flush=True)


def compile_cost(d, n):
    def one(schema):
        before = d.metric("pagoda_grammar_compile_seconds_sum")
        status, body = d.post_json("/v1/chat/completions", {
            "model": d.model_id, "messages": PROMPT, "max_tokens": 1,
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}})
        assert status == 200, body
        return (d.metric("pagoda_grammar_compile_seconds_sum") - before) * 1000

    schemas = []
    for _ in range(n):
        s = json.loads(json.dumps(BASE_SCHEMA))
        s["properties"]["f_" + uuid.uuid4().hex[:12]] = {"type": "integer"}
        schemas.append(s)
    cold = [one(s) for s in schemas]
    cached = [one(s) for s in schemas]
    return {"cold_ms": {"median": statistics.median(cold), "max": max(cold)},
            "cached_ms": {"median": statistics.median(cached), "max": max(cached)}, "schemas": n}


async def decode_run(d, streams, items, constrained, max_tokens):
    schema = {"type": "object", "properties": {"numbers": {
        "type": "array", "items": {"type": "integer", "minimum": 100, "maximum": 999}, "minItems": items, "maxItems": items}},
        "required": ["numbers"], "additionalProperties": False}
    async with httpx.AsyncClient(timeout=900, limits=httpx.Limits(max_connections=streams + 4)) as client:
        async def one(i, max_tokens):
            body = {"model": d.model_id, "messages": PROMPT, "max_tokens": max_tokens, "temperature": 0.7, "seed": i}
            if constrained:
                body["response_format"] = {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}
            else:
                body["ignore_eos"] = True
            r = await client.post(d.base_url + "/v1/chat/completions", json=body)
            r.raise_for_status()
            b = r.json()
            if constrained:
                assert len(json.loads(b["choices"][0]["message"]["content"])["numbers"]) == items
            return b["usage"]["completion_tokens"]

        t0 = time.monotonic()
        tokens = await asyncio.gather(*(one(i, max_tokens) for i in range(streams)))
        return sum(tokens), time.monotonic() - t0, tokens


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", default="1,64")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--items", type=int, default=32)
    ap.add_argument("--schemas", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    d = Daemon(["--threads", str(args.threads), "--speculative", "off"])
    result = {"machine": machine(), "date": datetime.date.today().isoformat(), "decode": {}}
    try:
        log("compile: cold vs cached")
        result["compile"] = compile_cost(d, args.schemas)
        log(result["compile"])
        for streams in [int(x) for x in args.streams.split(",")]:
            row = {}
            max_tokens = 8 * args.items + 32  # room for the array (a 3-digit number and ", " are up to 5 tokens); the grammar ends it
            for constrained in (True, False):
                rates = []
                for _ in range(args.rounds):
                    total, wall, per = asyncio.run(decode_run(d, streams, args.items, constrained, max_tokens))
                    rates.append(total / wall)
                if constrained:
                    max_tokens = round(statistics.median(per))  # the unconstrained run writes as many tokens
                key = "json_schema" if constrained else "none"
                row[key] = {"tok_s_median": statistics.median(rates), "tok_s_rounds": rates,
                            "tokens_per_request": statistics.median(per)}
                log(f"{streams} streams, {key}: {statistics.median(rates):.1f} tok/s (rounds {rates})")
            row["constrained_over_none"] = row["json_schema"]["tok_s_median"] / row["none"]["tok_s_median"]
            result["decode"][str(streams)] = row
    finally:
        d.stop()
    out = args.out or str(ROOT / "bench" / "results" / f"{datetime.date.today().isoformat()}-structured-outputs")
    pathlib.Path(out + ".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# Structured outputs: cost of the grammar ({result['date']})", "", f"Machine: {result['machine']}.", "",
             "Command: `.venv/bin/python bench/structured_outputs.py " + " ".join(sys.argv[1:]) + "`", "",
             "| | median | max |", "|---|---|---|",
             f"| compile, cold (ms) | {result['compile']['cold_ms']['median']:.1f} | {result['compile']['cold_ms']['max']:.1f} |",
             f"| compile, cached (ms) | {result['compile']['cached_ms']['median']:.3f} | {result['compile']['cached_ms']['max']:.3f} |",
             "", "| streams | json_schema tok/s | none tok/s | ratio |", "|---|---|---|---|"]
    for streams, row in result["decode"].items():
        lines.append(f"| {streams} | {row['json_schema']['tok_s_median']:.1f} | {row['none']['tok_s_median']:.1f} | "
                     f"{row['constrained_over_none']:.3f} |")
    pathlib.Path(out + ".md").write_text("\n".join(lines) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
