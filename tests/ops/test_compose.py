"""The production stack (docker-compose.yml) and the worker image (Dockerfile), without Docker.

`docker-compose config` validates the compose file and prints it normalised (defaults filled
in, paths made absolute, anchors merged); the tests read that output with `yaml.safe_load`.
The Dockerfile is checked statically.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
SECRET = "grafana_admin_password"
STATE_DIR = "/var/lib/cover2"
BROKER = "kafka://kafka:9092"
SERVICES = {"kafka", "worker-1", "worker-2", "feed", "prometheus", "alertmanager", "grafana"}
HEALTHY = {"service_healthy", "service_completed_successfully"}


# --- running docker-compose ------------------------------------------------------------------

def compose(*args: str, demo: bool = True) -> str:
    """`docker-compose [--profile demo] ARGS` on the stack's file; its output."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed (Debian: apt-get install docker-compose)")
    profile = ["--profile", "demo"] if demo else []
    result = subprocess.run([binary, "-f", str(COMPOSE_FILE), *profile, *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, (
        f"docker-compose {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result.stdout


@functools.cache
def config() -> dict[str, Any]:
    document = yaml.safe_load(compose("config"))
    assert isinstance(document, dict)
    return document


def services() -> dict[str, dict[str, Any]]:
    return config()["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def flag(service: dict[str, Any], name: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in the service's command."""
    args = command(service)
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def mounts(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read-only) of each volume, from the short or the long syntax."""
    out = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            out.append((source, target, bool(mode) and "ro" in mode[0].split(",")))
        else:
            out.append((str(volume.get("source")), str(volume["target"]),
                        str(volume.get("read_only")).lower() == "true"))
    return out


def published(service: dict[str, Any]) -> dict[str, str]:
    """Host port -> container port."""
    out = {}
    for port in service.get("ports") or []:
        if isinstance(port, str):
            *_, host, container = port.split(":")
            out[host] = container.split("/")[0]
        else:
            out[str(port.get("published"))] = str(port["target"])
    return out


def depends_on(service: dict[str, Any]) -> dict[str, str | None]:
    needs = service.get("depends_on") or {}
    if isinstance(needs, list):
        return dict.fromkeys(needs)
    return {name: (spec or {}).get("condition") for name, spec in needs.items()}


# --- the compose file --------------------------------------------------------------------------

@pytest.mark.parametrize("demo", [False, True], ids=["default", "demo-profile"])
def test_compose_file_is_valid(demo: bool) -> None:
    compose("config", "-q", demo=demo)


def test_services_and_volumes() -> None:
    assert set(compose("config", "--services").split()) == SERVICES
    volumes = set(compose("config", "--volumes").split())
    assert {"kafka-data", "worker-1-state", "worker-2-state"} <= volumes
    assert set(services()) == SERVICES


def test_kafka_is_pinned_and_runs_in_kraft_mode() -> None:
    kafka = services()["kafka"]
    assert re.fullmatch(r"apache/kafka:\d+\.\d+\.\d+", kafka["image"]), kafka["image"]
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@kafka:")
    assert env["CLUSTER_ID"]
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # cover2 creates its topics
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    data = [source for source, target, _ in mounts(kafka) if target == env["KAFKA_LOG_DIRS"]]
    assert data and data[0] in config()["volumes"], "Kafka's log dirs are on a named volume"
    for name, service in services().items():
        assert "zookeeper" not in name and "zookeeper" not in str(service.get("image", ""))
        assert not any("ZOOKEEPER" in key for key in environment(service)), name


def test_two_workers_in_one_group_with_their_own_names_and_state() -> None:
    workers = {name: service for name, service in services().items()
               if command(service)[:1] == ["worker"]}
    assert sorted(workers) == ["worker-1", "worker-2"]
    ids, groups, states, ports = set(), set(), set(), set()
    for name, worker in workers.items():
        assert worker["image"] == "cover2:latest" and worker.get("build"), name
        assert flag(worker, "--broker") == BROKER, name
        assert flag(worker, "--web-port") in (None, "6066"), name
        env = environment(worker)
        ids.add(env["COVER2_WORKER_ID"])
        groups.add(env["COVER2_GROUP_ID"])  # one group: they share the partitions
        assert env.get("COVER2_STATE_DIR", STATE_DIR) == STATE_DIR, name
        state = [source for source, target, _ in mounts(worker) if target == STATE_DIR]
        assert state and state[0] in config()["volumes"], f"{name}: state on a named volume"
        states.add(state[0])
        # The production consumer timeouts of `cover2 worker`, not the embedded broker's.
        for setting in ("session_timeout", "heartbeat_interval"):
            assert f"COVER2_{setting.upper()}" not in env, name
            assert flag(worker, "--" + setting.replace("_", "-")) is None, name
        assert worker["restart"] == "unless-stopped", name
        assert list(published(worker).values()) == ["6066"], name
        ports.update(published(worker))
    assert len(ids) == len(states) == len(ports) == 2
    assert len(groups) == 1


def test_every_service_has_a_healthcheck() -> None:
    for name, service in services().items():
        check = service.get("healthcheck") or {}
        assert check.get("test") and str(check.get("disable")).lower() != "true", name
        assert check["test"][0] in ("CMD", "CMD-SHELL") and check["test"] != ["NONE"], name
    for name in ("worker-1", "worker-2"):
        assert any("/healthz" in part for part in services()[name]["healthcheck"]["test"])


def test_services_wait_for_their_dependencies_to_be_healthy() -> None:
    expected = {
        "worker-1": {"kafka"}, "worker-2": {"kafka"}, "feed": {"kafka", "worker-1"},
        "prometheus": {"worker-1", "worker-2"}, "grafana": {"prometheus"},
    }
    for name, service in services().items():
        needs = depends_on(service)
        assert set(needs) >= expected.get(name, set()), name
        for dependency, condition in needs.items():
            assert condition in HEALTHY, f"{name} -> {dependency}: {condition}"


def test_grafana_admin_password_comes_from_a_secret_file() -> None:
    grafana = services()["grafana"]
    env = environment(grafana)
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == f"/run/secrets/{SECRET}"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    sources = [s if isinstance(s, str) else s["source"] for s in grafana.get("secrets") or []]
    assert SECRET in sources
    assert Path(config()["secrets"][SECRET]["file"]) == ROOT / "secrets" / SECRET
    ignored = (ROOT / "secrets" / ".gitignore").read_text().split()
    assert ignored == ["*", "!.gitignore"], "the password file is never committed"
    assert "secrets" in (ROOT / ".dockerignore").read_text().split(), "nor built into an image"


def test_no_environment_variable_holds_a_literal_secret() -> None:
    sensitive = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|CREDENTIALS", re.IGNORECASE)
    for name, service in services().items():
        for key, value in environment(service).items():
            if sensitive.search(key):
                assert key.endswith("_FILE") and value.startswith("/run/secrets/"), (
                    f"{name}: {key} holds a literal value")


def test_the_feed_runs_only_in_the_demo_profile() -> None:
    feed = services()["feed"]
    assert feed["profiles"] == ["demo"]
    assert command(feed)[0] == "simulate" and flag(feed, "--broker") == BROKER
    assert float(flag(feed, "--rate") or 0) > 0
    others = {name for name, service in services().items() if service.get("profiles")}
    assert others == {"feed"}


def test_images_are_pinned() -> None:
    for name, service in services().items():
        image = service["image"]
        if service.get("build"):
            assert image == "cover2:latest", name  # built here from the Dockerfile
            assert Path(service["build"]["context"]) == ROOT, name
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag and tag not in ("", "latest"), f"{name}: {image}"


def test_only_the_ports_users_need_are_published() -> None:
    ports = {host: (name, container) for name, service in services().items()
             for host, container in published(service).items()}
    assert ports == {
        "3000": ("grafana", "3000"), "9090": ("prometheus", "9090"),
        "9093": ("alertmanager", "9093"), "6066": ("worker-1", "6066"),
        "6067": ("worker-2", "6066"),
    }


def test_monitoring_configuration_is_mounted_read_only() -> None:
    prometheus, alertmanager, grafana = (
        services()[name] for name in ("prometheus", "alertmanager", "grafana"))
    assert (str(ROOT / "prometheus"), "/etc/prometheus", True) in mounts(prometheus)
    assert flag(prometheus, "--config.file") == "/etc/prometheus/prometheus.yml"
    assert flag(prometheus, "--storage.tsdb.path") == "/prometheus"
    assert "--web.enable-lifecycle" in command(prometheus)
    assert any(target == "/prometheus" and source in config()["volumes"]
               for source, target, _ in mounts(prometheus))
    assert (str(ROOT / "prometheus" / "alertmanager.yml"), "/etc/alertmanager/alertmanager.yml",
            True) in mounts(alertmanager)
    assert flag(alertmanager, "--config.file") == "/etc/alertmanager/alertmanager.yml"
    assert (str(ROOT / "grafana" / "provisioning"), "/etc/grafana/provisioning",
            True) in mounts(grafana)
    assert (str(ROOT / "grafana" / "dashboards"), "/var/lib/grafana/dashboards",
            True) in mounts(grafana)


# --- the Dockerfile ----------------------------------------------------------------------------

def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text = (pending + line).strip()
        pending = ""
        keyword, _, arguments = text.partition(" ")
        out.append((keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends in a continuation line"
    return out


def arguments(keyword: str) -> list[str]:
    return [args for key, args in instructions() if key == keyword]


def test_dockerfile_base_user_and_entrypoint() -> None:
    known = {"FROM", "ENV", "RUN", "COPY", "USER", "WORKDIR", "VOLUME", "EXPOSE", "HEALTHCHECK",
             "ENTRYPOINT", "CMD", "ARG", "LABEL", "STOPSIGNAL"}
    assert {key for key, _ in instructions()} <= known
    assert arguments("FROM") == ["python:3.11-slim-bookworm"]
    users = arguments("USER")
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert arguments("EXPOSE") == ["6066"]
    assert [json.loads(args) for args in arguments("ENTRYPOINT")] == [["cover2"]]
    assert [json.loads(args) for args in arguments("CMD")] == [["worker"]]
    env = " ".join(arguments("ENV"))
    assert "COVER2_WEB_HOST=0.0.0.0" in env, "reachable by Prometheus from other containers"
    assert f"COVER2_STATE_DIR={STATE_DIR}" in env


def test_dockerfile_healthcheck_asks_healthz_with_python() -> None:
    (check,) = arguments("HEALTHCHECK")
    options, _, cmd = check.partition("CMD ")
    assert all(option.startswith("--") for option in options.split())
    probe = json.loads(cmd)
    assert probe[:2] == ["python", "-c"] and "urllib.request" in probe[2]
    assert "/healthz" in probe[2] and "localhost" in probe[2]
    compile(probe[2], "<healthcheck>", "exec")


def test_dockerfile_installs_the_project_without_dev_dependencies() -> None:
    runs = " ".join(arguments("RUN"))
    assert "pip install" in runs and "[dev]" not in runs and "-e " not in runs
    ignored = set((ROOT / ".dockerignore").read_text().split())
    copied = [part for args in arguments("COPY") for part in args.split()[:-1]
              if not part.startswith("--")]
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["readme"]
    assert {"pyproject.toml", readme, "risk", "streams"} <= set(copied)
    for source in copied:
        assert (ROOT / source).exists(), source
        assert source not in ignored, f"{source} is copied but excluded by .dockerignore"
