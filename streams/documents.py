"""The JSON documents the service publishes: /cover2, /groups/{group}, calls, dead letters."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from risk.calls import MarginCall, MarginLevel
from risk.ccp import MemberRows
from risk.cover import Cover, first_max
from risk.desk import Concentration, DefaultsToExhaustion, Layer, StressDesk, WhatIf
from risk.results import Results
from risk.reverse import Multiplier, ReverseStress
from streams.readiness import Readiness


def iso(ts: float) -> str | None:
    """Epoch seconds as ISO 8601 in UTC; None before any event."""
    if not math.isfinite(ts):
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds")


def _finite(value: float) -> float | None:
    """JSON has no infinity: an unbounded ratio is null."""
    return value if math.isfinite(value) else None


def _cover(cover: Cover, amount_name: str) -> dict[str, Any]:
    return {"cover2": cover.amount, "scenario": cover.scenario,
            "top": [{"group": t.group, amount_name: t.amount} for t in cover.top],
            "cover1": cover.cover1, "cover1_scenario": cover.cover1_scenario,
            "cover1_group": cover.cover1_group}


def concentration_document(concentration: Concentration) -> dict[str, Any]:
    """Concentration in the binding scenario: ``total``, ``top2_share``, ``hhi``."""
    return {"total": concentration.total, "top2_share": concentration.top2_share,
            "hhi": concentration.hhi}


def waterfall_document(layers: tuple[Layer, ...]) -> list[dict[str, Any]]:
    """The layers of a default waterfall in the order they absorb the loss."""
    return [{"layer": layer.layer, "size": layer.size, "used": layer.used} for layer in layers]


def defaults_document(defaults: DefaultsToExhaustion | None) -> dict[str, Any] | None:
    """The fewest largest groups whose default exhausts the prefunded resources."""
    if defaults is None:
        return None
    return {"groups": defaults.groups, "scenario": defaults.scenario,
            "loss_over_margin": defaults.loss, "defaulters": list(defaults.defaulters)}


def multiplier_document(multiplier: Multiplier | None, amount_name: str
                        ) -> dict[str, Any] | None:
    """The shock multiplier to exhaustion, its scenario and the two groups there."""
    if multiplier is None:
        return None
    return {"k": multiplier.k, "scenario": multiplier.scenario,
            "top": [{"group": t.group, amount_name: t.amount} for t in multiplier.top]}


def what_if_document(what_if: WhatIf, currency: str) -> dict[str, Any]:
    """The document of ``GET /what-if``."""
    return {"groups": list(what_if.groups), "currency": currency,
            "credit": {"scenario": what_if.credit_scenario,
                       "loss_over_margin": what_if.loss_over_margin,
                       "uncovered": what_if.uncovered,
                       "waterfall": waterfall_document(what_if.waterfall)},
            "liquidity": {"scenario": what_if.liquidity_scenario, "drain": what_if.drain,
                          "qualifying": what_if.qualifying,
                          "headroom": what_if.liquidity_headroom}}


def cover2_document(results: Results, currency: str, counts: dict[str, int],
                    partitions: dict[str, list[int]], readiness: Readiness,
                    desk: StressDesk, reverse: ReverseStress | None) -> dict[str, Any]:
    """The document of ``GET /cover2`` and of the ``ccp.cover2`` topic.

    ``counts`` are this worker's; ``partitions`` says where each input partition's
    members were counted from: this worker (local), another's view (remote), or
    nowhere yet (missing, and then the figures are not complete). ``readiness`` says
    whether they are current: ``ready``, and the age of the newest fetch (``fetch_age_s``).
    ``desk`` adds concentration, defaults to exhaustion and the cover-2 pair's waterfall;
    ``reverse`` the shock multipliers to exhaustion (null while not worked out).
    """
    credit, liquidity = results.credit, results.liquidity
    return {
        "as_of": results.as_of,
        "as_of_iso": iso(results.as_of),
        "ready": readiness.ready,
        "not_ready_reason": readiness.reason or None,
        "fetch_age_s": readiness.fetch_age_s,
        "currency": currency,
        "credit": {
            **_cover(credit.cover, "exposure"),
            "prefunded": credit.prefunded, "default_fund": credit.default_fund,
            "headroom": credit.headroom, "coverage_ratio": _finite(credit.coverage_ratio),
            "worst_group_mode": {
                "label": "each group at its own worst scenario (conservative, not cover-2)",
                "cover2": credit.worst_group_mode,
                "top": [{"group": t.group, "exposure": t.amount, "scenario": t.scenario}
                        for t in credit.worst_group_top]},
            "default_fund_minimum": {"amount": credit.default_fund_minimum,
                                     "scenario": credit.default_fund_minimum_scenario,
                                     "rule": "EMIR Art. 42(3)"},
            "concentration": concentration_document(desk.credit_concentration),
            "reverse_stress": {
                "defaults_to_exhaustion": defaults_document(desk.defaults_to_exhaustion),
                "multiplier": multiplier_document(
                    reverse.credit if reverse is not None else None, "exposure")},
            "waterfall": waterfall_document(desk.waterfall),
        },
        "liquidity": {
            **_cover(liquidity.cover, "drain"),
            "qualifying": liquidity.qualifying, "headroom": liquidity.headroom,
            "coverage_ratio": _finite(liquidity.coverage_ratio),
            "qualifying_by_type": dict(liquidity.qualifying_by_type),
            "concentration": concentration_document(desk.liquidity_concentration),
            "reverse_stress": {
                "multiplier": multiplier_document(
                    reverse.liquidity if reverse is not None else None, "drain")},
        },
        "counts": counts,
        "complete": not partitions.get("missing"),
        "partitions": partitions,
        "groups": len(results.groups),
        "scenarios": len(results.scenarios),
    }


def group_document(results: Results, rows: MemberRows, group: str,
                   currency: str) -> dict[str, Any]:
    """The document of ``GET /groups/{group}``: members, exposure and drain by scenario.

    Group figures are the whole group's; member figures are those of the members
    held by this worker (``members_here``).
    """
    g = results.groups.index(group)
    order = sorted(range(len(results.scenarios)), key=results.scenarios.__getitem__)
    scenarios = [results.scenarios[s] for s in order]

    def by_scenario(row: Any) -> dict[str, float]:
        return dict(zip(scenarios, row[order].tolist(), strict=True))

    exposure = results.exposure_by_group_scenario[g]
    return {
        "group": group, "as_of": results.as_of, "currency": currency,
        "worst_scenario": (results.scenarios[first_max(exposure, results.scenarios)]
                           if len(exposure) else None),
        "margin_level": MarginLevel(int(results.margin_level_by_group[g])).name.lower(),
        "members": list(results.members_by_group.get(group, ())),
        "members_here": list(rows.members), "scenarios": scenarios,
        "exposure": by_scenario(results.exposure_by_group_scenario[g]),
        "drain": by_scenario(results.drain_by_group_scenario[g]),
        "member_exposure": {m: by_scenario(row) for m, row in zip(rows.members, rows.exposure,
                                                                   strict=True)},
        "member_need": {m: by_scenario(row) for m, row in zip(rows.members, rows.need,
                                                               strict=True)},
    }


def margin_call_document(call: MarginCall, currency: str) -> dict[str, Any]:
    """A ``ccp.margin-calls`` message."""
    return {"call_id": call.call_id, "member": call.member, "group": call.group,
            "kind": call.level.label, "amount": call.amount, "currency": currency,
            "exposure": call.exposure,
            "scenario": call.scenario, "ts": call.ts}


def dead_letter_document(topic: str, partition: int, offset: int, error: str, value: str,
                         ts: float) -> dict[str, Any]:
    """A ``ccp.dead-letter`` message."""
    return {"topic": topic, "partition": partition, "offset": offset, "error": error,
            "value": value, "ts": ts}
