"""Deployment and monitoring files: docker-compose.yml, .env.example and ops/.

Needs the ``docker-compose`` binary (Debian package ``docker-compose``) for the Compose checks and
PyYAML to read the YAML files; ``promtool`` (Debian package ``prometheus``) adds the Prometheus
checks and ``amtool`` (``prometheus-alertmanager``) the Alertmanager ones. Each test that needs one
skips, saying which, when it is absent.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import AliasChoices

from orchestrator.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "ops"
ENV_EXAMPLE = ROOT / ".env.example"
ALERTS = OPS / "prometheus" / "alerts.yml"
DASHBOARD = OPS / "grafana" / "dashboards" / "krtc.json"
ALERTMANAGER = OPS / "alertmanager"
DOCKERFILE = ROOT / "Dockerfile"

#: The metrics `krtc-rec metrics` exposes (issue 7). Rules and panels may use no other name.
METRICS = {
    "krtc_api_requests_total": "counter",
    "krtc_api_request_seconds": "histogram",
    "krtc_sessions": "gauge",
    "krtc_alerts_total": "counter",
    "krtc_dlq_size": "gauge",
    "krtc_reconcile_round_seconds": "histogram",
    "krtc_schedule_lag_seconds": "histogram",
    "krtc_clock_skew_seconds": "gauge",
    "krtc_queue_length": "gauge",
    "krtc_alerts_undelivered_total": "counter",
    "krtc_alerts_outbox": "gauge",
    "krtc_redis_used_memory_bytes": "gauge",
    "krtc_redis_maxmemory_bytes": "gauge",
    "krtc_records": "gauge",
    "krtc_gc_deleted_total": "counter",
    "krtc_redis_unreplicated_writes_total": "counter",
    "krtc_redis_failovers_total": "counter",
}
KNOWN_SERIES = set(METRICS) | {
    f"{name}{suffix}"
    for name, kind in METRICS.items()
    if kind == "histogram"
    for suffix in ("_bucket", "_sum", "_count")
}
MONITORING = {"prometheus", "alertmanager", "grafana"}
SERVICES = {"redis", "sandbox", "worker", "beat", "flower", "metrics"} | MONITORING
#: The rules that nothing but Alertmanager can deliver: the application cannot raise them itself.
NOTIFIED = ("KrtcMetricsDown", "KrtcReconcilerStalled")
#: The ``ha`` profile: a Sentinel topology, and the stack's roles pointed at it.
HA_SERVICES = {
    "redis-primary",
    "redis-replica",
    "sentinel-1",
    "sentinel-2",
    "sentinel-3",
    "worker-ha",
    "beat-ha",
}
#: Variables of .env.example that configure Compose itself, not the orchestrator's processes.
COMPOSE_ONLY = {
    "REDIS_PASSWORD",
    "FLOWER_BASIC_AUTH",
    "GRAFANA_ADMIN_USER",
    "GRAFANA_ADMIN_PASSWORD",
}
REQUIRED = {"REDIS_PASSWORD": "s3cret", "FLOWER_BASIC_AUTH": "admin:s3cret"}
RUNBOOK_SECTIONS = ("## What it means", "## How to check", "## How to fix")

_ENV_LINE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$")
_PROMQL_NAME = re.compile(r"\bkrtc_[a-z0-9_]+\b")


def _yaml() -> Any:
    return pytest.importorskip("yaml", reason="PyYAML is not installed (pip install pyyaml)")


def _load_yaml(path: Path) -> Any:
    return _yaml().safe_load(path.read_text(encoding="utf-8"))


def _compose(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run docker-compose on the repository's file with exactly ``env`` (and no .env file)."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (Debian: apt-get install docker-compose)")
    # An empty --env-file: a developer's own .env must not change what these tests see.
    empty = tmp_path / "empty.env"
    empty.write_text("", encoding="utf-8")
    base = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path)}
    return subprocess.run(
        [binary, "--project-directory", str(ROOT), "--env-file", str(empty)]
        + ["--file", str(ROOT / "docker-compose.yml"), *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def compose_config(tmp_path: Path) -> dict[str, Any]:
    """The Compose file as docker-compose resolves it, with only the required variables set."""
    result = _compose(tmp_path, REQUIRED, "config")
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = _yaml().safe_load(result.stdout)
    return config


def _documented_env() -> dict[str, str]:
    """``NAME -> default`` of every variable in .env.example (commented out or not)."""
    documented: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = _ENV_LINE.match(line)
        if match:
            documented[match.group(1)] = match.group(2).strip()
    return documented


def _setting_env_names() -> dict[str, set[str]]:
    """Field name -> the environment variable names pydantic-settings reads it from."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    names: dict[str, set[str]] = {}
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias or field.alias
        if alias is None:
            names[field_name] = {f"{prefix}{field_name}".upper()}
        elif isinstance(alias, str):
            names[field_name] = {alias.upper()}
        elif isinstance(alias, AliasChoices):
            names[field_name] = {c.upper() for c in alias.choices if isinstance(c, str)}
        else:  # an AliasPath reads a nested value, which no environment variable is
            pytest.fail(f"cannot tell the environment variable of {field_name!r} ({alias!r})")
        assert names[field_name], f"no environment variable for {field_name!r}"
    return names


