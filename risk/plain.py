"""The plain model: one event at a time, every result recomputed by loops.

No incremental tricks and no vectorised ranking: state lives in dicts, each
event follows its rule in ``docs/methodology.md`` literally, and cover-2 is the
best of all pairs of groups in every scenario. Slow by design; the property
tests hold :class:`risk.ccp.Ccp` to it.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from risk.calls import CallPolicy, MarginLevel
from risk.cover import NO_COVER, Cover, GroupAmount
from risk.desk import (
    Concentration,
    DefaultsToExhaustion,
    Layer,
    UnknownGroupError,
    WhatIf,
)
from risk.model import FloatArray, Instrument, Member, Resources, Scenario
from risk.results import CreditResult, LiquidityResult, Results


def _first(items: list[tuple[float, str]]) -> tuple[float, str]:
    """The largest amount; among equals the id that sorts first."""
    return min(items, key=lambda item: (-item[0], item[1]))


class PlainCcp:
    """A CCP's state in dicts: every trade, price and settlement kept, the book recomputed
    from them whenever it is read."""

    def __init__(self) -> None:
        self.members: dict[str, Member] = {}
        self.known_members: list[str] = []
        self.removed: set[str] = set()  # members whose reference data was removed
        self.multiplier: dict[str, float] = {}
        # Every trade as (member, instrument, quantity, price, event time), and every
        # price of each instrument as (event time, price), in arrival order.
        self.trades: list[tuple[str, str, float, float, float]] = []
        self.prices: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self.priced: dict[str, float] = {}  # the newest price's event time
        # Each member's latest settlement time, and everyone's.
        self.settlements: dict[str, float] = {}
        self.everyone = -np.inf
        self.collateral: dict[str, tuple[float, float, float]] = {}
        self.scenarios: dict[str, Scenario] = {}
        self.resources = Resources()
        self._book: tuple[dict[tuple[str, str], float], dict[str, float]] | None = None
        self._marks: dict[tuple[str, float], float] = {}

    def _changed(self) -> None:
        """An event arrived: what is worked out from the events is worked out again."""
        self._book = None
        self._marks = {}

    def _member(self, member: str) -> None:
        if member not in self.known_members:
            self.known_members.append(member)

    def trade(self, member: str, instrument: str, quantity: float, price: float,
              ts: float) -> None:
        """Book a trade at ``price``, at event time ``ts``."""
        self._member(member)
        self.trades.append((member, instrument, quantity, price, ts))
        self._changed()

    def price(self, instrument: str, price: float, ts: float) -> bool:
        """Receive a mark price; True if it is the newest (not older than the last one)."""
        newest = ts >= self.priced.get(instrument, -np.inf)
        if newest:
            self.priced[instrument] = ts
        self.prices[instrument].append((ts, price))
        self._changed()
        return newest

    def settle(self, member: str | None, ts: float) -> None:
        """``member`` (None: everyone) settled its variation margin through event time
        ``ts``."""
        if member is None:
            self.everyone = max(self.everyone, ts)
        else:
            self._member(member)
            self.settlements[member] = max(self.settlements.get(member, -np.inf), ts)
        self._changed()

    def settled_through(self, member: str) -> float:
        """The latest settlement time of ``member``, its own or everyone's."""
        return max(self.everyone, self.settlements.get(member, -np.inf))

    def mark_at(self, instrument: str, ts: float) -> float:
        """The instrument's newest price with event time ``<= ts`` or, with none, its newest
        trade price with event time ``<= ts`` (the later to arrive among equal times)."""
        if (instrument, ts) not in self._marks:
            self._marks[instrument, ts] = self._newest(instrument, ts)
        return self._marks[instrument, ts]

    def _newest(self, instrument: str, ts: float) -> float:
        for candidates in (self.prices[instrument],
                           [(t, price) for _, j, _, price, t in self.trades if j == instrument]):
            best = None
            for t, price in candidates:
                if t <= ts and (best is None or t >= best[0]):
                    best = (t, price)
            if best is not None:
                return best[1]
        return 0.0

    def mark(self, instrument: str) -> float:
        """The instrument's mark now."""
        return self.mark_at(instrument, np.inf)

    def book(self) -> tuple[dict[tuple[str, str], float], dict[str, float]]:
        """Positions, and each member's unsettled VM: per trade of ``x`` at ``t``,
        ``k * x * (mark - p(T))`` if its event time is at or before the member's last
        settlement ``T``, ``k * x * (mark - t)`` otherwise."""
        if self._book is None:
            position: dict[tuple[str, str], float] = defaultdict(float)
            vm: dict[str, float] = defaultdict(float)
            for m, j, quantity, price, ts in self.trades:
                position[m, j] += quantity
                through = self.settled_through(m)
                paid_to = self.mark_at(j, through) if ts <= through else price
                vm[m] += self.multiplier.get(j, 1.0) * quantity * (self.mark(j) - paid_to)
            self._book = (dict(position), dict(vm))
        return self._book

    def variation_margin(self, member: str) -> float:
        """Unsettled VM of ``member``."""
        return self.book()[1].get(member, 0.0)

    def post_collateral(self, member: str, initial_margin: float, cash: float, ts: float) -> bool:
        """Set a member's collateral unless the state is older than the last one."""
        self._member(member)
        if ts < self.collateral.get(member, (0.0, 0.0, -np.inf))[2]:
            return False
        self.collateral[member] = (initial_margin, cash, ts)
        return True

    def upsert_member(self, member: Member) -> None:
        """Add or replace reference data."""
        self._member(member.member)
        self.members[member.member] = member
        self.removed.discard(member.member)

    def remove_member(self, member: str) -> None:
        """Drop reference data; the member stays as an unknown one until it is gone."""
        if self.members.pop(member, None) is not None:
            self.removed.add(member)

    def gone(self, member: str) -> bool:
        """Whether ``member`` is gone, so not listed: its reference data removed, no
        position, no collateral (none, or none left), every trade of it settled, and no
        liquid resource of it."""
        position, _ = self.book()
        im, cash, _ = self.collateral.get(member, (0.0, 0.0, 0.0))
        through = self.settled_through(member)
        providers = {r.provider for r in self.resources.liquid_resources}
        return (member in self.removed and member not in providers and im == 0 and cash == 0
                and all(q == 0 for (m, _), q in position.items() if m == member)
                and all(ts <= through for m, _, _, _, ts in self.trades if m == member))

    def upsert_instrument(self, instrument: Instrument) -> None:
        """Set a multiplier: it values the whole position, VM since the last settlement too."""
        self.multiplier[instrument.instrument] = instrument.multiplier
        self._changed()

    def upsert_scenario(self, scenario: Scenario) -> None:
        """Add or replace a scenario."""
        self.scenarios[scenario.scenario] = scenario

    def remove_scenario(self, scenario: str) -> None:
        """Drop a scenario."""
        self.scenarios.pop(scenario, None)

    def set_resources(self, resources: Resources) -> None:
        """Replace the resources."""
        for r in resources.liquid_resources:
            if r.provider is not None:
                self._member(r.provider)
        self.resources = resources

    def group_of(self, member: str) -> str:
        """The member's group; an unknown member is its own group."""
        known = self.members.get(member)
        return known.group_id if known else member

    def loss(self, member: str, scenario: Scenario) -> float:
        """``-(vm + sum_j q * k * p * shock)``."""
        pnl = 0.0
        for (m, instrument), quantity in self.book()[0].items():
            if m == member:
                shock = scenario.shocks.get(instrument, scenario.default_shock)
                pnl += (quantity * self.multiplier.get(instrument, 1.0)
                        * self.mark(instrument) * shock)
        return -(self.variation_margin(member) + pnl)


