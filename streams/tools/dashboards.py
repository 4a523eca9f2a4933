"""The Grafana dashboards, as code: one definition, JSON files for Grafana 11.

Every query reads the metric names of :mod:`streams.metrics` and the recording
rules of ``prometheus/rules/cover2.rules.yml``, and filters by the dashboards'
``job`` and ``instance`` variables. Money panels carry the unit of the
reporting currency, chosen when the files are generated.

Several workers selected at once (``instance`` = All) are shown the way a risk
desk reads them: a CCP-wide amount at risk is the highest any worker reports,
a headroom, ratio or resource the lowest; counters are summed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from risk.calls import MarginLevel
from risk.desk import LAYERS as WATERFALL_LAYERS
from streams import metrics as m
from streams.tally import REJECTED

Json = dict[str, Any]

SCHEMA_VERSION = 39
JOB = "cover2"
TAGS = ["cover2"]
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SELECTOR = 'job="$job", instance=~"$instance"'
# What the instance variable's "All" stands for in a query: any instance.
ALL_INSTANCES = ".*"

# Recording rules of prometheus/rules/cover2.rules.yml.
EVENTS_RATE = "cover2:ccp_events:rate1m"
LATENCY_P50 = "cover2:ccp_event_latency_seconds:p50_1m"
LATENCY_P99 = "cover2:ccp_event_latency_seconds:p99_1m"
LAST_EVENT_AGE = "cover2:ccp_last_event_age_seconds"
GROUP_MARGIN_CALLS_HOUR = "cover2:ccp_group_margin_calls:increase1h"
RECORDING_RULES = (EVENTS_RATE, LATENCY_P50, LATENCY_P99, LAST_EVENT_AGE, GROUP_MARGIN_CALLS_HOUR)

# Currencies Grafana has a unit for; any other code is shown as a prefix.
GRAFANA_CURRENCIES = frozenset((
    "USD", "GBP", "EUR", "JPY", "RUB", "UAH", "BRL", "DKK", "ISK", "NOK", "SEK", "CZK", "CHF",
    "PLN", "ZAR", "INR", "KRW"))

MARGIN_LEVEL_COLOURS = {MarginLevel.NONE: "green", MarginLevel.WARNING: "orange",
                        MarginLevel.CALL: "red"}
BELOW_ZERO_RED: list[Json] = [{"color": "red", "value": None}, {"color": "green", "value": 0}]
BELOW_ONE_RED: list[Json] = [{"color": "red", "value": None}, {"color": "green", "value": 1}]
NEUTRAL: list[Json] = [{"color": "blue", "value": None}]
GRID_WIDTH = 24


def currency_unit(currency: str) -> str:
    """Grafana's unit for amounts in ``currency``: ``USD`` -> ``currencyUSD``."""
    code = currency.strip().upper()
    return f"currency{code}" if code in GRAFANA_CURRENCIES else f"currency:{code}"


def series(metric: str, **labels: str) -> str:
    """``metric`` under the dashboards' job and instance, with more label matchers."""
    extra = "".join(f', {name}="{value}"' for name, value in labels.items())
    return f"{metric}{{{SELECTOR}{extra}}}"


# Panels ---------------------------------------------------------------------------------------


def target(expr: str, legend: str = "", *, instant: bool = False, table: bool = False) -> Json:
    """One Prometheus query of a panel; the panel gives it its ``refId``."""
    return {"datasource": DATASOURCE, "editorMode": "code", "expr": expr,
            "format": "table" if table else "time_series", "instant": instant or table,
            "legendFormat": legend or "__auto", "range": not (instant or table)}


