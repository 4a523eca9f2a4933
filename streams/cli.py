"""`cover2`: run, broker, worker, simulate, bench, dashboards."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from streams import settings as config
from streams.broker import BrokerError, start_broker, stop_process, wait_for_kafka
from streams.settings import EMBEDDED_TIMEOUTS, Settings

WORKER_SETTINGS = (
    "broker", "web_host", "web_port", "topic_prefix", "partitions", "currency",
    "publish_interval", "state_dir", "snapshot_interval", "recompute_interval", "group_id",
    "worker_id",
    "session_timeout", "heartbeat_interval", "max_batch", "fetch_wait", "warning_fraction_of_im",
    "warning_amount", "call_fraction_of_im", "call_amount", "minimum_transfer", "call_cooldown",
    "log_level")
FEED_SETTINGS = ("broker", "topic_prefix", "partitions", "rate", "seconds", "seed", "scale")
RUN_SETTINGS = (*(s for s in WORKER_SETTINGS if s not in ("broker", "state_dir")),
                "broker_host", "broker_port", "demo", "rate", "seed", "scale")
HEALTHY_WITHIN_S = 30.0


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

    from streams import topics as t
    from streams.app import create_app
    from streams.state import StateStore

    async def prepare() -> None:
        await wait_for_kafka(settings.bootstrap_servers)
        created = await t.create_topics(settings.bootstrap_servers,
                                        t.Topics(settings.topic_prefix), settings.partitions)
        if created:
            _say(f"worker: created topics {', '.join(created)}")

    asyncio.run(prepare())
    store = StateStore(Path(settings.state_dir), settings.name, settings.topic_prefix)
    app = create_app(settings, store)
    _say(f"worker {settings.name}: http://{settings.web_host}:{settings.web_port}/cover2, "
         f"/metrics, /healthz; state in {store.path}")
    # faust and its clients log at warning unless debugging; the service's own lines at the
    # chosen level.
    logging.getLogger("streams").setLevel(settings.log_level.upper())
    quiet = "debug" if settings.log_level == "debug" else "warning"
    faust.Worker(app, loglevel=quiet, quiet=True).execute_from_commandline()


def _interrupt_on_sigterm() -> None:
    """SIGTERM stops a foreground command the way Ctrl-C does, children included."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def broker(settings: Settings) -> None:
    """The embedded broker alone, in the foreground, until Ctrl-C."""
    _interrupt_on_sigterm()
    process = start_broker(settings.broker_host, settings.broker_port)
    asyncio.run(wait_for_kafka(f"{settings.broker_host}:{settings.broker_port}"))
    _say(f"broker: Kafka-compatible, in memory, at kafka://{settings.broker_host}:"
         f"{settings.broker_port}; Ctrl-C stops it (and forgets everything)")
    try:
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_process(process)


def simulate(settings: Settings) -> None:
    """The synthetic market feed."""
    from streams.simulate import simulate as run_feed

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_feed(settings, _say))


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def run(settings: Settings) -> None:
    """Broker, worker and demo feed on one machine, until Ctrl-C."""
    bootstrap = f"{settings.broker_host}:{settings.broker_port}"
    state = Path(tempfile.mkdtemp(prefix="cover2-run-"))  # the broker forgets on exit; so do we
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    _interrupt_on_sigterm()
    try:
        _say(f"run: starting the embedded broker at kafka://{bootstrap}")
        children.append(("broker", start_broker(settings.broker_host, settings.broker_port,
                                                state / "broker.log")))
        asyncio.run(wait_for_kafka(bootstrap))
        common = [sys.executable, "-m", "streams.cli"]
        flags = ["--broker", f"kafka://{bootstrap}", "--topic-prefix", settings.topic_prefix]
        worker_flags = [f"--{name.replace('_', '-')}={getattr(settings, name)}"
                        for name in WORKER_SETTINGS if name not in ("broker", "state_dir")]
        children.append(("worker", subprocess.Popen(
            [*common, "worker", *flags, *worker_flags, "--state-dir", str(state)])))
        health = f"http://{settings.web_host}:{settings.web_port}/healthz"
        started = time.monotonic()
        while not _healthy(health):
            if any(p.poll() is not None for _, p in children):
                raise BrokerError("the worker stopped while starting; its log is above")
            if time.monotonic() - started > HEALTHY_WITHIN_S:
                raise BrokerError(f"the worker is not healthy after {HEALTHY_WITHIN_S:.0f} s "
                                  f"({health}); its log is above")
            time.sleep(0.1)
        _say(f"run: worker healthy after {time.monotonic() - started:.1f} s")
        if settings.demo:
            children.append(("simulate", subprocess.Popen(
                [*common, "simulate", *flags, f"--rate={settings.rate}",
                 f"--seed={settings.seed}", f"--scale={settings.scale}"])))
        base = f"http://{settings.web_host}:{settings.web_port}"
        _say(f"\ncover2 is running.\n  results:  {base}/cover2\n  metrics:  {base}/metrics\n"
             f"  groups:   {base}/groups/<group>\n  health:   {health}\n"
             f"  Kafka:    kafka://{bootstrap} (topics {settings.topic_prefix}*)\n"
             f"Ctrl-C stops everything.\n")
        while True:
            for name, process in children:
                if process.poll() is not None and not (name == "simulate" and process.returncode
                                                       == 0):
                    raise BrokerError(f"{name} exited with code {process.returncode}")
            time.sleep(0.5)
    except KeyboardInterrupt:
        _say("\nrun: stopping")
    except BrokerError as error:
        _say(f"run: {error}")
        raise SystemExit(1) from None
    finally:
        for _, process in reversed(children):
            stop_process(process)
        shutil.rmtree(state, ignore_errors=True)


def bench(settings: Settings) -> None:
    """The performance benchmark."""
    from streams.bench import main as run_bench

    run_bench(settings, _say)


def dashboards(settings: Settings) -> None:
    """The Grafana dashboards as JSON files, money in the reporting currency."""
    from streams.dashboards import write

    for path in write(Path(settings.dashboards_dir), settings.currency):
        _say(f"dashboards: wrote {path}")


COMMANDS = {
    "run": (run, RUN_SETTINGS, "everything on one machine: embedded broker, worker, demo feed",
            EMBEDDED_TIMEOUTS),
    "broker": (broker, ("broker_host", "broker_port"), "the embedded broker, in the foreground",
               {}),
    "worker": (worker, WORKER_SETTINGS, "one worker against any Kafka", {}),
    "simulate": (simulate, FEED_SETTINGS, "a synthetic CCP market feed", {}),
    "bench": (bench, ("scale", "seed", "quick", "json"),
              "the performance benchmark: throughput, latency, start-up, restart, memory",
              {"scale": "large"}),
    "dashboards": (dashboards, ("currency", "dashboards_dir"),
                   "write the Grafana dashboards (JSON), money in the reporting currency", {}),
}


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``cover2``."""
    parser = argparse.ArgumentParser(
        prog="cover2", description="Real-time Cover-2 exposure monitor for CCPs.",
        epilog="settings (each also a flag of the commands that use it):\n" + config.describe(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, names, text, _) in COMMANDS.items():
        sub = commands.add_parser(name, help=text, description=text)
        config.add_arguments(sub, names)
    args = parser.parse_args(argv)
    action, _, _, defaults = COMMANDS[args.command]
    assert isinstance(defaults, dict)
    settings = config.load(args, defaults=defaults)
    _logging(settings)
    try:
        action(settings)
    except BrokerError as error:
        raise SystemExit(f"cover2 {args.command}: {error}") from None


if __name__ == "__main__":
    main()
