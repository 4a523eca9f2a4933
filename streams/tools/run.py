"""`cover2 run` and `cover2 broker`: everything on one machine, on the embedded broker."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from streams.failure import EXIT_CANNOT_START, EXIT_FATAL
from streams.kafka.admin import BrokerError, wait_for_kafka
from streams.kafka.clients import Connection
from streams.settings import Settings
from streams.tools.broker import start_broker, stop_process
from streams.tools.lab import http_get
from streams.tools.settings import ToolSettings
from streams.web_security import WebConfigError, load_web_config

Say = Callable[[str], None]
HEALTHY_WITHIN_S = 30.0
# Settings the worker of `cover2 run` does not take from the run's own: it is given the
# embedded broker and a temporary state directory.
RUN_OWN = ("broker", "state_dir")


def interrupt_on_sigterm() -> None:
    """SIGTERM stops a foreground command the way Ctrl-C does, children included."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def broker(settings: ToolSettings, say: Say) -> None:
    """The embedded broker alone, in the foreground, until Ctrl-C."""
    interrupt_on_sigterm()
    process = start_broker(settings.broker_host, settings.broker_port)
    asyncio.run(wait_for_kafka(Connection(settings.embedded_broker)))
    say(f"broker: Kafka-compatible, in memory, at kafka://{settings.embedded_broker}; "
        f"Ctrl-C stops it (and forgets everything)")
    try:
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_process(process)


def worker_flags(settings: Settings) -> list[str]:
    """The flags that pass every worker setting of ``settings`` on, but the run's own."""
    return [f"--{f.name.replace('_', '-')}={getattr(settings, f.name)}"
            for f in dataclasses.fields(Settings) if f.name not in RUN_OWN]


def _local_web(settings: ToolSettings) -> tuple[str, ssl.SSLContext | None]:
    """The worker's base URL, and the TLS context to probe it with when it speaks HTTPS.

    The probe only asks our own child on this machine whether it is up: it does not
    verify the certificate, which a user's own CA signed.
    """
    tls = bool(settings.web_config_file) and load_web_config(
        settings.web_config_file).tls is not None
    scheme = "https" if tls else "http"
    probe = ssl._create_unverified_context() if tls else None
    return f"{scheme}://{settings.web_host}:{settings.web_port}", probe


def ended(code: int) -> str:
    """Why a child process ended, from its exit code."""
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    why = {EXIT_FATAL: "a failure; its ERROR line and traceback are above",
           EXIT_CANNOT_START: "it could not start; its message is above"}
    return f"exit code {code}: {why.get(code, 'its log is above')}"


def run(settings: ToolSettings, say: Say) -> None:
    """Broker, worker and demo feed on one machine, until Ctrl-C."""
    bootstrap = settings.embedded_broker
    try:
        base, probe = _local_web(settings)
    except WebConfigError as error:
        raise SystemExit(f"cover2 run: {error}") from None
    state = Path(tempfile.mkdtemp(prefix="cover2-run-"))  # the broker forgets on exit; so do we
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    interrupt_on_sigterm()
    try:
        say(f"run: starting the embedded broker at kafka://{bootstrap}")
        children.append(("broker", start_broker(settings.broker_host, settings.broker_port,
                                                state / "broker.log")))
        asyncio.run(wait_for_kafka(Connection(bootstrap)))
        common = [sys.executable, "-m", "streams.cli"]
        flags = ["--broker", f"kafka://{bootstrap}", "--topic-prefix", settings.topic_prefix]
        children.append(("worker", subprocess.Popen(
            [*common, "worker", *flags, *worker_flags(settings), "--state-dir", str(state)])))
        started = time.monotonic()
        while http_get(base + "/healthz", timeout=1, context=probe)[0] != 200:
            if any(p.poll() is not None for _, p in children):
                raise BrokerError("the worker stopped while starting; its log is above")
            if time.monotonic() - started > HEALTHY_WITHIN_S:
                raise BrokerError(f"the worker is not healthy after {HEALTHY_WITHIN_S:.0f} s "
                                  f"({base}/healthz); its log is above")
            time.sleep(0.1)
        say(f"run: worker healthy after {time.monotonic() - started:.1f} s")
        if settings.demo:
            children.append(("simulate", subprocess.Popen(
                [*common, "simulate", *flags, f"--rate={settings.rate}",
                 f"--seed={settings.seed}", f"--scale={settings.scale}"])))
        say(f"\ncover2 is running.\n  results:  {base}/cover2\n  metrics:  {base}/metrics\n"
            f"  groups:   {base}/groups/<group>\n  health:   {base}/healthz\n"
            f"  Kafka:    kafka://{bootstrap} (topics {settings.topic_prefix}*)\n"
            f"Ctrl-C stops everything.\n")
        while True:
            for name, process in children:
                code = process.poll()
                if code in (-signal.SIGINT, -signal.SIGTERM):  # Ctrl-C reached it first
                    raise KeyboardInterrupt
                if code is not None and not (name == "simulate" and code == 0):
                    raise BrokerError(f"the {name} stopped: {ended(code)}")
            time.sleep(0.5)
    except KeyboardInterrupt:
        say("\nrun: stopping")
    except BrokerError as error:
        say(f"run: {error}")
        raise SystemExit(1) from None
    finally:
        for _, process in reversed(children):
            stop_process(process)
        shutil.rmtree(state, ignore_errors=True)
