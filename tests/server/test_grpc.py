"""Client tests of pagodad's gRPC front end with a real grpcio client generated from proto/ at test time:
streaming Generate (text, token ids, chat, n > 1, logprobs), Tokenize / Detokenize / GetModelInfo,
grpc.health.v1, server reflection, cancellation and deadlines (KV blocks return to idle), error codes
for bad inputs, and 32 concurrent streams matching their sequential outputs.

The daemon comes from conftest.py's `daemon` fixture (PAGODAD / PAGODA_MODEL override the paths).
Run: .venv/bin/python -m pytest tests/server/test_grpc.py
"""
import re
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import grpc
import pytest
from grpc_tools import protoc

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SERVICE = "pagoda.v1.Generation"


# ---------------------------------------------------------------------------------------------- setup


class Stubs:
    """The generated modules: pb (pagoda.v1 messages), pb_grpc, health, health_grpc, refl, refl_grpc."""


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    out = tmp_path_factory.mktemp("grpc_stubs")
    include = str(resources.files("grpc_tools") / "_proto")
    args = ["grpc_tools.protoc", f"-I{ROOT / 'proto'}", f"-I{HERE / 'protos'}", f"-I{include}",
            f"--python_out={out}", f"--grpc_python_out={out}", "pagoda/v1/pagoda.proto",
            "pagoda_test/health.proto", "pagoda_test/reflection.proto"]
    assert protoc.main(args) == 0, "protoc failed on proto/pagoda/v1/pagoda.proto or the test protos"
    sys.path.insert(0, str(out))
    try:
        from pagoda.v1 import pagoda_pb2, pagoda_pb2_grpc
        from pagoda_test import health_pb2, health_pb2_grpc, reflection_pb2, reflection_pb2_grpc
    finally:
        sys.path.remove(str(out))
    s = Stubs()
    s.pb, s.pb_grpc = pagoda_pb2, pagoda_pb2_grpc
    s.health, s.health_grpc = health_pb2, health_pb2_grpc
    s.refl, s.refl_grpc = reflection_pb2, reflection_pb2_grpc
    return s


@pytest.fixture(scope="module")
def channel(daemon):
    ch = grpc.insecure_channel(f"127.0.0.1:{daemon.grpc_port}")
    grpc.channel_ready_future(ch).result(timeout=30)
    yield ch
    ch.close()


@pytest.fixture(scope="module")
def stub(stubs, channel):
    return stubs.pb_grpc.GenerationStub(channel)


# -------------------------------------------------------------------------------------------- helpers


def make_request(pb, text=None, token_ids=None, chat=None, max_tokens=16, temperature=0.0, n=None, **sampling):
    req = pb.GenerateRequest()
    if text is not None:
        req.text = text
    if token_ids is not None:
        req.token_ids.ids.extend(token_ids)
    if chat is not None:
        for role, content in chat:
            req.chat.messages.add(role=role, content=content)
    if temperature is not None:
        req.sampling.temperature = temperature
    for k, v in sampling.items():
        setattr(req.sampling, k, v)
    if max_tokens is not None:
        req.stop.max_tokens = max_tokens
    if n is not None:
        req.n = n
    return req


def collect(stub, req, timeout=120):
    """Runs Generate; returns {index: {"text", "ids", "final", "messages"}}."""
    choices = {}
    for msg in stub.Generate(req, timeout=timeout):
        c = choices.setdefault(msg.index, {"text": "", "ids": [], "final": None, "messages": []})
        assert c["final"] is None, "a message arrived after the choice's final message"
        c["text"] += msg.text
        c["ids"].extend(msg.token_ids)
        c["messages"].append(msg)
        if msg.finish_reason != 0:
            c["final"] = msg
    return choices


def greedy_text(stub, pb, prompt, max_tokens=16):
    choices = collect(stub, make_request(pb, text=prompt, max_tokens=max_tokens))
    assert list(choices) == [0]
    return choices[0]["text"]


