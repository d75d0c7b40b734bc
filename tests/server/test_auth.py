"""API keys (issue 15, security): with --api-key / --api-key-file every HTTP path but the open ones needs
`Authorization: Bearer <key>` (401 in OpenAI's error shape otherwise, the official SDK raising its
AuthenticationError), every pagoda.v1.Generation call the same in gRPC metadata (UNAUTHENTICATED), while
/health, /ready and gRPC health stay open for probes; --open-paths can open /metrics; a bad key file stops
start-up with a clear error."""
import os
import socket
import subprocess

import grpc
import pytest

from conftest import MODEL, PAGODAD, daemon_env, grpc_stubs, start_daemon

KEY, FILE_KEY = "sk-test-0123456789", "sk-file-abcdef"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    key_file = tmp_path_factory.mktemp("keys") / "keys.txt"
    key_file.write_text(f"# keys for the test\n\n  {FILE_KEY}  \n")
    d = start_daemon(["--api-key", KEY, "--api-key-file", str(key_file)], api_key=KEY)
    yield d
    d.stop()


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    m = grpc_stubs(tmp_path_factory.mktemp("auth_stubs"), "pagoda_test/health.proto")
    return m["pagoda_pb2"], m["pagoda_pb2_grpc"], m["health_pb2"], m["health_pb2_grpc"]


def test_http_needs_a_key_except_on_the_probes(keyed):
    for path in ("/health", "/ready"):
        status, _, _ = keyed.request("GET", path, headers={"Authorization": ""})
        assert status == 200, path
    body = {"model": keyed.model_id, "prompt": "Hi", "max_tokens": 2}
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong-key"}, {"Authorization": KEY},
                    {"Authorization": f"Basic {KEY}"}, {"Authorization": f"Bearer {KEY}x"}):
        for method, path, b in (("GET", "/metrics", None), ("GET", "/v1/models", None),
                                ("POST", "/v1/completions", body)):
            status, hdrs, raw = keyed.request(method, path, b, headers=headers)
            assert status == 401, (path, headers, raw)
            assert hdrs.get("www-authenticate") == "Bearer"
            assert b'"invalid_api_key"' in raw, raw
    # Every other route and spelling is closed too, and a body is never read without a key.
    no_key = {"Authorization": ""}
    for method, path in (("POST", "/v1/chat/completions"), ("GET", "/v1/models/x"), ("GET", "/nope"),
                         ("GET", "/health/"), ("GET", "/HEALTH"), ("HEAD", "/v1/models"), ("OPTIONS", "/metrics")):
        assert keyed.request(method, path, headers=no_key)[0] == 401, (method, path)
    assert keyed.request("GET", "/health?probe=1", headers=no_key)[0] == 200
    # A body announced with Expect: 100-continue gets 401 at once, not 100 Continue: it is never read.
    with socket.create_connection(("127.0.0.1", keyed.http_port), timeout=30) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 500000\r\nExpect: 100-continue\r\n\r\n")
        head = s.recv(4096).decode(errors="replace")
    assert head.startswith("HTTP/1.1 401") and "connection: close" in head.lower(), head
    for key in (KEY, FILE_KEY):
        status, _, raw = keyed.request("POST", "/v1/completions", body, headers={"Authorization": f"bearer {key}"})
        assert status == 200, raw
    # The keys never reach the log.
    assert KEY not in keyed.log_tail(400) and FILE_KEY not in keyed.log_tail(400)
    assert "2 API key(s)" in keyed.log_tail(400)


def test_openai_sdk_with_and_without_the_key(keyed):
    import openai
    ok = keyed.openai_client().chat.completions.create(model=keyed.model_id, max_tokens=2,
                                                       messages=[{"role": "user", "content": "Hi"}])
    assert ok.choices[0].message.content is not None
    with pytest.raises(openai.AuthenticationError):
        keyed.openai_client(api_key="not-the-key").models.list()


def test_grpc_needs_the_key_in_metadata_but_health_stays_open(keyed, pb):
    pagoda_pb2, pagoda_pb2_grpc, health_pb2, health_pb2_grpc = pb
    with grpc.insecure_channel(f"127.0.0.1:{keyed.grpc_port}") as ch:
        health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=30)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        stub = pagoda_pb2_grpc.GenerationStub(ch)
        req = pagoda_pb2.GenerateRequest(text="Hi")
        req.stop.max_tokens = 2
        for md in ((), (("authorization", "Bearer nope"),)):
            with pytest.raises(grpc.RpcError) as e:
                list(stub.Generate(req, metadata=md, timeout=30))
            assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED, e.value
            for call, msg in ((stub.GetModelInfo, pagoda_pb2.GetModelInfoRequest()),
                              (stub.Tokenize, pagoda_pb2.TokenizeRequest(text="Hi")),
                              (stub.Detokenize, pagoda_pb2.DetokenizeRequest(token_ids=[1]))):
                with pytest.raises(grpc.RpcError) as e:
                    call(msg, metadata=md, timeout=30)
                assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        good = (("authorization", f"Bearer {FILE_KEY}"),)
        assert stub.GetModelInfo(pagoda_pb2.GetModelInfoRequest(), metadata=good, timeout=30).id == keyed.model_id
        assert list(stub.Generate(req, metadata=good, timeout=60))[-1].usage.completion_tokens >= 1


def test_open_paths_and_bad_key_files(tmp_path):
    d = start_daemon(["--api-key", KEY, "--open-paths", "/health,/ready,/metrics"], api_key=KEY)
    try:
        no_key = {"Authorization": ""}
        assert d.request("GET", "/metrics", headers=no_key)[0] == 200
        assert d.request("GET", "/v1/models", headers=no_key)[0] == 401
    finally:
        d.stop()
    if not os.path.exists(PAGODAD) or not os.path.exists(MODEL):
        pytest.skip("pagodad or the model is missing")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    spaced = tmp_path / "spaced.txt"
    spaced.write_text("good-key\nhas a space\n")
    for args, needle in ((["--api-key-file", str(tmp_path / "missing.txt")], "cannot read"),
                         (["--api-key-file", str(empty)], "no key"),
                         (["--api-key-file", str(spaced)], "line 2"),
                         (["--api-key-file", ""], "path is empty"),
                         (["--api-key", "caf\u00e9-key"], "visible ASCII"),
                         (["--open-paths", "metrics"], "--open-paths")):
        p = subprocess.run([PAGODAD, "--model", MODEL, "--http-port", "0", "--grpc-port", "0", *args], env=daemon_env(),
                           capture_output=True, text=True, timeout=60)
        assert p.returncode != 0 and needle in p.stdout + p.stderr, (args, p.stdout, p.stderr)
