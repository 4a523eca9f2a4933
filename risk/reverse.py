"""Reverse stress: the shock multiplier k* at which Cover-2 first exceeds the resources.

Every scenario's shocks (its default shock included) are multiplied by ``k >= 0``;
positions, marks, unsettled variation margin, collateral, settlement obligations and
resources stay as they are. Scenario P&L is linear in the shocks, so member ``m`` loses
``loss_k[m,s] = -(vm[m] + k * pnl[m,s])`` in scenario ``s`` and what each floor is taken
of is affine in ``k``::

    credit     E_k[m,s] = max(0, a[m] + k * b[m,s])    a = -vm - IM           b = -pnl
    liquidity  N_k[m,s] = max(0, a[m] + k * b[m,s])    a = -vm + SO - cash    b = -pnl
    X_k[g,s]   = c[g] + sum_{m in g} (E_k or N_k)[m,s]  c = 0 (credit), provided (liquidity)
    cover2(k)  = max_s (largest_g X_k[g,s] + second_largest_g X_k[g,s])

(fewer than two groups: the missing ones count 0), and

    k* = inf {k >= 0 : cover2(k) > R}

for resources ``R`` (prefunded resources for credit, QLR for liquidity): 0 when
cover2 exceeds R at k = 0, or already for every k > 0; None when no k reaches R.

Each ``X_k[g,s]`` is convex piecewise linear in k, the top-2 sum of a scenario is a
maximum over pairs of them and cover2 a maximum over scenarios: cover2 is convex. With
``cover2(0) <= R`` it therefore stays above R once above, and it exceeds R for some k
exactly when some ``b[m,s] > 0`` (that member's floor alone grows without bound); every
``b <= 0`` makes it non-increasing, never above R.

The scenario and the two groups are read just past k*: the scenario whose top-2 sum
crosses R at k* (ties: the scenario id that sorts first) and its two largest groups
(ties: the group id that sorts first), as :mod:`risk.cover` ranks them, with their
amounts at k*. "Just past" is ``k* (1 + PAST)``, so scenarios crossing within a relative
1e-9 of each other count as tied; at ``k* = 0`` it is exact: amounts at 0 first, then
their slopes just past 0. So when the resources are already exhausted at k = 0, every
scenario over them crosses "at 0" and the first by id is named, not necessarily the one
with the largest cover-2 (which ``Results`` names).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from risk.cover import GroupAmount
from risk.merge import MemberFigures
from risk.model import BoolArray, FloatArray, IndexArray
from risk.segments import segment_sums

# Relative step past k* at which the crossing scenario and the two groups are read.
PAST = 1e-9
# The search stops when its bracket is this narrow relative to k*.
RESOLUTION = 2.0**-46
# The search gives up (and reports the upper end of its bracket) after this many
# evaluations of cover2; Newton's steps usually land exactly within ten.
MAX_EVALUATIONS = 200
# A scenario whose top-2 sum is within this relative distance of the resources has it
# recomputed from the linear pieces of its groups, so that an amount that is exactly
# the resources over an interval (slopes cancelling) is not taken as above them.
BAND = 1e-12


@dataclass(frozen=True, eq=False)
class AffineBook:
    """One side (credit or liquidity) of a book, affine in the shock multiplier k.

    ``X_k[g,s] = constant_by_group[g] + sum_{m in g} max(0, base[m] + k * slope[m,s])``.

    Parameters
    ----------
    base : (members,) ``a``: what each floor is taken of at k = 0;
        ``-vm - IM`` for credit, ``-vm + SO - cash`` for liquidity
    slope : (members, scenarios) ``b``: its change per unit of k, ``-pnl``
    group_of_member : (members,) index into ``groups`` of each member's group
    groups : group ids, sorted and distinct (the rank of an id is its tie-break order)
    scenarios : scenario ids, the columns of ``slope``, in any order
    constant_by_group : (groups,) amount a group adds whatever k, not negative: 0 for
        credit, the qualifying liquid resources it provides for liquidity
    """

    base: FloatArray
    slope: FloatArray
    group_of_member: IndexArray
    groups: tuple[str, ...]
    scenarios: tuple[str, ...]
    constant_by_group: FloatArray

    def __post_init__(self) -> None:
        base = np.asarray(self.base, dtype=np.float64)
        slope = np.asarray(self.slope, dtype=np.float64)
        group_of_member = np.asarray(self.group_of_member, dtype=np.intp)
        constant = np.asarray(self.constant_by_group, dtype=np.float64)
        n_m, n_g, n_s = len(base), len(self.groups), len(self.scenarios)
        if base.shape != (n_m,) or slope.shape != (n_m, n_s):
            raise ValueError(f"base {base.shape} and slope {slope.shape} do not match "
                             f"{n_m} members x {n_s} scenarios")
        if group_of_member.shape != (n_m,) or constant.shape != (n_g,):
            raise ValueError("group_of_member must have one entry per member and "
                             "constant_by_group one per group")
        if list(self.groups) != sorted(set(self.groups)):
            raise ValueError("groups must be sorted and distinct")
        if len(set(self.scenarios)) != n_s:
            raise ValueError("scenario ids must be distinct")
        if n_m and (group_of_member.min() < 0 or group_of_member.max() >= n_g):
            raise ValueError("group_of_member must index groups")
        if not (np.isfinite(base).all() and np.isfinite(slope).all()
                and np.isfinite(constant).all()):
            raise ValueError("amounts must be finite")
        if (constant < 0).any():
            raise ValueError("constant_by_group must not be negative")
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "slope", slope)
        object.__setattr__(self, "group_of_member", group_of_member)
        object.__setattr__(self, "constant_by_group", constant)


@dataclass(frozen=True)
class Multiplier:
    """The shock multiplier to exhaustion and what exhausts the resources there.

    ``k`` is k*; ``scenario`` the scenario whose top-2 sum crosses the resources at k*;
    ``top`` its two largest groups just past k* (one when the book has one group),
    largest first, with their amounts at k*. ``evaluations`` counts the evaluations of
    cover2 over every scenario that finding it took.
    """

    k: float
    scenario: str
    top: tuple[GroupAmount, ...]
    evaluations: int = field(default=0, compare=False)


def _group_index(group_of_member: Sequence[str],
                 extra: Sequence[str] = ()) -> tuple[tuple[str, ...], IndexArray]:
    groups = tuple(sorted({*group_of_member, *extra}))
    index = {g: i for i, g in enumerate(groups)}
    return groups, np.array([index[g] for g in group_of_member], dtype=np.intp)


def credit_book(vm: FloatArray, pnl: FloatArray, initial_margin: FloatArray,
                group_of_member: Sequence[str], scenarios: Sequence[str]) -> AffineBook:
    """The credit side: ``E_k[m,s] = max(0, -(vm[m] + k * pnl[m,s]) - IM[m])``.

    Parameters
    ----------
    vm : (members,) unsettled variation margin, gains positive
    pnl : (members, scenarios) scenario P&L at k = 1 (the scenarios as stated)
    initial_margin : (members,) post-haircut value of the collateral posted
    group_of_member : (members,) group id of each member (its own id when it has none)
    scenarios : (scenarios,) ids of the columns of ``pnl``
    """
    groups, index = _group_index(group_of_member)
    return AffineBook(
        base=-np.asarray(vm, dtype=np.float64) - np.asarray(initial_margin, dtype=np.float64),
        slope=-np.asarray(pnl, dtype=np.float64), group_of_member=index, groups=groups,
        scenarios=tuple(scenarios), constant_by_group=np.zeros(len(groups)))


def liquidity_book(vm: FloatArray, pnl: FloatArray, cash: FloatArray,
                   settlement_obligation: FloatArray, group_of_member: Sequence[str],
                   scenarios: Sequence[str],
                   provided: Mapping[str, float] | None = None) -> AffineBook:
    """The liquidity side: ``D_k[g,s] = provided[g] + sum_{m in g} N_k[m,s]`` with
    ``N_k[m,s] = max(0, -(vm[m] + k * pnl[m,s]) + SO[m] - cash[m])``.

    Parameters
    ----------
    vm, pnl, group_of_member, scenarios : as for :func:`credit_book`
    cash : (members,) the cash part of the collateral posted
    settlement_obligation : (members,)
    provided : qualifying liquid resources each group provides (lost with it), by group
        id; a providing group with no member here is a group of its own
    """
    provided = dict(provided or {})
    groups, index = _group_index(group_of_member, tuple(provided))
    return AffineBook(
        base=(np.asarray(settlement_obligation, dtype=np.float64)
              - np.asarray(vm, dtype=np.float64) - np.asarray(cash, dtype=np.float64)),
        slope=-np.asarray(pnl, dtype=np.float64), group_of_member=index, groups=groups,
        scenarios=tuple(scenarios),
        constant_by_group=np.array([provided.get(g, 0.0) for g in groups], dtype=np.float64))


def _sum_by(group: IndexArray, values: FloatArray, rows: int) -> FloatArray:
    """``values`` summed by group: (rows,), rows without members 0."""
    return np.bincount(group, values, rows).astype(np.float64, copy=False)


class _Sorted:
    """A book with its members sorted by group, so that group sums are sums of runs."""

    def __init__(self, book: AffineBook) -> None:
        order = np.argsort(book.group_of_member, kind="stable")
        self.book = book
        self.group: IndexArray = book.group_of_member[order]
        self.base: FloatArray = book.base[order]
        self.slope: FloatArray = np.ascontiguousarray(book.slope[order])
        self.starts: IndexArray = np.flatnonzero(np.r_[True, self.group[1:] != self.group[:-1]])
        self.n_groups = len(book.groups)
        self.every_group_has_members = bool(len(self.group)) and len(self.starts) == self.n_groups
        self.constant: FloatArray = book.constant_by_group
        self.evaluations = 0

    def amounts(self, k: float) -> FloatArray:
        """``X_k``: (groups, scenarios)."""
        self.evaluations += 1
        inner = np.multiply(self.slope, k)
        inner += self.base[:, None]
        np.maximum(inner, 0.0, out=inner)
        if self.every_group_has_members:
            out = segment_sums(inner, self.starts)
        else:
            out = np.zeros((self.n_groups, self.slope.shape[1]))
            if len(self.group):
                out[self.group[self.starts]] = segment_sums(inner, self.starts)
        if self.constant.any():
            out += self.constant[:, None]
        return out

    def pieces(self, k: float, s: int, past: bool) -> tuple[FloatArray, FloatArray]:
        """The linear piece ``alpha + k beta`` of every group's amount in scenario ``s``.

        Members count whose floor is open at k (``past``: just past k, i.e. also those at
        0 and rising). At least two rows: a missing second group is a row of zeros.
        """
        b = self.slope[:, s]
        inside = self.base + k * b
        open_: BoolArray = inside > 0
        if past:
            open_ |= (inside == 0) & (b > 0)
        rows = max(self.n_groups, 2)
        alpha = _sum_by(self.group, np.where(open_, self.base, 0.0), rows)
        alpha[:self.n_groups] += self.constant
        beta = _sum_by(self.group, np.where(open_, b, 0.0), rows)
        return alpha, beta

    def pair(self, k: float, s: int, past: bool) -> tuple[IndexArray, float, float]:
        """Scenario ``s``'s two largest groups at k (``past``: just past k), largest first,
        and their sum's value and slope there, from the groups' linear pieces."""
        alpha, beta = self.pieces(k, s, past)
        value = alpha + k * beta
        top = np.lexsort((np.arange(len(value)), -beta, -value))[:2]
        slope = float(beta[top].sum())
        return top, float(alpha[top].sum()) + k * slope, slope

    def totals(self, k: float, resources: float) -> FloatArray:
        """Cover-2 of every scenario at k, (scenarios,); those near the resources are
        recomputed from the linear pieces of their groups."""
        totals = _top_two_sums(self.amounts(k))
        near = np.abs(totals - resources) <= BAND * (abs(resources) + np.abs(totals))
        for s in np.flatnonzero(near).tolist():
            totals[s] = self.pair(k, s, past=False)[1]
        return totals

    def cover2(self, k: float, resources: float) -> tuple[float, float]:
        """``cover2(k)`` and a subgradient of it there (the slope of the binding pair)."""
        totals = self.totals(k, resources)
        s = int(totals.argmax())
        return float(totals[s]), self.pair(k, s, past=False)[2]

    def crossing(self, k: float, resources: float) -> tuple[int, IndexArray] | None:
        """The scenario whose top-2 sum is above the resources just past k (the first by
        id), and its two groups, or None."""
        totals = self.totals(k, resources)
        slack = BAND * (abs(resources) + np.abs(totals))
        candidates = np.flatnonzero(totals >= resources - slack).tolist()
        for s in sorted(candidates, key=lambda s: self.book.scenarios[s]):
            top, value, slope = self.pair(k, s, past=True)
            if value > resources or (value == resources and slope > 0):
                return s, top
        return None

    def multiplier(self, k: float, s: int, top: IndexArray) -> Multiplier:
        """The result at k* = ``k``: amounts at k of the groups ranked just past it."""
        book = self.book
        inside = np.maximum(self.base + k * self.slope[:, s], 0.0)
        amount = _sum_by(self.group, inside, self.n_groups) + self.constant
        return Multiplier(
            k=k, scenario=book.scenarios[s],
            top=tuple(GroupAmount(book.groups[g], float(amount[g]))
                      for g in top.tolist() if g < self.n_groups),
            evaluations=self.evaluations)


def _top_two_sums(amounts: FloatArray) -> FloatArray:
    """``largest + second largest`` of each column of a (groups >= 1, scenarios) matrix,
    a missing second group counting 0; overwrites ``amounts``.

    Two column maxima: ties need no care, as only the values are kept (the names come
    from :meth:`_Sorted.pair`). Faster than :func:`risk.cover.largest_rows` here.
    """
    if len(amounts) < 2:
        alone: FloatArray = amounts.sum(axis=0)
        return alone
    columns = np.arange(amounts.shape[1])
    first = amounts.argmax(axis=0)
    largest = amounts[first, columns]
    amounts[first, columns] = -np.inf
    sums: FloatArray = largest + amounts.max(axis=0)
    return sums


def _between(lo: float, hi: float) -> float:
    """A bisection point: halving from 0, geometric while the bracket is wide."""
    if lo <= 0.0:
        return 0.5 * hi
    return math.sqrt(lo * hi) if hi > 4.0 * lo else 0.5 * (lo + hi)


def cover2_by_scenario(book: AffineBook, k: float) -> FloatArray:
    """``largest_g X_k[g,s] + second_largest_g X_k[g,s]`` for every scenario: (scenarios,).

    One evaluation: a (members, scenarios) affine map and floor, a sum per group and a
    top-2 per scenario.
    """
    if not book.groups:
        return np.zeros(len(book.scenarios))
    return _top_two_sums(_Sorted(book).amounts(k))


def multiplier_to_exhaustion(book: AffineBook, resources: float) -> Multiplier | None:
    """k*, the smallest shock multiplier at which cover2 exceeds ``resources``.

    Parameters
    ----------
    book : the credit or liquidity side, :func:`credit_book` or :func:`liquidity_book`
    resources : prefunded resources (credit) or qualifying liquid resources (liquidity)

    Returns
    -------
    The multiplier with the crossing scenario and its two groups (see the module); k* is
    0 when cover2 exceeds the resources at k = 0 or just past it; None when nothing ever
    does (no scenario or no group, every ``b <= 0``, or a k* beyond the largest float).

    Method and cost
    ---------------
    One evaluation of cover2 at some k covers every scenario at once: the (members,
    scenarios) matrix ``max(0, a + k b)``, its sums over each group's run of members and
    the two largest groups per scenario, O(members x scenarios); plus O(members) for the
    binding scenario's slope, and for any scenario whose top-2 sum is within ``BAND`` of
    the resources. An upper bound comes free: cover2 is at least any single member's
    floor, so ``k* <= min_m (R - a[m]) / max_s b[m,s]`` over members with a positive
    ``b``. From there Newton's method from the right, with a subgradient of the convex
    cover2 (the slope of the binding pair), never passes k*; on a piecewise linear
    function it lands on k* exactly once its tangent is the piece through k*. A Newton
    step that does not halve the excess over the resources is followed by a bisection
    step (halving from 0, then geometric, then arithmetic); the search stops at a
    relative bracket of ``RESOLUTION`` (2**-46) or after ``MAX_EVALUATIONS``. Typically
    2 to 6 evaluations find k*, and two more (at 0 and just past k*) name the scenario
    and the groups: 4 to 8 in all. Measured on one core: an evaluation takes about
    0.8 ms at 300 members, 150 groups and 1,000 scenarios, and k* 4 to 5 ms; about 7 ms
    and 30 to 55 ms at 1,000 members, 500 groups and 2,000 scenarios.
    """
    resources = float(resources)
    if not math.isfinite(resources):
        raise ValueError("resources must be finite")
    if not book.scenarios or not book.groups:
        return None
    ranked = _Sorted(book)
    at_zero = ranked.crossing(0.0, resources)
    if at_zero is not None:
        return ranked.multiplier(0.0, *at_zero)
    steepest = book.slope.max(axis=1)
    rising = steepest > 0
    if not rising.any():
        return None
    # cover2 >= one member's floor, which alone passes the resources beyond (R - a) / b;
    # R >= a here, else cover2(0) >= a > R.
    with np.errstate(over="ignore"):
        hi = float(np.min(np.maximum(resources - book.base[rising], 0.0) / steepest[rising]))
    if not math.isfinite(hi):
        return None
    lo, hi = 0.0, max(hi, np.finfo(np.float64).tiny)
    value, slope = ranked.cover2(hi, resources)
    while not value > resources:  # only by rounding: the bound is exact in real numbers
        lo, hi = hi, 2.0 * hi
        if not math.isfinite(hi):
            return None
        if ranked.evaluations > MAX_EVALUATIONS:
            raise ArithmeticError("cover2 does not pass the resources beyond its bound")
        value, slope = ranked.cover2(hi, resources)
    k = _search(ranked, resources, lo, hi, value, slope)
    crossing = ranked.crossing(k * (1.0 + PAST), resources)
    if crossing is None:  # k* rounded down by more than PAST: read it at the upper bound
        crossing = ranked.crossing(hi, resources)
    if crossing is None:
        raise ArithmeticError("no scenario crosses the resources past k*")
    return ranked.multiplier(k, *crossing)


def _search(ranked: _Sorted, resources: float, lo: float, hi: float, value: float,
            slope: float) -> float:
    """k* in [lo, hi] with ``cover2(lo) <= R < cover2(hi) = value``, ``slope`` its
    subgradient at hi: safeguarded Newton from the right (see
    :func:`multiplier_to_exhaustion`)."""
    newton_allowed = True
    while hi - lo > RESOLUTION * hi and ranked.evaluations < MAX_EVALUATIONS:
        root = hi - (value - resources) / slope if slope > 0 else -math.inf
        if lo > 0.0 and root <= lo:
            return lo  # lo <= k* <= the tangent's root <= lo, up to rounding
        # A step lost in rounding still moves a little: then below it, k* is within reach.
        step = min(root, hi - RESOLUTION * hi)
        newton = newton_allowed and step > lo
        k = step if newton else _between(lo, hi)
        at_k, slope_k = ranked.cover2(k, resources)
        if at_k > resources:
            # Newton that does not halve the excess over the resources is followed by bisection.
            newton_allowed = not newton or at_k - resources <= 0.5 * (value - resources)
            hi, value, slope = k, at_k, slope_k
        elif newton:
            return min(root, hi)  # the tangent of the piece through k* meets R at k*
        else:
            lo, newton_allowed = k, True
    step = hi - (value - resources) / slope if slope > 0 else hi
    return min(max(step, lo), hi)


def books(figures: Sequence[MemberFigures], group_of: Callable[[str], str],
          scenarios: Sequence[str], provided: Mapping[str, float]
          ) -> tuple[AffineBook, AffineBook]:
    """The credit and liquidity books of the members of ``figures`` (each partition's,
    columns in the order of ``scenarios``), in the order given."""
    def joined(name: str) -> FloatArray:
        parts = [getattr(part, name) for part in figures]
        return np.concatenate(parts) if parts else np.zeros(0)

    groups = [group_of(m) for part in figures for m in part.members]
    pnl = np.concatenate([part.pnl for part in figures]) if figures \
        else np.zeros((0, len(scenarios)))
    vm = joined("vm")
    return (credit_book(vm, pnl, joined("initial_margin"), groups, scenarios),
            liquidity_book(vm, pnl, joined("cash"), joined("settlement_obligation"), groups,
                           scenarios, provided))


@dataclass(frozen=True)
class ReverseStress:
    """The shock multipliers to exhaustion of both sides: credit against the prefunded
    resources, liquidity against the qualifying liquid resources; None where no k does."""

    credit: Multiplier | None
    liquidity: Multiplier | None


def reverse_stress(credit: AffineBook, liquidity: AffineBook, prefunded: float,
                   qualifying: float) -> ReverseStress:
    """Both multipliers to exhaustion (a few evaluations of every scenario each)."""
    return ReverseStress(multiplier_to_exhaustion(credit, prefunded),
                         multiplier_to_exhaustion(liquidity, qualifying))
