"""The periodic Cover-2 report as pages: ``report.md`` and a standalone ``report.html``.

Both are rendered from one document built from the report's dict (``report.json``, made
by :mod:`streams.tools.report`): sections of paragraphs, headings, tables and charts.
Markdown has no charts; the HTML page inlines them as SVG (:mod:`streams.tools.report_charts`)
and carries its own print style, so that a browser's "print to PDF" gives the document.
The page loads nothing: no script, stylesheet, font or image from anywhere.

Money is written in full with thousands separators and the currency
(``1,234,567.89 USD``), shares as percentages, times as UTC ISO 8601.
"""

from __future__ import annotations

import html as markup
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.tools import report_charts as rc

Json = Mapping[str, Any]

NOT_AVAILABLE = "n/a"
COMPLIANT, BREACH = "Compliant", "Breach"
LISTED_BREACH_DAYS = 3  # the summary names at most this many breach days
HALF_A_CENT = 0.005  # the steps add up to the change when they differ by less
HTML_PERIOD_COLUMNS = 4  # wider summary tables are split, to fit a printed page


# Numbers as text ------------------------------------------------------------------------


def money(amount: float | None, currency: str, *, signed: bool = False) -> str:
    """``1,234,567.89 USD``; ``signed`` puts a ``+`` before gains; ``n/a`` for null."""
    if amount is None:
        return NOT_AVAILABLE
    return f"{amount:{'+' if signed else ''},.2f} {currency}"


def exposure(entry: Json | None, currency: str) -> str:
    """A group's exposure or drain with the group: ``1,800,000,000.00 USD (G007)``."""
    if entry is None:
        return NOT_AVAILABLE
    return f"{money(entry['amount'], currency)} ({entry['group']})"


def share(fraction: float | None) -> str:
    """A share as a percentage with one decimal: ``41.0%``."""
    return NOT_AVAILABLE if fraction is None else f"{fraction:.1%}"


def concentration_index(value: float | None) -> str:
    """A concentration index (HHI, from 0 to 1) with three decimals."""
    return NOT_AVAILABLE if value is None else f"{value:.3f}"


def seconds(duration: float) -> str:
    """A duration in whole seconds: ``3,600 s``."""
    return f"{duration:,.0f} s"


def listed(items: Sequence[str]) -> str:
    """``a, b, c``, or ``none``."""
    return ", ".join(items) or "none"


def status(period: Json) -> str:
    """``Compliant``, or ``Breach on`` its days (how many, the first and last when many)."""
    days = period["breach_days"]
    if period["status"] != BREACH:
        return str(period["status"])
    if len(days) <= LISTED_BREACH_DAYS:
        return f"{BREACH} on {listed(days)}"
    return f"{BREACH} on {len(days)} days, {days[0]} to {days[-1]}"


def multiplier(found: Json | None) -> str:
    """The shock multiplier to exhaustion k* with its scenario and groups, or ``none``."""
    if found is None:
        return "none: no multiple of the shocks exhausts the resources"
    return f"{found['k']:.2f} ({found['scenario']}: {listed(found['groups'])})"


# The document ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Heading:
    """A heading within a section."""

    text: str


@dataclass(frozen=True)
class Table:
    """A table: a header, then rows whose first cell names the row."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Charts:
    """Charts side by side, by their names in :func:`streams.tools.report_charts.charts`."""

    names: tuple[str, ...]


Block = str | Heading | Table | Charts  # a string is a paragraph


@dataclass(frozen=True)
class Section:
    """A section of the report; printed, each starts a page."""

    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class SummaryRow:
    """A row of the summary table and of a period's change: a figure of one side."""

    label: str
    side: str
    field: str
    change: str


