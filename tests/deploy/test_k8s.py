"""deploy/k8s: every overlay renders with `kubectl kustomize` and validates against the
Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown fields are errors); the
workloads run real carbonflow commands on the settings' default ports."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from cli.main import build_parser
from services.api.settings import ApiSettings
from services.calc.settings import CalcSettings
from services.ingest.settings import IngestSettings
from services.notify.settings import NotifySettings
from services.push.settings import PushSettings
from tests.support import ROOT as ROOT_DIR
from tests.support.deploy_support import cli_environment, setting_fields

pytestmark = pytest.mark.integration

ROOT = ROOT_DIR
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
# The oldest Kubernetes release these manifests are written for (documented in operations.md).
KUBERNETES_VERSION = "1.29.0"


def _render(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl") or "/usr/bin/kubectl"
    if not Path(kubectl).exists():
        pytest.skip("kubectl is not installed")
    run = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return [d for d in yaml.safe_load_all(run.stdout) if d]


def _by_kind(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    containers = doc["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def test_overlays_exist() -> None:
    assert {"production", "staging"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_validates(overlay: str) -> None:
    docs = _render(overlay)
    retire = yaml.safe_load((K8S / "jobs" / "ingest-retire.yaml").read_text())
    for doc in [*docs, retire]:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    # The validator is not a formality: a wrong type and an unknown field are refused.
    statefulset = _by_kind(docs)[("StatefulSet", "ingest")]
    for mutate in (
        lambda d: d["spec"].__setitem__("replicas", "three"),
        lambda d: _container(d).__setitem__("livenesProbe", {}),
    ):
        broken = copy.deepcopy(statefulset)
        mutate(broken)
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workloads_match_the_code(overlay: str) -> None:
    docs = _by_kind(_render(overlay))
    parser = build_parser()
    allowed = set(setting_fields()) | cli_environment()
    workloads = {
        "ingest": (docs[("StatefulSet", "ingest")], IngestSettings.model_fields["http_port"]),
        "calc": (docs[("Deployment", "calc")], CalcSettings.model_fields["http_port"]),
        "api": (docs[("Deployment", "api")], ApiSettings.model_fields["port"]),
        "notify": (docs[("Deployment", "notify")], NotifySettings.model_fields["http_port"]),
        "push": (docs[("Deployment", "push")], PushSettings.model_fields["http_port"]),
    }
    config = next(d for (kind, _), d in docs.items() if kind == "ConfigMap")
    assert set(config["data"]) <= allowed
    for key, value in config["data"].items():
        assert "PASSWORD" not in key and "KEY" not in key and "@" not in value, key
    for name, (doc, port_field) in workloads.items():
        container = _container(doc)
        assert parser.parse_args(container["args"]).command == name
        assert container["ports"][0]["containerPort"] == port_field.default
        assert container["resources"]["requests"]["cpu"]
        assert container["resources"]["requests"]["memory"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert doc["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
        probe = container["readinessProbe"]["httpGet"]
        assert probe["path"] == ("/health" if name == "api" else "/healthz")
        assert (
            str(port_field.default)
            == config["data"][
                "CARBONFLOW_API_PORT" if name == "api" else f"CARBONFLOW_{name.upper()}_HTTP_PORT"
            ]
        )
        for env in container.get("env", []):
            assert env["name"] in allowed, f"{name}: {env['name']} is no setting"
            assert env["name"] not in (
                "CARBONFLOW_MIGRATE_DATABASE_URL",
                "CARBONFLOW_APP_DB_PASSWORD",
            ), f"{name} gets the owner role's URL: only the migrate Job may"
            if env["name"] in ("DATABASE_URL", "MQTT_URL", "CARBONFLOW_API_ADMIN_KEY"):
                # Credentials only from the Secret, never from the ConfigMap or a literal.
                assert env["valueFrom"]["secretKeyRef"]["name"] == "carbonflow-secrets"
    # notify and push: one pod, never two at once (each would send what the other sends).
    for name in ("notify", "push"):
        spec = workloads[name][0]["spec"]
        assert spec["replicas"] == 1, name
        assert spec["strategy"] == {"type": "Recreate"}, name
    push_pod = workloads["push"][0]["spec"]["template"]["spec"]
    volume = next(v for v in push_pod["volumes"] if v["name"] == "destinations")
    assert volume["configMap"] == {"name": "carbonflow-push-destinations", "optional": True}
    # Unset by default: push idles until an overlay names the mounted file.
    assert "CARBONFLOW_PUSH_DESTINATIONS" not in config["data"]
    # Stable client ids: the StatefulSet's pod name is the worker's MQTT client id.
    ingest = workloads["ingest"][0]
    client_id = next(
        e for e in _container(ingest)["env"] if e["name"] == "CARBONFLOW_INGEST_CLIENT_ID"
    )
    assert client_id["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # One plain worker on Mosquitto (base, staging); a shared group on EMQX (production).
    shared = config["data"].get("CARBONFLOW_INGEST_SHARED_GROUP")
    assert (ingest["spec"]["replicas"] >= 2) == bool(shared) == (overlay == "production")
    migrate = docs[("Job", "carbonflow-migrate")]
    migrate_args = parser.parse_args(_container(migrate)["args"])
    assert migrate_args.command == "migrate"
    # The Job alone has the owner role, and creates the services' role (no superuser anywhere).
    assert migrate_args.app_role == "carbonflow_svc"
    migrate_env = {e["name"]: e for e in _container(migrate)["env"]}
    assert "DATABASE_URL" not in migrate_env
    for key in ("CARBONFLOW_MIGRATE_DATABASE_URL", "CARBONFLOW_APP_DB_PASSWORD"):
        assert key in allowed
        assert migrate_env[key]["valueFrom"]["secretKeyRef"]["name"] == "carbonflow-secrets"
    assert docs[("Service", "api")]["spec"]["ports"][0]["port"] == 8000
