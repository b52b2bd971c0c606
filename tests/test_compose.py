"""docker-compose.yml checked without a Docker engine.

1. Against the official Compose Specification JSON schema, vendored at
   deploy/schema/compose-spec.json (see deploy/schema/README.md for where it came from).
   A missing schema file is a failure.
2. Against this project's own invariants: healthchecks everywhere, ``depends_on`` only on healthy
   services, one database per service, the API.md ports, no literal secrets, KRaft Kafka settings.

Compose variable interpolation (``${VAR:?err}``, ``${VAR:-default}``, ``$$``) is reimplemented here
in a small form so that the resolved values can be checked as Compose would see them.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
SCHEMA_FILE = REPO / "deploy" / "schema" / "compose-spec.json"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
ENV_EXAMPLE = REPO / "deploy" / ".env.example"
INIT_SQL = REPO / "deploy" / "postgres" / "init-databases.sql"

APP_PORTS = {"claims": 8001, "review": 8002, "registry": 8003, "sync": 8004}
PROVINCE = "province"
PROVINCE_PORT = 8009
ALL_PORTS = {**APP_PORTS, PROVINCE: PROVINCE_PORT}
INFRA = ("postgres", "kafka")
# Services that call the province platform and so wait for the simulator.
NEEDS_PROVINCE = {"sync"}

SECRET_KEY = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|PRIVATE_KEY|API_KEY|CREDENTIAL", re.I)
REQUIRED_VAR = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*:?\?[^}]*\}$")
# Sample values for the required variables, used to resolve the file as Compose would.
SAMPLE_ENV = {"CE_JWT_SECRET": "sample-jwt-secret", "POSTGRES_PASSWORD": "sample-pg-password"}


# --- a small Compose interpolation ---------------------------------------------------------------

_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<invalid>))"
)


class MissingVariables(Exception):
    def __init__(self, names: set[str]) -> None:
        super().__init__(", ".join(sorted(names)))
        self.names = names


def _interpolate_str(value: str, env: dict[str, str], missing: set[str]) -> str:
    def replace(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        if m.group("invalid") is not None:
            raise ValueError(f"invalid interpolation at {m.start()} in {value!r}")
        name = m.group("braced") or m.group("named")
        op, arg = m.group("op"), m.group("arg") or ""
        is_set = name in env
        non_empty = bool(env.get(name))
        if op in (":-", "-"):
            return env[name] if (non_empty if op == ":-" else is_set) else arg
        if op in (":?", "?"):
            if not (non_empty if op == ":?" else is_set):
                missing.add(name)
                return ""
            return env[name]
        if op in (":+", "+"):
            return arg if (non_empty if op == ":+" else is_set) else ""
        return env.get(name, "")

    return _INTERPOLATION.sub(replace, value)


def interpolate(node: Any, env: dict[str, str]) -> Any:
    """Resolve every string value like Compose does; raise MissingVariables for unset ``:?``."""
    missing: set[str] = set()

    def walk(n: Any) -> Any:
        if isinstance(n, dict):
            return {k: walk(v) for k, v in n.items()}
        if isinstance(n, list):
            return [walk(v) for v in n]
        if isinstance(n, str):
            return _interpolate_str(n, env, missing)
        return n

    resolved = walk(node)
    if missing:
        raise MissingVariables(missing)
    return resolved


def referenced_variables(text: str) -> set[str]:
    names = set()
    for m in _INTERPOLATION.finditer(text):
        name = m.group("braced") or m.group("named")
        if name:
            names.add(name)
    return names


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose_text() -> str:
    assert COMPOSE_FILE.is_file(), f"{COMPOSE_FILE} is missing"
    return COMPOSE_FILE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict[str, Any]:
    data = yaml.safe_load(compose_text)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def resolved(compose: dict[str, Any]) -> dict[str, Any]:
    return interpolate(compose, SAMPLE_ENV)


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    if not SCHEMA_FILE.is_file():
        pytest.fail(
            f"Compose Specification schema not found at {SCHEMA_FILE.relative_to(REPO)}; "
            "see deploy/schema/README.md for where it comes from"
        )
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _environment(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def _schema_errors(schema: dict[str, Any], document: Any) -> list[str]:
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    validator = validator_cls(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    return [f"/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


def _published_ports(service: dict[str, Any]) -> set[tuple[int, int]]:
    out = set()
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            out.add((int(entry["published"]), int(entry["target"])))
            continue
        parts = str(entry).split("/")[0].split(":")
        assert len(parts) in (2, 3), f"port {entry!r} should publish host:container"
        out.add((int(parts[-2]), int(parts[-1])))
    return out


def _healthcheck_text(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test)


# --- the Compose Specification -------------------------------------------------------------------


def test_schema_file_is_the_compose_specification(schema: dict[str, Any]) -> None:
    assert schema.get("title") == "Compose Specification"
    assert schema.get("$id") == "compose_spec.json"
    jsonschema.validators.validator_for(schema).check_schema(schema)


def test_compose_file_is_valid_against_the_compose_specification(
    compose: dict[str, Any], schema: dict[str, Any]
) -> None:
    errors = _schema_errors(schema, compose)
    assert not errors, "docker-compose.yml breaks the Compose Specification:\n" + "\n".join(errors)


def test_resolved_compose_file_is_valid_against_the_compose_specification(
    resolved: dict[str, Any], schema: dict[str, Any]
) -> None:
    errors = _schema_errors(schema, resolved)
    assert not errors, "resolved docker-compose.yml breaks the specification:\n" + "\n".join(errors)


def test_schema_validation_catches_mistakes(
    compose: dict[str, Any], schema: dict[str, Any]
) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["claims"]["depends_on"]["postgres"]["condition"] = "service_ready"
    broken["services"]["claims"]["restart_policy"] = "always"
    errors = _schema_errors(schema, broken)
    assert any("service_ready" in e for e in errors), errors
    assert any("restart_policy" in e for e in errors), errors


# --- interpolation and secrets -------------------------------------------------------------------


def test_interpolation_is_well_formed(compose_text: str, compose: dict[str, Any]) -> None:
    interpolate(compose, SAMPLE_ENV)  # raises ValueError on a stray "$"
    assert referenced_variables(compose_text) >= set(SAMPLE_ENV)


def test_required_secrets_stop_compose_when_unset(compose: dict[str, Any]) -> None:
    with pytest.raises(MissingVariables) as excinfo:
        interpolate(compose, {})
    assert excinfo.value.names == set(SAMPLE_ENV)
    for name in SAMPLE_ENV:
        with pytest.raises(MissingVariables):
            interpolate(compose, {**SAMPLE_ENV, name: ""})


def test_no_literal_secret_values(compose: dict[str, Any], resolved: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        resolved_env = _environment(_services(resolved)[name])
        for key, value in _environment(service).items():
            if SECRET_KEY.search(key):
                assert isinstance(value, str) and REQUIRED_VAR.match(value), (
                    f"{name}.{key} must come from a required variable like ${{{key}:?set {key}}}"
                )
            resolved_value = resolved_env[key]
            if isinstance(resolved_value, str) and "://" in resolved_value:
                password = urlsplit(resolved_value).password
                assert password is None or password in SAMPLE_ENV.values(), (
                    f"{name}.{key}: the password in the URL must come from a required variable"
                )
    assert not set(SAMPLE_ENV.values()) & set(re.findall(r"[\w-]+", COMPOSE_FILE.read_text()))


def test_env_example_documents_every_variable_and_fills_no_secret(compose_text: str) -> None:
    assert ENV_EXAMPLE.is_file()
    example = ENV_EXAMPLE.read_text(encoding="utf-8")
    for name in referenced_variables(compose_text):
        assert re.search(rf"^#?\s*{name}=", example, re.M), f"{name} is not in deploy/.env.example"
    for name in SAMPLE_ENV:
        (line,) = re.findall(rf"^{name}=.*$", example, re.M)
        assert line == f"{name}=", f"deploy/.env.example must leave {name} empty"


# --- services ------------------------------------------------------------------------------------


def test_the_expected_services_exist(compose: dict[str, Any]) -> None:
    assert set(_services(compose)) == {*APP_PORTS, PROVINCE, *INFRA}


def test_every_service_has_a_healthcheck_and_a_restart_policy(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} disables its healthcheck"
        assert check.get("test") and check["test"] not in (["NONE"], "NONE"), name
        assert service.get("restart") in ("always", "unless-stopped", "on-failure"), name


def test_every_depends_on_waits_for_a_healthy_service(compose: dict[str, Any]) -> None:
    services = _services(compose)
    for name, service in services.items():
        deps = service.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on must be a mapping with conditions"
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert spec.get("condition") == "service_healthy", f"{name} -> {dep}"
            assert services[dep].get("healthcheck"), f"{name} waits for {dep}, which has none"


def test_app_services_depend_on_postgres_kafka_and_the_simulator_if_needed(
    compose: dict[str, Any],
) -> None:
    services = _services(compose)
    for name in APP_PORTS:
        deps = set(services[name].get("depends_on", {}))
        assert set(INFRA) <= deps, f"{name} must wait for postgres and kafka"
        assert (PROVINCE in deps) == (name in NEEDS_PROVINCE), name


def test_app_services_run_from_the_one_image(compose: dict[str, Any]) -> None:
    for name in (*APP_PORTS, PROVINCE):
        service = _services(compose)[name]
        assert service["command"] == ["serve", name]
        build = service["build"]
        assert build["context"] == "."
        assert build["dockerfile"] == "deploy/Dockerfile"
        assert (REPO / build["context"] / build["dockerfile"]).is_file()


def test_ports_match_the_api_list(resolved: dict[str, Any]) -> None:
    services = _services(resolved)
    for name, port in ALL_PORTS.items():
        service = services[name]
        assert _published_ports(service) == {(port, port)}, name
        assert str(_environment(service)["CE_PORT"]) == str(port), name
        assert f"127.0.0.1:{port}/healthz" in _healthcheck_text(service), name
    for name in INFRA:
        assert not services[name].get("ports"), f"{name} should not be published"


def test_each_app_service_gets_its_own_database(resolved: dict[str, Any]) -> None:
    seen = set()
    for name in APP_PORTS:
        url = urlsplit(_environment(_services(resolved)[name])["CE_DATABASE_URL"])
        assert url.scheme == "postgresql+asyncpg", name
        assert (url.hostname, url.port) == ("postgres", 5432), name
        assert url.path == f"/{name}", f"{name} must use database {name}, not {url.path}"
        assert url.username == "ce"
        assert url.password == SAMPLE_ENV["POSTGRES_PASSWORD"]
        seen.add(url.path)
    assert len(seen) == len(APP_PORTS)


def test_app_service_settings(resolved: dict[str, Any]) -> None:
    kafka_env = _environment(_services(resolved)["kafka"])
    advertised = kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    for name in APP_PORTS:
        env = _environment(_services(resolved)[name])
        assert env["CE_SERVICE"] == name
        assert env["CE_ENV"] == "production"
        assert env["CE_HOST"] == "0.0.0.0"
        assert env["CE_BUS"] == "kafka"
        assert env["CE_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert f"//{env['CE_KAFKA_BOOTSTRAP']}" in advertised
        assert str(env["CE_KAFKA_IDEMPOTENCE"]).lower() == "true"
        # one broker in compose; the settings would default to 3 / 2 in production
        assert (
            str(env["CE_KAFKA_REPLICATION_FACTOR"]),
            str(env["CE_KAFKA_MIN_INSYNC_REPLICAS"]),
        ) == (
            "1",
            "1",
        )
        assert env["CE_JWT_SECRET"] == SAMPLE_ENV["CE_JWT_SECRET"]
        assert env["CE_PROVINCE_URL"] == f"http://{PROVINCE}:{PROVINCE_PORT}"
        assert env["CE_DATA_DIR"] == "/data"


def test_named_volumes_are_declared_and_bind_mounts_exist(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in _services(compose).items():
        for mount in service.get("volumes", []):
            source = mount["source"] if isinstance(mount, dict) else mount.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name}: bind mount {source} is missing"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
    assert used == declared
    for name in ("postgres", "kafka", *APP_PORTS):
        mounts = _services(compose)[name].get("volumes", [])
        assert any(not str(m).startswith((".", "/")) for m in mounts), f"{name}: no named volume"


def test_postgres_creates_one_database_per_service(compose: dict[str, Any]) -> None:
    postgres = _services(compose)["postgres"]
    assert str(postgres["image"]).split(":")[1].startswith("16")
    assert "pg_isready" in _healthcheck_text(postgres)
    assert any("/docker-entrypoint-initdb.d/" in str(m) for m in postgres["volumes"])
    created = set(re.findall(r"CREATE DATABASE\s+(\w+)", INIT_SQL.read_text(), re.I))
    assert created == set(APP_PORTS)


def test_kafka_runs_kraft_single_node(compose: dict[str, Any]) -> None:
    kafka = _services(compose)["kafka"]
    assert str(kafka["image"]).startswith("apache/kafka:")
    env = {k: str(v) for k, v in _environment(kafka).items()}
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node_id = env["KAFKA_NODE_ID"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{node_id}@kafka:")
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert "CONTROLLER://" in env["KAFKA_LISTENERS"]
    assert "CONTROLLER:" in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    assert "CLUSTER_ID" in env
    assert "kafka-broker-api-versions" in _healthcheck_text(kafka)


def test_dockerfile_shape() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert len(froms) >= 2, "multi-stage build expected"
    assert "python:3.11-slim" in text
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0"), "runtime must not be root"
    assert re.search(r"^ENTRYPOINT\s+\[\"ce\"\]", text, re.M)
    assert re.search(r"pip install (--\S+ )*\.", text)


def test_the_image_holds_every_package_of_the_wheel() -> None:
    """``pip install .`` in the image builds the wheel from what was copied: every top-level
    package the wheel lists (libs, services, simulators, ce) must be copied in."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert {"libs", "services", "simulators", "ce"} <= set(packages)
    copied = re.findall(r"^COPY\s+(\w+)\s+\./\1\s*$", DOCKERFILE.read_text("utf-8"), re.M)
    assert set(packages) <= set(copied), (
        f"the Dockerfile does not copy {set(packages) - set(copied)}"
    )


def test_the_compose_file_runs_what_ce_runs() -> None:
    """The services, the simulator and the ports here are the composition root's table."""
    from ce.topology import DEFAULT_PORTS, SERVICES, SIMULATOR

    assert (set(APP_PORTS), PROVINCE) == (set(SERVICES), SIMULATOR)
    assert DEFAULT_PORTS == ALL_PORTS


@pytest.mark.parametrize("name", [*APP_PORTS, PROVINCE])
def test_the_settings_accept_each_service_environment(
    name: str, resolved: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ce.topology import port_of
    from libs.common.settings import Settings

    for key in list(os.environ):
        if key.startswith("CE_"):
            monkeypatch.delenv(key)
    for key, value in _environment(_services(resolved)[name]).items():
        monkeypatch.setenv(key, str(value))
    # As `ce serve NAME` builds them; production settings refuse missing secrets and SQLite.
    settings = Settings(service=name)
    assert settings.port == port_of(settings) == ALL_PORTS[name]
    assert settings.host == "0.0.0.0"
    if name in APP_PORTS:
        assert settings.env == "production"
        assert settings.bus == "kafka"
        assert settings.effective_database_url.endswith(f"@postgres:5432/{name}")