SUMMARY_ROWS = (
    SummaryRow("Largest credit exposure C1", "credit", "c1", "c1"),
    SummaryRow("Second-largest credit exposure C2", "credit", "c2", "c2"),
    SummaryRow("Cover-2 credit exposure", "credit", "cover2", "cover2"),
    SummaryRow("Prefunded resources", "credit", "prefunded", "prefunded"),
    SummaryRow("Credit surplus", "credit", "surplus", "credit_surplus"),
    SummaryRow("Largest liquidity drain L1", "liquidity", "l1", "l1"),
    SummaryRow("Second-largest liquidity drain L2", "liquidity", "l2", "l2"),
    SummaryRow("Cover-2 liquidity drain", "liquidity", "cover2", "liquidity_cover2"),
    SummaryRow("Qualifying liquid resources", "liquidity", "qualifying", "qualifying"),
    SummaryRow("Liquidity surplus", "liquidity", "surplus", "liquidity_surplus"),
)
# The four figures an attribution follows, with their column names.
ATTRIBUTED = (("credit_cover2", "Credit cover-2"), ("credit_headroom", "Credit headroom"),
              ("liquidity_cover2", "Liquidity cover-2"),
              ("liquidity_headroom", "Liquidity headroom"))
SIDES = (("credit", "Credit"), ("liquidity", "Liquidity"))


def row_value(period: Json, row: SummaryRow, currency: str) -> str:
    """``row``'s figure of ``period`` as text: an amount, or an amount with its group."""
    value = period[row.side][row.field]
    if isinstance(value, Mapping) or value is None:
        return exposure(value, currency)
    return money(value, currency)


def summary(report: Json) -> Section:
    """What was asked and read, and the figures of every period side by side."""
    currency, periods = report["currency"], report["periods"]
    figures = Table(("", *(period["label"] for period in periods)),
                    (*((row.label, *(row_value(period, row, currency) for period in periods))
                      for row in SUMMARY_ROWS),
                     ("Status", *(status(period) for period in periods))))
    source = report["input"]
    read = Table(("Input", ""), (
        ("Records", f"{source['records']:,}"),
        ("Read", source["end"]),
        ("First event", source["first_event_iso"] or NOT_AVAILABLE),
        ("Last event", source["last_event_iso"] or NOT_AVAILABLE),
        ("Records behind an earlier time in their partition",
         f"{source['behind_in_partition']:,}")))
    about = (f"One {report['period']} per column, from {report['from']} to {report['to']} "
             f"(UTC days, inclusive), evaluated every {report['resolution_s']:g} s. Each "
             "column gives the credit figures at the period's peak credit cover-2 and the "
             f"liquidity figures at its peak liquidity cover-2. Amounts in {currency}. "
             f"Generated {report['generated_at_iso']}.")
    return Section("Summary", (about, figures, read))


def peak_table(period: Json, currency: str) -> Table:
    """A period's peaks, headroom, breaches, concentration and k*, credit beside liquidity."""
    sides = [period[side] for side, _ in SIDES]
    concentration = [period["concentration"][side] for side, _ in SIDES]
    found = [period["multiplier_to_exhaustion"][side] for side, _ in SIDES]
    rows = (
        ("Peak cover-2", *(money(side["cover2"], currency) for side in sides)),
        ("Peak at", *(side["peak_at_iso"] for side in sides)),
        ("Binding scenario at the peak", *(side["scenario"] for side in sides)),
        ("Minimum headroom", *(money(side["min_headroom"], currency) for side in sides)),
        ("Minimum headroom at", *(side["min_headroom_at_iso"] for side in sides)),
        ("Time in breach", *(seconds(side["breach_seconds"]) for side in sides)),
        ("Breach days", *(listed(side["breach_days"]) for side in sides)),
        ("Top-2 share at the peak", *(share(part["top2_share"]) for part in concentration)),
        ("HHI at the peak", *(concentration_index(part["hhi"]) for part in concentration)),
        ("Shock multiplier to exhaustion k*", *(multiplier(k) for k in found)))
    return Table(("", *(name for _, name in SIDES)), rows)


def change_blocks(period: Json, previous: Json | None, currency: str) -> tuple[Block, ...]:
    """The change of every figure from the previous period, or why there is none."""
    heading = Heading("Change from the previous period")
    if previous is None or period["change"] is None:
        return heading, "The first period of the report: no change to show."
    return heading, Table(
        ("", previous["label"], period["label"], "Change"),
        tuple((row.label, row_value(previous, row, currency), row_value(period, row, currency),
               money(period["change"][row.change], currency, signed=True))
              for row in SUMMARY_ROWS))


