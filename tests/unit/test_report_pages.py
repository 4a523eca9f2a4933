"""The periodic report's pages: report.md and a standalone report.html with its charts."""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path
from typing import Any

import pytest

from streams.tools import report_charts as rc
from streams.tools import report_pages as pages

Json = dict[str, Any]

BREACH_DAY = "2026-03-27"
NO_STATE_DAYS = 2  # the first days of the report have no state yet
CHARTS_WITHOUT_ATTRIBUTION = 5
FIGURES = ("credit_cover2", "credit_headroom", "liquidity_cover2", "liquidity_headroom")


def epoch(date: str, time: str = "00:00:00") -> float:
    """A UTC day and time as epoch seconds."""
    return dt.datetime.fromisoformat(f"{date}T{time}+00:00").timestamp()


def iso(seconds: float) -> str:
    """Epoch seconds as the report writes them: ``2026-02-03T14:05:00Z``."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def side(top: tuple[tuple[str, float], tuple[str, float]], scenario: str, peak_at: float,
         resources: float, min_headroom: float, breach_seconds: float,
         breach_days: list[str], names: tuple[str, str, str]) -> Json:
    """One side (credit or liquidity) of a period; ``names`` are its largest two and its
    resources."""
    first, second, resources_name = names
    cover2 = top[0][1] + top[1][1]
    return {first: {"group": top[0][0], "amount": top[0][1]},
            second: {"group": top[1][0], "amount": top[1][1]},
            "cover2": cover2, "scenario": scenario, "peak_at": peak_at,
            "peak_at_iso": iso(peak_at), resources_name: resources,
            "surplus": resources - cover2, "min_headroom": min_headroom,
            "min_headroom_at": peak_at, "min_headroom_at_iso": iso(peak_at),
            "breach_seconds": breach_seconds, "breach_days": breach_days}


def credit(top: tuple[tuple[str, float], tuple[str, float]], peak_at: float, prefunded: float,
           min_headroom: float, breach_seconds: float = 0.0,
           breach_days: list[str] | None = None) -> Json:
    """The credit side of a period."""
    return side(top, "S0042", peak_at, prefunded, min_headroom, breach_seconds,
                breach_days or [], ("c1", "c2", "prefunded"))


def liquidity(top: tuple[tuple[str, float], tuple[str, float]], peak_at: float,
              qualifying: float) -> Json:
    """The liquidity side of a period, never in breach."""
    cover2 = top[0][1] + top[1][1]
    return side(top, "S0017", peak_at, qualifying, qualifying - cover2, 0.0, [],
                ("l1", "l2", "qualifying"))


def figures(credit_cover2: float, prefunded: float, liquidity_cover2: float,
            qualifying: float) -> Json:
    """The four figures an attribution follows."""
    return {"credit_cover2": credit_cover2, "credit_headroom": prefunded - credit_cover2,
            "liquidity_cover2": liquidity_cover2,
            "liquidity_headroom": qualifying - liquidity_cover2}


def step(family: str, group: str | None, *changes: float) -> Json:
    """One step of an attribution: its family, its group, the four figures' changes."""
    return {"family": family, "group": group, **dict(zip(FIGURES, changes, strict=True))}


def added(entries: list[Json]) -> Json:
    """The four figures of ``entries`` added up."""
    return {key: sum(entry[key] for entry in entries) for key in FIGURES}


def attribution(start: Json, end: Json, from_iso: str, to_iso: str) -> Json:
    """From ``start`` to ``end``: two groups' positions, then prices, scenarios, resources."""
    positions = [step("positions and collateral", "G007", -0.45e9, 0.45e9, -0.2e9, 0.2e9),
                 step("positions and collateral", "G012", -0.15e9, 0.15e9, -0.1e9, 0.1e9)]
    others = [step("prices", None, -0.55e9, 0.55e9, -0.3e9, 0.3e9),
              step("scenarios", None, 0.15e9, -0.15e9, 0.0, 0.0),
              step("resources", None, 0.0, 0.3e9, 0.0, 0.2e9)]
    families = [{"family": "positions and collateral", **added(positions)},
                *({"family": entry["family"], **added([entry])} for entry in others)]
    return {"from_iso": from_iso, "to_iso": to_iso, "start": start, "end": end,
            "steps": [*positions, *others], "families": families,
            "top_groups": [{"group": entry["group"], **{key: entry[key] for key in FIGURES}}
                           for entry in positions],
            "sum": added([*positions, *others]),
            "change": {key: end[key] - start[key] for key in FIGURES}}