def _panel(panel_type: str, title: str, description: str, unit: str, targets: Sequence[Json],
           size: tuple[int, int], *, custom: Json | None = None,
           thresholds: list[Json] | None = None, mappings: list[Json] | None = None,
           overrides: Sequence[Json] = (), options: Json | None = None,
           transformations: Sequence[Json] = ()) -> Json:
    defaults: Json = {"mappings": mappings or [], "unit": unit,
                      "thresholds": {"mode": "absolute", "steps": thresholds or NEUTRAL}}
    if custom is not None:
        defaults["custom"] = custom
    if panel_type in ("timeseries", "bargauge"):
        defaults["color"] = {"mode": "palette-classic" if panel_type == "timeseries"
                             else "thresholds"}
    width, height = size
    panel: Json = {
        "datasource": DATASOURCE, "description": description,
        "fieldConfig": {"defaults": defaults, "overrides": list(overrides)},
        "gridPos": {"h": height, "w": width, "x": 0, "y": 0}, "id": 0,
        "options": options or {},
        "targets": [{**t, "refId": chr(ord("A") + i)} for i, t in enumerate(targets)],
        "title": title, "type": panel_type}
    if transformations:
        panel["transformations"] = list(transformations)
    return panel


def timeseries(title: str, description: str, unit: str, targets: Sequence[Json],
               size: tuple[int, int], *, thresholds: list[Json] | None = None,
               threshold_style: str = "off", stepped: bool = False, stacked: bool = False,
               mappings: list[Json] | None = None, overrides: Sequence[Json] = ()) -> Json:
    """A time series panel; ``threshold_style`` ``line+area`` draws the thresholds;
    ``stacked`` piles the series up, filled."""
    custom = {"drawStyle": "line", "fillOpacity": 70 if stacked else 10, "lineInterpolation":
              "stepAfter" if stepped else "linear", "lineWidth": 2, "showPoints": "never",
              "spanNulls": False, "thresholdsStyle": {"mode": threshold_style}}
    if stacked:
        custom["stacking"] = {"group": "A", "mode": "normal"}
    options = {"legend": {"calcs": ["lastNotNull", "min", "max"], "displayMode": "table",
                          "placement": "bottom", "showLegend": True},
               "tooltip": {"mode": "multi", "sort": "desc"}}
    return _panel("timeseries", title, description, unit, targets, size, custom=custom,
                  thresholds=thresholds, mappings=mappings, overrides=overrides, options=options)


def stat(title: str, description: str, unit: str, targets: Sequence[Json],
         size: tuple[int, int], *, thresholds: list[Json] | None = None,
         mappings: list[Json] | None = None, text_mode: str = "auto",
         color_mode: str = "value", sparkline: bool = True) -> Json:
    """A stat panel of the latest values; ``text_mode`` ``name`` shows a label instead."""
    options = {"colorMode": color_mode, "graphMode": "area" if sparkline else "none",
               "justifyMode": "auto", "orientation": "auto",
               "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
               "showPercentChange": False, "textMode": text_mode, "wideLayout": True}
    return _panel("stat", title, description, unit, targets, size, thresholds=thresholds,
                  mappings=mappings, options=options)


def bargauge(title: str, description: str, unit: str, targets: Sequence[Json],
             size: tuple[int, int], *, thresholds: list[Json] | None = None) -> Json:
    """Horizontal bars of the latest value of each series, in query order."""
    options = {"displayMode": "gradient", "namePlacement": "left", "orientation": "horizontal",
               "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
               "showUnfilled": True, "sizing": "auto", "valueMode": "color"}
    return _panel("bargauge", title, description, unit, targets, size, thresholds=thresholds,
                  options=options)


def table(title: str, description: str, unit: str, targets: Sequence[Json],
          size: tuple[int, int], *, columns: Mapping[str, str], sort_by: str,
          overrides: Sequence[Json] = (), keep_rows_where: tuple[str, float] | None = None
          ) -> Json:
    """Instant queries joined on their labels, one row per label set, sortable by any column.

    ``columns`` renames the label and value columns (``Value #A`` is query A's value)
    and sets their order; ``keep_rows_where`` (column, minimum) keeps rows above it.
    """
    renames = dict(columns)
    if len(targets) == 1:  # a single query's value column is plain "Value"
        renames = {("Value" if k == "Value #A" else k): v for k, v in columns.items()}
    transformations: list[Json] = [{"id": "merge", "options": {}}, {"id": "organize", "options": {
        "excludeByName": {"Time": True},
        "indexByName": {name: i for i, name in enumerate(renames)},
        "renameByName": renames}}]
    if keep_rows_where is not None:
        column, minimum = keep_rows_where
        transformations.append({"id": "filterByValue", "options": {
            "filters": [{"config": {"id": "greater", "options": {"value": minimum}},
                         "fieldName": column}],
            "match": "any", "type": "include"}})
    options = {"cellHeight": "sm", "footer": {"show": False}, "showHeader": True,
               "sortBy": [{"desc": True, "displayName": sort_by}]}
    custom = {"align": "auto", "cellOptions": {"type": "auto"}, "filterable": True}
    return _panel("table", title, description, unit, [{**t, "format": "table"} for t in targets],
                  size, custom=custom, overrides=overrides, options=options,
                  transformations=transformations)