def _cover(amount: dict[tuple[str, str], float], groups: list[str],
           scenarios: list[str]) -> Cover:
    if not groups or not scenarios:
        return NO_COVER
    padded = [*groups, "\uffff1", "\uffff2"]
    pairs = []
    for s in scenarios:
        for g, h in itertools.combinations(padded, 2):
            pair = sorted([(amount.get((g, s), 0.0), g), (amount.get((h, s), 0.0), h)],
                          key=lambda item: (-item[0], item[1]))
            pairs.append((pair[0][0] + pair[1][0], s, pair))
    best = min(pairs, key=lambda p: (-p[0], p[1]))
    cover1, s1 = _first([(max(amount[g, s] for g in groups), s) for s in scenarios])
    _, g1 = _first([(amount[g, s1], g) for g in groups])
    top = tuple(GroupAmount(g, a) for a, g in best[2] if g in groups)
    return Cover(best[0], best[1], top, cover1, s1, g1)


def plain_results(plain: PlainCcp, policy: CallPolicy | None = None) -> Results:
    """Every result of :class:`risk.ccp.Ccp` under ``policy``, recomputed from scratch."""
    scenarios = list(plain.scenarios)
    members = [m for m in plain.known_members if not plain.gone(m)]
    groups = sorted({plain.group_of(m) for m in members})
    exposure: dict[tuple[str, str], float] = defaultdict(float)
    need: dict[tuple[str, str], float] = defaultdict(float)
    margin_level: dict[str, MarginLevel] = defaultdict(lambda: MarginLevel.NONE)
    for m in members:
        im, cash, _ = plain.collateral.get(m, (0.0, 0.0, 0.0))
        obligation = plain.members[m].settlement_obligation if m in plain.members else 0.0
        worst_member = 0.0
        for s in scenarios:
            loss = plain.loss(m, plain.scenarios[s])
            exposure[plain.group_of(m), s] += max(0.0, loss - im)
            need[plain.group_of(m), s] += max(0.0, loss + obligation - cash)
            worst_member = max(worst_member, loss - im)
        margin_level[plain.group_of(m)] = max(margin_level[plain.group_of(m)], plain_level(
            policy or CallPolicy(), worst_member, im))
    provided: dict[str, float] = defaultdict(float)
    qualifying: dict[str, float] = defaultdict(float)
    for r in plain.resources.liquid_resources:
        if r.type.qualifying:
            qualifying[r.type.value] += r.amount
            if r.provider is not None:
                provided[plain.group_of(r.provider)] += r.amount
    drain = {(g, s): need[g, s] + provided[g] for g in groups for s in scenarios}
    credit_exposure = {(g, s): exposure[g, s] for g in groups for s in scenarios}

    worst = [(max((credit_exposure[g, s] for s in scenarios), default=0.0), g) for g in groups]
    worst_top = sorted(worst, key=lambda item: (-item[0], item[1]))[:2] if scenarios else []
    worst_top_amounts = tuple(
        GroupAmount(g, a, _first([(credit_exposure[g, s], s) for s in scenarios])[1])
        for a, g in worst_top)
    minimum: tuple[float, str | None] = (0.0, None)
    if scenarios:
        candidates = []
        for s in scenarios:
            third, second, first = sorted([credit_exposure[g, s] for g in groups] + [0.0] * 3)[-3:]
            candidates.append((max(first, second + third), s))
        minimum = _first(candidates)
    default_fund = sum(m.default_fund for m in plain.members.values())
    credit = CreditResult(
        cover=_cover(credit_exposure, groups, scenarios), default_fund=default_fund,
        prefunded=default_fund + plain.resources.skin_in_the_game + plain.resources.other_prefunded,
        worst_group_mode=sum(a for a, _ in worst_top), worst_group_top=worst_top_amounts,
        default_fund_minimum=minimum[0], default_fund_minimum_scenario=minimum[1],
        skin_in_the_game=plain.resources.skin_in_the_game,
        other_prefunded=plain.resources.other_prefunded,
        default_fund_by_group=plain_default_fund_by_group(plain))
    liquidity = LiquidityResult(_cover(drain, groups, scenarios), dict(qualifying))
    members_by_group = {g: tuple(m for m in members if plain.group_of(m) == g) for g in groups}
    def matrix(values: dict[tuple[str, str], float]) -> np.ndarray:
        out = np.zeros((len(groups), len(scenarios)))
        for i, g in enumerate(groups):
            for j, s in enumerate(scenarios):
                out[i, j] = values[g, s]
        return out

    return Results(
        sequence=0, as_of=0.0, credit=credit, liquidity=liquidity, groups=tuple(groups),
        scenarios=tuple(scenarios), exposure_by_group_scenario=matrix(credit_exposure),
        drain_by_group_scenario=matrix(drain), members_by_group=members_by_group,
        margin_level_by_group=np.array([margin_level[g] for g in groups], dtype=np.intp))


