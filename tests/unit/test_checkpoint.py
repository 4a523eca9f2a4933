"""Checkpoints are cut by a forked child: the state as it was at the fork, written whole."""

from __future__ import annotations

import os
from operator import attrgetter
from pathlib import Path

import numpy as np
import pytest

from risk.ccp import Ccp
from risk.model import Trades
from streams.background import NICENESS, in_background
from streams.checkpoint import CheckpointStore
from streams.ledger import FREEZER
from streams.state import MonitorState
from streams.working_set import WRITTEN_BY_BATCHES
from tests.fixtures import ccp_with_losses


async def test_a_cut_holds_the_state_at_the_fork_and_not_what_came_after(
        tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, "w1", "ccp.")
    state = MonitorState(Ccp())
    state.offsets["ccp.trades", 0] = 41
    cut = store.cut(state)
    state.offsets["ccp.trades", 0] = 99  # after the cut: not in the checkpoint
    await cut.keep()
    loaded = store.load()
    assert loaded is not None and loaded.offsets == {("ccp.trades", 0): 41}
    assert not list(tmp_path.glob("*.tmp*"))


async def test_a_checkpoint_that_cannot_be_written_fails_loudly_and_keeps_the_last(
        tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, "w1", "ccp.")
    state = MonitorState(Ccp())
    await store.cut(state).keep()
    state.offsets["ccp.trades", 0] = 7
    state.tally.events["unpicklable", "x"] = lambda: None  # type: ignore[assignment]
    with pytest.raises(RuntimeError, match="exited with 1"):
        await store.cut(state).keep()
    loaded = store.load()
    assert loaded is not None and loaded.offsets == {}


async def test_cuts_left_unfinished_by_a_killed_run_are_removed_at_start(
        tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, "w1", "ccp.")
    await store.cut(MonitorState(Ccp())).keep()
    # A run killed while its child wrote: the temporary file stays behind.
    (tmp_path / "w1.tmp4242-17").write_bytes(b"half a checkpoint")
    (tmp_path / "w2.tmp4242-17").write_bytes(b"another worker's")
    assert store.load() is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w1.state", "w2.tmp4242-17"]


def _not_inherited(array: np.ndarray) -> bool:
    """Whether ``array``'s memory is marked for no child to inherit (``dc`` in smaps)."""
    address, flags = array.ctypes.data, {}
    start = end = 0
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if "-" in line.split(" ", 1)[0] and not line.startswith("VmFlags"):
            start, end = (int(bound, 16) for bound in line.split(" ", 1)[0].split("-"))
        elif line.startswith("VmFlags") and start <= address < end:
            flags = set(line.split()[1:])
    return "dc" in flags


def _matrices(state: MonitorState) -> dict[tuple[str, str], np.ndarray]:
    return {(owner, name): getattr(attrgetter(owner)(state), name)
            for owner, name, _, _ in WRITTEN_BY_BATCHES}


def _in_use(state: MonitorState) -> dict[tuple[str, str], np.ndarray]:
    """Each matrix's rows and columns in use, copied."""
    def count(at: str | None) -> int | None:
        return None if at is None else int(attrgetter(at)(state))
    return {(owner, name): getattr(attrgetter(owner)(state), name)[:count(rows),
                                                                  :count(columns)].copy()
            for owner, name, rows, columns in WRITTEN_BY_BATCHES}


def _trade(ccp: Ccp, member: str, instrument: str, ts: float) -> None:
    ccp.apply_trades(Trades([member], [instrument], np.array([3.0]), np.array([1.0]),
                            np.array([ts])))
    ccp.refresh(now=ts)


async def test_the_matrices_batches_write_are_not_shared_with_the_child_yet_cut_whole(
        tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, "w1", "ccp.")
    state = MonitorState(ccp_with_losses({"A": {"s1": 5.0, "s2": 1.0}, "B": {"s1": 2.0}}))
    state.ccp.refresh(now=0.0)
    for round_ in range(2):
        at_cut = _in_use(state)
        cut = store.cut(state)
        _trade(state.ccp, "A", "book-B", 10.0 + round_)  # after the cut: not in it
        await cut.keep()
        loaded = store.load()
        assert loaded is not None
        for place, matrix in _matrices(loaded).items():
            assert matrix.size and np.array_equal(matrix, at_cut[place]), place
        assert not np.array_equal(_in_use(state)["ccp.book", "position"],
                                  at_cut["ccp.book", "position"])
        assert all(map(_not_inherited, _matrices(state).values()))
        # Restored without room to grow, the state goes on as the live one did.
        _trade(loaded.ccp, "A", "book-B", 10.0 + round_)
        _trade(loaded.ccp, "late", "book-new", 30.0)
        _trade(state.ccp, "late", "book-new", 30.0)
        assert all(np.array_equal(matrix, _in_use(state)[place])
                   for place, matrix in _in_use(loaded).items())
        # Members enough to grow every matrix: the next cut moves the new ones.
        for m in range(40 * round_, 40 * round_ + 40):
            _trade(state.ccp, f"new-{m}", "book-A", 20.0 + round_)


async def test_background_work_runs_below_the_event_loop_s_priority() -> None:
    loop_nice = os.getpriority(os.PRIO_PROCESS, 0)
    assert await in_background(lambda: os.getpriority(os.PRIO_PROCESS, 0)) \
        == loop_nice + NICENESS
    assert FREEZER.submit(os.getpriority, os.PRIO_PROCESS, 0).result() == loop_nice + NICENESS
    assert os.getpriority(os.PRIO_PROCESS, 0) == loop_nice  # per thread: the loop's is kept
