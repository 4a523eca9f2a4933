"""Real Prometheus servers on loopback, for the tests that scrape real workers."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from streams.tools.broker import free_port, stop_process
from tests.integration.cluster import http_json


@dataclass
class Prometheus:
    """One Prometheus server on loopback."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        status, body = http_json(url)
        assert status == 200 and isinstance(body, dict) and body.get("status") == "success", (
            f"{path} {params}: {status} {body}\n{self.tail()}")
        return body["data"]

    def query(self, expr: str) -> list[Any]:
        """The instant vector of ``expr`` now."""
        return list(self.api("query", query=expr)["result"])

    def alerts(self, name: str) -> list[dict[str, Any]]:
        return [a for a in self.api("alerts")["alerts"] if a["labels"]["alertname"] == name]

    def rules(self) -> list[dict[str, Any]]:
        return [{**rule, "group": group["name"]} for group in self.api("rules")["groups"]
                for rule in group["rules"]]

    def ready(self) -> bool:
        """Whether it answers ``/-/ready``; fails with its log if it has stopped."""
        assert self.process.poll() is None, f"prometheus stopped:\n{self.tail()}"
        return http_json(f"http://127.0.0.1:{self.port}/-/ready")[0] == 200

    def tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class PrometheusServers:
    """Starts Prometheus servers in a temporary directory; ``with`` stops them all and
    removes their files."""

    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(
        prefix="cover2-prometheus-")))
    started: list[Prometheus] = field(default_factory=list)

    def start(self, scrape_configs: Sequence[dict[str, Any]],
              rule_files: Sequence[Path] = ()) -> Prometheus:
        """A Prometheus that scrapes and evaluates every second."""
        binary = shutil.which("prometheus")
        assert binary, ("prometheus is missing: `make setup` installs Debian's prometheus "
                        "package (/usr/bin/prometheus)")
        home = self.directory / f"server-{len(self.started)}"
        home.mkdir()
        config = home / "prometheus.yml"
        # JSON is YAML: no YAML library needed to write Prometheus's config.
        config.write_text(json.dumps({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                       "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": list(scrape_configs),
        }, indent=2), encoding="utf-8")
        port = free_port()
        log = home / "prometheus.log"
        with open(log, "ab") as out:
            process = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={home / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                stdout=out, stderr=subprocess.STDOUT, cwd=home)
        server = Prometheus(process, port, log)
        self.started.append(server)
        return server

    def __enter__(self) -> PrometheusServers:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for server in self.started:
            stop_process(server.process)
        shutil.rmtree(self.directory, ignore_errors=True)
