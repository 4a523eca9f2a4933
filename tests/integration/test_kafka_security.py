"""Kafka over TLS end to end, through a real TLS terminator (stunnel) in front of the
embedded broker, which cannot speak TLS itself.

The broker listens on 127.0.0.2 and tells clients to connect to stunnel's port on
127.0.0.1: a client that ignores the security settings reaches only stunnel, and fails.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from streams.kafka.admin import BrokerError, wait_for_kafka
from streams.kafka.clients import Connection
from streams.tools.broker import free_port, start_broker, stop_process
from tests.fixtures import messages_with_losses
from tests.integration.cluster import TEST_FLAGS, Feed, Worker, eventually
from tests.integration.test_worked_examples import send_all
from tests.tolerances import MONEY_ATOL
from tests.unit.test_worked_examples import AFFILIATES

pytestmark = pytest.mark.integration

# How long a plaintext client may try before the test calls it failed.
PLAINTEXT_TRY_S = 5.0


@dataclass(frozen=True)
class TlsBroker:
    bootstrap: str  # stunnel, TLS
    ca_file: Path


def certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    cert, key = directory / "broker.crt", directory / "broker.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[TlsBroker]:
    cert, key = certificate(tmp_path)
    tls_port, plain_port = free_port(), free_port()
    broker = start_broker("127.0.0.2", plain_port, tmp_path / "broker.log",
                          advertised=f"127.0.0.1:{tls_port}")
    config = tmp_path / "stunnel.conf"
    config.write_text(f"foreground = yes\npid =\n[kafka]\naccept = 127.0.0.1:{tls_port}\n"
                      f"connect = 127.0.0.2:{plain_port}\ncert = {cert}\nkey = {key}\n")
    stunnel = subprocess.Popen(["stunnel", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        yield TlsBroker(f"127.0.0.1:{tls_port}", cert)
    finally:
        stop_process(stunnel)
        stop_process(broker)


async def test_a_worker_over_tls_serves_the_worked_example(
        tls_broker: TlsBroker, prefix: str, tmp_path: Path, workers: list[Worker]) -> None:
    tls = Connection(tls_broker.bootstrap, "SSL", ca_file=str(tls_broker.ca_file))
    await wait_for_kafka(tls)
    worker = Worker(tls_broker.bootstrap, prefix, tmp_path, "w1", f"{prefix}cover2",
                    (*TEST_FLAGS, "--kafka-security-protocol", "SSL",
                     "--kafka-ca-file", str(tls_broker.ca_file))).start()
    workers.append(worker)
    await worker.healthy()
    async with Feed(tls, prefix) as feed:
        await send_all(feed, messages_with_losses(
            **AFFILIATES, groups={"A1": "A", "A2": "A"},
            resources={"skin_in_the_game": 15, "liquid_resources": []}))

    def cover2() -> dict | None:
        status, document = worker.get("/cover2")
        ok = status == 200 and document["counts"]["trades"] == 5 and \
            document["scenarios"] == 3 and document["credit"]["prefunded"] == 155
        return document if ok else None

    credit = (await eventually(cover2, what="the example applied over TLS"))["credit"]
    assert credit["cover2"] == pytest.approx(160, abs=MONEY_ATOL)
    assert worker.get("/readyz")[0] == 200


async def test_a_plaintext_client_cannot_reach_the_broker(tls_broker: TlsBroker) -> None:
    await wait_for_kafka(Connection(tls_broker.bootstrap, "SSL",
                                    ca_file=str(tls_broker.ca_file)))
    with pytest.raises(BrokerError):
        await wait_for_kafka(Connection(tls_broker.bootstrap), timeout=PLAINTEXT_TRY_S)
    with pytest.raises(BrokerError):  # TLS, but not trusting the broker's certificate
        await wait_for_kafka(Connection(tls_broker.bootstrap, "SSL"), timeout=PLAINTEXT_TRY_S)
