"""The plain model of the reverse stress: k* from its definition, in exact fractions.

No vectorisation and no search: amounts are recomputed member by member from the
definition (``risk/reverse.py`` states it), cover-2 is the best of all pairs of groups
in every scenario, and k* is found by walking, in increasing order, every point where
anything changes: each member's floor opening or closing, each two groups' amounts
crossing and each pair's sum meeting the resources. Between two consecutive points
every pair's sum is linear and on one side of the resources, so cover-2 exceeds the
resources on the whole open interval after a point or nowhere in it; k* is the first
point after which it does. Slow by design (books of a few members); the property tests
hold :func:`risk.reverse.multiplier_to_exhaustion` to it.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

Side = Literal["credit", "liquidity"]
# Stand-ins for missing groups (fewer than two): amount 0, ids that sort after any other.
_MISSING = ("\uffff1", "\uffff2")


@dataclass(frozen=True)
class PlainReverseBook:
    """A book in dicts: what the definition of k* is stated in.

    ``pnl[member, scenario]`` is the P&L at k = 1 (the scenarios as stated); a member
    or a pair that is absent counts 0. ``provided`` is by group, for liquidity.
    """

    scenarios: tuple[str, ...]
    group: Mapping[str, str]
    vm: Mapping[str, float]
    pnl: Mapping[tuple[str, str], float]
    initial_margin: Mapping[str, float] = field(default_factory=dict)
    cash: Mapping[str, float] = field(default_factory=dict)
    settlement_obligation: Mapping[str, float] = field(default_factory=dict)
    provided: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PlainMultiplier:
    """k* exactly, the scenario and two groups just past it with their amounts at k*.

    ``next_point`` is the first point past k* where a floor, the order of two groups or
    a pair against the resources changes (None: nothing changes past k*); the names
    are read between the two.
    """

    k: Fraction
    scenario: str
    top: tuple[tuple[str, Fraction], ...]
    next_point: Fraction | None


def _fraction(value: float | Fraction) -> Fraction:
    return Fraction(value)


def inside(book: PlainReverseBook, side: Side, member: str, scenario: str,
           k: Fraction) -> Fraction:
    """What the member's floor is taken of at multiplier k.

    ``loss_k = -(vm + k * pnl)``; credit ``loss_k - IM``, liquidity ``loss_k + SO - cash``.
    """
    loss = -(_fraction(book.vm.get(member, 0.0))
             + k * _fraction(book.pnl.get((member, scenario), 0.0)))
    if side == "credit":
        return loss - _fraction(book.initial_margin.get(member, 0.0))
    return (loss + _fraction(book.settlement_obligation.get(member, 0.0))
            - _fraction(book.cash.get(member, 0.0)))


def groups(book: PlainReverseBook, side: Side) -> list[str]:
    """The groups in id order; for liquidity a providing group counts even with no member."""
    found = set(book.group.values())
    if side == "liquidity":
        found |= set(book.provided)
    return sorted(found)


def group_amounts(book: PlainReverseBook, side: Side, scenario: str,
                  k: Fraction) -> dict[str, Fraction]:
    """Each group's exposure (credit) or drain (liquidity) at k, missing groups at 0."""
    amounts = {g: Fraction(0) for g in [*groups(book, side), *_MISSING]}
    for member, group in book.group.items():
        amounts[group] += max(Fraction(0), inside(book, side, member, scenario, k))
    if side == "liquidity":
        for group, amount in book.provided.items():
            amounts[group] += _fraction(amount)
    return amounts


def best_pair(amounts: dict[str, Fraction]) -> tuple[Fraction, list[tuple[str, Fraction]]]:
    """The largest sum over all pairs of groups, and the pair ranked largest first."""
    best: tuple[Fraction, list[tuple[str, Fraction]]] | None = None
    for g, h in itertools.combinations(sorted(amounts), 2):
        pair = sorted([(g, amounts[g]), (h, amounts[h])], key=lambda item: (-item[1], item[0]))
        total = amounts[g] + amounts[h]
        if best is None or total > best[0] or (
                total == best[0] and [(-a, n) for n, a in pair] < [(-a, n) for n, a in best[1]]):
            best = (total, pair)
    assert best is not None
    return best


def cover2(book: PlainReverseBook, side: Side, k: Fraction | float) -> Fraction:
    """``max_s`` of the best pair's sum at multiplier k (0 with no scenario)."""
    k = _fraction(k)
    return max((best_pair(group_amounts(book, side, s, k))[0] for s in book.scenarios),
               default=Fraction(0))


def _points(book: PlainReverseBook, side: Side, resources: Fraction) -> list[Fraction]:
    """0 and every k > 0 where a floor opens or closes, two groups' amounts cross or a
    pair's (or a lone group's) sum meets the resources, in increasing order."""
    pieces = {(m, s): (inside(book, side, m, s, Fraction(0)),
                       inside(book, side, m, s, Fraction(1)) - inside(book, side, m, s,
                                                                       Fraction(0)))
              for m in book.group for s in book.scenarios}
    kinks = sorted({-a / b for a, b in pieces.values() if b != 0 and -a / b > 0})
    bounds = [Fraction(0), *kinks]
    points = set(bounds)
    names = groups(book, side)
    for i, lo in enumerate(bounds):
        hi = bounds[i + 1] if i + 1 < len(bounds) else None
        probe = (lo + hi) / 2 if hi is not None else lo + 1
        for s in book.scenarios:
            # Every group's amount is linear on [lo, hi]: alpha + k beta.
            line = {g: [Fraction(0), Fraction(0)] for g in names}
            if side == "liquidity":
                for g, amount in book.provided.items():
                    line[g][0] += _fraction(amount)
            for m, g in book.group.items():
                a, b = pieces[m, s]
                if a + probe * b > 0:
                    line[g][0] += a
                    line[g][1] += b
            equations = [(line[g][0] - line[h][0], line[g][1] - line[h][1])
                         for g, h in itertools.combinations(names, 2)]
            equations += [(line[g][0] + line[h][0] - resources, line[g][1] + line[h][1])
                          for g, h in itertools.combinations(names, 2)]
            equations += [(line[g][0] - resources, line[g][1]) for g in names]
            for alpha, beta in equations:
                if beta != 0:
                    root = -alpha / beta
                    if root >= lo and (hi is None or root <= hi):
                        points.add(root)
    return sorted(points)


def multiplier(book: PlainReverseBook, side: Side,
               resources: float | Fraction) -> PlainMultiplier | None:
    """k* = inf {k >= 0 : cover2(k) > resources}, or None when no k reaches it."""
    resources = _fraction(resources)
    if not book.scenarios or not groups(book, side):
        return None
    points = _points(book, side, resources)
    for i, point in enumerate(points):
        following = points[i + 1] if i + 1 < len(points) else None
        past = (point + following) / 2 if following is not None else point + 1
        if cover2(book, side, past) <= resources:
            continue
        scenario = min(s for s in book.scenarios
                       if best_pair(group_amounts(book, side, s, past))[0] > resources)
        _, pair = best_pair(group_amounts(book, side, scenario, past))
        at_k = group_amounts(book, side, scenario, point)
        top = tuple((g, at_k[g]) for g, _ in pair if g not in _MISSING)
        return PlainMultiplier(point, scenario, top, following)
    return None
