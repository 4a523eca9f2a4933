"""Scenario P&L per member: incremental updates and the full recompute."""

from __future__ import annotations

import numpy as np

from risk.book import BlockChange, PairChange
from risk.ids import Ids, grown
from risk.model import FloatArray, IndexArray


class StressPnl:
    """Each member's P&L under each scenario, kept up to date with its notional.

    ``pnl[m, s] = sum_j notional[m, j] * shock[j, s]``.

    Attributes
    ----------
    scenarios : scenario ids; column ``s`` of ``shock`` and ``pnl`` is ``scenarios.names[s]``
    shock : (instrument capacity, scenario capacity) relative price moves
    default_shock : (scenario capacity,) shock of instruments a scenario does not list
    pnl : (member capacity, scenario capacity)
    """

    def __init__(self) -> None:
        self.scenarios = Ids()
        self.n_members = 0
        self.n_instruments = 0
        self.shock: FloatArray = np.zeros((0, 0))
        self.default_shock: FloatArray = np.zeros(0)
        self.pnl: FloatArray = np.zeros((0, 0))

    @property
    def n_scenarios(self) -> int:
        """Number of scenarios."""
        return len(self.scenarios)

    def reserve(self, n_members: int, n_instruments: int) -> None:
        """Make room; new instruments take every scenario's default shock."""
        self.pnl = grown(self.pnl, n_members, 0, 0.0)
        if n_instruments > self.n_instruments:
            self.shock = grown(self.shock, n_instruments, 0, 0.0)
            self.shock[self.n_instruments:n_instruments] = self.default_shock
        self.n_members, self.n_instruments = n_members, n_instruments

    def apply_pairs(self, change: PairChange) -> None:
        """Move P&L by a sparse notional change: O(pairs x scenarios).

        A member with one pair takes a scaled shock row, all such members at once;
        a member with several takes one matrix-vector product over its rows, which
        reads each shock row once instead of scaling and then summing copies.
        """
        n_s = self.n_scenarios
        members, instruments, notional = change.members, change.instruments, change.notional
        starts = np.flatnonzero(np.r_[True, members[1:] != members[:-1]])
        lengths = np.diff(np.r_[starts, len(members)])
        single = starts[lengths == 1]
        self.pnl[members[single], :n_s] += (self.shock[instruments[single], :n_s]
                                            * notional[single, None])
        for first, length in zip(starts[lengths > 1].tolist(), lengths[lengths > 1].tolist(),
                                 strict=True):
            pairs = slice(first, first + length)
            self.pnl[members[first], :n_s] += notional[pairs] @ self.shock[instruments[pairs],
                                                                           :n_s]

    def apply_block(self, change: BlockChange) -> None:
        """Move P&L by a dense notional change: one matrix product over the instruments."""
        if len(change.members):
            n_s = self.n_scenarios
            self.pnl[change.members, :n_s] += change.notional @ self.shock[change.instruments, :n_s]

    def holds(self, scenario: str, shock: FloatArray, default_shock: float) -> bool:
        """Whether ``scenario`` is here with exactly these shocks (n_instruments,)."""
        s = self.scenarios.get(scenario)
        return s is not None and bool(self.default_shock[s] == default_shock
                    and np.array_equal(self.shock[: self.n_instruments, s], shock))

    def set_scenario(self, scenario: str, shock: FloatArray, default_shock: float) -> int:
        """Add or replace a scenario's shocks: (n_instruments,); P&L is left to ``reprice``."""
        s = self.scenarios.add(scenario)
        self.shock = grown(self.shock, s + 1, 1, 0.0)
        self.pnl = grown(self.pnl, s + 1, 1, 0.0)
        self.default_shock = grown(self.default_shock, s + 1, 0, 0.0)
        self.shock[: self.n_instruments, s] = shock
        self.shock[self.n_instruments:, s] = default_shock
        self.default_shock[s] = default_shock
        return s

    def remove_scenario(self, scenario: str) -> tuple[int, int]:
        """Drop a scenario; the last one moves into its column: (column freed, moved from)."""
        slot, last = self.scenarios.swap_remove(scenario)
        for array in (self.shock, self.pnl):
            array[:, slot] = array[:, last]
            array[:, last] = 0.0
        self.default_shock[slot] = self.default_shock[last]
        return slot, last

    def reprice(self, notional: FloatArray, scenarios: IndexArray) -> None:
        """Recompute P&L of ``scenarios`` from the full notional (n_members, n_instruments)."""
        shock = self.shock[: self.n_instruments, scenarios]
        self.pnl[: self.n_members, scenarios] = notional @ shock
