"""A real embedded broker and real worker processes, and ways to talk to them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams import topics as t
from streams.broker import free_port
from streams.settings import EMBEDDED_TIMEOUTS

T = TypeVar("T")
# How long a test waits for something that should happen within a second or two.
PATIENCE_S = 60.0


async def eventually(check: Callable[[], Awaitable[T | None] | T | None],
                     timeout: float = PATIENCE_S, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        last = result
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout:.0f} s (last: {last!r})")


def http_json(url: str) -> tuple[int, Any]:
    """GET ``url``: (status, decoded JSON or text); (0, None) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        body, status = error.read(), error.code
    except OSError:
        return 0, None
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode()


@dataclass
class Worker:
    """One `cover2 worker` process."""

    bootstrap: str
    prefix: str
    state_dir: Path
    name: str
    group_id: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def start(self) -> Worker:
        self.log = self.state_dir / f"{self.name}.log"
        command = [sys.executable, "-m", "streams.cli", "worker", "--broker",
                   f"kafka://{self.bootstrap}", "--topic-prefix", self.prefix,
                   "--web-port", str(self.port), "--state-dir", str(self.state_dir),
                   "--worker-id", self.name, "--group-id", self.group_id,
                   "--session-timeout", str(EMBEDDED_TIMEOUTS["session_timeout"]),
                   "--heartbeat-interval", str(EMBEDDED_TIMEOUTS["heartbeat_interval"]),
                   "--snapshot-interval", "1", "--publish-interval", "0.1",
                   "--minimum-transfer", "1"]
        out = open(self.log, "ab")  # noqa: SIM115 (the process owns it)
        self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> tuple[int, Any]:
        return http_json(self.url(path))

    async def healthy(self) -> Worker:
        def check() -> bool:
            assert self.process is not None and self.process.poll() is None, self.tail()
            return self.get("/healthz")[0] == 200
        await eventually(check, what=f"worker {self.name} healthy")
        return self

    def kill(self) -> None:
        """kill -9."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def tail(self, lines: int = 40) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


Spawn = Callable[..., Worker]


class Feed:
    """Sends contract messages to the test's topics."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.bootstrap = bootstrap
        self.topics = t.Topics(prefix)
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1)

    async def __aenter__(self) -> Feed:
        await t.create_topics(self.bootstrap, self.topics, partitions=4)
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def send(self, topic: str, value: Any, key: str | None = None) -> None:
        """Send ``value`` (a dict is encoded as JSON; bytes and None are sent as they are)."""
        if isinstance(value, dict | list):
            value = json.dumps(value).encode()
        elif isinstance(value, str):
            value = value.encode()
        await self.producer.send(self.topics.name(topic), value,
                                 key=None if key is None else key.encode())

    async def flush(self) -> None:
        await self.producer.flush()


async def read_all(bootstrap: str, topic: str, at_least: int,
                   timeout: float = PATIENCE_S) -> list[Any]:
    """Every message of ``topic`` from the start, once there are ``at_least``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = await eventually(lambda: consumer.partitions_for_topic(topic),
                                      what=f"partitions of {topic}")
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        messages: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(messages) < at_least and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                messages += [json.loads(r.value) for r in records]
        assert len(messages) >= at_least, f"{len(messages)} of {at_least} messages on {topic}"
        return messages
    finally:
        await consumer.stop()