def plain_default_fund_by_group(plain: PlainCcp) -> dict[str, float]:
    """Each group's default fund contributions, member by member."""
    out: dict[str, float] = {}
    for member in plain.members.values():
        out[member.group_id] = out.get(member.group_id, 0.0) + member.default_fund
    return out


def plain_level(policy: CallPolicy, exposure: float, initial_margin: float) -> MarginLevel:
    """The margin-call level a member is over."""
    p, level = policy, MarginLevel.NONE
    if exposure > 0 and exposure >= max(p.warning_amount,
                                        p.warning_fraction_of_im * initial_margin):
        level = MarginLevel.WARNING
    if exposure > 0 and exposure >= max(p.call_amount, p.call_fraction_of_im * initial_margin):
        level = MarginLevel.CALL
    return level


class PlainCallDesk:
    """Margin-call decisions member by member, each rule an ``if``."""

    def __init__(self, policy: CallPolicy) -> None:
        self.policy = policy
        self.last: dict[str, tuple[MarginLevel, float, float]] = {}

    def decide(self, member: str, exposure: float, initial_margin: float,
               now: float) -> MarginLevel | None:
        """The level issued to ``member`` now (warning or call), or None."""
        p = self.policy
        level = plain_level(p, exposure, initial_margin)
        last_level, last_amount, last_ts = self.last.get(member, (MarginLevel.NONE, 0.0,
                                                                  -np.inf))
        if level == MarginLevel.NONE:
            self.last[member] = (MarginLevel.NONE, last_amount, last_ts)
            return None
        if exposure < p.minimum_transfer:
            return None
        escalates = level > last_level
        grows = (level == last_level and exposure >= last_amount + p.minimum_transfer
                 and now >= last_ts + p.cooldown_s)
        if not (escalates or grows):
            return None
        self.last[member] = (level, exposure, now)
        return level