def period(label: str, start: float, end: float, credit_side: Json, liquidity_side: Json,
           at_end: Json) -> Json:
    """A period with no change and no attribution (the first) yet."""
    breach_days = sorted({*credit_side["breach_days"], *liquidity_side["breach_days"]})
    return {
        "label": label, "start": start, "end": end, "start_iso": iso(start),
        "end_iso": iso(end), "events": 120_000, "evaluations": 8_150,
        "status": "Breach" if breach_days else "Compliant", "breach_days": breach_days,
        "credit": credit_side, "liquidity": liquidity_side,
        "concentration": {"credit": {"top2_share": 0.41, "hhi": 0.12},
                          "liquidity": {"top2_share": 0.38, "hhi": 0.10}},
        "multiplier_to_exhaustion": {
            "credit": {"k": 1.42, "scenario": "S0042", "groups": ["G007", "G012"]},
            "liquidity": None},
        "at_end": {**at_end, "prefunded": at_end["credit_cover2"] + at_end["credit_headroom"],
                   "qualifying": at_end["liquidity_cover2"] + at_end["liquidity_headroom"]},
        "change": None, "attribution": None}


def change(now: Json, before: Json) -> Json:
    """This period minus the previous one, by the names of ``change``."""
    names = {"c1": ("credit", "c1"), "c2": ("credit", "c2"), "cover2": ("credit", "cover2"),
             "prefunded": ("credit", "prefunded"), "credit_surplus": ("credit", "surplus"),
             "l1": ("liquidity", "l1"), "l2": ("liquidity", "l2"),
             "liquidity_cover2": ("liquidity", "cover2"),
             "qualifying": ("liquidity", "qualifying"),
             "liquidity_surplus": ("liquidity", "surplus")}

    def amount(one: Json, where: tuple[str, str]) -> float:
        value = one[where[0]][where[1]]
        return float(value["amount"] if isinstance(value, dict) else value)

    return {name: amount(now, where) - amount(before, where) for name, where in names.items()}


def day(date: str, number: int, credit_peak: float, prefunded: float,
        breach: bool) -> Json:
    """One day with state: its peaks, resources, lowest headroom and shares."""
    wave = math.sin(number / 3.0)
    credit_min = -0.15e9 if breach else prefunded - credit_peak - 0.1e9 * (1 + wave)
    liquidity_peak = 4.2e9 + 0.3e9 * wave
    qualifying = 6.0e9 if date < "2026-04-01" else 6.2e9
    return {"date": date, "credit_peak": credit_peak, "prefunded": prefunded,
            "credit_min_headroom": credit_min, "credit_breach_seconds": 5400.0 if breach else 0.0,
            "liquidity_peak": liquidity_peak, "qualifying": qualifying,
            "liquidity_min_headroom": qualifying - liquidity_peak - 0.2e9,
            "liquidity_breach_seconds": 0.0,
            "shares": {"G007": 0.22 + 0.03 * wave, "G012": 0.18 - 0.02 * wave, "G003": 0.12,
                       "G021": 0.09 + 0.01 * wave, "G001": 0.06}}


def no_state(date: str) -> Json:
    """A day before the first state: every figure null."""
    return {"date": date, "credit_peak": None, "prefunded": None, "credit_min_headroom": None,
            "credit_breach_seconds": 0.0, "liquidity_peak": None, "qualifying": None,
            "liquidity_min_headroom": None, "liquidity_breach_seconds": 0.0, "shares": {}}


