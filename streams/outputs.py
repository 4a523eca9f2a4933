"""What the worker sends to Kafka: cover-2 documents, margin calls, dead letters."""

from __future__ import annotations

import asyncio
from typing import Any

import mode
from aiokafka import AIOKafkaProducer

from streams import topics as t
from streams.codec import encode
from streams.documents import margin_call_document
from streams.monitor import Effects
from streams.settings import Settings


class Outputs(mode.Service):
    """The worker's producer. Sends are awaited, so nothing is committed before it is out."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.topics = t.Topics(settings.topic_prefix)
        self.producer: AIOKafkaProducer | None = None

    async def on_start(self) -> None:
        # No idempotent producer: the embedded broker refuses InitProducerId, and every
        # output carries its own id (call_id, sequence) for consumers to deduplicate.
        self.producer = AIOKafkaProducer(bootstrap_servers=self.settings.bootstrap_servers,
                                         client_id=f"cover2-{self.settings.name}", acks="all",
                                         linger_ms=2)
        await self.producer.start()

    async def on_stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def send(self, effects: Effects) -> None:
        """Send a batch's margin calls and dead letters, and wait until the broker has them."""
        if self.producer is None or not (effects.calls or effects.dead_letters):
            return
        sends = [self.producer.send(self.topics.name(t.MARGIN_CALLS),
                                    encode(margin_call_document(call)), key=call.member.encode())
                 for call in effects.calls]
        sends += [self.producer.send(self.topics.name(t.DEAD_LETTER), letter.value,
                                     key=letter.key)
                  for letter in effects.dead_letters]
        await asyncio.gather(*await asyncio.gather(*sends))

    async def publish_cover2(self, document: bytes) -> None:
        """Publish the cover-2 document."""
        if self.producer is not None:
            await self.producer.send_and_wait(self.topics.name(t.COVER2), document,
                                              key=b"cover2")
