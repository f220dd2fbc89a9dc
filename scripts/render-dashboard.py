#!/usr/bin/env python3
"""Draws a Grafana dashboard's time-series panels as one SVG, from a Prometheus.

Grafana itself is not needed (nor installable everywhere): each panel's queries run against
Prometheus' /api/v1/query_range, and the panels are laid out by their gridPos (24 columns),
with titles, axes, legends and threshold lines. Only what deploy/grafana/tfgate.json uses is
supported: timeseries panels, row panels (drawn as headings), units s, percentunit, reqps and
short, the template variables $model (all values) and Grafana's $__rate_interval/$__interval.

    scripts/render-dashboard.py --prometheus http://127.0.0.1:9090 --start 1700000000 \\
        --end 1700000180 --step 5 --rate-interval 20s [--dashboard deploy/grafana/tfgate.json] \\
        [--out docs/img/dashboard.svg]

Python 3 standard library only. scripts/dashboard-shot.sh runs it after load on the real stack.
"""

import argparse
import json
import math
import sys
import time
import urllib.parse
import urllib.request
from xml.sax.saxutils import escape

COLORS = ["#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9", "#705da0",
          "#508642", "#cca300", "#447ebc", "#c15c17"]
COLUMN = 56          # px per gridPos column (24 columns)
ROW = 30             # px per gridPos row unit
MARGIN = 16


def query_range(base, expr, start, end, step):
    data = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step}).encode()
    with urllib.request.urlopen(urllib.request.Request(base + "/api/v1/query_range", data=data), timeout=30) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body}")
    return body["data"]["result"]


def legend(fmt, labels):
    out = fmt or "{{__name__}}"
    for key, value in labels.items():
        out = out.replace("{{" + key + "}}", value).replace("{{ " + key + " }}", value)
    while "{{" in out:  # a label the series does not have
        a = out.index("{{")
        b = out.find("}}", a)
        out = out[:a] + out[b + 2:] if b > 0 else out[:a]
    return " ".join(out.split()) or "value"


def fmt_value(v, unit):
    if unit == "percentunit":
        return f"{v * 100:.3g}%"
    if unit == "s":
        if v == 0:
            return "0"
        for scale, suffix in ((1, "s"), (1e-3, "ms"), (1e-6, "µs")):
            if abs(v) >= scale:
                return f"{v / scale:.3g} {suffix}"
        return f"{v / 1e-6:.2g} µs"
    suffix = " req/s" if unit == "reqps" else ""
    for scale, s in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{s}{suffix}"
    return f"{v:.3g}{suffix}"


def nice_ticks(lo, hi, count=4):
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    t = first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    return ticks


