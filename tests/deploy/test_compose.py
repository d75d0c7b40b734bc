"""The compose stack (deploy/compose.yaml) run here with podman-compose on the images scripts/image.sh
builds: nginx, Prometheus and the dashboard's queries validate; the stack comes up; 50 HTTP and 50
gRPC requests through nginx all succeed and both replicas serve some; requests of one session (the
x-session-id header) all land on one replica and hit its prefix cache; one replica is killed mid-run
and nginx fails over (only requests in flight on it may fail, and none after); the stack comes down.
Grafana cannot be pulled here: every PromQL query of its dashboard runs against the live Prometheus.

Environment: PAGODA_IMAGE (set by `bash scripts/image.sh --smoke`; the test skips without it),
PAGODA_MODEL (the GGUF whose folder the replicas mount as their model cache).
Run: bash scripts/image.sh --smoke
"""
import json
import os
import pathlib
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE.parent / "server"))
from conftest import grpc_stubs  # noqa: E402  (the server suite's helpers)

DEPLOY = REPO / "deploy"
COMPOSE = [sys.executable, "-m", "podman_compose", "-f", str(DEPLOY / "compose.yaml")]
PODMAN = os.environ.get("PODMAN", "podman")
IMAGE = os.environ.get("PAGODA_IMAGE", "")
MODEL = os.environ.get("PAGODA_MODEL", "")
HTTP, GRPC = "http://127.0.0.1:8080", "127.0.0.1:50051"
REPLICAS = {"pagoda-a": "http://127.0.0.1:8081", "pagoda-b": "http://127.0.0.1:8082"}
PROMETHEUS = "http://127.0.0.1:9090"
PORTS = [8080, 50051, 8081, 8082, 50052, 50053, 9090]
SERVICES = ["pagoda-a", "pagoda-b", "nginx", "prometheus"]  # grafana: its image cannot be pulled here
START_TIMEOUT_S = 300

pytestmark = pytest.mark.skipif(not IMAGE, reason="PAGODA_IMAGE not set (run: bash scripts/image.sh --smoke)")


