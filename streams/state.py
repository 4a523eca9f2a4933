"""The worker's state: everything that survives a restart, with the input offsets it includes."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from risk.ccp import Ccp
from streams.ledger import Ledger
from streams.tally import Tally

# How many of the latest settlements a worker remembers for the partitions it takes over.
SETTLEMENTS_KEPT = 10_000
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
