"""The CCP: reference data, book and scenario P&L together, published as snapshots.

Events are applied as they come, cheaply; :meth:`Ccp.refresh` then brings the
derived results up to date for the members the events touched, and
:meth:`Ccp.snapshot` ranks the groups once per batch.

A CCP may hold only some of the members: those whose home partition (the input
partition their messages are keyed to) it owns. It sums them per partition and
group into :class:`risk.merge.PartitionView` objects, and the views of every
partition, from wherever they are held, merge into the exact group totals.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

import numpy as np

from risk.book import BlockChange, Book
from risk.calls import NONE, CallDesk, CallPolicy, MarginCall
from risk.cover import (
    Groups,
    default_fund_minimum,
    largest_rows,
    same_scenario_cover,
    worst_per_group_cover,
)
from risk.ids import Ids, grown
from risk.liquidity import provided_by_group, qualifying_by_type
from risk.merge import GroupTotals, PartitionView, Settled, merge
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

# The (home partition, group) bucket of a member this CCP does not hold.
NOT_HELD = -1


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
    home : (member capacity,) each member's home partition, ``home_of(member)``
    owned : the home partitions whose members this CCP holds
    rebuilding : owned partitions whose members are still being rebuilt (by replay):
        they are not called, and settlements leave them alone
    views : every owned partition's members summed per group
    """

    def __init__(self, policy: CallPolicy | None = None,
                 home_of: Callable[[str], int] | None = None) -> None:
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
        self.home_of = home_of
        self.home: IndexArray = np.zeros(0, dtype=np.intp)
        self.owned: frozenset[int] = frozenset({0})
        self.rebuilding: frozenset[int] = frozenset()
        self.views: dict[int, PartitionView] = {}
        self._held: BoolArray = np.zeros(0, dtype=np.bool_)
        self._touched: BoolArray = np.zeros(0, dtype=np.bool_)
        self._dirty_scenarios: set[int] = set()
        self._buckets: Groups[tuple[int, str]] | None = None
        self._bucket_partition: IndexArray = np.zeros(0, dtype=np.intp)
        self._bucket_members: tuple[tuple[str, ...], ...] = ()
        self._members_of: dict[str, IndexArray] = {}
        self._exposure_by_bucket: FloatArray = np.zeros((0, 0))
        self._need_by_bucket: FloatArray = np.zeros((0, 0))
        self._buckets_summed: Groups[tuple[int, str]] | None = None

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
        first = len(self.group_of_member)
        new = self.members.names[first:]
        self.group_of_member.extend(new)
        self.home = grown(self.home, n_m, 0, 0)
        self._held = grown(self._held, n_m, 0, False)
        if new:
            self._buckets = None
            if self.home_of is not None:
                self.home[first:n_m] = list(map(self.home_of, new))
            self._held[first:n_m] = np.isin(self.home[first:n_m], list(self.owned))
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

    def own(self, partitions: Iterable[int],
            home_of: Callable[[str], int] | None = None) -> IndexArray:
        """Hold only the members whose home is in ``partitions``; forget every other member.

        ``home_of`` (given once, before members' homes matter) maps a member to its
        home partition. Returns the members let go: their positions, collateral,
        P&L and call history are gone, their reference data stays.
        """
        n = len(self.members)
        if home_of is not None:
            self.home_of = home_of
            self.home[:n] = list(map(home_of, self.members.names))
        self.owned = frozenset(partitions)
        self.rebuilding &= self.owned
        held = np.isin(self.home[:n], list(self.owned))
        released = np.flatnonzero(self._held[:n] & ~held)
        self._held[:n] = held
        self.book.forget(released)
        self.stress.pnl[released] = 0.0
        self.desk.forget(released)
        for array in (self.exposure, self.need, self.worst_exposure, self.worst_scenario):
            array[released] = 0
        self._buckets = None
        self._touch(np.flatnonzero(held))
        return released

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
            self._buckets = None
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
        self._buckets_summed = None  # every view takes the new scenario ids

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
        self._buckets_summed = None

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

    def settle(self, member: str | None, partitions: Collection[int] | None = None) -> None:
        """Variation margin was settled, by one member or (None) by every member.

        Members of partitions being rebuilt are left out, and so are members outside
        ``partitions`` if given.
        """
        members = (np.arange(len(self.members)) if member is None
                   else self._member_indices([member]))
        if self.rebuilding:
            members = members[~np.isin(self.home[members], list(self.rebuilding))]
        if partitions is not None:
            members = members[np.isin(self.home[members], list(partitions))]
        self.book.settle(members)
        self._touch(members)

    def settled(self, partition: int) -> Settled:
        """What settlements added to the cost of the positions of ``partition``'s members."""
        n = len(self.members)
        members = np.flatnonzero(self._held[:n] & (self.home[:n] == partition))
        rows, columns = np.nonzero(self.book.settled[members, :len(self.instruments)])
        names, instruments = self.members.names, self.instruments.names
        return Settled(tuple(names[m] for m in members[rows].tolist()),
                       tuple(instruments[j] for j in columns.tolist()),
                       self.book.settled[members[rows], columns])

    def adopt(self, settled: Settled) -> None:
        """Add what a partition's previous owner's settlements added to its positions' cost."""
        members = self._member_indices(settled.members)
        self.book.add_settled(members, self._instrument_indices(settled.instruments),
                              settled.amount)
        self._touch(members)

    def recompute(self) -> None:
        """Recompute every scenario P&L from positions, dropping incremental rounding."""
        self._dirty_scenarios.update(range(self.stress.n_scenarios))

    # -- results --------------------------------------------------------------

    def group_of(self, member: str) -> str:
        """A known member's group id."""
        m = self.members.get(member)
        assert m is not None, member
        return self.group_of_member[m]

    def buckets(self) -> Groups[tuple[int, str]]:
        """Members by (home partition, group); members not held are in partition NOT_HELD."""
        if self._buckets is None:
            n = len(self.members)
            home = np.where(self._held[:n], self.home[:n], NOT_HELD).tolist()
            self._buckets = Groups(list(zip(home, self.group_of_member, strict=True)))
            names = self.members.names
            self._bucket_partition = np.array([p for p, _ in self._buckets.names], dtype=np.intp)
            self._bucket_members = tuple(tuple(sorted(names[m] for m in rows))
                                         for rows in self._buckets.members)
            held: dict[str, list[IndexArray]] = {}
            for (p, group), rows in zip(self._buckets.names, self._buckets.members, strict=True):
                if p != NOT_HELD:
                    held.setdefault(group, []).append(rows)
            self._members_of = {group: np.array(sorted(np.concatenate(rows).tolist(),
                                                       key=names.__getitem__), dtype=np.intp)
                                for group, rows in held.items()}
        return self._buckets

    def member_rows(self, group: str) -> MemberRows:
        """The group's members held here (in id order), with exposure and need by scenario."""
        self.buckets()
        rows = self._members_of.get(group, np.zeros(0, dtype=np.intp))
        n_s = self.stress.n_scenarios
        names = self.members.names
        return MemberRows(tuple(names[m] for m in rows), self.exposure[rows, :n_s].copy(),
                          self.need[rows, :n_s].copy())

    def _refresh_members(self) -> IndexArray:
        n_m, n_s = len(self.members), self.stress.n_scenarios
        if self._dirty_scenarios:
            self.stress.reprice(self.book.notional(), np.array(sorted(self._dirty_scenarios)))
            self._dirty_scenarios.clear()
            self._touched[:n_m] = True
        rows = np.flatnonzero(self._touched[:n_m] & self._held[:n_m])
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

    def _refresh_buckets(self, rows: IndexArray) -> set[int]:
        """Sum the touched buckets again: the partitions whose view changed."""
        buckets = self.buckets()
        n_m, n_s = len(self.members), self.stress.n_scenarios
        shape = (len(buckets), n_s)
        if self._exposure_by_bucket.shape == shape and self._buckets_summed is buckets:
            changed = np.unique(buckets.of_member[rows])
            changed = changed[self._bucket_partition[changed] != NOT_HELD]
            partitions = set(self._bucket_partition[changed].tolist())
        else:
            self._exposure_by_bucket, self._need_by_bucket = np.zeros(shape), np.zeros(shape)
            self._buckets_summed = buckets
            changed = np.flatnonzero(self._bucket_partition != NOT_HELD)
            partitions = set(self.owned)
            self.views = {}
        if len(changed) and n_s:
            self._exposure_by_bucket[changed] = buckets.sum_rows(self.exposure[:n_m, :n_s],
                                                                 changed)
            self._need_by_bucket[changed] = buckets.sum_rows(self.need[:n_m, :n_s], changed)
        return partitions

    def _view(self, partition: int, margin_level: IndexArray) -> PartitionView:
        assert self._buckets is not None
        first, end = np.searchsorted(self._bucket_partition, [partition, partition + 1])
        rows = slice(int(first), int(end))
        return PartitionView(
            partition=partition, offsets=(), scenarios=tuple(self.stress.scenarios.names),
            groups=tuple(group for _, group in self._buckets.names[rows]),
            members=self._bucket_members[rows],
            exposure=frozen(self._exposure_by_bucket[rows].copy()),
            need=frozen(self._need_by_bucket[rows].copy()),
            margin_level=frozen(margin_level[rows].copy()))

    def refresh(self, now: float) -> tuple[list[int], list[MarginCall]]:
        """Bring every held result up to date; ``now`` is the batch's event time.

        Members of partitions being rebuilt are decided as under every level.
        Returns the owned partitions whose view changed, and the margin calls to issue.
        """
        partitions = sorted(self._refresh_buckets(self._refresh_members()))
        n_m = len(self.members)
        level = self.desk.policy.level(self.worst_exposure[:n_m], self.book.initial_margin[:n_m])
        if partitions:
            buckets = self.buckets()
            by_bucket = np.zeros(len(buckets), dtype=np.intp)
            np.maximum.at(by_bucket, buckets.of_member, level)
            self.views.update({p: self._view(p, by_bucket) for p in partitions})
        if self.rebuilding:
            level = np.where(np.isin(self.home[:n_m], list(self.rebuilding)), NONE, level)
        calls = self.desk.decide(
            self.worst_exposure[:n_m], level, self.worst_scenario[:n_m], self.members.names,
            self.group_of_member, tuple(self.stress.scenarios.names), now)
        return partitions, calls

    def snapshot(self, totals: GroupTotals, now: float) -> Snapshot:
        """Every result from the group totals and this CCP's reference data."""
        groups, scenarios = totals.groups, totals.scenarios
        exposure = totals.exposure.copy()
        drain = totals.need + provided_by_group(self.resources, groups, self.group_of)[:, None]
        default_fund = float(self.default_fund[:len(self.members)].sum())
        worst_mode, worst_top = worst_per_group_cover(exposure, groups, scenarios)
        # The three largest per scenario serve both cover-2 and the EMIR minimum.
        three = largest_rows(exposure, 3) if scenarios else None
        minimum, minimum_scenario = default_fund_minimum(exposure, scenarios, three)
        credit = CreditResult(
            cover=same_scenario_cover(exposure, groups, scenarios, three),
            default_fund=default_fund,
            prefunded=default_fund + self.resources.skin_in_the_game
            + self.resources.other_prefunded,
            worst_group_mode=worst_mode, worst_group_top=worst_top,
            default_fund_minimum=minimum, default_fund_minimum_scenario=minimum_scenario)
        liquidity = LiquidityResult(
            cover=same_scenario_cover(drain, groups, scenarios),
            qualifying_by_type=qualifying_by_type(self.resources))
        self.sequence += 1
        return Snapshot(
            sequence=self.sequence, as_of=now, credit=credit, liquidity=liquidity,
            groups=groups, scenarios=scenarios,
            exposure_by_group_scenario=frozen(exposure), drain_by_group_scenario=frozen(drain),
            members_by_group=totals.members_by_group,
            margin_level_by_group=frozen(totals.margin_level.copy()))

    def publish(self, now: float) -> tuple[Snapshot, list[MarginCall]]:
        """Every result of the members held here; ``now`` is the batch's event time."""
        _, calls = self.refresh(now)
        totals = merge(self.views.values(), tuple(self.stress.scenarios.names))
        return self.snapshot(totals, now), calls
