"""`cover2`: worker, run, broker, simulate, bench, stress, report, dashboards.

The worker is the service; every other command is a tool (:mod:`streams.tools`),
imported only when it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
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
    from streams.worker import run as run_worker

    run_worker(settings, _say)


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


def stress(settings: ToolSettings) -> None:
    """A supervisory stress test on the state as of a time."""
    from streams.tools.stress import main as run_stress

    run_stress(settings, _say)


def report(settings: ToolSettings) -> None:
    """The periodic Cover-2 report from the input topics."""
    from streams.tools.report import main as run_report

    run_report(settings, _say)


def dashboards(settings: ToolSettings) -> None:
    """The Grafana dashboards as JSON files, money in the reporting currency."""
    from streams.tools.dashboards import write

    for path in write(Path(settings.out), settings.currency):
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
KAFKA = ("broker", "topic_prefix", "kafka_security_protocol", "kafka_sasl_mechanism",
         "kafka_username", "kafka_password_file", "kafka_ca_file", "kafka_cert_file",
         "kafka_key_file")
FEED = (*KAFKA, "partitions", "replication_factor", "min_insync_replicas",
        "input_retention_hours", "compression", "rate", "seconds", "seed", "scale", "start",
        "days", "events_per_day")
PLAUSIBILITY_AND_CALLS = ("max_future_skew", "shock_min", "shock_max", "warning_fraction_of_im",
                          "warning_amount", "call_fraction_of_im", "call_amount",
                          "minimum_transfer", "call_cooldown")
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
                     "the performance benchmark: throughput, latency, start-up, restart, memory, "
                     "and with --soak a trading week",
                     ("scale", "seed", "quick", "soak", "json"), defaults={"scale": "large"}),
    "stress": Command(stress, "a supervisory stress test: the state as of a time, rebuilt "
                      "from the input topics, with the scenarios of a file",
                      (*KAFKA, "currency", "scenarios", "replace", "as_of", "json",
                       *PLAUSIBILITY_AND_CALLS)),
    "report": Command(report, "the periodic Cover-2 report: every period's figures, the "
                      "attribution of each change and charts, rebuilt from the input topics",
                      (*KAFKA, "currency", "period_from", "period_to", "period", "resolution",
                       "out", *PLAUSIBILITY_AND_CALLS), defaults={"out": "cover2-report"}),
    "dashboards": Command(dashboards,
                          "write the Grafana dashboards (JSON), money in the reporting currency",
                          ("currency", "out"), defaults={"out": "grafana/dashboards"}),
}


def parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser of ``cover2`` and that of each of its commands."""
    from streams.tools.settings import ToolSettings

    parser = argparse.ArgumentParser(
        prog="cover2", description="Real-time Cover-2 exposure monitor for CCPs.",
        epilog="settings (each also a flag of the commands that use it):\n"
        + config.describe(ToolSettings),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    subparsers = {}
    for name, command in COMMANDS.items():
        sub = subparsers[name] = commands.add_parser(name, help=command.help,
                                                     description=command.help)
        config.add_arguments(sub, command.settings, settings_type(command), command.defaults)
    return parser, subparsers


def settings_type(command: Command) -> type[Settings]:
    """The settings a command reads: the worker's, or the tools' beside them."""
    from streams.tools.settings import ToolSettings

    return ToolSettings if command.tool else Settings


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``cover2``."""
    parser, subparsers = parsers()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the command's own parser, with its own usage
        subparsers[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    command = COMMANDS[args.command]
    settings = config.load(settings_type(command), args, defaults=command.defaults)
    _logging(settings)
    try:
        command.action(settings)
    except BrokerError as error:
        raise SystemExit(f"cover2 {args.command}: {error}") from None


if __name__ == "__main__":
    main()
