"""Every Kafka client of the process is built with the connection's security and codec.

The embedded broker cannot authenticate with SASL, so SASL is checked here, at the
clients' configuration; TLS runs end to end in tests/integration/test_kafka_security.py.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest

from streams.kafka.clients import Connection
from streams.settings import Settings
from tests.integration.test_kafka_security import certificate

PASSWORD = "s3cret-and-long"


@pytest.fixture
def sasl_ssl(tmp_path: Path) -> Settings:
    password = tmp_path / "password"
    password.write_text(PASSWORD + "\n")
    cert, _ = certificate(tmp_path)
    return Settings(broker="kafka://b1:9093,kafka://b2:9093",
                    kafka_security_protocol="SASL_SSL",
                    kafka_sasl_mechanism="SCRAM-SHA-512", kafka_username="cover2-worker",
                    kafka_password_file=str(password), kafka_ca_file=str(cert),
                    compression="zstd")


def test_a_sasl_connection_carries_mechanism_user_password_and_tls(sasl_ssl: Settings) -> None:
    connection = Connection.of(sasl_ssl)
    assert connection.bootstrap_servers == "b1:9093,b2:9093"
    options = connection.security()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "cover2-worker"
    assert options["sasl_plain_password"] == PASSWORD  # read from the file, newline dropped
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert PASSWORD not in repr(connection)  # only the file's path is kept


def security_of(client: Any) -> dict[str, Any]:
    inner = getattr(client, "_client", None) or client.client
    return {"protocol": inner._security_protocol, "mechanism": inner._sasl_mechanism,
            "user": inner._sasl_plain_username, "password": inner._sasl_plain_password,
            "tls": isinstance(inner._ssl_context, ssl.SSLContext)}


async def test_every_client_is_built_with_the_security(sasl_ssl: Settings) -> None:
    connection = Connection.of(sasl_ssl)
    expected = {"protocol": "SASL_SSL", "mechanism": "SCRAM-SHA-512", "user": "cover2-worker",
                "password": PASSWORD, "tls": True}
    clients = [connection.consumer(), connection.batch_consumer(0.01, group_id="g"),
               connection.producer(), connection.admin()]
    for client in clients:
        assert security_of(client) == expected, client
    assert clients[2]._compression_type == "zstd"
    for client in clients[:3]:
        await client.stop()
    await clients[3].close()


def test_plaintext_and_tls_only() -> None:
    assert Connection("b:1").security() == {"security_protocol": "PLAINTEXT"}
    tls = Connection("b:1", "SSL")
    assert isinstance(tls.security()["ssl_context"], ssl.SSLContext)


@pytest.mark.parametrize(("settings", "says"), [
    ({"kafka_security_protocol": "TLS"}, "unknown Kafka security protocol"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_username": "u",
      "kafka_password_file": "p"}, "needs a SASL mechanism"),
    ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "PLAIN"},
     "COVER2_KAFKA_PASSWORD_FILE"),
    ({"kafka_cert_file": "c.pem"}, "both COVER2_KAFKA_CERT_FILE and COVER2_KAFKA_KEY_FILE"),
    ({"compression": "brotli"}, "unknown compression"),
])
def test_settings_that_cannot_connect_are_refused(settings: dict[str, str], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        Settings(**settings)  # type: ignore[arg-type]


def test_an_unreadable_password_file_is_named() -> None:
    connection = Connection("b:1", "SASL_PLAINTEXT", "PLAIN", "u", "/no/such/file")
    with pytest.raises(ValueError, match="/no/such/file"):
        connection.security()
