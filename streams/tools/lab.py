"""Real worker processes and ways to talk to them: shared by the bench and the tests.

One launcher (:class:`Worker`), one wait for a condition with a deadline
(:func:`eventually`), one HTTP helper (:func:`http_get`).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from streams.settings import EMBEDDED_TIMEOUTS
from streams.tools.broker import free_port, stop_process

T = TypeVar("T")
# How long to wait for something that should happen within a second or two.
PATIENCE_S = 60.0


async def eventually(check: Callable[[], Awaitable[T | None] | T | None],
                     timeout: float = PATIENCE_S, what: str = "condition",
                     interval: float = 0.1) -> T:
    """Poll ``check`` (plain or async) until it returns something truthy, and return that;
    raise :class:`TimeoutError` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return result
        last = result
        await asyncio.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout:.0f} s (last: {last!r})")


def http_get(url: str, timeout: float = 5.0,
             context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    """GET ``url`` (over TLS with ``context``): (status, body); (0, b"") when nothing
    answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())
    except OSError:
        return 0, b""


def http_json(url: str) -> tuple[int, Any]:
    """GET ``url``: (status, decoded JSON, or the text when it is not JSON); (0, None) when
    nothing answers."""
    status, body = http_get(url)
    if not status:
        return 0, None
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode()


def sample(page: str, series: str) -> float | None:
    """The value of ``series`` (a name with its labels, as written) on a /metrics page."""
    for line in page.splitlines():
        if line.startswith(f"{series} "):
            return float(line.rsplit(" ", 1)[1])
    return None


@dataclass
class Worker:
    """One `cover2 worker` process on the embedded broker's short session timeouts."""

    bootstrap: str
    prefix: str
    state_dir: Path
    name: str
    group_id: str
    flags: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        """Where the process writes its output."""
        return self.state_dir / f"{self.name}.log"

    @property
    def base(self) -> str:
        """The base URL of its HTTP endpoints."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Worker:
        """Start the process (again, after a kill or a stop)."""
        command = [sys.executable, "-m", "streams.cli", "worker", "--broker",
                   f"kafka://{self.bootstrap}", "--topic-prefix", self.prefix,
                   "--web-port", str(self.port), "--state-dir", str(self.state_dir),
                   "--worker-id", self.name, "--group-id", self.group_id,
                   "--session-timeout", str(EMBEDDED_TIMEOUTS["session_timeout"]),
                   "--heartbeat-interval", str(EMBEDDED_TIMEOUTS["heartbeat_interval"]),
                   *self.flags]
        out = open(self.log, "ab")  # noqa: SIM115 (the process owns it)
        self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        return self

    def url(self, path: str) -> str:
        return self.base + path

    def get(self, path: str) -> tuple[int, Any]:
        """GET ``path``: (status, JSON or text)."""
        return http_json(self.url(path))

    def sample(self, series: str) -> float | None:
        """The value of ``series`` on ``/metrics`` (a name with its labels, as written
        there: ``name{topic="trades"}``); None while it is absent."""
        status, page = self.get("/metrics")
        return sample(page, series) if status == 200 else None

    def alive(self) -> bool:
        """Whether the process is running."""
        return self.process is not None and self.process.poll() is None

    async def healthy(self, timeout: float = PATIENCE_S) -> Worker:
        """Wait until ``/healthz`` answers 200; fail at once, with the log, if it exits."""
        def check() -> bool:
            if not self.alive():
                raise RuntimeError(f"worker {self.name} exited:\n{self.tail()}")
            return http_get(self.url("/healthz"), timeout=1)[0] == 200
        await eventually(check, timeout, what=f"worker {self.name} healthy")
        return self

    def signal(self, signum: signal.Signals) -> None:
        """Send ``signum`` if the process is running."""
        if self.alive() and self.process is not None:
            self.process.send_signal(signum)

    def kill(self) -> None:
        """kill -9, and wait until it is gone."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        """SIGTERM (a clean stop that writes a checkpoint), then SIGKILL after 20 s."""
        if self.process is not None:
            self.signal(signal.SIGCONT)
            stop_process(self.process, timeout=20.0)

    def peak_rss(self) -> int:
        """The process's peak resident memory so far, in bytes."""
        return self._memory("VmHWM")

    def rss(self) -> int:
        """The process's resident memory now, in bytes."""
        return self._memory("VmRSS")

    def _memory(self, field: str) -> int:
        assert self.process is not None, "not started"
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(next(line for line in status.splitlines()
                        if line.startswith(field)).split()[1]) * 1024

    def tail(self, lines: int = 40) -> str:
        """The last ``lines`` of its log."""
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
