"""The worker's state: everything that survives a restart, with the input offsets it includes."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from risk.ccp import Ccp
from streams.tally import Tally

# How many of the latest settlements a worker remembers for the partitions it takes over.
SETTLEMENTS_KEPT = 10_000
# Separates member and trade id in the ledger's keys.
_SEP = "\x1f"


class Ledger:
    """The ``(member, trade_id)`` pairs of every trade applied: a trade is applied once."""

    def __init__(self) -> None:
        self._applied: set[str] = set()

    def __len__(self) -> int:
        return len(self._applied)

    def fresh(self, members: Sequence[str], trade_ids: Sequence[str]) -> list[int] | None:
        """Remember the trades not applied yet, deciding in arrival order: their positions,
        or None when every one is fresh (the usual case, decided in one step)."""
        keys = list(map(_SEP.join, zip(members, trade_ids, strict=True)))
        if self._applied.isdisjoint(keys) and len(set(keys)) == len(keys):
            self._applied.update(keys)
            return None
        remember = self._applied.add
        return [i for i, key in enumerate(keys)
                if not (key in self._applied or remember(key))]

    def forget(self, members: Collection[str]) -> None:
        """Drop the trades of ``members``."""
        if members:
            self._applied = {key for key in self._applied
                             if key.partition(_SEP)[0] not in members}


@dataclass
class MonitorState:
    """Everything that survives a restart; ``offsets`` are the next offsets not yet included."""

    ccp: Ccp
    ledger: Ledger = field(default_factory=Ledger)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    tally: Tally = field(default_factory=Tally)
    event_clock: float = -math.inf
    # The latest settlements read, as (partition, offset, member or None for everyone):
    # a partition taken over settles those its previous owner's view does not include.
    settlements: deque[tuple[int, int, str | None]] = field(
        default_factory=lambda: deque(maxlen=SETTLEMENTS_KEPT))
    # Per partition taken over from another worker, the settlement offsets its view included.
    settled_through: dict[int, dict[int, int]] = field(default_factory=dict)

    def next_offset(self, topic: str, partition: int) -> int:
        """The first offset of ``topic``/``partition`` the state does not include."""
        return self.offsets.get((topic, partition), 0)
