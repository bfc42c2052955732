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
    assert "--create-home" not in dockerfile.replace("--no-create-home", "")


def test_nothing_secret_is_sent_to_the_docker_daemon() -> None:
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for entry in (".git", ".env", ".venv", "*.db", "*.egg-info", "build"):
        assert entry in ignored


def test_compose_names_its_volume_and_runs_without_a_dotenv() -> None:
    compose = (DEPLOY / "compose.yml").read_text()
    assert re.search(r"^name: quitbot$", compose, re.MULTILINE)
    assert re.search(r"^  quitbot-data:\n    name: quitbot-data$", compose, re.MULTILINE)
    assert "-v quitbot-data:/var/lib/quitbot" in (DEPLOY / "README.md").read_text()
    assert "env_file: ../.env" not in compose and "required: false" in compose
    assert "unless-stopped\n    volumes:\n      - quitbot-data" not in compose
    assert "restart: on-failure:5" in compose
    assert "/healthz" in compose and "start_period:" in compose


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
