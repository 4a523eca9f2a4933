"""Sums over runs of consecutive rows, the one reduction the core does per batch."""

from __future__ import annotations

import numpy as np

from risk.model import FloatArray, IndexArray


def segment_sums(rows: FloatArray, starts: IndexArray) -> FloatArray:
    """Sum each run of rows that begins at ``starts``.

    Parameters
    ----------
    rows : (n, columns)
    starts : (k,) ascending first row of each run; ``starts[0] == 0``

    Returns
    -------
    (k, columns) with row ``i`` the sum of ``rows[starts[i]:starts[i + 1]]``

    Runs of one row are copied in one step and longer runs summed slice by slice:
    several times faster than ``np.add.reduceat`` along the first axis, which pays
    a large cost per run.
    """
    lengths = np.diff(np.r_[starts, len(rows)])
    out = np.empty((len(starts), rows.shape[1]))
    single = lengths == 1
    out[single] = rows[starts[single]]
    for run in np.flatnonzero(~single).tolist():
        first = int(starts[run])
        out[run] = rows[first:first + int(lengths[run])].sum(axis=0)
    return out
