"""The Grafana dashboards: generated from one definition, committed as generated."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from streams import metrics as m
from streams.cli import main
from streams.settings import Settings
from streams.tally import REJECTED
from streams.tools import dashboards as d

REPO = Path(__file__).parents[2]
COMMITTED = REPO / "grafana" / "dashboards"
RULES = REPO / "prometheus" / "rules" / "cover2.rules.yml"
DEFAULT_CURRENCY = Settings().currency

MONEY = {m.CREDIT_COVER2, m.CREDIT_COVER1, m.CREDIT_PREFUNDED, m.CREDIT_HEADROOM,
         m.CREDIT_TOP_EXPOSURE, m.CREDIT_GROUP_EXPOSURE, m.CREDIT_WORST_GROUP_MODE,
         m.CREDIT_DEFAULT_FUND_MINIMUM, m.LIQUIDITY_COVER2, m.LIQUIDITY_QUALIFYING,
         m.LIQUIDITY_QUALIFYING_BY_TYPE, m.LIQUIDITY_HEADROOM, m.LIQUIDITY_TOP_DRAIN,
         m.LIQUIDITY_GROUP_DRAIN, m.CREDIT_WATERFALL_USED}
# What each dashboard must show, by the metric or recording rule its queries read.
SHOWS = {
    "cover2-overview.json": {
        m.CREDIT_HEADROOM, m.LIQUIDITY_HEADROOM, m.CREDIT_COVERAGE_RATIO,
        m.LIQUIDITY_COVERAGE_RATIO, m.CREDIT_COVER1, m.CREDIT_COVER2, m.CREDIT_PREFUNDED,
        m.LIQUIDITY_COVER2, m.LIQUIDITY_QUALIFYING, m.CREDIT_TOP_EXPOSURE, m.LIQUIDITY_TOP_DRAIN,
        m.CREDIT_SCENARIO, m.LIQUIDITY_SCENARIO, m.CREDIT_DEFAULT_FUND_MINIMUM,
        m.CREDIT_WORST_GROUP_MODE, m.CREDIT_WATERFALL_USED, m.CREDIT_CONCENTRATION_TOP2_SHARE,
        m.CREDIT_DEFAULTS_TO_EXHAUSTION},
    "cover2-member-groups.json": {
        m.CREDIT_GROUP_EXPOSURE, m.LIQUIDITY_GROUP_DRAIN, m.GROUP_MARGIN_LEVEL},
    "cover2-margin-calls.json": {
        m.MARGIN_CALLS + "_total", d.GROUP_MARGIN_CALLS_HOUR, m.GROUP_MARGIN_LEVEL},
    "cover2-service-health.json": {
        d.EVENTS_RATE, m.EVENTS + "_total", d.LATENCY_P50, d.LATENCY_P99, d.LAST_EVENT_AGE,
        m.RESULTS_AGE, "up"},
}
METRIC = re.compile(r"([a-zA-Z_:][\w:]*)\{")


def metric_names(dashboard: dict[str, Any]) -> set[str]:
    return {name for q in d.queries(dashboard) for name in METRIC.findall(q)}


PANELS = {f"{name}: {panel['title']}": panel
          for name, dashboard in d.dashboards(DEFAULT_CURRENCY).items()
          for panel in d.panels(dashboard)}


def test_regenerating_changes_nothing(tmp_path: Path) -> None:
    written = d.write(tmp_path, DEFAULT_CURRENCY)
    assert sorted(p.name for p in written) == sorted(p.name for p in COMMITTED.glob("*.json"))
    for path in written:
        assert path.read_bytes() == (COMMITTED / path.name).read_bytes(), (
            f"{path.name} is out of date: run `cover2 dashboards`")


def test_the_command_writes_them_in_the_chosen_currency(tmp_path: Path) -> None:
    main(["dashboards", "--out", str(tmp_path), "--currency", "EUR"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(d.dashboards("EUR"))
    assert '"currencyEUR"' in (tmp_path / "cover2-overview.json").read_text()


@pytest.mark.parametrize("title", sorted(PANELS))
def test_every_panel_says_what_it_shows_and_in_which_unit(title: str) -> None:
    panel = PANELS[title]
    assert panel["description"].strip(), title
    assert panel["fieldConfig"]["defaults"]["unit"], title
    assert panel["targets"], title


@pytest.mark.parametrize("title", sorted(PANELS))
def test_every_query_uses_the_datasource_variable_and_filters_job_and_instance(title: str) -> None:
    panel = PANELS[title]
    assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    for target in panel["targets"]:
        assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
        selectors = re.findall(r"[\w:]+\{([^}]*)\}", target["expr"])
        assert selectors, (title, target["expr"])
        for selector in selectors:
            assert selector.startswith('job="$job", instance=~"$instance"'), (title, selector)


def test_queries_substitute_the_variables() -> None:
    for dashboard in d.dashboards(DEFAULT_CURRENCY).values():
        for query in d.queries(dashboard, job="cover2", instance="worker:6066"):
            assert "$" not in query, query
            assert 'job="cover2", instance=~"worker:6066"' in query, query


@pytest.mark.parametrize("name", sorted(SHOWS))
def test_each_dashboard_shows_its_quantities(name: str) -> None:
    dashboard = d.dashboards(DEFAULT_CURRENCY)[name]
    assert SHOWS[name] <= metric_names(dashboard), SHOWS[name] - metric_names(dashboard)


def test_the_service_health_dashboard_shows_dead_letters() -> None:
    dashboard = d.dashboards(DEFAULT_CURRENCY)["cover2-service-health.json"]
    assert any(f'outcome="{REJECTED}"' in q for q in d.queries(dashboard))


def test_queries_read_only_exported_metrics_and_recording_rules() -> None:
    exported = {v for k, v in vars(m).items() if k.isupper() and isinstance(v, str)
                and v.startswith("ccp_")}
    exported |= {name + "_total" for name in (m.EVENTS, m.MARGIN_CALLS, m.GROUP_MARGIN_CALLS)}
    exported |= {"up", *d.RECORDING_RULES}
    for name, dashboard in d.dashboards(DEFAULT_CURRENCY).items():
        assert metric_names(dashboard) <= exported, (name, metric_names(dashboard) - exported)


def test_the_recording_rules_used_are_recorded() -> None:
    if not RULES.exists():
        pytest.skip(f"{RULES.relative_to(REPO)} is not there")
    recorded = set(re.findall(r"record:\s*['\"]?([\w:]+)", RULES.read_text()))
    used = {name for dashboard in d.dashboards(DEFAULT_CURRENCY).values()
            for name in metric_names(dashboard) if ":" in name}
    assert used <= recorded, used - recorded


@pytest.mark.parametrize("currency", ["USD", "EUR", "GBP", "SGD"])
def test_money_panels_carry_the_currency_unit(currency: str) -> None:
    unit = d.currency_unit(currency)
    money_panels = 0
    for dashboard in d.dashboards(currency).values():
        for panel in d.panels(dashboard):
            names = {n for t in panel["targets"] for n in METRIC.findall(t["expr"])}
            if names & MONEY:
                money_panels += 1
                assert panel["fieldConfig"]["defaults"]["unit"] == unit, panel["title"]
            else:
                assert panel["fieldConfig"]["defaults"]["unit"] != unit, panel["title"]
    assert money_panels


def test_the_currency_is_chosen_when_the_files_are_generated() -> None:
    assert d.currency_unit("USD") == "currencyUSD"
    assert d.currency_unit("eur") == "currencyEUR"
    assert d.currency_unit("SGD") == "currency:SGD"
    in_dollars, in_euros = d.dashboards("USD"), d.dashboards("EUR")
    for name in in_dollars:
        assert d.render(in_dollars[name]).replace("USD", "EUR") == d.render(in_euros[name])
    assert d.render(in_dollars["cover2-overview.json"]) != d.render(
        in_euros["cover2-overview.json"])


@pytest.mark.parametrize("name", sorted(SHOWS))
def test_dashboards_have_stable_identity_and_a_tidy_grid(name: str) -> None:
    dashboard = d.dashboards(DEFAULT_CURRENCY)[name]
    assert dashboard["uid"] == name.removesuffix(".json")
    assert dashboard["schemaVersion"] == d.SCHEMA_VERSION
    assert dashboard["tags"] == ["cover2"]
    panels = list(d.panels(dashboard))
    assert [p["id"] for p in panels] == list(range(1, len(panels) + 1))
    cells = [(p["gridPos"]["x"] + dx, p["gridPos"]["y"] + dy) for p in panels
             for dx in range(p["gridPos"]["w"]) for dy in range(p["gridPos"]["h"])]
    assert len(cells) == len(set(cells)), "panels overlap"
    assert all(0 <= x < d.GRID_WIDTH for x, _ in cells)


@pytest.mark.parametrize("name", sorted(SHOWS))
def test_every_dashboard_has_the_datasource_job_and_instance_variables(name: str) -> None:
    variables = {v["name"]: v for v in
                 d.dashboards(DEFAULT_CURRENCY)[name]["templating"]["list"]}
    assert set(variables) == {"datasource", "job", "instance"}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["job"]["query"]["query"] == "label_values(up, job)"
    assert variables["job"]["current"]["value"] == "cover2"
    instance = variables["instance"]
    assert instance["query"]["query"] == 'label_values(up{job="$job"}, instance)'
    assert instance["includeAll"] and instance["multi"]
    for variable in (variables["job"], instance):
        assert variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
