"""The OpenAI-compatible HTTP API through the official `openai` SDK: completions and chat, streaming and
not, against the CLI's greedy output; plus the plain endpoints (/health, /ready, /v1/models, /metrics)."""
import http.client
import json

import pytest

from conftest import cli_generate

PROMPTS = ["The capital of France is", "Once upon a time, there was a little"]


def stream_text(stream):
    """Joins a completions stream; returns (text, finish_reason, usage, n_chunks)."""
    text, finish, usage, n = "", None, None, 0
    for chunk in stream:
        n += 1
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.text
            if c.finish_reason is not None:
                finish = c.finish_reason
    return text, finish, usage, n


@pytest.mark.parametrize("prompt", PROMPTS)
def test_completion_matches_cli_and_stream(daemon, prompt):
    client = daemon.openai_client()
    r = client.completions.create(model=daemon.model_id, prompt=prompt, max_tokens=16, temperature=0)
    assert r.object == "text_completion" and r.id.startswith("cmpl-") and r.model == daemon.model_id
    assert len(r.choices) == 1 and r.choices[0].index == 0
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    text = r.choices[0].text
    assert text == cli_generate(prompt, 16)

    s = client.completions.create(model=daemon.model_id, prompt=prompt, max_tokens=16, temperature=0, stream=True,
                                  stream_options={"include_usage": True})
    stext, finish, usage, n = stream_text(s)
    assert stext == text
    assert finish == r.choices[0].finish_reason
    assert n >= 3
    assert usage is not None and usage.completion_tokens == r.usage.completion_tokens
    assert usage.prompt_tokens == r.usage.prompt_tokens


def test_chat_completion(daemon):
    client = daemon.openai_client()
    messages = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "What is the capital of France?"}]
    r = client.chat.completions.create(model=daemon.model_id, messages=messages, max_tokens=24, temperature=0)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    msg = r.choices[0].message
    assert msg.role == "assistant" and msg.content.strip()
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens

    s = client.chat.completions.create(model=daemon.model_id, messages=messages, max_tokens=24, temperature=0,
                                       stream=True)
    roles, text, finish = [], "", None
    for chunk in s:
        assert chunk.object == "chat.completion.chunk"
        for c in chunk.choices:
            if c.delta.role:
                roles.append(c.delta.role)
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    assert roles == ["assistant"]
    assert text == msg.content
    assert finish == r.choices[0].finish_reason


def test_chat_content_parts_and_max_completion_tokens(daemon):
    client = daemon.openai_client()
    r = client.chat.completions.create(
        model=daemon.model_id, temperature=0, max_completion_tokens=5,
        messages=[{"role": "user", "content": [{"type": "text", "text": "Say hello."}]}])
    assert r.usage.completion_tokens <= 5 and r.choices[0].message.content is not None


def test_model_may_be_omitted_and_token_id_prompt(daemon):
    status, body = daemon.post_json("/v1/completions", {"prompt": PROMPTS[0], "max_tokens": 4})
    assert status == 200, body
    text = body["choices"][0]["text"]
    # The same prompt as token ids (tokenized by the daemon the way a text prompt is).
    ids_status, ids_body = daemon.post_json("/v1/completions", {"prompt": [1, 504, 3575, 282, 4649, 314], "max_tokens": 4})
    assert ids_status == 200, ids_body
    assert ids_body["usage"]["prompt_tokens"] == 6
    assert isinstance(text, str)


def test_echo_returns_the_prompt_before_the_completion(daemon):
    client = daemon.openai_client()
    prompt = PROMPTS[1]
    plain = client.completions.create(model=daemon.model_id, prompt=prompt, max_tokens=12, temperature=0)
    echo = client.completions.create(model=daemon.model_id, prompt=prompt, max_tokens=12, temperature=0, echo=True,
                                     n=2)
    for c in echo.choices:
        assert c.text == prompt + plain.choices[0].text
    assert echo.usage.prompt_tokens == plain.usage.prompt_tokens
    s = client.completions.create(model=daemon.model_id, prompt=prompt, max_tokens=12, temperature=0, echo=True,
                                  stream=True)
    text, finish, _, _ = stream_text(s)
    assert text == prompt + plain.choices[0].text and finish == plain.choices[0].finish_reason
    # A prompt of token ids echoes as their text.
    status, body = daemon.post_json("/v1/completions", {"prompt": [504, 3575, 282, 4649, 314], "max_tokens": 2,
                                                        "echo": True, "temperature": 0})
    assert status == 200, body
    assert body["choices"][0]["text"].startswith(PROMPTS[0])


def test_suffix_needs_a_fill_in_the_middle_model(daemon):
    status, body = daemon.post_json("/v1/completions", {"prompt": "def f():", "suffix": "    return 1", "max_tokens": 4})
    assert status == 400 and body["error"]["param"] == "suffix"
    assert "fill-in-the-middle" in body["error"]["message"]
    # An empty suffix is no suffix.
    status, body = daemon.post_json("/v1/completions", {"prompt": "def f():", "suffix": "", "max_tokens": 2})
    assert status == 200, body