def column(name: str, *properties: tuple[str, Any]) -> Json:
    """Field overrides of one column (or series) by its display name."""
    return {"matcher": {"id": "byName", "options": name},
            "properties": [{"id": key, "value": value} for key, value in properties]}


def _margin_level_mappings() -> list[Json]:
    return [{"type": "value", "options": {
        str(int(level)): {"color": color, "index": int(level), "text": level.label}
        for level, color in MARGIN_LEVEL_COLOURS.items()}}]


DASHED = ("custom.lineStyle", {"dash": [10, 10], "fill": "dash"})


# Dashboards ------------------------------------------------------------------------------------


def _layout(rows: Sequence[Sequence[Json]]) -> list[Json]:
    """Panels placed left to right, row under row; ids follow the reading order."""
    panels: list[Json] = []
    y = 0
    for row in rows:
        x = 0
        for panel in row:
            grid = panel["gridPos"]
            if x + grid["w"] > GRID_WIDTH:
                raise ValueError(f"row of {panel['title']!r} is wider than {GRID_WIDTH}")
            panel["gridPos"] = {**grid, "x": x, "y": y}
            panel["id"] = len(panels) + 1
            panels.append(panel)
            x += grid["w"]
        y += max(panel["gridPos"]["h"] for panel in row)
    return panels


def templating() -> Json:
    """The variables of every dashboard: data source, job, instance."""
    return {"list": [
        {"current": {"selected": False, "text": "Prometheus", "value": "prometheus"},
         "hide": 0, "includeAll": False, "label": "Data source", "multi": False,
         "name": "datasource", "options": [], "query": "prometheus", "refresh": 1,
         "regex": "", "skipUrlSync": False, "type": "datasource"},
        {"current": {"selected": False, "text": JOB, "value": JOB},
         "datasource": DATASOURCE, "definition": "label_values(up, job)", "hide": 0,
         "includeAll": False, "label": "Job", "multi": False, "name": "job", "options": [],
         "query": {"qryType": 1, "query": "label_values(up, job)",
                   "refId": "PrometheusVariableQueryEditor-VariableQuery"},
         "refresh": 2, "regex": "", "skipUrlSync": False, "sort": 1, "type": "query"},
        {"allValue": ALL_INSTANCES,
         "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
         "datasource": DATASOURCE, "definition": 'label_values(up{job="$job"}, instance)',
         "hide": 0, "includeAll": True, "label": "Instance", "multi": True,
         "name": "instance", "options": [],
         "query": {"qryType": 1, "query": 'label_values(up{job="$job"}, instance)',
                   "refId": "PrometheusVariableQueryEditor-VariableQuery"},
         "refresh": 2, "regex": "", "skipUrlSync": False, "sort": 1, "type": "query"},
    ]}


def _dashboard(uid: str, title: str, description: str, rows: Sequence[Sequence[Json]]) -> Json:
    return {
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard"}]},
        "description": description, "editable": True, "fiscalYearStartMonth": 0,
        "graphTooltip": 1, "id": None,
        "links": [{"asDropdown": False, "icon": "external link", "includeVars": True,
                   "keepTime": True, "tags": TAGS, "targetBlank": False, "title": "cover2",
                   "tooltip": "", "type": "dashboards", "url": ""}],
        "panels": _layout(rows), "refresh": "10s", "schemaVersion": SCHEMA_VERSION,
        "tags": TAGS, "templating": templating(), "time": {"from": "now-1h", "to": "now"},
        "timepicker": {}, "timezone": "browser", "title": title, "uid": uid, "version": 1,
        "weekStart": ""}


