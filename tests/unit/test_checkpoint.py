"""Checkpoints are cut by a forked child: the state as it was at the fork, written whole."""

from __future__ import annotations

import mmap
import os
import resource
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from risk.ccp import Ccp
from streams.checkpoint import CheckpointStore, take_own_copies
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


STRIDE = mmap.PAGESIZE // 8  # one float64 a page


def written_pages_faults(array: np.ndarray) -> int:
    """Minor faults of this thread while writing one value on each page of ``array``."""
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    array[:, ::STRIDE] += 1.0
    return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before


@pytest.mark.parametrize("own_copies", [False, True])
def test_after_a_fork_the_worker_takes_its_own_copies_of_the_written_pages_beforehand(
        own_copies: bool) -> None:
    base = np.arange(256 * 4096, dtype=np.float64).reshape(256, 4096)
    base += 0.0  # every page in place before the fork
    used = base[:200, :3000]  # the parts in use, as Ccp.written_arrays gives them
    expected = used.copy()
    child = os.fork()
    if child == 0:  # holds the pages shared until killed
        time.sleep(60)
        os._exit(0)
    try:
        if own_copies:
            take_own_copies([used])
        assert np.array_equal(used, expected)  # values untouched
        faults = written_pages_faults(used)
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    pages = 200 * 3000 * 8 // mmap.PAGESIZE
    assert (faults < pages // 10) if own_copies else (faults >= pages // 2)
    expected[:, ::STRIDE] += 1.0
    assert np.array_equal(used, expected)
