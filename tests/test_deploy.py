"""The deploy files hold up: checked as far as this machine allows (no Docker daemon)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.metrics import Metrics
from bot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


def test_the_image_checks_health_over_http_and_builds_reproducibly() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    [healthcheck] = [line for line in dockerfile.splitlines() if line.startswith("HEALTHCHECK")]
    assert "--start-period=" in healthcheck and "--interval=30s" in healthcheck
    assert "/healthz" in dockerfile and "doctor" not in dockerfile.split("HEALTHCHECK")[1]
    assert "QUITBOT_HEALTH_PORT=" in dockerfile
    assert dockerfile.count("FROM ") == 2  # the build stage's leftovers stay behind
    assert "--uid 10001" in dockerfile and "USER 10001:10001" in dockerfile
    for package in ("quitbot", "bot", "platforms"):  # every package pyproject installs
        assert f"COPY {package} ./{package}" in dockerfile
    assert "--create-home" not in dockerfile.replace("--no-create-home", "")


def test_nothing_secret_is_sent_to_the_docker_daemon() -> None:
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for entry in (".git", ".env", ".venv", "*.db", "*.egg-info", "build"):
        assert entry in ignored


class Unset(ValueError):
    """A `${VAR:?message}` (or `${VAR?message}`) whose variable is not set: compose stops."""


# Compose's interpolation (docs.docker.com/compose/how-tos/environment-variables/
# variable-interpolation): $$ is a literal $; $VAR and ${VAR}; ${VAR:-default} and
# ${VAR-default}; ${VAR:?error} and ${VAR?error}; ${VAR:+alt} and ${VAR+alt}.
_REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)|(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\})"
)


def interpolate(text: str, env: dict[str, str], unset: list[str]) -> str:
    """What compose makes of `text` with `env`; names used bare and not set go to `unset`
    (compose warns and puts in ""). Applied to every line but comments, as compose applies
    it to every value of every service before it looks at profiles (docker/compose#11977)."""

    def one(found: re.Match[str]) -> str:
        if found["escaped"]:
            return "$"
        name = found["bare"] or found["name"]
        op, arg, value = found["op"], found["arg"] or "", env.get(name)
        empty_counts = op is not None and op.startswith(":")
        missing = value is None or (empty_counts and value == "")
        if op is None:
            if value is None:
                unset.append(name)
            return value or ""
        if op.endswith("-"):
            return arg if missing else str(value)
        if op.endswith("?"):
            if missing:
                raise Unset(f"required variable {name} is missing a value: {arg}")
            return str(value)
        return "" if missing else arg

    return "\n".join(
        line if line.lstrip().startswith("#") else _REFERENCE.sub(one, line)
        for line in text.splitlines()
    )


def test_the_interpolation_reads_as_compose_does() -> None:
    unset: list[str] = []
    line = "a: $$HOME ${A:-x} ${B-y} ${C:+z} $D ${E}"
    assert interpolate(line, {"B": "", "C": "c", "E": "e"}, unset) == "a: $HOME x  z  e"
    assert unset == ["D"]
    with pytest.raises(Unset, match="required variable P is missing a value: set P"):
        interpolate("p: ${P:?set P}", {"P": ""}, [])
    assert interpolate("# ${P:?not in a comment}", {}, []) == "# ${P:?not in a comment}"


def test_the_default_compose_file_needs_no_dotenv() -> None:
    compose = (DEPLOY / "compose.yml").read_text()
    unset: list[str] = []
    resolved = interpolate(compose, {}, unset)  # no .env, nothing exported
    assert unset == [] and "${" not in resolved
    assert "POSTGRES" not in resolved and "profiles:" not in resolved
    assert re.search(r"^name: quitbot$", compose, re.MULTILINE)
    assert re.search(r"^  quitbot-data:\n    name: quitbot-data$", compose, re.MULTILINE)
    assert "-v quitbot-data:/var/lib/quitbot" in (DEPLOY / "README.md").read_text()
    assert "env_file: ../.env" not in compose and "required: false" in compose
    assert re.findall(r"restart: (\S+)", compose) == ["unless-stopped"]
    assert "/healthz" in compose and "start_period:" in compose


def test_the_postgres_compose_file_asks_for_its_password_alone() -> None:
    compose = (DEPLOY / "compose.postgres.yml").read_text()
    with pytest.raises(Unset, match="POSTGRES_PASSWORD"):
        interpolate(compose, {}, [])
    unset: list[str] = []
    resolved = interpolate(compose, {"POSTGRES_PASSWORD": "s3cret"}, unset)
    assert unset == [] and "${" not in resolved
    urls = re.findall(r"QUITBOT_DATABASE_URL: (\S+)", resolved)
    assert urls == ["postgresql://quitbot:s3cret@postgres:5432/quitbot"] * 2
    assert re.findall(r"QUITBOT_DISCORD_SHARD_IDS: (\S+)", resolved) == ['"0"', '"1"']
    assert set(re.findall(r"restart: (\S+)", compose)) == {"unless-stopped"}
    assert "profiles:" not in compose  # the file is the choice
    assert "--env-file .env -f deploy/compose.postgres.yml" in (ROOT / "README.md").read_text()


def test_the_image_serves_health_where_a_published_port_reaches_it() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "QUITBOT_HEALTH_HOST=0.0.0.0" in dockerfile and "EXPOSE 3000 9464" in dockerfile
    assert "QUITBOT_HEALTH_PORT=9464" in dockerfile
    # Outside the image the default stays loopback.
    assert Settings.model_fields["health_host"].default == "127.0.0.1"
    for doc in (DEPLOY / "README.md", ROOT / ".env.example"):
        assert "127.0.0.1:9464:9464" in doc.read_text()


def test_the_systemd_unit_is_sandboxed_and_verifies(tmp_path: Path) -> None:
    unit = (DEPLOY / "quitbot.service").read_text()
    assert "ExecStartPre" not in unit  # start-up must not depend on live APIs
    assert "-o root -g root .env /etc/quitbot.env" in unit
    assert "RestartPreventExitStatus=2" in unit
    for directive in (
        "PrivateDevices=true",
        "ProtectKernelTunables=true",
        "RestrictNamespaces=true",
        "SystemCallFilter=@system-service",
        "CapabilityBoundingSet=\n",
        "PrivateUsers=true",
    ):
        assert directive in unit
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify wants the ExecStart binary to exist: point it at this environment's quitbot.
    quitbot = Path(sys.executable).with_name("quitbot")
    local = tmp_path / "quitbot.service"
    local.write_text(unit.replace("/opt/quitbot/bin/quitbot", str(quitbot)))
    verified = subprocess.run([analyze, "verify", str(local)], capture_output=True, text=True)
    assert verified.returncode == 0, verified.stderr
    security = subprocess.run(
        [analyze, "security", "--offline=true", str(local)], capture_output=True, text=True
    )
    found = re.search(r"Overall exposure level for quitbot.service: ([\d.]+)", security.stdout)
    assert found is not None, security.stdout + security.stderr
    assert float(found.group(1)) <= 2.0


def test_the_grafana_dashboard_uses_only_metrics_quitbot_serves() -> None:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    served = {
        sample.name for family in Metrics().registry.collect() for sample in family.samples
    } | {f"{family.name}_total" for family in Metrics().registry.collect()}
    served |= {f"{family.name}_bucket" for family in Metrics().registry.collect()}
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used |= set(re.findall(r"(?:quitbot|process|python)_[a-z_]+", target["expr"]))
    assert used and used <= served, f"unknown: {sorted(used - served)}"
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("latency", "tokens", "ends", "errors"):
        assert topic in titles
