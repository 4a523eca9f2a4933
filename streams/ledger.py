"""The ledger of trades applied: a ``(member, trade_id)`` is applied once within the dedupe
window.

Each input partition keeps its own ledger and its own clock, the newest event time of the
trades read from it, so that what is decided depends only on the partition's messages in
their order: a replay from a checkpoint, or another worker rebuilding the partition from
the start, decides the same. A trade whose event time is more than the window behind its
partition's clock is refused: nothing remembers far enough back to tell a re-send from
a new trade. Forgetting is by UTC day of event time: a day is dropped whole once all of
it is behind the window.

A trade is remembered by a 128-bit digest of member and trade id, two 64-bit lanes of
murmur3's finaliser chained over the text (two different trades share a digest with a
probability of about n²/2¹²⁹: 10⁻²⁴ for ten million trades a day over a week). Every
step is a numpy operation on a whole batch. The newest digests are kept sorted in a
small buffer; every :data:`LIVE_MAX` of them are moved, off the event loop in a thread,
into their day's sorted arrays, each with a Bloom filter in front that answers the usual
"not seen" without a search: 16 bytes and 1 to 2 bytes of filter a trade.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from risk.model import BoolArray, FloatArray, IndexArray
from streams.background import executor

DAY = 86_400.0
# Digests kept in the sorted buffer before they are moved into their days' arrays.
LIVE_MAX = 1 << 16
# Bits of a day's Bloom filter per digest, at least (a power of two of them in all).
BLOOM_BITS = 8
FREEZER = executor("ledger")
_U64 = np.uint64
_C1, _C2 = _U64(0xFF51AFD7ED558CCD), _U64(0xC4CEB9FE1A85EC53)
_SEEDS = (_U64(0x9E3779B97F4A7C15), _U64(0x632BE59BD9B4E019))
_EMPTY = np.zeros(0, dtype=np.uint64)
# The day of a digest remembered nowhere.
NOWHERE = np.int64(np.iinfo(np.int64).min)


def _mix(x: np.ndarray) -> np.ndarray:
    """murmur3's 64-bit finaliser: every bit of ``x`` moves every bit of the result."""
    x = x ^ (x >> _U64(33))
    x *= _C1
    x ^= x >> _U64(33)
    x *= _C2
    x ^= x >> _U64(33)
    return x


