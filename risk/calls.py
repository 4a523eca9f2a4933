"""Margin-call decisions on each member's stress loss over margin."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from risk.ids import grown
from risk.model import FloatArray, IndexArray


class MarginLevel(IntEnum):
    """The level a member's stress loss over margin is over; higher is worse."""

    NONE = 0
    WARNING = 1
    CALL = 2

    @property
    def label(self) -> str:
        """The name a margin call of this level carries: "warning" or "call"."""
        return self.name.lower()


# The levels a margin call can be issued at.
ISSUED_LEVELS = (MarginLevel.WARNING, MarginLevel.CALL)


@dataclass(frozen=True)
class CallPolicy:
    """When to warn and when to call.

    A level is ``max(amount, fraction x IM)``: the member's worst-scenario stress
    loss over margin must exceed both parts. Nothing under the minimum transfer
    amount is issued; a call of the same kind is re-issued only after the
    cool-down and when the exposure has grown by at least the minimum transfer
    amount past the last one. Escalation from warning to call is immediate.
    """

    warning_amount: float = 0.0
    warning_fraction_of_im: float = 0.05
    call_amount: float = 0.0
    call_fraction_of_im: float = 0.20
    minimum_transfer: float = 10_000.0
    cooldown_s: float = 300.0

    def levels(self, initial_margin: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Warning and call levels per member: (n,), (n,)."""
        return (np.maximum(self.warning_amount, self.warning_fraction_of_im * initial_margin),
                np.maximum(self.call_amount, self.call_fraction_of_im * initial_margin))

    def level(self, exposure: FloatArray, initial_margin: FloatArray) -> IndexArray:
        """The :class:`MarginLevel` each member is over now, as integers: (n,)."""
        warning_level, call_level = self.levels(initial_margin)
        level = np.where(exposure >= call_level, MarginLevel.CALL,
                         np.where(exposure >= warning_level, MarginLevel.WARNING,
                                  MarginLevel.NONE))
        level[exposure <= 0.0] = MarginLevel.NONE
        return level


@dataclass(frozen=True)
class MarginCall:
    """A warning or a call; ``call_id`` is a pure function of the other fields."""

    call_id: str
    member: str
    group: str
    level: MarginLevel
    amount: float
    exposure: float
    scenario: str
    ts: float


def call_id(member: str, level: MarginLevel, amount: float, scenario: str, ts: float) -> str:
    """The id of a call: the same decision computed twice has the same id."""
    text = f"{member}|{level.label}|{amount!r}|{scenario}|{ts!r}"
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


class CallDesk:
    """What was last issued to each member, and the decisions that follow.

    Attributes
    ----------
    level, amount, ts : (member capacity,) the level, exposure and event time of the
        last call issued to each member
    """

    def __init__(self, policy: CallPolicy) -> None:
        self.policy = policy
        self.level: IndexArray = np.zeros(0, dtype=np.intp)
        self.amount: FloatArray = np.zeros(0)
        self.ts: FloatArray = np.zeros(0)

    def reserve(self, n_members: int) -> None:
        """Make room for ``n_members``."""
        self.level = grown(self.level, n_members, 0, MarginLevel.NONE)
        self.amount = grown(self.amount, n_members, 0, 0.0)
        self.ts = grown(self.ts, n_members, 0, -np.inf)

    def forget(self, members: IndexArray) -> None:
        """Drop what was issued to ``members``."""
        self.level[members] = MarginLevel.NONE
        self.amount[members] = 0.0
        self.ts[members] = -np.inf

    def decide(self, exposure: FloatArray, level: IndexArray, scenario: IndexArray,
               members: Sequence[str], groups: Sequence[str], scenarios: Sequence[str],
               now: float) -> list[MarginCall]:
        """Decide the calls for every member.

        Parameters
        ----------
        exposure : (n_members,) worst-scenario stress loss over margin
        level : (n_members,) the level each member is over, :meth:`CallPolicy.level`
        scenario : (n_members,) index of the worst scenario
        members, groups : (n_members,) member id and group id
        scenarios : scenario ids
        now : event time of the decision
        """
        n = len(exposure)
        p = self.policy
        last_level, last_amount, last_ts = self.level[:n], self.amount[:n], self.ts[:n]
        last_level[level == MarginLevel.NONE] = MarginLevel.NONE
        grew = ((level == last_level) & (exposure >= last_amount + p.minimum_transfer)
                & (now >= last_ts + p.cooldown_s))
        issue = ((level != MarginLevel.NONE) & (exposure >= p.minimum_transfer)
                 & ((level > last_level) | grew))
        calls = []
        for m in map(int, np.flatnonzero(issue)):
            issued = MarginLevel(int(level[m]))
            amount = float(math.ceil(exposure[m]))
            scenario_id = scenarios[scenario[m]]
            calls.append(MarginCall(call_id(members[m], issued, amount, scenario_id, now),
                                    members[m], groups[m], issued, amount, float(exposure[m]),
                                    scenario_id, now))
        last_level[issue] = level[issue]
        last_amount[issue] = exposure[issue]
        last_ts[issue] = now
        return calls
