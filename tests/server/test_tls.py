"""TLS (issue 15, security): with --tls-cert / --tls-key both ports speak TLS only. The test makes its own
self-signed certificate (openssl), then talks to the daemon as clients do: the official `openai` SDK and
raw HTTPS (plain and streamed), and grpcio with SSL channel credentials. A plaintext client on either
port gets no answer and does not disturb the daemon; a bad certificate/key pair stops start-up with a
clear error (exit 2) before the model loads."""
import json
import socket
import ssl
import subprocess
import time

import grpc
import pytest

from conftest import MODEL, PAGODAD, daemon_env, start_daemon


def make_cert(directory, name, cn="localhost"):
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={cn}",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    return d, make_cert(d, "server"), make_cert(d, "other")


@pytest.fixture(scope="module")
def tls_daemon(certs):
    _, (cert, key), _ = certs
    d = start_daemon(["--tls-cert", str(cert), "--tls-key", str(key)], tls_ca=str(cert))
    yield d
    d.stop()


def test_https_with_the_openai_sdk_and_raw_requests(tls_daemon):
    assert tls_daemon.get_json("/health")["status"] == "ok"
    client = tls_daemon.openai_client()
    plain = client.completions.create(model=tls_daemon.model_id, prompt="The capital of France is", max_tokens=6,
                                      temperature=0)
    assert plain.usage.completion_tokens == 6 and plain.choices[0].text
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=tls_daemon.model_id, prompt="The capital of France is", max_tokens=6, temperature=0, stream=True)
        if c.choices)
    assert streamed == plain.choices[0].text
    chat = client.chat.completions.create(model=tls_daemon.model_id, max_tokens=4, temperature=0,
                                          messages=[{"role": "user", "content": "Hi"}])
    assert chat.choices[0].message.content
    assert "TLS from" in tls_daemon.log_tail(400)


