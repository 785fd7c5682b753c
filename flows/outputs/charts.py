"""The monthly page's charts as inline SVG text: bars toward a target, a month-by-month line, a
heatmap of reporting. Drawn here rather than by a charting library so that the page fetches
nothing (no scripts, fonts or images) and opens the same on an office PC with no network.

Every function takes plain rows and returns one `<svg>` element. Texts are escaped here; numbers
shown are formatted by the caller (flows.report.fmt) so the page and the printed table agree.
"""
from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from html import escape

from flows.config import add_months

STATUS_COLOURS = {"met": "#2e7d32", "on_track": "#1565c0", "at_risk": "#ef6c00", "not_met": "#c62828"}
NO_STATUS = "#9e9e9e"
# ColorBrewer "YlGnBu" (sequential): pale yellow for no report received, dark blue for all of
# them. Its light end is still visibly coloured, unlike a white-to-blue ramp, so that a month with
# nothing received does not look like an empty cell.
SHARE_PALETTE = ("#ffffd9", "#edf8b1", "#c7e9b4", "#7fcdbb", "#41b6c4", "#1d91c0", "#225ea8", "#253494",
                 "#081d58")
NOTHING_EXPECTED = "#e0e0e0"
INK, MUTED, GRID = "#212121", "#616161", "#e0e0e0"
ACTUAL = "#37474f"
# Value labels cross grid and target lines; a white outline keeps them readable.
HALO = 'paint-order="stroke" stroke="#fff" stroke-width="3" stroke-linejoin="round"'


def status_colour(status: str | None) -> str:
    return STATUS_COLOURS.get(status or "", NO_STATUS)


