"""The stack's Prometheus and Alertmanager, run for real (Debian's prometheus and
prometheus-alertmanager) with its configuration files and the web configs and secrets
deploy/dev-secrets.sh writes: HTTPS and basic auth on both, Prometheus scraping itself and
sending alerts to Alertmanager as the user `prometheus`, Grafana's user reading Prometheus.

Only what cannot be the same outside containers changes: /run/secrets is the folder the
script wrote, the servers listen on free loopback ports (their certificates name
`localhost`), Prometheus evaluates every second and sends again every second, and one alert
fires from the start.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops.conftest import ROOT

pytestmark = pytest.mark.integration

PROMETHEUS_CONFIG = ROOT / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = ROOT / "prometheus" / "alertmanager.yml"
HEALTHCHECKS = ROOT / "deploy"
SECRETS = "/run/secrets"
WAIT_S = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: install Debian's {package} package"
    return path


def rewritten(text: str, secrets: Path) -> str:
    return text.replace(SECRETS, str(secrets))


class Server:
    """One HTTPS server of the stack, asked as a client with the stack's CA would ask it."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, secrets: Path, log: Path):
        self.process, self.port, self.log = process, port, log
        self.context = ssl.create_default_context(cafile=str(secrets / "ca.crt"))
        self.secrets = secrets

    def status(self, path: str, user: str | None = None, password: str | None = None) -> int:
        request = urllib.request.Request(f"https://localhost:{self.port}{path}")
        if user is not None:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=5, context=self.context) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code

    def get(self, path: str, user: str, password_file: str) -> Any:
        request = urllib.request.Request(f"https://localhost:{self.port}{path}")
        password = (self.secrets / password_file).read_text()
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=5, context=self.context) as response:
            return json.loads(response.read())

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])


def eventually(check: Callable[[], bool], what: str, server: Server) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, urllib.error.URLError, ValueError):
            pass
        time.sleep(0.25)
    pytest.fail(f"{what} within {WAIT_S:.0f} s; the server's log:\n{server.tail()}")


def start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def servers(dev_secrets: Path, tmp_path_factory: pytest.TempPathFactory,
            ) -> Iterator[tuple[Server, Server]]:
    """(Prometheus, Alertmanager) with the stack's configuration, until the module ends."""
    directory = tmp_path_factory.mktemp("cover2-monitoring")
    prometheus_port, alertmanager_port = free_port(), free_port()
    started: list[subprocess.Popen[bytes]] = []
    try:
        log = directory / "alertmanager.log"
        started.append(start([
            tool("prometheus-alertmanager", "prometheus-alertmanager"),
            f"--config.file={ALERTMANAGER_CONFIG}", f"--storage.path={directory / 'am'}",
            f"--web.config.file={dev_secrets / 'alertmanager-web.yml'}",
            "--cluster.listen-address=", f"--web.listen-address=127.0.0.1:{alertmanager_port}"],
            log))
        alertmanager = Server(started[-1], alertmanager_port, dev_secrets, log)

        document = yaml.safe_load(rewritten(PROMETHEUS_CONFIG.read_text(), dev_secrets))
        document["global"].update(scrape_interval="1s", scrape_timeout="1s",
                                  evaluation_interval="1s")
        jobs = {job["job_name"]: job for job in document["scrape_configs"]}
        for job in jobs.values():
            job.update(scrape_interval="1s", scrape_timeout="1s")
        jobs["prometheus"]["static_configs"] = [{"targets": [f"localhost:{prometheus_port}"]}]
        (alerting,) = document["alerting"]["alertmanagers"]
        alerting["static_configs"] = [{"targets": [f"localhost:{alertmanager_port}"]}]
        rules = directory / "smoke.rules.yml"
        rules.write_text(json.dumps({"groups": [{"name": "smoke", "rules": [
            {"alert": "StackSmoke", "expr": "vector(1)", "labels": {"severity": "warning"}}]}]}))
        document["rule_files"] = [str(rules)]
        config = directory / "prometheus.yml"
        config.write_text(json.dumps(document))
        log = directory / "prometheus.log"
        started.append(start([
            tool("prometheus", "prometheus"), f"--config.file={config}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.config.file={dev_secrets / 'prometheus-web.yml'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}", "--web.enable-lifecycle",
            # An alert that fires before Alertmanager is discovered is sent again this soon.
            "--rules.alert.resend-delay=1s"], log))
        prometheus = Server(started[-1], prometheus_port, dev_secrets, log)
        for server in (prometheus, alertmanager):
            eventually(lambda server=server: server.status("/-/healthy") == 401,
                       "the server answers HTTPS", server)
        yield prometheus, alertmanager
    finally:
        for process in started:
            stop(process)