def attribution_blocks(period: Json, currency: str) -> tuple[Block, ...]:
    """Where the change came from, family by family, with the groups that moved most."""
    attribution = period["attribution"]
    if attribution is None:
        return ()

    def amounts(figures: Json, *, signed: bool) -> tuple[str, ...]:
        return tuple(money(figures[key], currency, signed=signed) for key, _ in ATTRIBUTED)

    header = tuple(name for _, name in ATTRIBUTED)
    steps = Table(("Step", *header), (
        (f"Start ({attribution['from_iso']})", *amounts(attribution["start"], signed=False)),
        *((family["family"].capitalize(), *amounts(family, signed=True))
          for family in attribution["families"]),
        (f"End ({attribution['to_iso']})", *amounts(attribution["end"], signed=False)),
        ("Sum of the steps", *amounts(attribution["sum"], signed=True)),
        ("Change, end minus start", *amounts(attribution["change"], signed=True))))
    groups = Table(("Group", *header), tuple(
        (entry["group"], *amounts(entry, signed=True)) for entry in attribution["top_groups"]))
    return (Heading("Attribution of the change"),
            "The change from the end of the previous period to the end of this one, step by "
            "step: positions and collateral group by group, then prices, scenarios and "
            "resources, each applied to the state the previous steps left.",
            Charts((rc.attribution_chart(period["label"]),)), steps, added_up(attribution),
            Heading("Positions and collateral: the groups that moved credit headroom most"),
            groups if groups.rows
            else "No group's positions or collateral changed either headroom.")


def added_up(attribution: Json) -> str:
    """Whether the steps add up to the whole change, as they must."""
    gap = max(abs(attribution["sum"][key] - attribution["change"][key]) for key, _ in ATTRIBUTED)
    if gap < HALF_A_CENT:
        return "The sum of the steps equals the change."
    return f"The sum of the steps differs from the change by up to {gap:,.2f}."


def period_section(period: Json, previous: Json | None, currency: str) -> Section:
    """One period: its peaks and breaches, its change and where the change came from."""
    about = (f"From {period['start_iso']} to {period['end_iso']}: {period['events']:,} input "
             f"records, {period['evaluations']:,} evaluations. Status: {status(period)}.")
    return Section(period["label"], (
        about, Heading("At the peak"), peak_table(period, currency),
        *change_blocks(period, previous, currency), *attribution_blocks(period, currency)))


def document(report: Json) -> list[Section]:
    """The report's sections, in order."""
    periods, currency = report["periods"], report["currency"]
    return [
        summary(report),
        Section("Credit", (
            "The daily peak of cover-2 credit exposure against the prefunded resources at "
            "that peak, and each day's lowest headroom; days below zero are breaches.",
            Charts((rc.CREDIT_COVER2, rc.CREDIT_HEADROOM)),
            Heading("Concentration"),
            "Each of the largest groups' share of the total credit exposure of all groups "
            "under the binding scenario, at the daily peak.",
            Charts((rc.SHARES,)))),
        Section("Liquidity", (
            "The daily peak of the cover-2 liquidity drain against the qualifying liquid "
            "resources at that peak, and each day's lowest headroom; days below zero are "
            "breaches.",
            Charts((rc.LIQUIDITY_COVER2, rc.LIQUIDITY_HEADROOM)))),
        *(period_section(period, previous, currency)
          for period, previous in zip(periods, [None, *periods], strict=False)),
    ]


# Markdown -------------------------------------------------------------------------------


def md_cell(text: str) -> str:
    """Text safe in a Markdown table cell."""
    return text.replace("|", "\\|")


def md_table(table: Table) -> str:
    """A Markdown table, the first column left, the others right-aligned."""
    lines = [table.header, (":---", *("---:" for _ in table.header[1:])), *table.rows]
    return "\n".join(f"| {' | '.join(md_cell(cell) for cell in line)} |" for line in lines)


def md_block(block: Block) -> str:
    """One block as Markdown; charts only say where they are: in the HTML page."""
    match block:
        case Heading(text):
            return f"### {text}"
        case Table():
            return md_table(block)
        case Charts():
            return "*The charts are in report.html.*"
        case _:
            return block


def markdown(report: Json) -> str:
    """The report as Markdown: the figures and tables of the HTML page, without charts."""
    parts = [f"# {report['title']}"]
    for section in document(report):
        parts += [f"## {section.title}", *(md_block(block) for block in section.blocks)]
    return "\n\n".join(parts) + "\n"


# HTML -----------------------------------------------------------------------------------


