"""Serving each model family: a small random-weight GGUF of the family from `pagoda make-model`, with a
real vocabulary (llama.cpp's vocabulary-only ggml-vocab-qwen2.gguf, Phi-3's for phi3, llama's SPM one for
gemma and Mixtral), behind pagodad: chat and completions over HTTP, streamed and not, and Generate over
gRPC; greedy outputs reproducible and equal to the engine's own (`pagoda generate`). The logits of these
families are checked against llama.cpp in tests/engine/model/architecture_golden_test.cpp; here the question
is whether the daemon serves them."""
import glob
import os
import pathlib
import re
import subprocess
import urllib.request

import grpc
import pytest

from conftest import PAGODA_CLI, REPO, start_daemon

# Each family's preset and the vocabulary it is served with.
FAMILIES = {"qwen2-tiny": "ggml-vocab-qwen2.gguf", "qwen3-tiny": "ggml-vocab-qwen2.gguf",
            "qwen3moe-tiny": "ggml-vocab-qwen2.gguf", "phi3-tiny": "ggml-vocab-phi-3.gguf",
            "gemma2-tiny": "ggml-vocab-llama-spm.gguf", "gemma3-tiny": "ggml-vocab-llama-spm.gguf",
            "mixtral-tiny": "ggml-vocab-llama-spm.gguf"}


def vocab_path(name: str) -> str:
    base = os.environ.get("PAGODA_LLAMA_MODELS")  # set by CMake for ctest
    if not base:
        found = glob.glob(str(REPO / "build" / "_deps" / "llama_jinja-src" / "*" / "vendor" / "llama.cpp" / "models"))
        if not found:
            pytest.skip("llama.cpp's vocabulary files not unpacked (configure the build: cmake/llama_jinja.cmake)")
        base = found[0]
    path = pathlib.Path(base) / name
    assert path.exists(), path
    return str(path)


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("families") / f"{request.param}.gguf"
    made = subprocess.run([PAGODA_CLI, "make-model", "--preset", request.param, "--vocab",
                           vocab_path(FAMILIES[request.param]),
                           "--out", str(path)], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    d = start_daemon(model=str(path))
    yield request.param, str(path), d
    d.stop()


def assert_completion_is_the_engines(d, path, prompt, max_tokens):
    """The daemon's greedy completion of `prompt` is `pagoda generate`'s (one sequence, in process); returns
    the completion's usage."""
    status, comp = d.post_json("/v1/completions", {"model": d.model_id, "prompt": prompt, "max_tokens": max_tokens,
                                                   "temperature": 0})
    assert status == 200, comp
    gen = subprocess.run([PAGODA_CLI, "generate", "--model", path, "--prompt", prompt, "--max-tokens",
                          str(max_tokens), "--temperature", "0"], capture_output=True, text=True, timeout=120)
    assert gen.returncode == 0, gen.stderr
    text = comp["choices"][0]["text"]
    assert comp["usage"]["completion_tokens"] == max_tokens and text, comp
    assert text in gen.stdout, (text, gen.stdout)
    return comp["usage"]


def test_the_family_serves_chat_and_completions(family):
    preset, path, d = family
    arch = preset.split("-")[0]
    models = d.get_json("/v1/models")["data"]
    assert models[0]["id"], models
    chat = {"model": d.model_id, "messages": [{"role": "user", "content": "Hello, who are you?"}], "max_tokens": 12,
            "temperature": 0}
    status, first = d.post_json("/v1/chat/completions", chat)
    assert status == 200, first
    assert first["usage"]["completion_tokens"] == 12, first
    assert first["choices"][0]["finish_reason"] == "length"
    status, again = d.post_json("/v1/chat/completions", chat)
    assert status == 200
    assert again["choices"][0]["message"]["content"] == first["choices"][0]["message"]["content"], arch

    # Streamed, the same text.
    client = d.openai_client()
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(stream=True, **chat)
                       if c.choices)
    assert streamed == first["choices"][0]["message"]["content"]

    # Completions: the daemon's greedy text is the engine's own (`pagoda generate` in process).
    assert_completion_is_the_engines(d, path, "The quick brown fox", 10)


def test_the_family_serves_grpc_generate(family, pb):
    """The same greedy completion over gRPC as over HTTP."""
    pagoda_pb2, pagoda_pb2_grpc = pb
    _, _, d = family
    prompt = "Once upon a time"
    status, comp = d.post_json("/v1/completions", {"model": d.model_id, "prompt": prompt, "max_tokens": 8,
                                                   "temperature": 0})
    assert status == 200, comp
    req = pagoda_pb2.GenerateRequest(text=prompt)
    req.sampling.temperature = 0
    req.stop.max_tokens = 8
    with grpc.insecure_channel(f"127.0.0.1:{d.grpc_port}") as ch:
        stub = pagoda_pb2_grpc.GenerationStub(ch)
        msgs = list(stub.Generate(req, timeout=120))
    assert msgs and msgs[-1].finish_reason == pagoda_pb2.FINISH_REASON_LENGTH, msgs[-1:]
    assert sum(len(m.token_ids) for m in msgs) == 8
    assert "".join(m.text for m in msgs) == comp["choices"][0]["text"]


def test_windowed_layers_keep_a_pool_of_their_own(family):
    """gemma2/gemma3: the daemon keeps the sliding-window layers' KV in a pool of its own, where a sequence
    holds only its window. A prompt several windows long gives the same greedy text as `pagoda generate`,
    whose single sequence keeps every position of every layer, and the window pool is empty again after."""
    preset, path, d = family
    if not preset.startswith("gemma"):
        pytest.skip("no sliding-window layers")

    def gauge(name):
        with urllib.request.urlopen(f"http://127.0.0.1:{d.http_port}/metrics", timeout=10) as r:
            m = re.search(rf"^{name} ([0-9.eE+-]+)$", r.read().decode(), re.M)
        assert m, name
        return float(m.group(1))

    assert gauge("pagoda_kv_window_blocks_total") > 0
    # About 170 tokens (the tiny models take 256), against windows of 40 and 48.
    prompt = " ".join(f"line {i} of a prompt longer than the window" for i in range(16))
    usage = assert_completion_is_the_engines(d, path, prompt, 32)
    assert usage["prompt_tokens"] > 3 * 48, usage
    assert gauge("pagoda_kv_window_blocks_used") == 0
