"""deploy/compose.yml, .env.example and the Prometheus files, checked against the code.

The compose file is validated against the Compose Specification schema vendored in
deploy/schema (tests/deploy/test_compose_tools.py also runs `docker compose config` where
Compose is installed); every carbonflow command must parse with the real CLI parser, every port
must be the settings default, every environment variable a settings field, every metric in an
alert rule one the services declare.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from typing import Any
from urllib.parse import urlsplit

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml
from pydantic import TypeAdapter

from cli.main import build_parser
from services.api.metrics import ApiMetrics
from services.api.settings import ApiSettings
from services.calc.metrics import CalcMetrics
from services.calc.settings import CalcSettings
from services.ingest.metrics import IngestMetrics
from services.ingest.settings import IngestSettings
from services.notify.metrics import NotifyMetrics
from services.notify.settings import NotifySettings
from services.push.metrics import PushMetrics
from services.push.settings import PushSettings
from tests.support import ROOT as ROOT_DIR
from tests.support.deploy_support import cli_environment, setting_fields

ROOT = ROOT_DIR
DEPLOY = ROOT / "deploy"
CARBONFLOW_IMAGE = "${CARBONFLOW_IMAGE:-carbonflow:local}"
SETTINGS_HEADER = (
    "# ---------------------------------------------------------------- carbonflow settings"
)
_ENV_LINE = re.compile(r"^(?:# )?([A-Z][A-Z0-9_]*)=(.*)$")
_INTERPOLATION = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?::?[-?][^}]*)?\}")


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yml").read_text())
    return data


def _carbonflow_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if s.get("image") == CARBONFLOW_IMAGE}


def _env_example() -> tuple[dict[str, str], dict[str, str]]:
    """(stack variables, carbonflow settings) of .env.example, commented defaults included."""
    stack_text, _, settings_text = (DEPLOY / ".env.example").read_text().partition(SETTINGS_HEADER)
    assert settings_text, "the carbonflow settings section header is missing"

    def entries(text: str) -> dict[str, str]:
        return {
            m.group(1): m.group(2)
            for line in text.splitlines()
            if (m := _ENV_LINE.match(line.strip()))
        }

    return entries(stack_text), entries(settings_text)


def _carbonflow_argvs(service: dict[str, Any]) -> list[list[str]]:
    """The ``carbonflow`` argument lists a service runs (through the image's entrypoint or sh)."""
    command = service["command"]
    if service.get("entrypoint") is None:
        return [list(command)]
    assert service["entrypoint"][0] == "sh", service["entrypoint"]
    argvs = []
    for part in re.split(r"&&|;", " ".join(command)):
        words = shlex.split(part)
        if words and words[0] == "exec":
            words = words[1:]
        assert words[0] == "carbonflow", f"a shell step that is not carbonflow: {part!r}"
        argvs.append(words[1:])
    return argvs


def test_compose_file_matches_the_compose_specification() -> None:
    schema = json.loads((DEPLOY / "schema" / "compose-spec.json").read_text())
    # The file says draft 2019-09 with a trailing '#' jsonschema does not recognise.
    assert schema["$schema"].startswith("http://json-schema.org/draft/2019-09/schema")
    validator_class = jsonschema.Draft201909Validator
    validator_class.check_schema(schema)
    compose = _compose()
    errors = sorted(validator_class(schema).iter_errors(compose), key=str)
    assert not errors, "\n".join(e.message for e in errors)
    # The schema is strict enough to catch a misspelt key or a bad condition.
    broken = copy.deepcopy(compose)
    broken["services"]["calc"]["depends_on"]["migrate"]["condition"] = "completed"
    broken["services"]["api"]["healtcheck"] = {}
    assert len(list(validator_class(schema).iter_errors(broken))) >= 2


def test_every_carbonflow_command_is_a_real_subcommand() -> None:
    parser = build_parser()
    services = _carbonflow_services(_compose())
    assert {
        "migrate", "sites", "broker-auth", "ingest-1", "calc", "api", "notify", "push", "simulator"
    } <= set(services)  # fmt: skip
    seen = set()
    for name, service in services.items():
        for argv in _carbonflow_argvs(service):
            try:
                args = parser.parse_args(argv)
            except SystemExit:
                pytest.fail(f"{name}: `carbonflow {' '.join(argv)}` does not parse")
            assert callable(args.handler)
            seen.add(argv[0])
    assert seen == {
        "migrate", "sites", "broker", "ingest", "calc", "api", "notify", "push", "simulate"
    }  # fmt: skip


def test_services_wait_for_the_migration() -> None:
    compose = _compose()
    services = _carbonflow_services(compose)
    for name in (
        "calc", "api", "notify", "push", "sites",
        *(n for n in services if n.startswith("ingest-")),
    ):  # fmt: skip
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name
    assert services["migrate"]["restart"] == "no"
    # The broker starts only with its password file and ACL written.
    assert compose["services"]["mosquitto"]["depends_on"]["broker-auth"] == {
        "condition": "service_completed_successfully"
    }


def _url_user(url: str) -> str:
    """The user of a postgresql:// URL whose password is a ${…} interpolation (urlsplit would
    split at the '/' of its error message)."""
    match = re.match(r"postgresql://([^:@/]+)[:@]", url)
    assert match, url
    return match.group(1)


def test_only_the_migration_runs_as_the_owner_role() -> None:
    """The services connect as the app role (no superuser, no table owner); the migrate job
    alone uses the owner and creates the app role with its password from the environment."""
    compose = _compose()
    services = _carbonflow_services(compose)
    owner = compose["services"]["timescaledb"]["environment"]["POSTGRES_USER"]
    migrate = services["migrate"]
    assert "DATABASE_URL" not in migrate["environment"]
    assert _url_user(migrate["environment"]["CARBONFLOW_MIGRATE_DATABASE_URL"]) == owner
    args = build_parser().parse_args(migrate["command"])
    assert args.app_role == "carbonflow_svc"
    assert "POSTGRES_APP_PASSWORD" in migrate["environment"]["CARBONFLOW_APP_DB_PASSWORD"]
    users = {
        name: _url_user(service["environment"]["DATABASE_URL"])
        for name, service in services.items()
        if "DATABASE_URL" in service.get("environment", {})
    }
    assert {"sites", "calc", "api", "notify", "push", "ingest-1"} <= set(users)
    assert set(users.values()) == {"carbonflow_svc"} != {owner}
    for name, service in services.items():
        for value in service.get("environment", {}).values():
            if name != "migrate" and isinstance(value, str) and "POSTGRES_PASSWORD" in value:
                pytest.fail(f"{name} gets the owner's password")


def test_ports_are_the_settings_defaults() -> None:
    compose = _compose()
    services = _carbonflow_services(compose)
    ingest_port = IngestSettings.model_fields["http_port"].default
    calc_port = CalcSettings.model_fields["http_port"].default
    api_port = ApiSettings.model_fields["port"].default
    assert (ingest_port, calc_port, api_port) == (9108, 9109, 8000)
    ingest = [n for n in services if n.startswith("ingest-")]
    assert len(ingest) >= 1
    for name in ingest:
        env = services[name]["environment"]
        assert env["CARBONFLOW_INGEST_HTTP_PORT"] == str(ingest_port)
        assert f"127.0.0.1:{ingest_port}/healthz" in " ".join(services[name]["healthcheck"]["test"])
    assert services["calc"]["environment"]["CARBONFLOW_CALC_HTTP_PORT"] == str(calc_port)
    assert f"127.0.0.1:{calc_port}/healthz" in " ".join(services["calc"]["healthcheck"]["test"])
    assert services["api"]["environment"]["CARBONFLOW_API_PORT"] == str(api_port)
    assert f"127.0.0.1:{api_port}/health" in " ".join(services["api"]["healthcheck"]["test"])
    assert services["api"]["ports"] == [f"${{API_BIND:-127.0.0.1}}:{api_port}:{api_port}"]
    # Broker and database URLs use the ports the settings assume for mqtt:// and postgres.
    for name in ingest:
        url = _INTERPOLATION.sub("secret", services[name]["environment"]["MQTT_URL"])
        assert urlsplit(url).port == 1883
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]]
        for job in prometheus["scrape_configs"]
    }
    assert sorted(targets["carbonflow-ingest"]) == sorted(f"{n}:{ingest_port}" for n in ingest)
    assert targets["carbonflow-calc"] == [f"calc:{calc_port}"]
    assert targets["carbonflow-api"] == [f"api:{api_port}"]


