"""Attribution of a change in Cover-2 to the inputs that moved it.

Between the states as of ``t1`` and ``t2``, one input family at a time moves from
its ``t1`` value to its ``t2`` value, in this order:

1. positions and collateral, group by group (a member's positions, what they cost
   since the last settlement, its collateral, its settlement obligation and its
   group move together, with the group it belongs to at ``t2``);
2. prices: marks and contract multipliers;
3. scenarios: the set of scenarios and their shocks;
4. resources: default fund contributions, skin in the game, other prefunded
   resources and the liquid resources.

Each step's change in credit and liquidity cover-2 and headroom is the difference of
the figures of the states on either side of it, all evaluated by one function, so the
steps add up to the whole change (up to the rounding of adding them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from risk.ccp import Ccp
from risk.cover import same_scenario_cover
from risk.liquidity import provided_by_group, qualifying_by_type
from risk.model import FloatArray, Resources

POSITIONS, PRICES, SCENARIOS, RESOURCES = ("positions and collateral", "prices", "scenarios",
                                           "resources")
FAMILIES = (POSITIONS, PRICES, SCENARIOS, RESOURCES)
# The four figures an attribution follows: of :class:`Figures` and of :class:`Change`.
FOLLOWED = ("credit_cover2", "credit_headroom", "liquidity_cover2", "liquidity_headroom")


@dataclass(frozen=True)
class Inputs:
    """Everything Cover-2 is a function of, by family.

    Attributes
    ----------
    members : (m,) member ids; ``group`` their groups
    position, cost : (m, j) signed contracts, and what they cost since the last
        settlement (``sum of quantity x trade price``)
    initial_margin, cash, settlement_obligation, default_fund : (m,)
    instruments : (j,) instrument ids; ``mark``, ``multiplier`` : (j,)
    scenarios : (s,) scenario ids; ``shock`` : (j, s) relative moves and
        ``default_shock`` : (s,) that of an instrument a scenario does not list
    resources : the CCP's own prefunded and liquid resources
    """

    members: tuple[str, ...]
    group: tuple[str, ...]
    position: FloatArray
    cost: FloatArray
    initial_margin: FloatArray
    cash: FloatArray
    settlement_obligation: FloatArray
    default_fund: FloatArray
    instruments: tuple[str, ...]
    mark: FloatArray
    multiplier: FloatArray
    scenarios: tuple[str, ...]
    shock: FloatArray
    default_shock: FloatArray
    resources: Resources


def inputs_of(ccp: Ccp) -> Inputs:
    """A copy of the inputs of every member ``ccp`` knows (settlements placed first)."""
    ccp.place()
    n_m, n_j, n_s = len(ccp.members), len(ccp.instruments), ccp.stress.n_scenarios
    book = ccp.book
    return Inputs(
        members=tuple(ccp.members.names[:n_m]), group=tuple(ccp.group_of_member[:n_m]),
        position=book.position[:n_m, :n_j].copy(), cost=book.cost[:n_m, :n_j].copy(),
        initial_margin=book.initial_margin[:n_m].copy(), cash=book.cash[:n_m].copy(),
        settlement_obligation=ccp.settlement_obligation[:n_m].copy(),
        default_fund=ccp.default_fund[:n_m].copy(),
        instruments=tuple(ccp.instruments.names[:n_j]), mark=book.mark[:n_j].copy(),
        multiplier=book.multiplier[:n_j].copy(), scenarios=ccp.scenarios,
        shock=ccp.stress.shock[:n_j, :n_s].copy(),
        default_shock=ccp.stress.default_shock[:n_s].copy(), resources=ccp.resources)


@dataclass(frozen=True)
class Figures:
    """Credit and liquidity cover-2 with their resources and headroom."""

    credit_cover2: float
    prefunded: float
    liquidity_cover2: float
    qualifying: float

    @property
    def credit_headroom(self) -> float:
        """Prefunded resources minus credit cover-2."""
        return self.prefunded - self.credit_cover2

    @property
    def liquidity_headroom(self) -> float:
        """Qualifying liquid resources minus liquidity cover-2."""
        return self.qualifying - self.liquidity_cover2

    def minus(self, other: Figures) -> Change:
        """The change from ``other`` to these figures."""
        return Change(*(getattr(self, name) - getattr(other, name) for name in FOLLOWED))


@dataclass(frozen=True)
class Change:
    """A change in the four figures an attribution follows."""

    credit_cover2: float
    credit_headroom: float
    liquidity_cover2: float
    liquidity_headroom: float

    @staticmethod
    def total(changes: Sequence[Change]) -> Change:
        """The changes added up (each figure with :func:`math.fsum`)."""
        return Change(*(math.fsum(getattr(c, name) for c in changes) for name in FOLLOWED))


def followed(figures: Figures | Change) -> dict[str, float]:
    """The four followed figures by name."""
    return {name: getattr(figures, name) for name in FOLLOWED}


@dataclass(frozen=True)
class Step:
    """One step of an attribution: a family (and, for positions, one group) moved."""

    family: str
    group: str | None
    change: Change


@dataclass(frozen=True)
class Attribution:
    """The figures at both ends and the steps between them, in order."""

    start: Figures
    end: Figures
    steps: tuple[Step, ...]

    def by_family(self) -> list[tuple[str, Change]]:
        """Each family's steps added up, in the order of :data:`FAMILIES`."""
        return [(family, Change.total([s.change for s in self.steps if s.family == family]))
                for family in FAMILIES]


