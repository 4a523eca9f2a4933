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


def provided_by_group(resources: Resources, groups: Sequence[str],
                      group_of: Callable[[str], str]) -> FloatArray:
    """Qualifying resources each of ``groups`` provides, lost if it defaults: (n_groups,).

    A non-qualifying resource is not counted in QLR, so losing it takes nothing away.
    """
    index = {group: g for g, group in enumerate(groups)}
    provided = np.zeros(len(groups))
    for resource in resources.liquid_resources:
        if resource.provider is not None and resource.type.qualifying:
            g = index.get(group_of(resource.provider))
            if g is not None:
                provided[g] += resource.amount
    return provided