SINGLETONS: dict[str, type[NotifySettings] | type[PushSettings]] = {
    "notify": NotifySettings,
    "push": PushSettings,
}


@pytest.mark.parametrize("name", sorted(SINGLETONS))
def test_notify_and_push_run_once_on_their_default_port(name: str) -> None:
    """One container each (two would send twice), checked on its /healthz, scraped."""
    services = _carbonflow_services(_compose())
    assert [n for n in services if services[n]["command"][0] == name] == [name]
    port = SINGLETONS[name].model_fields["http_port"].default
    assert port == {"notify": 9110, "push": 9111}[name]
    service = services[name]
    prefix = f"CARBONFLOW_{name.upper()}_HTTP"
    assert service["environment"][f"{prefix}_PORT"] == str(port)
    assert service["environment"][f"{prefix}_HOST"] == "0.0.0.0"
    assert f"127.0.0.1:{port}/healthz" in " ".join(service["healthcheck"]["test"])
    assert "deploy" not in service and "scale" not in service
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = [
        t
        for job in prometheus["scrape_configs"]
        if job["job_name"] == f"carbonflow-{name}"
        for c in job["static_configs"]
        for t in c["targets"]
    ]
    assert targets == [f"{name}:{port}"]
    others = {
        value
        for other, s in services.items()
        if other != name
        for key, value in s.get("environment", {}).items()
        if key.endswith("_PORT")
    }
    assert str(port) not in others, f"{port} is another service's port"


