"""Smoke test of the runtime image (docker/Dockerfile) built by scripts/image.sh: a container of it
serves the model it finds on its volume (or fetches on first start), answers /health, its HEALTHCHECK,
one completion over HTTP and one Generate over gRPC, runs as the non-root user, and stops on SIGTERM
with exit 0 (drained). A missing model is a clear start-up error.

Environment: PAGODA_IMAGE (the image, required: `bash scripts/image.sh --smoke` sets it), PAGODA_MODEL
(the GGUF mounted as the volume's model), PODMAN (default podman). Containers use the host's network
on loopback ports (no bridge networks here).
Run: bash scripts/image.sh --smoke
"""
import json
import os
import pathlib
import subprocess
import sys
import time
import urllib.request

import grpc
import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "server"))
from conftest import free_port, grpc_stubs  # noqa: E402  (the server suite's helpers)

IMAGE = os.environ.get("PAGODA_IMAGE", "")
PODMAN = os.environ.get("PODMAN", "podman")
MODEL = os.environ.get("PAGODA_MODEL", "")
MODEL_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
START_TIMEOUT_S = 300

pytestmark = pytest.mark.skipif(not IMAGE, reason="PAGODA_IMAGE not set (run: bash scripts/image.sh --smoke)")


def podman(*args, check=True, timeout=120):
    return subprocess.run([PODMAN, *args], check=check, capture_output=True, text=True, timeout=timeout)


def host_ca():
    """The CA bundle this machine's TLS goes through (a proxy's, where there is one)."""
    for f in (os.environ.get("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt"):
        if f and os.path.isfile(f):
            return f
    return None


class Container:
    def __init__(self, name, volume_args=(), env=(), extra=()):
        self.name = name
        self.http_port, self.grpc_port = free_port(), free_port()
        podman("rm", "-f", "-i", "-v", name)
        args = ["run", "-d", "--name", name, "--network", "host",
                "-e", "PAGODA_HOST=127.0.0.1", "-e", f"PAGODA_HTTP_PORT={self.http_port}",
                "-e", f"PAGODA_GRPC_PORT={self.grpc_port}", "-e", "PAGODA_MAX_NUM_SEQS=8",
                *[a for e in env for a in ("-e", e)], *volume_args, *extra, IMAGE]
        podman(*args)

    def logs(self):
        r = podman("logs", self.name, check=False)
        return (r.stdout + r.stderr)[-4000:]

    def state(self):
        return json.loads(podman("inspect", "--format", "{{json .State}}", self.name).stdout)

    def wait_healthy(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.state()["Running"]:
                pytest.fail(f"the container exited before /health answered:\n{self.logs()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(1)
        pytest.fail(f"/health did not answer within {START_TIMEOUT_S} s:\n{self.logs()}")

    def remove(self):
        podman("rm", "-f", "-i", "-v", "-t", "0", self.name, check=False)


@pytest.fixture(scope="module")
def served():
    if not os.path.isfile(MODEL):
        pytest.fail(f"PAGODA_MODEL={MODEL!r} is not a file")
    # The volume's models folder, from this machine's cache (read-only: the container must not need to write).
    c = Container("pagoda-smoke", volume_args=["-v", f"{os.path.dirname(MODEL)}:/var/lib/pagoda/models:ro"])
    try:
        c.wait_healthy()
        yield c
    finally:
        c.remove()


def test_health_and_the_images_healthcheck(served):
    r = podman("healthcheck", "run", served.name, check=False)
    assert r.returncode == 0, f"HEALTHCHECK failed: {r.stdout}{r.stderr}"


def test_runs_as_the_non_root_user(served):
    uid = podman("exec", served.name, "id", "-u").stdout.strip()
    assert uid != "0" and int(uid) > 0


def test_one_completion_over_http(served):
    body = json.dumps({"prompt": "The capital of France is", "max_tokens": 8, "temperature": 0}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{served.http_port}/v1/completions", data=body,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        reply = json.load(r)
    choice = reply["choices"][0]
    assert choice["text"] and choice["finish_reason"] in ("length", "stop"), reply
    assert reply["usage"]["completion_tokens"] >= 1
    assert reply["model"] == MODEL_NAME[:-len(".gguf")]


def test_one_generate_over_grpc(served, tmp_path):
    m = grpc_stubs(tmp_path)
    pb, pb_grpc = m["pagoda_pb2"], m["pagoda_pb2_grpc"]
    req = pb.GenerateRequest(text="The capital of France is")
    req.sampling.temperature = 0
    req.stop.max_tokens = 8
    with grpc.insecure_channel(f"127.0.0.1:{served.grpc_port}") as channel:
        msgs = list(pb_grpc.GenerationStub(channel).Generate(req, timeout=120))
    text = "".join(m.text for m in msgs)
    assert text and msgs[-1].finish_reason != 0
    assert sum(len(m.token_ids) for m in msgs) >= 1


def test_sigterm_drains_a_running_request_and_exits_zero():
    """`podman stop` (SIGTERM) while a stream runs: the stream still finishes whole, then the container
    exits 0 (pagodad drained)."""
    c = Container("pagoda-smoke-drain", volume_args=["-v", f"{os.path.dirname(MODEL)}:/var/lib/pagoda/models:ro"])
    try:
        c.wait_healthy()
        body = json.dumps({"prompt": "Write a long story about the sea.", "max_tokens": 200, "temperature": 0,
                           "ignore_eos": True, "stream": True}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{c.http_port}/v1/completions", data=body,
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            r.readline()  # the first event: the request is running
            stop = subprocess.Popen([PODMAN, "stop", "-t", "60", c.name], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            rest = r.read().decode()
        assert rest.rstrip().endswith("data: [DONE]"), rest[-300:]
        assert '"finish_reason":"length"' in rest.replace(" ", ""), rest[-300:]
        assert stop.wait(timeout=90) == 0
        st = c.state()
        assert not st["Running"] and st["ExitCode"] == 0, f"{st}\n{c.logs()}"
    finally:
        c.remove()


def test_a_missing_model_is_a_clear_error():
    c = Container("pagoda-smoke-nomodel", env=["PAGODA_MODEL=/var/lib/pagoda/models/absent.gguf"])
    try:
        deadline = time.monotonic() + 60
        while c.state()["Running"] and time.monotonic() < deadline:
            time.sleep(0.5)
        st = c.state()
        assert not st["Running"] and st["ExitCode"] != 0
        assert "absent.gguf" in c.logs() and "not found" in c.logs()
    finally:
        c.remove()


def test_first_start_fetches_the_default_model_into_the_volume():
    """No model anywhere: the entry point fetches the pinned default into the (named) volume, and a second
    container on the same volume starts from it without fetching again."""
    volume = "pagoda-smoke-cache"
    podman("volume", "rm", "-f", volume, check=False)
    podman("volume", "create", volume)
    ca = host_ca()
    extra = ["-v", f"{ca}:/etc/ssl/certs/ca-certificates.crt:ro"] if ca else []
    try:
        for attempt in ("first", "second"):
            c = Container(f"pagoda-smoke-fetch-{attempt}", volume_args=["-v", f"{volume}:/var/lib/pagoda"],
                          extra=extra)
            try:
                c.wait_healthy()
                fetched = "first start: fetching the default model" in c.logs()
                assert fetched == (attempt == "first"), c.logs()
            finally:
                c.remove()
    finally:
        podman("volume", "rm", "-f", volume, check=False)