def panel_svg(panel, series, x0, y0, w, h, start, end):
    out = [f'<g transform="translate({x0},{y0})">',
           f'<rect width="{w}" height="{h}" rx="3" fill="#181b1f" stroke="#2c3235"/>',
           f'<text x="10" y="20" fill="#d8d9da" font-size="13" font-weight="600">{escape(panel["title"])}</text>']
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    unit = defaults.get("unit", "short")
    legend_rows = max(1, math.ceil(len(series) / 2))
    legend_h = min(legend_rows, 4) * 15 + 6
    left, top, right, bottom = 62, 32, w - 12, h - 22 - legend_h
    values = [v for _, pts in series for _, v in pts if math.isfinite(v)]
    threshold = None
    steps = defaults.get("thresholds", {}).get("steps", [])
    if defaults.get("custom", {}).get("thresholdsStyle", {}).get("mode") == "line" and len(steps) > 1:
        threshold = steps[-1]["value"]
    if not values:
        out.append(f'<text x="{w / 2}" y="{h / 2}" fill="#8e8e8e" text-anchor="middle">No data</text></g>')
        return "\n".join(out)
    lo = min(0.0, min(values)) if defaults.get("min") == 0 or min(values) >= 0 else min(values)
    hi = max(values + ([threshold] if threshold is not None else []))
    if "max" in defaults:
        hi = max(hi, defaults["max"]) if hi > defaults["max"] else defaults["max"]
    if hi <= lo:
        hi = lo + (abs(lo) or 1)
    ticks = nice_ticks(lo, hi)
    lo, hi = ticks[0], ticks[-1]

    def px(t, v):
        return (left + (t - start) / (end - start) * (right - left), bottom - (v - lo) / (hi - lo) * (bottom - top))

    for t in ticks:
        _, y = px(start, t)
        out.append(f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#2c3235"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" fill="#8e8e8e" font-size="10" text-anchor="end">'
                   f'{escape(fmt_value(t, unit))}</text>')
    span = end - start
    tick_s = next(s for s in (15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200) if span / s <= 7)
    t = math.ceil(start / tick_s) * tick_s
    while t <= end:
        x, _ = px(t, lo)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}" stroke="#22252b"/>')
        out.append(f'<text x="{x:.1f}" y="{bottom + 14}" fill="#8e8e8e" font-size="10" text-anchor="middle">'
                   f'{time.strftime("%H:%M:%S", time.gmtime(t))}</text>')
        t += tick_s
    out.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#464c54"/>')
    if threshold is not None:
        _, y = px(start, threshold)
        out.append(f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e24d42" '
                   f'stroke-dasharray="6 4"/>')
    for i, (name, pts) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        path, pen_down, last_t = [], False, None
        for t, v in pts:
            if not math.isfinite(v):
                pen_down = False
                continue
            # A gap of more than two steps is a gap, as Grafana draws it (spanNulls off).
            if last_t is not None and t - last_t > 2.5 * STEP:
                pen_down = False
            x, y = px(t, v)
            path.append(f'{"L" if pen_down else "M"}{x:.1f},{y:.1f}')
            pen_down, last_t = True, t
        out.append(f'<path d="{" ".join(path)}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        if i < 8:
            lx = 12 + (i % 2) * (w - 24) / 2
            ly = h - legend_h + 4 + (i // 2) * 15
            out.append(f'<rect x="{lx}" y="{ly}" width="10" height="3" fill="{color}"/>')
            out.append(f'<text x="{lx + 14}" y="{ly + 5}" fill="#c7d0d9" font-size="10">'
                       f'{escape(name[:48])}</text>')
    if len(series) > 8:
        out.append(f'<text x="{w - 12}" y="{h - 6}" fill="#8e8e8e" font-size="10" text-anchor="end">'
                   f'+{len(series) - 8} more</text>')
    out.append("</g>")
    return "\n".join(out)


STEP = 5


def main():
    global STEP
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prometheus", required=True, help="base URL, e.g. http://127.0.0.1:9090")
    ap.add_argument("--dashboard", default="deploy/grafana/tfgate.json")
    ap.add_argument("--start", type=float, required=True, help="Unix time")
    ap.add_argument("--end", type=float, required=True, help="Unix time")
    ap.add_argument("--step", type=float, default=5, help="seconds between points")
    ap.add_argument("--rate-interval", default="20s", help="what $__rate_interval stands for")
    ap.add_argument("--title", default=None)
    ap.add_argument("--out", default="docs/img/dashboard.svg")
    args = ap.parse_args()
    STEP = args.step
    dashboard = json.load(open(args.dashboard))
    width = 24 * COLUMN + 2 * MARGIN
    height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"]) * ROW + 2 * MARGIN + 34
    title = args.title or dashboard.get("title", "dashboard")
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif">',
             f'<rect width="{width}" height="{height}" fill="#111217"/>',
             f'<text x="{MARGIN}" y="{MARGIN + 14}" fill="#d8d9da" font-size="17" font-weight="600">'
             f'{escape(title)}</text>',
             f'<text x="{width - MARGIN}" y="{MARGIN + 14}" fill="#8e8e8e" font-size="11" text-anchor="end">'
             f'{escape(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(args.start)))} to '
             f'{escape(time.strftime("%H:%M:%S UTC", time.gmtime(args.end)))}; each panel\'s own queries, '
             f'drawn by scripts/render-dashboard.py</text>']
    empty = []
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        x0, y0 = MARGIN + g["x"] * COLUMN, MARGIN + 34 + g["y"] * ROW
        if panel.get("type") == "row":
            parts.append(f'<text x="{x0}" y="{y0 + 20}" fill="#d8d9da" font-size="14" font-weight="600">'
                         f'{escape(panel["title"])}</text>')
            continue
        series = []
        for target in panel.get("targets", []):
            expr = (target["expr"].replace("$__rate_interval", args.rate_interval)
                    .replace("$__interval", f"{int(args.step)}s").replace("$model", ".*"))
            for s in query_range(args.prometheus, expr, args.start, args.end, args.step):
                pts = [(float(t), float(v)) for t, v in s["values"]]
                series.append((legend(target.get("legendFormat"), s["metric"]), pts))
        if not series:
            empty.append(panel["title"])
        parts.append(panel_svg(panel, series, x0 + 4, y0 + 4, g["w"] * COLUMN - 8, g["h"] * ROW - 8,
                               args.start, args.end))
    parts.append("</svg>")
    with open(args.out, "w") as f:
        f.write("\n".join(parts) + "\n")
    print(f"wrote {args.out}: {sum(1 for p in dashboard['panels'] if p.get('type') != 'row')} panels"
          + (f"; no data in: {', '.join(empty)}" if empty else ""), file=sys.stderr)


if __name__ == "__main__":
    main()
