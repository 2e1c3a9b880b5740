"""Small SVG charts drawn on the server (the calibration page): no script, no library,
readable without JavaScript and in a printout. Numbers and escaped labels only."""
import math

from markupsafe import Markup, escape

W, H, LEFT, RIGHT, TOP, BOTTOM = 640, 240, 56, 12, 14, 36
PALETTE = ("#0b4f9c", "#d55e00", "#009e73", "#cc79a7")


def _frame(title, x_label, y_label):
    return [f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}"'
            f' xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
            f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}" stroke="#555"/>',
            f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}" stroke="#555"/>',
            f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 4}" text-anchor="middle" font-size="12">'
            f'{escape(x_label)}</text>',
            f'<text x="12" y="{(TOP + H - BOTTOM) / 2}" font-size="12" text-anchor="middle"'
            f' transform="rotate(-90 12 {(TOP + H - BOTTOM) / 2})">{escape(y_label)}</text>']


def _x(value, low, high):
    return LEFT + (value - low) / (high - low) * (W - LEFT - RIGHT)


def _x_ticks(low, high, step):
    out, v = [], low
    while v <= high + 1e-9:
        x = _x(v, low, high)
        out.append(f'<text x="{x:.1f}" y="{H - BOTTOM + 14}" font-size="11" text-anchor="middle">{v:.1f}</text>')
        v += step
    return out


def _marker(x_value, low, high, text, colour="#000"):
    x = _x(x_value, low, high)
    return [f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{H - BOTTOM}" stroke="{colour}"'
            f' stroke-dasharray="4 3"/>',
            f'<text x="{x + 4:.1f}" y="{TOP + 10}" font-size="11">{escape(text)}</text>']


def histogram(bins, series, title, x_label, y_label, marker=None, tick=0.2):
    """Bars of several series over the same bins, each scaled to its own share (%) so a few
    genuine distances show beside millions of non-mated ones. series: [(label, counts)]."""
    parts = _frame(title, x_label, y_label)
    low, high = bins[0], bins[-1]
    shares = [[100.0 * c / max(1, sum(counts)) for c in counts] for _, counts in series]
    top = max([max(s) for s in shares if s] + [1.0])
    width = (W - LEFT - RIGHT) / (len(bins) - 1) / max(1, len(series))
    for k, share in enumerate(shares):
        for i, value in enumerate(share):
            if not value:
                continue
            h = value / top * (H - TOP - BOTTOM)
            x = _x(bins[i], low, high) + k * width
            parts.append(f'<rect x="{x:.1f}" y="{H - BOTTOM - h:.1f}" width="{width:.1f}"'
                         f' height="{h:.1f}" fill="{PALETTE[k % len(PALETTE)]}"/>')
    parts += _x_ticks(low, high, tick)
    parts.append(f'<text x="{LEFT - 4}" y="{TOP + 8}" font-size="11" text-anchor="end">{top:.0f}%</text>')
    parts += _legend([label for label, _ in series])
    if marker:
        parts += _marker(marker[0], low, high, marker[1])
    return Markup("".join(parts) + "</svg>")


def log_lines(xs, series, title, x_label, y_label, marker=None, floor=1e-9, tick=0.1):
    """Lines of rates on a log axis. series: [(label, values)] (values <= 0 sit at floor)."""
    parts = _frame(title, x_label, y_label)
    low, high = xs[0], xs[-1]
    top_exp, bottom_exp = 0, int(math.floor(math.log10(floor)))

    def y(v):
        e = math.log10(max(v, floor))
        return TOP + (top_exp - e) / (top_exp - bottom_exp) * (H - TOP - BOTTOM)

    for e in range(bottom_exp, top_exp + 1, 2):
        parts.append(f'<text x="{LEFT - 4}" y="{y(10 ** e) + 4:.1f}" font-size="11"'
                     f' text-anchor="end">1e{e}</text>')
        parts.append(f'<line x1="{LEFT}" y1="{y(10 ** e):.1f}" x2="{W - RIGHT}" y2="{y(10 ** e):.1f}"'
                     f' stroke="#ddd"/>')
    for k, (_, values) in enumerate(series):
        points = " ".join(f"{_x(x, low, high):.1f},{y(v):.1f}" for x, v in zip(xs, values))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{PALETTE[k % len(PALETTE)]}"'
                     f' stroke-width="2"/>')
    parts += _x_ticks(round(low, 1), high, tick)
    parts += _legend([label for label, _ in series])
    if marker:
        parts += _marker(marker[0], low, high, marker[1])
    return Markup("".join(parts) + "</svg>")


def _legend(labels):
    out = []
    for k, label in enumerate(labels):
        x = W - RIGHT - 200
        y = TOP + 16 + 16 * k
        out.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{PALETTE[k % len(PALETTE)]}"/>'
                   f'<text x="{x + 14}" y="{y}" font-size="11">{escape(label)}</text>')
    return out