def days(first: str, last: str) -> list[Json]:
    """Every UTC day from ``first`` to ``last``: none with state at first, one breach."""
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    dates = [(start + dt.timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]
    made = []
    for number, date in enumerate(dates):
        prefunded = 4.5e9 if date < "2026-04-01" else 4.8e9
        peak = 4.65e9 if date == BREACH_DAY else 3.3e9 + 0.4e9 * math.sin(number / 5.0)
        made.append(no_state(date) if number < NO_STATE_DAYS
                    else day(date, number, peak, prefunded, date == BREACH_DAY))
    return made


def sample_report(first: str = "2026-03-20", last: str = "2026-04-08") -> Json:
    """A quarterly report across the end of 2026-Q1: a breach in Q1, none in Q2, whose
    change is attributed."""
    boundary, end = epoch("2026-04-01"), epoch(last) + 86_400
    q1_end, q2_end = figures(4.1e9, 4.5e9, 4.5e9, 6.0e9), figures(3.1e9, 4.8e9, 3.9e9, 6.2e9)
    q1 = period("2026-Q1", epoch(first), boundary,
                credit((("G007", 2.6e9), ("G012", 2.05e9)), epoch(BREACH_DAY, "14:05:00"),
                       4.5e9, -0.15e9, 5400.0, [BREACH_DAY]),
                liquidity((("G003", 2.5e9), ("G007", 2.2e9)), epoch("2026-03-24", "10:30:00"),
                          6.0e9), q1_end)
    q1["multiplier_to_exhaustion"]["credit"] = {"k": 0.0, "scenario": "S0042",
                                                "groups": ["G007", "G012"]}
    q2 = period("2026-Q2", boundary, end,
                credit((("G007", 1.8e9), ("G021", 1.5e9)), epoch("2026-04-06", "09:00:00"),
                       4.8e9, 1.2e9),
                liquidity((("G003", 2.1e9), ("G012", 1.9e9)), epoch("2026-04-03", "16:45:00"),
                          6.2e9), q2_end)
    q2["change"] = change(q2, q1)
    q2["attribution"] = attribution(q1_end, q2_end, iso(boundary), iso(end))
    return {
        "title": "Cover-2 report", "currency": "USD", "period": "quarter",
        "from": first, "to": last, "resolution_s": 1.0,
        "generated_at_iso": "2026-11-30T20:00:00Z",
        "input": {"records": 240_000, "end": "read to the end of 32 partitions",
                  "first_event_iso": iso(epoch(first, "06:00:00")),
                  "last_event_iso": iso(end - 60), "behind_in_partition": 0},
        "top_groups": ["G007", "G012", "G003", "G021", "G001"],
        "periods": [q1, q2], "days": days(first, last)}


def single_period() -> Json:
    """The first period of the sample alone: no change, no attribution."""
    report = sample_report(last="2026-03-31")
    report["periods"] = report["periods"][:1]
    return report


def table(markdown: str, first_cell: str) -> dict[str, list[str]]:
    """The Markdown table whose header starts with ``first_cell``: its rows by name, the
    header under ``""``."""
    lines = markdown.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith(f"| {first_cell} |"))
    rows = {}
    for line in [lines[start], *lines[start + 2:]]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        rows["" if line is lines[start] else cells[0]] = cells[1:]
    return rows


@pytest.fixture(scope="module")
def report() -> Json:
    return sample_report()


@pytest.fixture(scope="module")
def charts(report: Json) -> dict[str, str]:
    return rc.charts(report)


@pytest.fixture(scope="module")
def page(report: Json, charts: dict[str, str]) -> str:
    return pages.html(report, charts)


# Money and shares -----------------------------------------------------------------------


@pytest.mark.parametrize(("amount", "text"), [
    (3.3e9, "3.30bn"), (450e6, "450m"), (-12_500.0, "-12.5k"), (12.0, "12.0"), (0.0, "0.00")])
def test_compact_money_keeps_three_significant_digits(amount: float, text: str) -> None:
    assert rc.compact(amount) == text


def test_money_in_tables_is_in_full_with_the_currency() -> None:
    assert pages.money(1_234_567.891, "USD") == "1,234,567.89 USD"
    assert pages.money(-5e8, "EUR", signed=True) == "-500,000,000.00 EUR"
    assert pages.money(5e8, "EUR", signed=True) == "+500,000,000.00 EUR"
    assert pages.money(None, "USD") == "n/a"
    assert pages.share(0.41) == "41.0%"


# Markdown -------------------------------------------------------------------------------


def test_the_summary_has_a_column_per_period_and_every_figure(report: Json) -> None:
    summary = table(pages.markdown(report), "")
    assert summary[""] == ["2026-Q1", "2026-Q2"]
    assert summary == {
        "": ["2026-Q1", "2026-Q2"],
        "Largest credit exposure C1": ["2,600,000,000.00 USD (G007)",
                                       "1,800,000,000.00 USD (G007)"],
        "Second-largest credit exposure C2": ["2,050,000,000.00 USD (G012)",
                                              "1,500,000,000.00 USD (G021)"],
        "Cover-2 credit exposure": ["4,650,000,000.00 USD", "3,300,000,000.00 USD"],
        "Prefunded resources": ["4,500,000,000.00 USD", "4,800,000,000.00 USD"],
        "Credit surplus": ["-150,000,000.00 USD", "1,500,000,000.00 USD"],
        "Largest liquidity drain L1": ["2,500,000,000.00 USD (G003)",
                                       "2,100,000,000.00 USD (G003)"],
        "Second-largest liquidity drain L2": ["2,200,000,000.00 USD (G007)",
                                              "1,900,000,000.00 USD (G012)"],
        "Cover-2 liquidity drain": ["4,700,000,000.00 USD", "4,000,000,000.00 USD"],
        "Qualifying liquid resources": ["6,000,000,000.00 USD", "6,200,000,000.00 USD"],
        "Liquidity surplus": ["1,300,000,000.00 USD", "2,200,000,000.00 USD"],
        "Status": [f"Breach on {BREACH_DAY}", "Compliant"],
    }


