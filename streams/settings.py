"""The worker's settings, read once from flags and ``COVER2_*`` variables into a frozen object.

Each field's name gives its flag (``--web-port``) and its variable
(``COVER2_WEB_PORT``); a flag wins over the variable, the variable over the
default. The tools' settings extend these (:mod:`streams.tools.settings`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from risk.calls import CallPolicy
from streams.codec import Plausibility
from streams.topics import Layout, Topics

ENV_PREFIX = "COVER2_"
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
COMPRESSION_CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
LOG_LEVELS = ("debug", "info", "warning", "error")
# The embedded broker's group join waits half the session timeout and a member that
# died is only replaced once its session expires: short timeouts there. Apache Kafka
# keeps the defaults below (10 s, 3 s).
EMBEDDED_TIMEOUTS = {"session_timeout": 2.0, "heartbeat_interval": 0.5}


def setting(default: Any, help: str) -> Any:
    """A setting's field: its default, and the help text of its flag and variable."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    """The service's settings; the core receives plain values taken from them."""

    broker: str = setting("kafka://127.0.0.1:9092", "Kafka bootstrap server(s), kafka://HOST:PORT")
    web_host: str = setting("127.0.0.1", "address the HTTP server listens on")
    web_port: int = setting(6066, "port of /metrics, /cover2, /groups/{group} and /healthz")
    web_config_file: str = setting("", "TLS and basic auth of the HTTP server: a web config file "
                                   "in Prometheus exporter-toolkit's format (empty: plain HTTP)")
    topic_prefix: str = setting("ccp.", "prefix of every topic name")
    partitions: int = setting(4, "partitions of the topics the service creates")
    replication_factor: int = setting(
        1, "replicas of each topic the service creates (3 on a production cluster)")
    min_insync_replicas: int = setting(
        1, "replicas that must have a write before it counts (2 with 3 replicas)")
    input_retention_hours: float = setting(
        -1.0, "how long the input topics are kept (-1: forever; they are the record that "
        "recovery and partition takeover replay from the start)")
    currency: str = setting("USD", "the one reporting currency of all money amounts")
    publish_interval: float = setting(0.25, "seconds between publications of ccp.cover2")
    merge_interval: float = setting(
        0.1, "seconds between publications of this worker's partition views to the others "
        "(only when the consumer group has several workers)")
    state_dir: str = setting("cover2-state", "where the worker keeps its state checkpoints")
    checkpoint_interval: float = setting(30.0, "seconds between state checkpoints")
    reverse_stress_interval: float = setting(
        5.0, "seconds between workings-out of the reverse stress test's shock multipliers to "
        "exhaustion (off the per-event path)")
    recompute_interval: float = setting(
        600.0, "seconds between full recomputes of scenario P&L from positions (drops the "
        "rounding of incremental updates)")
    group_id: str = setting("", "consumer group shared by the workers (default: the topic "
                            "prefix followed by cover2, e.g. ccp.cover2)")
    worker_id: str = setting("", "this worker's name (default: host name and web port)")
    session_timeout: float = setting(
        10.0, "consumer session timeout in seconds (the embedded broker's join waits half)")
    heartbeat_interval: float = setting(3.0, "consumer heartbeat interval in seconds")
    max_batch: int = setting(20_000, "most records applied to the core in one batch")
    fetch_wait: float = setting(
        0.01, "longest a fetch waits for data, in seconds (the embedded broker always waits it)")
    warning_fraction_of_im: float = setting(
        0.05, "margin warning when stress loss over margin reaches this fraction of IM")
    warning_amount: float = setting(0.0, "... and at least this amount")
    call_fraction_of_im: float = setting(
        0.20, "margin call when stress loss over margin reaches this fraction of IM")
    call_amount: float = setting(0.0, "... and at least this amount")
    minimum_transfer: float = setting(10_000.0, "minimum transfer amount of a margin call")
    call_cooldown: float = setting(300.0, "seconds before a call of the same kind is re-issued")
    log_level: str = setting("info", "debug, info, warning or error")
    stop_grace: float = setting(
        10.0, "seconds a worker asked to stop (SIGINT, SIGTERM) may take before it exits anyway")
    max_future_skew: float = setting(
        300.0, "an event time more than this many seconds ahead of the worker's clock is "
        "refused to the dead-letter topic (a timestamp in milliseconds, a wrong clock)")
    shock_min: float = setting(
        -1.0, "smallest relative move a scenario may shock a price by (-1: to zero; lower only "
        "for prices that can go negative)")
    shock_max: float = setting(10.0, "largest relative move a scenario may shock a price by")
    dedupe_window: float = setting(
        7.0, "days of event time a trade id is remembered, behind the newest trade of its "
        "partition; an older trade is refused to the dead-letter topic")
    settlement_window: float = setting(
        3.0, "days of event time a VM settlement may come after newer events and still be "
        "placed exactly; an older one is refused to the dead-letter topic")
    ready_max_lag: float = setting(
        10.0, "/readyz answers 503 when no fetch from the broker succeeded for this many seconds")
    compression: str = setting("none", "codec of what the worker writes to Kafka: none, gzip, "
                               "snappy, lz4 or zstd (every codec is read)")
    kafka_security_protocol: str = setting(
        "PLAINTEXT", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, for every Kafka client")
    kafka_sasl_mechanism: str = setting("", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_*)")
    kafka_username: str = setting("", "the SASL user")
    kafka_password_file: str = setting("", "a file holding the SASL user's password")
    kafka_ca_file: str = setting("", "CA certificates (PEM) to verify the brokers by (SSL, "
                                 "SASL_SSL; default: the system's)")
    kafka_cert_file: str = setting("", "client certificate (PEM), for brokers that ask for one")
    kafka_key_file: str = setting("", "the client certificate's private key (PEM)")

    def __post_init__(self) -> None:
        if not self.group_id:  # workers on other topics never share a group by accident
            object.__setattr__(self, "group_id", f"{self.topic_prefix}cover2")
        problems = list(self._security_problems())
        if self.log_level not in LOG_LEVELS:
            problems.append(f"unknown log level {self.log_level!r}: choose "
                            f"{', '.join(LOG_LEVELS)} ({env_name('log_level')})")
        if not self.shock_min < 0 < self.shock_max:
            problems.append(f"scenario shock bounds [{self.shock_min}, {self.shock_max}] must "
                            f"hold 0 ({env_name('shock_min')}, {env_name('shock_max')})")
        for window in ("dedupe_window", "settlement_window"):
            if not getattr(self, window) > 0:
                problems.append(f"the {window.replace('_', ' ')} must be a positive number of "
                                f"days, not {getattr(self, window)} ({env_name(window)})")
        if self.compression not in COMPRESSION_CODECS:
            problems.append(f"unknown compression {self.compression!r}: choose "
                            f"{', '.join(COMPRESSION_CODECS)} ({env_name('compression')})")
        if problems:
            raise ValueError("; ".join(problems))

    def _security_problems(self) -> list[str]:
        protocol, sasl = self.kafka_security_protocol, self.kafka_security_protocol.startswith(
            "SASL_")
        if protocol not in SECURITY_PROTOCOLS:
            return [f"unknown Kafka security protocol {protocol!r}: choose "
                    f"{', '.join(SECURITY_PROTOCOLS)} ({env_name('kafka_security_protocol')})"]
        problems = []
        if sasl and self.kafka_sasl_mechanism not in SASL_MECHANISMS:
            problems.append(f"{protocol} needs a SASL mechanism: "
                            f"{env_name('kafka_sasl_mechanism')} is {', '.join(SASL_MECHANISMS)}")
        if sasl and not (self.kafka_username and self.kafka_password_file):
            problems.append(f"{protocol} needs {env_name('kafka_username')} and "
                            f"{env_name('kafka_password_file')} (a file: a password is never "
                            "given as a value)")
        if bool(self.kafka_cert_file) != bool(self.kafka_key_file):
            problems.append(f"a client certificate needs both {env_name('kafka_cert_file')} and "
                            f"{env_name('kafka_key_file')}")
        return problems

    @property
    def call_policy(self) -> CallPolicy:
        """The margin-call policy for the core."""
        return CallPolicy(self.warning_amount, self.warning_fraction_of_im, self.call_amount,
                          self.call_fraction_of_im, self.minimum_transfer, self.call_cooldown)

    @property
    def plausibility(self) -> Plausibility:
        """What a well-formed message must also be to be believed."""
        return Plausibility(self.max_future_skew, self.shock_min, self.shock_max,
                            self.dedupe_window * 86_400.0, self.settlement_window * 86_400.0)

    @property
    def layout(self) -> Layout:
        """How the service creates its topics."""
        retention = -1 if self.input_retention_hours < 0 else int(
            self.input_retention_hours * 3_600_000)
        return Layout(self.partitions, self.replication_factor, self.min_insync_replicas,
                      retention)

    @property
    def topics(self) -> Topics:
        """The topic names under ``topic_prefix``."""
        return Topics(self.topic_prefix)

    @property
    def name(self) -> str:
        """This worker's name."""
        return self.worker_id or f"{os.uname().nodename}-{self.web_port}"


