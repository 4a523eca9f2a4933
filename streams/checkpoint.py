"""State checkpoints on disk: the monitor's state with the input offsets it includes.

Recovery does not trust the broker to have kept anything but the input topics:
the worker loads the newest checkpoint and replays every input partition from
the offsets it records (from the start when there is none). Duplicate trades
are dropped by the ledger kept inside the checkpoint, and prices and collateral
are states, so a replay that overlaps the checkpoint changes nothing.
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mode

from streams.background import in_background, lower_priority
from streams.failure import supervised
from streams.kafka.outputs import Outputs
from streams.state import MonitorState
from streams.tally import CheckpointTimes
from streams.working_set import WorkingSet

log = logging.getLogger(__name__)

FORMAT = 9


@dataclass(frozen=True)
class CheckpointStore:
    """One checkpoint file per worker and topic prefix, replaced atomically."""

    directory: Path
    worker: str
    topic_prefix: str
    working_set: WorkingSet = field(default_factory=WorkingSet, compare=False, repr=False)

    @property
    def path(self) -> Path:
        """Where the checkpoint lives."""
        return self.directory / f"{self.worker}.state"

    def dump(self, state: MonitorState) -> bytes:
        """The checkpoint's bytes."""
        return pickle.dumps((FORMAT, self.topic_prefix, state), protocol=pickle.HIGHEST_PROTOCOL)

    def cut(self, state: MonitorState) -> Cut:
        """Write ``state`` as it is now to a temporary file, from a forked child process:
        the fork is the consistent cut, and the child's copy-on-write memory spares the
        worker's event loop the pickling. The matrices batches write are handed to the
        child as copies (:mod:`streams.working_set`). :meth:`Cut.keep` puts the file in
        place."""
        self.directory.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_suffix(f".tmp{os.getpid()}-{time.monotonic_ns()}")
        started = time.monotonic()
        with self.working_set.inherited(state):
            pid = os.fork()
            if pid == 0:  # the child: write and leave, running nothing of the worker's
                code = 1
                try:
                    lower_priority()
                    with open(temp, "wb") as out:
                        out.write(self.dump(state))
                        out.flush()
                        os.fsync(out.fileno())
                    code = 0
                finally:
                    os._exit(code)  # the parent reports a failure by this exit code
        return Cut(pid, temp, self.path, started, time.monotonic() - started)

    def load(self) -> MonitorState | None:
        """The saved state, or None when there is none that fits these topics. Cuts a
        previous run of this worker left unfinished (killed while a child wrote one) are
        removed."""
        for leftover in self.directory.glob(f"{self.worker}.tmp*"):
            log.info("removing %s, a checkpoint a previous run left unfinished", leftover)
            leftover.unlink(missing_ok=True)
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            version, prefix, state = pickle.loads(data)
        except Exception as error:  # a torn or foreign file: start over from the topics
            log.warning("ignoring unreadable state %s (%s); replaying the input topics",
                        self.path, error)
            return None
        if version != FORMAT or prefix != self.topic_prefix or not isinstance(state,
                                                                             MonitorState):
            log.warning("ignoring state %s written for other topics or another version",
                        self.path)
            return None
        return state


@dataclass(frozen=True)
class Cut:
    """A checkpoint being written by a child process."""

    pid: int
    temp: Path
    path: Path
    started: float  # time.monotonic() at the cut
    cut_s: float  # how long the event loop paused for it

    async def keep(self) -> CheckpointTimes:
        """Wait for the child, then replace the checkpoint with what it wrote."""
        return await in_background(self._keep)

    def _keep(self) -> CheckpointTimes:
        # In a thread: replacing the file frees the old one's blocks, which takes tens of
        # milliseconds the event loop must not wait for.
        _, status = os.waitpid(self.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code < 0:
            raise RuntimeError(f"the process writing the checkpoint {self.temp} was killed "
                               f"by signal {-code}")
        if code != 0:
            raise RuntimeError(f"the process writing the checkpoint {self.temp} exited with "
                               f"{code}: is the disk full or the state directory not writable?")
        written = CheckpointTimes(time.time(), self.cut_s, time.monotonic() - self.started,
                                  self.temp.stat().st_size)
        os.replace(self.temp, self.path)
        return written


class Checkpointer(mode.Service):
    """Saves the state every ``interval`` seconds and when the worker stops."""

    def __init__(self, store: CheckpointStore, state: MonitorState, outputs: Outputs,
                 interval: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store, self.monitor_state, self.outputs = store, state, outputs
        self.interval = interval

    async def save(self) -> None:
        """Cut the state (a forked child writes it), and keep it once every margin call and
        dead letter of what the cut includes is out."""
        cut = self.store.cut(self.monitor_state)
        await self.outputs.delivered()
        self.monitor_state.tally.checkpoint = await cut.keep()

    @mode.Service.task
    @supervised("the checkpoint", lambda self: str(self.store.path))
    async def _periodically(self) -> None:
        while not self.should_stop:
            await self.sleep(self.interval)
            if not self.should_stop:
                await self.save()

    async def on_stop(self) -> None:
        await self.save()