def overview(currency: str) -> Json:
    """Cover-2 overview: headroom, coverage, cover-1/2, resources, the top two, the scenario."""
    money = currency_unit(currency)
    lowest = "With several workers selected, the lowest of them."
    highest = "With several workers selected, the highest of them."
    return _dashboard("cover2-overview", "Cover-2 overview", (
        f"Whether the CCP's prefunded and liquid resources cover the default of its two largest "
        f"member groups, in {currency}."), [
        [stat("Credit headroom", (
            f"Prefunded default resources minus the cover-2 credit exposure, in {currency}. "
            f"Below zero the default fund, skin in the game and other prefunded resources do "
            f"not cover the default of the two largest groups in the binding scenario. "
            f"{lowest}"), money,
            [target(f"min({series(m.CREDIT_HEADROOM)})", "credit headroom")], (4, 5),
            thresholds=BELOW_ZERO_RED, color_mode="background"),
         stat("Liquidity headroom", (
             f"Qualifying liquid resources minus the cover-2 liquidity drain, in {currency}. "
             f"Below zero the CCP could not pay, in cash and on time, what the two groups with "
             f"the largest drains would leave unpaid. {lowest}"), money,
             [target(f"min({series(m.LIQUIDITY_HEADROOM)})", "liquidity headroom")], (4, 5),
             thresholds=BELOW_ZERO_RED, color_mode="background"),
         stat("Credit coverage ratio", (
             f"Prefunded default resources over the cover-2 credit exposure; below 100% the "
             f"headroom is negative. {lowest}"), "percentunit",
             [target(f"min({series(m.CREDIT_COVERAGE_RATIO)})", "credit")], (4, 5),
             thresholds=BELOW_ONE_RED),
         stat("Liquidity coverage ratio", (
             f"Qualifying liquid resources over the cover-2 liquidity drain; below 100% the "
             f"headroom is negative. {lowest}"), "percentunit",
             [target(f"min({series(m.LIQUIDITY_COVERAGE_RATIO)})", "liquidity")], (4, 5),
             thresholds=BELOW_ONE_RED),
         stat("Credit: binding scenario", (
             "The stress scenario in which the two largest group exposures add up to the "
             "cover-2 credit exposure (same-scenario ranking). A change means another market "
             "move now sets the requirement."), "none",
             [target(f"max by (scenario) ({series(m.CREDIT_SCENARIO)})", "{{scenario}}",
                     instant=True)], (4, 5),
             text_mode="name", color_mode="none", sparkline=False),
         stat("Liquidity: binding scenario", (
             "The stress scenario in which the two largest group drains add up to the cover-2 "
             "liquidity drain; often not the credit one."), "none",
             [target(f"max by (scenario) ({series(m.LIQUIDITY_SCENARIO)})", "{{scenario}}",
                     instant=True)], (4, 5),
             text_mode="name", color_mode="none", sparkline=False)],
        [timeseries("Headroom", (
            f"Credit and liquidity headroom over time, in {currency}; the red band is a "
            f"shortfall: resources below what the default of the two largest groups "
            f"requires. {lowest}"), money,
            [target(f"min({series(m.CREDIT_HEADROOM)})", "credit headroom"),
             target(f"min({series(m.LIQUIDITY_HEADROOM)})", "liquidity headroom")], (12, 9),
            thresholds=BELOW_ZERO_RED, threshold_style="line+area"),
         timeseries("Coverage ratio", (
             f"Prefunded resources over cover-2 credit exposure, and qualifying liquid "
             f"resources over the cover-2 liquidity drain; below 100% (red) resources fall "
             f"short. {lowest}"), "percentunit",
             [target(f"min({series(m.CREDIT_COVERAGE_RATIO)})", "credit"),
              target(f"min({series(m.LIQUIDITY_COVERAGE_RATIO)})", "liquidity")], (12, 9),
             thresholds=BELOW_ONE_RED, threshold_style="line+area")],
        [timeseries("Credit: cover-2, cover-1 and prefunded resources", (
            f"Cover-2 (two largest groups in the same scenario) and cover-1 (the largest "
            f"group) credit exposure against prefunded default resources (dashed), in "
            f"{currency}. Cover-2 above the dashed line is a negative headroom. With several "
            f"workers selected, the highest exposures and the lowest resources."), money,
            [target(f"max({series(m.CREDIT_COVER2)})", "cover-2"),
             target(f"max({series(m.CREDIT_COVER1)})", "cover-1"),
             target(f"min({series(m.CREDIT_PREFUNDED)})", "prefunded resources")], (12, 9),
            overrides=[column("prefunded resources", DASHED)]),
         timeseries("Liquidity: cover-2 drain and qualifying resources", (
             f"Cover-2 liquidity drain (two largest group drains in the same scenario, lines "
             f"a defaulter provides counted as lost) against qualifying liquid resources "
             f"(dashed), in {currency}. With several workers selected, the highest drain and "
             f"the lowest resources."), money,
             [target(f"max({series(m.LIQUIDITY_COVER2)})", "cover-2 drain"),
              target(f"min({series(m.LIQUIDITY_QUALIFYING)})", "qualifying resources")],
             (12, 9), overrides=[column("qualifying resources", DASHED)])],
        [bargauge("Two largest credit exposures", (
            f"The two member groups whose exposures make up cover-2, by rank, in {currency}: "
            f"the groups whose default the prefunded resources must absorb together."), money,
            [target(f"sort_desc(max by (rank, group) ({series(m.CREDIT_TOP_EXPOSURE)}))",
                    "{{rank}} {{group}}", instant=True)], (8, 7)),
         bargauge("Two largest liquidity drains", (
             f"The two member groups whose drains make up the cover-2 liquidity drain, by "
             f"rank, in {currency}: need for cash plus the committed lines they provide."),
             money,
             [target(f"sort_desc(max by (rank, group) ({series(m.LIQUIDITY_TOP_DRAIN)}))",
                     "{{rank}} {{group}}", instant=True)], (8, 7)),
         stat("EMIR minimum default fund and worst-group mode", (
             f"EMIR Art. 42(3) minimum for the default fund alone (the larger of the largest "
             f"exposure and the sum of the second and third, worst scenario), and the "
             f"conservative cover-2 that ranks each group at its own worst scenario, in "
             f"{currency}. {highest}"), money,
             [target(f"max({series(m.CREDIT_DEFAULT_FUND_MINIMUM)})",
                     "EMIR minimum default fund"),
              target(f"max({series(m.CREDIT_WORST_GROUP_MODE)})", "cover-2, worst-group mode")],
             (8, 7), text_mode="value_and_name")],
        [bargauge("Qualifying liquid resources by type", (
            f"Qualifying liquid resources by type (PFMI 7, RTS 153/2013 Art. 33), in "
            f"{currency}: how much is cash and how much depends on committed facilities. "
            f"{lowest}"), money,
            [target(f"sort_desc(min by (type) ({series(m.LIQUIDITY_QUALIFYING_BY_TYPE)}))",
                    "{{type}}", instant=True)], (12, 8)),
         timeseries("Cover-2 against the conservative measures", (
             f"Cover-2 credit exposure (same scenario) beside the worst-group mode and the "
             f"EMIR minimum default fund, in {currency}: how much more a conservative reading "
             f"would ask. {highest}"), money,
             [target(f"max({series(m.CREDIT_COVER2)})", "cover-2"),
              target(f"max({series(m.CREDIT_WORST_GROUP_MODE)})", "worst-group mode"),
              target(f"max({series(m.CREDIT_DEFAULT_FUND_MINIMUM)})",
                     "EMIR minimum default fund")], (12, 8))],
        [timeseries("Default waterfall of the cover-2 pair", (
            f"Who pays if the two groups of cover-2 default now, layer by layer, in "
            f"{currency}: first their own default fund contributions, then the CCP's skin in "
            f"the game, the surviving members' contributions and other prefunded resources; "
            f"red is what no prefunded resource covers (assessments, recovery tools). "
            f"{highest}"), money,
            [target(f'max by (layer) ({series(m.CREDIT_WATERFALL_USED, layer=layer)})', layer)
             for layer in WATERFALL_LAYERS], (16, 8), stacked=True,
            overrides=[column("uncovered", ("color", {"fixedColor": "red", "mode": "fixed"}))]),
         stat("Concentration and defaults to exhaustion", (
             "The share of the two largest groups in all exposure of the cover-2 scenario "
             "(near 100%: two groups are nearly all of the risk), and the fewest largest "
             f"groups whose default exhausts the prefunded resources. {highest}"), "none",
             [target(f"max({series(m.CREDIT_CONCENTRATION_TOP2_SHARE)})", "top-2 share"),
              target(f"min({series(m.CREDIT_DEFAULTS_TO_EXHAUSTION)})",
                     "defaults to exhaustion")], (8, 8), text_mode="value_and_name")],
    ])


