"""Margin-call decisions on each member's stress loss over margin."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from risk.ids import grown
from risk.model import FloatArray, IndexArray

NONE, WARNING, CALL = 0, 1, 2
KIND_NAMES = {WARNING: "warning", CALL: "call"}


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
        """The level each member is over now: NONE, WARNING or CALL, (n,)."""
        warning_level, call_level = self.levels(initial_margin)
        kind = np.where(exposure >= call_level, CALL, np.where(exposure >= warning_level, WARNING,
                                                                NONE))
        kind[exposure <= 0.0] = NONE
        return kind


@dataclass(frozen=True)
class MarginCall:
    """A warning or a call; ``call_id`` is a pure function of the other fields."""

    call_id: str
    member: str
    group: str
    kind: str
    amount: float
    exposure: float
    scenario: str
    ts: float


def call_id(member: str, kind: str, amount: float, scenario: str, ts: float) -> str:
    """The id of a call: the same decision computed twice has the same id."""
    text = f"{member}|{kind}|{amount!r}|{scenario}|{ts!r}"
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


class CallDesk:
    """What was last issued to each member, and the decisions that follow."""

    def __init__(self, policy: CallPolicy) -> None:
        self.policy = policy
        self.kind: IndexArray = np.zeros(0, dtype=np.intp)
        self.amount: FloatArray = np.zeros(0)
        self.ts: FloatArray = np.zeros(0)

    def reserve(self, n_members: int) -> None:
        """Make room for ``n_members``."""
        self.kind = grown(self.kind, n_members, 0, NONE)
        self.amount = grown(self.amount, n_members, 0, 0.0)
        self.ts = grown(self.ts, n_members, 0, -np.inf)

    def forget(self, members: IndexArray) -> None:
        """Drop what was issued to ``members``."""
        self.kind[members] = NONE
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
        p, kind = self.policy, level
        last_kind, last_amount, last_ts = self.kind[:n], self.amount[:n], self.ts[:n]
        last_kind[kind == NONE] = NONE
        grew = ((kind == last_kind) & (exposure >= last_amount + p.minimum_transfer)
                & (now >= last_ts + p.cooldown_s))
        issue = (kind != NONE) & (exposure >= p.minimum_transfer) & ((kind > last_kind) | grew)
        calls = []
        for m in map(int, np.flatnonzero(issue)):
            kind_name = KIND_NAMES[int(kind[m])]
            amount = float(math.ceil(exposure[m]))
            scenario_id = scenarios[scenario[m]]
            calls.append(MarginCall(call_id(members[m], kind_name, amount, scenario_id, now),
                                    members[m], groups[m], kind_name, amount, float(exposure[m]),
                                    scenario_id, now))
        last_kind[issue] = kind[issue]
        last_amount[issue] = exposure[issue]
        last_ts[issue] = now
        return calls