def test_each_period_has_its_peak_breaches_concentration_and_multiplier(report: Json) -> None:
    text = pages.markdown(report)
    q1, q2 = text.split("## 2026-Q1")[1].split("## 2026-Q2")
    peak = table(q1, "")
    assert peak[""] == ["Credit", "Liquidity"]
    assert peak["Peak at"] == ["2026-03-27T14:05:00Z", "2026-03-24T10:30:00Z"]
    assert peak["Binding scenario at the peak"] == ["S0042", "S0017"]
    assert peak["Minimum headroom"] == ["-150,000,000.00 USD", "1,300,000,000.00 USD"]
    assert peak["Minimum headroom at"][0] == "2026-03-27T14:05:00Z"
    assert peak["Time in breach"] == ["5,400 s", "0 s"]
    assert peak["Breach days"] == [BREACH_DAY, "none"]
    assert peak["Top-2 share at the peak"] == ["41.0%", "38.0%"]
    assert peak["HHI at the peak"] == ["0.120", "0.100"]
    assert peak["Shock multiplier to exhaustion k*"] == [
        "0.00 (S0042: G007, G012)", "none: no multiple of the shocks exhausts the resources"]
    assert "no change to show" in q1
    assert table(q2, "")["Shock multiplier to exhaustion k*"][0] == "1.42 (S0042: G007, G012)"


def test_the_change_from_the_previous_period_is_signed(report: Json) -> None:
    q2 = pages.markdown(report).split("## 2026-Q2")[1]
    changed = table(q2.split("### Change from the previous period")[1], "")
    assert changed[""] == ["2026-Q1", "2026-Q2", "Change"]
    assert changed["Largest credit exposure C1"] == [
        "2,600,000,000.00 USD (G007)", "1,800,000,000.00 USD (G007)", "-800,000,000.00 USD"]
    assert changed["Prefunded resources"][2] == "+300,000,000.00 USD"
    assert changed["Credit surplus"][2] == "+1,650,000,000.00 USD"


def test_the_attribution_shows_each_family_the_sum_of_steps_and_the_change(
        report: Json) -> None:
    steps = table(pages.markdown(report), "Step")
    assert steps[""] == ["Credit cover-2", "Credit headroom", "Liquidity cover-2",
                         "Liquidity headroom"]
    assert steps["Positions and collateral"] == [
        "-600,000,000.00 USD", "+600,000,000.00 USD", "-300,000,000.00 USD",
        "+300,000,000.00 USD"]
    assert steps["Scenarios"][:2] == ["+150,000,000.00 USD", "-150,000,000.00 USD"]
    assert steps["Resources"][1] == "+300,000,000.00 USD"
    assert steps["Start (2026-04-01T00:00:00Z)"][1] == "400,000,000.00 USD"
    assert steps["End (2026-04-09T00:00:00Z)"][1] == "1,700,000,000.00 USD"
    whole = ["-1,000,000,000.00 USD", "+1,300,000,000.00 USD", "-600,000,000.00 USD",
             "+800,000,000.00 USD"]
    assert steps["Sum of the steps"] == steps["Change, end minus start"] == whole
    assert "The sum of the steps equals the change." in pages.markdown(report)
    groups = table(pages.markdown(report), "Group")
    assert list(groups) == ["", "G007", "G012"]
    assert groups["G007"][1] == "+450,000,000.00 USD"


def test_steps_that_do_not_add_up_to_the_change_are_said_to(report: Json) -> None:
    off = {**report["periods"][1]["attribution"]}
    off["sum"] = {**off["sum"], "credit_headroom": off["sum"]["credit_headroom"] + 10.0}
    assert pages.added_up(off) == "The sum of the steps differs from the change by up to 10.00."


def test_markdown_cells_cannot_break_a_table(report: Json) -> None:
    named = {**report, "input": {**report["input"], "end": "partitions 0|1"}}
    assert "| Read | partitions 0\\|1 |" in pages.markdown(named)


# HTML -----------------------------------------------------------------------------------


