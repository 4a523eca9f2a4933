"""The charts of the periodic Cover-2 report, as SVG text to inline in its HTML page.

Every chart is a matplotlib :class:`~matplotlib.figure.Figure` made directly (no pyplot,
no global state) from the report's dict (``report.json``) and saved as SVG with its text
kept as text. The SVG refers to nothing, inside or outside the page: charts have no tick
marks, markers or clipping, which the SVG backend writes as ``<use href>`` and
``url(#…)``, and every element id is prefixed with the chart's name, so that several
charts on one page never share an id.

Money axes are in the report's currency with compact units (k, m, bn); the x axes are
UTC days, with the periods' boundaries as light vertical lines when there are few.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, PercentFormatter

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

Json = Mapping[str, Any]

CREDIT_COVER2 = "credit-cover2"
CREDIT_HEADROOM = "credit-headroom"
LIQUIDITY_COVER2 = "liquidity-cover2"
LIQUIDITY_HEADROOM = "liquidity-headroom"
SHARES = "shares"

EXPOSURE = "#1f3b5b"  # cover-2: the amount at risk
RESOURCES = "#8a8f96"  # what covers it
HEADROOM = "#5b7fa3"
UP, DOWN = "#2e7d32", "#c62828"
BREACH = DOWN
BREACH_SHADE = "#fbe3e3"
BOUNDARY = "#b8bec6"
GROUP_COLOURS = ("#1f3b5b", "#3d8c95", "#c98a1b", "#8e5a8a", "#7a8450", "#a0522d", "#5f6b7a")

WIDTH = 6.4  # inches; the page scales the SVG to its column
HEIGHT = 2.8
SMALL = 8.0  # points: labels, legends, period names
EPOCH = dt.date(1970, 1, 1)  # of matplotlib's date numbers, pinned in the style
SECONDS_PER_DAY = 86_400
STYLE: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",
    "date.epoch": EPOCH.isoformat(),
    "date.converter": "concise",
    "font.family": "DejaVu Sans",
    "font.size": 8.5,
    "axes.titlesize": 10.0,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.titlepad": 14.0,
    "axes.edgecolor": "#9aa0a6",
    "axes.labelcolor": "#333333",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#e6e8eb",
    "grid.linewidth": 0.7,
    "xtick.bottom": False,
    "ytick.left": False,
    "xtick.color": "#333333",
    "ytick.color": "#333333",
    "legend.frameon": False,
    "legend.fontsize": SMALL,
}
MARKED_PERIODS = 12  # boundaries and labels only up to this many periods
UNITS = ((1e9, "bn"), (1e6, "m"), (1e3, "k"))
DAY_CENTRE = 0.5  # a day's figure is drawn at noon, between its boundaries
BAR_WIDTH = 0.8


def attribution_chart(label: str) -> str:
    """The name of the waterfall of the period ``label`` in :func:`charts`."""
    return f"attribution-{label}"


# Money ----------------------------------------------------------------------------------


def unit(amount: float) -> tuple[float, str]:
    """The compact unit for ``amount``: ``(1e9, "bn")`` from a billion up, else m, k, none."""
    return next(((scale, suffix) for scale, suffix in UNITS if abs(amount) >= scale), (1.0, ""))


def compact(amount: float, *, signed: bool = False) -> str:
    """``amount`` in its compact unit with three significant digits: ``3.30bn``, ``450m``,
    ``-12.5k``; ``signed`` adds a ``+`` to gains."""
    scale, suffix = unit(amount)
    value = amount / scale
    digits = 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
    sign = "+" if signed else ""
    return f"{value:{sign},.{digits}f}{suffix}"


def money_axis(ax: Axes, currency: str) -> None:
    """The y axis of ``ax`` in ``currency``, every tick in the unit of the largest one."""

    def tick(value: float, _position: int | None) -> str:
        scale, suffix = unit(max(abs(limit) for limit in ax.get_ylim()))
        return f"{value / scale:,.6g}{suffix}" if value else "0"

    ax.yaxis.set_major_formatter(FuncFormatter(tick))
    ax.set_ylabel(currency)


# Days and periods -----------------------------------------------------------------------


def day_number(date: str) -> float:
    """A ``YYYY-MM-DD`` UTC day as matplotlib's date number (days since :data:`EPOCH`)
    of its midnight."""
    return float((dt.date.fromisoformat(date) - EPOCH).days)


def moment_number(epoch: float) -> float:
    """Epoch seconds as matplotlib's date number."""
    return epoch / SECONDS_PER_DAY


def day_centres(days: Sequence[Json]) -> np.ndarray:
    """Where each day's figure is drawn: the noon of the day."""
    return np.array([day_number(day["date"]) + DAY_CENTRE for day in days])


