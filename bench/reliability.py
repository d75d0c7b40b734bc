#!/usr/bin/env python3
"""Reliability under abuse (issue 15): overload, faults and drain against a real pagodad, with figures.

  overload  open-loop Poisson load at --factor (10) x the sustainable request rate for --seconds (60):
            every request is answered (200, or 429 / 503 quickly), every accepted one is correct (its text is
            the one a quiet server gives: greedy decoding is batch-invariant), the daemon stays up and its
            memory bounded (peak RSS, VmHWM). The sustainable rate is measured first: closed-loop clients
            (--calibrate-clients, 64: a full batch) for 20 s.
  faults    --requests (10,000) requests, each with a fault at a random point: HTTP clients that disconnect
            (before the answer, mid-stream after k chunks), gRPC calls cancelled after k messages or given a
            short deadline, and plain requests that must come back whole. Afterwards the daemon must be
            idle: zero KV blocks referenced, no running or queued sequence, nothing in flight (/metrics),
            and still serving the reference text.
  drain     --streams (32) running streams, then SIGTERM: they finish within the grace period, requests
            arriving during the drain get 503 / UNAVAILABLE (or, once the ports close, a refused
            connection), and the daemon exits 0. Drain time reported.
  soak      --seconds (1800 for this scenario) of mixed load from --concurrency (24) closed-loop clients:
            HTTP completions and streamed chat, gRPC streams, long prompts that share prefixes (prefix
            cache, chunked prefill, preemption), n > 1, logprobs, stop strings, seeded sampling, and a few
            disconnects and cancels. The daemon's RSS and KV usage are sampled every --sample-s (5) and
            plotted (<out>.png, gnuplot); "no growth": the median RSS of the last 5 minutes is within
            --max-growth (2%) of minutes 5-10's, and the daemon is idle (0 KV blocks used) afterwards.

Every scenario starts its own daemon (tests/server/conftest.py's Daemon: PAGODAD, PAGODA_MODEL). Writes
<out>.json and <out>.md (default bench/results/<date>-reliability-<scenario>); `all` runs the three.
The load generator is Python asyncio on the same machine: on a small machine it competes for the cores,
which is part of the overload, and the report says the machine.

  .venv/bin/python bench/reliability.py overload [--factor 10] [--seconds 60] [--max-queue 32]
  .venv/bin/python bench/reliability.py faults [--requests 10000] [--concurrency 64]
  .venv/bin/python bench/reliability.py drain [--streams 32]
  .venv/bin/python bench/reliability.py soak [--seconds 1800] [--concurrency 24]
"""
import argparse
import asyncio
import datetime
import json
import os
import pathlib
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import grpc
import httpx

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "server"))
from conftest import Daemon, grpc_stubs  # noqa: E402

PROMPTS = [
    "The capital of France is",
    "Write a short poem about the sea:",
    "List three uses of copper:",
    "Once upon a time, in a village by the mountains,",
    "Explain what a hash table is in one paragraph:",
    "The quick brown fox",
    "Translate to French: good morning, my friend.",
    "def fibonacci(n):",
]
MAX_TOKENS = 32


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, file=sys.stderr, flush=True)


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def rss_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def machine():
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def stubs():
    m = grpc_stubs(tempfile.mkdtemp(prefix="pagoda-reliability-stubs-"))
    return m["pagoda_pb2"], m["pagoda_pb2_grpc"]


def idle_state(d):
    names = ("pagoda_kv_blocks_used", "pagoda_running_sequences", "pagoda_queue_depth", "pagoda_requests_in_flight")
    return {n: d.metric(n) for n in names}


def wait_idle(d, timeout=60):
    deadline = time.time() + timeout
    state = idle_state(d)
    while time.time() < deadline and any(state.values()):
        time.sleep(0.2)
        state = idle_state(d)
    return state


def completion_body(d, prompt, max_tokens=MAX_TOKENS, stream=False):
    return {"model": d.model_id, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True,
            "stream": stream}


async def read_sse(client, url, body):
    """POSTs a streaming request and reads it to the end: (status, saw [DONE], the last finish_reason,
    the text of choice 0, usage.completion_tokens or None)."""
    text, done, finish, usage = "", False, None, None
    async with client.stream("POST", url, json=body) as r:
        async for line in r.aiter_lines():
            if line.startswith("data: [DONE]"):
                done = True
            elif line.startswith("data: "):
                c = json.loads(line[6:])
                if c.get("choices"):
                    choice = c["choices"][0]
                    text += choice.get("text") or (choice.get("delta") or {}).get("content") or ""
                    finish = choice.get("finish_reason") or finish
                if c.get("usage"):
                    usage = c["usage"]["completion_tokens"]
        return r.status_code, done, finish, text, usage


