"""Reference data and event batches: the small frozen types the core is fed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.intp]
BoolArray = NDArray[np.bool_]


class LiquidityType(StrEnum):
    """Kinds of liquid resource (PFMI 7, RTS 153/2013 Art. 33)."""

    CENTRAL_BANK_CASH = "central_bank_cash"
    COMMERCIAL_BANK_CASH = "commercial_bank_cash"
    COMMITTED_CREDIT_LINE = "committed_credit_line"
    COMMITTED_REPO = "committed_repo"
    COMMITTED_FX_SWAP = "committed_fx_swap"
    PREARRANGED_FUNDING_COLLATERAL = "prearranged_funding_collateral"
    UNCOMMITTED_LINE = "uncommitted_line"
    OTHER = "other"

    @property
    def qualifying(self) -> bool:
        """Whether resources of this kind count as qualifying liquid resources."""
        return self not in (LiquidityType.UNCOMMITTED_LINE, LiquidityType.OTHER)


@dataclass(frozen=True)
class Member:
    """A clearing member's reference data; no group means it is its own group."""

    member: str
    group: str | None = None
    default_fund: float = 0.0
    settlement_obligation: float = 0.0
    name: str | None = None

    @property
    def group_id(self) -> str:
        """The member group it defaults with."""
        return self.group or self.member


@dataclass(frozen=True)
class Instrument:
    """An instrument's reference data."""

    instrument: str
    multiplier: float = 1.0


@dataclass(frozen=True)
class Scenario:
    """Relative price shocks per instrument; unlisted instruments get ``default_shock``."""

    scenario: str
    shocks: Mapping[str, float]
    default_shock: float = 0.0
    description: str = ""


@dataclass(frozen=True)
class LiquidResource:
    """One liquid resource; a ``provider`` member's resource is lost if its group defaults."""

    name: str
    type: LiquidityType
    amount: float
    provider: str | None = None


@dataclass(frozen=True)
class Resources:
    """The CCP's own prefunded resources and its liquid resources."""

    skin_in_the_game: float = 0.0
    other_prefunded: float = 0.0
    liquid_resources: tuple[LiquidResource, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Trades:
    """A batch of trades in arrival order.

    Parameters
    ----------
    member, instrument : (n,) ids
    quantity : (n,) signed contracts, positive buys
    price : (n,) trade prices
    ts : (n,) event time
    """

    member: Sequence[str]
    instrument: Sequence[str]
    quantity: FloatArray
    price: FloatArray
    ts: FloatArray


@dataclass(frozen=True)
class Prices:
    """A batch of mark prices in arrival order; ``ts`` is event time (epoch seconds)."""

    instrument: Sequence[str]
    price: FloatArray
    ts: FloatArray


@dataclass(frozen=True)
class Collateral:
    """A batch of members' latest collateral states (not deltas) in arrival order.

    Parameters
    ----------
    member : (n,) ids
    initial_margin : (n,) post-haircut value of all collateral posted
    cash : (n,) the cash part of it
    ts : (n,) event time
    """

    member: Sequence[str]
    initial_margin: FloatArray
    cash: FloatArray
    ts: FloatArray
