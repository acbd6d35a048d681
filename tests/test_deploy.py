"""The cluster packaging (deploy/): what can be checked on a machine with no container
engine and no Kubernetes. The manifests parse and agree with the code (settings that
exist, probe paths the worker serves, a grace period longer than the drain, selectors
that match); the image runs the entrypoint the end-to-end tests run on the host
(`python -m bot start`) as a non-root user. Building the image and applying the
manifests were not done here (docs/deploy.md says so)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bot import metrics
from bot.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


def _manifests() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            found[doc["kind"]] = doc
    return found


def _setting(env_name: str) -> bool:
    return env_name.removeprefix("BOT_").lower() in Settings.model_fields


def test_the_manifests_parse_and_agree_with_the_code() -> None:
    m = _manifests()
    assert set(m) == {
        "Deployment",
        "Secret",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    }
    pod = m["Deployment"]["spec"]["template"]
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    unknown = [n for n in env if n.startswith("BOT_") and not _setting(n)]
    assert unknown == []
    # SIGTERM drains for at most BOT_DRAIN_TIMEOUT: the grace period must outlast it
    assert pod["spec"]["terminationGracePeriodSeconds"] > float(env["BOT_DRAIN_TIMEOUT"])
    assert container["livenessProbe"]["httpGet"]["path"] == "/"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert env["BOT_HTTP_HOST"] == "0.0.0.0"  # probes come from outside the pod
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    labels = pod["metadata"]["labels"]
    assert m["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == labels
    assert m["Deployment"]["spec"]["selector"]["matchLabels"] == labels
    secret = m["Secret"]["stringData"]
    assert {"LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "BOT_STORE"} <= set(secret)
    assert secret["BOT_STORE"].startswith("redis://")  # one store for the whole fleet
    metric = m["HorizontalPodAutoscaler"]["spec"]["metrics"][0]["pods"]["metric"]["name"]
    assert metric in {mf.name for mf in metrics.REGISTRY.collect()}


def test_the_image_runs_the_worker_as_a_non_root_user() -> None:
    lines = [
        line.strip()
        for line in (DEPLOY / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0].startswith("FROM python:3.11")
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users == ["lkbot"]
    assert lines[-1] == 'CMD ["python", "-m", "bot", "start"]'
    env_names = [
        word.split("=")[0]
        for line in lines
        if line.startswith(("ENV ", "BOT_"))
        for word in line.removeprefix("ENV ").replace("\\", "").split()
        if word.startswith("BOT_")
    ]
    assert env_names and all(_setting(n) for n in env_names), env_names
    assert any("HEALTHCHECK" in line for line in lines)
