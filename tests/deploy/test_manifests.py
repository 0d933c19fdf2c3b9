"""deploy/k8s/ validates against the Kubernetes schemas (kubernetes-validate ships them: no network),
its pieces fit together, and every setting, variable and command the manifests and deploy/compose.yaml
use exists in the gateway (gateway/config.py Settings, the `modgate` CLI)."""

from __future__ import annotations

import copy
import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import kubernetes_validate
import pytest
import yaml

from gateway.cli import cli
from gateway.config import ENV_PREFIX, FLAG_ONLY, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
COMPOSE = ROOT / "deploy" / "compose.yaml"
K8S_VERSION = "1.33.0"  # the oldest release the manifests target (preStop `sleep` is GA since 1.30)
IMAGE = "modgate:"
# Variables for other programs: Hugging Face's offline switch, the postgres image's own.
OTHER_VARIABLES = {"HF_HUB_OFFLINE", "POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD"}


def _manifests() -> dict[str, dict[str, Any]]:
    docs = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            docs[doc["kind"]] = doc
    return docs


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"]["template"]["spec"]
    return list(spec.get("initContainers", [])) + list(spec["containers"])


def test_every_manifest_validates_strictly() -> None:
    docs = _manifests()
    assert set(docs) == {
        "ConfigMap",
        "Secret",
        "Job",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    }
    for kind, doc in docs.items():
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{kind}: {exc.message}")


def test_the_validator_rejects_a_broken_manifest() -> None:
    deployment = copy.deepcopy(_manifests()["Deployment"])
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    typo = copy.deepcopy(_manifests()["Deployment"])
    typo["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, K8S_VERSION, strict=True)


def test_the_pieces_fit_together() -> None:
    docs = _manifests()
    deployment, config = docs["Deployment"], docs["ConfigMap"]["data"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for kind in ("Service",):
        assert docs[kind]["spec"]["selector"].items() <= labels.items()
    assert docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert docs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    pod = deployment["spec"]["template"]["spec"]
    (gateway,) = pod["containers"]
    grpc_port = int(config["MODGATE_GRPC_ADDRESS"].rpartition(":")[2])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert gateway[probe]["grpc"]["port"] == grpc_port, probe
    assert gateway["resources"]["requests"] and gateway["resources"]["limits"]["memory"]
    pause = gateway["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > float(config["MODGATE_GRACE_PERIOD_S"]) + pause
    assert pod["securityContext"]["runAsNonRoot"] is True
    refs = {r.get("configMapRef", r.get("secretRef", {})).get("name") for r in gateway["envFrom"]}
    assert refs == {docs["ConfigMap"]["metadata"]["name"], docs["Secret"]["metadata"]["name"]}


def _substitute(text: str) -> str:
    """Compose's ${NAME:?message} interpolation, with a stand-in value long enough for any secret."""
    return re.sub(r"\$\{[A-Z_]+(:\?[^}]*)?\}", "stand-in-value-of-at-least-32-characters", text)


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(_substitute(COMPOSE.read_text()))
    return data


def _environments() -> Iterator[tuple[str, dict[str, str]]]:
    """(where, variables) for every gateway container: compose services and the k8s pods (envFrom +
    env), each as one environment, as the process would see it."""
    for name, service in _compose()["services"].items():
        if str(service.get("image", "")).startswith(IMAGE):
            yield f"compose {name}", {k: str(v) for k, v in service.get("environment", {}).items()}
    docs = _manifests()
    sources = {
        docs["ConfigMap"]["metadata"]["name"]: docs["ConfigMap"]["data"],
        docs["Secret"]["metadata"]["name"]: docs["Secret"]["stringData"],
    }
    for kind in ("Deployment", "Job"):
        for container in _containers(docs[kind]):
            env: dict[str, str] = {}
            for ref in container.get("envFrom", []):
                env.update(sources[(ref.get("configMapRef") or ref.get("secretRef"))["name"]])
            env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
            yield f"k8s {kind} {container['name']}", env


def unknown_variables(env: dict[str, str]) -> list[str]:
    """Names that are neither a gateway setting (MODGATE_<field>) nor another program's variable."""
    fields = set(Settings.__dataclass_fields__) - set(FLAG_ONLY) - {"moderation"}
    return sorted(
        name
        for name in env
        if name not in OTHER_VARIABLES
        and not (name.startswith(ENV_PREFIX) and name[len(ENV_PREFIX) :].lower() in fields)
    )


def test_every_variable_is_a_setting_and_every_environment_loads() -> None:
    seen = 0
    for where, env in _environments():
        assert unknown_variables(env) == [], where
        load_settings(env=env)  # raises SettingsError naming a bad value
        seen += 1
    assert seen >= 5  # migrate + 2 gateways (compose), the Deployment and the Job
    assert unknown_variables({"MODGATE_NO_SUCH_SETTING": "1", "MODGATE_INSECURE_NO_AUTH": "1"}) == [
        "MODGATE_INSECURE_NO_AUTH",
        "MODGATE_NO_SUCH_SETTING",
    ]


def check_command(args: list[str]) -> None:
    """Parses `modgate ARGS` down to its command, as click would (unknown commands and flags raise),
    without running it."""
    command: click.Command = cli
    words = list(args)
    while isinstance(command, click.Group):
        assert words, f"{args}: no subcommand"
        name, *words = words
        sub = command.commands.get(name)
        assert sub is not None, f"{args}: no command {name!r}"
        command = sub
    command.make_context(command.name, words)


def _commands() -> Iterator[list[str]]:
    for service in _compose()["services"].values():
        if str(service.get("image", "")).startswith(IMAGE):
            yield list(service["command"])
    for kind in ("Deployment", "Job"):
        for container in _containers(_manifests()[kind]):
            yield list(container.get("command", [])) + list(container["args"])


def test_every_command_and_flag_exists() -> None:
    commands = list(_commands())
    assert ["serve"] in commands and ["db", "upgrade"] in commands
    for args in commands:
        check_command(args)
    with pytest.raises(click.NoSuchOption):
        check_command(["serve", "--no-such-flag"])
    services = _compose()["services"].values()
    healthcheck = [s["healthcheck"]["test"] for s in services if s.get("command") == ["serve"]]
    assert healthcheck
    for test in healthcheck:
        assert test[:3] == ["CMD", "python", "-m"] and importlib.util.find_spec(test[3]) is not None, test


def test_compose_topology() -> None:
    services = _compose()["services"]
    gateways = [n for n, s in services.items() if s.get("command") == ["serve"]]
    assert len(gateways) == 2
    for name in gateways:
        service = services[name]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        grace = float(service["environment"]["MODGATE_GRACE_PERIOD_S"])
        assert float(service["stop_grace_period"].removesuffix("s")) > grace
        assert service["environment"]["MODGATE_SESSION_SECRET"]
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert all(services["nginx"]["depends_on"][g]["condition"] == "service_healthy" for g in gateways)
    mounted = [v.split(":")[0] for v in services["nginx"]["volumes"]]
    assert "./nginx/modgate.conf" in mounted and (COMPOSE.parent / "nginx" / "modgate.conf").is_file()
    nginx_conf = (COMPOSE.parent / "nginx" / "modgate.conf").read_text()
    for name in gateways:
        assert f"server {name}:50051" in nginx_conf and f"server {name}:8080" in nginx_conf