def env_name(name: str) -> str:
    """The variable of a setting: ``web_port`` -> ``COVER2_WEB_PORT``."""
    return ENV_PREFIX + name.upper()


def _boolean(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def _parser_of(value_type: type) -> Any:
    return _boolean if value_type is bool else value_type


# Shorter flags the contract's command line uses.
ALIASES = {"broker_port": ("--port",), "period_from": ("--from",), "period_to": ("--to",)}
AnySettings = TypeVar("AnySettings", bound=Settings)


def add_arguments(parser: argparse.ArgumentParser, names: Sequence[str] | None = None,
                  settings_type: type[Settings] = Settings,
                  defaults: Mapping[str, Any] | None = None) -> None:
    """Add a flag for each setting of ``settings_type`` (or for ``names``), its variable
    and the default the command uses (``defaults``, else the field's) named in the help.
    A boolean setting ``demo`` gets ``--demo`` and ``--no-demo``.
    """
    defaults = defaults or {}
    for f in dataclasses.fields(settings_type):
        if names is not None and f.name not in names:
            continue
        flags = (*ALIASES.get(f.name, ()), "--" + f.name.replace("_", "-"))  # usage shows the first
        default = defaults.get(f.name, f.default)
        text = f"{f.metadata['help']} [{env_name(f.name)}, default {default!r}]"
        if isinstance(f.default, bool):
            parser.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=None, help=text)
        else:
            parser.add_argument(*flags, dest=f.name, type=type(f.default), default=None,
                                metavar=type(f.default).__name__.upper(), help=text)


