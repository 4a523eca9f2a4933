"""The CCP: reference data, book and scenario P&L together, published as snapshots.

Events are applied as they come, cheaply; :meth:`Ccp.publish` then brings the
derived results up to date for the members the events touched and ranks the
groups once per batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from risk.book import BlockChange, Book
from risk.calls import CallDesk, CallPolicy, MarginCall
from risk.cover import (
    Groups,
    default_fund_minimum,
    largest_rows,
    same_scenario_cover,
    worst_per_group_cover,
)
from risk.ids import Ids, grown
from risk.liquidity import provided_by_group, qualifying_by_type
from risk.model import (
    BoolArray,
    Collateral,
    FloatArray,
    IndexArray,
    Instrument,
    Member,
    Prices,
    Resources,
    Scenario,
    Trades,
)
from risk.snapshot import CreditResult, LiquidityResult, Snapshot, frozen
from risk.stress import StressPnl


@dataclass(frozen=True)
class MemberRows:
    """One group's members with their rows.

    Parameters
    ----------
    members : (k,) member ids
    exposure, need : (k, n_scenarios) credit exposure and liquidity need
    """

    members: tuple[str, ...]
    exposure: FloatArray
    need: FloatArray


class Ccp:
    """The live state of a CCP and every Cover-2 result derived from it.

    Attributes
    ----------
    exposure : (member capacity, scenario capacity) stress loss over margin
        ``max(0, loss - IM)`` with ``loss = -(vm + pnl)``
    need : (member capacity, scenario capacity) liquidity need
        ``max(0, loss + settlement_obligation - cash)``
    """

    def __init__(self, policy: CallPolicy | None = None) -> None:
        self.members = Ids()
        self.instruments = Ids()
        self.book = Book()
        self.stress = StressPnl()
        self.desk = CallDesk(policy or CallPolicy())
        self.resources = Resources()
        self.reference: dict[str, Member] = {}
        self.group_of_member: list[str] = []
        self.default_fund: FloatArray = np.zeros(0)
        self.settlement_obligation: FloatArray = np.zeros(0)
        self.exposure: FloatArray = np.zeros((0, 0))
        self.need: FloatArray = np.zeros((0, 0))
        self.worst_exposure: FloatArray = np.zeros(0)
        self.worst_scenario: IndexArray = np.zeros(0, dtype=np.intp)
        self.sequence = 0
        self._touched: BoolArray = np.zeros(0, dtype=np.bool_)
        self._dirty_scenarios: set[int] = set()
        self._groups: Groups | None = None
        self._members_of: dict[str, IndexArray] = {}
        self._members_by_group: dict[str, tuple[str, ...]] = {}
        self._exposure_by_group: FloatArray = np.zeros((0, 0))
        self._need_by_group: FloatArray = np.zeros((0, 0))
        self._groups_summed: Groups | None = None

    # -- registration ---------------------------------------------------------

    def _member_indices(self, names: list[str] | tuple[str, ...]) -> IndexArray:
        indices = self.members.indices(names)
        if len(self.members) > self.book.n_members:
            self._reserve()
        return indices

    def _instrument_indices(self, names: list[str] | tuple[str, ...]) -> IndexArray:
        indices = self.instruments.indices(names)
        if len(self.instruments) > self.book.n_instruments:
            self._reserve()
        return indices

    def _reserve(self) -> None:
        n_m, n_j = len(self.members), len(self.instruments)
        new = self.members.names[len(self.group_of_member):]
        self.group_of_member.extend(new)
        if new:
            self._groups = None
        self.book.reserve(n_m, n_j)
        self.stress.reserve(n_m, n_j)
        self.desk.reserve(n_m)
        self.default_fund = grown(self.default_fund, n_m, 0, 0.0)
        self.settlement_obligation = grown(self.settlement_obligation, n_m, 0, 0.0)
        self.exposure = grown(self.exposure, n_m, 0, 0.0)
        self.need = grown(self.need, n_m, 0, 0.0)
        self.worst_exposure = grown(self.worst_exposure, n_m, 0, 0.0)
        self.worst_scenario = grown(self.worst_scenario, n_m, 0, 0)
        self._touched = grown(self._touched, n_m, 0, False)

    def _touch(self, members: IndexArray) -> None:
        self._touched[members] = True

    def _apply_block(self, change: BlockChange) -> None:
        self.stress.apply_block(change)
        self._touch(change.members)

    # -- reference data -------------------------------------------------------

    def upsert_member(self, member: Member) -> None:
        """Add or replace a member's reference data."""
        m = int(self._member_indices([member.member])[0])
        self.reference[member.member] = member
        self._set_member(m, member.group_id, member.default_fund, member.settlement_obligation)

    def remove_member(self, member: str) -> None:
        """Drop a member's reference data; positions it still holds keep counting."""
        if self.reference.pop(member, None) is not None:
            m = self.members.get(member)
            assert m is not None
            self._set_member(m, member, 0.0, 0.0)

    def _set_member(self, m: int, group: str, default_fund: float,
                    settlement_obligation: float) -> None:
        if self.group_of_member[m] != group:
            self.group_of_member[m] = group
            self._groups = None
        self.default_fund[m] = default_fund
        self.settlement_obligation[m] = settlement_obligation
        self._touched[m] = True

    def upsert_instrument(self, instrument: Instrument) -> None:
        """Add or replace an instrument; a new multiplier applies from now on."""
        j = int(self._instrument_indices([instrument.instrument])[0])
        self._apply_block(self.book.set_multiplier(j, instrument.multiplier))

    def upsert_scenario(self, scenario: Scenario) -> None:
        """Add or replace a scenario; its P&L is recomputed at the next publish."""
        listed = self._instrument_indices(list(scenario.shocks))
        shock = np.full(len(self.instruments), scenario.default_shock)
        shock[listed] = np.fromiter(scenario.shocks.values(), dtype=np.float64,
                                    count=len(listed))
        s = self.stress.set_scenario(scenario.scenario, shock, scenario.default_shock)
        self.exposure = grown(self.exposure, s + 1, 1, 0.0)
        self.need = grown(self.need, s + 1, 1, 0.0)
        self._dirty_scenarios.add(s)

    def remove_scenario(self, scenario: str) -> None:
        """Drop a scenario."""
        if scenario not in self.stress.scenarios:
            return
        slot, last = self.stress.remove_scenario(scenario)
        self._dirty_scenarios = {slot if s == last else s
                                 for s in self._dirty_scenarios - {slot}}
        for array in (self.exposure, self.need):
            array[:, slot] = array[:, last]
        self._touch(np.arange(len(self.members)))

    def set_resources(self, resources: Resources) -> None:
        """Replace the CCP's resources."""
        providers = [r.provider for r in resources.liquid_resources if r.provider is not None]
        self._member_indices(providers)
        self.resources = resources

    # -- events ---------------------------------------------------------------

    def apply_trades(self, trades: Trades) -> None:
        """Apply a batch of already-deduplicated trades."""
        if not len(trades.member):
            return
        members = self._member_indices(list(trades.member))
        instruments = self._instrument_indices(list(trades.instrument))
        marked, pairs = self.book.apply_trades(members, instruments, trades.quantity,
                                               trades.price)
        if marked is not None:
            self._apply_block(marked)
        self.stress.apply_pairs(pairs)
        self._touch(members)

    def apply_prices(self, prices: Prices) -> BoolArray:
        """Apply a batch of mark prices; returns which were stale (changed nothing)."""
        if not len(prices.instrument):
            return np.zeros(0, dtype=np.bool_)
        instruments = self._instrument_indices(list(prices.instrument))
        change, stale = self.book.apply_prices(instruments, prices.price, prices.ts)
        self._apply_block(change)
        return stale

    def apply_collateral(self, collateral: Collateral) -> BoolArray:
        """Apply a batch of collateral states; returns which were stale (changed nothing)."""
        if not len(collateral.member):
            return np.zeros(0, dtype=np.bool_)
        members = self._member_indices(list(collateral.member))
        changed, stale = self.book.apply_collateral(members, collateral.initial_margin,
                                                    collateral.cash, collateral.ts)
        self._touch(changed)
        return stale

    def settle(self, member: str | None) -> None:
        """Variation margin was settled, by one member or (None) by every member."""
        members = (np.arange(len(self.members)) if member is None
                   else self._member_indices([member]))
        self.book.settle(members)
        self._touch(members)

    def recompute(self) -> None:
        """Recompute every scenario P&L from positions, dropping incremental rounding."""
        self._dirty_scenarios.update(range(self.stress.n_scenarios))

    # -- results --------------------------------------------------------------

    def groups(self) -> Groups:
        """The current member groups."""
        if self._groups is None:
            self._groups = Groups(self.group_of_member)
            names = self.members.names
            self._members_of = {
                name: np.array(sorted(self._groups.members[g], key=lambda m: names[m]),
                               dtype=np.intp)
                for g, name in enumerate(self._groups.names)}
            self._members_by_group = {group: tuple(names[m] for m in rows)
                                      for group, rows in self._members_of.items()}
        return self._groups

    def member_rows(self, group: str) -> MemberRows | None:
        """A group's members (in id order) with their exposure and need by scenario."""
        self.groups()
        rows = self._members_of.get(group)
        if rows is None:
            return None
        n_s = self.stress.n_scenarios
        return MemberRows(self._members_by_group[group], self.exposure[rows, :n_s].copy(),
                          self.need[rows, :n_s].copy())

    def _refresh_members(self) -> IndexArray:
        n_m, n_s = len(self.members), self.stress.n_scenarios
        if self._dirty_scenarios:
            self.stress.reprice(self.book.notional(), np.array(sorted(self._dirty_scenarios)))
            self._dirty_scenarios.clear()
            self._touched[:n_m] = True
        rows = np.flatnonzero(self._touched[:n_m])
        self._touched[:n_m] = False
        if len(rows) and n_s:
            # Every member is touched by most price batches: then whole slices, in place.
            which: slice | IndexArray = slice(0, n_m) if len(rows) == n_m else rows
            book = self.book
            gain = self.stress.pnl[which, :n_s] + book.variation_margin[which, None]
            exposure = np.add(gain, book.initial_margin[which, None])
            np.negative(exposure, out=exposure)
            np.maximum(exposure, 0.0, out=exposure)
            need = np.subtract(gain, (self.settlement_obligation[which]
                                      - book.cash[which])[:, None], out=gain)
            np.negative(need, out=need)
            np.maximum(need, 0.0, out=need)
            self.exposure[which, :n_s] = exposure
            self.need[which, :n_s] = need
            worst = exposure.argmax(axis=1)
            self.worst_scenario[which] = worst
            self.worst_exposure[which] = np.take_along_axis(exposure, worst[:, None], 1)[:, 0]
        elif len(rows):
            self.worst_exposure[rows] = 0.0
        return rows

    def _refresh_groups(self, rows: IndexArray) -> Groups:
        groups = self.groups()
        n_m, n_s = len(self.members), self.stress.n_scenarios
        shape = (len(groups), n_s)
        if self._exposure_by_group.shape == shape and self._groups_summed is groups:
            changed = np.unique(groups.of_member[rows])
        else:
            self._exposure_by_group, self._need_by_group = np.zeros(shape), np.zeros(shape)
            self._groups_summed = groups
            changed = np.arange(len(groups))
        if len(changed) and n_s:
            self._exposure_by_group[changed] = groups.sum_rows(self.exposure[:n_m, :n_s], changed)
            self._need_by_group[changed] = groups.sum_rows(self.need[:n_m, :n_s], changed)
        return groups

    def publish(self, now: float) -> tuple[Snapshot, list[MarginCall]]:
        """Bring every result up to date; ``now`` is the batch's event time."""
        groups = self._refresh_groups(self._refresh_members())
        scenarios = tuple(self.stress.scenarios.names)
        exposure = self._exposure_by_group.copy()
        provided = provided_by_group(self.resources, groups, self.members.get)
        drain = self._need_by_group + provided[:, None]
        n_m = len(self.members)
        default_fund = float(self.default_fund[:n_m].sum())
        worst_mode, worst_top = worst_per_group_cover(exposure, groups.names, scenarios)
        # The three largest per scenario serve both cover-2 and the EMIR minimum.
        three = largest_rows(exposure, 3) if scenarios else None
        minimum, minimum_scenario = default_fund_minimum(exposure, scenarios, three)
        credit = CreditResult(
            cover=same_scenario_cover(exposure, groups.names, scenarios, three),
            default_fund=default_fund,
            prefunded=default_fund + self.resources.skin_in_the_game
            + self.resources.other_prefunded,
            worst_group_mode=worst_mode, worst_group_top=worst_top,
            default_fund_minimum=minimum, default_fund_minimum_scenario=minimum_scenario)
        liquidity = LiquidityResult(
            cover=same_scenario_cover(drain, groups.names, scenarios),
            qualifying_by_type=qualifying_by_type(self.resources))
        level = self.desk.policy.level(self.worst_exposure[:n_m], self.book.initial_margin[:n_m])
        margin_level = np.zeros(len(groups.names), dtype=np.intp)
        np.maximum.at(margin_level, groups.of_member, level)
        self.sequence += 1
        snapshot = Snapshot(
            sequence=self.sequence, as_of=now, credit=credit, liquidity=liquidity,
            groups=groups.names, scenarios=scenarios,
            exposure_by_group_scenario=frozen(exposure), drain_by_group_scenario=frozen(drain),
            members_by_group=self._members_by_group, margin_level_by_group=frozen(margin_level))
        calls = self.desk.decide(
            self.worst_exposure[:n_m], level, self.worst_scenario[:n_m], self.members.names,
            self.group_of_member, scenarios, now)
        return snapshot, calls
