"""Small SVG charts drawn on the server (the calibration page): no script, no library,
readable without JavaScript and in a printout. Numbers and escaped labels only.

A chart is a figure: the SVG (its plot, axes and ticks) and, below it, its legend as HTML, so
a legend never covers a bar or a line and wraps to the page's width in any language. The SVG
scales to the width of its card; its font sizes are chosen for 700 to 1,260 px.
"""
import math

from markupsafe import Markup, escape

W, H, LEFT, RIGHT, TOP, BOTTOM = 960, 340, 78, 28, 34, 58
FONT = 15
PALETTE = ("#0b4f9c", "#d55e00", "#009e73", "#cc79a7")
# How a line is drawn: one series the thresholds use is a wide pale band under the others,
# so a line lying on it (a prior that bounds the tail) still shows; the rest are thin and dashed
# apart from each other.
STYLES = {"band": {"width": 9, "opacity": 0.35, "dash": ""},
          "solid": {"width": 2.5, "opacity": 1, "dash": ""},
          "dashed": {"width": 2.5, "opacity": 1, "dash": "9 5"},
          "dotted": {"width": 3, "opacity": 1, "dash": "2 4"}}
SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def nice_ticks(top, most=6, integer=False):
    """Evenly spaced tick values from 0 up to at least top, at most `most` + 1 of them, on a
    step of 1, 2 or 5 times a power of ten (whole numbers only with integer: counts)."""
    top = max(top, 1 if integer else 1e-9)
    raw = top / most
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw - 1e-12)
    if integer:
        step = max(1, round(step))
    count = math.ceil(top / step - 1e-9)
    return [round(step * i, 10) for i in range(count + 1)]


def plot_box():
    """(left, top, width, height) of the plot area in the SVG's coordinates."""
    return LEFT, TOP, W - LEFT - RIGHT, H - TOP - BOTTOM


def _frame(title, x_label, y_label):
    left, top, width, height = plot_box()
    return [f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}"'
            f' xmlns="http://www.w3.org/2000/svg" font-size="{FONT}"><title>{escape(title)}</title>',
            f'<rect class="plot-area" x="{left}" y="{top}" width="{width}" height="{height}"'
            f' fill="#fff"/>',
            f'<text x="{left + width / 2}" y="{H - 8}" text-anchor="middle">{escape(x_label)}</text>',
            f'<text x="18" y="{top + height / 2}" text-anchor="middle"'
            f' transform="rotate(-90 18 {top + height / 2})">{escape(y_label)}</text>']


def _axes():
    left, top, width, height = plot_box()
    return [f'<line x1="{left}" y1="{top + height}" x2="{left + width}" y2="{top + height}"'
            f' stroke="#333" stroke-width="1.5"/>',
            f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + height}" stroke="#333"'
            f' stroke-width="1.5"/>']


def _x(value, low, high):
    left, _, width, _ = plot_box()
    return left + (value - low) / (high - low) * width


def _decimals(step):
    return max(0, -math.floor(math.log10(step) + 1e-9))


def _x_ticks(low, high, step):
    out, digits = [], _decimals(step)
    base = H - BOTTOM
    for i in range(int(math.floor((high - low) / step + 1e-9)) + 1):
        v = low + i * step
        x = _x(v, low, high)
        out.append(f'<line x1="{x:.1f}" y1="{base}" x2="{x:.1f}" y2="{base + 5}" stroke="#333"/>'
                   f'<text class="x-tick" x="{x:.1f}" y="{base + 21}" text-anchor="middle">{v:.{digits}f}</text>')
    return out


def _y_tick(y, text, grid=True):
    left, _, width, _ = plot_box()
    line = (f'<line x1="{left}" y1="{y:.1f}" x2="{left + width}" y2="{y:.1f}" stroke="#ddd"/>'
            if grid else "")
    return (f'{line}<line x1="{left - 5}" y1="{y:.1f}" x2="{left}" y2="{y:.1f}" stroke="#333"/>'
            f'<text class="y-tick" x="{left - 9}" y="{y + 5:.1f}" text-anchor="end">{escape(text)}</text>')


def _marker(x_value, low, high, text):
    """A dashed vertical line, its label above the plot (never over the bars or lines)."""
    left, top, width, height = plot_box()
    x = _x(x_value, low, high)
    anchor, shift = ("end", -6) if x > left + width * 0.6 else ("start", 6)
    return [f'<line class="marker" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + height}"'
            f' stroke="#000" stroke-width="1.5" stroke-dasharray="6 4"/>',
            f'<line x1="{x:.1f}" y1="{top - 14}" x2="{x:.1f}" y2="{top}" stroke="#000"'
            f' stroke-width="1.5"/>',
            f'<text class="marker-label" x="{x + shift:.1f}" y="{top - 10}" text-anchor="{anchor}"'
            f' font-weight="700">{escape(text)}</text>']


