"""Hostile and malformed input: each case gets the documented status and an OpenAI error JSON naming what
was wrong, while a background thread keeps making good requests that must all succeed. Also the
transport's limits: slow headers, idle keep-alive, malformed HTTP."""
import http.client
import json
import socket
import threading
import time

import pytest

from conftest import start_daemon

MAX_BODY = 16384
MAX_MODEL_LEN = 512
HEADER_TIMEOUT_S = 2
IDLE_TIMEOUT_S = 2


@pytest.fixture(scope="module")
def daemon():
    d = start_daemon(["--max-body-bytes", str(MAX_BODY), "--max-model-len", str(MAX_MODEL_LEN),
                      "--header-timeout-s", str(HEADER_TIMEOUT_S), "--idle-timeout-s", str(IDLE_TIMEOUT_S)])
    yield d
    d.stop()


class Background:
    def __init__(self, daemon):
        self.daemon, self.ok, self.failures = daemon, 0, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        i = 0
        while not self.stop.is_set():
            i += 1
            path, body = (("/v1/completions", {"prompt": f"Good request {i}:", "max_tokens": 2}) if i % 2 else
                          ("/v1/chat/completions", {"messages": [{"role": "user", "content": f"Hi {i}"}], "max_tokens": 2}))
            try:
                status, resp = self.daemon.post_json(path, body)
                if status == 200 and resp["usage"]["completion_tokens"] >= 1:
                    self.ok += 1
                else:
                    self.failures.append((status, resp))
            except Exception as e:  # noqa: BLE001 - any failure of a good request is a test failure
                self.failures.append((time.time(), path, repr(e)))


@pytest.fixture(scope="module")
def background(daemon):
    b = Background(daemon)
    yield b
    b.stop.set()
    b.thread.join(timeout=60)


C, CHAT = "/v1/completions", "/v1/chat/completions"
MSG = [{"role": "user", "content": "Hi"}]