def test_the_page_holds_the_figures_the_status_and_every_chart(report: Json,
                                                               page: str) -> None:
    for text in ("2026-Q1", "2026-Q2", "2,600,000,000.00 USD (G007)", "4,650,000,000.00 USD",
                 "6,200,000,000.00 USD", "Largest liquidity drain L1",
                 "Shock multiplier to exhaustion k*", "Sum of the steps",
                 "Change, end minus start"):
        assert text in page
    assert f'<td class="breach">Breach on {BREACH_DAY}</td>' in page
    assert '<td class="compliant">Compliant</td>' in page
    assert page.count("<svg") == page.count("<figure><svg") == CHARTS_WITHOUT_ATTRIBUTION + 1
    assert page.count("<section>") == 3 + len(report["periods"])


def test_the_page_loads_nothing_from_anywhere(page: str) -> None:
    for loads in ("src=", "href", "http://", "https://", "@import", "url(", "<script", "<link",
                  "<img", "<iframe", "<object"):
        assert loads not in page.lower(), loads


def test_the_page_is_printable(page: str) -> None:
    style = page.split("<style>")[1].split("</style>")[0]
    assert "@page" in style
    assert re.search(r"section \+ section \{ break-before: page;", style)
    assert re.search(r"tr \{ break-inside: avoid;", style)


def test_every_text_from_the_report_is_escaped(report: Json) -> None:
    hostile = {**report, "title": "Cover-2 <b>report</b> & co",
               "input": {**report["input"], "end": '<script>alert("x")</script>'}}
    page = pages.html(hostile, {})
    assert "<b>report</b>" not in page and "<script>" not in page
    assert "Cover-2 &lt;b&gt;report&lt;/b&gt; &amp; co" in page


def test_ids_in_the_charts_are_their_own(charts: dict[str, str]) -> None:
    ids = re.findall(r'\bid="([^"]+)"', "".join(charts.values()))
    assert len(ids) == len(set(ids))
    assert all(name in charts for name in (rc.CREDIT_COVER2, rc.CREDIT_HEADROOM,
                                           rc.LIQUIDITY_COVER2, rc.LIQUIDITY_HEADROOM,
                                           rc.SHARES, rc.attribution_chart("2026-Q2")))


def test_the_waterfall_labels_each_family(charts: dict[str, str]) -> None:
    waterfall = charts[rc.attribution_chart("2026-Q2")]
    for label in ("400m", "+600m", "+550m", "-150m", "+300m", "1.70bn"):
        assert f">{label}<" in waterfall, label


def test_a_chart_the_caller_did_not_make_is_left_out(report: Json) -> None:
    assert "<svg" not in pages.html(report, {})


def test_write_pages_writes_markdown_and_html(report: Json, tmp_path: Path) -> None:
    written = pages.write_pages(report, tmp_path)
    assert written == [tmp_path / "report.md", tmp_path / "report.html"]
    assert written[0].read_text().startswith("# Cover-2 report")
    assert written[1].read_text().count("<svg") == CHARTS_WITHOUT_ATTRIBUTION + 1


# Edge cases -----------------------------------------------------------------------------


def test_a_single_period_has_no_change_and_no_attribution() -> None:
    report = single_period()
    text, page = pages.markdown(report), pages.html(report, rc.charts(report))
    assert table(text, "")[""] == ["2026-Q1"]
    assert "no change to show" in text and "Attribution" not in text
    assert page.count("<svg") == CHARTS_WITHOUT_ATTRIBUTION


def test_a_report_without_any_state_still_renders() -> None:
    report = single_period()
    report["days"] = [no_state(entry["date"]) for entry in report["days"]]
    report["periods"][0]["concentration"]["credit"] = {"top2_share": None, "hhi": None}
    report["periods"][0]["multiplier_to_exhaustion"]["credit"] = None
    peak = table(pages.markdown(report).split("## 2026-Q1")[1], "")
    assert peak["Top-2 share at the peak"][0] == peak["HHI at the peak"][0] == "n/a"
    assert peak["Shock multiplier to exhaustion k*"][0].startswith("none")
    assert len(rc.charts(report)) == CHARTS_WITHOUT_ATTRIBUTION


def test_days_without_state_break_the_lines(report: Json) -> None:
    assert [entry["credit_peak"] for entry in report["days"][:NO_STATE_DAYS]] == [None, None]
    assert math.isnan(rc.daily(report["days"], "credit_peak")[0])
    assert not math.isnan(rc.daily(report["days"], "credit_peak")[NO_STATE_DAYS])