# -- the stress-testing desk's figures (risk/desk.py), from their definitions ------------


def plain_concentration(by_group_scenario: FloatArray, scenarios: Sequence[str],
                        binding_scenario: str | None, cover2: float) -> Concentration:
    """``T = sum_g E[g,s*]``, ``cover2 / T`` and ``sum_g (E[g,s*] / T)^2``, by loops."""
    if binding_scenario is None:
        return Concentration(0.0, None, None)
    matrix = by_group_scenario.tolist()
    column = [row[list(scenarios).index(binding_scenario)] for row in matrix]
    total = 0.0
    for amount in column:
        total += amount
    if total == 0.0:
        return Concentration(total, None, None)
    hhi = 0.0
    for amount in column:
        hhi += (amount / total) ** 2
    return Concentration(total, cover2 / total, hhi)


def plain_defaults_to_exhaustion(by_group_scenario: FloatArray, groups: Sequence[str],
                                 scenarios: Sequence[str],
                                 prefunded: float) -> DefaultsToExhaustion | None:
    """Per scenario, try n = 1, 2, ... largest groups until their sum is more than ``prefunded``;
    the fewest n, then the larger sum, then the scenario id sorting first."""
    matrix = by_group_scenario.tolist()
    best: tuple[int, float, str, tuple[str, ...]] | None = None
    for j, s in enumerate(scenarios):
        ranked = sorted(((matrix[g][j], groups[g]) for g in range(len(groups))),
                        key=lambda item: (-item[0], item[1]))
        for n in range(1, len(ranked) + 1):
            loss = sum(amount for amount, _ in ranked[:n])
            if loss > prefunded:
                candidate = (n, -loss, s, tuple(g for _, g in ranked[:n]))
                if best is None or candidate[:3] < best[:3]:
                    best = candidate
                break
    if best is None:
        return None
    return DefaultsToExhaustion(best[0], best[2], -best[1], best[3])


