"""Bytes to validated messages, or rejections with their reason: the only parser.

One msgspec struct per input topic of the contract. Numbers must be finite
(msgspec refuses NaN and out-of-range literals), prices positive, amounts not
negative; unknown extra fields are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
import numpy as np

from risk.model import Instrument, LiquidityType, LiquidResource, Member, Resources, Scenario
from streams import topics as t
from streams.documents import iso

Id = Annotated[str, msgspec.Meta(min_length=1)]
Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]


class TradeMessage(msgspec.Struct, frozen=True, gc=False):
    trade_id: Id
    member: Id
    instrument: Id
    quantity: float
    price: Positive
    ts: float | None = None


class PriceMessage(msgspec.Struct, frozen=True, gc=False):
    instrument: Id
    price: Positive
    ts: float | None = None


class CollateralMessage(msgspec.Struct, frozen=True, gc=False):
    member: Id
    initial_margin: NonNegative
    cash: NonNegative
    ts: float | None = None


class SettlementMessage(msgspec.Struct, frozen=True):
    member: Id
    ts: float | None = None


class MemberMessage(msgspec.Struct, frozen=True):
    member: Id
    default_fund: NonNegative
    group: Id | None = None
    settlement_obligation: NonNegative = 0.0
    name: str | None = None

    def to_model(self) -> Member:
        return Member(self.member, self.group, self.default_fund, self.settlement_obligation,
                      self.name)


class InstrumentMessage(msgspec.Struct, frozen=True):
    instrument: Id
    multiplier: Positive = 1.0

    def to_model(self) -> Instrument:
        return Instrument(self.instrument, self.multiplier)


class ScenarioMessage(msgspec.Struct, frozen=True):
    scenario: Id
    shocks: dict[Id, float]
    description: str = ""
    default_shock: float = 0.0

    def to_model(self) -> Scenario:
        return Scenario(self.scenario, self.shocks, self.default_shock, self.description)


class LiquidResourceMessage(msgspec.Struct, frozen=True):
    name: str
    type: LiquidityType
    amount: NonNegative
    provider: Id | None = None


class ResourcesMessage(msgspec.Struct, frozen=True):
    skin_in_the_game: NonNegative
    liquid_resources: list[LiquidResourceMessage]
    other_prefunded: NonNegative = 0.0

    def to_model(self) -> Resources:
        return Resources(self.skin_in_the_game, self.other_prefunded, tuple(
            LiquidResource(r.name, r.type, r.amount, r.provider) for r in self.liquid_resources))


MESSAGE_TYPES: dict[str, type[msgspec.Struct]] = {
    t.TRADES: TradeMessage,
    t.PRICES: PriceMessage,
    t.COLLATERAL: CollateralMessage,
    t.SETTLEMENTS: SettlementMessage,
    t.MEMBERS: MemberMessage,
    t.INSTRUMENTS: InstrumentMessage,
    t.SCENARIOS: ScenarioMessage,
    t.RESOURCES: ResourcesMessage,
}
# A null value (tombstone) removes the member or scenario named by the key.
TOMBSTONE_TOPICS = frozenset({t.MEMBERS, t.SCENARIOS})


@dataclass(frozen=True)
class Plausibility:
    """What a well-formed message must also be to be believed: an event time not far ahead
    of the clock (a timestamp in milliseconds is a well-formed number), and scenario
    shocks within bounds (-10 is a well-formed -1000%)."""

    max_future_skew_s: float = 300.0
    shock_min: float = -1.0
    shock_max: float = 10.0
    dedupe_window_s: float = 7 * 86_400.0
    settlement_window_s: float = 3 * 86_400.0

    def ahead(self, ts: np.ndarray, now: float) -> np.ndarray:
        """Which event times ``ts`` (seconds) are too far ahead of ``now``: (n,) bool."""
        return ts > now + self.max_future_skew_s

    def future_reason(self, ts: float, now: float) -> str:
        """Why an event time is refused."""
        return (f"event time ts={ts!r} is {ts - now:,.0f} s ahead of this worker's clock, more "
                f"than COVER2_MAX_FUTURE_SKEW ({self.max_future_skew_s:g} s): ts is in epoch "
                "seconds, not milliseconds")

    def expired_reason(self, trade_id: str, ts: float, clock: float) -> str:
        """Why a trade too old to be told from a re-send is refused."""
        return (f"trade {trade_id!r} has event time ts={ts!r}, {(clock - ts) / 86_400:,.2f} days "
                f"behind the newest trade of its partition: more than COVER2_DEDUPE_WINDOW "
                f"({self.dedupe_window_s / 86_400:g} days), so it cannot be told from a re-send "
                "of a trade already forgotten; send it again with its true event time, or "
                "raise the window")

    def late_settlement_reason(self, ts: float, horizon: float) -> str:
        """Why a settlement too old to be placed exactly is refused."""
        return (f"settlement with event time ts={ts!r} ({iso(ts)}) is "
                f"{(horizon - ts) / 86_400:,.2f} days older than the settlement horizon "
                f"({iso(horizon)}: the newest trade or price event time less "
                f"COVER2_SETTLEMENT_WINDOW, {self.settlement_window_s / 86_400:g} days): the "
                "trades and marks after it are no longer kept, so it cannot be placed exactly; "
                "raise the window and rebuild the state from the topics")

    def scenario_problem(self, scenario: ScenarioMessage) -> str | None:
        """Why a scenario's shocks are refused, or None."""
        shocks = {**scenario.shocks, "default_shock": scenario.default_shock}
        wild = {name: shock for name, shock in shocks.items()
                if not self.shock_min <= shock <= self.shock_max}
        if not wild:
            return None
        name, shock = min(wild.items())
        return (f"shock {shock!r} for {name} is outside [{self.shock_min:g}, "
                f"{self.shock_max:g}] (COVER2_SHOCK_MIN, COVER2_SHOCK_MAX): shocks are relative "
                f"moves, -0.12 for -12%" + (f", and {len(wild) - 1} more" if len(wild) > 1
                                            else ""))