def member_groups(currency: str) -> Json:
    """Member groups: exposure, drain and margin level per group, in one sortable table."""
    money = currency_unit(currency)
    exposure = f"max by (group) ({series(m.CREDIT_GROUP_EXPOSURE)})"
    drain = f"max by (group) ({series(m.LIQUIDITY_GROUP_DRAIN)})"
    return _dashboard("cover2-member-groups", "Member groups", (
        f"Every member group's worst-scenario credit exposure and liquidity drain, in "
        f"{currency}, and its margin level."), [
        [table("Exposure, drain and margin level by group", (
            f"One row per member group (affiliates default together): its credit exposure "
            f"(stress loss over margin) and liquidity drain, each in the group's own worst "
            f"scenario, in {currency}; their shares of prefunded and qualifying liquid "
            f"resources; and the highest margin level any of its members is over. Click a "
            f"header to sort, filter a column to find a group."), money,
            [target(exposure), target(drain),
             target(f"{exposure} / scalar(min({series(m.CREDIT_PREFUNDED)}))"),
             target(f"{drain} / scalar(min({series(m.LIQUIDITY_QUALIFYING)}))"),
             target(f"max by (group) ({series(m.GROUP_MARGIN_LEVEL)})")], (24, 14),
            columns={"group": "Group", "Value #A": "Credit exposure",
                     "Value #B": "Liquidity drain", "Value #C": "Exposure / prefunded",
                     "Value #D": "Drain / qualifying", "Value #E": "Margin level"},
            sort_by="Credit exposure",
            overrides=[
                column("Exposure / prefunded", ("unit", "percentunit"), ("decimals", 1)),
                column("Drain / qualifying", ("unit", "percentunit"), ("decimals", 1)),
                column("Margin level", ("unit", "none"), ("mappings", _margin_level_mappings()),
                       ("custom.cellOptions", {"type": "color-background"}))])],
        [bargauge("Ten largest credit exposures", (
            f"The ten member groups with the largest worst-scenario credit exposure, in "
            f"{currency}; cover-2 ranks the same groups per scenario, so these are the "
            f"candidates for it."), money,
            [target(f"sort_desc(topk(10, {exposure}))", "{{group}}", instant=True)], (12, 10)),
         bargauge("Ten largest liquidity drains", (
             f"The ten member groups with the largest worst-scenario liquidity drain (cash "
             f"need plus the committed lines they provide), in {currency}."), money,
             [target(f"sort_desc(topk(10, {drain}))", "{{group}}", instant=True)], (12, 10))],
    ])


