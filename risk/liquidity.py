"""Liquidity: qualifying liquid resources and what a defaulting group takes with it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from risk.cover import Groups
from risk.model import FloatArray, LiquidityType, Resources


def qualifying_by_type(resources: Resources) -> dict[str, float]:
    """Qualifying liquid resources summed per type (PFMI 7; RTS 153/2013 Art. 33)."""
    totals = {t.value: 0.0 for t in LiquidityType if t.qualifying}
    for resource in resources.liquid_resources:
        if resource.type.qualifying:
            totals[resource.type.value] += resource.amount
    return totals


def provided_by_group(resources: Resources, groups: Groups,
                      member_index: Callable[[str], int | None]) -> FloatArray:
    """Qualifying resources each group provides, lost if it defaults: (n_groups,).

    A non-qualifying resource is not counted in QLR, so losing it takes nothing away.
    """
    provided = np.zeros(len(groups))
    for resource in resources.liquid_resources:
        if resource.provider is not None and resource.type.qualifying:
            m = member_index(resource.provider)
            if m is not None:
                provided[groups.of_member[m]] += resource.amount
    return provided