def digests(members: Sequence[str], trade_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each trade's 128-bit digest of member and trade id, as two (n,) uint64 halves."""
    if not members:
        return _EMPTY, _EMPTY
    # The member's length makes the split unambiguous; the end mark keeps a trailing NUL,
    # which numpy's strings would drop.
    text = np.array([f"{len(m)}:{m}{i}$" for m, i in zip(members, trade_ids, strict=True)],
                    dtype=np.str_)
    chars = text.view(np.uint32).reshape(len(text), -1)
    if chars.shape[1] % 2:
        chars = np.pad(chars, ((0, 0), (0, 1)))
    words = np.ascontiguousarray(chars).view(np.uint64)
    length = np.strings.str_len(text).astype(np.uint64)
    hi, lo = _mix(length ^ _SEEDS[0]), _mix(length ^ _SEEDS[1])
    n_words = (length + _U64(1)) // _U64(2)  # the batch's widest text pads the others
    for k, column in enumerate(words.T):
        within = n_words > k
        hi = np.where(within, _mix(hi ^ column), hi)
        lo = np.where(within, _mix((lo + column) ^ _SEEDS[1]), lo)
    return hi, lo


def _find(sorted_hi: np.ndarray, sorted_lo: np.ndarray, hi: np.ndarray,
          lo: np.ndarray) -> IndexArray:
    """Where each digest ``(hi, lo)`` is among ``(sorted_hi, sorted_lo)``, sorted by hi;
    -1 where it is not."""
    if not len(sorted_hi):
        return np.full(len(hi), -1, dtype=np.intp)
    at = np.minimum(np.searchsorted(sorted_hi, hi), len(sorted_hi) - 1)
    same_hi = sorted_hi[at] == hi
    found = same_hi & (sorted_lo[at] == lo)
    where = np.where(found, at, -1)
    for i in np.flatnonzero(same_hi & ~found).tolist():  # another digest shares hi
        first = int(np.searchsorted(sorted_hi, hi[i], "left"))
        matches = np.flatnonzero(sorted_lo[first:np.searchsorted(sorted_hi, hi[i], "right")]
                                 == lo[i])
        where[i] = first + int(matches[0]) if len(matches) else -1
    return where


def _bloom_indices(hi: np.ndarray, lo: np.ndarray, bits: int) -> tuple[np.ndarray, ...]:
    mask = _U64(bits - 1)
    return lo & mask, (lo >> _U64(32)) & mask, hi & mask


def _bloom(hi: np.ndarray, lo: np.ndarray, bloom: np.ndarray) -> np.ndarray:
    """``bloom`` (bytes of bits, little-endian) with digests ``(hi, lo)`` added."""
    bits = np.unpackbits(bloom, bitorder="little").view(np.bool_)
    for index in _bloom_indices(hi, lo, len(bits)):
        bits[index] = True
    return np.packbits(bits, bitorder="little")


@dataclass(frozen=True)
class Day:
    """The digests of one day: ``hi`` sorted, ``lo`` beside it, a Bloom filter of both."""

    hi: np.ndarray
    lo: np.ndarray
    bloom: np.ndarray

    @classmethod
    def of(cls, hi: np.ndarray, lo: np.ndarray) -> Day:
        """The day holding digests ``(hi, lo)``."""
        order = np.argsort(hi, kind="stable")
        bits = 1 << max(6, math.ceil(math.log2(max(1, len(hi)) * BLOOM_BITS)))
        return cls(hi[order], lo[order], _bloom(hi, lo, np.zeros(bits // 8, dtype=np.uint8)))

    def merged(self, hi: np.ndarray, lo: np.ndarray) -> Day:
        """This day with digests ``(hi, lo)`` added: the Bloom filter is extended while it
        has room, made again at twice the size when not."""
        all_hi, all_lo = np.concatenate([self.hi, hi]), np.concatenate([self.lo, lo])
        if len(all_hi) * BLOOM_BITS > len(self.bloom) * 8:
            return Day.of(all_hi, all_lo)
        order = np.argsort(all_hi, kind="stable")
        return Day(all_hi[order], all_lo[order], _bloom(hi, lo, self.bloom.copy()))

    def __len__(self) -> int:
        return len(self.hi)

    @property
    def nbytes(self) -> int:
        """The memory it takes."""
        return self.hi.nbytes + self.lo.nbytes + self.bloom.nbytes

    def holds(self, hi: np.ndarray, lo: np.ndarray) -> BoolArray:
        """Which digests ``(hi, lo)`` it holds."""
        maybe = np.ones(len(hi), dtype=np.bool_)
        for index in _bloom_indices(hi, lo, len(self.bloom) * 8):
            maybe &= (self.bloom[index >> _U64(3)] >> (index & _U64(7)).astype(np.uint8)) & 1 == 1
        found = np.zeros(len(hi), dtype=np.bool_)
        found[maybe] = _find(self.hi, self.lo, hi[maybe], lo[maybe]) >= 0
        return found


@dataclass(frozen=True)
class Digests:
    """Digests with the UTC day of each trade's event time, sorted by ``hi``."""

    hi: np.ndarray = field(default_factory=lambda: _EMPTY)
    lo: np.ndarray = field(default_factory=lambda: _EMPTY)
    day: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))

    def __len__(self) -> int:
        return len(self.hi)

    def days_of(self, hi: np.ndarray, lo: np.ndarray) -> IndexArray:
        """The day of each digest ``(hi, lo)`` here, :data:`NOWHERE` where it is not."""
        if not len(self.hi):
            return np.full(len(hi), NOWHERE, dtype=np.int64)
        at = _find(self.hi, self.lo, hi, lo)
        return np.where(at >= 0, self.day[at].astype(np.int64), NOWHERE)

    def with_(self, other: Digests) -> Digests:
        """These digests and ``other``'s."""
        at = np.searchsorted(self.hi, other.hi)
        return Digests(np.insert(self.hi, at, other.hi), np.insert(self.lo, at, other.lo),
                       np.insert(self.day, at, other.day))


def _frozen(days: dict[int, Day], entries: Digests, first_day: int) -> dict[int, Day]:
    """``days`` with ``entries`` added, the days before ``first_day`` left out."""
    out = {day: held for day, held in days.items() if day >= first_day}
    for day in np.unique(entries.day[entries.day >= first_day]).tolist():
        of_day = entries.day == day
        hi, lo = entries.hi[of_day], entries.lo[of_day]
        out[day] = out[day].merged(hi, lo) if day in out else Day.of(hi, lo)
    return out


@dataclass
class Admission:
    """What the ledger decided of a partition's trades: which to apply (``fresh``), which
    are refused for an event time older than the window (``expired``), and the clock they
    were judged by; the others are duplicates."""

    fresh: IndexArray
    expired: IndexArray
    clock: float

    def duplicates(self, arrived: int) -> int:
        """How many of ``arrived`` trades were duplicates."""
        return arrived - len(self.fresh) - len(self.expired)


@dataclass
class PartitionLedger:
    """One input partition's remembered trades and its clock."""

    clock: float = -math.inf
    live: Digests = field(default_factory=Digests)
    freezing: Digests = field(default_factory=Digests)
    days: dict[int, Day] = field(default_factory=dict)
    job: Future[dict[int, Day]] | None = None

    def __getstate__(self) -> dict[str, Any]:  # a move under way is saved as not started
        live = self.live.with_(self.freezing)
        return {"clock": self.clock, "live": live, "freezing": Digests(), "days": self.days,
                "job": None}

    def __len__(self) -> int:
        return len(self.live) + len(self.freezing) + sum(map(len, self.days.values()))

    @property
    def nbytes(self) -> int:
        """The memory its digests take."""
        return sum(day.nbytes for day in self.days.values()) + \
            sum(a.nbytes for d in (self.live, self.freezing) for a in (d.hi, d.lo, d.day))

    def remembered(self, hi: np.ndarray, lo: np.ndarray) -> IndexArray:
        """The newest day each digest was remembered under, :data:`NOWHERE` if none."""
        day = np.maximum(self.live.days_of(hi, lo), self.freezing.days_of(hi, lo))
        for number, held in self.days.items():
            found = held.holds(hi, lo)
            day[found] = np.maximum(day[found], number)
        return day

    def oldest_day(self) -> float:
        """The oldest day anything is remembered under (infinity when nothing is)."""
        return min(min(self.days, default=math.inf),
                   float(self.live.day.min()) if len(self.live) else math.inf)

    def take_frozen(self, wait: bool) -> None:
        """Take in a finished move of digests into the days' arrays (waiting for it when
        ``wait``)."""
        if self.job is not None and (wait or self.job.done()):
            self.days, self.freezing, self.job = self.job.result(), Digests(), None

    def freeze(self, first_day: int, background: bool) -> None:
        """Move the buffer's digests into their days' arrays, in a thread when
        ``background``; forget the days before ``first_day``."""
        self.freezing, self.live = self.live, Digests()
        if background:
            self.job = FREEZER.submit(_frozen, self.days, self.freezing, first_day)
        else:
            self.days, self.freezing = _frozen(self.days, self.freezing, first_day), Digests()


@dataclass
class Ledger:
    """The trades applied, per input partition, within the window of event time of each;
    ``background`` moves digests into the days' arrays off the event loop."""

    live_max: int = LIVE_MAX
    background: bool = True
    partitions: dict[int, PartitionLedger] = field(default_factory=dict)

    def __len__(self) -> int:
        """How many trades are remembered (taking in the moves into arrays that are done)."""
        for ledger in self.partitions.values():
            ledger.take_frozen(wait=False)
        return sum(map(len, self.partitions.values()))

    @property
    def nbytes(self) -> int:
        """The memory the remembered trades take (as :meth:`__len__` counts them)."""
        for ledger in self.partitions.values():
            ledger.take_frozen(wait=False)
        return sum(p.nbytes for p in self.partitions.values())

    def admit(self, partition: int, members: Sequence[str], trade_ids: Sequence[str],
              ts: FloatArray, window: float) -> Admission:
        """Decide, in arrival order, which of a partition's trades are applied, and remember
        them. With the partition's clock at ``c`` (its newest trade's event time, this one
        included), a trade older than ``c - window`` is refused, and one applied before
        counts as a duplicate while the day of its event time is not wholly older than
        ``c - window``."""
        ledger = self.partitions.setdefault(partition, PartitionLedger())
        ledger.take_frozen(wait=False)
        clocks = np.maximum(np.maximum.accumulate(ts), ledger.clock)
        expired = ts < clocks - window
        first_days = np.floor((clocks - window) / DAY).astype(np.int64)
        days = (ts // DAY).astype(np.int32)
        hi, lo = digests(members, trade_ids)
        order = np.argsort(hi)  # searches go faster in order
        sorted_hi = hi[order]
        remembered = np.empty(len(hi), dtype=np.int64)
        remembered[order] = ledger.remembered(sorted_hi, lo[order])
        seen = expired | (remembered >= first_days)
        if (sorted_hi[1:] == sorted_hi[:-1]).any():  # a trade repeated within the batch
            applied: dict[tuple[int, int], int] = {}
            for i, key in enumerate(zip(hi.tolist(), lo.tolist(), strict=True)):
                seen[i] |= applied.get(key, NOWHERE) >= first_days[i]
                if not seen[i]:
                    applied[key] = int(days[i])
        fresh = np.flatnonzero(~seen)
        kept = order[~seen[order]]
        ledger.live = ledger.live.with_(Digests(hi[kept], lo[kept], days[kept]))
        if len(ts):
            ledger.clock = float(clocks[-1])
        first_day = math.floor((ledger.clock - window) / DAY)
        if ledger.job is None and (len(ledger.live) >= self.live_max
                                   or ledger.oldest_day() < first_day):
            ledger.freeze(first_day, self.background)
        return Admission(fresh, np.flatnonzero(expired), ledger.clock)

    def keep(self, partitions: Collection[int]) -> None:
        """Forget the trades of every partition but ``partitions``."""
        for partition in set(self.partitions) - set(partitions):
            del self.partitions[partition]
