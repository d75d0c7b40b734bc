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

Every scenario starts its own daemon (tests/server/conftest.py's Daemon: PAGODAD, PAGODA_MODEL). Writes
<out>.json and <out>.md (default bench/results/<date>-reliability-<scenario>); `all` runs the three.
The load generator is Python asyncio on the same machine: on a small machine it competes for the cores,
which is part of the overload, and the report says the machine.

  .venv/bin/python bench/reliability.py overload [--factor 10] [--seconds 60] [--max-queue 32]
  .venv/bin/python bench/reliability.py faults [--requests 10000] [--concurrency 64]
  .venv/bin/python bench/reliability.py drain [--streams 32]
"""
import argparse
import asyncio
import datetime
import json
import os
import pathlib
import platform
import random
import signal
import statistics
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
                async with client.stream("POST", d.base_url + "/v1/completions", json=body) as r:
                    async for line in r.aiter_lines():
                        if line.startswith("data: [DONE]"):
                            done = True
                        elif line.startswith("data: "):
                            c = json.loads(line[6:])
                            if c.get("choices"):
                                text += c["choices"][0].get("text") or ""
                                finish = c["choices"][0].get("finish_reason") or finish
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


# ---------------------------------------------------------------------------------------------- report


def markdown(s):
    lines = [f"# Reliability: {s['scenario']} ({s['date']})", "", f"Machine: {s['machine']}.", "",
             f"Result: **{'pass' if s['pass'] else 'FAIL'}**.", "", "```json", json.dumps(
                 {k: v for k, v in s.items() if k not in ("stream_results",)}, indent=2), "```", ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenario", choices=["overload", "faults", "drain", "all"])
    ap.add_argument("--factor", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--max-queue", type=int, default=32)
    ap.add_argument("--calibrate-clients", type=int, default=64, help="closed-loop clients measuring the sustainable rate (pagodad runs 64 sequences at once by default)")
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--streams", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="pagodad --threads (0: all cores)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None, help="output prefix (default bench/results/<date>-reliability-<scenario>)")
    args = ap.parse_args()
    failed = False
    for scenario in (["overload", "faults", "drain"] if args.scenario == "all" else [args.scenario]):
        log(f"== {scenario}")
        s = {"overload": overload, "faults": faults, "drain": drain}[scenario](args)
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