def plain_waterfall(loss_over_margin: float, defaulters_default_fund: float,
                    skin_in_the_game: float, survivors_default_fund: float,
                    other_prefunded: float) -> tuple[Layer, ...]:
    """Each layer in turn takes ``min(what is left, its size)``; ``uncovered`` the rest."""
    left = loss_over_margin
    layers = []
    for name, size in [("defaulters_default_fund", defaulters_default_fund),
                       ("skin_in_the_game", skin_in_the_game),
                       ("survivors_default_fund", survivors_default_fund),
                       ("other_prefunded", other_prefunded)]:
        used = min(left, size)
        layers.append(Layer(name, size, used))
        left = left - used
    layers.append(Layer("uncovered", None, left))
    return tuple(layers)


def _plain_defaulters_waterfall(groups: Sequence[str], loss: float,
                                default_fund_by_group: Mapping[str, float],
                                skin_in_the_game: float, other_prefunded: float,
                                total_default_fund: float) -> tuple[Layer, ...]:
    defaulters = 0.0
    for g in groups:
        defaulters += default_fund_by_group.get(g, 0.0)
    survivors = max(0.0, total_default_fund - defaulters)
    return plain_waterfall(loss, defaulters, skin_in_the_game, survivors, other_prefunded)


def plain_cover2_waterfall(results: Results, default_fund_by_group: Mapping[str, float],
                           skin_in_the_game: float, other_prefunded: float,
                           total_default_fund: float) -> tuple[Layer, ...]:
    """The waterfall of the two groups of ``results.credit.cover.top`` in its scenario."""
    top = [t.group for t in results.credit.cover.top]
    scenario = results.credit.cover.scenario
    loss = 0.0
    matrix = results.exposure_by_group_scenario.tolist()
    for i, g in enumerate(results.groups):
        for j, s in enumerate(results.scenarios):
            if g in top and s == scenario:
                loss += matrix[i][j]
    return _plain_defaulters_waterfall(top, loss, default_fund_by_group, skin_in_the_game,
                                       other_prefunded, total_default_fund)


def plain_what_if(results: Results, groups: Iterable[str],
                  default_fund_by_group: Mapping[str, float], skin_in_the_game: float,
                  other_prefunded: float, total_default_fund: float) -> WhatIf:
    """The scenario with the largest ``sum_{g in G} E[g,s]`` and its waterfall; the scenario
    with the largest ``sum_{g in G} D[g,s]``, that drain and ``Q - drain``."""
    defaulters = sorted(set(groups))
    for g in defaulters:
        if g not in results.groups:
            raise UnknownGroupError(g)

    def worst(by_group_scenario: FloatArray) -> tuple[str | None, float]:
        matrix = by_group_scenario.tolist()
        candidates = []
        for j, s in enumerate(results.scenarios):
            total = 0.0
            for g in defaulters:
                total += matrix[results.groups.index(g)][j]
            candidates.append((-total, s))
        if not candidates:
            return None, 0.0
        amount, scenario = min(candidates)
        return scenario, -amount

    credit_scenario, loss = worst(results.exposure_by_group_scenario)
    liquidity_scenario, drain = worst(results.drain_by_group_scenario)
    qualifying = 0.0
    for amount in results.liquidity.qualifying_by_type.values():
        qualifying += amount
    return WhatIf(
        groups=tuple(defaulters), credit_scenario=credit_scenario, loss_over_margin=loss,
        waterfall=_plain_defaulters_waterfall(defaulters, loss, default_fund_by_group,
                                              skin_in_the_game, other_prefunded,
                                              total_default_fund),
        liquidity_scenario=liquidity_scenario, drain=drain, qualifying=qualifying,
        liquidity_headroom=qualifying - drain)
