"""pagodad --prefill-matmul: the opt-in oneDNN bf16 path serves requests (prompts of 16+ tokens take it), and a
bad value is refused at start-up with a message and a non-zero exit."""
import os
import subprocess

import pytest

from conftest import MODEL, PAGODAD, start_daemon

PROMPT = ("The harbour town woke slowly in the grey light of early morning. Fishing boats rocked against the "
          "stone quay while gulls circled overhead.")


def cpu_has_avx512():
    with open("/proc/cpuinfo") as f:
        flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    return all(f in flags for f in ("avx512f", "avx512bw", "avx512vl"))


def test_bf16_matmul_serves_greedy_requests():
    if not cpu_has_avx512():
        # oneDNN has no bf16 matmul without AVX-512: pagodad must say so and exit, not fail obscurely.
        if not os.path.exists(PAGODAD):
            pytest.skip(f"pagodad not built at {PAGODAD} (set PAGODAD)")
        p = subprocess.run([PAGODAD, "--model", MODEL, "--prefill-matmul", "bf16", "--http-port", "0",
                            "--grpc-port", "0"], capture_output=True, text=True, timeout=60)
        assert p.returncode != 0
        assert "bf16 prefill matmul is not available on this CPU" in (p.stderr + p.stdout), (p.stdout, p.stderr)
        return
    # Without prefix caching both requests run the same step shapes. With it, the second prompt would be served
    # from the cache but for its last token, which then runs on the int8 path: bf16 results depend on step size.
    d = start_daemon(["--prefill-matmul", "bf16", "--no-prefix-caching"])
    try:
        assert "bf16" in d.log_tail(200)  # the start-up line names the matmul in use
        texts = []
        for _ in range(2):
            status, body = d.post_json("/v1/completions", {"prompt": PROMPT, "max_tokens": 12, "temperature": 0})
            assert status == 200, body
            assert body["usage"]["prompt_tokens"] >= 16, body["usage"]  # the bf16 path runs this prompt
            assert body["usage"]["completion_tokens"] == 12 or body["choices"][0]["finish_reason"] == "stop", body
            texts.append(body["choices"][0]["text"])
        assert texts[0] and texts[0] == texts[1]  # the same step shapes give the same greedy text
    finally:
        d.stop()


def test_bad_prefill_matmul_value_is_refused():
    if not os.path.exists(PAGODAD):
        pytest.skip(f"pagodad not built at {PAGODAD} (set PAGODAD)")
    p = subprocess.run([PAGODAD, "--model", MODEL, "--prefill-matmul", "fp8", "--http-port", "0", "--grpc-port", "0"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "prefill-matmul" in (p.stderr + p.stdout), (p.stdout, p.stderr)
