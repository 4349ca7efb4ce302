"""The 通报 as a picture: per-unit figures drawn as a PNG with matplotlib (Agg, no display).

Chinese labels need a CJK font. :func:`find_cjk_font` looks through the fonts matplotlib knows for
the first of ``Settings.chart_fonts`` (Noto Sans CJK, WenQuanYi, Source Han …; Debian/Ubuntu:
``apt install fonts-noto-cjk``). Without one, :func:`render_png` logs a line, counts it, and
returns None: the caller sends the text table alone, never a picture of empty boxes.

Drawing uses matplotlib's object API (``Figure`` + ``FigureCanvasAgg``), never ``pyplot``'s global
state, so a chart can be drawn in a worker thread (:func:`render_png_async`) without blocking the
event loop or another chart.

A chart never draws more than :data:`MAX_BARS` bars: a report's chart draws the rows its message
lists (``figures.rows``, bounded by :func:`bot.reporting.reports.shown_figures`), each labelled
with its place, a gap where the middle of the ranking is left out, and the title says how many
units there are; more rows than that handed to :func:`render_png` are cut the same way.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
from base64 import b64encode
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from functools import lru_cache
from typing import Any

from bot.config.models import REPORT_ROWS, Person, Reminder
from bot.confirming.tokens import make_view_token, view_url
from bot.metrics import CHARTS
from bot.reporting.reports import UnitRow, percent, shown_indices
from bot.reporting.reports import places as reports_places
from bot.runtime import Runtime

log = logging.getLogger(__name__)

MAX_PNG_BYTES = 2 * 1024 * 1024  # WeCom robot image messages: at most 2 MB before base64
MAX_BARS = 100  # bars in one chart at most (the admin units page's page of units; ~50 s of a phone's scroll)
DEFAULT_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Source Han Sans SC", "Source Han Sans CN",
                 "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Noto Serif CJK SC", "AR PL UMing CN")
COLOURS = {"on_time": "#2e7d32", "late": "#f9a825", "overdue": "#c62828", "pending": "#cfd8dc"}
LEGEND = {"on_time": "按时确认", "late": "逾期确认", "overdue": "未确认（已过截止）", "pending": "未确认（未到截止）"}


@dataclass(frozen=True)
class Picture:
    """A rendered PNG with what the WeCom robot wants beside it: base64 text and MD5 (hex)."""

    png: bytes

    @property
    def base64(self) -> str:
        return b64encode(self.png).decode("ascii")

    @property
    def md5(self) -> str:
        return hashlib.md5(self.png, usedforsecurity=False).hexdigest()


def _families(names: str | Sequence[str] | None) -> tuple[str, ...]:
    if names is None:
        return DEFAULT_FONTS
    if isinstance(names, str):
        return tuple(n.strip() for n in names.split(",") if n.strip())
    return tuple(names)


@lru_cache(maxsize=8)
def _find(families: tuple[str, ...]) -> str | None:
    from matplotlib import font_manager

    known = {f.name: f.fname for f in font_manager.fontManager.ttflist}
    for family in families:
        if family in known and os.path.exists(known[family]):
            return known[family]
    return None


def find_cjk_font(families: str | Sequence[str] | None = None) -> str | None:
    """Path of the first installed font among ``families`` (comma-separated or a list), else None."""
    return _find(_families(families))


def _segments(row: UnitRow) -> dict[str, int]:
    return {"on_time": row.on_time, "late": row.late, "overdue": row.missing - row.pending, "pending": row.pending}


def render_png(rows: Sequence[UnitRow], title: str, *, fonts: str | Sequence[str] | None = None,
               places: Sequence[int] | None = None, gap: tuple[int, int] | None = None) -> Picture | None:
    """Draw ranked rows as stacked horizontal bars (share of each unit's expected confirmations).

    ``places``: each row's place in the whole ranking (from 1; equal figures share one; 0: nothing
    due yet, shown "—"), put before its name; None: the names alone. ``gap``: (rows before it,
    units left out) where a cut ranking skips its middle, or None. More than :data:`MAX_BARS` rows (a whole ranking)
    are cut to the first and last of :data:`~bot.config.models.REPORT_ROWS`, labelled with their
    places, and the title says so.

    Returns None, with a log line and ``remindbot_charts_total{result="no_font"}``, when no CJK
    font is installed; None too when there is nothing to draw or the PNG would exceed 2 MB.
    """
    font = find_cjk_font(fonts)
    if font is None:
        log.warning("未找到中文字体（已查找：%s），通报只发文字表格；请安装 fonts-noto-cjk",
                    "、".join(_families(fonts)))
        CHARTS.labels("no_font").inc()
        return None
    if not rows:
        return None
    if len(rows) > MAX_BARS:  # a whole ranking: the best and the last, as a report lists them
        kept = shown_indices(rows, REPORT_ROWS)
        ranks = list(places) if places is not None else reports_places(rows)
        cut = sum(1 for r in rows if r.due) > REPORT_ROWS  # else every unit with something due is kept
        head = min(REPORT_ROWS // 3, len(kept)) if cut else len(kept)
        title += "\n" + shown_note(len(rows), head, len(kept) - head)
        gap = (head, len(rows) - len(kept))
        places, rows = [ranks[i] for i in kept], [rows[i] for i in kept]
    png = _draw(list(rows), title, font, list(places) if places is not None else None, gap=gap)
    if len(png) > MAX_PNG_BYTES:
        log.warning("通报图表为 %d 字节，超过 2 MB，只发文字表格", len(png))
        CHARTS.labels("too_large").inc()
        return None
    CHARTS.labels("ok").inc()
    return Picture(png)


def _slots(gap: tuple[int, int] | None, count: int) -> tuple[list[int], list[tuple[int, int]], int]:
    """Each row's slot from the top, the gaps as (slot, units left out), and the number of slots.

    ``gap``: (rows before it, units left out), or None."""
    slots: list[int] = []
    gaps: list[tuple[int, int]] = []
    for i in range(count):
        if gap is not None and gap[1] and i == gap[0] and not gaps:
            gaps.append((len(slots), gap[1]))
        slots.append(len(slots) + len(gaps))
    return slots, gaps, count + len(gaps)


def _draw(rows: list[UnitRow], title: str, font: str, places: list[int] | None = None, *,
          gap: tuple[int, int] | None = None) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties

    prop = FontProperties(fname=font)
    slots, gaps, n = _slots(gap, len(rows))
    ys = [n - 1 - slot for slot in slots]  # best first, from the top
    fig = Figure(figsize=(8, 1.6 + 0.45 * n), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    left = [0.0] * len(rows)
    for key, colour in COLOURS.items():
        widths = [100 * _segments(r)[key] / (r.expected or 1) for r in rows]
        ax.barh(ys, widths, left=left, color=colour, height=0.6, label=LEGEND[key])
        left = [a + b for a, b in zip(left, widths, strict=True)]
    labels = [r.unit for r in rows] if places is None else [
        f"{place}. {r.unit}" if place else f"— {r.unit}" for place, r in zip(places, rows, strict=True)]
    ax.set_yticks(ys, labels, fontproperties=prop)
    for y, r in zip(ys, rows, strict=True):
        ax.text(101, y, f"{percent(r)}", va="center", fontproperties=prop, fontsize=9)
    for slot, left_out in gaps:
        ax.text(50, n - 1 - slot, f"……（中间 {left_out:,} 个单位略）", ha="center", va="center",
                fontproperties=prop, fontsize=10, color="#546e7a")
    ax.set_xlim(0, 112)
    ax.set_xticks([0, 25, 50, 75, 100], ["0", "25%", "50%", "75%", "100%"])
    ax.set_title(title, fontproperties=prop, fontsize=13)
    ax.spines[["top", "right"]].set_visible(False)
    below = -0.08 - 0.6 / (n + 3)
    ax.legend(prop=FontProperties(fname=font, size=8), loc="upper center", bbox_to_anchor=(0.5, below),
              ncol=4, frameon=False)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


async def render_png_async(rows: Sequence[UnitRow], title: str, *, fonts: str | Sequence[str] | None = None,
                           places: Sequence[int] | None = None,
                           gap: tuple[int, int] | None = None) -> Picture | None:
    """:func:`render_png` in a worker thread (drawing takes a few hundred milliseconds)."""
    return await asyncio.to_thread(render_png, rows, title, fonts=fonts, places=places, gap=gap)


# ---------------------------------------------------------------- a report's chart


def rows_of(figures: dict[str, Any]) -> list[UnitRow]:
    """The template's ``figures.rows`` (dicts) back as :class:`UnitRow` objects."""
    names = {f.name for f in fields(UnitRow)}
    return [UnitRow(**{k: v for k, v in row.items() if k in names}) for row in figures.get("rows", [])]


