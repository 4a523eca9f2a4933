"""The CCP: reference data, book and scenario P&L together, and every result from them.

Events are applied as they come, cheaply; :meth:`Ccp.refresh` then brings the
derived figures up to date for the members the events touched, and
:meth:`Ccp.results` ranks the groups once per batch. Which members this CCP
holds, when several share the work, is :mod:`risk.holdings`' business.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from risk.book import BlockChange, Book
from risk.calls import CallDesk, CallPolicy, MarginCall
from risk.cover import (
    default_fund_minimum,
    largest_rows,
    same_scenario_cover,
    worst_per_group_cover,
)
from risk.desk import default_fund_by_group
from risk.holdings import Holdings
from risk.ids import Ids, grown
from risk.liquidity import provided_by_group, qualifying_by_type
from risk.merge import GroupTotals, MemberFigures, merge
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
from risk.results import CreditResult, LiquidityResult, Results, frozen
from risk.settlement import PRICE_MARK, TRADE_MARK, Outcome, Settlements
from risk.stress import StressPnl

# A recompute from positions reprices at most this many scenarios per refresh, so that
# no refresh stops the worker for all of them at once (1,000 scenarios take about 150 ms).
RECOMPUTE_SLICE = 50
# A settlement redoes the settled-side contracts of at most this many members at a time
# (:meth:`Ccp.place`): every member's, for a settlement of everyone, takes about 100 ms at
# the large scale.
PLACE_SLICE = 30


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
    holdings : the partitions owned, the members held and their sums per group
    """

    def __init__(self, policy: CallPolicy | None = None,
                 home_of: Callable[[str], int] | None = None) -> None:
        self.members = Ids()
        self.instruments = Ids()
        self.book = Book()
        self.settlements = Settlements()
        self.stress = StressPnl()
        self.desk = CallDesk(policy or CallPolicy())
        self.resources = Resources()
        self.reference: dict[str, Member] = {}
        self.group_of_member: list[str] = []
        self.holdings = Holdings(self.members, self.group_of_member, home_of)
        self.default_fund: FloatArray = np.zeros(0)
        self.settlement_obligation: FloatArray = np.zeros(0)
        self.exposure: FloatArray = np.zeros((0, 0))
        self.need: FloatArray = np.zeros((0, 0))
        self.worst_exposure: FloatArray = np.zeros(0)
        self.worst_scenario: IndexArray = np.zeros(0, dtype=np.intp)
        self.sequence = 0
        self._touched: BoolArray = np.zeros(0, dtype=np.bool_)
        # Members whose reference data was removed, forgotten once they are gone
        # (:meth:`_forget_gone`); the event time of a forgotten member's last collateral, by
        # id (its settled-through time is in ``settlements.left``).
        self._removed: BoolArray = np.zeros(0, dtype=np.bool_)
        self.forgotten: dict[str, float] = {}
        self._dirty_scenarios: set[int] = set()
        self._recompute: list[int] = []
        # Settlements applied whose members' settled-side contracts are still to be redone:
        # (settled-through time, members), oldest first.
        self._placing: list[tuple[float, IndexArray]] = []

    @property
    def scenarios(self) -> tuple[str, ...]:
        """Scenario ids, in the order of the columns of every matrix."""
        return tuple(self.stress.scenarios.names)

    def use_policy(self, policy: CallPolicy) -> None:
        """Decide margin calls under ``policy`` from now on."""
        self.desk.policy = policy

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
        self.group_of_member.extend(self.members.names[first:])
        self.holdings.add(first)
        self.book.reserve(n_m, n_j)
        self.settlements.reserve(n_m, n_j)
        self.stress.reserve(n_m, n_j)
        self.desk.reserve(n_m)
        self.default_fund = grown(self.default_fund, n_m, 0, 0.0)
        self.settlement_obligation = grown(self.settlement_obligation, n_m, 0, 0.0)
        self.exposure = grown(self.exposure, n_m, 0, 0.0)
        self.need = grown(self.need, n_m, 0, 0.0)
        self.worst_exposure = grown(self.worst_exposure, n_m, 0, 0.0)
        self.worst_scenario = grown(self.worst_scenario, n_m, 0, 0)
        self._touched = grown(self._touched, n_m, 0, False)
        self._removed = grown(self._removed, n_m, 0, False)
        for m in range(first, n_m):
            name = self.members.names[m]
            if name in self.forgotten:  # a forgotten member comes back, its data still removed
                self.book.collateral_ts[m] = self.forgotten.pop(name)
                self.settlements.through[m] = max(self.settlements.through[m],
                                                  self.settlements.left.pop(name, -np.inf))
                self._removed[m] = self._touched[m] = True

    def _touch(self, members: IndexArray) -> None:
        self._touched[members] = True

    def own(self, partitions: Iterable[int],
            home_of: Callable[[str], int] | None = None) -> IndexArray:
        """Hold only the members whose home is in ``partitions``; forget every other member.

        ``home_of`` (given once, before members' homes matter) maps a member to its
        home partition. Returns the members let go: their positions, collateral,
        P&L and call history are gone, their reference data stays.
        """
        self.place()
        released, held = self.holdings.own(partitions, home_of)
        self.book.forget(released)
        self.settlements.trades.forget(released)
        self.settlements.last_trade[released] = -np.inf
        self.stress.pnl[released] = 0.0
        self.desk.forget(released)
        for array in (self.exposure, self.need, self.worst_exposure, self.worst_scenario):
            array[released] = 0
        self._touch(held)
        return released

    def _apply_block(self, change: BlockChange) -> None:
        self.stress.apply_block(change)
        self._touch(change.members)

    # -- reference data -------------------------------------------------------

    def upsert_member(self, member: Member) -> None:
        """Add or replace a member's reference data."""
        m = int(self._member_indices([member.member])[0])
        self.reference[member.member] = member
        self._removed[m] = False
        self._set_member(m, member.group_id, member.default_fund, member.settlement_obligation)

    def remove_member(self, member: str) -> None:
        """Drop a member's reference data; positions it still holds keep counting, and once
        it is gone it is forgotten (:meth:`_forget_gone`)."""
        if self.reference.pop(member, None) is not None:
            m = int(self._member_indices([member])[0])
            self._set_member(m, member, 0.0, 0.0)
            self._removed[m] = True

    def _set_member(self, m: int, group: str, default_fund: float,
                    settlement_obligation: float) -> None:
        if self.group_of_member[m] != group:
            self.group_of_member[m] = group
            self.holdings.regroup()
        self.default_fund[m] = default_fund
        self.settlement_obligation[m] = settlement_obligation
        self._touched[m] = True

    def upsert_instrument(self, instrument: Instrument) -> None:
        """Add or replace an instrument; a new multiplier values the whole position, and the
        variation margin since the last settlement with it."""
        j = int(self._instrument_indices([instrument.instrument])[0])
        self._apply_block(self.book.set_multiplier(j, instrument.multiplier))

    def upsert_scenario(self, scenario: Scenario) -> None:
        """Add or replace a scenario; its P&L is recomputed at the next publish (not when
        the same scenario is sent again)."""
        listed = self._instrument_indices(list(scenario.shocks))
        shock = np.full(len(self.instruments), scenario.default_shock)
        shock[listed] = np.fromiter(scenario.shocks.values(), dtype=np.float64,
                                    count=len(listed))
        if self.stress.holds(scenario.scenario, shock, scenario.default_shock):
            return
        s = self.stress.set_scenario(scenario.scenario, shock, scenario.default_shock)
        self.exposure = grown(self.exposure, s + 1, 1, 0.0)
        self.need = grown(self.need, s + 1, 1, 0.0)
        self._dirty_scenarios.add(s)
        self.holdings.rescenario()  # every view takes the new scenario ids

    def remove_scenario(self, scenario: str) -> None:
        """Drop a scenario."""
        if scenario not in self.stress.scenarios:
            return
        slot, last = self.stress.remove_scenario(scenario)
        self._dirty_scenarios = {slot if s == last else s
                                 for s in self._dirty_scenarios - {slot}}
        self._recompute = [slot if s == last else s for s in self._recompute if s != slot]
        for array in (self.exposure, self.need):
            array[:, slot] = array[:, last]
        self._touch(np.arange(len(self.members)))
        self.holdings.rescenario()

    def set_resources(self, resources: Resources) -> None:
        """Replace the CCP's resources."""
        providers = [r.provider for r in resources.liquid_resources if r.provider is not None]
        self._touch(self._member_indices([*self._providers(), *providers]))
        self.resources = resources

    def _providers(self) -> list[str]:
        """The members that provide a liquid resource now."""
        return [r.provider for r in self.resources.liquid_resources if r.provider is not None]

    # -- events ---------------------------------------------------------------

    def apply_trades(self, trades: Trades) -> None:
        """Apply a batch of already-deduplicated trades, each on its side of its member's
        last settlement."""
        if not len(trades.member):
            return
        members = self._member_indices(list(trades.member))
        instruments = self._instrument_indices(list(trades.instrument))
        price, ts = trades.price, trades.ts
        marked = self.book.mark_unpriced(instruments, price, ts)
        if marked is not None:
            self._apply_block(marked)
        settlements = self.settlements
        marking = np.flatnonzero(ts < settlements.history.first_price_ts[instruments])
        if len(marking):
            self._remark(settlements.record_marks(instruments[marking], TRADE_MARK, ts[marking],
                                                  price[marking]))
        np.maximum.at(settlements.last_trade, members, ts)
        settled, booked = settlements.booked(members, instruments, ts, price)
        pairs = self.book.apply_trades(members, instruments, trades.quantity, booked, settled)
        settlements.trades.record(members, instruments, ts, trades.quantity, price)
        self.stress.apply_pairs(pairs)
        self._zero_flat(pairs.members[self.book.position[pairs.members, pairs.instruments] == 0])
        self._touch(members)

    def _zero_flat(self, closing: IndexArray) -> None:
        """Of members that just closed a position, those who hold nothing now have a
        scenario P&L of exactly zero, not the rounding the increments leave (which, with no
        resources, would be a margin call for 1e-14)."""
        if len(closing):
            members = np.unique(closing)
            flat = members[~self.book.position[members, :self.book.n_instruments].any(axis=1)]
            self.stress.pnl[flat] = 0.0

    def apply_prices(self, prices: Prices) -> BoolArray:
        """Apply a batch of mark prices; returns which were stale (changed nothing now; an
        older price still places later messages around a settlement)."""
        if not len(prices.instrument):
            return np.zeros(0, dtype=np.bool_)
        instruments = self._instrument_indices(list(prices.instrument))
        change, stale = self.book.apply_prices(instruments, prices.price, prices.ts)
        self._apply_block(change)
        self._remark(self.settlements.record_marks(instruments, PRICE_MARK, prices.ts,
                                                   prices.price))
        return stale

    def _remark(self, moves: list[tuple[float, IndexArray, FloatArray]]) -> None:
        """The marks at settled-through times moved: reprice those members' settled-side
        contracts."""
        n = len(self.members)
        for t, instruments, move in moves:
            members = np.flatnonzero((self.settlements.through[:n] == t)
                                     & self.holdings.held[:n])
            if len(members):
                self.book.remark(members, instruments, move)
                self._touch(members)

    def apply_collateral(self, collateral: Collateral) -> BoolArray:
        """Apply a batch of collateral states; returns which were stale (changed nothing)."""
        if not len(collateral.member):
            return np.zeros(0, dtype=np.bool_)
        members = self._member_indices(list(collateral.member))
        changed, stale = self.book.apply_collateral(members, collateral.initial_margin,
                                                    collateral.cash, collateral.ts)
        self._touch(changed)
        return stale

    def settle(self, member: str | None, ts: float) -> Outcome:
        """Variation margin was settled through event time ``ts``, by one member or (None)
        by every member: see :mod:`risk.settlement`. A settlement older than the horizon
        that would change anything is refused (``Outcome.LATE``) and changes nothing."""
        self.place()
        members = (np.arange(len(self.members)) if member is None
                   else self._member_indices([member]))
        outcome, moved = self.settlements.settle(members, ts, member is None, self.book.marks())
        moved = moved[self.holdings.held[moved]]
        if len(moved):
            self._placing.append((ts, moved))
        return outcome

    @property
    def placing(self) -> bool:
        """Whether a settlement applied has members whose settled-side contracts are still
        to be redone (every read of figures redoes them first)."""
        return bool(self._placing)

    def place(self, at_most: int | None = None) -> None:
        """Redo the settled-side contracts of the members of the settlements applied
        (``at_most``: of that many of them, the others later). Trades and prices that
        come meanwhile are booked as for members already redone: each member's row is
        worked out again from its positions and the trade log. A settlement, a change of
        the partitions held, a refresh and a read of figures place every one left first."""
        while self._placing and at_most != 0:
            ts, members = self._placing[0]
            now = members if at_most is None else members[:at_most]
            if len(now) == len(members):
                self._placing.pop(0)
            else:
                self._placing[0] = (ts, members[len(now):])
            if at_most is not None:
                at_most -= len(now)
            settlements = self.settlements
            chosen = np.zeros(len(settlements.through), dtype=np.bool_)
            chosen[now] = True
            self.book.resettle(now, settlements.trades.after(ts, chosen),
                               settlements.marks_at[ts].price)
            self._touch(now)

    def advance(self, horizon: float) -> None:
        """Settlements older than ``horizon`` will be refused: what only they could need
        is dropped (the settlements still being placed first, should it drop what they
        read)."""
        if self._placing and horizon > min(ts for ts, _ in self._placing):
            self.place()
        self.settlements.advance(horizon)

    def recompute(self, at_once: bool = False) -> None:
        """Recompute every scenario P&L from positions, dropping incremental rounding: a
        slice of scenarios at each refresh from the next on (``at_once``: all at the
        next)."""
        if at_once:
            self._dirty_scenarios.update(range(self.stress.n_scenarios))
        else:
            self._recompute = list(range(self.stress.n_scenarios))

    @property
    def recomputing(self) -> bool:
        """Whether a recompute from positions has slices left."""
        return bool(self._recompute)

    # -- results --------------------------------------------------------------

    def group_of(self, member: str) -> str:
        """A member's group id; a member never seen is its own group."""
        m = self.members.get(member)
        return member if m is None else self.group_of_member[m]

    def member_rows(self, group: str) -> MemberRows:
        """The group's members held here (in id order), with exposure and need by scenario."""
        rows = self.holdings.of_group(group)
        n_s = self.stress.n_scenarios
        names = self.members.names
        return MemberRows(tuple(names[m] for m in rows), self.exposure[rows, :n_s].copy(),
                          self.need[rows, :n_s].copy())

    def _refresh_members(self) -> IndexArray:
        n_m, n_s = len(self.members), self.stress.n_scenarios
        self._dirty_scenarios.update(self._recompute[:RECOMPUTE_SLICE])
        del self._recompute[:RECOMPUTE_SLICE]
        if self._dirty_scenarios:
            self.stress.reprice(self.book.notional(), np.array(sorted(self._dirty_scenarios)))
            self._dirty_scenarios.clear()
            self._touched[:n_m] = True
        rows = np.flatnonzero(self._touched[:n_m] & self.holdings.held[:n_m])
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

    def _forget_gone(self) -> None:
        """Forget the members touched since the last refresh that are *gone*: their
        reference data removed, flat, without collateral, settled through their last
        trade and providing no liquid resource. Their rows go to the last member, and so
        to members that come later."""
        n = len(self.members)
        candidates = np.flatnonzero(self._touched[:n] & self._removed[:n])
        if not len(candidates):
            return
        providers = [p for p in map(self.members.get, self._providers()) if p is not None]
        candidates = candidates[~np.isin(candidates, providers)]
        book, settlements = self.book, self.settlements
        gone = candidates[~book.position[candidates, :book.n_instruments].any(axis=1)
                          & (book.initial_margin[candidates] == 0) & (book.cash[candidates] == 0)
                          & (settlements.last_trade[candidates]
                             <= settlements.through[candidates])]
        for m in sorted(gone.tolist(), reverse=True):  # the last first: slots stay valid
            self._drop(m)

    def _drop(self, m: int) -> None:
        name = self.members.names[m]
        book, settlements, desk, holdings = self.book, self.settlements, self.desk, self.holdings
        self.forgotten[name] = float(book.collateral_ts[m])
        if settlements.through[m] > settlements.everyone:
            settlements.left[name] = float(settlements.through[m])
        slot, last = self.members.swap_remove(name)
        for array, fresh in (
                (book.position, 0.0), (book.cost, 0.0), (book.settled_quantity, 0.0),
                (book.variation_margin, 0.0), (book.initial_margin, 0.0), (book.cash, 0.0),
                (book.collateral_ts, -np.inf), (self.stress.pnl, 0.0),
                (desk.level, 0), (desk.amount, 0.0), (desk.ts, -np.inf),
                (holdings.home, 0), (holdings.held, False),
                (settlements.through, settlements.everyone), (settlements.last_trade, -np.inf),
                (self.default_fund, 0.0), (self.settlement_obligation, 0.0),
                (self.exposure, 0.0), (self.need, 0.0), (self.worst_exposure, 0.0),
                (self.worst_scenario, 0), (self._touched, False), (self._removed, False)):
            array[slot] = array[last]
            array[last] = fresh
        self.group_of_member[slot] = self.group_of_member[last]
        self.group_of_member.pop()
        book.n_members = self.stress.n_members = last
        settlements.trades.renumber(slot, last)
        self._touched[slot] = slot < last
        holdings.regroup()

    def refresh(self, now: float) -> tuple[list[int], list[MarginCall]]:
        """Bring every held figure up to date; ``now`` is the batch's event time.

        Members of partitions being rebuilt are decided as under every level.
        Returns the owned partitions whose view changed, and the margin calls to issue.
        """
        self.place()
        self._forget_gone()
        rows = self._refresh_members()
        n_m, n_s = len(self.members), self.stress.n_scenarios
        level = self.desk.policy.level(self.worst_exposure[:n_m], self.book.initial_margin[:n_m])
        partitions = self.holdings.refresh(rows, self.exposure[:n_m, :n_s], self.need[:n_m, :n_s],
                                           level, self.scenarios)
        calls = self.desk.decide(
            self.worst_exposure[:n_m], self.holdings.callable(level), self.worst_scenario[:n_m],
            self.members.names, self.group_of_member, self.scenarios, now)
        return partitions, calls

    def figures(self, partition: int | None = None) -> MemberFigures:
        """The own figures of the members held of ``partition`` (every one held: None), for
        the reverse stress test. Copies: they do not change with the CCP."""
        self.place()
        rows = (np.flatnonzero(self.holdings.held[:len(self.members)]) if partition is None
                else self.holdings.of_partition(partition))
        names = self.members.names
        return MemberFigures(
            tuple(names[m] for m in rows.tolist()), self.scenarios,
            self.book.variation_margin[rows], self.book.initial_margin[rows],
            self.book.cash[rows], self.settlement_obligation[rows],
            self.stress.pnl[rows, :self.stress.n_scenarios])

    def results(self, totals: GroupTotals, now: float) -> Results:
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
            default_fund_minimum=minimum, default_fund_minimum_scenario=minimum_scenario,
            skin_in_the_game=self.resources.skin_in_the_game,
            other_prefunded=self.resources.other_prefunded,
            default_fund_by_group=default_fund_by_group(self.reference.values()))
        liquidity = LiquidityResult(
            cover=same_scenario_cover(drain, groups, scenarios),
            qualifying_by_type=qualifying_by_type(self.resources))
        self.sequence += 1
        return Results(
            sequence=self.sequence, as_of=now, credit=credit, liquidity=liquidity,
            groups=groups, scenarios=scenarios,
            exposure_by_group_scenario=frozen(exposure), drain_by_group_scenario=frozen(drain),
            members_by_group=totals.members_by_group,
            margin_level_by_group=frozen(totals.margin_level.copy()))

    def publish(self, now: float) -> tuple[Results, list[MarginCall]]:
        """Every result of the members held here; ``now`` is the batch's event time."""
        _, calls = self.refresh(now)
        return self.results(merge(self.holdings.views.values(), self.scenarios), now), calls