def references(d):
    """Each prompt's greedy text from the quiet server, one request at a time."""
    out = {}
    for p in PROMPTS:
        status, body = d.post_json("/v1/completions", completion_body(d, p), timeout=600)
        assert status == 200, body
        out[p] = body["choices"][0]["text"]
    return out


# ------------------------------------------------------------------------------------------- overload


async def calibrate(d, clients, seconds):
    done = 0
    stop_at = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=clients)) as client:
        async def worker(i):
            nonlocal done
            while time.monotonic() < stop_at:
                r = await client.post(d.base_url + "/v1/completions", json=completion_body(d, PROMPTS[i % len(PROMPTS)]))
                if r.status_code == 429:  # more clients than the queue takes: try again shortly
                    await asyncio.sleep(0.05)
                    continue
                r.raise_for_status()
                done += 1
        t0 = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(clients)))
        return done / (time.monotonic() - t0)


async def overload_run(d, rate, seconds, refs, seed):
    rng = random.Random(seed)
    results = []
    rss_samples = []
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=4096,
                                                                  max_keepalive_connections=256)) as client:
        async def one(i):
            prompt = PROMPTS[i % len(PROMPTS)]
            t0 = time.monotonic()
            try:
                r = await client.post(d.base_url + "/v1/completions", json=completion_body(d, prompt))
                status, body = r.status_code, r.json()
            except httpx.HTTPError as e:
                status, body = f"error:{type(e).__name__}", None
            latency = time.monotonic() - t0
            correct = None
            if status == 200:
                correct = body["choices"][0]["text"] == refs[prompt] and body["usage"]["completion_tokens"] == MAX_TOKENS
            results.append({"status": status, "latency": latency, "correct": correct})

        async def sample_rss():
            while True:
                rss_samples.append(rss_kib(d.proc.pid, "VmRSS") or 0)
                await asyncio.sleep(0.5)

        sampler = asyncio.create_task(sample_rss())
        tasks = []
        t_end = time.monotonic() + seconds
        next_t = time.monotonic()
        i = 0
        while next_t < t_end:
            now = time.monotonic()
            if next_t > now:
                await asyncio.sleep(next_t - now)
            tasks.append(asyncio.create_task(one(i)))
            i += 1
            next_t += rng.expovariate(rate)
        await asyncio.gather(*tasks)
        sampler.cancel()
    return results, rss_samples


def overload(args):
    d = Daemon(["--max-queue", str(args.max_queue), "--threads", str(args.threads)])
    try:
        refs = references(d)
        rss_idle = rss_kib(d.proc.pid, "VmRSS")
        log("calibrating the sustainable rate")
        rate = asyncio.run(calibrate(d, args.calibrate_clients, 20))
        log(f"sustainable: {rate:.2f} req/s; offering {args.factor}x = {rate * args.factor:.1f} req/s for {args.seconds} s")
        t0 = time.monotonic()
        results, rss = asyncio.run(overload_run(d, rate * args.factor, args.seconds, refs, args.seed))
        wall = time.monotonic() - t0
        alive = d.proc.poll() is None
        idle = wait_idle(d)
        health = d.request("GET", "/health")[0]
        hwm = rss_kib(d.proc.pid, "VmHWM")
    finally:
        d.stop()
    by_status = {}
    for r in results:
        by_status[str(r["status"])] = by_status.get(str(r["status"]), 0) + 1
    ok = [r for r in results if r["status"] == 200]
    refused = [r for r in results if r["status"] in (429, 503)]
    summary = {
        "scenario": "overload", "machine": machine(), "date": datetime.date.today().isoformat(),
        "flags": {"max_queue": args.max_queue, "threads": args.threads, "max_tokens": MAX_TOKENS},
        "sustainable_rps": rate, "offered_rps": rate * args.factor, "factor": args.factor, "seconds": args.seconds,
        "wall_s": wall, "requests": len(results), "by_status": by_status,
        "accepted": len(ok), "accepted_correct": sum(1 for r in ok if r["correct"]),
        "accepted_rps": len(ok) / wall,
        "accepted_latency_s": {"p50": pct([r["latency"] for r in ok], 50), "p99": pct([r["latency"] for r in ok], 99),
                               "max": max((r["latency"] for r in ok), default=None)},
        "refused_latency_ms": {k: (v * 1000 if v is not None else None) for k, v in
                               (("p50", pct([r["latency"] for r in refused], 50)),
                                ("p99", pct([r["latency"] for r in refused], 99)),
                                ("max", max((r["latency"] for r in refused), default=None)))},
        "rss_mib": {"idle": rss_idle / 1024, "max_sampled": max(rss) / 1024, "peak_vmhwm": hwm / 1024},
        "daemon_alive": alive, "health_after": health, "idle_after": idle, "exit_code": d.proc.returncode,
    }
    summary["pass"] = (alive and health == 200 and summary["accepted_correct"] == len(ok) and not any(idle.values())
                       and all(k in ("200", "429", "503") for k in by_status) and d.proc.returncode == 0)
    return summary