def places_of(figures: dict[str, Any]) -> list[int] | None:
    """The rows' places in the whole ranking when the figures leave units out, else None (names alone)."""
    return [row["place"] for row in figures["rows"]] if figures.get("more") else None


def shown_note(units: int, head: int, tail: int) -> str:
    """The title's note on a cut ranking: ``（共 20,000 个单位，显示前 10 名与后 20 名）``."""
    if not tail:  # every unit with something due is shown; the rest have nothing due yet
        return f"（共 {units:,} 个单位，显示有到期事项的 {head} 个）"
    return f"（共 {units:,} 个单位，显示前 {head} 名与后 {tail} 名）"


def chart_title(reminder: Reminder, figures: dict[str, Any]) -> str:
    """The reminder's title and period; for a cut ranking, a second line saying what is shown."""
    title = f"{reminder.title}（{figures['period']}）"
    if figures.get("more"):
        head = figures["head"]
        title += "\n" + shown_note(figures["total_units"], head, len(figures["rows"]) - head)
    return title


async def figures_png(reminder: Reminder, figures: dict[str, Any], *,
                      fonts: str | Sequence[str] | None = None) -> Picture | None:
    """A report's chart of the rows its message lists (``figures.rows``, each with its place)."""
    gap = (figures["head"], figures["more"]) if figures.get("more") else None
    return await render_png_async(rows_of(figures), chart_title(reminder, figures), fonts=fonts,
                                  places=places_of(figures), gap=gap)


def chart_token(runtime: Runtime, reminder: Reminder, person: Person | None, due_at: datetime) -> str:
    """Signed ``[reminder, due time (Unix seconds), person or ""]``: the web app redraws from it."""
    payload: list[str | int] = [reminder.id, int(due_at.timestamp()), person.id if person else ""]
    return make_view_token(runtime.link_key, "chart", payload, now=runtime.clock())


async def report_chart(runtime: Runtime, reminder: Reminder, person: Person | None, due_at: datetime,
                       figures: dict[str, Any] | None) -> tuple[Picture | None, str | None]:
    """A report's chart and its signed URL (``/chart/<token>.png``), or ``(None, None)``.

    Only ``kind: report`` reminders with figures get one; without a CJK font it is None (logged).
    """
    if reminder.kind != "report" or not figures or not figures.get("rows"):
        return None, None
    picture = await figures_png(reminder, figures, fonts=runtime.settings.chart_fonts)
    if picture is None:
        return None, None
    url = view_url(runtime.settings.base_url, "chart", chart_token(runtime, reminder, person, due_at))
    return picture, url
