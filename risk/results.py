"""The immutable results of a batch: what the service publishes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from risk.cover import Cover, GroupAmount
from risk.model import FloatArray, IndexArray

Array = TypeVar("Array", FloatArray, IndexArray)


@dataclass(frozen=True)
class CreditResult:
    """Cover-2 credit exposure against prefunded default resources.

    ``worst_group_mode`` and ``worst_group_top`` are the labelled conservative
    mode (each group at its own worst scenario), never the headline figure.
    ``prefunded`` is ``default_fund + skin_in_the_game + other_prefunded``; the default
    fund's contributions by group (``default_fund_by_group``) say who pays first when
    groups default (:mod:`risk.desk`).
    """

    cover: Cover
    default_fund: float
    prefunded: float
    worst_group_mode: float
    worst_group_top: tuple[GroupAmount, ...]
    default_fund_minimum: float
    default_fund_minimum_scenario: str | None
    skin_in_the_game: float = 0.0
    other_prefunded: float = 0.0
    default_fund_by_group: Mapping[str, float] = field(default_factory=dict)

    @property
    def cover2(self) -> float:
        """Cover-2 credit exposure, same scenario."""
        return self.cover.amount

    @property
    def headroom(self) -> float:
        """Prefunded resources minus cover-2."""
        return self.prefunded - self.cover.amount

    @property
    def coverage_ratio(self) -> float:
        """Prefunded resources over cover-2; infinite when nothing is exposed."""
        return ratio(self.prefunded, self.cover.amount)


@dataclass(frozen=True)
class LiquidityResult:
    """Cover-2 liquidity drain against qualifying liquid resources."""

    cover: Cover
    qualifying_by_type: Mapping[str, float]

    @property
    def qualifying(self) -> float:
        """Qualifying liquid resources."""
        return float(sum(self.qualifying_by_type.values()))

    @property
    def cover2(self) -> float:
        """Cover-2 liquidity drain, same scenario."""
        return self.cover.amount

    @property
    def headroom(self) -> float:
        """Qualifying liquid resources minus the cover-2 drain."""
        return self.qualifying - self.cover.amount

    @property
    def coverage_ratio(self) -> float:
        """Qualifying liquid resources over the cover-2 drain."""
        return ratio(self.qualifying, self.cover.amount)


def ratio(resources: float, requirement: float) -> float:
    """``resources / requirement``; infinite for a zero requirement."""
    return resources / requirement if requirement > 0 else float("inf")


def frozen(array: Array) -> Array:
    """``array`` marked read-only, so results cannot be changed through it."""
    array.flags.writeable = False
    return array


@dataclass(frozen=True)
class Results:
    """Every result after a batch.

    Attributes
    ----------
    groups : group ids, sorted; rows of the matrices
    scenarios : scenario ids; columns of the matrices
    exposure_by_group_scenario : (n_groups, n_scenarios) credit exposure, read-only
    drain_by_group_scenario : (n_groups, n_scenarios) liquidity drain, read-only
    members_by_group : each group's member ids
    margin_level_by_group : (n_groups,) the highest margin-call level any of the group's
        members is over now, a :class:`risk.calls.MarginLevel`
    """

    sequence: int
    as_of: float
    credit: CreditResult
    liquidity: LiquidityResult
    groups: tuple[str, ...]
    scenarios: tuple[str, ...]
    exposure_by_group_scenario: FloatArray
    drain_by_group_scenario: FloatArray
    members_by_group: Mapping[str, tuple[str, ...]]
    margin_level_by_group: IndexArray

    @property
    def worst_exposure_by_group(self) -> FloatArray:
        """Each group's worst-scenario exposure: (n_groups,)."""
        return worst(self.exposure_by_group_scenario)

    @property
    def worst_drain_by_group(self) -> FloatArray:
        """Each group's worst-scenario liquidity drain: (n_groups,)."""
        return worst(self.drain_by_group_scenario)


def worst(by_group_scenario: FloatArray) -> FloatArray:
    """Row maxima, zero when there are no scenarios: (n_groups,)."""
    if by_group_scenario.shape[1] == 0:
        return np.zeros(by_group_scenario.shape[0])
    return np.asarray(by_group_scenario.max(axis=1), dtype=np.float64)
