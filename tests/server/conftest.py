"""Fixtures for the daemon's integration tests: a real `pagodad` on free loopback ports with the real model.

Environment: PAGODAD (the daemon binary, default <repo>/build/server/pagodad), PAGODA_MODEL (the GGUF),
PAGODA_CLI (the `pagoda` tool, default <repo>/build/cli/pagoda).
"""
import http.client
import json
import os
import pathlib
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from importlib import resources

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
PAGODAD = os.environ.get("PAGODAD", str(REPO / "build" / "server" / "pagodad"))
PAGODA_CLI = os.environ.get("PAGODA_CLI", str(REPO / "build" / "cli" / "pagoda"))
MODEL = os.environ.get("PAGODA_MODEL", "/root/.cache/pagoda/models/SmolLM2-135M-Instruct.Q4_1.gguf")
# The real SmolLM2 (its text round-trips through the tokenizer and it repeats a passage when asked),
# not a random-weight GGUF of its shape (scripts/gpu_check.sh runs the suites on one: the real file is
# too big to carry to the GPU machine). Only assertions about what a trained model writes check this.
REAL_MODEL = os.path.basename(MODEL) == "SmolLM2-135M-Instruct.Q4_1.gguf"
START_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def daemon_env():
    """The environment for a pagodad under test: without the developer's PAGODA_* settings (every flag
    reads one: a PAGODA_API_KEY would lock the tests out, a PAGODA_TLS_CERT switch the ports to TLS)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PAGODA_")}


class Daemon:
    """A running pagodad: ports, the process, its log, and small raw-HTTP helpers."""

    def __init__(self, extra_args=(), api_key=None, tls_ca=None, model=None):
        if not os.path.exists(PAGODAD):
            pytest.skip(f"pagodad not built at {PAGODAD} (set PAGODAD)")
        model = model or MODEL  # another GGUF (e.g. one `pagoda make-model` wrote), else the test model
        if not os.path.exists(model):
            pytest.skip(f"model not found at {model} (set PAGODA_MODEL)")
        self.http_port = free_port()
        self.grpc_port = free_port()
        # tls_ca: the daemon speaks TLS (--tls-cert in extra_args); this PEM file is the CA clients trust.
        self.tls_ca = tls_ca
        self.ssl_context = ssl.create_default_context(cafile=tls_ca) if tls_ca else None
        self.base_url = f"{'https' if tls_ca else 'http'}://127.0.0.1:{self.http_port}"
        self.api_key = api_key  # sent by request() and openai_client() unless told otherwise
        self.log = tempfile.NamedTemporaryFile(prefix="pagodad-", suffix=".log", delete=False)
        args = [PAGODAD, "--model", model, "--host", "127.0.0.1", "--grpc-port", str(self.grpc_port),
                "--http-port", str(self.http_port), *extra_args]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=daemon_env())
        self._wait_healthy()
        self.model_id = self.get_json("/v1/models")["data"][0]["id"]

    def log_tail(self, n=40) -> str:
        with open(self.log.name, "r", errors="replace") as f:
            return "".join(f.readlines()[-n:])

    def _wait_healthy(self):
        deadline = time.time() + START_TIMEOUT_S
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pagodad exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.base_url + "/health", timeout=1, context=self.ssl_context) as r:
                    if r.status == 200:
                        # /health answers as soon as HTTP listens; /ready once serving.
                        with urllib.request.urlopen(self.base_url + "/ready", timeout=1,
                                                    context=self.ssl_context) as rr:
                            if rr.status == 200:
                                return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"pagodad did not become healthy in {START_TIMEOUT_S} s:\n{self.log_tail()}")

    def request(self, method, path, body=None, headers=None, timeout=60):
        """One request on a fresh connection: (status, headers dict (lower-case), body bytes)."""
        if self.ssl_context:
            conn = http.client.HTTPSConnection("127.0.0.1", self.http_port, timeout=timeout, context=self.ssl_context)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
            hdrs = {"Content-Type": "application/json"} if body is not None else {}
            if self.api_key:
                hdrs["Authorization"] = f"Bearer {self.api_key}"
            hdrs.update(headers or {})
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def get_json(self, path):
        status, _, body = self.request("GET", path)
        assert status == 200, (path, status, body)
        return json.loads(body)

    def post_json(self, path, obj, timeout=60):
        status, _, body = self.request("POST", path, obj, timeout=timeout)
        return status, json.loads(body) if body else None

    def metric(self, name) -> float:
        """The value of one series from GET /metrics: `name` is the series as rendered, labels included
        (pagoda_requests_total{status="stop"})."""
        status, _, body = self.request("GET", "/metrics")
        assert status == 200
        for line in body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise KeyError(name)

    def hold_answered_connection(self, deadline):
        """A connection (TLS when the daemon speaks it) with one answered request on it: the daemon has
        accepted and counted it. Connections closed a moment ago (start-up's health polls) may still count
        on the daemon's side (under ASan its closing lags): a 503, or under TLS a connection closed at once,
        means "not yet", and the connection is opened again until `deadline`."""
        while True:
            raw = socket.create_connection(("127.0.0.1", self.http_port), timeout=30)
            s = raw
            answer = b""
            try:
                if self.ssl_context:
                    s = self.ssl_context.wrap_socket(raw, server_hostname="localhost")
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                while b"\r\n\r\n" not in answer:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    answer += chunk
            except (ssl.SSLError, ConnectionError, OSError):
                pass
            if answer.startswith(b"HTTP/1.1 200"):
                return s
            s.close()
            assert answer == b"" or answer.startswith(b"HTTP/1.1 503"), answer
            assert time.time() < deadline, "no connection was accepted and counted in time"
            time.sleep(0.2)

    def openai_client(self, **kw):
        import httpx
        import openai
        if self.tls_ca and "http_client" not in kw:
            kw["http_client"] = httpx.Client(verify=self.ssl_context)
        return openai.OpenAI(base_url=self.base_url + "/v1", api_key=kw.pop("api_key", self.api_key or "x"),
                             max_retries=0, timeout=kw.pop("timeout", 120), **kw)

    def stop(self, sig_timeout=30):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=sig_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def start_daemon(extra_args=(), api_key=None, tls_ca=None, model=None) -> Daemon:
    return Daemon(extra_args, api_key, tls_ca, model)


def grpc_stubs(out_dir, *protos):
    """Generates Python modules for proto/pagoda/v1/pagoda.proto and the given test protos
    (pagoda_test/health.proto, ...) into out_dir and imports them: returns {module name: module}."""
    import importlib
    from grpc_tools import protoc
    include = str(resources.files("grpc_tools") / "_proto")
    files = ["pagoda/v1/pagoda.proto", *protos]
    args = ["grpc_tools.protoc", f"-I{REPO / 'proto'}", f"-I{REPO / 'tests' / 'server' / 'protos'}", f"-I{include}",
            f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *files]
    assert protoc.main(args) == 0, f"protoc failed on {files}"
    sys.path.insert(0, str(out_dir))
    try:
        modules = {}
        for f in files:
            package = f.rsplit("/", 1)[0].replace("/", ".")
            stem = f.rsplit("/", 1)[1][:-len(".proto")]
            for suffix in ("_pb2", "_pb2_grpc"):
                modules[stem + suffix] = importlib.import_module(f"{package}.{stem}{suffix}")
        return modules
    finally:
        sys.path.remove(str(out_dir))


@pytest.fixture(scope="module")
def daemon():
    d = start_daemon()
    yield d
    d.stop()


def cli_generate(prompt: str, max_tokens: int) -> str:
    """Greedy text from `pagoda generate` (no chat template): stdout up to the blank line before the stats."""
    if not os.path.exists(PAGODA_CLI):
        pytest.skip(f"pagoda CLI not built at {PAGODA_CLI} (set PAGODA_CLI)")
    out = subprocess.run([PAGODA_CLI, "generate", "--model", MODEL, "--prompt", prompt, "--max-tokens", str(max_tokens)],
                         check=True, capture_output=True, timeout=120).stdout.decode()
    text, sep, _ = out.rpartition("\n\n[prompt tokens:")
    assert sep, f"unexpected CLI output: {out!r}"
    return text


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    """(pagoda_pb2, pagoda_pb2_grpc), generated for the module."""
    m = grpc_stubs(tmp_path_factory.mktemp("pagoda_stubs"))
    return m["pagoda_pb2"], m["pagoda_pb2_grpc"]