STYLE = """
@page { size: A4 landscape; margin: 12mm 14mm; }
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; font-size: 10pt;
       color: #1a1a1a; line-height: 1.4; max-width: 1200px; margin: 0 auto; padding: 24px; }
h1 { font-size: 18pt; margin: 0 0 4px; color: #1f3b5b; }
h2 { font-size: 13pt; color: #1f3b5b; border-bottom: 1.5px solid #1f3b5b;
     padding-bottom: 3px; margin: 28px 0 10px; }
h3 { font-size: 10.5pt; margin: 16px 0 6px; }
p { margin: 6px 0; max-width: 60em; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 9pt; }
th, td { padding: 3px 10px; border-bottom: 1px solid #dde1e5; vertical-align: top; }
thead th { border-bottom: 1.5px solid #1f3b5b; text-align: right; white-space: nowrap; }
thead th:first-child, tbody th { text-align: left; font-weight: normal; white-space: nowrap; }
td { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
tr { break-inside: avoid; page-break-inside: avoid; }
.compliant { color: #2e7d32; font-weight: bold; }
.breach { color: #c62828; font-weight: bold; }
.charts { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 16px;
          margin: 8px 0 12px; }
figure { margin: 0; break-inside: avoid; page-break-inside: avoid; }
figure svg { display: block; width: 100%; height: auto; }
@media print {
  body { max-width: none; padding: 0; font-size: 9pt; }
  section + section { break-before: page; page-break-before: always; }
  h2 { margin-top: 0; }
  h2, h3, h3 + p { break-after: avoid; page-break-after: avoid; }
  thead { display: table-header-group; }
}
"""
STATUS_CLASSES = ((COMPLIANT, "compliant"), (BREACH, "breach"))


def html_cell(text: str) -> str:
    """A table cell, a status in its colour."""
    tone = next((css for word, css in STATUS_CLASSES if text.startswith(word)), None)
    attribute = f' class="{tone}"' if tone else ""
    return f"<td{attribute}>{markup.escape(text)}</td>"


def html_rows(table: Table) -> str:
    """The header and body of a table."""
    header = "".join(f"<th>{markup.escape(cell)}</th>" for cell in table.header)
    body = "".join(f'<tr><th scope="row">{markup.escape(row[0])}</th>'
                   f"{''.join(html_cell(cell) for cell in row[1:])}</tr>"
                   for row in table.rows)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def html_table(table: Table) -> str:
    """A table, split into tables of at most :data:`HTML_PERIOD_COLUMNS` value columns,
    each with the row names, so that it fits a printed page."""
    columns = range(1, len(table.header), HTML_PERIOD_COLUMNS)
    return "\n".join(html_rows(Table(
        (table.header[0], *table.header[first:first + HTML_PERIOD_COLUMNS]),
        tuple((row[0], *row[first:first + HTML_PERIOD_COLUMNS]) for row in table.rows)))
        for first in columns)


def html_block(block: Block, charts: Mapping[str, str]) -> str:
    """One block as HTML; a chart that ``charts`` does not hold is left out."""
    match block:
        case Heading(text):
            return f"<h3>{markup.escape(text)}</h3>"
        case Table():
            return html_table(block)
        case Charts(names):
            figures = "".join(f"<figure>{charts[name]}</figure>" for name in names
                              if name in charts)
            return f'<div class="charts">{figures}</div>' if figures else ""
        case _:
            return f"<p>{markup.escape(block)}</p>"


def html(report: Json, charts: Mapping[str, str]) -> str:
    """The report as one standalone HTML page with ``charts`` (by name, inline SVG) in it
    and a print style; it loads nothing from anywhere."""
    title = markup.escape(report["title"])
    sections = "\n".join(
        f"<section><h2>{markup.escape(section.title)}</h2>\n"
        + "\n".join(html_block(block, charts) for block in section.blocks) + "\n</section>"
        for section in document(report))
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            f"<h1>{title}</h1>\n{sections}\n</body>\n</html>\n")


def write_pages(report: Json, out: Path) -> list[Path]:
    """Write ``report.md`` and ``report.html``, with its charts, into the folder ``out``;
    their paths."""
    pages = {out / "report.md": markdown(report),
             out / "report.html": html(report, rc.charts(report))}
    for path, text in pages.items():
        path.write_text(text, encoding="utf-8")
    return list(pages)