def margin_calls(currency: str) -> Json:
    """Margin calls: warnings and calls over time and per group, and who is at which level."""
    level = f"max by (group) ({series(m.GROUP_MARGIN_LEVEL)})"
    calls_total = series(m.MARGIN_CALLS + "_total")
    return _dashboard("cover2-margin-calls", "Margin calls", (
        "Margin warnings and calls issued for stress loss over margin, and the member groups "
        "at warning or call level now."), [
        [stat("Issued in the time range", (
            "Warnings and calls issued during the dashboard's time range, all workers "
            "together; a burst means exposures outgrew collateral across many members."),
            "short",
            [target(f"sum by (kind) (increase({calls_total}[$__range]))", "{{kind}}",
                    instant=True)], (8, 5), sparkline=False, text_mode="value_and_name"),
         stat("Issued in total", (
             "Warnings and calls issued since the workers' state began, all workers together."),
             "short", [target(f"sum by (kind) ({calls_total})", "{{kind}}")], (8, 5),
             text_mode="value_and_name"),
         stat("Groups at warning and call level now", (
             "How many member groups have a member over the warning level, and how many over "
             "the call level, now; these are the groups whose collateral the desk chases."),
             "short",
             [target(f"count({level} == 1) or vector(0)", "at warning"),
              target(f"count({level} == 2) or vector(0)", "at call")], (8, 5),
             text_mode="value_and_name")],
        [timeseries("Warnings and calls per group, trailing hour", (
            "Warnings and calls issued to each member group over the preceding hour, at each "
            "moment; a group that keeps being called is one whose risk keeps outgrowing its "
            "collateral."), "short",
            [target(f"sum by (group, kind) ({series(GROUP_MARGIN_CALLS_HOUR)})",
                    "{{group}} {{kind}}")], (12, 9)),
         timeseries("Warnings and calls, trailing hour", (
             "Warnings and calls issued over the preceding hour, all groups and workers "
             "together."), "short",
             [target(f"sum by (kind) (increase({calls_total}[1h]))", "{{kind}}")], (12, 9))],
        [table("Groups at warning or call level", (
            "Member groups with a member over the warning (orange) or call (red) level now, "
            "with the warnings and calls each received in the past hour."), "short",
            [target(level),
             target(f'sum by (group) ({series(GROUP_MARGIN_CALLS_HOUR, kind="warning")})'),
             target(f'sum by (group) ({series(GROUP_MARGIN_CALLS_HOUR, kind="call")})')],
            (12, 10),
            columns={"group": "Group", "Value #A": "Margin level",
                     "Value #B": "Warnings, past hour", "Value #C": "Calls, past hour"},
            sort_by="Margin level", keep_rows_where=("Margin level", 0),
            overrides=[column("Margin level", ("unit", "none"),
                              ("mappings", _margin_level_mappings()),
                              ("custom.cellOptions", {"type": "color-background"}))]),
         timeseries("Margin level by group", (
             "Each member group's margin level over time: 0 none, 1 warning, 2 call (the "
             "highest level any of its members is over)."), "none",
             [target(level, "{{group}}")], (12, 10), stepped=True,
             mappings=_margin_level_mappings())],
    ])


