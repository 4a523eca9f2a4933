"""The settings of the tools: the embedded broker, the market feed, the bench, the dashboards.

They extend the worker's :class:`streams.settings.Settings`, read the same way
(flag, then ``COVER2_*`` variable, then default), so that `cover2 run` can pass
the worker its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from risk.periods import PERIOD_KINDS
from streams.settings import Settings, env_name, setting

SCALE_NAMES = ("demo", "large", "xl")


@dataclass(frozen=True)
class ToolSettings(Settings):
    """The worker's settings and those of the tools around it."""

    broker_host: str = setting("127.0.0.1", "address the embedded broker listens on")
    broker_port: int = setting(9092, "port of the embedded broker")
    demo: bool = setting(True, "with `cover2 run`, also start the demo market feed")
    rate: float = setting(1000.0, "events per second the market feed sends")
    seconds: float = setting(0.0, "how long the market feed runs (0: until stopped)")
    seed: int = setting(1, "seed of the synthetic market")
    scale: str = setting("demo", "size of the synthetic market: demo, large or xl")
    quick: bool = setting(False, "cover2 bench: a small smoke run that checks it works")
    soak: bool = setting(False, "cover2 bench: also run a trading week through one worker "
                         "(ten million trades at the large scale; a few minutes)")
    json: str = setting("", "cover2 bench, cover2 stress: also write the results as JSON to "
                        "this file")
    scenarios: str = setting("", "cover2 stress: a JSON list of ccp.scenarios messages to add "
                             "(or, with --replace, to use alone)")
    replace: bool = setting(False, "cover2 stress: use only the file's scenarios")
    as_of: str = setting("", "cover2 stress: the time of the state, ISO 8601 or epoch seconds "
                         "(default: now)")
    start: str = setting("", "cover2 simulate: write a history of past business days from this "
                         "date (YYYY-MM-DD, UTC), as fast as the broker takes it, instead of "
                         "a live feed")
    days: int = setting(5, "cover2 simulate --start: how many business days of history")
    events_per_day: int = setting(20_000, "cover2 simulate --start: events per business day")
    period_from: str = setting("", "cover2 report: the first day reported (YYYY-MM-DD, UTC)")
    period_to: str = setting("", "cover2 report: the last day reported (YYYY-MM-DD, UTC, "
                             "inclusive)")
    period: str = setting("quarter", "cover2 report: the length of a period: day, month or "
                          "quarter")
    resolution: float = setting(1.0, "cover2 report: the step of event time at which the "
                                "results are evaluated, in seconds")
    out: str = setting("", "cover2 dashboards: where the Grafana dashboards are written "
                       "(default grafana/dashboards); cover2 report: where report.json, "
                       "report.md and report.html are written (default cover2-report)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.scale not in SCALE_NAMES:
            raise ValueError(f"unknown scale {self.scale!r}: choose demo, large or xl "
                             f"(--scale, {env_name('scale')})")
        if self.period not in PERIOD_KINDS:
            raise ValueError(f"unknown period {self.period!r}: choose day, month or quarter "
                             f"(--period, {env_name('period')})")
        if not self.resolution > 0:
            raise ValueError(f"--resolution must be more than 0 seconds, not {self.resolution:g} "
                             f"({env_name('resolution')})")
        if self.days < 1 or self.events_per_day < 1:
            raise ValueError(f"--days and --events-per-day must be at least 1 "
                             f"({env_name('days')}, {env_name('events_per_day')})")

    @property
    def embedded_broker(self) -> str:
        """``HOST:PORT`` of the embedded broker."""
        return f"{self.broker_host}:{self.broker_port}"