def _alert_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for group in _load_yaml(ALERTS)["groups"]:
        rules.extend(rule for rule in group["rules"] if "alert" in rule)
    return rules


def _dashboard_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _dashboard_panels(panel.get("panels", []))


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [
        target["expr"]
        for panel in _dashboard_panels(dashboard["panels"])
        for target in panel.get("targets", [])
    ]


def _amtool() -> str:
    binary = shutil.which("amtool")
    if binary is None:
        pytest.skip("amtool is not installed (Debian: apt-get install prometheus-alertmanager)")
    return binary


def render_alertmanager(tmp_path: Path, url: str) -> subprocess.CompletedProcess[str]:
    """Run ops/alertmanager/entrypoint.sh --render-only; the result is ``tmp_path/am.yml``."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "KRTC_ALERT_WEBHOOK_URL": url,
        "ALERTMANAGER_TEMPLATE": str(ALERTMANAGER / "alertmanager.yml"),
        "ALERTMANAGER_CONFIG": str(tmp_path / "am.yml"),
    }
    return subprocess.run(
        ["sh", str(ALERTMANAGER / "entrypoint.sh"), "--render-only"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    return binary


# --- docker-compose.yml ---------------------------------------------------------------------


def test_compose_config_is_valid_with_the_required_variables(tmp_path: Path) -> None:
    result = _compose(tmp_path, REQUIRED, "config", "-q")

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_compose_refuses_to_start_without_a_required_variable(tmp_path: Path, missing: str) -> None:
    env = {name: value for name, value in REQUIRED.items() if name != missing}

    result = _compose(tmp_path, env, "config", "-q")

    assert result.returncode != 0
    assert f"set {missing}" in result.stderr


def test_compose_refuses_an_empty_flower_login(tmp_path: Path) -> None:
    result = _compose(tmp_path, {**REQUIRED, "FLOWER_BASIC_AUTH": ""}, "config", "-q")

    assert result.returncode != 0
    assert "FLOWER_BASIC_AUTH" in result.stderr


def test_compose_has_the_stack_services_and_a_monitoring_profile(
    compose_config: dict[str, Any],
) -> None:
    services = compose_config["services"]

    assert set(services) == SERVICES | HA_SERVICES
    for name, service in services.items():
        expected = ["monitoring"] if name in MONITORING else None
        if name in HA_SERVICES:
            expected = ["ha"]
        assert service.get("profiles") == expected, name


def test_compose_runs_each_role_with_its_krtc_rec_command(
    compose_config: dict[str, Any],
) -> None:
    services = compose_config["services"]

    assert services["sandbox"]["command"] == ["sandbox", "--host", "0.0.0.0", "--port", "8090"]
    assert services["worker"]["command"] == ["worker"]
    assert services["beat"]["command"] == ["beat"]
    assert services["flower"]["command"] == ["flower", "--port", "5555"]
    assert services["metrics"]["command"] == ["metrics", "--port", "9808"]


def test_compose_worker_can_be_scaled(compose_config: dict[str, Any]) -> None:
    worker = compose_config["services"]["worker"]

    assert "container_name" not in worker
    assert "ports" not in worker


def test_compose_redis_persists_and_never_evicts(compose_config: dict[str, Any]) -> None:
    redis = compose_config["services"]["redis"]
    command = " ".join(redis["command"])

    for option in (
        "--appendonly yes",
        "--appendfsync everysec",
        "--maxmemory-policy noeviction",
        "--requirepass",
    ):
        assert option in command
    assert redis["environment"]["REDIS_PASSWORD"] == REQUIRED["REDIS_PASSWORD"]
    assert "healthcheck" in redis
    assert any(volume.endswith(":/data:rw") for volume in redis["volumes"])


def test_compose_checks_the_health_of_the_worker_beat_and_redis(
    compose_config: dict[str, Any],
) -> None:
    services = compose_config["services"]

    for role in ("worker", "beat"):
        check = services[role]["healthcheck"]
        assert check["test"] == ["CMD", "krtc-rec", "healthcheck", role], role
        # A broker that does not answer takes ~10 s to report: the timeout must outlast it.
        assert int(check["timeout"].rstrip("s")) >= 15, role
        assert "start_period" in check, role
    redis = services["redis"]
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])
    # redis-cli logs in with REDISCLI_AUTH: without it the ping answers NOAUTH.
    assert redis["environment"]["REDISCLI_AUTH"] == REQUIRED["REDIS_PASSWORD"]


def test_compose_and_the_dockerfile_pin_their_images_to_a_release() -> None:
    compose = _load_yaml(ROOT / "docker-compose.yml")
    images = [s["image"] for s in compose["services"].values() if "image" in s]
    images += re.findall(r"^FROM\s+(\S+)", DOCKERFILE.read_text(encoding="utf-8"), re.MULTILINE)

    for image in images:
        if image == "krtc-orchestrator:latest":  # built here
            continue
        tag = image.rpartition(":")[2]
        assert re.fullmatch(r"v?\d+\.\d+(\.\d+)?(-[a-z0-9.-]+)?", tag), image


def test_the_image_installs_from_the_constraints_and_checks_its_health() -> None:
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()

    assert re.search(r"^FROM python:3\.11\.\d+-slim", dockerfile, re.MULTILINE)
    assert "pip install --constraint constraints.txt '.[flower,sandbox]'" in dockerfile
    assert re.search(r'^HEALTHCHECK .*\n\s+CMD \["krtc-rec", "healthcheck"\]', dockerfile, re.M)
    for name in ("constraints.txt", "LICENSE", "pyproject.toml"):
        assert f"!{name}" in ignored, f".dockerignore keeps {name} out of the build"


def test_compose_points_the_processes_at_its_redis_and_the_sandbox(
    compose_config: dict[str, Any],
) -> None:
    for name in ("worker", "beat", "flower", "metrics"):
        env = compose_config["services"][name]["environment"]
        assert env["REDIS_URL"] == f"redis://:{REQUIRED['REDIS_PASSWORD']}@redis:6379/0", name
        assert env["KRTC_ENDPOINT"] == "http://sandbox:8090/cloud", name
    flower_env = compose_config["services"]["flower"]["environment"]
    assert flower_env["FLOWER_BASIC_AUTH"] == REQUIRED["FLOWER_BASIC_AUTH"]


def test_compose_uses_the_configured_endpoint(tmp_path: Path) -> None:
    endpoint = "https://krtc.api.ksyun.com/cloud"

    result = _compose(tmp_path, {**REQUIRED, "KRTC_ENDPOINT": endpoint}, "config")

    assert result.returncode == 0, result.stderr
    config = _yaml().safe_load(result.stdout)
    assert config["services"]["worker"]["environment"]["KRTC_ENDPOINT"] == endpoint


def test_compose_passes_every_documented_setting_to_the_processes(
    compose_config: dict[str, Any],
) -> None:
    documented = set(_documented_env()) - COMPOSE_ONLY

    for name in ("worker", "beat", "flower", "metrics"):
        env = compose_config["services"][name]["environment"]
        missing = sorted(documented - set(env))
        assert not missing, f"{name} does not receive {missing}: add them to x-krtc-env"


def test_compose_mounts_the_ops_files_where_the_configs_expect_them(
    compose_config: dict[str, Any],
) -> None:
    services = compose_config["services"]
    provider = _load_yaml(OPS / "grafana" / "provisioning" / "dashboards" / "dashboards.yml")

    assert f"{OPS / 'prometheus'}:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    assert f"{ALERTMANAGER}:/etc/alertmanager:ro" in services["alertmanager"]["volumes"]
    dashboards_dir = provider["providers"][0]["options"]["path"]
    assert f"{OPS / 'grafana' / 'dashboards'}:{dashboards_dir}:ro" in services["grafana"]["volumes"]


# --- .env.example ---------------------------------------------------------------------------


def test_env_example_lists_every_setting() -> None:
    documented = set(_documented_env())

    undocumented = {
        field: sorted(names)
        for field, names in _setting_env_names().items()
        if not names & documented
    }

    assert not undocumented, f"add these settings to .env.example: {undocumented}"


def test_env_example_shows_the_real_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    env_names = _setting_env_names()
    for names in env_names.values():
        for name in names:
            monkeypatch.delenv(name, raising=False)
    defaults = Settings()
    documented = _documented_env()

    for field, names in env_names.items():
        expected = getattr(defaults, field)
        for name in names & set(documented):
            if documented[name] == "":
                # An empty value documents "unset": the default must be that too.
                assert expected is None or expected == "", f"{name}: default is {expected!r}"
                continue
            monkeypatch.setenv(name, documented[name])
            assert getattr(Settings(), field) == expected, (
                f"{name}: .env.example shows {documented[name]!r}, the default is {expected!r}"
            )
            monkeypatch.delenv(name)


def test_env_example_leaves_the_required_compose_variables_to_the_user() -> None:
    documented = _documented_env()

    for name in REQUIRED:
        assert documented.get(name) == "", f"{name} must be listed with no value"


# --- Prometheus ---------------------------------------------------------------------------


def test_every_alert_rule_has_a_runbook() -> None:
    rules = _alert_rules()

    assert rules
    for rule in rules:
        url = rule.get("annotations", {}).get("runbook_url", "")
        path = url[url.find("ops/runbooks/") :] if "ops/runbooks/" in url else ""
        assert path.endswith(".md"), f"{rule['alert']}: runbook_url {url!r}"
        assert (ROOT / path).is_file(), f"{rule['alert']}: {path} does not exist"


def test_every_runbook_belongs_to_a_rule_and_says_what_to_do() -> None:
    linked = {rule["annotations"]["runbook_url"].rsplit("/", 1)[-1] for rule in _alert_rules()}

    for page in sorted((OPS / "runbooks").glob("*.md")):
        assert page.name in linked, f"{page.name} is not the runbook of any alert rule"
        text = page.read_text(encoding="utf-8")
        for section in RUNBOOK_SECTIONS:
            assert section in text, f"{page.name} lacks {section!r}"


def test_the_issue_alerts_are_all_there() -> None:
    exprs = " ".join(rule["expr"] for rule in _alert_rules())

    assert 'krtc_alerts_total{kind="abnormal_exit"}' in exprs
    assert "krtc_dlq_size" in exprs
    assert "krtc_reconcile_round_seconds_bucket" in exprs
    assert 'krtc_api_requests_total{action="stop"' in exprs
    assert 'krtc_sessions{phase="orphaned"}' in exprs
    assert 'up{job="krtc"} == 0' in exprs


def test_alert_rules_use_only_the_known_metrics() -> None:
    for rule in _alert_rules():
        unknown = set(_PROMQL_NAME.findall(rule["expr"])) - KNOWN_SERIES
        assert not unknown, f"{rule['alert']} uses unknown metrics {sorted(unknown)}"


def test_prometheus_scrapes_the_metrics_service() -> None:
    config = _load_yaml(OPS / "prometheus" / "prometheus.yml")

    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["krtc"]["static_configs"][0]["targets"] == ["metrics:9808"]
    assert config["rule_files"] == ["alerts.yml"]


def test_prometheus_sends_its_alerts_to_the_compose_alertmanager(
    compose_config: dict[str, Any],
) -> None:
    config = _load_yaml(OPS / "prometheus" / "prometheus.yml")
    alertmanager = compose_config["services"]["alertmanager"]

    (target,) = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert target == "alertmanager:9093"
    assert alertmanager["entrypoint"] == ["/bin/sh", "/etc/alertmanager/entrypoint.sh"]
    assert "KRTC_ALERT_WEBHOOK_URL" in alertmanager["environment"]
    assert any("127.0.0.1:9093:9093" in str(port) for port in alertmanager["ports"])


def test_promtool_accepts_the_config_and_the_rules() -> None:
    promtool = _promtool()

    for args in (
        ["check", "config", "prometheus.yml"],
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
    ):
        result = subprocess.run(
            [promtool, *args],
            cwd=OPS / "prometheus",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


# --- Alertmanager ---------------------------------------------------------------------------


def test_alertmanager_config_renders_with_the_webhook_url(tmp_path: Path) -> None:
    url = "https://hooks.example.com/krtc?token=a&b=c|d"

    result = render_alertmanager(tmp_path, url)

    assert result.returncode == 0, result.stderr
    rendered = _load_yaml(tmp_path / "am.yml")
    (receiver,) = rendered["receivers"]
    assert receiver["webhook_configs"] == [{"url": url, "send_resolved": True}]
    assert (tmp_path / "am.yml").stat().st_mode & 0o077 == 0, "the file holds the URL: 0600"


def test_alertmanager_without_a_url_keeps_a_receiver_and_warns(tmp_path: Path) -> None:
    result = render_alertmanager(tmp_path, "")

    assert result.returncode == 0, result.stderr
    assert "KRTC_ALERT_WEBHOOK_URL is not set" in result.stderr
    rendered = _load_yaml(tmp_path / "am.yml")
    assert rendered["receivers"] == [{"name": "krtc-webhook"}]
    assert rendered["route"]["receiver"] == "krtc-webhook"


@pytest.mark.parametrize("url", ["ftp://hooks.example.com/x", 'https://a.example.com/"x', "x"])
def test_alertmanager_refuses_a_url_it_cannot_use(tmp_path: Path, url: str) -> None:
    result = render_alertmanager(tmp_path, url)

    assert result.returncode == 1
    assert "KRTC_ALERT_WEBHOOK_URL must" in result.stderr


@pytest.mark.parametrize("url", ["https://hooks.example.com/krtc", ""])
def test_amtool_accepts_the_rendered_config(tmp_path: Path, url: str) -> None:
    amtool = _amtool()
    assert render_alertmanager(tmp_path, url).returncode == 0

    result = subprocess.run(
        [amtool, "check-config", str(tmp_path / "am.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("alert", NOTIFIED)
def test_the_alerts_only_prometheus_sees_reach_the_webhook(tmp_path: Path, alert: str) -> None:
    amtool = _amtool()
    rule = next(r for r in _alert_rules() if r["alert"] == alert)
    assert render_alertmanager(tmp_path, "https://hooks.example.com/krtc").returncode == 0

    result = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={tmp_path / 'am.yml'}"]
        + ["--verify.receivers=krtc-webhook", f"alertname={alert}"]
        + [f"{name}={value}" for name, value in rule["labels"].items()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


# --- Grafana --------------------------------------------------------------------------------


def test_dashboard_uses_only_the_known_metrics_and_shows_them_all() -> None:
    exprs = _dashboard_exprs()

    used = {name for expr in exprs for name in _PROMQL_NAME.findall(expr)}
    assert not used - KNOWN_SERIES, f"unknown metrics: {sorted(used - KNOWN_SERIES)}"
    shown = {name.removesuffix(s) for name in used for s in ("_bucket", "_sum", "_count", "")}
    assert not set(METRICS) - shown, f"not on the dashboard: {sorted(set(METRICS) - shown)}"


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    promtool = _promtool()
    # Grafana's own variables become plain durations; JSON is valid YAML for promtool.
    rules = [
        {"record": f"dashboard:query_{i}", "expr": expr.replace("$__rate_interval", "1m")}
        for i, expr in enumerate(_dashboard_exprs())
    ]
    for rule in rules:
        rule["expr"] = rule["expr"].replace("$__range", "1h")
    rules_file = tmp_path / "dashboard.rules.yml"
    rules_file.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))

    result = subprocess.run(
        [promtool, "check", "rules", str(rules_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_selects_the_provisioned_data_source() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    sources = _load_yaml(OPS / "grafana" / "provisioning" / "datasources" / "prometheus.yml")

    variable = next(v for v in dashboard["templating"]["list"] if v["type"] == "datasource")
    assert variable["current"]["value"] == sources["datasources"][0]["uid"]
    for panel in _dashboard_panels(dashboard["panels"]):
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    ids = [panel["id"] for panel in _dashboard_panels(dashboard["panels"])]
    assert len(ids) == len(set(ids))


# --- ops/README.md --------------------------------------------------------------------------


def test_ops_readme_names_every_file() -> None:
    readme = (OPS / "README.md").read_text(encoding="utf-8")

    for path in sorted(OPS.rglob("*")):
        if path.is_file() and path.name != "README.md":
            relative = path.relative_to(OPS).as_posix()
            assert relative in readme, f"ops/README.md does not mention {relative}"