def describe(settings_type: type[Settings] = Settings) -> str:
    """Every setting of ``settings_type`` with its variable and default, for ``cover2 --help``."""
    return "\n".join(f"  {env_name(f.name):<32} {f.metadata['help']} (default {f.default!r})"
                     for f in dataclasses.fields(settings_type))


def load(settings_type: type[AnySettings], flags: argparse.Namespace | None = None,
         environ: Mapping[str, str] | None = None,
         defaults: Mapping[str, Any] | None = None) -> AnySettings:
    """Settings of ``settings_type`` from flags, then ``COVER2_*`` variables, then
    ``defaults``, then the fields'. Values a setting refuses stop the command with the
    reason."""
    defaults = defaults or {}
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in dataclasses.fields(settings_type):
        parse: Any = _parser_of(type(f.default))
        flag = getattr(flags, f.name, None) if flags is not None else None
        if flag is not None:
            values[f.name] = flag
        elif env_name(f.name) in environ:
            raw = environ[env_name(f.name)]
            try:
                values[f.name] = parse(raw)
            except ValueError:
                raise SystemExit(f"{env_name(f.name)}={raw!r} is not a valid "
                                 f"{type(f.default).__name__}: {f.metadata['help']}") from None
        elif f.name in defaults:
            values[f.name] = defaults[f.name]
    try:
        return settings_type(**values)
    except ValueError as error:
        raise SystemExit(str(error)) from None
