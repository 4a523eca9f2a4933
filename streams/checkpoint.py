"""State checkpoints on disk: the monitor's state with the input offsets it includes.

Recovery does not trust the broker to have kept anything but the input topics:
the worker loads the newest checkpoint and replays every input partition from
the offsets it records (from the start when there is none). Duplicate trades
are dropped by the ledger kept inside the checkpoint, and prices and collateral
are states, so a replay that overlaps the checkpoint changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mode

from streams.failure import supervised
from streams.kafka.outputs import Outputs
from streams.state import MonitorState

log = logging.getLogger(__name__)

FORMAT = 5


@dataclass(frozen=True)
class CheckpointStore:
    """One checkpoint file per worker and topic prefix, replaced atomically."""

    directory: Path
    worker: str
    topic_prefix: str

    @property
    def path(self) -> Path:
        """Where the checkpoint lives."""
        return self.directory / f"{self.worker}.state"

    def dump(self, state: MonitorState) -> bytes:
        """The checkpoint's bytes; taken in the event loop so that it is consistent."""
        return pickle.dumps((FORMAT, self.topic_prefix, state), protocol=pickle.HIGHEST_PROTOCOL)

    def write(self, data: bytes) -> None:
        """Write a dumped checkpoint (safe to run in a thread): temp file, fsync, rename."""
        self.directory.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_suffix(f".tmp{os.getpid()}")
        with open(temp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, self.path)

    def load(self) -> MonitorState | None:
        """The saved state, or None when there is none that fits these topics."""
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


class Checkpointer(mode.Service):
    """Saves the state every ``interval`` seconds and when the worker stops."""

    def __init__(self, store: CheckpointStore, state: MonitorState, outputs: Outputs,
                 interval: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store, self.monitor_state, self.outputs = store, state, outputs
        self.interval = interval

    async def save(self) -> None:
        """Dump in the event loop (a consistent cut), write in a thread once every margin
        call and dead letter of what the cut includes is out."""
        data = self.store.dump(self.monitor_state)
        await self.outputs.delivered()
        await asyncio.to_thread(self.store.write, data)

    @mode.Service.task
    @supervised("the checkpoint", lambda self: str(self.store.path))
    async def _periodically(self) -> None:
        while not self.should_stop:
            await self.sleep(self.interval)
            if not self.should_stop:
                await self.save()

    async def on_stop(self) -> None:
        await self.save()
