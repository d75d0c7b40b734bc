"""`pagoda bench-http chat` against a real pagodad: every request is accounted for, the latencies are sane, and
the output tokens the load generator counted match what the daemon reports having generated."""
import json
import math
import os
import subprocess
import time

import pytest

from conftest import PAGODA_CLI

REQUESTS = 20


def test_bench_http_chat(daemon, tmp_path):
    if not os.path.exists(PAGODA_CLI):
        pytest.skip(f"pagoda CLI not built at {PAGODA_CLI} (set PAGODA_CLI)")
    out_json = tmp_path / "chat.json"
    before = daemon.metric("pagoda_generation_tokens_total")
    t0 = time.monotonic()
    proc = subprocess.run(
        [PAGODA_CLI, "bench-http", "chat", "--port", str(daemon.http_port), "--requests", str(REQUESTS), "--rate", "4",
         "--max-tokens", "16", "--seed", "7", "--time-limit-s", "50", "--json", str(out_json)],
        capture_output=True, text=True, timeout=55)
    elapsed = time.monotonic() - t0
    after = daemon.metric("pagoda_generation_tokens_total")
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr, daemon.log_tail())
    assert "TTFT" in proc.stdout and "goodput" in proc.stdout, proc.stdout
    assert elapsed < 55

    result = json.loads(out_json.read_text())
    summary = result["summary"]
    assert summary["requests"] == REQUESTS
    assert summary["errors"] == 0, result["per_request"]
    per = result["per_request"]
    assert len(per) == REQUESTS
    for r in per:
        assert r["ok"], r
        assert 1 <= r["output_tokens"] <= 16, r
        assert r["prompt_tokens"] >= 16, r
        assert r["chunks"] >= 1, r
        assert math.isfinite(r["ttft_s"]) and r["ttft_s"] > 0, r
        if r["output_tokens"] >= 2:
            assert math.isfinite(r["tpot_s"]) and r["tpot_s"] > 0, r
        assert r["submit_s"] >= r["at_s"] - 1e-6, r
        assert r["end_s"] >= r["submit_s"] + r["ttft_s"] - 1e-9, r
    for key in ("ttft", "tpot", "itl", "e2e"):
        for p in ("p50_s", "p90_s", "p99_s", "mean_s"):
            v = summary[key][p]
            assert v is not None and math.isfinite(v) and v > 0, (key, p, summary[key])
    assert summary["ttft"]["n"] == REQUESTS
    assert summary["output_tok_s"] > 0 and summary["request_s"] > 0

    out_tokens = sum(r["output_tokens"] for r in per)
    assert out_tokens >= REQUESTS
    assert out_tokens == after - before, (out_tokens, before, after)


def test_bench_http_refuses_non_loopback():
    if not os.path.exists(PAGODA_CLI):
        pytest.skip(f"pagoda CLI not built at {PAGODA_CLI} (set PAGODA_CLI)")
    proc = subprocess.run([PAGODA_CLI, "bench-http", "chat", "--host", "192.0.2.1", "--port", "80", "--requests", "1"],
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode != 0
    assert "loopback" in proc.stderr, proc.stderr