# (id, method, path, body (dict -> JSON, bytes as is), status, message fragment)
CASES = [
    ("malformed-json", "POST", C, b'{"prompt": "hi",', 400, "not valid JSON"),
    ("non-object-body", "POST", C, b"[1, 2, 3]", 400, "must be a JSON object"),
    ("empty-body", "POST", C, b"", 400, "not valid JSON"),
    ("max-tokens-string", "POST", C, {"prompt": "hi", "max_tokens": "ten"}, 400, "'max_tokens' must be an integer, got a string"),
    ("max-tokens-float", "POST", C, {"prompt": "hi", "max_tokens": 2.5}, 400, "'max_tokens' must be an integer"),
    ("temperature-string", "POST", C, {"prompt": "hi", "temperature": "hot"}, 400, "'temperature' must be a number"),
    ("messages-not-list", "POST", CHAT, {"messages": "hi"}, 400, "'messages' must be an array"),
    ("stop-number", "POST", C, {"prompt": "hi", "stop": 5}, 400, "'stop' must be a string or an array of strings"),
    ("stop-too-many", "POST", C, {"prompt": "hi", "stop": ["a", "b", "c", "d", "e"]}, 400, "at most 4"),
    ("max-tokens-negative", "POST", C, {"prompt": "hi", "max_tokens": -5}, 400, "'max_tokens' must be at least 1, got -5"),
    ("max-tokens-zero", "POST", CHAT, {"messages": MSG, "max_tokens": 0}, 400, "'max_tokens' must be at least 1"),
    ("max-tokens-huge", "POST", C, {"prompt": "hi", "max_tokens": 10**9}, 400, f"maximum context length is {MAX_MODEL_LEN} tokens"),
    ("prompt-over-context", "POST", C, {"prompt": "hello " * 600, "max_tokens": 4}, 400, f"maximum context length is {MAX_MODEL_LEN}"),
    ("chat-over-context", "POST", CHAT, {"messages": [{"role": "user", "content": "hello " * 600}]}, 400, "maximum context length"),
    ("empty-prompt", "POST", C, {"prompt": ""}, 400, "'prompt' is empty"),
    ("empty-prompt-list", "POST", C, {"prompt": []}, 400, "'prompt' is empty"),
    ("missing-prompt", "POST", C, {"max_tokens": 3}, 400, "'prompt' is required"),
    ("batched-prompts", "POST", C, {"prompt": ["a", "b"]}, 400, "batched prompts are not supported"),
    ("token-id-out-of-vocab", "POST", C, {"prompt": [1, 999999999]}, 400, "outside the vocabulary"),
    ("token-id-negative", "POST", C, {"prompt": [1, -3]}, 400, "is not a token id"),
    ("invalid-utf8-bytes", "POST", C, b'{"prompt": "caf\xc3\x28 \xff", "max_tokens": 2}', 400, "UTF-8"),
    ("lone-surrogate-escape", "POST", C, b'{"prompt": "x\\ud800y", "max_tokens": 2}', 400, "not valid JSON"),
    ("unknown-model", "POST", C, {"model": "gpt-4", "prompt": "hi"}, 404, "The model 'gpt-4' does not exist"),
    ("model-not-string", "POST", C, {"model": 5, "prompt": "hi"}, 400, "'model' must be a string"),
    ("unknown-field", "POST", C, {"prompt": "hi", "foo": 1}, 400, "Unrecognized request argument supplied: foo"),
    ("unknown-fields", "POST", CHAT, {"messages": MSG, "foo": 1, "bar": 2}, 400, "Unrecognized request arguments supplied: bar, foo"),
    ("echo-logprobs", "POST", C, {"prompt": "hi", "echo": True, "logprobs": 1}, 400, "prompt's log-probabilities"),
    ("best-of", "POST", C, {"prompt": "hi", "best_of": 3}, 400, "'best_of' (3) other than 'n' (1)"),
    ("suffix", "POST", C, {"prompt": "hi", "suffix": "end"}, 400, "'suffix' needs a model trained for fill-in-the-middle"),
    ("logit-bias-key", "POST", C, {"prompt": "hi", "logit_bias": {"abc": -100}}, 400, "'logit_bias' keys must be token ids, got 'abc'"),
    ("logit-bias-range", "POST", C, {"prompt": "hi", "logit_bias": {"5": 101}}, 400, "'logit_bias.5' must be between -100 and 100"),
    ("logit-bias-twice", "POST", C, {"prompt": "hi", "logit_bias": {"7": 1, "07": 1}}, 400, "'logit_bias' names token 7 twice"),
    ("logit-bias-vocab", "POST", C, {"prompt": "hi", "logit_bias": {"5000000": 1}}, 400, "logit_bias token id 5000000 is outside the vocabulary"),
    ("n-zero", "POST", C, {"prompt": "hi", "n": 0}, 400, "'n' must be between 1 and 16, got 0"),
    ("n-100", "POST", CHAT, {"messages": MSG, "n": 100}, 400, "'n' must be between 1 and 16, got 100"),
    ("top-p-zero", "POST", C, {"prompt": "hi", "top_p": 0}, 400, "'top_p' must be in (0, 1]"),
    ("temperature-3", "POST", CHAT, {"messages": MSG, "temperature": 3}, 400, "'temperature' must be between 0 and 2, got 3"),
    ("presence-penalty-5", "POST", C, {"prompt": "hi", "presence_penalty": 5}, 400, "'presence_penalty' must be between -2 and 2"),
    ("logprobs-50", "POST", C, {"prompt": "hi", "logprobs": 50}, 400, "'logprobs' must be between 0 and 20, got 50"),
    ("chat-logprobs-int", "POST", CHAT, {"messages": MSG, "logprobs": 5}, 400, "'logprobs' must be a boolean"),
    ("top-logprobs-without-logprobs", "POST", CHAT, {"messages": MSG, "top_logprobs": 2}, 400, "'top_logprobs' requires 'logprobs'"),
    ("top-logprobs-30", "POST", CHAT, {"messages": MSG, "logprobs": True, "top_logprobs": 30}, 400, "'top_logprobs' must be between 0 and 20"),
    ("unsupported-role", "POST", CHAT, {"messages": [{"role": "function", "content": "x"}]}, 400,
     "'messages[0].role' is 'function'"),
    ("tool-without-call-id", "POST", CHAT, {"messages": [{"role": "tool", "content": "x"}]}, 400,
     "'messages[0].tool_call_id' is required"),
    ("missing-role", "POST", CHAT, {"messages": [{"content": "x"}]}, 400, "'messages[0].role' is required"),
    ("message-not-object", "POST", CHAT, {"messages": ["hi"]}, 400, "'messages[0]' must be an object, got a string"),
    ("empty-messages", "POST", CHAT, {"messages": []}, 400, "at least one message"),
    ("image-part", "POST", CHAT, {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     400, "only 'text' content parts"),
    ("tools", "POST", CHAT, {"messages": MSG, "tools": [{"type": "function", "function": {"name": "f g"}}]}, 400,
     "function.name"),
    ("tool-choice", "POST", CHAT, {"messages": MSG, "tool_choice": "auto"}, 400, "needs 'tools'"),
    ("response-format-yaml", "POST", CHAT, {"messages": MSG, "response_format": {"type": "yaml"}}, 400, "'response_format.type'"),
    ("stream-not-bool", "POST", C, {"prompt": "hi", "stream": "yes"}, 400, "'stream' must be a boolean"),
    ("stream-options-without-stream", "POST", C, {"prompt": "hi", "stream_options": {"include_usage": True}}, 400,
     "only allowed when 'stream' is true"),
    ("max-tokens-disagree", "POST", CHAT, {"messages": MSG, "max_tokens": 3, "max_completion_tokens": 4}, 400, "disagree"),
    ("oversized-body", "POST", C, {"prompt": "x" * (MAX_BODY + 100)}, 413, f"limit of {MAX_BODY} bytes"),
    ("get-completions", "GET", C, None, 405, "not allowed"),
    ("post-health", "POST", "/health", b"{}", 405, "not allowed"),
    ("unknown-route", "GET", "/v1/embeddings", None, 404, "Unknown route"),
    ("unknown-model-path", "GET", "/v1/models/nope", None, 404, "'nope' does not exist"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(daemon, background, case):
    _, method, path, body, status, fragment = case
    got_status, headers, raw = daemon.request(method, path, body)
    assert got_status == status, raw
    assert headers["content-type"] == "application/json"
    err = json.loads(raw)["error"]
    assert fragment in err["message"], err
    assert set(err) == {"message", "type", "param", "code"}
    if status == 405:
        assert headers["allow"] in ("GET", "POST")


def test_deeply_nested_json_is_refused_not_fatal(daemon, background):
    # Nesting is refused past 64 levels while parsing (this fixture's 16 KB body limit allows ~8,000;
    # the default 1 MiB allowed 100,000, which overflowed an I/O thread's stack before the limit).
    nested = "[" * 5_000 + "]" * 5_000
    body = '{"messages": [{"role": "user", "content": "hi"}], "response_format": {"x": ' + nested + "}}"
    status, _, raw = daemon.request("POST", "/v1/chat/completions", body)
    assert status == 400 and "deeper than" in json.loads(raw)["error"]["message"], raw
    assert daemon.proc.poll() is None


def test_chunked_body_over_limit(daemon, background):
    conn = http.client.HTTPConnection("127.0.0.1", daemon.http_port, timeout=30)
    try:
        chunks = (b"x" * 4096 for _ in range(8))  # no Content-Length: the limit applies while reading
        conn.request("POST", C, body=chunks, headers={"Content-Type": "application/json"}, encode_chunked=True)
        r = conn.getresponse()
        assert r.status == 413 and "limit" in json.loads(r.read())["error"]["message"]
    finally:
        conn.close()


def test_malformed_http(daemon, background):
    with socket.create_connection(("127.0.0.1", daemon.http_port), timeout=10) as s:
        s.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        data = s.recv(4096)
    assert data.startswith(b"HTTP/1.1 400")


def test_slow_headers_are_cut_off(daemon, background):
    """Slowloris: a client that trickles header bytes is disconnected after the header timeout."""
    t0 = time.time()
    with socket.create_connection(("127.0.0.1", daemon.http_port), timeout=10) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")
        closed = False
        while time.time() - t0 < HEADER_TIMEOUT_S + 4:
            try:
                s.sendall(b"X-Slow: a\r\n")
                s.settimeout(0.5)
                if s.recv(4096) == b"":
                    closed = True
                    break
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                closed = True
                break
    assert closed, "the connection survived past the header timeout"
    assert time.time() - t0 < HEADER_TIMEOUT_S + 3


def test_idle_keep_alive_is_closed(daemon, background):
    with socket.create_connection(("127.0.0.1", daemon.http_port), timeout=IDLE_TIMEOUT_S + 5) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        t0 = time.time()
        assert s.recv(4096) == b""  # closed by the server after the idle timeout
        assert IDLE_TIMEOUT_S - 0.5 < time.time() - t0 < IDLE_TIMEOUT_S + 2


def test_background_requests_all_succeeded(background):
    time.sleep(0.5)
    background.stop.set()
    background.thread.join(timeout=60)
    assert not background.failures, background.failures[:5]
    assert background.ok >= 5
