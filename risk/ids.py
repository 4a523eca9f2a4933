"""Dense integer indices for string ids, and arrays that grow with them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

import numpy as np

from risk.model import IndexArray

_T = TypeVar("_T", bound=np.generic)


class Ids:
    """String ids numbered in order of first appearance."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.names: list[str] = []
        self._index: dict[str, int] = {}
        for name in names:
            self.add(name)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def get(self, name: str) -> int | None:
        """The index of ``name``, or None if it has not appeared."""
        return self._index.get(name)

    def add(self, name: str) -> int:
        """The index of ``name``, numbering it if it is new."""
        index = self._index.get(name)
        if index is None:
            index = self._index[name] = len(self.names)
            self.names.append(name)
        return index

    def indices(self, names: Sequence[str]) -> IndexArray:
        """Indices of ``names``, numbering new ones: (n,) intp."""
        try:
            return np.fromiter(map(self._index.__getitem__, names), dtype=np.intp,
                               count=len(names))
        except KeyError:
            return np.fromiter(map(self.add, names), dtype=np.intp, count=len(names))

    def swap_remove(self, name: str) -> tuple[int, int]:
        """Remove ``name`` by moving the last id into its slot: (freed slot, moved from)."""
        slot = self._index.pop(name)
        last = len(self.names) - 1
        moved = self.names.pop()
        if slot != last:
            self.names[slot] = moved
            self._index[moved] = slot
        return slot, last


def grown(array: np.ndarray[tuple[int, ...], np.dtype[_T]], size: int, axis: int,
          fill: float | bool) -> np.ndarray[tuple[int, ...], np.dtype[_T]]:
    """``array`` with room for at least ``size`` along ``axis`` (capacity doubles)."""
    capacity = array.shape[axis]
    if size <= capacity:
        return array
    shape = list(array.shape)
    shape[axis] = max(size, 2 * capacity, 16)
    bigger = np.full(shape, fill, dtype=array.dtype)
    bigger[tuple(slice(0, n) for n in array.shape)] = array
    return bigger
