"""The matrices every batch writes, kept out of the memory a checkpoint's child shares.

A checkpoint is written by a forked child (:mod:`streams.checkpoint`), which shares the
worker's memory copy on write: after the fork, the first write to each shared page
copies it, in whichever turn of the event loop writes it first. Positions, costs,
scenario P&L, exposure and need are written by every batch, at pages all over them: at
the large scale that is tens of megabytes of page copies in the first steps after each
checkpoint, 20 to 50 ms of page faults in one turn.

So those matrices live in memory a child does not inherit (``MADV_DONTFORK``). At each
cut their rows and columns in use (not their room to grow) are copied into twins the
child does inherit, and the state holds the twins while the fork happens: one copy of
about 45 MB, about 6 ms at the large scale, in place of the faults. The twins are kept
from cut to cut; nothing writes them between cuts, so the next cut finds their pages its
own again. A state restored from the checkpoint has no room to grow until it grows.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import attrgetter

import numpy as np

from streams.state import MonitorState

# Where the matrices live in the state: the object that holds each, its attribute, and
# the counts of its rows and columns in use (None: all of them). Each is replaced whole
# when it grows, never aliased, so the state may hold either copy.
WRITTEN_BY_BATCHES: tuple[tuple[str, str, str | None, str | None], ...] = (
    ("ccp.book", "position", "ccp.book.n_members", "ccp.book.n_instruments"),
    ("ccp.book", "cost", "ccp.book.n_members", "ccp.book.n_instruments"),
    ("ccp.book", "settled_quantity", "ccp.book.n_members", "ccp.book.n_instruments"),
    ("ccp.stress", "pnl", "ccp.stress.n_members", "ccp.stress.n_scenarios"),
    ("ccp", "exposure", "ccp.stress.n_members", "ccp.stress.n_scenarios"),
    ("ccp", "need", "ccp.stress.n_members", "ccp.stress.n_scenarios"),
    ("ccp.holdings", "_exposure", None, None),
    ("ccp.holdings", "_need", None, None),
)


def unshared(array: np.ndarray) -> np.ndarray:
    """A copy of ``array`` in memory that no child process inherits."""
    memory = mmap.mmap(-1, array.nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    memory.madvise(mmap.MADV_DONTFORK)
    copy: np.ndarray = np.frombuffer(memory, dtype=array.dtype).reshape(array.shape)
    copy[...] = array
    return copy


@dataclass
class WorkingSet:
    """Each matrix the state holds in unshared memory, with the twin a child inherits."""

    places: tuple[tuple[str, str, str | None, str | None], ...] = WRITTEN_BY_BATCHES
    _live: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    _twins: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)

    @contextmanager
    def inherited(self, state: MonitorState) -> Iterator[None]:
        """Within the block ``state`` holds each matrix's twin: its rows and columns in use
        as they are now (the room to grow is left out; the state grows it again when it
        needs it). After, the matrices again. A matrix met for the first time, or grown
        since the last cut, moves to unshared memory first."""
        held = []
        for owner_at, name, rows_at, columns_at in self.places:
            owner, place = attrgetter(owner_at)(state), (owner_at, name)
            live = getattr(owner, name)
            if not live.nbytes:
                continue
            if self._live.get(place) is not live:
                live = self._live[place] = unshared(live)
                setattr(owner, name, live)
            in_use = live[:_count(state, rows_at, live.shape[0]),
                          :_count(state, columns_at, live.shape[1])]
            twin = self._twins.get(place)
            if twin is None or twin.shape != in_use.shape:
                twin = self._twins[place] = np.empty_like(in_use)
            np.copyto(twin, in_use)
            setattr(owner, name, twin)
            held.append((owner, name, live))
        try:
            yield
        finally:
            for owner, name, live in held:
                setattr(owner, name, live)


def _count(state: MonitorState, at: str | None, everything: int) -> int:
    return everything if at is None else int(attrgetter(at)(state))