# --------------------------------------------------------------------------------------------- faults

FAULTS = ["http_disconnect_before_answer", "http_stream_disconnect", "grpc_cancel", "grpc_deadline", "http_whole",
          "grpc_whole"]


async def http_raw(d, body, read_chunks, wait_s):
    """A raw HTTP request on its own connection, dropped after wait_s (non-streaming) or read_chunks
    chunks of a stream. Returns what happened."""
    reader, writer = await asyncio.open_connection("127.0.0.1", d.http_port)
    data = json.dumps(body).encode()
    writer.write(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
    await writer.drain()
    outcome = "dropped"
    try:
        if body["stream"]:
            got = 0
            while got < read_chunks:
                line = await asyncio.wait_for(reader.readline(), 60)
                if not line:
                    outcome = "server_closed"
                    break
                if line.startswith(b"data: "):
                    got += 1
                    if line.startswith(b"data: [DONE]"):
                        outcome = "finished_first"
                        break
        else:
            await asyncio.sleep(wait_s)
    finally:
        writer.transport.abort()  # a reset, as a killed client gives
    return outcome


async def faults_run(d, pb, requests, concurrency, refs, seed):
    pagoda_pb2, pagoda_pb2_grpc = pb
    rng = random.Random(seed)
    counts = {k: {} for k in FAULTS}
    wrong = []
    sem = asyncio.Semaphore(concurrency)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{d.grpc_port}") as channel, \
            httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=concurrency)) as client:
        stub = pagoda_pb2_grpc.GenerationStub(channel)

        async def one(i):
            kind = rng.choice(FAULTS)
            prompt = rng.choice(PROMPTS)
            max_tokens = rng.randint(1, 48)
            k = rng.randint(0, 24)
            wait_s = rng.uniform(0, 0.3)
            async with sem:
                try:
                    if kind == "http_disconnect_before_answer":
                        outcome = await http_raw(d, completion_body(d, prompt, max_tokens), 0, wait_s)
                    elif kind == "http_stream_disconnect":
                        outcome = await http_raw(d, completion_body(d, prompt, max_tokens, stream=True), k, 0)
                    elif kind in ("grpc_cancel", "grpc_deadline", "grpc_whole"):
                        req = pagoda_pb2.GenerateRequest(text=prompt)
                        req.stop.max_tokens = max_tokens
                        req.stop.ignore_eos = True
                        req.sampling.temperature = 0  # greedy, as the references
                        timeout = rng.uniform(0.01, 0.5) if kind == "grpc_deadline" else 300
                        call = stub.Generate(req, timeout=timeout)
                        got, text, tokens = 0, "", 0
                        outcome = "finished"
                        try:
                            async for msg in call:
                                got += 1
                                text += msg.text
                                if msg.finish_reason:
                                    tokens = msg.usage.completion_tokens
                                if kind == "grpc_cancel" and got >= k:
                                    call.cancel()
                                    outcome = "cancelled"
                                    break
                        except grpc.aio.AioRpcError as e:
                            outcome = e.code().name
                        if kind == "grpc_whole" and (outcome != "finished" or tokens != max_tokens
                                                     or not refs[prompt].startswith(text)):
                            wrong.append((kind, prompt, max_tokens, outcome, text))
                    else:  # http_whole
                        r = await client.post(d.base_url + "/v1/completions", json=completion_body(d, prompt, max_tokens))
                        body = r.json()
                        text = body["choices"][0]["text"] if r.status_code == 200 else ""
                        outcome = str(r.status_code)
                        if r.status_code != 200 or body["usage"]["completion_tokens"] != max_tokens \
                                or not refs[prompt].startswith(text):
                            wrong.append((kind, prompt, max_tokens, outcome, text))
                except (OSError, asyncio.TimeoutError, httpx.HTTPError) as e:
                    outcome = f"client_error:{type(e).__name__}"
                    if kind.endswith("whole"):
                        wrong.append((kind, prompt, max_tokens, outcome, ""))
            counts[kind][outcome] = counts[kind].get(outcome, 0) + 1

        await asyncio.gather(*(one(i) for i in range(requests)))
    return counts, wrong


def faults(args):
    pb = stubs()
    d = Daemon(["--threads", str(args.threads)])
    try:
        # References long enough for any max_tokens drawn (a prefix of the greedy text).
        refs = {}
        for p in PROMPTS:
            status, body = d.post_json("/v1/completions", completion_body(d, p, 48), timeout=600)
            refs[p] = body["choices"][0]["text"]
        t0 = time.monotonic()
        counts, wrong = asyncio.run(faults_run(d, pb, args.requests, args.concurrency, refs, args.seed))
        wall = time.monotonic() - t0
        alive = d.proc.poll() is None
        idle = wait_idle(d)
        status, body = d.post_json("/v1/completions", completion_body(d, PROMPTS[0], 48), timeout=600)
        still_right = status == 200 and body["choices"][0]["text"] == refs[PROMPTS[0]]
        blocks_total = d.metric("pagoda_kv_blocks_total")
        hwm = rss_kib(d.proc.pid, "VmHWM")
    finally:
        d.stop()
    summary = {
        "scenario": "faults", "machine": machine(), "date": datetime.date.today().isoformat(),
        "requests": args.requests, "concurrency": args.concurrency, "wall_s": wall, "outcomes": counts,
        "wrong_whole_requests": wrong[:20], "wrong_count": len(wrong), "daemon_alive": alive,
        "idle_after": idle, "kv_blocks_total": blocks_total, "reference_text_after": still_right,
        "peak_rss_mib": hwm / 1024, "exit_code": d.proc.returncode,
    }
    summary["pass"] = alive and not any(idle.values()) and still_right and not wrong and d.proc.returncode == 0
    return summary


# ---------------------------------------------------------------------------------------------- drain


async def drain_run(d, pb, streams, grace_s):
    pagoda_pb2, pagoda_pb2_grpc = pb
    results = []
    refused = {}
    async with httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=streams + 8)) as client:
        async def stream(i):
            body = completion_body(d, PROMPTS[i % len(PROMPTS)], 64, stream=True)
            text, done, finish = "", False, None
            try:
                _, done, finish, text, _ = await read_sse(client, d.base_url + "/v1/completions", body)
            except httpx.HTTPError as e:
                finish = f"error:{type(e).__name__}"
            results.append({"done": done, "finish": finish, "chars": len(text)})

        async def newcomer():
            t0 = time.monotonic()
            try:
                r = await client.post(d.base_url + "/v1/completions", json=completion_body(d, PROMPTS[0], 4))
                key = f"http {r.status_code}"
            except httpx.ConnectError:
                key = "http connection refused"
            except httpx.HTTPError as e:
                key = f"http {type(e).__name__}"
            refused.setdefault(key, []).append(time.monotonic() - t0)
            t0 = time.monotonic()
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{d.grpc_port}") as ch:
                    req = pagoda_pb2.GenerateRequest(text=PROMPTS[0])
                    req.stop.max_tokens = 4
                    async for _ in pagoda_pb2_grpc.GenerationStub(ch).Generate(req, timeout=10):
                        pass
                key = "grpc OK"
            except grpc.aio.AioRpcError as e:
                key = f"grpc {e.code().name}"
            refused.setdefault(key, []).append(time.monotonic() - t0)

        tasks = [asyncio.create_task(stream(i)) for i in range(streams)]
        # Every stream has started (tokens flowing) before the signal.
        deadline = time.monotonic() + 120
        while d.metric("pagoda_running_sequences") < streams and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        t_sig = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.2)
        while d.proc.poll() is None and time.monotonic() - t_sig < grace_s + 10:
            await newcomer()
            await asyncio.sleep(0.1)
        while d.proc.poll() is None and time.monotonic() - t_sig < grace_s + 15:
            await asyncio.sleep(0.05)
        drain_s = time.monotonic() - t_sig
        await asyncio.gather(*tasks)
    return results, refused, drain_s


