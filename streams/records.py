"""What passes between Kafka and the monitor: records in, effects out.

The monitor never sees a Kafka client: the ingest loop and the faust agents hand
it :class:`Record` objects, and send out the :class:`Effects` it returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from risk.calls import MarginCall


class Record(Protocol):
    """What the monitor needs of a Kafka record (aiokafka's ConsumerRecord has it)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp(self) -> int: ...  # milliseconds


@dataclass(frozen=True)
class Received:
    """A record taken from elsewhere (a faust event), as the monitor needs it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int


@dataclass(frozen=True)
class DeadLetter:
    """A refused message, ready for the dead-letter topic."""

    key: bytes | None
    value: bytes


@dataclass(frozen=True)
class Forward:
    """A message read outside its member's home partition, to send there."""

    topic: str
    key: bytes
    value: bytes


@dataclass
class Effects:
    """What a batch sends out."""

    calls: list[MarginCall] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    forwards: list[Forward] = field(default_factory=list)