def run(cmd, check=True, timeout=300, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and r.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def compose(*args, check=True, timeout=300):
    env = dict(os.environ, PAGODA_MODELS=os.path.dirname(MODEL), PAGODA_THREADS="1")
    return run([*COMPOSE, *args], check=check, timeout=timeout, env=env)


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode(), dict(r.headers)


def post_completion(prompt, max_tokens=8, session=None, stream=False, timeout=120):
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": stream}
    headers = {"content-type": "application/json"}
    if session:
        headers["x-session-id"] = session
    req = urllib.request.Request(f"{HTTP}/v1/completions", data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        data = r.read().decode()
        assert r.status == 200
        if stream:
            assert data.rstrip().endswith("data: [DONE]"), data[-200:]
            return data
        reply = json.loads(data)
        assert reply["choices"][0]["text"] and reply["usage"]["completion_tokens"] >= 1, reply
        return reply


def metric(replica, name, labels=None):
    """Sum of a replica's samples of `name` (with the given labels)."""
    _, text, _ = get(f"{REPLICAS[replica]}/metrics")
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        key, value = line.rsplit(" ", 1)
        if key != name and not key.startswith(name + "{"):
            continue
        if labels and not all(f'{k}="{v}"' in key for k, v in labels.items()):
            continue
        total += float(value)
    return total


def requests_served():
    return {r: metric(r, "pagoda_requests_total") for r in REPLICAS}


def wait_until(what, ok, timeout=START_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ok():
                return
        except (OSError, ValueError):
            pass
        time.sleep(1)
    pytest.fail(f"{what} within {timeout} s; {compose('ps', check=False).stdout}")


def port_free(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


# ------------------------------------------------------------------------------ configuration checks


def test_nginx_configuration_is_valid():
    r = run([PODMAN, "run", "--rm", "--network", "host", "-v", f"{DEPLOY / 'nginx' / 'nginx.conf'}:/etc/nginx/nginx.conf:ro",
             "localhost/pagoda-nginx:bookworm", "nginx", "-t"], check=False)
    assert r.returncode == 0 and "syntax is ok" in r.stderr and "test is successful" in r.stderr, r.stderr


def test_prometheus_configuration_is_valid():
    r = run([PODMAN, "run", "--rm", "--entrypoint", "promtool", "-v",
             f"{DEPLOY / 'prometheus' / 'prometheus.yml'}:/etc/prometheus/prometheus.yml:ro",
             "localhost/pagoda-prometheus:bookworm", "check", "config", "/etc/prometheus/prometheus.yml"], check=False)
    assert r.returncode == 0 and "SUCCESS" in r.stdout + r.stderr, r.stdout + r.stderr


def test_compose_file_is_valid():
    r = compose("--profile", "loadgen", "config")
    for s in [*SERVICES, "grafana", "loadgen"]:
        assert f"  {s}:" in r.stdout, f"service {s} missing from `compose config`:\n{r.stdout}"


# ------------------------------------------------------------------------------------- the stack


@pytest.fixture(scope="module")
def stack():
    if not os.path.isfile(MODEL):
        pytest.fail(f"PAGODA_MODEL={MODEL!r} is not a file")
    busy = [p for p in PORTS if not port_free(p)]
    if busy:
        pytest.fail(f"the stack's ports {busy} are in use on 127.0.0.1")
    compose("down", "-t", "5", check=False)
    compose("up", "-d", *SERVICES)
    try:
        for url in (f"{u}/health" for u in REPLICAS.values()):
            wait_until(f"{url} answered", lambda url=url: get(url)[0] == 200)
        wait_until("nginx proxied /health", lambda: get(f"{HTTP}/health")[0] == 200, timeout=60)
        yield
    finally:
        down = compose("down", "-v", "-t", "45", check=False, timeout=180)
        left = run([PODMAN, "ps", "-a", "--filter", "label=io.podman.compose.project=pagoda", "--format", "{{.Names}}"],
                   check=False).stdout.split()
        assert down.returncode == 0 and not left, f"the stack did not come down: {left}\n{down.stderr[-2000:]}"


def test_50_http_and_50_grpc_requests_through_nginx_all_succeed_on_both_replicas(stack, tmp_path):
    before = requests_served()
    m = grpc_stubs(tmp_path)
    pb, pb_grpc = m["pagoda_pb2"], m["pagoda_pb2_grpc"]

    def one_grpc(i):
        req = pb.GenerateRequest(text=f"Request {i}: the capital of France is")
        req.sampling.temperature = 0
        req.stop.max_tokens = 8
        with grpc.insecure_channel(GRPC) as channel:
            msgs = list(pb_grpc.GenerationStub(channel).Generate(req, timeout=120))
        assert "".join(x.text for x in msgs) and msgs[-1].finish_reason != 0
        return True

    with ThreadPoolExecutor(8) as pool:
        http = [pool.submit(post_completion, f"Request {i}: once upon a time", 8, None, i % 2 == 1) for i in range(50)]
        grpcs = [pool.submit(one_grpc, i) for i in range(50)]
        failures = [f.exception() for f in http + grpcs if f.exception()]
    assert not failures, f"{len(failures)} of 100 failed, the first: {failures[0]!r}"
    time.sleep(0.5)
    after = requests_served()
    served = {r: after[r] - before[r] for r in REPLICAS}
    assert sum(served.values()) == 100, served
    assert all(n > 0 for n in served.values()), f"one replica served nothing: {served}"


def test_a_sessions_requests_land_on_one_replica_and_hit_its_prefix_cache(stack):
    """Four turns of a conversation with a ~150-token prefix of its own: all on one replica, which
    computes the prefix once (its prompt-token counter, which excludes prefix-cache hits, grows by less
    than the prompts' tokens minus three prefixes' worth)."""
    for session in ("session-1", "session-2", "session-3"):
        prefix = f"You are assistant {session}, who answers in one short sentence. " * 12
        before = requests_served()
        computed_before = {r: metric(r, "pagoda_prompt_tokens_total") for r in REPLICAS}
        sent = []
        for turn in range(4):
            reply = post_completion(prefix + f"Question {turn}: what is {turn} plus {turn}?", 4, session=session)
            sent.append(reply["usage"]["prompt_tokens"])
        time.sleep(0.2)
        after = requests_served()
        served = {r: after[r] - before[r] for r in REPLICAS}
        (replica,) = [r for r, n in served.items() if n > 0]
        assert served[replica] == 4, (session, served)
        computed = metric(replica, "pagoda_prompt_tokens_total") - computed_before[replica]
        assert computed < sum(sent) - 3 * 100, f"{replica} recomputed {session}'s prefix: {computed} of {sent}"


def test_the_dashboards_queries_run_on_the_live_prometheus(stack):
    """Every PromQL expression of deploy/grafana/dashboards/pagoda.json parses and, after the traffic
    above, returns data (Prometheus scrapes every 5 s)."""
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "pagoda.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    wait_until("Prometheus scraped both replicas",
               lambda: query("sum(up{job=\"pagoda\"})") == [2.0], timeout=60)
    time.sleep(6)
    for expr in exprs:
        values = query(expr)
        assert values, f"no data for {expr!r}"


def query(expr):
    url = f"{PROMETHEUS}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        _, body, _ = get(url)
    except urllib.error.HTTPError as e:
        pytest.fail(f"Prometheus refused {expr!r}: {e.read().decode()}")
    reply = json.loads(body)
    assert reply["status"] == "success", reply
    return [float(r["value"][1]) for r in reply["data"]["result"]]


def test_nginx_fails_over_when_a_replica_is_killed(stack, tmp_path, capsys):
    """8 streamed and 8 plain long completions go out; replica a is killed once it has some in flight.
    Only streams in flight on it may fail (their response had started: nginx cannot retry them); a plain
    one in flight there is retried on b (generation has no side effects: non_idempotent); every request
    sent after the kill, HTTP or gRPC, succeeds (nginx skips the dead replica)."""
    results = {}
    started = threading.Barrier(17)

    def long_request(i):
        stream = i % 2 == 0
        started.wait()
        try:
            post_completion(f"Request {i}: write a long story about the sea.", 96, stream=stream, timeout=300)
            results[i] = True
        except Exception as e:  # noqa: BLE001  (any failure counts)
            results[i] = e

    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(long_request, i) for i in range(16)]
        started.wait()
        # Every request has reached a replica (none can land on a after this count), and a has some.
        wait_until("all 16 requests in flight, some on replica a",
                   lambda: sum(metric(r, "pagoda_requests_in_flight") for r in REPLICAS) >= 16
                   and metric("pagoda-a", "pagoda_requests_in_flight") > 0, 60)
        in_flight_a = metric("pagoda-a", "pagoda_requests_in_flight")
        compose("kill", "pagoda-a")  # SIGKILL
        for f in futures:
            f.result()
    failed_streams = [i for i, r in results.items() if r is not True and i % 2 == 0]
    failed_plain = [i for i, r in results.items() if r is not True and i % 2 == 1]
    with capsys.disabled():
        print(f"\nfailover: replica a killed with {in_flight_a:.0f} requests in flight; failed: "
              f"{len(failed_streams)} of 8 streams, {len(failed_plain)} of 8 plain completions")
    assert len(failed_streams) + len(failed_plain) <= in_flight_a, results
    assert not failed_plain, {i: results[i] for i in failed_plain}

    m = grpc_stubs(tmp_path)
    pb, pb_grpc = m["pagoda_pb2"], m["pagoda_pb2_grpc"]
    for i in range(10):
        post_completion(f"After the kill {i}: hello", 4)
        req = pb.GenerateRequest(text=f"After the kill {i}: hello")
        req.stop.max_tokens = 4
        with grpc.insecure_channel(GRPC) as channel:
            msgs = list(pb_grpc.GenerationStub(channel).Generate(req, timeout=120))
        assert msgs and msgs[-1].finish_reason != 0