def test_push_mounts_its_destinations_directory() -> None:
    """Without a destinations file push idles; the file goes into the mounted directory."""
    push = _carbonflow_services(_compose())["push"]
    assert "${PUSH_CONFIG_DIR:-./push}:/etc/carbonflow/push:ro" in push["volumes"]
    assert "CARBONFLOW_PUSH_DESTINATIONS" not in push["environment"]
    assert (DEPLOY / "push" / "README.md").is_file()


def test_ingest_ships_one_worker_with_a_plain_stable_subscription() -> None:
    """A plain subscription under a stable client id: the kind Mosquitto restores after a
    restart (tests/services/ingest/test_broker_restart.py runs deploy/'s broker settings)."""
    services = _carbonflow_services(_compose())
    workers = {n: s["environment"] for n, s in services.items() if n.startswith("ingest-")}
    assert list(workers) == ["ingest-1"]
    env = workers["ingest-1"]
    assert env["CARBONFLOW_INGEST_CLIENT_ID"] == "ingest-1"
    assert "CARBONFLOW_INGEST_SHARED_GROUP" not in env


def test_environment_names_are_settings_fields() -> None:
    aliases = setting_fields()
    allowed = set(aliases) | cli_environment()
    for name, service in _carbonflow_services(_compose()).items():
        unknown = set(service.get("environment", {})) - allowed
        assert not unknown, f"{name}: {sorted(unknown)} are read by no settings class"


def test_env_example_lists_every_setting_with_its_default() -> None:
    stack, settings = _env_example()
    aliases = setting_fields()
    assert set(settings) - aliases.keys() - cli_environment() == set()
    assert set(aliases) - set(settings) == set(), "settings missing from .env.example"
    for name, value in settings.items():
        field = aliases.get(name)
        if field is None or field.default is None or value == "":
            continue
        if name in ("CARBONFLOW_ENV",):
            continue  # the stack runs in production; the code's default is development
        parsed = TypeAdapter(field.annotation).validate_python(value)
        assert parsed == field.default, f"{name}={value} but the default is {field.default!r}"
    # No secret values: every password line is empty.
    for name, value in {**stack, **settings}.items():
        if "PASSWORD" in name or name.endswith("_KEY"):
            assert value == "", f"{name} has a value in .env.example"


