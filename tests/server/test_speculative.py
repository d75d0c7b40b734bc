"""Speculative decoding through the front ends: OpenAI's Predicted Outputs (`prediction`) with the official
`openai` SDK, streaming and not, on a default server (`--speculative auto`, which sizes drafts by their
measured cost) and on one started with `--speculative ngram`; the output never changes, the usage and the
metrics say what the drafts did. Where a test counts drafts it asks for them (`num_speculative_tokens`), so
it does not depend on the machine's timings."""
import os
import subprocess
import time

import pytest

from conftest import MODEL, PAGODA_CLI, PAGODAD, REAL_MODEL, start_daemon

PASSAGE = ("The cat sat by the window every morning. The cat watched the birds in the garden, and when the sun "
           "rose over the roofs the cat stretched, yawned and went back to sleep on the warm stone sill.")
MESSAGES = [{"role": "user", "content": "Repeat this text exactly:\n" + PASSAGE}]


@pytest.fixture(scope="module")
def ngram_daemon():
    d = start_daemon(["--speculative", "ngram", "--num-speculative-tokens", "4"])
    yield d
    d.stop()


def chat(client, model, stream=False, **kw):
    """Greedy chat text, and the usage (streaming: from the include_usage chunk)."""
    r = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=80, temperature=0, stream=stream,
                                       **({"stream_options": {"include_usage": True}} if stream else {}), **kw)
    if not stream:
        return r.choices[0].message.content, r.usage
    text, usage = "", None
    for chunk in r:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
    return text, usage