def text_width(s: str, size: float) -> float:
    """Rough width in px: CJK characters are one em, the rest about 0.6 em (enough for layout)."""
    return sum(size if unicodedata.east_asian_width(c) in "WF" else 0.6 * size for c in s)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi], steps of 1, 2, 2.5 or 5 times a power of ten."""
    if hi <= lo:
        hi = lo + (abs(lo) * 0.1 or 1)
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-9))
    start = math.floor(lo / step + 1e-9) * step
    n = math.ceil((hi - start) / step - 1e-9)
    return [round(start + i * step, 10) for i in range(n + 1)]


def tick_label(v: float, ticks: list[float]) -> str:
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1
    decimals = next(d for d in range(6) if abs(round(step, d) - step) < 1e-9 * max(1, abs(step)))
    return f"{v:,.{decimals}f}"


def share_colour(share: float) -> str:
    """The palette interpolated at share (0..1)."""
    pos = min(max(share, 0.0), 1.0) * (len(SHARE_PALETTE) - 1)
    i = min(int(pos), len(SHARE_PALETTE) - 2)
    a, b = SHARE_PALETTE[i], SHARE_PALETTE[i + 1]
    f = pos - i
    rgb = [round(int(a[k:k + 2], 16) * (1 - f) + int(b[k:k + 2], 16) * f) for k in (1, 3, 5)]
    return "#" + "".join(f"{c:02x}" for c in rgb)


def _n(x: float) -> str:
    return f"{x:.1f}"


def _text(x, y, s, *, size=12, anchor="start", fill=INK, weight=None, cls=None, halo=False, extra="") -> str:
    attrs = f'x="{_n(x)}" y="{_n(y)}" font-size="{size}" fill="{fill}"'
    if anchor != "start":
        attrs += f' text-anchor="{anchor}"'
    if weight:
        attrs += f' font-weight="{weight}"'
    if cls:
        attrs += f' class="{cls}"'
    if halo:
        attrs += " " + HALO
    return f"<text {attrs}{extra}>{escape(s)}</text>"


def _svg(width: float, height: float, label: str, body: list[str]) -> str:
    w, h = math.ceil(width), math.ceil(height)
    return (f'<svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{escape(label)}">'
            f"<title>{escape(label)}</title>{''.join(body)}</svg>")


# ---------------------------------------------------------------------------------------------
# Progress toward a target: one horizontal bar per unit
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bar:
    code: str
    name: str
    value: float | None
    target: float | None
    status: str | None
    label: str          # the value as shown, with its unit
    tooltip: str        # hover text: value, target, gap, status
    emphasis: bool = False  # the city's own bar, above its counties


def progress_chart(bars: list[Bar], target_label: str, label: str, width: int = 520) -> str:
    """Bars from zero to each unit's value, coloured by status, with the target as a dashed line."""
    row_h, bar_h, top, bottom = 26, 16, 24, 24
    left = max(text_width(b.name, 12) for b in bars) + 14
    right = max(text_width(b.label, 11) for b in bars) + 12
    plot_w = width - left - right
    height = top + row_h * len(bars) + bottom
    plot_bottom = top + row_h * len(bars)
    ticks = nice_ticks(0, max([b.value or 0 for b in bars] + [b.target or 0 for b in bars]) or 1, 4)
    x = lambda v: left + plot_w * max(0.0, v) / ticks[-1]

    grid, rects, marks, texts = [], [], [], []
    for t in ticks:
        grid.append(f'<line x1="{_n(x(t))}" y1="{top}" x2="{_n(x(t))}" y2="{plot_bottom}" stroke="{GRID}"/>')
        texts.append(_text(x(t), plot_bottom + 15, tick_label(t, ticks), size=10, anchor="middle", fill=MUTED))
    for i, b in enumerate(bars):
        cy = top + row_h * i + row_h / 2
        # A zero still gets a sliver, so that its status colour shows.
        end = max(x(b.value), left + 2) if b.value is not None else left
        rects.append(f'<rect class="bar" data-unit="{escape(b.code)}" data-status="{escape(b.status or "")}" '
                     f'x="{_n(left)}" y="{_n(cy - bar_h / 2)}" width="{_n(end - left)}" height="{bar_h}" '
                     f'rx="2" fill="{status_colour(b.status)}"><title>{escape(b.tooltip)}</title></rect>')
        texts.append(_text(left - 8, cy + 4, b.name, anchor="end", weight="bold" if b.emphasis else None))
        texts.append(_text(end + 4, cy + 4, b.label, size=11, cls="value", halo=True,
                           extra=f' data-unit="{escape(b.code)}"'))
        if b.emphasis and i + 1 < len(bars):
            grid.append(f'<line x1="4" y1="{_n(cy + row_h / 2)}" x2="{width - 4}" y2="{_n(cy + row_h / 2)}" '
                        f'stroke="#bdbdbd"/>')
    targets = {b.target for b in bars if b.target is not None}
    if len(targets) == 1:
        tx = x(targets.pop())
        marks.append(f'<line class="target" x1="{_n(tx)}" y1="{top - 6}" x2="{_n(tx)}" y2="{plot_bottom}" '
                     f'stroke="{INK}" stroke-width="1.5" stroke-dasharray="5 3"/>')
        # Centred on the line, but kept inside the picture when the target sits near an edge.
        half = text_width(target_label, 11) / 2 + 2
        texts.append(_text(min(max(tx, half), width - half), top - 9, target_label, size=11, anchor="middle",
                           weight="bold"))
    else:  # targets differ between units: a tick across each bar, and no single figure to print
        for i, b in enumerate(bars):
            if b.target is not None:
                cy = top + row_h * i + row_h / 2
                marks.append(f'<line class="target" x1="{_n(x(b.target))}" y1="{_n(cy - bar_h / 2 - 3)}" '
                             f'x2="{_n(x(b.target))}" y2="{_n(cy + bar_h / 2 + 3)}" stroke="{INK}" stroke-width="2"/>')
        texts.append(_text(left, top - 9, "竖线为各单位的目标", size=11, weight="bold"))
    return _svg(width, height, label, grid + rects + marks + texts)