def test_grpc_over_tls(tls_daemon, certs, pb):
    pagoda_pb2, pagoda_pb2_grpc = pb
    _, (cert, _), (other_cert, _) = certs
    req = pagoda_pb2.GenerateRequest(text="The capital of France is")
    req.stop.max_tokens = 4
    req.stop.ignore_eos = True  # sampled (no temperature): exactly 4 tokens even where one is the EOS
    creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{tls_daemon.grpc_port}", creds) as ch:
        stub = pagoda_pb2_grpc.GenerationStub(ch)
        assert stub.GetModelInfo(pagoda_pb2.GetModelInfoRequest(), timeout=30).id == tls_daemon.model_id
        assert list(stub.Generate(req, timeout=60))[-1].usage.completion_tokens == 4
    # A client that trusts another CA refuses the server's certificate.
    wrong = grpc.ssl_channel_credentials(root_certificates=other_cert.read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{tls_daemon.grpc_port}", wrong) as ch:
        with pytest.raises(grpc.RpcError) as e:
            pagoda_pb2_grpc.GenerationStub(ch).GetModelInfo(pagoda_pb2.GetModelInfoRequest(), timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE


def test_plaintext_clients_get_nothing_and_disturb_nothing(tls_daemon, pb):
    pagoda_pb2, pagoda_pb2_grpc = pb
    # Plain HTTP on the TLS port: the handshake fails and the connection closes, no response.
    with socket.create_connection(("127.0.0.1", tls_daemon.http_port), timeout=30) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        assert not data.startswith(b"HTTP/"), data[:100]
    # A client that connects and sends nothing is dropped after the header timeout, not held.
    with socket.create_connection(("127.0.0.1", tls_daemon.http_port), timeout=60) as s:
        t0 = time.time()
        assert s.recv(16) == b""
        assert time.time() - t0 < 30
    with grpc.insecure_channel(f"127.0.0.1:{tls_daemon.grpc_port}") as ch:
        with pytest.raises(grpc.RpcError) as e:
            pagoda_pb2_grpc.GenerationStub(ch).GetModelInfo(pagoda_pb2.GetModelInfoRequest(), timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert tls_daemon.proc.poll() is None
    assert tls_daemon.get_json("/health")["status"] == "ok"


def test_an_aborted_tls_request_is_cancelled(tls_daemon):
    """A client that sends close_notify and leaves (what curl does on Ctrl-C) has its request cancelled,
    not run to its max_tokens."""
    d = tls_daemon
    before = d.metric('pagoda_requests_total{status="cancelled"}') if "cancelled" in d.request(
        "GET", "/metrics")[2].decode() else 0.0
    raw = socket.create_connection(("127.0.0.1", d.http_port), timeout=30)
    s = d.ssl_context.wrap_socket(raw, server_hostname="localhost")
    body = json.dumps({"model": d.model_id, "prompt": "Count: 1, 2, 3,", "max_tokens": 4000,
                       "ignore_eos": True}).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    deadline = time.time() + 60
    while time.time() < deadline and d.metric("pagoda_running_sequences") < 1:
        time.sleep(0.05)
    try:
        s.unwrap()  # close_notify; then waits for the server's, which just closes on seeing the client go
    except (ssl.SSLError, OSError):
        pass
    s.close()
    deadline = time.time() + 60
    while time.time() < deadline and d.metric("pagoda_requests_in_flight") > 0:
        time.sleep(0.1)
    assert d.metric("pagoda_requests_in_flight") == 0
    assert d.metric('pagoda_requests_total{status="cancelled"}') == before + 1


def test_connections_past_the_limit_are_closed_under_tls(certs):
    _, (cert, key), _ = certs
    d = start_daemon(["--tls-cert", str(cert), "--tls-key", str(key), "--max-connections", "2"], tls_ca=str(cert))
    try:
        # Two connections with an answered request on each: the daemon has accepted and counted both. A
        # fixed sleep was not enough: the health polls start_daemon had just closed could still count on
        # the daemon's side, so a held one was closed unseen and the third was served.
        deadline = time.time() + 20
        held = [d.hold_answered_connection(deadline) for _ in range(2)]
        with socket.create_connection(("127.0.0.1", d.http_port), timeout=30) as raw:
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                d.ssl_context.wrap_socket(raw, server_hostname="localhost")
        for s in held:
            s.close()
        deadline = time.time() + 10
        while time.time() < deadline and d.metric("pagoda_http_connections_refused_total") < 1:
            time.sleep(0.1)
        assert d.metric("pagoda_http_connections_refused_total") >= 1
        assert d.get_json("/health")["status"] == "ok"
    finally:
        d.stop()


def run_daemon_expecting_failure(args):
    p = subprocess.run([PAGODAD, "--model", MODEL, "--http-port", "0", "--grpc-port", "0", *args],
                       capture_output=True, text=True, timeout=120, env=daemon_env())
    return p.returncode, p.stdout + p.stderr


def test_bad_certificate_files_stop_start_up(certs):
    d, (cert, key), (other_cert, other_key) = certs
    garbage = d / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    not_pem = d / "not.pem"
    not_pem.write_text("hello\n")
    cases = [
        (["--tls-cert", str(cert)], "--tls-cert needs --tls-key"),
        (["--tls-key", str(key)], "--tls-key needs --tls-cert"),
        (["--tls-cert", str(d / "missing.crt"), "--tls-key", str(key)], "cannot open the file"),
        (["--tls-cert", str(not_pem), "--tls-key", str(key)], "not a PEM file"),
        (["--tls-cert", str(garbage), "--tls-key", str(key)], "certificate chain does not load"),
        (["--tls-cert", str(cert), "--tls-key", str(other_key)], "does not match the certificate"),
    ]
    for args, expected in cases:
        rc, out = run_daemon_expecting_failure(args)
        assert rc == 2, (args, rc, out)
        assert expected in out, (args, out)
        assert "loading" not in out, "the model must not load with a bad TLS configuration"
