"""`cover2 worker`: checks what it can before touching Kafka, creates the topics, runs the app.

Each problem a user can fix stops start-up with one line saying what to do, before any
topic is created: a web port in use, a web configuration file that cannot secure the
server, Kafka security settings that cannot connect, no broker at the address.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import faust

from streams.app import create_app
from streams.checkpoint import CheckpointStore
from streams.failure import EXIT_CANNOT_START
from streams.kafka.admin import BrokerError, create_topics, wait_for_kafka
from streams.kafka.clients import Connection
from streams.logs import collapse_repeats
from streams.settings import Settings, env_name
from streams.web import port_free
from streams.web_security import WebConfig, WebConfigError, load_web_config

log = logging.getLogger(__name__)

class Runner(faust.Worker):
    """faust's worker, which must also stop within ``grace`` seconds of SIGINT or SIGTERM
    whatever the broker's state: a clean stop that waits for an unreachable broker gives
    way to an exit (the state resumes from its last checkpoint, as after ``kill -9``)."""

    def __init__(self, app: faust.App, grace: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.grace = grace
        self._deadline: threading.Timer | None = None
        if not sys.stdout.isatty():
            self.spinner = None  # its cursor and arrow characters would end up in the log

    def _schedule_shutdown(self, signum: signal.Signals) -> None:
        if self._deadline is None:
            self._deadline = threading.Timer(self.grace, self._give_up, (signum,))
            self._deadline.daemon = True
            self._deadline.start()
        super()._schedule_shutdown(signum)

    def _give_up(self, signum: signal.Signals) -> None:
        log.warning("not stopped %g s after %s (is the broker reachable?): exiting without "
                    "a clean stop; the worker resumes from its last checkpoint (%s)",
                    self.grace, signum.name, env_name("stop_grace"))
        logging.shutdown()
        os._exit(0)


def _cannot_start(why: str) -> SystemExit:
    print(f"cover2 worker: {why}", file=sys.stderr, flush=True)
    return SystemExit(EXIT_CANNOT_START)


def preflight(settings: Settings) -> tuple[WebConfig | None, Connection]:
    """The web configuration and the Kafka connection, checked before Kafka is touched."""
    if not port_free(settings.web_host, settings.web_port):
        raise _cannot_start(f"port {settings.web_port} on {settings.web_host} is in use "
                            f"(another worker?): choose another with --web-port "
                            f"({env_name('web_port')})")
    try:
        web_config = (load_web_config(settings.web_config_file) if settings.web_config_file
                      else None)
    except WebConfigError as error:
        raise _cannot_start(str(error)) from None
    connection = Connection.of(settings)
    try:
        connection.security()  # reads the password file, and the certificates
    except (ValueError, OSError) as error:
        raise _cannot_start(f"Kafka security: {error}") from None
    return web_config, connection


def run(settings: Settings, say: Any = print) -> None:
    """One worker against any Kafka, until stopped."""
    web_config, connection = preflight(settings)

    async def prepare() -> list[str]:
        await wait_for_kafka(connection)
        return await create_topics(connection, settings.topics, settings.layout)

    try:
        created = asyncio.run(prepare())
    except BrokerError as error:
        raise _cannot_start(str(error)) from None
    if created:
        say(f"worker: created topics {', '.join(created)}")
    store = CheckpointStore(Path(settings.state_dir), settings.name, settings.topic_prefix)
    app = create_app(settings, store, web_config)
    scheme = "https" if web_config is not None and web_config.tls is not None else "http"
    say(f"worker {settings.name}: {scheme}://{settings.web_host}:{settings.web_port}/cover2, "
        f"/metrics, /healthz; state in {store.path}"
        + (f"; {web_config.describe()}" if web_config is not None else ""))
    # faust and its clients log at warning unless debugging; the service's own lines at the
    # chosen level; a broker that keeps failing is said once per few seconds.
    logging.getLogger("streams").setLevel(settings.log_level.upper())
    collapse_repeats("aiokafka")
    quiet = "debug" if settings.log_level == "debug" else "warning"
    Runner(app, settings.stop_grace, loglevel=quiet, quiet=True).execute_from_commandline()