def histogram(bins, series, title, x_label, y_label, marker=None, tick=0.2, empty=""):
    """Bars of several series over the same bins, each scaled to its own share (%) so a few
    genuine distances show beside millions of non-mated ones. series: [(label, counts)];
    marker: (x, label) or None; empty: said in the legend of a series with no counts."""
    low, high = bins[0], bins[-1]
    shares = [[100.0 * c / max(1, sum(counts)) for c in counts] for _, counts in series]
    ticks = nice_ticks(max([max(s) for s in shares if s] + [1.0]))
    top = ticks[-1]
    left, upper, width, height = plot_box()
    parts = _frame(title, x_label, y_label)
    parts += [_y_tick(upper + height - v / top * height, f"{v:g}%", grid=v > 0) for v in ticks]
    bar = width / (len(bins) - 1) / max(1, len(series))
    for k, share in enumerate(shares):
        for i, value in enumerate(share[:len(bins) - 1]):
            if value:
                h = value / top * height
                x = _x(bins[i], low, high) + k * bar
                parts.append(f'<rect x="{x:.1f}" y="{upper + height - h:.1f}" width="{bar:.1f}"'
                             f' height="{h:.1f}" fill="{PALETTE[k % len(PALETTE)]}"/>')
    parts += _axes() + _x_ticks(low, high, tick)
    if marker:
        parts += _marker(marker[0], low, high, marker[1])
    items = [_legend_box(k, label, empty if not sum(counts) else "")
             for k, (label, counts) in enumerate(series)]
    return _figure(parts, items)


def log_lines(xs, series, title, x_label, y_label, marker=None, floor=1e-9, tick=0.1, empty=""):
    """Lines of rates on a log axis. series: [(label, values)] or [(label, values, style)]
    (style a key of STYLES: "band" for the one the thresholds use, drawn under the others).
    A rate of 0 has no place on a log axis: it is left out of its line, not drawn at the floor
    along the axis where nobody sees it; a series without one rate above 0 says `empty` in
    the legend."""
    low, high = xs[0], xs[-1]
    top_exp, bottom_exp = 0, int(math.floor(math.log10(floor)))
    left, upper, width, height = plot_box()

    def y(v):
        e = math.log10(max(v, floor))
        return upper + (top_exp - e) / (top_exp - bottom_exp) * height

    parts = _frame(title, x_label, y_label)
    every = 1 if height / (top_exp - bottom_exp) >= FONT * 1.4 else 2
    for e in range(top_exp, bottom_exp - 1, -1):
        label = "1" if e == 0 else "10" + str(e).translate(SUPERSCRIPT)
        parts.append(_y_tick(y(10 ** e), label if (top_exp - e) % every == 0 else "",
                             grid=e > bottom_exp))
    styled = [(s[0], s[1], s[2] if len(s) > 2 else "solid") for s in series]
    for k, (_, values, style) in sorted(enumerate(styled), key=lambda item: item[1][2] != "band"):
        look = STYLES[style]
        for run in _positive_runs(xs, values):
            points = " ".join(f"{_x(x, low, high):.1f},{y(v):.1f}" for x, v in run)
            dash = f' stroke-dasharray="{look["dash"]}"' if look["dash"] else ""
            parts.append(f'<polyline points="{points}" fill="none" stroke="{PALETTE[k % len(PALETTE)]}"'
                         f' stroke-width="{look["width"]}" stroke-opacity="{look["opacity"]}"'
                         f' stroke-linejoin="round"{dash}/>')
    parts += _axes() + _x_ticks(round(low, 1), high, tick)
    if marker:
        parts += _marker(marker[0], low, high, marker[1])
    items = [_legend_line(k, label, style, "" if any(v > 0 for v in values) else empty)
             for k, (label, values, style) in enumerate(styled)]
    return _figure(parts, items)


def _positive_runs(xs, values):
    """[(x, v), ...] stretches of the series where v > 0 (a single point is drawn as a dot)."""
    runs, run = [], []
    for x, v in zip(xs, values):
        if v is not None and v > 0:
            run.append((x, v))
        elif run:
            runs.append(run)
            run = []
    if run:
        runs.append(run)
    return [r if len(r) > 1 else r * 2 for r in runs]


def _figure(parts, items):
    return Markup('<figure class="chart-figure">' + "".join(parts) + "</svg>"
                  + '<ul class="chart-legend">' + "".join(items) + "</ul></figure>")


def _legend_box(k, label, empty):
    colour = PALETTE[k % len(PALETTE)]
    return (f'<li><span class="swatch" style="background:{colour}"></span> {escape(label)}'
            + (f' <span class="muted">({escape(empty)})</span>' if empty else "") + "</li>")


def _legend_line(k, label, style, empty):
    look, colour = STYLES[style], PALETTE[k % len(PALETTE)]
    border = {"": "solid", "9 5": "dashed", "2 4": "dotted"}[look["dash"]]
    thick = 10 if style == "band" else 3
    opacity = f";opacity:{look['opacity'] + 0.15}" if style == "band" else ""
    return (f'<li><span class="swatch" style="border-top:{thick}px {border} {colour};height:0'
            f'{opacity}"></span> {escape(label)}'
            + (f' <span class="muted">({escape(empty)})</span>' if empty else "") + "</li>")