def member_losses(inputs: Inputs) -> FloatArray:
    """``loss[m, s] = -(vm + pnl)`` with ``vm = sum_j k (q p - cost)`` and
    ``pnl = sum_j q k p shock[j, s]``: (m, s)."""
    valued = inputs.position * (inputs.multiplier * inputs.mark)
    paid = inputs.cost @ inputs.multiplier
    return np.asarray(paid[:, None] - valued @ (1.0 + inputs.shock))


def figures(inputs: Inputs, losses: FloatArray | None = None) -> Figures:
    """Credit and liquidity cover-2, prefunded and qualifying resources of ``inputs``
    (``losses`` when :func:`member_losses` is already known)."""
    loss = member_losses(inputs) if losses is None else losses
    exposure = np.maximum(0.0, loss - inputs.initial_margin[:, None])
    need = np.maximum(0.0, loss + (inputs.settlement_obligation - inputs.cash)[:, None])
    groups = sorted(set(inputs.group))
    row = {g: i for i, g in enumerate(groups)}
    of = np.array([row[g] for g in inputs.group], dtype=np.intp)
    by_group = np.zeros((len(groups), len(inputs.scenarios)))
    np.add.at(by_group, of, exposure)
    drain = np.zeros_like(by_group)
    np.add.at(drain, of, need)
    group_of = dict(zip(inputs.members, inputs.group, strict=True)).get
    drain += provided_by_group(inputs.resources, groups,
                               lambda m: group_of(m) or m)[:, None]
    resources = inputs.resources
    return Figures(
        credit_cover2=same_scenario_cover(by_group, groups, inputs.scenarios).amount,
        prefunded=float(inputs.default_fund.sum()) + resources.skin_in_the_game
        + resources.other_prefunded,
        liquidity_cover2=same_scenario_cover(drain, groups, inputs.scenarios).amount,
        qualifying=sum(qualifying_by_type(resources).values()))


def aligned(before: Inputs, after: Inputs) -> tuple[Inputs, Inputs]:
    """Both states over the union of their members and instruments (``before``'s order
    first). A member absent from one state holds nothing there and is in the group it
    has in the other; an instrument absent from one takes the other's mark and
    multiplier, and each scenario's default shock."""
    members = _union(before.members, after.members)
    instruments = _union(before.instruments, after.instruments)
    return (_widened(before, after, members, instruments),
            _widened(after, before, members, instruments))