def daily(days: Sequence[Json], field: str) -> np.ndarray:
    """A day figure for every day, NaN where it is null (no state yet), so lines break."""
    return np.array([np.nan if day[field] is None else day[field] for day in days], dtype=float)


def date_axis(ax: Axes, report: Json) -> None:
    """UTC days on the x axis of ``ax``, from the report's first day to its last, with
    the boundaries and names of its periods when there are few enough to read."""
    ax.xaxis_date(dt.UTC)
    first, last = day_number(report["from"]), day_number(report["to"]) + 1
    ax.set_xlim(first, last)
    periods = report["periods"]
    if len(periods) > MARKED_PERIODS:
        return
    for index, period in enumerate(periods):
        start = max(moment_number(period["start"]), first)
        end = min(moment_number(period["end"]), last)
        if index:
            ax.axvline(start, color=BOUNDARY, linewidth=0.8, linestyle=(0, (4, 3)))
        ax.text((start + end) / 2, 1.01, period["label"], transform=ax.get_xaxis_transform(),
                ha="center", va="bottom", fontsize=SMALL, color="#5f6b7a")


# Figures to SVG -------------------------------------------------------------------------


def figure(height: float = HEIGHT) -> tuple[Figure, Axes]:
    """A report chart's figure and its one axes."""
    fig = Figure(figsize=(WIDTH, height), layout="constrained")
    return fig, fig.add_subplot()


