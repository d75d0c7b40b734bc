"""The Kubernetes manifests (deploy/k8s): each overlay renders with kustomize (Debian's kubectl, which
scripts/setup.sh unpacks under $PAGODA_CACHE/tools) and every object validates against Kubernetes
KUBE_VERSION's schemas (kubernetes-validate, strict: unknown fields are errors). Then what the schemas
cannot see: probes on the ports the flags open, a termination grace that covers the drain, selectors
that select the pods, the autoscaler's target, the GPU overlay's device request.

Environment: PAGODA_KUBECTL (a kubectl with `kustomize`, default the unpacked one).
Run: .venv/bin/python -m pytest tests/deploy/test_manifests.py
"""
import os
import pathlib
import subprocess

import kubernetes_validate
import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
KUBE_VERSION = "1.31.0"  # the schemas checked against; the README's Deploy section states it
CACHE = pathlib.Path(os.environ.get("PAGODA_CACHE", pathlib.Path.home() / ".cache" / "pagoda"))
KUBECTL = os.environ.get("PAGODA_KUBECTL", str(CACHE / "tools" / "kubernetes-client" / "usr" / "bin" / "kubectl"))
OVERLAYS = ["cpu", "gpu"]


def render(overlay):
    if not os.access(KUBECTL, os.X_OK):
        pytest.fail(f"kubectl not found at {KUBECTL}: run scripts/setup.sh (or set PAGODA_KUBECTL)")
    out = subprocess.run([KUBECTL, "kustomize", str(K8S / "overlays" / overlay)], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="module", params=OVERLAYS)
def objects(request):
    docs = render(request.param)
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    return request.param, docs, by_kind


def one(by_kind, kind):
    assert len(by_kind.get(kind, [])) == 1, f"want one {kind}, got {len(by_kind.get(kind, []))}"
    return by_kind[kind][0]


def flags(by_kind):
    return one(by_kind, "ConfigMap")["data"]


def container(by_kind):
    (c,) = one(by_kind, "Deployment")["spec"]["template"]["spec"]["containers"]
    return c


def test_every_object_validates_against_the_kubernetes_schemas(objects):
    _, docs, by_kind = objects
    assert set(by_kind) == {"ConfigMap", "Service", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    for d in docs:
        try:
            kubernetes_validate.validate(d, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{d['kind']}/{d['metadata']['name']} is not valid Kubernetes {KUBE_VERSION}: {e.message} "
                        f"at {'/'.join(map(str, e.path))}")


def test_probes_and_ports_follow_the_flags(objects):
    _, _, by_kind = objects
    f, c = flags(by_kind), container(by_kind)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": int(f["PAGODA_HTTP_PORT"]), "grpc": int(f["PAGODA_GRPC_PORT"])}
    assert f["PAGODA_HOST"] == "0.0.0.0", "a pod's loopback is its own: pagodad must listen on the pod's address"
    assert c["envFrom"] == [{"configMapRef": {"name": one(by_kind, "ConfigMap")["metadata"]["name"]}}]
    # Liveness and start-up on /health, readiness on gRPC health (NOT_SERVING once a drain starts).
    assert c["startupProbe"]["httpGet"]["path"] == "/health"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert c["readinessProbe"]["grpc"]["port"] == ports["grpc"]
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, "model load (and fetch) needs minutes"


def test_termination_grace_covers_the_drain(objects):
    _, _, by_kind = objects
    spec = one(by_kind, "Deployment")["spec"]["template"]["spec"]
    pre_stop = container(by_kind)["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    drain = int(flags(by_kind)["PAGODA_GRACE_PERIOD_S"])
    assert spec["terminationGracePeriodSeconds"] > drain + int(pre_stop[1])


def test_selectors_select_the_pods(objects):
    _, _, by_kind = objects
    labels = one(by_kind, "Deployment")["spec"]["template"]["metadata"]["labels"]
    selectors = [one(by_kind, "Deployment")["spec"]["selector"]["matchLabels"],
                 one(by_kind, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
                 one(by_kind, "Service")["spec"]["selector"]]
    for s in selectors:
        assert s and all(labels.get(k) == v for k, v in s.items()), (s, labels)
    service_ports = {p["name"]: p["targetPort"] for p in one(by_kind, "Service")["spec"]["ports"]}
    assert service_ports == {"http": "http", "grpc": "grpc"}


def test_the_autoscaler_scales_the_deployment_on_queue_depth(objects):
    _, _, by_kind = objects
    hpa, dep = one(by_kind, "HorizontalPodAutoscaler"), one(by_kind, "Deployment")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": dep["metadata"]["name"]}
    (metric,) = hpa["spec"]["metrics"]
    assert metric["pods"]["metric"]["name"] == "pagoda_queue_depth"
    # The metric is one pagodad exports (server/inference_service.cpp registers it).
    assert "\"pagoda_queue_depth\"" in (REPO / "server" / "inference_service.cpp").read_text()
    assert hpa["spec"]["minReplicas"] >= one(by_kind, "PodDisruptionBudget")["spec"]["minAvailable"] + 1


def test_each_overlay_picks_its_image_and_resources(objects):
    overlay, _, by_kind = objects
    c = container(by_kind)
    assert c["image"] == {"cpu": "localhost/pagoda:cpu", "gpu": "localhost/pagoda:cuda"}[overlay]
    gpus = c["resources"].get("limits", {}).get("nvidia.com/gpu")
    if overlay == "gpu":
        assert gpus == 1 and flags(by_kind)["PAGODA_BACKEND"] == "cuda"
    else:
        assert gpus is None and "PAGODA_BACKEND" not in flags(by_kind)


def test_a_broken_manifest_fails_validation():
    """The check itself catches a misspelt field (strict schemas) and a wrong type."""
    docs = render("cpu")
    dep = next(d for d in docs if d["kind"] == "Deployment")
    dep["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpcc"] = {"port": 50051}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, KUBE_VERSION, strict=True)
    pdb = next(d for d in docs if d["kind"] == "PodDisruptionBudget")
    pdb["spec"]["minAvailable"] = [1]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pdb, KUBE_VERSION, strict=True)
