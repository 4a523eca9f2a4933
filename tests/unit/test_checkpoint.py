"""Checkpoints are cut by a forked child: the state as it was at the fork, written whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from risk.ccp import Ccp
from streams.checkpoint import CheckpointStore
from streams.state import MonitorState


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