def test_prometheus_answers_only_its_users(servers: tuple[Server, Server],
                                           dev_secrets: Path) -> None:
    prometheus, _ = servers
    grafana = (dev_secrets / "grafana_datasource_password").read_text()
    own = (dev_secrets / "prometheus_scrape_password").read_text()
    assert prometheus.status("/-/healthy") == 401
    assert prometheus.status("/-/healthy", "grafana", own) == 401
    assert prometheus.status("/-/healthy", "healthcheck",
                             (dev_secrets / "alertmanager_healthcheck_password").read_text()) == 401
    assert prometheus.status("/-/healthy", "grafana", grafana) == 200
    assert prometheus.status("/-/healthy", "prometheus", own) == 200


def test_alertmanager_answers_only_its_users(servers: tuple[Server, Server],
                                             dev_secrets: Path) -> None:
    _, alertmanager = servers
    assert alertmanager.status("/-/healthy") == 401
    assert alertmanager.status("/-/healthy", "grafana",
                               (dev_secrets / "grafana_datasource_password").read_text()) == 401
    for user, password_file in (("prometheus", "prometheus_scrape_password"),
                                ("healthcheck", "alertmanager_healthcheck_password")):
        password = (dev_secrets / password_file).read_text()
        assert alertmanager.status("/-/healthy", user, password) == 200, user


def test_neither_speaks_plain_http(servers: tuple[Server, Server]) -> None:
    for server in servers:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://localhost:{server.port}/-/healthy", timeout=5)
        assert refused.value.code == 400  # Go's answer to HTTP on a TLS port


def test_prometheus_scrapes_itself_over_https_as_prometheus(servers: tuple[Server, Server]
                                                            ) -> None:
    prometheus, _ = servers

    def up() -> bool:
        targets = prometheus.get("/api/v1/targets", "grafana",
                                 "grafana_datasource_password")["data"]["activeTargets"]
        own = [t for t in targets if t["labels"]["job"] == "prometheus"]
        return bool(own) and own[0]["health"] == "up" and own[0]["scrapeUrl"].startswith("https")

    eventually(up, "the prometheus job is up", prometheus)


def test_alerts_reach_alertmanager_over_https_as_prometheus(servers: tuple[Server, Server]
                                                            ) -> None:
    prometheus, alertmanager = servers
    found = prometheus.get("/api/v1/alertmanagers", "grafana", "grafana_datasource_password")
    assert [am["url"] for am in found["data"]["activeAlertmanagers"]] == [
        f"https://localhost:{alertmanager.port}/api/v2/alerts"]

    def delivered() -> bool:
        alerts = alertmanager.get("/api/v2/alerts", "healthcheck",
                                  "alertmanager_healthcheck_password")
        return any(alert["labels"]["alertname"] == "StackSmoke" for alert in alerts)

    eventually(delivered, "Prometheus's alert is in Alertmanager", alertmanager)


def test_alertmanager_healthcheck_as_the_compose_file_runs_it(servers: tuple[Server, Server],
                                                              dev_secrets: Path,
                                                              tmp_path: Path) -> None:
    _, alertmanager = servers
    client = tmp_path / "healthcheck.yml"
    client.write_text(rewritten((HEALTHCHECKS / "alertmanager" / "healthcheck.yml").read_text(),
                                dev_secrets))
    done = subprocess.run([tool("amtool", "prometheus-alertmanager"),
                           f"--alertmanager.url=https://localhost:{alertmanager.port}",
                           f"--http.config.file={client}", "cluster", "show"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "disabled" in done.stdout  # one instance: no cluster, no gossip port
