"""The accountability-rate chart, drawn on the server as SVG: no script, no library, no CDN."""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape

from markupsafe import Markup

# Colour and dash both tell the lines apart, so the chart reads without colour vision too.
STYLES = (
    ("#1f5fa8", ""),
    ("#b34700", "6 3"),
    ("#2e7d32", "2 3"),
    ("#6a1b9a", "8 3 2 3"),
    ("#00696f", "4 4"),
    ("#8d6e00", "1 2"),
)
WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 150, 16, 36


def axis_floor(rates: list[float]) -> float:
    """The bottom of the rate axis: 0 when any rate is below 50 %, else the nearest 5 % step
    below the lowest rate (rates near 100 % would otherwise draw as one flat line). The axis is
    labelled, so the zoom is stated, not hidden."""
    lowest = min(rates, default=1.0)
    if lowest < 0.5:
        return 0.0
    return min(0.95, int(lowest * 20) / 20)


def rate_chart(months: list[datetime], series: dict[str, list[float | None]]) -> Markup:
    """Lines of each depot's rate (0..1) at each month-end; None (nothing on the books) is a gap."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(1, len(months) - 1)
    floor = axis_floor([rate for rates in series.values() for rate in rates if rate is not None])

    def x(i: int) -> float:
        return LEFT + i * step

    def y(rate: float) -> float:
        return TOP + (1 - rate) / (1 - floor) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'aria-labelledby="rate-chart-title rate-chart-desc" class="chart">',
        '<title id="rate-chart-title">Accountability rate by depot, '
        "last 12 month-ends and now</title>",
        '<desc id="rate-chart-desc">The same figures are in the table below the chart.</desc>',
    ]
    for n in range(5):
        tick = floor + (1 - floor) * n / 4
        ty = y(tick)
        parts.append(
            f'<line x1="{LEFT}" y1="{ty:.1f}" x2="{LEFT + plot_w}" y2="{ty:.1f}" '
            'stroke="#ccc" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{ty + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#333">{tick * 100:g}%</text>'
        )
    for i, month in enumerate(months):
        if i == len(months) - 1:
            label = "now"
        else:  # the books at the first instant of a month: name the month that just ended
            ended = month - timedelta(days=1)
            label = ended.strftime("%b %y") if ended.month == 1 or i == 0 else ended.strftime("%b")
        parts.append(
            f'<text x="{x(i):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
            f'font-size="11" fill="#333">{escape(label)}</text>'
        )
    for n, (depot, rates) in enumerate(sorted(series.items())):
        colour, dash = STYLES[n % len(STYLES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        runs: list[list[str]] = [[]]
        for i, rate in enumerate(rates):
            if rate is None:
                runs.append([])
            else:
                runs[-1].append(f"{x(i):.1f},{y(rate):.1f}")
        for run in runs:
            if len(run) > 1:
                parts.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" '
                    f'stroke-width="2.5"{dash_attr}/>'
                )
            for point in run:
                px, py = point.split(",")
                parts.append(f'<circle cx="{px}" cy="{py}" r="3" fill="{colour}"/>')
        ly = TOP + 14 + n * 18
        parts.append(
            f'<line x1="{WIDTH - RIGHT + 12}" y1="{ly - 4}" x2="{WIDTH - RIGHT + 40}" '
            f'y2="{ly - 4}" stroke="{colour}" stroke-width="2.5"{dash_attr}/>'
            f'<text x="{WIDTH - RIGHT + 46}" y="{ly}" font-size="12" fill="#111">'
            f"{escape(depot)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
