"""`pagoda loadgen` against a real pagodad, over HTTP and over gRPC: every request is accounted for, the
latencies are sane, prompts have the drawn token lengths, and the output tokens the load generator counted
match what the daemon reports having generated."""
import json
import math
import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import MODEL, PAGODA_CLI, REPO

REQUESTS = 20
FORTUNES = "/usr/share/games/fortunes"


def need_cli():
    if not os.path.exists(PAGODA_CLI):
        pytest.skip(f"pagoda CLI not built at {PAGODA_CLI} (set PAGODA_CLI)")
    if not os.path.exists(os.path.join(FORTUNES, "literature")):
        pytest.skip("the Debian package 'fortunes' is not installed (scripts/setup.sh installs it)")


def loadgen(args, timeout=90):
    return subprocess.run([PAGODA_CLI, "loadgen", *args, "--tokenizer-model", MODEL], capture_output=True, text=True,
                          timeout=timeout)


def check_point(point, requests, max_tokens):
    summary = point["summary"]
    assert summary["requests"] == requests
    assert summary["errors"] == 0, point["per_request"]
    per = point["per_request"]
    assert len(per) == requests
    for r in per:
        assert r["ok"], r
        # ignore_eos: exactly max_tokens; at most one timed chunk per token (over HTTP a token whose text is
        # an incomplete UTF-8 sequence arrives with the next one).
        assert r["output_tokens"] == max_tokens, r
        assert 1 <= r["chunks"] <= max_tokens, r
        assert math.isfinite(r["ttft_s"]) and r["ttft_s"] > 0, r
        assert math.isfinite(r["tpot_s"]) and r["tpot_s"] > 0, r
        assert r["submit_s"] >= r["at_s"] - 1e-6, r
        assert r["end_s"] >= r["submit_s"] + r["ttft_s"] - 1e-9, r
        assert len(r["itl_s"]) == r["chunks"] - 1 and all(x >= 0 for x in r["itl_s"]), r
    for key in ("ttft", "tpot", "itl", "e2e"):
        for p in ("p50_s", "p90_s", "p99_s", "mean_s"):
            v = summary[key][p]
            assert v is not None and math.isfinite(v) and v > 0, (key, p, summary[key])
    assert summary["ttft"]["n"] == requests
    assert summary["output_tok_s"] > 0 and summary["request_s"] > 0
    return sum(r["output_tokens"] for r in per)


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_loadgen_chat(daemon, tmp_path, transport):
    need_cli()
    out_json, out_md = tmp_path / "chat.json", tmp_path / "chat.md"
    port = daemon.http_port if transport == "http" else daemon.grpc_port
    before = daemon.metric("pagoda_generation_tokens_total")
    t0 = time.monotonic()
    proc = loadgen(["chat", f"--{transport}-port", str(port), "--requests", str(REQUESTS), "--rates", "4",
                    "--max-tokens", "8", "--prompt-tokens", "48", "--seed", "7", "--time-limit-s", "60",
                    "--json", str(out_json), "--markdown", str(out_md)])
    after = daemon.metric("pagoda_generation_tokens_total")
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr, daemon.log_tail())
    assert "TTFT" in proc.stdout and "goodput" in proc.stdout, proc.stdout
    assert time.monotonic() - t0 < 90

    result = json.loads(out_json.read_text())
    assert result["workload"] == "chat"
    assert result["context"]["options"]["seed"] == 7 and result["context"]["machine"]["cores"] >= 1, result["context"]
    assert result["target"].startswith(transport)
    assert len(result["points"]) == 1 and result["points"][0]["rate"] == 4
    point = result["points"][0]
    out_tokens = check_point(point, REQUESTS, 8)
    assert out_tokens == after - before, (out_tokens, before, after)
    # Prompts are log-normal around the asked median and not all alike.
    lengths = sorted(r["prompt_tokens"] for r in point["per_request"])
    assert 16 <= lengths[0] and lengths[-1] <= 1024 + 2, lengths
    assert 20 <= lengths[len(lengths) // 2] <= 120, lengths
    assert len(set(lengths)) > REQUESTS // 3, lengths
    assert "| rate 4 req/s | 20/20 |" in out_md.read_text()
    if transport == "http" and shutil.which("gnuplot"):  # bench/plots.py draws the run
        plots = subprocess.run([sys.executable, str(REPO / "bench" / "plots.py"), str(out_json), "--out",
                                str(tmp_path / "run")], capture_output=True, text=True, timeout=60)
        assert plots.returncode == 0, plots.stderr
        for name in ("run-chat-latency-throughput.png", "run-chat-ttft-cdf.png"):
            png = (tmp_path / name).read_bytes()
            assert png.startswith(b"\x89PNG") and len(png) > 1000, name


def test_loadgen_concurrency_closed_loop_over_grpc(daemon, tmp_path):
    need_cli()
    out_json = tmp_path / "conc.json"
    proc = loadgen(["concurrency", "--grpc-port", str(daemon.grpc_port), "--levels", "1,4", "--requests", "4",
                    "--max-tokens", "6", "--prompt-tokens", "32", "--json", str(out_json)])
    assert proc.returncode == 0, (proc.stdout, proc.stderr, daemon.log_tail())
    points = json.loads(out_json.read_text())["points"]
    assert [p["concurrency"] for p in points] == [1, 4]
    for p in points:
        check_point(p, 4, 6)
    # One stream: each request starts after the previous one ended. Four streams: they overlap.
    one = sorted(points[0]["per_request"], key=lambda r: r["submit_s"])
    for a, b in zip(one, one[1:]):
        assert b["submit_s"] >= a["end_s"] - 1e-6, (a, b)
    four = points[1]["per_request"]
    assert max(r["submit_s"] for r in four) < min(r["end_s"] for r in four), four


def test_loadgen_refuses_bad_targets_and_workloads():
    need_cli()
    proc = loadgen(["chat", "--host", "192.0.2.1", "--http-port", "80", "--requests", "1"], timeout=30)
    assert proc.returncode != 0
    assert "loopback" in proc.stderr, proc.stderr
    proc = loadgen(["chat", "--host", "192.0.2.1", "--grpc-port", "80", "--requests", "1"], timeout=30)
    assert proc.returncode != 0
    assert "loopback" in proc.stderr, proc.stderr
    proc = loadgen(["chat", "--requests", "1"], timeout=30)
    assert proc.returncode == 2 and "exactly one of --http-port and --grpc-port" in proc.stderr, proc.stderr
    proc = loadgen(["nope", "--http-port", "1"], timeout=30)
    assert proc.returncode != 0 and "nope" in proc.stderr, proc.stderr
