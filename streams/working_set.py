"""The matrices every batch writes, kept out of the memory a checkpoint's child shares.

A checkpoint is written by a forked child (:mod:`streams.checkpoint`), which shares the
worker's memory copy on write: after the fork, the first write to each shared page
copies it, in whichever turn of the event loop writes it first. Positions, costs,
scenario P&L, exposure and need are written by every batch, at pages all over them: at
the large scale that is tens of megabytes of page copies in the first steps after each
checkpoint, 20 to 50 ms of page faults in one turn.

So those matrices live in memory a child does not inherit (``MADV_DONTFORK``). At each
cut their contents are copied into twins the child does inherit, and the state holds the
twins while the fork happens: one copy of about 75 MB, about 10 ms at the large scale,
in place of the faults. The twins are kept from cut to cut; nothing writes them between
cuts, so the next cut finds their pages its own again.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import attrgetter

import numpy as np

from streams.state import MonitorState

# Where the matrices live in the state, by the object that holds each and its attribute.
# Each is replaced whole when it grows, never aliased, so the state may hold either copy.
WRITTEN_BY_BATCHES = (
    ("ccp.book", "position"), ("ccp.book", "cost"), ("ccp.book", "settled_quantity"),
    ("ccp.stress", "pnl"), ("ccp", "exposure"), ("ccp", "need"),
    ("ccp.holdings", "_exposure"), ("ccp.holdings", "_need"),
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

    places: tuple[tuple[str, str], ...] = WRITTEN_BY_BATCHES
    _twins: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @contextmanager
    def inherited(self, state: MonitorState) -> Iterator[None]:
        """Within the block ``state`` holds each matrix's twin, equal to it now; after,
        the matrices again. A matrix met for the first time (or grown since the last cut)
        moves to unshared memory first."""
        held = []
        for place in self.places:
            owner = attrgetter(place[0])(state)
            live = getattr(owner, place[1])
            if not live.nbytes:
                continue
            twins = self._twins.get(place)
            if twins is None or twins[0] is not live:
                twins = unshared(live), live.copy()
                setattr(owner, place[1], twins[0])
                self._twins[place] = twins
            np.copyto(twins[1], twins[0])
            setattr(owner, place[1], twins[1])
            held.append((owner, place[1], twins[0]))
        try:
            yield
        finally:
            for owner, name, live in held:
                setattr(owner, name, live)