def spec_metrics(d):
    """The speculative-decoding series of one /metrics scrape, once the engine published its last step (the
    stats snapshot follows a request's final event by up to one step)."""
    time.sleep(0.5)
    status, _, body = d.request("GET", "/metrics")
    assert status == 200
    out = {}
    for line in body.decode().splitlines():
        if line.startswith("pagoda_spec_decode_"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


@pytest.mark.parametrize("stream", [False, True])
def test_prediction_changes_nothing_but_is_used(daemon, stream):
    client = daemon.openai_client()
    plain, plain_usage = chat(client, daemon.model_id, stream)
    assert plain_usage.completion_tokens_details is None or plain_usage.completion_tokens_details.accepted_prediction_tokens in (None, 0)
    # The default server (--speculative auto) sizes drafts by their measured cost: same text.
    text, usage = chat(client, daemon.model_id, stream, prediction={"type": "content", "content": PASSAGE})
    assert text == plain
    assert usage.completion_tokens == plain_usage.completion_tokens
    # Asking for up to 4 drafts a step: the prediction is followed wherever it is right.
    text, usage = chat(client, daemon.model_id, stream, prediction={"type": "content", "content": PASSAGE},
                       extra_body={"num_speculative_tokens": 4})
    assert text == plain
    details = usage.completion_tokens_details
    if REAL_MODEL:  # a trained model repeats the passage; a random-weight one writes other tokens
        assert details.accepted_prediction_tokens > usage.completion_tokens // 2, (text, details)
    assert details.accepted_prediction_tokens < usage.completion_tokens
    assert details.rejected_prediction_tokens >= 0


def test_prediction_content_parts_and_a_wrong_prediction(daemon):
    client = daemon.openai_client()
    plain, _ = chat(client, daemon.model_id)
    parts = [{"type": "text", "text": PASSAGE[:40]}, {"type": "text", "text": PASSAGE[40:]}]
    text, usage = chat(client, daemon.model_id, prediction={"type": "content", "content": parts},
                       extra_body={"num_speculative_tokens": 4})
    assert text == plain and usage.completion_tokens_details.accepted_prediction_tokens > 0
    # A prediction that has nothing to do with the output: slower at worst, never different.
    wrong = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 4
    text, usage = chat(client, daemon.model_id, prediction={"type": "content", "content": wrong})
    assert text == plain


@pytest.mark.parametrize("prediction, needle", [
    ("just a string", "prediction"),
    ({"type": "text", "content": "x"}, "prediction.type"),
    ({"type": "content"}, "prediction.content"),
    ({"type": "content", "content": 5}, "prediction.content"),
    ({"type": "content", "content": [{"type": "image", "text": "x"}]}, "prediction.content"),
    ({"type": "content", "content": "x", "extra": 1}, "prediction.extra"),
])
def test_bad_prediction_is_a_400_naming_the_field(daemon, prediction, needle):
    status, body = daemon.post_json("/v1/chat/completions", {"model": daemon.model_id, "messages": MESSAGES,
                                                             "max_tokens": 4, "prediction": prediction})
    assert status == 400, body
    assert body["error"]["param"].startswith("prediction") and needle in body["error"]["message"], body


def test_prediction_longer_than_the_context_is_a_400(daemon):
    huge = "word " * 10000
    status, body = daemon.post_json("/v1/completions", {"model": daemon.model_id, "prompt": "Hi", "max_tokens": 4,
                                                        "prediction": {"type": "content", "content": huge}})
    assert status == 400, body
    assert body["error"]["param"] == "prediction" and "context" in body["error"]["message"], body


def test_num_speculative_tokens_is_bounded(daemon):
    status, body = daemon.post_json("/v1/completions", {"model": daemon.model_id, "prompt": "Hi", "max_tokens": 4,
                                                        "num_speculative_tokens": 99})
    assert status == 400 and body["error"]["param"] == "num_speculative_tokens", body


def test_ngram_server_gives_the_same_text_and_counts_its_drafts(daemon, ngram_daemon):
    plain, _ = chat(daemon.openai_client(), daemon.model_id)
    for stream in (False, True):
        text, usage = chat(ngram_daemon.openai_client(), ngram_daemon.model_id, stream)
        assert text == plain
        assert usage.completion_tokens_details is None or not usage.completion_tokens_details.accepted_prediction_tokens
    m = spec_metrics(ngram_daemon)
    drafted, accepted = m["pagoda_spec_decode_num_draft_tokens"], m["pagoda_spec_decode_num_accepted_tokens"]
    assert drafted > 0 and 0 < accepted <= drafted
    assert m["pagoda_spec_decode_num_wasted_tokens"] == drafted - accepted
    assert m["pagoda_spec_decode_step_seconds"] > 0 and m["pagoda_spec_decode_estimated_plain_seconds"] > 0, m
    per_position = [v for k, v in m.items() if k.startswith("pagoda_spec_decode_num_accepted_tokens_per_pos{")]
    assert len(per_position) == 4 and sum(per_position) == accepted
    # A request may turn drafting off for itself: same text, no new drafts.
    text, _ = chat(ngram_daemon.openai_client(), ngram_daemon.model_id, extra_body={"num_speculative_tokens": 0})
    assert text == plain
    assert spec_metrics(ngram_daemon)["pagoda_spec_decode_num_draft_tokens"] == drafted


def run_daemon_to_exit(args):
    """pagodad with `args` that must refuse to start: its exit code and everything it printed."""
    if not os.path.exists(PAGODAD) or not os.path.exists(MODEL):
        pytest.skip(f"pagodad ({PAGODAD}) or the model ({MODEL}) is missing")
    p = subprocess.run([PAGODAD, "--model", MODEL, "--http-port", "0", "--grpc-port", "0", *args],
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def test_draft_mode_needs_a_usable_draft_model(tmp_path):
    code, out = run_daemon_to_exit(["--speculative", "draft"])
    assert code != 0 and "--draft-model" in out, out
    code, out = run_daemon_to_exit(["--speculative", "ngram", "--draft-model", MODEL])
    assert code != 0 and "--draft-model needs --speculative draft" in out, out
    code, out = run_daemon_to_exit(["--draft-model", str(tmp_path / "missing.gguf")])
    assert code != 0 and "missing.gguf" in out, out
    # A model with another vocabulary cannot draft: a start-up error that says why.
    tiny = tmp_path / "tiny.gguf"
    made = subprocess.run([PAGODA_CLI, "make-model", "--preset", "tiny", "--out", str(tiny)], capture_output=True,
                          text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    code, out = run_daemon_to_exit(["--draft-model", str(tiny)])
    assert code != 0 and "cannot draft for this model" in out, out


def test_draft_model_equal_to_the_target_keeps_every_draft(daemon):
    plain, _ = chat(daemon.openai_client(), daemon.model_id)
    d = start_daemon(["--draft-model", MODEL, "--num-speculative-tokens", "4"])
    try:
        assert "draft model:" in d.log_tail(200)
        for stream in (False, True):
            text, _ = chat(d.openai_client(), d.model_id, stream)
            assert text == plain
        m = spec_metrics(d)
        drafted, accepted = m["pagoda_spec_decode_num_draft_tokens"], m["pagoda_spec_decode_num_accepted_tokens"]
        assert drafted > 0 and accepted == drafted, m
        # Every draft kept, yet drafting with a model as large as the target costs k forwards a step: the
        # estimate says what it was worth, whichever way it went.
        step, plain = m["pagoda_spec_decode_step_seconds"], m["pagoda_spec_decode_estimated_plain_seconds"]
        assert step > 0 and plain > 0, m
        assert m["pagoda_spec_decode_estimated_speedup"] == pytest.approx(plain / step, rel=1e-3), m
    finally:
        d.stop()