def test_n_and_stop_and_seed(daemon):
    client = daemon.openai_client()
    base = client.completions.create(model=daemon.model_id, prompt=PROMPTS[1], max_tokens=16, temperature=0)
    text = base.choices[0].text
    r = client.completions.create(model=daemon.model_id, prompt=PROMPTS[1], max_tokens=16, temperature=0, n=2)
    assert [c.index for c in r.choices] == [0, 1]
    assert r.choices[0].text == r.choices[1].text == text
    # A stop string taken from the greedy output: the text ends right before it.
    words = text.split()
    if len(words) >= 3:
        stop = " " + words[2]
        cut = text[: text.index(stop)]
        rs = client.completions.create(model=daemon.model_id, prompt=PROMPTS[1], max_tokens=16, temperature=0, stop=[stop])
        assert rs.choices[0].text == cut and rs.choices[0].finish_reason == "stop"
    # Sampling with a seed is reproducible.
    a = client.completions.create(model=daemon.model_id, prompt=PROMPTS[1], max_tokens=8, temperature=1.0, seed=7, top_p=0.9)
    b = client.completions.create(model=daemon.model_id, prompt=PROMPTS[1], max_tokens=8, temperature=1.0, seed=7, top_p=0.9)
    assert a.choices[0].text == b.choices[0].text


def test_logit_bias(daemon):
    client = daemon.openai_client()
    base = client.completions.create(model=daemon.model_id, prompt=PROMPTS[0], max_tokens=4, temperature=0).choices[0].text
    # +100 on one token makes greedy decoding repeat it; its one-token text is the unit of the answer.
    bias = {"504": 100}
    one = client.completions.create(model=daemon.model_id, prompt=PROMPTS[0], max_tokens=1, temperature=0,
                                    logit_bias=bias).choices[0].text
    four = client.completions.create(model=daemon.model_id, prompt=PROMPTS[0], max_tokens=4, temperature=0,
                                     logit_bias=bias).choices[0].text
    assert one and four == one * 4 and four != base, (one, four, base)


def test_logprobs(daemon):
    client = daemon.openai_client()
    r = client.completions.create(model=daemon.model_id, prompt=PROMPTS[0], max_tokens=4, temperature=0, logprobs=2)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) >= 1
    assert all(v <= 0 for v in lp.token_logprobs)
    assert all(1 <= len(t) <= 2 for t in lp.top_logprobs)
    c = client.chat.completions.create(model=daemon.model_id, messages=[{"role": "user", "content": "Hi"}], max_tokens=4,
                                       temperature=0, logprobs=True, top_logprobs=3)
    content = c.choices[0].logprobs.content
    assert content and all(len(t.top_logprobs) == 3 and t.logprob <= 0 for t in content)
    # Greedy: the sampled token is the most likely one.
    assert all(abs(t.top_logprobs[0].logprob - t.logprob) < 1e-4 for t in content)


def test_models_health_ready_metrics(daemon):
    models = daemon.openai_client().models.list()
    assert [m.id for m in models.data] == [daemon.model_id]
    assert models.data[0].owned_by == "pagoda"
    assert daemon.get_json(f"/v1/models/{daemon.model_id}")["id"] == daemon.model_id
    assert daemon.get_json("/health") == {"status": "ok"}
    status, _, _ = daemon.request("GET", "/ready")
    assert status == 200
    status, headers, body = daemon.request("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    for name in ("pagoda_kv_blocks_used", "pagoda_kv_blocks_total", "pagoda_requests_total",
                 "pagoda_time_to_first_token_seconds_bucket"):
        assert name in text


def test_keep_alive_and_raw_sse_shape(daemon):
    conn = http.client.HTTPConnection("127.0.0.1", daemon.http_port, timeout=60)
    try:
        for _ in range(2):  # the same connection serves a JSON and an SSE response, then a JSON one again
            conn.request("POST", "/v1/completions", body=json.dumps({"prompt": "Hi", "max_tokens": 3}),
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            assert r.status == 200 and json.loads(r.read())["object"] == "text_completion"
            conn.request("POST", "/v1/chat/completions",
                         body=json.dumps({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3,
                                          "stream": True, "stream_options": {"include_usage": True}}),
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            assert r.status == 200 and r.getheader("Content-Type") == "text/event-stream"
            events = [e for e in r.read().decode().split("\n\n") if e]
            assert all(e.startswith("data: ") for e in events)
            assert events[-1] == "data: [DONE]"
            usage = json.loads(events[-2][6:])
            assert usage["choices"] == [] and usage["usage"]["completion_tokens"] >= 1
            first = json.loads(events[0][6:])
            assert first["choices"][0]["delta"]["role"] == "assistant"
            finals = [json.loads(e[6:]) for e in events[:-2]]
            assert finals[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    finally:
        conn.close()
