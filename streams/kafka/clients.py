"""How the service connects to Kafka: every consumer, producer and admin client is made here.

One :class:`Connection` carries the bootstrap servers, the security settings
and the codec of what is written, so that no client of the process can be
opened without them. A password is read from its file when a client is made,
and never kept in the connection or shown in its repr.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.settings import Settings

__all__ = ["Connection", "Consumer", "TopicPartition"]

Consumer: TypeAlias = AIOKafkaConsumer

# A batch consumer of the per-message inputs asks for large fetches: a partition's
# backlog comes in a few round trips, and the batch loop applies it in one go.
BATCH_FETCH = {"max_partition_fetch_bytes": 8 * 1024 * 1024, "fetch_max_bytes": 64 * 1024 * 1024}


@dataclass(frozen=True)
class Connection:
    """One Kafka cluster: where it is, how to talk to it securely, and the clients.

    ``security_protocol`` is PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL; the SASL
    ones need ``sasl_mechanism``, ``username`` and ``password_file``. ``ca_file``
    verifies the brokers (the system's CAs when empty); ``cert_file`` and
    ``key_file`` are a client certificate for brokers that ask for one.
    ``compression`` is the codec of every producer ("none" for none).
    """

    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    username: str = ""
    password_file: str = ""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    compression: str = "none"

    @classmethod
    def of(cls, settings: Settings) -> Connection:
        """The connection ``settings`` describe; the broker is
        ``kafka://HOST:PORT[,kafka://HOST:PORT]`` (the scheme is optional)."""
        return cls(",".join(server.removeprefix("kafka://")
                            for server in settings.broker.split(",")),
                   settings.kafka_security_protocol, settings.kafka_sasl_mechanism,
                   settings.kafka_username, settings.kafka_password_file,
                   settings.kafka_ca_file, settings.kafka_cert_file, settings.kafka_key_file,
                   settings.compression)

    @property
    def uses_tls(self) -> bool:
        """Whether the brokers are spoken to over TLS."""
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        """Whether the clients authenticate with SASL."""
        return self.security_protocol.startswith("SASL_")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of every client, or None without TLS."""
        if not self.uses_tls:
            return None
        context = ssl.create_default_context(cafile=self.ca_file or None)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def password(self) -> str:
        """The SASL password, read from its file (surrounding white space dropped)."""
        try:
            return Path(self.password_file).read_text().strip()
        except OSError as error:
            raise ValueError(f"cannot read the Kafka password file {self.password_file}: "
                             f"{error.strerror}") from None

    def security(self) -> dict[str, Any]:
        """The security keyword arguments of every aiokafka client."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.uses_tls:
            options["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            options.update(sasl_mechanism=self.sasl_mechanism,
                           sasl_plain_username=self.username,
                           sasl_plain_password=self.password())
        return options

    def consumer(self, **kwargs: Any) -> Consumer:
        """A consumer that commits only when told and starts at the earliest offset."""
        return AIOKafkaConsumer(bootstrap_servers=self.bootstrap_servers,
                                enable_auto_commit=False,
                                **{"auto_offset_reset": "earliest", **self.security(), **kwargs})

    def batch_consumer(self, fetch_wait: float, **kwargs: Any) -> Consumer:
        """A consumer of the per-message inputs: large fetches, waiting at most
        ``fetch_wait`` seconds for data."""
        return self.consumer(fetch_max_wait_ms=int(fetch_wait * 1000), **BATCH_FETCH, **kwargs)

    def producer(self, **kwargs: Any) -> AIOKafkaProducer:
        """A producer with the connection's codec. Never idempotent: the embedded broker
        refuses InitProducerId, and every output carries its own id for consumers to
        deduplicate."""
        codec = None if self.compression == "none" else self.compression
        return AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers,
                                **{"compression_type": codec, **self.security(), **kwargs})

    def admin(self, **kwargs: Any) -> AIOKafkaAdminClient:
        """An admin client."""
        return AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers,
                                   **self.security(), **kwargs)