# ---------------------------------------------------------------------------------------------
# A value month by month, its target, and the projection to the deadline
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Point:
    period: str          # YYYY-MM
    value: float
    target: float | None
    tooltip: str


@dataclass(frozen=True)
class Projection:
    deadline: str        # YYYY-MM, the deadline's month
    value: float
    status: str
    label: str


def trend_chart(points: list[Point], projection: Projection | None, status: str | None, value_label: str,
                target_label: str, unit: str, label: str, width: int = 520, height: int = 230) -> str:
    """Line of the monthly values, dashed target, dotted projection to the deadline month; the
    current month's point in the colour of its status."""
    first, current = points[0].period, points[-1].period
    last = max(current, projection.deadline) if projection else current
    months = [first]
    while months[-1] < last:
        months.append(add_months(months[-1], 1))
    index = {m: i for i, m in enumerate(months)}

    ys = [p.value for p in points] + [p.target for p in points if p.target is not None]
    if projection:
        ys.append(projection.value)
    lo, hi = min(ys), max(ys)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.1 or 1
    ticks = nice_ticks(lo - pad if lo - pad > 0 or lo < 0 else 0, hi + pad, 4)
    top, bottom, right = 22, 34, 16
    left = max(text_width(tick_label(t, ticks), 10) for t in ticks) + 12
    plot_w, plot_h = width - left - right, height - top - bottom
    x = lambda m: left + (plot_w * index[m] / (len(months) - 1) if len(months) > 1 else plot_w / 2)
    y = lambda v: top + plot_h * (1 - (v - ticks[0]) / (ticks[-1] - ticks[0]))

    body = [_text(4, 12, unit, size=10, fill=MUTED)]
    for t in ticks:
        body.append(f'<line x1="{_n(left)}" y1="{_n(y(t))}" x2="{_n(width - right)}" y2="{_n(y(t))}" stroke="{GRID}"/>')
        body.append(_text(left - 6, y(t) + 3.5, tick_label(t, ticks), size=10, anchor="end", fill=MUTED))
    # Month labels from the last one backwards, as many as fit (about 62 px each).
    step = max(1, math.ceil(len(months) / max(1, plot_w // 62)))
    for i in range(len(months) - 1, -1, -step):
        body.append(_text(x(months[i]), height - bottom + 16, months[i], size=10, anchor="middle", fill=MUTED,
                          cls="month"))
    if projection and current != last:
        cx = x(current)
        body.append(f'<line x1="{_n(cx)}" y1="{top}" x2="{_n(cx)}" y2="{_n(top + plot_h)}" stroke="#bdbdbd" '
                    f'stroke-dasharray="1 2"/>')

    # Target: each month's own (it can change by year), carried on to the end of the axis.
    tpoints = [(x(p.period), y(p.target)) for p in points if p.target is not None]
    if tpoints:
        tpoints.append((x(last), tpoints[-1][1]))
        body.append(f'<polyline class="target" points="{" ".join(f"{_n(a)},{_n(b)}" for a, b in tpoints)}" '
                    f'fill="none" stroke="{INK}" stroke-width="1.5" stroke-dasharray="6 4"/>')
    if projection:
        px, py = x(projection.deadline), y(projection.value)
        colour = status_colour(projection.status)
        body.append(f'<line class="projection" x1="{_n(x(current))}" y1="{_n(y(points[-1].value))}" x2="{_n(px)}" '
                    f'y2="{_n(py)}" stroke="{colour}" stroke-width="2" stroke-dasharray="2 3"/>')
        body.append(f'<circle cx="{_n(px)}" cy="{_n(py)}" r="4" fill="#fff" stroke="{colour}" stroke-width="2"/>')

    coords = [(x(p.period), y(p.value)) for p in points]
    # Months without a value are gaps in the line, not a straight bridge across them.
    runs, run = [], [coords[0]]
    for (p0, p1), c in zip(zip(points, points[1:]), coords[1:]):
        if add_months(p0.period, 1) == p1.period:
            run.append(c)
        else:
            runs.append(run)
            run = [c]
    runs.append(run)
    for r in runs:
        if len(r) > 1:
            body.append(f'<polyline class="actual" points="{" ".join(f"{_n(a)},{_n(b)}" for a, b in r)}" '
                        f'fill="none" stroke="{ACTUAL}" stroke-width="2"/>')
    for p, (cx, cy) in zip(points, coords):
        last_point = p is points[-1]
        fill = status_colour(status) if last_point else ACTUAL
        body.append(f'<circle class="point" data-period="{p.period}" cx="{_n(cx)}" cy="{_n(cy)}" '
                    f'r="{4.5 if last_point else 3}" fill="{fill}"><title>{escape(p.tooltip)}</title></circle>')

    # Labels last, each at the first of its candidate places that covers no point and no label
    # placed before it (a value equal to its target would otherwise print over the target's label).
    taken = [(cx - 5, cy - 5, cx + 5, cy + 5) for cx, cy in coords]
    if projection:
        taken.append((px - 5, py - 5, px + 5, py + 5))
    cx, cy = coords[-1]
    side = "end" if cx > left + plot_w / 2 else "start"
    dx = -8 if side == "end" else 8
    body.append(_place(taken, value_label, 11, [(cx + dx, cy - 8, side), (cx + dx, cy + 16, side)],
                       (top, height - bottom), weight="bold", cls="value"))
    if projection:
        body.append(_place(taken, projection.label, 11, [(px - 6, py - 8, "end"), (px - 6, py + 16, "end")],
                           (top, height - bottom), fill=status_colour(projection.status)))
    if tpoints:
        ty, r_edge = tpoints[0][1], width - right
        mid = left + plot_w / 2
        body.append(_place(taken, target_label, 11, [
            (left + 4, ty - 6, "start"), (left + 4, ty + 14, "start"), (mid, ty - 6, "middle"),
            (mid, ty + 14, "middle"), (r_edge - 4, ty - 6, "end"), (r_edge - 4, ty + 14, "end")],
            (top, height - bottom)))
    return _svg(width, height, label, body)


def _box(x: float, y: float, s: str, size: float, anchor: str) -> tuple[float, float, float, float]:
    w = text_width(s, size)
    x0 = x - w if anchor == "end" else x - w / 2 if anchor == "middle" else x
    return (x0 - 2, y - size, x0 + w + 2, y + 3)


def _place(taken: list, s: str, size: float, candidates: list, bounds: tuple[float, float], **style) -> str:
    """The label at the first candidate (x, y, anchor) clear of `taken` and inside the plot's
    height (else at the first candidate); its box is added to `taken`."""
    def clear(box):
        inside = box[1] >= bounds[0] - size and box[3] <= bounds[1] + 2
        return inside and all(box[2] <= t[0] or box[0] >= t[2] or box[3] <= t[1] or box[1] >= t[3] for t in taken)
    x, y, anchor = next((c for c in candidates if clear(_box(*c[:2], s, size, c[2]))), candidates[0])
    taken.append(_box(x, y, s, size, anchor))
    return _text(x, y, s, size=size, anchor=anchor, halo=True, **style)


def no_data_chart(label: str, message: str, width: int = 520, height: int = 120) -> str:
    """A chart's place kept, saying why it is empty (every indicator with a target gets one)."""
    return _svg(width, height, label, [
        f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" fill="#f0f0f0" stroke="{GRID}"/>',
        _text(width / 2, height / 2 + 5, message, size=14, anchor="middle", fill=MUTED)])


# ---------------------------------------------------------------------------------------------
# Heatmap: share of expected reports received, units by month
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HeatRow:
    code: str
    name: str
    group: str           # the county (or the city) the row is listed under


@dataclass(frozen=True)
class HeatCell:
    expected: int
    received: int
    on_time: int


def heatmap(rows: list[HeatRow], months: list[str], cells: dict[tuple[str, str], HeatCell],
            cell_title, label: str, max_width: int = 1040) -> str:
    """Rows under their group, one column per month, colour = received / expected."""
    group_w = max(text_width(r.group, 12) for r in rows) + 14
    name_w = max(text_width(r.name, 11) for r in rows) + 12
    row_h, top = 17, 40
    cell_w = max(14.0, min(56.0, (max_width - group_w - name_w - 8) / len(months)))
    x0 = group_w + name_w
    grid_bottom = top + row_h * len(rows)
    legend_w = 240
    width = max(x0 + cell_w * len(months) + 8, x0 + legend_w + 110)
    height = grid_bottom + 52

    body = []
    # Column heads: the year where it starts (or at the first column), the month number below.
    for j, m in enumerate(months):
        cx = x0 + cell_w * j + cell_w / 2
        if j == 0 or m.endswith("-01"):
            body.append(_text(x0 + cell_w * j + 1, 14, m[:4] + "年", size=10, fill=MUTED))
        body.append(_text(cx, top - 8, f"{int(m[5:])}月", size=10, anchor="middle", fill=MUTED, cls="month"))
    previous_group = None
    for i, r in enumerate(rows):
        ry = top + row_h * i
        if r.group != previous_group:
            if i:
                body.append(f'<line x1="0" y1="{_n(ry)}" x2="{_n(x0 + cell_w * len(months))}" y2="{_n(ry)}" '
                            f'stroke="{INK}" stroke-width="1"/>')
            body.append(_text(0, ry + 12.5, r.group, size=12, weight="bold"))
            previous_group = r.group
        body.append(_text(x0 - 6, ry + 12.5, r.name, size=11, anchor="end"))
        for j, m in enumerate(months):
            cell = cells.get((r.code, m))
            fill = share_colour(cell.received / cell.expected) if cell and cell.expected else NOTHING_EXPECTED
            body.append(f'<rect class="cell" data-unit="{escape(r.code)}" data-period="{m}" '
                        f'x="{_n(x0 + cell_w * j)}" y="{_n(ry)}" width="{_n(cell_w)}" height="{row_h}" '
                        f'fill="{fill}" stroke="#fff" stroke-width="1">'
                        f'<title>{escape(cell_title(r, m, cell))}</title></rect>')
    body.append(f'<rect x="{_n(x0)}" y="{top}" width="{_n(cell_w * len(months))}" height="{row_h * len(rows)}" '
                f'fill="none" stroke="#bdbdbd"/>')
    # Legend: the palette as a gradient, 0 % to 100 %.
    ly, lx = grid_bottom + 14, x0
    stops = "".join(f'<stop offset="{i / (len(SHARE_PALETTE) - 1):.3f}" stop-color="{c}"/>'
                    for i, c in enumerate(SHARE_PALETTE))
    body.append(f'<defs><linearGradient id="share-gradient">{stops}</linearGradient></defs>')
    body.append(_text(lx - 6, ly + 10, "已报比例", size=11, anchor="end"))
    body.append(f'<rect class="legend" x="{_n(lx)}" y="{_n(ly)}" width="{legend_w}" height="12" '
                f'fill="url(#share-gradient)" stroke="#bdbdbd"/>')
    for share in (0, 0.25, 0.5, 0.75, 1):
        tx = lx + legend_w * share
        body.append(f'<line x1="{_n(tx)}" y1="{_n(ly + 12)}" x2="{_n(tx)}" y2="{_n(ly + 16)}" stroke="{MUTED}"/>')
        body.append(_text(tx, ly + 28, f"{share:.0%}", size=10, anchor="middle", fill=MUTED))
    nx = lx + legend_w + 24
    body.append(f'<rect x="{_n(nx)}" y="{_n(ly)}" width="18" height="12" fill="{NOTHING_EXPECTED}"/>')
    body.append(_text(nx + 24, ly + 10, "该月无应报", size=11))
    return _svg(width, height, label, body)
