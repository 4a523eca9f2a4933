"""`cover2 run` as a user runs it: it comes up, and Ctrl-C stops everything with exit code 0
(so that `make run` reports no error), its log free of terminal control sequences."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from streams.tools.broker import free_port
from streams.tools.lab import eventually, http_get

pytestmark = pytest.mark.integration

# Ctrl-C must stop the broker, the worker and the feed within this.
STOP_WITHIN_S = 30.0


async def test_ctrl_c_stops_cover2_run_with_exit_code_0(tmp_path: Path) -> None:
    web = free_port()
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        run = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "run", "--port", str(free_port()),
             "--web-port", str(web), "--topic-prefix", "runtest.", "--rate", "200"],
            stdout=out, stderr=subprocess.STDOUT)
        try:
            await eventually(lambda: http_get(f"http://127.0.0.1:{web}/readyz")[0] == 200,
                             what="cover2 run ready")
            await eventually(lambda: "simulate: sent" in log.read_text(), what="the demo feed")
            run.send_signal(signal.SIGINT)
            assert run.wait(STOP_WITHIN_S) == 0, log.read_text()[-3000:]
        finally:
            if run.poll() is None:
                run.kill()
    text = log.read_text()
    assert "run: stopping" in text
    assert "\x1b" not in text, "terminal control sequences in a log that is not a terminal"
    assert http_get(f"http://127.0.0.1:{web}/healthz")[0] == 0  # nothing left listening


def worker_alone(*flags: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """`cover2 worker` with ``flags``, run to its end: (exit code, output)."""
    return subprocess.run([sys.executable, "-m", "streams.cli", "worker", *flags],
                          capture_output=True, text=True, timeout=timeout)


def test_no_broker_at_the_address_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    done = worker_alone("--broker", f"kafka://127.0.0.1:{free_port()}", "--web-port",
                        str(free_port()), "--state-dir", str(tmp_path))
    assert done.returncode == 2
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1 and "no Kafka broker answers" in lines[0], lines


def test_a_web_port_in_use_is_one_line_before_kafka_is_touched(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        # No broker there: the port is checked first, so this says nothing of Kafka.
        done = worker_alone("--broker", f"kafka://127.0.0.1:{free_port()}", "--web-port",
                            str(port), "--state-dir", str(tmp_path), timeout=10)
    assert done.returncode == 2
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert lines == [f"cover2 worker: port {port} on 127.0.0.1 is in use (another worker?): "
                     "choose another with --web-port (COVER2_WEB_PORT)"]