def svg(fig: Figure, name: str) -> str:
    """``fig`` as SVG to inline in HTML, named ``name``: no XML prolog, no namespaces, no
    clipping (everything drawn is within its axes) and ids that are the chart's own."""
    fig.draw_without_rendering()  # makes the ticks and their grid lines
    for artist in fig.findobj():
        artist.set_clip_on(False)
    buffer = io.StringIO()
    with mpl.rc_context({"svg.hashsalt": name}):
        fig.savefig(buffer, format="svg", metadata={
            "Date": None, "Creator": None, "Format": None, "Type": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text)
    text = re.sub(r'\bid="', f'id="{re.sub(r"[^A-Za-z0-9_-]", "-", name)}-', text)
    return text.strip() + "\n"


# The charts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    """Credit or liquidity, as the days of the report carry them."""

    name: str
    peak: str
    peak_label: str
    resources: str
    resources_label: str
    min_headroom: str


CREDIT = Side("Credit", "credit_peak", "Daily peak cover-2 credit exposure", "prefunded",
              "Prefunded resources", "credit_min_headroom")
LIQUIDITY = Side("Liquidity", "liquidity_peak", "Daily peak cover-2 liquidity drain",
                 "qualifying", "Qualifying liquid resources", "liquidity_min_headroom")


def cover2_chart(report: Json, side: Side) -> Figure:
    """The daily peak cover-2 of ``side`` against the resources that cover it."""
    days = report["days"]
    fig, ax = figure()
    x = day_centres(days)
    ax.step(x, daily(days, side.resources), where="mid", color=RESOURCES, linewidth=1.6,
            label=side.resources_label)
    ax.plot(x, daily(days, side.peak), color=EXPOSURE, linewidth=1.4, label=side.peak_label)
    ax.margins(y=0.1)  # a flat line of resources at the top stays clear of the frame
    ax.set_ylim(bottom=0)
    ax.set_title(f"{side.name}: daily peak cover-2 against resources")
    fig.legend(loc="outside lower center", ncols=2)
    money_axis(ax, report["currency"])
    date_axis(ax, report)
    return fig


def headroom_chart(report: Json, side: Side) -> Figure:
    """The daily minimum headroom of ``side``: days below zero are breaches, in red on a
    red band, and the lowest of them is labelled with its amount and day."""
    days = report["days"]
    fig, ax = figure()
    x, headroom = day_centres(days), daily(days, side.min_headroom)
    breach = headroom < 0
    for centre in x[breach]:
        ax.axvspan(centre - DAY_CENTRE, centre + DAY_CENTRE, color=BREACH_SHADE, linewidth=0)
    ax.bar(x[~breach], headroom[~breach], width=BAR_WIDTH, color=HEADROOM)
    ax.bar(x[breach], headroom[breach], width=BAR_WIDTH, color=BREACH)
    ax.axhline(0, color="#333333", linewidth=0.8)
    if breach.any():
        lowest = int(np.nanargmin(headroom))
        label_lowest(ax, x[lowest], headroom[lowest], days[lowest]["date"],
                     on_the_left=lowest > len(days) / 2)
    ax.set_title(f"{side.name}: daily minimum headroom")
    fig.legend(handles=[Patch(color=HEADROOM, label="Minimum headroom"),
                        Patch(color=BREACH, label="Breach day: headroom below zero")],
               loc="outside lower center", ncols=2)
    money_axis(ax, report["currency"])
    date_axis(ax, report)
    return fig


def label_lowest(ax: Axes, x: float, headroom: float, date: str, *, on_the_left: bool) -> None:
    """The lowest headroom's amount and day beside its bar, on the side with more room."""
    ax.annotate(f"{compact(headroom)} on {date}", xy=(x, headroom),
                xytext=(-6 if on_the_left else 6, 0), textcoords="offset points",
                ha="right" if on_the_left else "left", va="center", fontsize=SMALL,
                color=BREACH, fontweight="bold")


def shares_chart(report: Json) -> Figure:
    """Each top group's share of the total credit exposure at the daily credit peak."""
    days = report["days"]
    fig, ax = figure()
    x = day_centres(days)
    for group, colour in zip(report["top_groups"], colours(), strict=False):
        share = np.array([day["shares"].get(group, np.nan) for day in days], dtype=float)
        ax.plot(x, share, color=colour, linewidth=1.3, label=group)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylabel("share of total exposure")
    ax.set_title("Top groups' share of the total credit exposure at the daily peak")
    fig.legend(loc="outside right upper", title="Group", title_fontsize=SMALL)
    date_axis(ax, report)
    return fig


def colours() -> Iterator[str]:
    """The groups' colours, over and over."""
    while True:
        yield from GROUP_COLOURS


@dataclass(frozen=True)
class Bar:
    """One bar of a waterfall: where it starts, how far it goes, its colour and label."""

    name: str
    bottom: float
    height: float
    colour: str
    label: str

    @property
    def level(self) -> float:
        """Where the next bar starts."""
        return self.bottom + self.height


def waterfall_bars(attribution: Json) -> list[Bar]:
    """The credit headroom at the start, each family's change from where the previous one
    left it, and the headroom at the end."""
    start, end = attribution["start"]["credit_headroom"], attribution["end"]["credit_headroom"]
    bars = [Bar("Start", 0.0, start, EXPOSURE, compact(start))]
    for family in attribution["families"]:
        change = family["credit_headroom"]
        bars.append(Bar(textwrap.fill(family["family"].capitalize(), 14), bars[-1].level,
                        change, UP if change >= 0 else DOWN, compact(change, signed=True)))
    return [*bars, Bar("End", 0.0, end, EXPOSURE, compact(end))]


def waterfall_chart(report: Json, period: Json) -> Figure:
    """The credit headroom from the previous period's end to this one's, family by family:
    a start and an end bar, and a floating bar for each family, green up and red down."""
    bars = waterfall_bars(period["attribution"])
    fig, ax = figure(HEIGHT + 0.4)
    for position, bar in enumerate(bars):
        drawn = ax.bar(position, bar.height, bottom=bar.bottom, width=0.6, color=bar.colour)
        ax.bar_label(drawn, [bar.label], padding=2, fontsize=SMALL)
    for position, bar in enumerate(bars[:-1]):
        ax.plot([position + 0.3, position + 0.7], [bar.level, bar.level], color="#9aa0a6",
                linewidth=0.7, linestyle=(0, (2, 2)))
    ax.axhline(0, color="#333333", linewidth=0.8)
    ax.set_xticks(range(len(bars)), [bar.name for bar in bars])
    ax.grid(axis="x", visible=False)
    ax.margins(y=0.15)
    ax.set_title(f"{period['label']}: change in credit headroom by family")
    money_axis(ax, report["currency"])
    return fig


def charts(report: Json) -> dict[str, str]:
    """Every chart of ``report`` as inline SVG by name: the cover-2 and headroom charts of
    credit and liquidity, the groups' shares, then one waterfall per period with an
    attribution (:func:`attribution_chart` names it)."""
    with mpl.rc_context(STYLE):
        return {name: svg(fig, name) for name, fig in figures(report).items()}


def figures(report: Json) -> dict[str, Figure]:
    """The charts of ``report`` as figures, by name; made under the report's style."""
    made = {
        CREDIT_COVER2: cover2_chart(report, CREDIT),
        CREDIT_HEADROOM: headroom_chart(report, CREDIT),
        LIQUIDITY_COVER2: cover2_chart(report, LIQUIDITY),
        LIQUIDITY_HEADROOM: headroom_chart(report, LIQUIDITY),
        SHARES: shares_chart(report),
    }
    return made | {attribution_chart(period["label"]): waterfall_chart(report, period)
                   for period in report["periods"] if period["attribution"] is not None}
