"""The worker's state: everything that survives a restart, with the input offsets it includes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from risk.ccp import Ccp
from streams.ledger import Ledger
from streams.tally import Tally


@dataclass
class MonitorState:
    """Everything that survives a restart; ``offsets`` are the next offsets not yet included."""

    ccp: Ccp
    ledger: Ledger = field(default_factory=Ledger)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    tally: Tally = field(default_factory=Tally)
    event_clock: float = -math.inf

    def next_offset(self, topic: str, partition: int) -> int:
        """The first offset of ``topic``/``partition`` the state does not include."""
        return self.offsets.get((topic, partition), 0)