def drain(args):
    grace = 30
    pb = stubs()
    d = Daemon(["--threads", str(args.threads), "--grace-period-s", str(grace)])
    try:
        results, refused, drain_s = asyncio.run(drain_run(d, pb, args.streams, grace))
        rc = d.proc.wait(timeout=30)
    finally:
        d.stop()
    finished = sum(1 for r in results if r["done"] and r["finish"] == "length")
    summary = {
        "scenario": "drain", "machine": machine(), "date": datetime.date.today().isoformat(),
        "streams": args.streams, "max_tokens": 64, "grace_period_s": grace,
        "streams_finished_whole": finished, "stream_results": results,
        "newcomers": {k: {"count": len(v), "p50_ms": pct(v, 50) * 1000, "max_ms": max(v) * 1000}
                      for k, v in refused.items()},
        "sigterm_to_exit_s": drain_s, "exit_code": rc,
    }
    accepted_newcomers = [k for k in refused if k in ("http 200", "grpc OK")]
    summary["pass"] = finished == args.streams and rc == 0 and not accepted_newcomers and drain_s < grace
    return summary


# ----------------------------------------------------------------------------------------------- soak

# Long prompts: one shared preamble (its KV blocks are cached and reused by the prefix cache) under
# several different tails, so requests share a prefix but not a whole prompt.
PREAMBLE = " ".join(PROMPTS) * 32  # ~2,000 tokens
LONG_TAILS = [" Summarise the above in one sentence:", " Which line mentions copper?", " Continue the story:"]
SOAK_KINDS = ["http_greedy", "http_chat_stream_sampled", "grpc_greedy", "long_prompt", "http_n2_logprobs",
              "http_stop_string", "fault_disconnect", "fault_grpc_cancel"]