def _union(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    seen = set(first)
    return first + tuple(name for name in second if name not in seen)


def _widened(inputs: Inputs, other: Inputs, members: tuple[str, ...],
             instruments: tuple[str, ...]) -> Inputs:
    if members == inputs.members and instruments == inputs.instruments:
        return inputs
    m_at = {name: i for i, name in enumerate(inputs.members)}
    j_at = {name: i for i, name in enumerate(inputs.instruments)}
    other_m = {name: i for i, name in enumerate(other.members)}
    other_j = {name: i for i, name in enumerate(other.instruments)}
    rows = np.array([m_at.get(m, -1) for m in members], dtype=np.intp)
    columns = np.array([j_at.get(j, -1) for j in instruments], dtype=np.intp)
    has_row, has_column = rows >= 0, columns >= 0

    def by_member(values: FloatArray) -> FloatArray:
        return np.where(has_row, values[rows], 0.0) if len(values) else np.zeros(len(members))

    def by_pair(values: FloatArray) -> FloatArray:
        out = np.zeros((len(members), len(instruments)))
        out[np.ix_(has_row, has_column)] = values[np.ix_(rows[has_row], columns[has_column])]
        return out

    def by_instrument(mine: FloatArray, theirs: FloatArray) -> FloatArray:
        return np.array([mine[j_at[j]] if j in j_at else theirs[other_j[j]]
                         for j in instruments], dtype=np.float64)

    shock = np.tile(inputs.default_shock, (len(instruments), 1))
    shock[has_column] = inputs.shock[columns[has_column]]
    return replace(
        inputs, members=members, instruments=instruments,
        group=tuple(inputs.group[m_at[m]] if m in m_at else other.group[other_m[m]]
                    for m in members),
        position=by_pair(inputs.position), cost=by_pair(inputs.cost),
        initial_margin=by_member(inputs.initial_margin), cash=by_member(inputs.cash),
        settlement_obligation=by_member(inputs.settlement_obligation),
        default_fund=by_member(inputs.default_fund),
        mark=by_instrument(inputs.mark, other.mark),
        multiplier=by_instrument(inputs.multiplier, other.multiplier), shock=shock)


def attribute(before: Inputs, after: Inputs) -> Attribution:
    """The change from ``before`` to ``after``, one family (and group) at a time."""
    state, target = aligned(before, after)
    start = figures(state)
    steps: list[Step] = []
    last = start

    def step(family: str, group: str | None, now: Inputs,
             losses: FloatArray | None = None) -> Inputs:
        nonlocal last
        reached = figures(now, losses)
        steps.append(Step(family, group, reached.minus(last)))
        last = reached
        return now

    # Positions and collateral: the rows of one group's members at a time. Losses depend
    # on a member's own row only, so both ends' rows are worked out once.
    moved = replace(target, mark=state.mark, multiplier=state.multiplier,
                    scenarios=state.scenarios, shock=state.shock,
                    default_shock=state.default_shock, default_fund=state.default_fund,
                    resources=state.resources)
    rows_before, rows_after = member_losses(state), member_losses(moved)
    taken = np.zeros(len(state.members), dtype=np.bool_)
    for group in sorted(set(target.group)):
        if not _changed(state, moved, np.array([g == group for g in target.group])):
            continue
        taken |= np.array([g == group for g in target.group])
        state = _rows(state, moved, taken)
        step(POSITIONS, group, state, np.where(taken[:, None], rows_after, rows_before))
    state = step(PRICES, None, replace(state, mark=target.mark, multiplier=target.multiplier))
    state = step(SCENARIOS, None, replace(state, scenarios=target.scenarios, shock=target.shock,
                                          default_shock=target.default_shock))
    step(RESOURCES, None, replace(state, default_fund=target.default_fund,
                                  resources=target.resources))
    return Attribution(start, last, tuple(steps))


POSITION_FIELDS = ("position", "cost", "initial_margin", "cash", "settlement_obligation")


def _changed(state: Inputs, moved: Inputs, rows: np.ndarray) -> bool:
    """Whether any of ``rows`` differs between the two states (group included)."""
    if any(state.group[i] != moved.group[i] for i in np.flatnonzero(rows).tolist()):
        return True
    return any(not np.array_equal(getattr(state, name)[rows], getattr(moved, name)[rows])
               for name in POSITION_FIELDS)


def _rows(state: Inputs, moved: Inputs, taken: np.ndarray) -> Inputs:
    """``state`` with the ``taken`` members' positions and collateral from ``moved``."""
    def pick(name: str) -> FloatArray:
        mine: FloatArray = getattr(state, name)
        theirs: FloatArray = getattr(moved, name)
        return np.where(taken[:, None] if mine.ndim == 2 else taken, theirs, mine)

    group = tuple(moved.group[i] if taken[i] else state.group[i]
                  for i in range(len(state.members)))
    return replace(state, group=group, position=pick("position"), cost=pick("cost"),
                   initial_margin=pick("initial_margin"), cash=pick("cash"),
                   settlement_obligation=pick("settlement_obligation"))
