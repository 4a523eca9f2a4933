"""What the worker sends to Kafka: cover-2 documents, margin calls, dead letters, and
messages forwarded to their member's home partition."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import mode
from aiokafka import AIOKafkaProducer

from streams import topics as t
from streams.codec import encode
from streams.documents import margin_call_document
from streams.kafka.clients import Connection
from streams.records import Effects
from streams.settings import Settings


class Outputs(mode.Service):
    """The worker's producer.

    Margin calls and dead letters are handed over without waiting for the broker,
    so the next batch is not held up by a round trip; whatever must not get ahead
    of them (an offset commit, a state snapshot) awaits :meth:`delivered` first.
    A failed delivery stays failed: every later send and wait raises it, and the
    worker stops rather than go on without the outputs its state includes.
    """

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.topics = settings.topics
        self.producer: AIOKafkaProducer | None = None
        self.published_sequence = -1
        self._in_flight: list[asyncio.Future[Any]] = []
        self._failure: BaseException | None = None

    async def on_start(self) -> None:
        # Every output carries its own id (call_id, sequence) for consumers to deduplicate.
        self.producer = Connection.of(self.settings).producer(
            client_id=f"cover2-{self.settings.name}", acks="all", linger_ms=2)
        await self.producer.start()

    async def on_stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def send(self, effects: Effects) -> None:
        """Hand a batch's margin calls, dead letters and forwards to the producer."""
        if self._failure is not None:
            raise self._failure
        if self.producer is None or not (effects.calls or effects.dead_letters
                                         or effects.forwards):
            return
        currency = self.settings.currency
        sends = [self.producer.send(self.topics.name(t.MARGIN_CALLS),
                                    encode(margin_call_document(call, currency)),
                                    key=call.member.encode())
                 for call in effects.calls]
        sends += [self.producer.send(self.topics.name(t.DEAD_LETTER), letter.value,
                                     key=letter.key)
                  for letter in effects.dead_letters]
        sends += [self.producer.send(forward.topic, forward.value, key=forward.key)
                  for forward in effects.forwards]
        self._in_flight += await asyncio.gather(*sends)

    async def delivered(self) -> None:
        """Wait until everything sent so far is acknowledged by the broker."""
        in_flight, self._in_flight = self._in_flight, []
        try:
            await asyncio.gather(*in_flight)
        except Exception as error:  # a cancelled wait is no failed delivery
            self._failure = self._failure or error
        if self._failure is not None:
            raise self._failure

    async def publish_cover2(self, sequence: int, document: Callable[[], bytes]) -> None:
        """Publish the cover-2 document of results ``sequence``, unless already published."""
        if self.producer is not None and sequence != self.published_sequence:
            self.published_sequence = sequence
            await self.producer.send_and_wait(self.topics.name(t.COVER2), document(),
                                              key=b"cover2")
