"""TLS and basic auth on a real worker (`--web-config-file`), scraped by a real Prometheus.

The worker reads an exporter-toolkit web config file whose certificate paths are relative
to the file; the probes stay open, everything else needs a user over HTTPS, and a
Prometheus with the right password scrapes it while one with a wrong password does not.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from tests.integration.cluster import TEST_FLAGS, Feed, Worker, eventually
from tests.integration.prometheus import PrometheusServers
from tests.integration.test_semantics import SCENARIO, trade
from tests.unit.test_web_security import CHALLENGE, basic, make_certificate

pytestmark = pytest.mark.integration

USER, PASSWORD = "prometheus", "scrape me, 15 s at a time"
# What `htpasswd -nBC 10 "" | tr -d ':\n'` prints: $2y$, cost 10.
HASH = "$2y$" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()[4:]
UNAUTHORIZED = {
    "no credentials": None,
    "a wrong password": basic(USER, "not the password"),
    "a wrong user": basic("grafana", PASSWORD),
    "a malformed header": "Basic " + base64.b64encode(USER.encode()).decode(),
    "another scheme": "Bearer " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
}


def fetch(url: str, context: ssl.SSLContext | None,
          authorization: str | None = None) -> tuple[int, str | None, bytes]:
    """GET ``url``: status, WWW-Authenticate and body; (0, None, b"") when nothing answers."""
    request = urllib.request.Request(
        url, headers={"Authorization": authorization} if authorization else {})
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return int(response.status), response.headers.get("WWW-Authenticate"), \
                bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), error.headers.get("WWW-Authenticate"), bytes(error.read())
    except OSError:
        return 0, None, b""


def write_web_config(directory: Path) -> Path:
    """A certificate for 127.0.0.1 and a web config file naming it by relative paths."""
    certificates = directory / "certs"
    certificates.mkdir(parents=True)
    make_certificate(certificates, "server", "127.0.0.1", "IP:127.0.0.1,DNS:localhost")
    path = directory / "web.yml"
    path.write_text(f"tls_server_config:\n  cert_file: certs/server.crt\n"
                    f"  key_file: certs/server.key\n  min_version: TLS12\n"
                    f"basic_auth_users:\n  {USER}: {HASH}\n")
    return path


def scrape_job(name: str, target: str, ca_file: Path, password: str,
               scheme: str = "https") -> dict[str, Any]:
    return {"job_name": name, "scheme": scheme, "metrics_path": "/metrics",
            "tls_config": {"ca_file": str(ca_file)},
            "basic_auth": {"username": USER, "password": password},
            "static_configs": [{"targets": [target]}]}


async def test_tls_and_basic_auth_on_a_real_worker_scraped_by_a_real_prometheus(
        broker: str, prefix: str, tmp_path: Path, workers: list[Worker], feed: Feed) -> None:
    config = write_web_config(tmp_path / "etc")
    worker = Worker(broker, prefix, tmp_path, "w1", f"{prefix}cover2",
                    (*TEST_FLAGS, "--web-config-file", str(config))).start()
    workers.append(worker)
    ca_file = tmp_path / "etc" / "certs" / "server.crt"
    context = ssl.create_default_context(cafile=ca_file)
    base = f"https://127.0.0.1:{worker.port}"

    def healthy() -> bool:
        assert worker.alive(), f"worker exited:\n{worker.tail()}"
        return fetch(base + "/healthz", context)[0] == 200

    await eventually(healthy, what="the worker healthy over HTTPS without credentials")
    status, challenge, _ = fetch(base + "/readyz", context)
    assert status in (200, 503) and challenge is None  # open, whatever it answers

    await feed.send("scenarios", SCENARIO, "down")
    await feed.send("trades", trade("T1"), "M1")
    await feed.flush()
    right = basic(USER, PASSWORD)
    await eventually(lambda: fetch(base + "/cover2", context, right)[0] == 200,
                     what="/cover2 with the right user")
    status, challenge, body = fetch(base + "/metrics", context, right)
    assert (status, challenge) == (200, None) and b"ccp_credit_cover2" in body

    for path in ("/metrics", "/cover2", "/groups/M1"):
        for case, authorization in UNAUTHORIZED.items():
            status, challenge, body = fetch(base + path, context, authorization)
            assert (status, challenge) == (401, CHALLENGE), (path, case, status, body)
            assert json.loads(body) == {
                "error": "unauthorized: valid basic auth credentials required"}, (path, case)

    # Plain HTTP to the HTTPS port gets no answer, with or without credentials.
    plain = base.replace("https://", "http://")
    for authorization in (None, right):
        request = urllib.request.Request(
            plain + "/metrics", headers={"Authorization": authorization} if authorization else {})
        with pytest.raises((OSError, http.client.HTTPException)):
            urllib.request.urlopen(request, timeout=5).close()

    target = f"127.0.0.1:{worker.port}"
    with PrometheusServers() as servers:
        prometheus = servers.start([
            scrape_job("right", target, ca_file, PASSWORD),
            scrape_job("wrong", target, ca_file, "not the password"),
            scrape_job("plain", target, ca_file, PASSWORD, scheme="http"),
        ])
        await eventually(prometheus.ready, what="prometheus ready")

        def up() -> dict[str, float] | None:
            assert prometheus.process.poll() is None, prometheus.tail()
            series = {s["metric"]["job"]: float(s["value"][1])
                      for s in prometheus.query("up")}
            return series if len(series) == 3 else None

        assert await eventually(up, what="every job scraped") == {
            "right": 1.0, "wrong": 0.0, "plain": 0.0}
        await eventually(lambda: prometheus.query('ccp_credit_cover2{job="right"}'),
                         what="the worker's metrics in prometheus")
        assert prometheus.query('ccp_credit_cover2{job=~"wrong|plain"}') == []

    log = worker.log.read_text(errors="replace")
    assert "https://127.0.0.1:" in log and "basic auth (1 user)" in log
    for secret in (PASSWORD, HASH, HASH[7:29]):
        assert secret not in log
