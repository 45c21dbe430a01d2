"""The docker-compose file, the Dockerfiles and the Kubernetes manifests, checked offline.

No Docker engine or cluster runs here: the files are parsed (PyYAML), rendered with the real
tools where installed (``docker-compose config``, ``kubectl kustomize``; ``.ci/run`` installs
docker-compose), and checked against what the code reads: every ``MATTESERVE_*`` variable set
is a real setting, the required ones are set, ports agree, model repository paths agree.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from service.config import Settings

REPO = Path(__file__).resolve().parents[2]
SETTING_NAMES = {f"MATTESERVE_{name.upper()}" for name in Settings.model_fields}
REQUIRED = {
    "MATTESERVE_BACKEND": "triton",
    "MATTESERVE_ALLOW_ANONYMOUS": "false",
    "MATTESERVE_HOST": "0.0.0.0",
}
MUST_BE_SET = {
    "MATTESERVE_REDIS_URL",
    "MATTESERVE_TRITON_URL",
    "MATTESERVE_API_KEYS",
    "MATTESERVE_PORT",
    "MATTESERVE_MODEL_REPOSITORY",
    "MATTESERVE_SESSION_TTL_S",
    "MATTESERVE_MAX_UPLOAD_BYTES",
    "MATTESERVE_MAX_PIXELS",
}


def rendered_compose() -> dict:
    """The compose file as docker-compose renders it (when installed), else as YAML."""
    env = {**os.environ, "MATTESERVE_API_KEYS": "k1:alice"}
    if shutil.which("docker-compose"):
        command = ["docker-compose", "config"]
        result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return yaml.safe_load(result.stdout)
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def rendered_k8s() -> list[dict]:
    """The kustomization rendered by kubectl (when installed), else the listed files."""
    if shutil.which("kubectl"):
        result = subprocess.run(["kubectl", "kustomize", str(REPO / "k8s")], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    kustomization = yaml.safe_load((REPO / "k8s" / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs += [doc for doc in yaml.safe_load_all((REPO / "k8s" / name).read_text()) if doc]
    return docs


def by_kind(docs: list[dict], kind: str, name: str) -> dict:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}"
    return matches[0]


def test_compose_api_environment_is_complete_and_known() -> None:
    compose = rendered_compose()
    env = compose["services"]["api"]["environment"]
    assert set(env) <= SETTING_NAMES, f"unknown settings: {set(env) - SETTING_NAMES}"
    assert set(env) >= MUST_BE_SET
    for name, value in REQUIRED.items():
        assert str(env[name]).lower() == value
    Settings(**{k.removeprefix("MATTESERVE_").lower(): v for k, v in env.items()})  # values parse


def test_compose_ports_hosts_and_model_repository_agree() -> None:
    compose = rendered_compose()
    services = compose["services"]
    api, triton, redis = services["api"], services["triton"], services["redis"]
    env = api["environment"]
    port = int(env["MATTESERVE_PORT"])
    published = [p if isinstance(p, str) else f"{p.get('published')}:{p['target']}" for p in api["ports"]]
    assert any(p.endswith(f":{port}") for p in published)
    assert f":{port}/" in " ".join(api["healthcheck"]["test"])
    triton_host, triton_port = env["MATTESERVE_TRITON_URL"].split(":")
    assert triton_host == "triton" and triton_port == "8001"  # Triton's gRPC port
    assert env["MATTESERVE_REDIS_URL"].startswith("redis://redis:6379")
    assert "--appendonly" in redis["command"] and any("redis-data" in str(v) for v in redis["volumes"])
    repository = next(a.split("=", 1)[1] for a in triton["command"] if a.startswith("--model-repository="))
    volumes = [v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in triton["volumes"]]
    mounts = [v.split(":") for v in volumes]
    assert any(
        target == repository and source.rstrip("/").endswith("triton_repo") for source, target, *_ in mounts
    )
    assert "/v2/health/ready" in " ".join(triton["healthcheck"]["test"])
    devices = triton["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert api["depends_on"]["triton"]["condition"] == "service_healthy"
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"
    assert re.match(r"nvcr\.io/nvidia/tritonserver:[\w.]+-py3$", triton["image"])


def test_compose_refuses_to_start_without_api_keys() -> None:
    if not shutil.which("docker-compose"):
        text = (REPO / "docker-compose.yml").read_text()
        assert "${MATTESERVE_API_KEYS:?" in text
        return
    env = {k: v for k, v in os.environ.items() if k != "MATTESERVE_API_KEYS"}
    result = subprocess.run(["docker-compose", "config"], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "MATTESERVE_API_KEYS" in result.stderr


def test_kubernetes_manifests_agree_with_the_code() -> None:
    docs = rendered_k8s()
    config = by_kind(docs, "ConfigMap", "matteserve-config")["data"]
    secret = by_kind(docs, "Secret", "matteserve-api-keys")
    keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    assert set(config) | keys <= SETTING_NAMES
    assert set(config) | keys >= MUST_BE_SET
    for name, value in REQUIRED.items():
        assert config[name].lower() == value

    api = by_kind(docs, "Deployment", "api")["spec"]["template"]["spec"]["containers"][0]
    sources = {s.get("configMapRef", s.get("secretRef"))["name"] for s in api["envFrom"]}
    assert sources == {"matteserve-config", "matteserve-api-keys"}
    port = int(config["MATTESERVE_PORT"])
    assert api["ports"][0]["containerPort"] == port
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"requests", "limits"} <= set(api["resources"])

    triton = by_kind(docs, "Deployment", "triton")["spec"]["template"]["spec"]["containers"][0]
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert triton["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert triton["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    grpc = next(p["containerPort"] for p in triton["ports"] if p["name"] == "grpc")
    host, url_port = config["MATTESERVE_TRITON_URL"].split(":")
    triton_service = by_kind(docs, "Service", host)
    service_port = next(p for p in triton_service["spec"]["ports"] if p["name"] == "grpc")
    assert int(url_port) == service_port["port"] and service_port["targetPort"] in ("grpc", grpc)
    repository = next(a.split("=", 1)[1] for a in triton["args"] if a.startswith("--model-repository="))
    dockerfile = (REPO / "docker" / "triton.Dockerfile").read_text()
    assert f"COPY triton_repo {repository}" in dockerfile

    redis_host = config["MATTESERVE_REDIS_URL"].split("//")[1].split(":")[0]
    by_kind(docs, "Service", redis_host)
    by_kind(docs, "StatefulSet", "redis")
    hpa = by_kind(docs, "HorizontalPodAutoscaler", "api")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "api" and hpa["spec"]["minReplicas"] >= 2
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"matteserve"}


def test_api_dockerfile_is_slim_non_root_and_health_checked() -> None:
    text = (REPO / "docker" / "api.Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert re.search(r"^USER 10001$", text, re.M)
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert "torch==2.13.0" in text
    model_repository = re.search(r"MATTESERVE_MODEL_REPOSITORY=(\S+)", text).group(1)
    assert f"COPY triton_repo {model_repository}" in text
    compose = rendered_compose()
    assert compose["services"]["api"]["environment"]["MATTESERVE_MODEL_REPOSITORY"] == model_repository
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


@pytest.mark.parametrize("path", ["docker-compose.yml", *[p.name for p in (REPO / "k8s").glob("*.yaml")]])
def test_files_are_valid_yaml(path: str) -> None:
    file = REPO / path if path == "docker-compose.yml" else REPO / "k8s" / path
    assert list(yaml.safe_load_all(file.read_text()))