def service_health(currency: str) -> Json:
    """Service health: input rates, dead letters, latency, freshness, scrape status."""
    rejected = series(m.EVENTS + "_total", outcome=REJECTED)
    return _dashboard("cover2-service-health", "Service health", (
        "Whether the numbers on the other dashboards are current: input rates, dead letters, "
        "event-to-metric latency, data freshness and the workers' scrape status."), [
        [stat("Workers up", (
            "Whether Prometheus reached each worker's /metrics at its last scrape; a worker "
            "that is down shows no current numbers."), "none",
            [target(series("up"), "{{instance}}")], (6, 5),
            mappings=[{"type": "value", "options": {
                "0": {"color": "red", "index": 0, "text": "down"},
                "1": {"color": "green", "index": 1, "text": "up"}}}],
            thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}],
            color_mode="background", sparkline=False),
         stat("Dead letters in the time range", (
             "Input messages rejected (undecodable or invalid) during the dashboard's time "
             "range, all workers together; each is on the dead-letter topic with its reason, "
             "and changed nothing."), "short",
             [target(f"sum(increase({rejected}[$__range])) or vector(0)", "rejected",
                     instant=True)], (6, 5),
             thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 1}],
             sparkline=False),
         stat("Latency p99", (
             "99th percentile of the time from an event to the moment its effect is visible "
             "in the metrics, over the last minute; the slowest worker."), "s",
             [target(f"max({series(LATENCY_P99)})", "p99")], (6, 5)),
         stat("Snapshot age", (
             "Seconds since the results were last refreshed; the oldest worker. Growing "
             "while events arrive means the numbers are stale."), "s",
             [target(f"max({series(m.RESULTS_AGE)})", "snapshot age")], (6, 5))],
        [timeseries("Events per second by topic and outcome", (
            "Input messages per second by topic and outcome (applied, duplicate, stale, "
            "rejected), all workers together, over one minute."), "ops",
            [target(f"sum by (topic, outcome) ({series(EVENTS_RATE)})",
                    "{{topic}} {{outcome}}")], (12, 8)),
         timeseries("Dead letters per second by topic", (
             "Rejected input messages per second by topic, all workers together; anything "
             "above zero is an upstream system sending what the contract does not allow."),
             "ops",
             [target(f'sum by (topic) ({series(EVENTS_RATE, outcome=REJECTED)}) or '
                     f'sum by (topic) ({series(EVENTS_RATE)}) * 0', "{{topic}}")], (12, 8),
             thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 0.001}])],
        [timeseries("Event-to-metric latency", (
            "Median and 99th percentile of the time from an event to the moment its effect is "
            "visible in the metrics, per worker, over one minute."), "s",
            [target(f"max by (instance) ({series(LATENCY_P50)})", "p50 {{instance}}"),
             target(f"max by (instance) ({series(LATENCY_P99)})", "p99 {{instance}}")],
            (12, 8)),
         timeseries("Last event age by topic", (
             "Seconds since the event time of the newest applied message on each topic, the "
             "freshest worker; trades and prices should stay low during trading hours, "
             "reference data ages between updates."), "s",
             [target(f"min by (topic) ({series(LAST_EVENT_AGE)})", "{{topic}}")], (12, 8))],
        [timeseries("Snapshot age", (
            "Seconds since each worker last refreshed its results."), "s",
            [target(f"max by (instance) ({series(m.RESULTS_AGE)})", "{{instance}}")], (12, 8)),
         timeseries("Scrape status", (
             "1 while Prometheus reaches a worker, 0 while it does not."), "none",
             [target(series("up"), "{{instance}}")], (12, 8), stepped=True,
             mappings=[{"type": "value", "options": {
                 "0": {"color": "red", "index": 0, "text": "down"},
                 "1": {"color": "green", "index": 1, "text": "up"}}}])],
    ])


