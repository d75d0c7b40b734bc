"""Size and count limits (issue 15, security): every untrusted size has a flag with a safe default, printed
at start-up. Here: --max-connections (one more connection gets a 503 in OpenAI's error shape and is
closed, the daemon serves again once connections close) and the limits a request body meets (the body,
headers, prompt tokens, max_tokens, n, stop strings, logprobs) with their clear 4xx errors. No request
field names a file or a model to load: `model` must be the served id."""
import re
import socket
import time
import urllib.request

import pytest

from conftest import start_daemon


@pytest.fixture(scope="module")
def limited():
    d = start_daemon(["--max-connections", "3", "--max-body-bytes", "4096"])
    yield d
    d.stop()


def test_connections_past_the_limit_get_503_and_the_daemon_recovers(limited):
    d = limited
    held = []
    try:
        # One answered request on each of three: all three are accepted and counted (a fixed sleep was not
        # always long enough under ASan, and the fourth connection was then served, not refused).
        deadline = time.time() + 20
        for _ in range(3):
            held.append(d.hold_answered_connection(deadline))
        with socket.create_connection(("127.0.0.1", d.http_port), timeout=30) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        assert data.startswith(b"HTTP/1.1 503"), data
        assert b'"code":"too_many_connections"' in data and b"Retry-After: 1" in data
    finally:
        for s in held:
            s.close()
    deadline = time.time() + 10
    while time.time() < deadline and d.request("GET", "/health")[0] != 200:
        time.sleep(0.1)
    assert d.request("GET", "/health")[0] == 200
    assert d.metric("pagoda_http_connections_refused_total") >= 1
    assert "max connections 3" in d.log_tail(400)


def test_request_size_limits_have_clear_errors(limited):
    d = limited
    m = d.model_id
    cases = [
        ({"model": m, "prompt": "x" * 5000}, 413, "larger than the limit of 4096 bytes"),
        ({"model": m, "prompt": "hi", "n": 17}, 400, "n"),
        ({"model": m, "prompt": "hi", "logprobs": 21}, 400, "logprobs"),
        ({"model": m, "prompt": "hi", "stop": ["a"] * 17}, 400, "stop"),
        ({"model": m, "prompt": "hi", "max_tokens": 10**9}, 400, "max_tokens"),
        ({"model": "/etc/passwd", "prompt": "hi"}, 404, "does not exist"),
    ]
    for body, status, text in cases:
        got, _, raw = d.request("POST", "/v1/completions", body)
        assert got == status, (body if len(str(body)) < 200 else str(body)[:200], got, raw)
        assert text in raw.decode(), raw
    # Headers past 16 KiB: 400, the connection closed; the daemon is fine.
    got, _, raw = d.request("GET", "/health", headers={"X-Big": "y" * 20000})
    assert got == 400 and b"Malformed HTTP request" in raw, (got, raw)
    assert d.request("GET", "/health")[0] == 200


def test_kv_memory_flag_sizes_the_pool():
    """--kv-memory-mib sizes the KV pool the daemon allocates (it overrides --kv-tokens): SmolLM2's block of
    16 tokens is 30 layers x K and V x 3 KV heads x 16 x 64 fp16 values, 368,640 bytes, so 8 MiB is 22 blocks."""
    d = start_daemon(["--kv-memory-mib", "8"])
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{d.http_port}/metrics", timeout=10) as r:
            body = r.read().decode()
        m = re.search(r"^pagoda_kv_blocks_total ([0-9.eE+-]+)$", body, re.M)
        assert m, body
        assert float(m.group(1)) == 8 * 1024 * 1024 // 368640
    finally:
        d.stop()