def test_every_interpolated_variable_is_in_env_example() -> None:
    stack, settings = _env_example()
    text = (DEPLOY / "compose.yml").read_text()
    used = set(_INTERPOLATION.findall(text))
    assert used - set(stack) - set(settings) == set()
    assert {
        "POSTGRES_PASSWORD",
        "POSTGRES_APP_PASSWORD",
        "MQTT_INGEST_PASSWORD",
        "GRAFANA_DB_PASSWORD",
    } <= used


def test_images_are_pinned() -> None:
    for name, service in _compose()["services"].items():
        image = service["image"]
        if image == CARBONFLOW_IMAGE:
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and re.search(r"\d", tag) and tag != "latest", f"{name}: {image}"


def test_grafana_mounts_the_dashboards_and_gets_its_datasource_variables() -> None:
    grafana = _compose()["services"]["grafana"]
    assert "../dashboards/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    assert "../dashboards/json:/var/lib/grafana/dashboards:ro" in grafana["volumes"]
    env = grafana["environment"]
    assert env["CARBONFLOW_GRAFANA_PG_HOST"] == "timescaledb:5432"
    for name in (
        "CARBONFLOW_GRAFANA_PG_DATABASE",
        "CARBONFLOW_GRAFANA_PG_USER",
        "CARBONFLOW_GRAFANA_PG_PASSWORD",
        "CARBONFLOW_PROMETHEUS_URL",
    ):
        assert env[name], name
    assert env["CARBONFLOW_PROMETHEUS_URL"] == "http://prometheus:9090"


def test_alert_rules_use_only_declared_metrics() -> None:
    # The names the services register (the push and notify lists build theirs from a prefix).
    registries = {
        "api": ApiMetrics.create().registry,
        "calc": CalcMetrics.create().registry,
        "ingest": IngestMetrics.create().registry,
        "notify": NotifyMetrics().registry,
        "push": PushMetrics().registry,
    }
    assert {p.parent.name for p in (ROOT / "services").glob("*/metrics.py")} == set(registries)
    declared = {family.name for registry in registries.values() for family in registry.collect()}
    assert "carbonflow_push_packets_acked" in declared
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.rules.yml").read_text())
    names = set()
    alerts = [r for group in rules["groups"] for r in group["rules"]]
    for rule in alerts:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in ("warning", "critical")
        for metric in re.findall(r"\b(carbonflow_[a-z_]+)", rule["expr"]):
            base = re.sub(r"_(total|bucket|sum|count)$", "", metric)
            assert base in declared, f"{rule['alert']}: {metric} is not a declared metric"
            names.add(base)
    wanted = {
        "CarbonflowIngestStalled",
        "CarbonflowRejectsSpike",
        "CarbonflowCalcStale",
        "CarbonflowApi5xx",
        "CarbonflowBrokerBacklog",
    }
    assert wanted <= {r["alert"] for r in alerts}
    assert len(names) >= 10


def test_dockerfile_builds_what_compose_runs() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    assert bases and all(re.search(r":\d", b) and not b.endswith(":latest") for b in bases)
    sources = re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.M)
    assert len(sources) >= 4
    for source in sources:
        for path in source.split():
            assert (ROOT / path).exists(), f"COPY {path}: not in the repository"
    assert 'ENTRYPOINT ["carbonflow"]' in dockerfile
    assert 'carbonflow = "cli.main:main"' in (ROOT / "pyproject.toml").read_text()
    # broker-auth runs as Mosquitto's uid and writes into the directory the image prepares
    # for it (a named volume mounted there starts with that owner).
    auth = _compose()["services"]["broker-auth"]
    out = auth["command"][auth["command"].index("--out") + 1]
    assert f"install -d -o 1883 -g 1883 -m 0700 {out}" in dockerfile
    assert auth["user"] == "1883:1883"
    assert f"mosquitto-auth:{out}" in auth["volumes"]