def metric(daemon, name):
    """A gauge from GET /metrics on the HTTP port, or None when the HTTP gateway does not serve it."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{daemon.http_port}/metrics", timeout=10) as r:
            body = r.read().decode()
    except OSError:
        return None
    m = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.eE+-]+)$", body, re.M)
    return float(m.group(1)) if m else None


def wait_for_metric(daemon, name, want, timeout=20):
    value = metric(daemon, name)
    deadline = time.time() + timeout
    while value != want and time.time() < deadline:
        time.sleep(0.1)
        value = metric(daemon, name)
    return value


# -------------------------------------------------------------------------------------- 1. streaming


def test_generate_text_streams_deltas_and_final_usage(stub, stubs):
    pb = stubs.pb
    choices = collect(stub, make_request(pb, text="The capital of France is", max_tokens=16))
    assert list(choices) == [0]
    c = choices[0]
    final = c["final"]
    assert final is not None, "no final message with a finish reason"
    assert final.finish_reason in (pb.FINISH_REASON_LENGTH, pb.FINISH_REASON_STOP)
    assert final.usage.prompt_tokens > 0
    assert final.usage.completion_tokens == len(c["ids"]) > 0
    if final.finish_reason == pb.FINISH_REASON_LENGTH:
        assert len(c["ids"]) == 16
    assert all(m.finish_reason == 0 for m in c["messages"][:-1])
    assert not any(m.HasField("usage") for m in c["messages"][:-1])
    # The deltas concatenate to the whole output: the detokenized ids.
    full = stub.Detokenize(pb.DetokenizeRequest(token_ids=c["ids"], skip_special=True)).text
    assert c["text"] == full
    assert c["text"].strip()


def test_greedy_is_deterministic(stub, stubs):
    a = greedy_text(stub, stubs.pb, "Once upon a time")
    b = greedy_text(stub, stubs.pb, "Once upon a time")
    assert a == b


def test_token_ids_prompt_matches_text_prompt(stub, stubs):
    pb = stubs.pb
    prompt = "Water boils at"
    ids = list(stub.Tokenize(pb.TokenizeRequest(text=prompt, add_special=True)).token_ids)
    by_ids = collect(stub, make_request(pb, token_ids=ids))[0]
    by_text = collect(stub, make_request(pb, text=prompt))[0]
    assert by_ids["final"].usage.prompt_tokens == len(ids)
    assert by_ids["text"] == by_text["text"]


def test_chat_prompt(stub, stubs):
    pb = stubs.pb
    chat = [("system", "You are a helpful assistant."), ("user", "What is 2 + 2?")]
    c = collect(stub, make_request(pb, chat=chat, max_tokens=24))[0]
    assert c["final"].finish_reason in (pb.FINISH_REASON_LENGTH, pb.FINISH_REASON_STOP)
    assert c["text"].strip()
    # The prompt is the rendered template, so it is longer than the two messages' text alone.
    tok = stub.Tokenize(pb.TokenizeRequest(chat=pb.ChatMessages(
        messages=[pb.ChatMessage(role=r, content=t) for r, t in chat])))
    assert c["final"].usage.prompt_tokens == len(tok.token_ids)


def test_n2_sampled_returns_two_choices(stub, stubs):
    pb = stubs.pb
    choices = collect(stub, make_request(pb, text="My favourite animal is", n=2, temperature=0.9, seed=7,
                                         max_tokens=12))
    assert sorted(choices) == [0, 1]
    for c in choices.values():
        assert c["final"] is not None
        assert c["final"].usage.completion_tokens == len(c["ids"]) > 0
    # A fixed seed reproduces both choices.
    again = collect(stub, make_request(pb, text="My favourite animal is", n=2, temperature=0.9, seed=7,
                                       max_tokens=12))
    assert [again[i]["ids"] for i in (0, 1)] == [choices[i]["ids"] for i in (0, 1)]


def test_logprobs(stub, stubs):
    pb = stubs.pb
    c = collect(stub, make_request(pb, text="Hello", max_tokens=4, logprobs=3))[0]
    token_msgs = [m for m in c["messages"] if m.token_ids]
    assert token_msgs
    for m in token_msgs:
        assert len(m.logprobs) == len(m.token_ids)
        lp = m.logprobs[0]
        assert lp.chosen.token_id == m.token_ids[0]
        assert lp.chosen.logprob <= 0.0
        assert len(lp.top) == 3
        assert lp.top[0].token_id == lp.chosen.token_id  # greedy takes the most likely token
        assert lp.top[0].logprob >= lp.top[1].logprob >= lp.top[2].logprob


def test_stop_string_is_not_emitted(stub, stubs):
    pb = stubs.pb
    base = greedy_text(stub, pb, "Count: 1, 2, 3,", max_tokens=16)
    assert len(base) > 4
    stop = base[2:4]
    req = make_request(pb, text="Count: 1, 2, 3,", max_tokens=16)
    req.stop.stop.append(stop)
    c = collect(stub, req)[0]
    assert c["final"].finish_reason == pb.FINISH_REASON_STOP
    assert stop not in c["text"]
    assert base.startswith(c["text"])


def test_tokenize_detokenize_model_info(stub, stubs):
    pb = stubs.pb
    tok = stub.Tokenize(pb.TokenizeRequest(text="Hello world", add_special=False))
    assert len(tok.token_ids) == len(tok.pieces) > 0
    assert "".join(tok.pieces) == "Hello world"
    assert stub.Detokenize(pb.DetokenizeRequest(token_ids=tok.token_ids)).text == "Hello world"
    special = stub.Tokenize(pb.TokenizeRequest(text="<|im_start|>", parse_special=True))
    assert len(special.token_ids) == 1 and special.pieces[0] == "<|im_start|>"
    plain = stub.Tokenize(pb.TokenizeRequest(text="<|im_start|>", parse_special=False))
    assert len(plain.token_ids) > 1
    info = stub.GetModelInfo(pb.GetModelInfoRequest())
    assert info.vocab_size > 0 and info.context_length > 0 and info.n_layers > 0 and info.d_model > 0
    assert info.id and info.architecture and info.backend and info.chat_template
    with pytest.raises(grpc.RpcError) as e:
        stub.Detokenize(pb.DetokenizeRequest(token_ids=[info.vocab_size + 3]))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(info.vocab_size + 3) in e.value.details()


# ------------------------------------------------------------------------------ 2. health, reflection


def test_health_serving(stubs, channel):
    h = stubs.health_grpc.HealthStub(channel)
    for service in ("", SERVICE):
        resp = h.Check(stubs.health.HealthCheckRequest(service=service), timeout=10)
        assert resp.status == stubs.health.HealthCheckResponse.SERVING, service


def test_reflection_lists_services(stubs, channel):
    r = stubs.refl_grpc.ServerReflectionStub(channel)
    responses = list(r.ServerReflectionInfo(iter([stubs.refl.ServerReflectionRequest(list_services="*")]), timeout=10))
    assert len(responses) == 1
    names = {s.name for s in responses[0].list_services_response.service}
    assert SERVICE in names
    assert "grpc.health.v1.Health" in names
    # The service's file descriptor is served too (what grpcurl needs).
    responses = list(r.ServerReflectionInfo(iter([stubs.refl.ServerReflectionRequest(file_containing_symbol=SERVICE)]),
                                            timeout=10))
    assert responses[0].file_descriptor_response.file_descriptor_proto


# ---------------------------------------------------------------------------------- 3. cancellation


def _long_request(pb, text, max_tokens=1500):
    req = make_request(pb, text=text, max_tokens=max_tokens)
    req.stop.ignore_eos = True
    return req


def test_cancel_mid_stream_frees_kv_blocks(stub, stubs, daemon):
    pb = stubs.pb
    idle = wait_for_metric(daemon, "pagoda_kv_blocks_used", 0.0)
    call = stub.Generate(_long_request(pb, "Write a very long story about a dragon."), timeout=300)
    got = 0
    for msg in call:
        got += len(msg.token_ids)
        if got >= 3:
            break
    busy = metric(daemon, "pagoda_kv_blocks_used")
    call.cancel()
    with pytest.raises(grpc.RpcError) as e:
        for _ in call:
            pass
    assert e.value.code() == grpc.StatusCode.CANCELLED
    if idle is not None:
        assert busy is None or busy > idle, "the running request held no KV blocks"
        assert wait_for_metric(daemon, "pagoda_kv_blocks_used", idle) == idle, "KV blocks were not freed after cancel"
        assert wait_for_metric(daemon, "pagoda_requests_in_flight", 0.0) == 0.0
    # The engine goes on serving.
    assert greedy_text(stub, pb, "The sky is")


def test_deadline_cancels_request(stub, stubs, daemon):
    pb = stubs.pb
    idle = wait_for_metric(daemon, "pagoda_kv_blocks_used", 0.0)
    with pytest.raises(grpc.RpcError) as e:
        for _ in stub.Generate(_long_request(pb, "Tell me everything about the ocean."), timeout=1.0):
            pass
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    if idle is not None:
        assert wait_for_metric(daemon, "pagoda_kv_blocks_used", idle) == idle
        assert wait_for_metric(daemon, "pagoda_requests_in_flight", 0.0) == 0.0
    assert greedy_text(stub, pb, "The sky is")


def test_many_cancels_and_deadlines_leave_nothing_running(stub, stubs, daemon):
    """Streams cancelled at random points (before the first message, mid-stream, by deadline) from many
    threads: every request ends in the engine and the daemon keeps serving."""
    import random

    pb = stubs.pb

    def one(i):
        rng = random.Random(i)
        req = _long_request(pb, f"Story number {i}:", max_tokens=rng.randint(8, 300))
        mode = i % 4
        try:
            if mode == 0:  # deadline
                for _ in stub.Generate(req, timeout=rng.uniform(0.02, 0.5)):
                    pass
            elif mode == 1:  # cancel before reading anything
                call = stub.Generate(req, timeout=60)
                call.cancel()
            elif mode == 2:  # cancel after a few messages
                call = stub.Generate(req, timeout=60)
                for k, _ in enumerate(call):
                    if k >= rng.randint(0, 6):
                        call.cancel()
                        break
            else:  # read to the end
                for _ in stub.Generate(req, timeout=120):
                    pass
        except grpc.RpcError as e:
            assert e.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED), e
        return mode

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(one, range(48)))
    if metric(daemon, "pagoda_requests_in_flight") is not None:
        assert wait_for_metric(daemon, "pagoda_requests_in_flight", 0.0, timeout=60) == 0.0
    assert greedy_text(stub, pb, "The sky is")
    assert daemon.proc.poll() is None


# ------------------------------------------------------------------------------------ 4. bad inputs


def _bad_requests(pb, vocab_size):
    no_prompt = pb.GenerateRequest()
    no_prompt.stop.max_tokens = 4
    return [
        ("empty text", make_request(pb, text=""), "empty"),
        ("no prompt", no_prompt, "prompt"),
        ("max_tokens -1", make_request(pb, text="Hi", max_tokens=-1), "max_tokens"),
        ("max_tokens 1e9", make_request(pb, text="Hi", max_tokens=10**9), "context"),
        ("temperature -1", make_request(pb, text="Hi", temperature=-1.0), "temperature"),
        ("top_p 0", make_request(pb, text="Hi", top_p=0.0), "top_p"),
        ("n 0", make_request(pb, text="Hi", n=0), "n must be"),
        # Found by tests/fuzz/grpc_request_fuzz: the output stage was built from n before n was checked,
        # so n = -1 threw out of vector::reserve and ended the daemon; a huge n allocated per choice.
        ("n -1", make_request(pb, text="Hi", n=-1), "n must be"),
        ("n 2^31-1", make_request(pb, text="Hi", n=2**31 - 1), "n must be"),
        ("token id out of vocab", make_request(pb, token_ids=[1, vocab_size + 5]), "vocabulary"),
        ("negative token id", make_request(pb, token_ids=[-1]), "vocabulary"),
        ("unknown chat role", make_request(pb, chat=[("wizard", "hi")]), "role"),
        ("logprobs 100", make_request(pb, text="Hi", logprobs=100), "logprobs"),
        ("logprobs -1", make_request(pb, text="Hi", logprobs=-1), "logprobs"),
        ("top_k -1", make_request(pb, text="Hi", top_k=-1), "top_k"),
    ]


def test_bad_inputs_give_invalid_argument(stub, stubs):
    pb = stubs.pb
    vocab = stub.GetModelInfo(pb.GetModelInfoRequest()).vocab_size
    for name, req, word in _bad_requests(pb, vocab):
        with pytest.raises(grpc.RpcError) as e:
            collect(stub, req)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, e.value.code(), e.value.details())
        assert word in e.value.details(), (name, e.value.details())
        # A good request right after still succeeds.
        c = collect(stub, make_request(pb, text="Good morning", max_tokens=2))[0]
        assert c["final"] is not None and len(c["ids"]) >= 1, name


def test_max_tokens_over_context_names_the_limit(stub, stubs):
    pb = stubs.pb
    info = stub.GetModelInfo(pb.GetModelInfoRequest())
    with pytest.raises(grpc.RpcError) as e:
        collect(stub, make_request(pb, text="Hi", max_tokens=info.context_length))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(info.context_length) in e.value.details()


def test_tokenize_errors(stub, stubs):
    pb = stubs.pb
    with pytest.raises(grpc.RpcError) as e:
        stub.Tokenize(pb.TokenizeRequest())
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as e:
        stub.Tokenize(pb.TokenizeRequest(chat=pb.ChatMessages(messages=[pb.ChatMessage(role="robot", content="x")])))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "role" in e.value.details()


# ------------------------------------------------------------------------------------ 5. concurrency


def test_32_concurrent_streams_match_sequential(stub, stubs):
    pb = stubs.pb
    subjects = ["cats", "the moon", "rivers", "bread", "music", "winter", "trains", "gardens", "the sea", "clocks",
                "mountains", "bees", "libraries", "rain", "castles", "coffee"]
    prompts = [f"Here is a short fact about {s}:" for s in subjects] + [f"My favourite thing about {s} is" for s in subjects]
    sequential = [greedy_text(stub, pb, p) for p in prompts]
    barrier = threading.Barrier(len(prompts))

    def run(p):
        barrier.wait(timeout=60)
        return greedy_text(stub, pb, p)

    with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
        concurrent = list(pool.map(run, prompts))
    for p, a, b in zip(prompts, sequential, concurrent):
        assert a == b, f"{p!r}: sequential {a!r} != concurrent {b!r}"


# ---------------------------------------------------------------------------------------------- drain


def test_sigterm_drains_running_stream(stubs):
    """SIGTERM: health turns NOT_SERVING, new calls get UNAVAILABLE, the running stream still completes."""
    import conftest

    pb = stubs.pb
    d = conftest.start_daemon()
    try:
        ch = grpc.insecure_channel(f"127.0.0.1:{d.grpc_port}")
        stub = stubs.pb_grpc.GenerationStub(ch)
        health = stubs.health_grpc.HealthStub(ch)
        call = stub.Generate(_long_request(pb, "Describe a long walk through a forest.", max_tokens=400), timeout=120)
        first = next(call)
        d.proc.terminate()
        status, deadline = None, time.time() + 10
        while time.time() < deadline:
            status = health.Check(stubs.health.HealthCheckRequest(service=SERVICE), timeout=5).status
            if status == stubs.health.HealthCheckResponse.NOT_SERVING:
                break
            time.sleep(0.05)
        assert status == stubs.health.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.RpcError) as e:
            collect(stub, make_request(pb, text="Hi", max_tokens=2))
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE, e.value.details()
        rest = list(call)
        ids = list(first.token_ids) + [t for m in rest for t in m.token_ids]
        assert rest[-1].finish_reason == pb.FINISH_REASON_LENGTH
        assert len(ids) == 400
        assert d.proc.wait(timeout=60) == 0, d.log_tail()
        ch.close()
    finally:
        d.stop()


def test_prediction_changes_nothing_and_usage_counts_it(stub, stubs):
    pb = stubs.pb
    passage = "Alpha beta gamma delta. Alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu."
    chat = [("user", "Repeat this text exactly:\n" + passage)]
    plain_req = make_request(pb, chat=chat, max_tokens=40)
    plain_req.num_speculative_tokens = 0  # no drafts at all (the server's default, auto, might draft)
    plain = collect(stub, plain_req)[0]
    req = make_request(pb, chat=chat, max_tokens=40)
    req.prediction_text = passage
    req.num_speculative_tokens = 4  # up to 4 drafts a step, whatever the cost model of the default (auto) says
    got = collect(stub, req)[0]
    assert got["ids"] == plain["ids"]
    usage = got["final"].usage
    assert plain["final"].usage.draft_tokens == 0
    assert 0 < usage.accepted_draft_tokens <= usage.draft_tokens
    assert usage.accepted_draft_tokens < usage.completion_tokens
    bad = make_request(pb, chat=chat, max_tokens=4)
    bad.num_speculative_tokens = 99
    with pytest.raises(grpc.RpcError) as e:
        collect(stub, bad)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "num_speculative_tokens" in e.value.details()
