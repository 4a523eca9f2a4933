"""Liquidity: qualifying liquid resources and what a defaulting group takes with it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from risk.model import FloatArray, LiquidityType, Resources


def qualifying_by_type(resources: Resources) -> dict[str, float]:
    """Qualifying liquid resources summed per type (PFMI 7; RTS 153/2013 Art. 33)."""
    totals = {t.value: 0.0 for t in LiquidityType if t.qualifying}
    for resource in resources.liquid_resources:
        if resource.type.qualifying:
            totals[resource.type.value] += resource.amount
    return totals


def provided(resources: Resources, group_of: Callable[[str], str]) -> dict[str, float]:
    """Qualifying resources each providing group would take with it if it defaulted.

    A non-qualifying resource is not counted in QLR, so losing it takes nothing away.
    """
    out: dict[str, float] = {}
    for resource in resources.liquid_resources:
        if resource.provider is not None and resource.type.qualifying:
            group = group_of(resource.provider)
            out[group] = out.get(group, 0.0) + resource.amount
    return out


def provided_by_group(resources: Resources, groups: Sequence[str],
                      group_of: Callable[[str], str]) -> FloatArray:
    """:func:`provided` for each of ``groups``: (n_groups,)."""
    by_group = provided(resources, group_of)
    return np.array([by_group.get(group, 0.0) for group in groups], dtype=np.float64)