@dataclass(frozen=True)
class Rejection:
    """Why a message was refused."""

    reason: str


@dataclass(frozen=True)
class Tombstone:
    """A null value: remove what the key names."""

    key: str


_DECODERS = {topic: msgspec.json.Decoder(struct) for topic, struct in MESSAGE_TYPES.items()}


def decode(topic: str, key: bytes | None, value: bytes | None) -> Any:
    """One message: its struct, a :class:`Tombstone`, or a :class:`Rejection`."""
    if value is None:
        if topic in TOMBSTONE_TOPICS and key:
            try:
                return Tombstone(key.decode())
            except UnicodeDecodeError:
                return Rejection("tombstone key is not UTF-8")
        return Rejection("null value where a message is required")
    try:
        return _DECODERS[topic].decode(value)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        return Rejection(str(error))


def decode_many(topic: str, values: Sequence[bytes | None]) -> tuple[list[Any], list[int],
                                                                    list[tuple[int, str]]]:
    """Many messages of one per-message topic: (messages, their positions, rejections).

    The hot path: one comprehension when every message is good, message by message
    only for a batch that has a bad one. ``rejections`` holds ``(position, reason)``.
    """
    decode_one = _DECODERS[topic].decode
    try:  # a null value raises TypeError
        every = [decode_one(value) for value in values]  # type: ignore[arg-type]
        return every, list(range(len(values))), []
    except (msgspec.DecodeError, msgspec.ValidationError, TypeError):
        pass
    messages: list[Any] = []
    positions: list[int] = []
    rejections: list[tuple[int, str]] = []
    for position, value in enumerate(values):
        message = decode(topic, None, value)
        if isinstance(message, Rejection):
            rejections.append((position, message.reason))
        else:
            messages.append(message)
            positions.append(position)
    return messages, positions, rejections


_ENCODER = msgspec.json.Encoder()


def encode(value: Any) -> bytes:
    """JSON bytes of an output document."""
    return _ENCODER.encode(value)


def text(value: bytes | None) -> str:
    """A raw value as text for the dead-letter topic; undecodable bytes are escaped."""
    return "" if value is None else value.decode("utf-8", errors="backslashreplace")
