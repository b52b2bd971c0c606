"""docker-compose.yml checked without a Docker engine.

1. Against the official Compose Specification JSON schema, vendored at
   deploy/schema/compose-spec.json (see deploy/schema/README.md for where it came from).
   A missing schema file is a failure.
2. Against this project's own invariants: healthchecks everywhere, ``depends_on`` only on healthy
   services (or finished one-shot jobs), one database per service, one reverse proxy as the only
   published port (so ``--scale`` works) that never routes ``/metrics`` or the simulator, the
   simulator in the ``dev`` profile, secrets only as Docker secret files, each service on its own
   PostgreSQL role with its own password (never the superuser), a ``migrate`` job instead
   of services migrating on start, MinIO for evidence, Kafka topic settings passed through.

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
INIT_SCRIPT = REPO / "deploy" / "postgres" / "init-databases.sh"

NGINX_CONF = REPO / "deploy" / "nginx" / "nginx.conf"
MAKE_SECRETS = REPO / "deploy" / "make-secrets.sh"
GITIGNORE = REPO / ".gitignore"

APP_PORTS = {"claims": 8001, "review": 8002, "registry": 8003, "sync": 8004}
PROVINCE = "province"
PROVINCE_PORT = 8009
ALL_PORTS = {**APP_PORTS, PROVINCE: PROVINCE_PORT}
PROXY = "proxy"
CONSOLE = "console"  # the web console, at / behind the proxy
CONSOLE_PORT = 8000
INFRA = ("postgres", "kafka", "minio")
# run once and exit; the services wait for them to have completed successfully
ONE_SHOT = ("migrate", "minio-init")
DEV_ONLY = {PROVINCE}

SECRET_KEY = re.compile(
    r"SECRET|PASSWORD|PASSWD|TOKEN|PRIVATE_KEY|API_KEY|CREDENTIAL|ACCESS_KEY", re.I
)
# Sample values for the required variables, used to resolve the file as Compose would.
SAMPLE_ENV = {
    "CE_PROVINCE_URL": "https://province.example.test/api",
    "CE_PUBLIC_URL": "https://ce.example.test",
}


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


def _long_running(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in _services(compose).items() if n not in ONE_SHOT}


def _active(compose: dict[str, Any], profiles: set[str]) -> set[str]:
    """The services ``docker compose up`` starts with these profiles enabled."""
    return {
        n
        for n, s in _services(compose).items()
        if not s.get("profiles") or profiles & set(s["profiles"])
    }


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
    broken["secrets"]["jwt_secret"]["path"] = "./x"
    errors = _schema_errors(schema, broken)
    assert any("service_ready" in e for e in errors), errors
    assert any("restart_policy" in e for e in errors), errors
    assert any("/secrets/jwt_secret" in e for e in errors), errors


# --- interpolation, settings files and secrets ---------------------------------------------------


def test_interpolation_is_well_formed(compose_text: str, compose: dict[str, Any]) -> None:
    interpolate(compose, SAMPLE_ENV)  # raises ValueError on a stray "$"
    assert referenced_variables(compose_text) >= set(SAMPLE_ENV)


def test_production_requires_the_province_url_and_the_public_url(compose: dict[str, Any]) -> None:
    with pytest.raises(MissingVariables) as excinfo:
        interpolate(compose, {})
    assert excinfo.value.names == {"CE_PROVINCE_URL", "CE_PUBLIC_URL"}
    for name in SAMPLE_ENV:
        with pytest.raises(MissingVariables):
            interpolate(compose, {**SAMPLE_ENV, name: ""})


def test_secrets_are_docker_secret_files_never_environment_values(
    compose: dict[str, Any], resolved: dict[str, Any]
) -> None:
    declared = compose["secrets"]
    for name, spec in declared.items():
        assert set(spec) == {"file"}, f"secret {name} must come from a file"
        assert spec["file"] == f"${{CE_SECRETS_DIR:-./secrets}}/{name}"
    used: set[str] = set()
    for name, service in _services(compose).items():
        mounted = set(service.get("secrets") or [])
        assert mounted <= set(declared), f"{name} mounts an undeclared secret"
        used |= mounted
        env = _environment(service)
        for key, value in env.items():
            if not SECRET_KEY.search(key):
                continue
            assert key.endswith("_FILE"), f"{name}.{key}: a secret travels as a file, not a value"
            secret = str(value).removeprefix("/run/secrets/")
            assert str(value) == f"/run/secrets/{secret}" and secret in mounted, f"{name}.{key}"
        for key, value in _environment(_services(resolved)[name]).items():
            if isinstance(value, str) and "://" in value:
                assert urlsplit(value).password is None, f"{name}.{key} carries a password"
    assert used == set(declared), "every declared secret is used"
    # the operator's tool writes every one of them, into a directory git ignores
    script = MAKE_SECRETS.read_text(encoding="utf-8")
    assert set(re.findall(r"^write (\w+) ", script, re.M)) == set(declared)
    assert os.access(MAKE_SECRETS, os.X_OK)
    assert "secrets/" in GITIGNORE.read_text().splitlines()


def test_settings_reach_the_containers_through_env_file(compose: dict[str, Any]) -> None:
    for name in (*APP_PORTS, CONSOLE, "migrate"):
        env_file = _services(compose)[name].get("env_file")
        assert env_file == [{"path": ".env", "required": False}], name


def test_env_example_documents_every_variable_and_holds_no_secret(compose_text: str) -> None:
    assert ENV_EXAMPLE.is_file()
    example = ENV_EXAMPLE.read_text(encoding="utf-8")
    for name in referenced_variables(compose_text):
        assert re.search(rf"^#?\s*{name}=", example, re.M), f"{name} is not in deploy/.env.example"
    for name in SAMPLE_ENV:
        (line,) = re.findall(rf"^{name}=.*$", example, re.M)
        assert line == f"{name}=", f"deploy/.env.example must leave {name} empty"
    for line in example.splitlines():
        key = line.lstrip("# ").split("=", 1)[0]
        if "=" in line and SECRET_KEY.search(key) and not key.endswith(("_DIR", "_FILE")):
            pytest.fail(f".env.example reaches every container (env_file): no secret like {key}")


# --- services ------------------------------------------------------------------------------------


def test_the_expected_services_exist(compose: dict[str, Any]) -> None:
    assert set(_services(compose)) == {*APP_PORTS, PROVINCE, PROXY, CONSOLE, *INFRA, *ONE_SHOT}


def test_long_running_services_have_a_healthcheck_and_a_restart_policy(
    compose: dict[str, Any],
) -> None:
    for name, service in _long_running(compose).items():
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} disables its healthcheck"
        assert check.get("test") and check["test"] not in (["NONE"], "NONE"), name
        assert service.get("restart") in ("always", "unless-stopped", "on-failure"), name
    for name in ONE_SHOT:
        assert _services(compose)[name]["restart"] == "no", f"{name} runs once"


def test_every_depends_on_waits_for_health_or_a_finished_job(compose: dict[str, Any]) -> None:
    services = _services(compose)
    for name, service in services.items():
        deps = service.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on must be a mapping with conditions"
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            if dep in ONE_SHOT:
                assert spec.get("condition") == "service_completed_successfully", f"{name}->{dep}"
            else:
                assert spec.get("condition") == "service_healthy", f"{name} -> {dep}"
                assert services[dep].get("healthcheck"), f"{name} waits for {dep}, which has none"


def test_the_simulator_runs_only_in_the_dev_profile(compose: dict[str, Any]) -> None:
    services = _services(compose)
    assert services[PROVINCE]["profiles"] == ["dev"]
    production = _active(compose, set())
    assert PROVINCE not in production
    assert _active(compose, {"dev"}) == production | {PROVINCE}
    for name in production:
        for dep, spec in (services[name].get("depends_on") or {}).items():
            if dep not in production:
                assert spec.get("required") is False, f"{name} needs {dep} outside its profile"
    assert services["sync"]["depends_on"][PROVINCE]["required"] is False


def test_app_services_wait_for_infrastructure_and_the_migrations(
    compose: dict[str, Any],
) -> None:
    services = _services(compose)
    for name in APP_PORTS:
        deps = set(services[name].get("depends_on", {}))
        assert {"postgres", "kafka", "migrate"} <= deps, name
        assert ("minio-init" in deps) == (name == "claims"), "only claims stores files"
    assert set(services["migrate"]["depends_on"]) == {"postgres"}
    assert set(services["minio-init"]["depends_on"]) == {"minio"}
    assert set(services[PROXY]["depends_on"]) == {*APP_PORTS, CONSOLE}
    assert set(services[CONSOLE]["depends_on"]) == set(APP_PORTS), "the console only calls them"


def test_app_services_run_from_the_one_image(compose: dict[str, Any]) -> None:
    for name in (*APP_PORTS, PROVINCE, CONSOLE, "migrate"):
        service = _services(compose)[name]
        assert service["command"] == (["migrate"] if name == "migrate" else ["serve", name])
        build = service["build"]
        assert build["context"] == "."
        assert build["dockerfile"] == "deploy/Dockerfile"
        assert (REPO / build["context"] / build["dockerfile"]).is_file()


def test_only_the_proxy_publishes_a_port_so_services_scale(
    compose: dict[str, Any], resolved: dict[str, Any]
) -> None:
    services = _services(resolved)
    for name, service in services.items():
        if name == PROXY:
            assert _published_ports(service) == {(8080, 8080)}
        else:
            assert not service.get("ports"), f"{name} publishes a host port: --scale would fail"
        assert "container_name" not in service, f"{name}: a fixed name cannot scale"
    for name, port in ALL_PORTS.items():
        service = services[name]
        assert [str(p) for p in service["expose"]] == [str(port)], name
        assert str(_environment(service)["CE_PORT"]) == str(port), name
        assert f"127.0.0.1:{port}/healthz" in _healthcheck_text(service), name
    console = services[CONSOLE]
    assert [str(p) for p in console["expose"]] == [str(CONSOLE_PORT)]
    assert str(_environment(console)["CE_CONSOLE_PORT"]) == str(CONSOLE_PORT)
    assert f"127.0.0.1:{CONSOLE_PORT}/healthz" in _healthcheck_text(console)
    custom = interpolate(_services(compose)[PROXY], {**SAMPLE_ENV, "CE_HTTP_PORT": "443"})
    assert custom["ports"] == ["443:8080"]


def _nginx_routes(conf: str) -> dict[str, str]:
    """``location /x/ { proxy_pass http://upstream/; }`` → {"/x/": "upstream"}."""
    return dict(re.findall(r"location\s+(/[\w-]+/)\s*\{\s*proxy_pass\s+http://([\w-]+)/;", conf))


def test_the_proxy_is_the_edge_for_slow_clients_floods_and_forwarded_addresses() -> None:
    """uvicorn cannot time out slow headers: nginx does, bounds each address, and replaces
    (never appends to) the client's X-Forwarded-For."""
    conf = re.sub(r"#[^\n]*", "", NGINX_CONF.read_text(encoding="utf-8"))
    directives = dict(re.findall(r"^\s*(\w+)\s+([^;{]*);", conf, re.M))
    for name in ("client_header_timeout", "client_body_timeout", "limit_conn", "limit_req"):
        assert name in directives, f"nginx.conf sets no {name}"
    assert directives["limit_req_status"] == directives["limit_conn_status"] == "429"
    forwarded = re.findall(r"proxy_set_header\s+X-Forwarded-For\s+(\S+);", conf)
    assert forwarded == ["$remote_addr"]


def test_the_proxy_routes_each_service_by_path_and_hides_metrics(compose: dict[str, Any]) -> None:
    proxy = _services(compose)[PROXY]
    assert str(proxy["image"]).startswith("nginx:1.2")
    version = tuple(int(x) for x in str(proxy["image"]).split(":")[1].split("-")[0].split("."))
    assert version >= (1, 27), "upstream `resolve` (replicas found by DNS) needs nginx 1.27.3+"
    assert "./deploy/nginx/nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    conf = re.sub(r"#[^\n]*", "", NGINX_CONF.read_text(encoding="utf-8"))  # directives only
    assert conf.count("{") == conf.count("}")
    assert _nginx_routes(conf) == {f"/{n}/": n for n in APP_PORTS}
    upstreams = dict(re.findall(r"upstream\s+([\w-]+)\s*\{(.*?)\}", conf, re.S))
    assert set(upstreams) == {*APP_PORTS, CONSOLE}
    for name, port in {**APP_PORTS, CONSOLE: CONSOLE_PORT}.items():
        server = re.search(r"server\s+(\S+)\s+([^;]*);", upstreams[name])
        assert server is not None and server.group(1) == f"{name}:{port}", name
        assert {"resolve", "max_fails=2"} <= set(server.group(2).split()), name
        assert "zone " in upstreams[name], f"{name}: resolve needs a shared-memory zone"
    assert re.search(r"resolver\s+127\.0\.0\.11\b", conf), "Docker's DNS finds every replica"
    assert re.search(r"location ~ \^/\[\^/\]\+/metrics\$ \{\s*return 404;", conf)
    # everything else is the console's (its pages, static files, /auth/callback), URI unchanged;
    # its /metrics is not routed either
    assert re.search(r"location / \{\s*proxy_pass http://console;\s*\}", conf)
    assert re.search(r"location = /metrics \{\s*return 404;", conf)
    assert PROVINCE not in conf and "8009" not in conf, "the simulator is never routed"
    assert "listen 8080;" in conf


def _postgres_superuser(resolved: dict[str, Any]) -> str:
    return str(_environment(_services(resolved)["postgres"])["POSTGRES_USER"])


def test_each_app_service_gets_its_own_database_role_and_password(
    resolved: dict[str, Any],
) -> None:
    """One database per service, reached as that service's own role with its own password
    secret, never as the PostgreSQL superuser; the `migrate` job migrates each as its role."""
    superuser = _postgres_superuser(resolved)
    migrate = _services(resolved)["migrate"]
    migrate_env = _environment(migrate)
    seen = set()
    for name in APP_PORTS:
        service = _services(resolved)[name]
        env = _environment(service)
        own_secret = f"postgres_{name}_password"
        for url_key, password_key in (
            ("CE_DATABASE_URL", "CE_DATABASE_PASSWORD_FILE"),
            (f"CE_{name.upper()}_DATABASE_URL", f"CE_{name.upper()}_DATABASE_PASSWORD_FILE"),
        ):
            values = env if url_key == "CE_DATABASE_URL" else migrate_env
            url = urlsplit(values[url_key])
            assert url.scheme == "postgresql+asyncpg", name
            assert (url.hostname, url.port) == ("postgres", 5432), name
            assert url.path == f"/{name}", f"{name} must use database {name}, not {url.path}"
            assert url.username == name, f"{url_key} of {name} must log in as role {name}"
            assert url.username != superuser, f"{name} must not use the superuser"
            assert values[password_key] == f"/run/secrets/{own_secret}", (name, password_key)
        # the service holds its own database password and no other one
        postgres_secrets = {s for s in service["secrets"] if s.startswith("postgres_")}
        assert postgres_secrets == {own_secret}, name
        seen.add(env["CE_DATABASE_URL"])
    assert len(seen) == len(APP_PORTS)
    assert "CE_DATABASE_URL" not in migrate_env, "`ce migrate` uses each service's own URL"
    assert "CE_DATABASE_PASSWORD_FILE" not in migrate_env, "each service has its own password"
    assert {s for s in migrate["secrets"] if s.startswith("postgres_")} == {
        f"postgres_{name}_password" for name in APP_PORTS
    }, "the migrate job holds the services' passwords, not the superuser's"
    for name, service in _services(resolved).items():
        if name != "postgres":
            assert "postgres_password" not in (service.get("secrets") or []), name


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
        assert env["CE_MIGRATE_ON_START"] == "false", f"{name}: the migrate job migrates"
        assert env["CE_JWT_SECRET_FILE"] == "/run/secrets/jwt_secret"
        assert env["CE_PROVINCE_URL"] == SAMPLE_ENV["CE_PROVINCE_URL"]
        assert env["CE_PUBLIC_URL"] == SAMPLE_ENV["CE_PUBLIC_URL"]
        assert env["CE_DATA_DIR"] == "/data"


def test_kafka_topic_settings_pass_through_to_broker_and_services(
    compose: dict[str, Any],
) -> None:
    pairs = {
        "CE_KAFKA_PARTITIONS": "KAFKA_NUM_PARTITIONS",
        "CE_KAFKA_REPLICATION_FACTOR": "KAFKA_DEFAULT_REPLICATION_FACTOR",
        "CE_KAFKA_MIN_INSYNC_REPLICAS": "KAFKA_MIN_INSYNC_REPLICAS",
        "CE_KAFKA_RETENTION_MS": "KAFKA_LOG_RETENTION_MS",
    }
    cluster = {
        "CE_KAFKA_PARTITIONS": "12",
        "CE_KAFKA_REPLICATION_FACTOR": "3",
        "CE_KAFKA_MIN_INSYNC_REPLICAS": "2",
        "CE_KAFKA_RETENTION_MS": "1209600000",
    }
    defaults = {"CE_KAFKA_REPLICATION_FACTOR": "1", "CE_KAFKA_MIN_INSYNC_REPLICAS": "1"}
    for env, expected in ((SAMPLE_ENV, defaults), ({**SAMPLE_ENV, **cluster}, cluster)):
        services = _services(interpolate(compose, env))
        kafka = _environment(services["kafka"])
        for setting, broker_key in pairs.items():
            for name in APP_PORTS:
                assert str(_environment(services[name])[setting]) == str(kafka[broker_key])
            if setting in expected:
                assert str(kafka[broker_key]) == expected[setting], setting


def test_claims_stores_evidence_in_minio(compose: dict[str, Any], resolved: dict[str, Any]) -> None:
    services = _services(resolved)
    minio = services["minio"]
    assert str(minio["image"]).startswith("minio/minio:RELEASE.")
    assert _healthcheck_text(minio) == "CMD mc ready local"
    assert _environment(minio)["MINIO_ROOT_PASSWORD_FILE"] == "/run/secrets/minio_root_password"
    init = services["minio-init"]
    script = " ".join(init["command"])
    bucket = _environment(init)["CE_S3_BUCKET"]
    assert "mc mb --ignore-existing" in script and '"ce/${CE_S3_BUCKET}"' in script
    assert "mc admin user add" in script, "the services get their own key, not MinIO's root"
    claims = _environment(services["claims"])
    assert claims["CE_EVIDENCE_STORE"] == "s3"
    assert claims["CE_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert claims["CE_S3_BUCKET"] == bucket == "ce-evidence"
    for name in ("review", "registry", "sync"):
        assert "CE_EVIDENCE_STORE" not in _environment(services[name])


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
    for name in ("postgres", "kafka", "minio"):
        mounts = _services(compose)[name].get("volumes", [])
        assert any(not str(m).startswith((".", "/")) for m in mounts), f"{name}: no named volume"


def test_postgres_creates_one_database_and_one_role_per_service(compose: dict[str, Any]) -> None:
    postgres = _services(compose)["postgres"]
    assert str(postgres["image"]).split(":")[1].startswith("16")
    assert "pg_isready" in _healthcheck_text(postgres)
    init = "./deploy/postgres/init-databases.sh:/docker-entrypoint-initdb.d/10-init-databases.sh:ro"
    assert init in postgres["volumes"]
    assert os.access(INIT_SCRIPT, os.X_OK), "the image's entrypoint runs executable .sh files"
    assert _environment(postgres)["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    script = INIT_SCRIPT.read_text(encoding="utf-8")
    (services,) = re.findall(r"^for service in ([\w ]+); do$", script, re.M)
    assert services.split() == list(APP_PORTS)
    # the script reads each role's password from the secret mounted here
    assert 'secret="$secrets_dir/postgres_${service}_password"' in script
    assert "${CE_PG_SECRETS_DIR:-/run/secrets}" in script
    assert set(postgres["secrets"]) == {
        "postgres_password",
        *(f"postgres_{name}_password" for name in APP_PORTS),
    }


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
    assert re.search(r"pip wheel [^\n]* \. ", text), "the project is built into a wheel"


def _secret_files(tmp_path: Path, env: dict[str, Any]) -> dict[str, str]:
    """Stand-ins for /run/secrets/* (sample content) so the settings can read them."""
    out = {}
    for key, value in env.items():
        value = str(value)
        if key.endswith("_FILE") and value.startswith("/run/secrets/"):
            path = tmp_path / value.removeprefix("/run/secrets/")
            path.write_text(f"sample-{path.name}-value-long-enough-for-hs256-keys\n")
            value = str(path)
        out[key] = value
    return out


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
    name: str, resolved: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from sqlalchemy.engine import make_url

    from ce.topology import port_of
    from libs.common.settings import Settings

    for key in list(os.environ):
        if key.startswith("CE_"):
            monkeypatch.delenv(key)
    for key, value in _secret_files(tmp_path, _environment(_services(resolved)[name])).items():
        monkeypatch.setenv(key, value)
    # As `ce serve NAME` builds them; production settings refuse missing secrets and SQLite.
    settings = Settings(service=name)
    assert settings.port == port_of(settings) == ALL_PORTS[name]
    assert settings.host == "0.0.0.0"
    if name in APP_PORTS:
        assert settings.env == "production"
        assert settings.bus == "kafka"
        assert settings.migrate_on_start is False
        url = make_url(settings.effective_database_url)
        assert (url.host, url.database, url.username) == ("postgres", name, name)
        assert url.password == f"sample-postgres_{name}_password-value-long-enough-for-hs256-keys"
        assert settings.jwt_secret is not None
        assert settings.jwt_jwks_url is None and settings.jwt_audience is None
        assert settings.evidence_store == ("s3" if name == "claims" else "local")
        # behind nginx: X-Forwarded-For is believed from the proxy's address alone
        proxy = _services(resolved)[PROXY]["networks"]["default"]["ipv4_address"]
        assert settings.forwarded_allow_ips == proxy == "172.30.80.10"
        assert settings.public_base_url() == f"https://ce.example.test/{name}"
        # the topics of one broker, said explicitly (production's default is 3 / 2)
        assert (settings.kafka_replication_factor, settings.kafka_min_insync_replicas) == (1, 1)
    if name == "claims":
        assert settings.s3_secret_access_key is not None
        assert settings.s3_secret_access_key.get_secret_value().startswith("sample-s3_secret_key")
        assert settings.identity_hmac_key is not None
        assert settings.identity_hmac_key.get_secret_value().startswith("sample-identity_hmac")
    if name in ("sync", "province"):  # the key sync sends is the one the simulator checks
        assert settings.province_api_key is not None
        assert settings.province_api_key.get_secret_value().startswith("sample-province_api_key")


def test_the_migrate_job_migrates_each_service_on_its_own_database(
    resolved: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from sqlalchemy.engine import make_url

    from libs.common.migrations import migration_settings

    for key in list(os.environ):
        if key.startswith("CE_"):
            monkeypatch.delenv(key)
    env = _secret_files(tmp_path, _environment(_services(resolved)["migrate"]))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    chosen = migration_settings(list(APP_PORTS), env)  # what `ce migrate` (no name) runs
    for name, settings in chosen.items():
        url = make_url(settings.effective_database_url)
        assert (url.host, url.database, url.username) == ("postgres", name, name)
        assert url.password == f"sample-postgres_{name}_password-value-long-enough-for-hs256-keys"
        assert settings.env == "production"


def test_production_sync_needs_the_province_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import SecretStr

    from libs.common.settings import Settings
    from services.sync.main import create_app

    monkeypatch.delenv("CE_PROVINCE_URL", raising=False)
    monkeypatch.setenv("CE_PUBLIC_URL", "https://ce.example.test")
    url = "postgresql+asyncpg://ce@postgres/sync"
    secret = SecretStr("x" * 48)
    settings = Settings(service="sync", env="production", jwt_secret=secret, database_url=url)
    with pytest.raises(ValueError, match="CE_PROVINCE_URL"):
        create_app(settings)
    monkeypatch.setenv("CE_PROVINCE_URL", "https://province.example.test/api")
    settings = Settings(service="sync", env="production", jwt_secret=secret, database_url=url)
    assert create_app(settings).state.settings.province_url.startswith("https://province")


def test_the_build_context_leaves_out_secrets_and_local_state() -> None:
    ignored = set((REPO / ".dockerignore").read_text().split())
    # make-secrets.sh writes ./secrets; .env holds settings; neither belongs in an image layer
    assert {"secrets", ".env", ".git", ".venv", "var"} <= ignored


def test_the_console_signs_in_at_the_oidc_provider_and_holds_no_service_secret(
    compose: dict[str, Any], resolved: dict[str, Any]
) -> None:
    """The console is a client of the services over the compose network: their URLs, its own
    session secret and OIDC client secret (files), nothing of theirs (database, JWT key, S3)."""
    console = _services(resolved)[CONSOLE]
    env = _environment(console)
    assert env["CE_ENV"] == "production" and env["CE_HOST"] == "0.0.0.0"
    for name, port in APP_PORTS.items():
        assert env[f"CE_{name.upper()}_URL"] == f"http://{name}:{port}", name
    assert env["CE_CONSOLE_SESSION_SECRET_FILE"] == "/run/secrets/console_session_secret"
    assert env["CE_OIDC_CLIENT_SECRET_FILE"] == "/run/secrets/oidc_client_secret"
    assert str(env["CE_CONSOLE_COOKIE_SECURE"]).lower() == "true", "HTTPS-only cookie by default"
    assert set(console["secrets"]) == {"console_session_secret", "oidc_client_secret"}
    assert "volumes" not in console, "no state of its own"
    assert not any(k.startswith(("CE_DATABASE", "CE_JWT", "CE_S3", "CE_KAFKA")) for k in env)
    # the operator's settings reach it: the provider, the client, the public callback URL
    settings = {
        "CE_OIDC_ISSUER": "https://idp.example.test/realms/zz",
        "CE_OIDC_CLIENT_ID": "ce-console",
        "CE_OIDC_REDIRECT_URL": "https://ce.example.test/auth/callback",
        "CE_CONSOLE_COOKIE_SECURE": "false",
    }
    custom = _environment(interpolate(_services(compose)[CONSOLE], {**SAMPLE_ENV, **settings}))
    assert {k: str(custom[k]) for k in settings} == settings


def test_the_console_settings_accept_its_environment(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """As `ce serve console` builds them in the container: production, the secrets read from
    their files, the OIDC relying party configured, the dev sign-in off."""
    from console.app import create_app
    from console.settings import ConsoleSettings

    for key in list(os.environ):
        if key.startswith("CE_"):
            monkeypatch.delenv(key)
    operator = {
        "CE_OIDC_ISSUER": "https://idp.example.test/realms/zz",
        "CE_OIDC_REDIRECT_URL": "https://ce.example.test/auth/callback",
    }
    service = interpolate(_services(compose)[CONSOLE], {**SAMPLE_ENV, **operator})
    for key, value in _secret_files(tmp_path, _environment(service)).items():
        monkeypatch.setenv(key, value)
    settings = ConsoleSettings()
    assert settings.env == "production" and settings.console_port == CONSOLE_PORT
    assert settings.console_cookie_secure is True
    assert settings.service_url("review") == "http://review:8002"
    assert settings.session_secret().startswith("sample-console_session_secret")
    assert settings.oidc_client_secret is not None
    assert settings.oidc_client_secret.get_secret_value().startswith("sample-oidc_client_secret")
    assert (settings.oidc_issuer, settings.oidc_client_id) == (
        operator["CE_OIDC_ISSUER"],
        "zz-ce-console",
    )
    assert not settings.dev_login
    app = create_app(settings)
    assert app.state.oidc is not None
    assert app.state.oidc.signed_out_url == "https://ce.example.test/logged-out"