SOAK_WEIGHTS = [20, 20, 20, 10, 10, 8, 6, 6]
SAMPLED_SERIES = ("pagoda_kv_blocks_used", "pagoda_kv_blocks_cached", "pagoda_kv_blocks_total",
                  "pagoda_running_sequences", "pagoda_queue_depth", "pagoda_requests_in_flight",
                  "pagoda_generation_tokens_total", "pagoda_preemptions")


def parse_metrics(text):
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+)(\{[^}]*\})? ([0-9.eE+-]+)$", line)
        if m and m.group(1) in SAMPLED_SERIES:
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))  # summed over labels
    return out


async def soak_run(d, pb, seconds, concurrency, sample_s, refs, long_refs, seed):
    pagoda_pb2, pagoda_pb2_grpc = pb
    rng = random.Random(seed)
    counts = {k: {} for k in SOAK_KINDS}
    wrong = []
    samples = []
    t0 = time.monotonic()
    stop_at = t0 + seconds

    def note(kind, outcome, ok=True, detail=None):
        counts[kind][outcome] = counts[kind].get(outcome, 0) + 1
        if not ok:
            wrong.append((kind, outcome, detail))

    async with grpc.aio.insecure_channel(f"127.0.0.1:{d.grpc_port}") as channel, \
            httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=concurrency + 4)) as client:
        stub = pagoda_pb2_grpc.GenerationStub(channel)

        async def grpc_call(prompt, max_tokens, cancel_after=None):
            req = pagoda_pb2.GenerateRequest(text=prompt)
            req.stop.max_tokens = max_tokens
            req.stop.ignore_eos = True
            req.sampling.temperature = 0
            call = stub.Generate(req, timeout=600)
            text, tokens, got = "", 0, 0
            async for msg in call:
                got += 1
                text += msg.text
                if msg.finish_reason:
                    tokens = msg.usage.completion_tokens
                if cancel_after is not None and got >= cancel_after:
                    call.cancel()
                    return "cancelled", text, tokens
            return "finished", text, tokens

        async def one(kind):
            prompt = rng.choice(PROMPTS)
            max_tokens = rng.randint(1, 64)
            if kind == "http_stop_string" and len(refs[prompt]) < 16:
                kind = "http_greedy"  # too short a reference to cut a stop string from
            if kind == "http_greedy":
                r = await client.post(d.base_url + "/v1/completions", json=completion_body(d, prompt, max_tokens))
                b = r.json()
                ok = (r.status_code == 200 and b["usage"]["completion_tokens"] == max_tokens
                      and refs[prompt].startswith(b["choices"][0]["text"]))
                note(kind, str(r.status_code), ok, (prompt, max_tokens))
            elif kind == "http_chat_stream_sampled":
                body = {"model": d.model_id, "messages": [{"role": "user", "content": prompt}], "stream": True,
                        "max_tokens": max_tokens, "temperature": 0.8, "top_p": 0.95, "seed": rng.randint(0, 1 << 30),
                        "stream_options": {"include_usage": True}}
                status, done, finish, _, usage = await read_sse(client, d.base_url + "/v1/chat/completions", body)
                ok = status == 200 and done and finish in ("stop", "length") and usage is not None \
                    and 0 < usage <= max_tokens
                note(kind, f"{status} {finish}", ok, (prompt, max_tokens, usage))
            elif kind == "grpc_greedy":
                outcome, text, tokens = await grpc_call(prompt, max_tokens)
                note(kind, outcome, outcome == "finished" and tokens == max_tokens and refs[prompt].startswith(text),
                     (prompt, max_tokens, tokens))
            elif kind == "long_prompt":
                i = rng.randrange(len(LONG_TAILS))
                mt = rng.randint(1, 32)
                r = await client.post(d.base_url + "/v1/completions",
                                      json=completion_body(d, PREAMBLE + LONG_TAILS[i], mt))
                b = r.json()
                ok = r.status_code == 200 and long_refs[i].startswith(b["choices"][0]["text"])
                note(kind, str(r.status_code), ok, (i, mt))
            elif kind == "http_n2_logprobs":
                body = completion_body(d, prompt, max_tokens)
                body.update({"n": 2, "logprobs": 3})
                r = await client.post(d.base_url + "/v1/completions", json=body)
                b = r.json()
                ok = (r.status_code == 200 and len(b["choices"]) == 2
                      and all(c["text"] == b["choices"][0]["text"] and refs[prompt].startswith(c["text"])
                              and len(c["logprobs"]["tokens"]) == max_tokens for c in b["choices"]))
                note(kind, str(r.status_code), ok, (prompt, max_tokens))
            elif kind == "http_stop_string":
                # A stop string cut from the reference: the answer ends right before it.
                ref = refs[prompt]
                cut = rng.randint(4, max(5, len(ref) // 2))
                stop = ref[cut:cut + 3]
                body = completion_body(d, prompt, 64)
                body["stop"] = [stop]
                r = await client.post(d.base_url + "/v1/completions", json=body)
                b = r.json()
                text = b["choices"][0]["text"] if r.status_code == 200 else None
                ok = r.status_code == 200 and text == ref[:ref.find(stop)]
                note(kind, str(r.status_code), ok, (prompt, stop, text))
            elif kind == "fault_disconnect":
                outcome = await http_raw(d, completion_body(d, prompt, max_tokens, stream=True), rng.randint(0, 8), 0)
                note(kind, outcome)
            else:  # fault_grpc_cancel
                outcome, _, _ = await grpc_call(prompt, max_tokens, cancel_after=rng.randint(1, 8))
                note(kind, outcome)

        async def worker():
            while time.monotonic() < stop_at:
                kind = rng.choices(SOAK_KINDS, SOAK_WEIGHTS)[0]
                try:
                    await one(kind)
                except (OSError, asyncio.TimeoutError, httpx.HTTPError, grpc.aio.AioRpcError, KeyError,
                        json.JSONDecodeError) as e:
                    note(kind, f"client_error:{type(e).__name__}", False, str(e)[:200])

        async def sampler():
            while time.monotonic() < stop_at + sample_s:
                try:
                    r = await client.get(d.base_url + "/metrics")
                    m = parse_metrics(r.text)
                except httpx.HTTPError:
                    m = {}
                m["t_s"] = time.monotonic() - t0
                m["rss_mib"] = (rss_kib(d.proc.pid, "VmRSS") or 0) / 1024
                samples.append(m)
                if len(samples) % max(1, int(60 / sample_s)) == 0:
                    log(f"t={m['t_s']:.0f}s rss={m['rss_mib']:.1f} MiB kv_used={m.get('pagoda_kv_blocks_used')} "
                        f"cached={m.get('pagoda_kv_blocks_cached')} tokens={m.get('pagoda_generation_tokens_total')} "
                        f"wrong={len(wrong)}")
                await asyncio.sleep(sample_s)

        sample_task = asyncio.create_task(sampler())
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        await sample_task
    return counts, wrong, samples


def median_rss(samples, t_from, t_to):
    v = [s["rss_mib"] for s in samples if t_from <= s["t_s"] < t_to]
    return statistics.median(v) if v else None


def rss_slope_mib_per_hour(samples, t_from):
    pts = [(s["t_s"], s["rss_mib"]) for s in samples if s["t_s"] >= t_from]
    if len(pts) < 3:
        return None
    mt = statistics.mean(t for t, _ in pts)
    mr = statistics.mean(r for _, r in pts)
    den = sum((t - mt) ** 2 for t, _ in pts)
    return sum((t - mt) * (r - mr) for t, r in pts) / den * 3600 if den else None


def soak_plot(samples, out_png):
    if not shutil.which("gnuplot"):
        log("gnuplot not found (apt-get install gnuplot-nox): no plot")
        return None
    data = pathlib.Path(out_png).with_suffix(".dat")
    with open(data, "w") as f:
        f.write("# minutes rss_mib kv_blocks_used kv_blocks_cached running_sequences kv_blocks_total\n")
        for s in samples:
            f.write(f"{s['t_s'] / 60:.3f} {s['rss_mib']:.2f} {s.get('pagoda_kv_blocks_used', 0):.0f} "
                    f"{s.get('pagoda_kv_blocks_cached', 0):.0f} {s.get('pagoda_running_sequences', 0):.0f} "
                    f"{s.get('pagoda_kv_blocks_total', 0):.0f}\n")
    script = f"""set terminal pngcairo size 1000,600
set output '{out_png}'
set title 'pagodad soak: RSS and KV blocks over time'
set xlabel 'minutes'
set ylabel 'RSS (MiB)'
set y2label 'KV blocks'
set ytics nomirror
set y2tics
set yrange [0:*]
set y2range [0:*]
set key outside bottom center horizontal
plot '{data}' using 1:2 axes x1y1 with lines lw 2 title 'RSS (MiB)', \\
     '' using 1:3 axes x1y2 with lines title 'KV blocks used', \\
     '' using 1:4 axes x1y2 with lines title 'KV blocks cached (prefix cache)', \\
     '' using 1:5 axes x1y2 with lines title 'running sequences', \\
     '' using 1:6 axes x1y2 with lines dt 2 title 'KV blocks in the pool'
"""
    p = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if p.returncode != 0:
        log(f"gnuplot failed: {p.stderr.strip()}")
        return None
    data.unlink()
    return out_png


def soak(args):
    seconds = args.seconds if args.seconds_given else 1800.0
    concurrency = args.concurrency if args.concurrency_given else 24
    pb = stubs()
    # A small KV cache (--soak-kv-tokens) so that the pool fills: preemption, prefix-cache eviction and
    # chunked prefill run all along, the paths where a leak would hide.
    d = Daemon(["--threads", str(args.threads), "--kv-tokens", str(args.soak_kv_tokens)])
    try:
        refs = {}
        for p in PROMPTS:
            status, body = d.post_json("/v1/completions", completion_body(d, p, 64), timeout=600)
            assert status == 200, body
            refs[p] = body["choices"][0]["text"]
        long_refs = []
        for tail in LONG_TAILS:
            status, body = d.post_json("/v1/completions", completion_body(d, PREAMBLE + tail, 32), timeout=600)
            assert status == 200, body
            long_refs.append(body["choices"][0]["text"])
        prompt_tokens = body["usage"]["prompt_tokens"]
        log(f"soak: {seconds:.0f} s, {concurrency} clients; long prompts of ~{prompt_tokens} tokens")
        t0 = time.monotonic()
        counts, wrong, samples = asyncio.run(
            soak_run(d, pb, seconds, concurrency, args.sample_s, refs, long_refs, args.seed))
        wall = time.monotonic() - t0
        alive = d.proc.poll() is None
        idle = wait_idle(d)
        kv_after = {n: d.metric(n) for n in ("pagoda_kv_blocks_used", "pagoda_kv_blocks_cached")}
        status, body = d.post_json("/v1/completions", completion_body(d, PROMPTS[0], 64), timeout=600)
        still_right = status == 200 and body["choices"][0]["text"] == refs[PROMPTS[0]]
        hwm = rss_kib(d.proc.pid, "VmHWM")
    finally:
        d.stop()
    # Minutes 5-10 against the last 5 (a sixth and a third of a shorter run: its first sixth is warm-up).
    warm = min(300.0, seconds / 6)
    early = median_rss(samples, warm, 2 * warm)
    late = median_rss(samples, seconds - warm, seconds + 1)
    growth = (late - early) / early if early and late else None
    slope = rss_slope_mib_per_hour(samples, warm)
    kv_used = [s.get("pagoda_kv_blocks_used", 0) for s in samples]
    summary = {
        "scenario": "soak", "machine": machine(), "date": datetime.date.today().isoformat(),
        "seconds": seconds, "wall_s": wall, "concurrency": concurrency, "long_prompt_tokens": prompt_tokens,
        "flags": {"kv_tokens": args.soak_kv_tokens, "threads": args.threads}, "request_mix": dict(zip(SOAK_KINDS, SOAK_WEIGHTS)),
        "requests": sum(sum(c.values()) for c in counts.values()), "outcomes": counts,
        "wrong_count": len(wrong), "wrong": wrong[:20],
        "generated_tokens": samples[-1].get("pagoda_generation_tokens_total") if samples else None,
        "preemptions": samples[-1].get("pagoda_preemptions") if samples else None,
        "rss_mib": {"first_sample": samples[0]["rss_mib"] if samples else None, "median_early": early,
                    "median_late": late, "windows_s": {"early": [warm, 2 * warm], "late": [seconds - warm, seconds]},
                    "growth": growth, "slope_mib_per_hour_after_warmup": slope,
                    "max_sampled": max((s["rss_mib"] for s in samples), default=None), "peak_vmhwm": hwm / 1024},
        "kv_blocks": {"total": samples[-1].get("pagoda_kv_blocks_total") if samples else None,
                      "used_max": max(kv_used, default=None), "used_mean": statistics.mean(kv_used) if kv_used else None,
                      "after": kv_after},
        "daemon_alive": alive, "idle_after": idle, "reference_text_after": still_right, "exit_code": d.proc.returncode,
        "max_growth": args.max_growth, "samples": len(samples),
    }
    out = args.out_prefix
    summary["plot"] = soak_plot(samples, out + ".png")
    pathlib.Path(out + "-samples.json").write_text(json.dumps(samples) + "\n")
    summary["pass"] = (alive and not wrong and not any(idle.values()) and still_right and d.proc.returncode == 0
                       and growth is not None and growth <= args.max_growth)
    return summary


# ---------------------------------------------------------------------------------------------- report


def markdown(s):
    lines = [f"# Reliability: {s['scenario']} ({s['date']})", "", f"Machine: {s['machine']}.", "",
             f"Result: **{'pass' if s['pass'] else 'FAIL'}**.", "", "```json", json.dumps(
                 {k: v for k, v in s.items() if k not in ("stream_results",)}, indent=2), "```", ""]
    if s.get("plot"):
        lines[4:4] = [f"![RSS and KV blocks over time]({pathlib.Path(s['plot']).name})", ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenario", choices=["overload", "faults", "drain", "soak", "all"])
    ap.add_argument("--factor", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--max-queue", type=int, default=32)
    ap.add_argument("--calibrate-clients", type=int, default=64, help="closed-loop clients measuring the sustainable rate (pagodad runs 64 sequences at once by default)")
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--streams", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="pagodad --threads (0: all cores)")
    ap.add_argument("--soak-kv-tokens", type=int, default=3072, help="soak: pagodad --kv-tokens (small: the pool fills)")
    ap.add_argument("--sample-s", type=float, default=5.0, help="soak: seconds between RSS / KV samples")
    ap.add_argument("--max-growth", type=float, default=0.02, help="soak: RSS growth allowed, last 5 min vs min 5-10")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None, help="output prefix (default bench/results/<date>-reliability-<scenario>)")
    args = ap.parse_args()
    # soak has its own defaults for these (30 minutes, 24 clients) unless given.
    args.seconds_given = any(a.startswith("--seconds") for a in sys.argv[1:])
    args.concurrency_given = any(a.startswith("--concurrency") for a in sys.argv[1:])
    failed = False
    for scenario in (["overload", "faults", "drain"] if args.scenario == "all" else [args.scenario]):
        log(f"== {scenario}")
        out = args.out or str(ROOT / "bench" / "results" / f"{datetime.date.today().isoformat()}-reliability-{scenario}")
        if args.scenario == "all" and args.out:
            out = f"{args.out}-{scenario}"
        args.out_prefix = out  # soak writes its plot and samples next to the report
        s = {"overload": overload, "faults": faults, "drain": drain, "soak": soak}[scenario](args)
        out = args.out or str(ROOT / "bench" / "results" / f"{datetime.date.today().isoformat()}-reliability-{scenario}")
        if args.scenario == "all" and args.out:
            out = f"{args.out}-{scenario}"
        pathlib.Path(out + ".json").write_text(json.dumps(s, indent=2) + "\n")
        pathlib.Path(out + ".md").write_text(markdown(s))
        log(f"{scenario}: {'pass' if s['pass'] else 'FAIL'}; wrote {out}.json/.md")
        print(json.dumps({k: v for k, v in s.items() if k not in ("stream_results", "wrong_whole_requests")}, indent=1))
        failed |= not s["pass"]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