BUILDERS = {"cover2-overview.json": overview, "cover2-member-groups.json": member_groups,
            "cover2-margin-calls.json": margin_calls,
            "cover2-service-health.json": service_health}


def dashboards(currency: str) -> dict[str, Json]:
    """Every dashboard by file name, money in ``currency`` (an ISO 4217 code)."""
    code = currency.strip().upper()
    return {name: build(code) for name, build in BUILDERS.items()}


def panels(dashboard: Mapping[str, Any]) -> Iterator[Json]:
    """Every panel of ``dashboard``, those inside rows included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def queries(dashboard: Mapping[str, Any], job: str = JOB, instance: str = ALL_INSTANCES,
            time_range: str = "1h") -> list[str]:
    """Every query of ``dashboard`` as Prometheus would receive it.

    ``$job`` and ``$instance`` become ``job`` and ``instance`` (a regular
    expression), ``$__range`` becomes ``time_range``; queries in panel order.
    """
    values = {"job": job, "instance": instance, "__range": time_range}

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, match.group(0))

    return [VARIABLE.sub(substitute, t["expr"]) for panel in panels(dashboard)
            for t in panel.get("targets", [])]


def render(dashboard: Mapping[str, Any]) -> str:
    """The JSON text of a dashboard: indented, keys sorted, one trailing newline."""
    return json.dumps(dashboard, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(directory: Path | str, currency: str) -> list[Path]:
    """Write every dashboard into ``directory`` (created if missing); returns the files."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, dashboard in sorted(dashboards(currency).items()):
        path = directory / name
        path.write_text(render(dashboard), encoding="utf-8", newline="\n")
        written.append(path)
    return written
