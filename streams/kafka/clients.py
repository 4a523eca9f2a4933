"""How the service connects to Kafka: every consumer, producer and admin client is made here."""

from __future__ import annotations

from dataclasses import dataclass
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
    """The bootstrap servers of one Kafka cluster, and the clients that talk to it."""

    bootstrap_servers: str

    @classmethod
    def of(cls, settings: Settings) -> Connection:
        """How every Kafka client of the process reaches the broker ``settings`` name:
        ``kafka://HOST:PORT[,kafka://HOST:PORT]`` (the scheme is optional)."""
        return cls(",".join(server.removeprefix("kafka://")
                            for server in settings.broker.split(",")))

    def consumer(self, **kwargs: Any) -> Consumer:
        """A consumer that commits only when told and starts at the earliest offset."""
        return AIOKafkaConsumer(bootstrap_servers=self.bootstrap_servers,
                                enable_auto_commit=False,
                                **{"auto_offset_reset": "earliest", **kwargs})

    def batch_consumer(self, fetch_wait: float, **kwargs: Any) -> Consumer:
        """A consumer of the per-message inputs: large fetches, waiting at most
        ``fetch_wait`` seconds for data."""
        return self.consumer(fetch_max_wait_ms=int(fetch_wait * 1000), **BATCH_FETCH, **kwargs)

    def producer(self, **kwargs: Any) -> AIOKafkaProducer:
        """A producer. Never idempotent: the embedded broker refuses InitProducerId, and
        every output carries its own id for consumers to deduplicate."""
        return AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers, **kwargs)

    def admin(self, **kwargs: Any) -> AIOKafkaAdminClient:
        """An admin client."""
        return AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers, **kwargs)
