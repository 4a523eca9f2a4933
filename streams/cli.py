"""`cover2`: worker, run, broker, simulate, bench, dashboards.

The worker is the service; every other command is a tool (:mod:`streams.tools`),
imported only when it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streams import settings as config
from streams.kafka.admin import BrokerError
from streams.settings import EMBEDDED_TIMEOUTS, Settings

if TYPE_CHECKING:
    from streams.tools.settings import ToolSettings


def _say(text: str) -> None:
    print(text, flush=True)


def _logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.log_level != "debug":
        logging.getLogger("aiokafka").setLevel(logging.WARNING)


def worker(settings: Settings) -> None:
    """One worker against any Kafka: creates the topics, then runs the faust app."""
    import faust

    from streams.app import create_app
    from streams.checkpoint import CheckpointStore
    from streams.kafka.admin import create_topics, wait_for_kafka
    from streams.kafka.clients import Connection
    from streams.web_security import WebConfigError, load_web_config

    # Before Kafka is touched: a file that cannot secure the server creates no topic.
    try:
        web_config = (load_web_config(settings.web_config_file) if settings.web_config_file
                      else None)
    except WebConfigError as error:
        print(f"cover2 worker: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None

    connection = Connection.of(settings)
    try:
        connection.security()  # reads the password file, and the certificates
    except (ValueError, OSError) as error:
        print(f"cover2 worker: Kafka security: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None

    async def prepare() -> None:
        await wait_for_kafka(connection)
        created = await create_topics(connection, settings.topics, settings.partitions)
        if created:
            _say(f"worker: created topics {', '.join(created)}")

    asyncio.run(prepare())
    store = CheckpointStore(Path(settings.state_dir), settings.name, settings.topic_prefix)
    app = create_app(settings, store, web_config)
    scheme = "https" if web_config is not None and web_config.tls is not None else "http"
    _say(f"worker {settings.name}: {scheme}://{settings.web_host}:{settings.web_port}/cover2, "
         f"/metrics, /healthz; state in {store.path}"
         + (f"; {web_config.describe()}" if web_config is not None else ""))
    # faust and its clients log at warning unless debugging; the service's own lines at the
    # chosen level.
    logging.getLogger("streams").setLevel(settings.log_level.upper())
    quiet = "debug" if settings.log_level == "debug" else "warning"
    runner = faust.Worker(app, loglevel=quiet, quiet=True)
    if not sys.stdout.isatty():
        runner.spinner = None  # its cursor and arrow characters would end up in the log
    runner.execute_from_commandline()


def run(settings: ToolSettings) -> None:
    """Broker, worker and demo feed on one machine, until Ctrl-C."""
    from streams.tools.run import run as run_all

    run_all(settings, _say)


def broker(settings: ToolSettings) -> None:
    """The embedded broker alone, in the foreground, until Ctrl-C."""
    from streams.tools.run import broker as run_broker

    run_broker(settings, _say)


def simulate(settings: ToolSettings) -> None:
    """The synthetic market feed."""
    from streams.tools.simulate import simulate as run_feed

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_feed(settings, _say))


def bench(settings: ToolSettings) -> None:
    """The performance benchmark."""
    from streams.tools.bench import main as run_bench

    run_bench(settings, _say)


def dashboards(settings: ToolSettings) -> None:
    """The Grafana dashboards as JSON files, money in the reporting currency."""
    from streams.tools.dashboards import write

    for path in write(Path(settings.dashboards_dir), settings.currency):
        _say(f"dashboards: wrote {path}")


@dataclass(frozen=True)
class Command:
    """A subcommand: what it does, which settings it takes, and its own defaults."""

    action: Callable[[Any], None]
    help: str
    settings: tuple[str, ...] | None = None  # None: every worker setting
    tool: bool = True  # takes the tools' settings beside the worker's
    defaults: Mapping[str, Any] = field(default_factory=dict)


WORKER_ONLY = tuple(f.name for f in dataclasses.fields(Settings))
FEED = ("broker", "topic_prefix", "partitions", "rate", "seconds", "seed", "scale")
COMMANDS = {
    "run": Command(run, "everything on one machine: embedded broker, worker, demo feed",
                   (*(n for n in WORKER_ONLY if n not in ("broker", "state_dir")),
                    "broker_host", "broker_port", "demo", "rate", "seed", "scale"),
                   defaults=EMBEDDED_TIMEOUTS),
    "broker": Command(broker, "the embedded broker, in the foreground",
                      ("broker_host", "broker_port")),
    "worker": Command(worker, "one worker against any Kafka", tool=False),
    "simulate": Command(simulate, "a synthetic CCP market feed", FEED),
    "bench": Command(bench,
                     "the performance benchmark: throughput, latency, start-up, restart, memory",
                     ("scale", "seed", "quick", "json"), defaults={"scale": "large"}),
    "dashboards": Command(dashboards,
                          "write the Grafana dashboards (JSON), money in the reporting currency",
                          ("currency", "dashboards_dir")),
}


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``cover2``."""
    from streams.tools.settings import ToolSettings

    parser = argparse.ArgumentParser(
        prog="cover2", description="Real-time Cover-2 exposure monitor for CCPs.",
        epilog="settings (each also a flag of the commands that use it):\n"
        + config.describe(ToolSettings),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub = commands.add_parser(name, help=command.help, description=command.help)
        config.add_arguments(sub, command.settings, ToolSettings if command.tool else Settings)
    args = parser.parse_args(argv)
    command = COMMANDS[args.command]
    settings = config.load(ToolSettings if command.tool else Settings, args,
                           defaults=command.defaults)
    _logging(settings)
    try:
        command.action(settings)
    except BrokerError as error:
        raise SystemExit(f"cover2 {args.command}: {error}") from None


if __name__ == "__main__":
    main()
