#!/usr/bin/env python3
"""Draws the soak (scripts/soak.sh) as one SVG: the daemon's RSS (and nginx's workers'), its
open fds, its threads, and each phase's p99 (REST and gRPC) over time, the events as vertical
lines, the warm-up shaded. Python's standard library only.

    python3 scripts/lib/soak_plot.py OUT SVG     # OUT: the soak's samples.csv, phases.csv, events.csv, summary.json
"""

import csv
import json
import os
import sys
from xml.sax.saxutils import escape

WIDTH, LEFT, RIGHT, TOP, PANEL, GAP, BOTTOM = 960, 70, 20, 74, 120, 34, 80
COLORS = {"daemon": "#1f77b4", "nginx": "#ff7f0e", "rest": "#2ca02c", "grpc": "#9467bd"}
SHORT = {
    "nginx_reload": "nginx reload", "daemon_reload": "daemon SIGHUP", "dns_change": "DNS change",
    "redis_restart": "Redis restart", "backend_kill": "backend killed", "log_rotation": "log rotation",
}


def read(out):
    with open(os.path.join(out, "samples.csv")) as f:
        samples = list(csv.DictReader(f))
    with open(os.path.join(out, "phases.csv")) as f:
        phases = list(csv.DictReader(f))
    with open(os.path.join(out, "events.csv")) as f:
        events = list(csv.DictReader(f))
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    return samples, phases, events, summary


def nice_max(v):
    if v <= 0:
        return 1.0
    for exp in range(-3, 10):
        for step in (1, 1.2, 1.6, 2, 2.4, 3.2, 4, 6, 8):  # a quarter of each is round
            if step * 10 ** exp >= v:
                return step * 10 ** exp
    return v


def main():
    out, svg_path = sys.argv[1], sys.argv[2]
    samples, phases, events, summary = read(out)
    t_end = max([float(s["t"]) for s in samples] + [float(p["end"]) for p in phases] + [1.0]) / 60
    plot_w = WIDTH - LEFT - RIGHT
    x = lambda minutes: LEFT + plot_w * minutes / t_end

    panels = [
        ("memory (RSS, MB)", [
            ("tfgate-batcher", COLORS["daemon"], [(float(s["t"]) / 60, float(s["daemon_rss_kb"]) / 1024) for s in samples]),
            ("nginx workers", COLORS["nginx"], [(float(s["t"]) / 60, float(s["nginx_rss_kb"]) / 1024) for s in samples]),
        ], "line"),
        ("tfgate-batcher open fds", [
            ("fds", COLORS["daemon"], [(float(s["t"]) / 60, float(s["daemon_fds"])) for s in samples]),
        ], "line"),
        ("tfgate-batcher threads", [
            ("threads", COLORS["daemon"], [(float(s["t"]) / 60, float(s["daemon_threads"])) for s in samples]),
        ], "line"),
        ("p99 per phase (ms)", [
            (proto_name, COLORS[proto], [((float(p["start"]) + float(p["end"])) / 120, float(p["p99_us"]) / 1000)
                                         for p in phases if p["proto"] == proto])
            for proto, proto_name in (("rest", "REST"), ("grpc", "gRPC"))
        ], "steps"),
    ]
    height = TOP + len(panels) * (PANEL + GAP) + BOTTOM
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
    ]
    growth = summary.get("daemon_rss_growth_pct")
    title = (f"tfgate soak: {summary['minutes']} min, {summary['sent']} requests, "
             f"{summary['lost_outside_windows']} lost outside the documented windows")
    subtitle = (f"{summary['refused_in_documented_windows']} refused in them (backend killed); daemon RSS "
                f"{'%+.1f%%' % growth if growth is not None else '-'} from the first window after warm-up "
                f"(grey) to the last; dashed: events")
    svg.append(f'<text x="{LEFT}" y="18" font-size="13" font-weight="bold">{escape(title)}</text>')
    svg.append(f'<text x="{LEFT}" y="36">{escape(subtitle)}</text>')

    warm = summary["warmup_s"] / 60
    for i, (name, series, kind) in enumerate(panels):
        top = TOP + i * (PANEL + GAP)
        values = [v for _, _, pts in series for _, v in pts]
        ymax = nice_max(max(values, default=1) * 1.1)
        y = lambda v, top=top, ymax=ymax: top + PANEL - PANEL * v / ymax
        svg.append(f'<rect x="{x(0):.1f}" y="{top}" width="{x(min(warm, t_end)) - x(0):.1f}" height="{PANEL}" fill="#eeeeee"/>')
        svg.append(f'<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL}" fill="none" stroke="#888"/>')
        for k in range(5):
            v = ymax * k / 4
            svg.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
            svg.append(f'<text x="{LEFT - 5}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
        svg.append(f'<text x="{LEFT}" y="{top - 6}" font-weight="bold">{escape(name)}</text>')
        lx = LEFT + 200
        for label, color, pts in series:
            if not pts:
                continue
            if kind == "steps":
                # A phase's p99 is one number for the whole phase: a horizontal segment, with a dot.
                width = plot_w * (summary["phase_s"] / 60) / t_end
                for t, v in pts:
                    svg.append(f'<line x1="{x(t) - width / 2:.1f}" x2="{x(t) + width / 2:.1f}" y1="{y(v):.1f}" '
                               f'y2="{y(v):.1f}" stroke="{color}" stroke-width="2"/>')
                    svg.append(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2" fill="{color}"/>')
            else:
                d = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
                svg.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="1.5"/>')
            svg.append(f'<rect x="{lx}" y="{top - 14}" width="10" height="10" fill="{color}"/>')
            svg.append(f'<text x="{lx + 14}" y="{top - 5}">{escape(label)}</text>')
            lx += 30 + 7 * len(label)
        for e in events:
            ex = x(float(e["t"]) / 60)
            color = "#d62728" if e["ok"] != "1" else "#555"
            svg.append(f'<line x1="{ex:.1f}" x2="{ex:.1f}" y1="{top}" y2="{top + PANEL}" stroke="{color}" '
                       'stroke-dasharray="4,3"/>')
    # The time axis under the last panel, then the event names, turned so that close events do
    # not overlap.
    axis = TOP + len(panels) * (PANEL + GAP) - GAP + 14
    step = next(m * 10 ** e for e in range(-3, 6) for m in (1, 2, 5) if m * 10 ** e >= t_end / 10)
    t = 0.0
    while t <= t_end + 1e-9:
        svg.append(f'<text x="{x(t):.1f}" y="{axis}" text-anchor="middle">{t:g}</text>')
        t += step
    svg.append(f'<text x="{WIDTH - RIGHT}" y="{axis + 14}" text-anchor="end">minutes</text>')
    base = axis + 14
    for e in events:
        ex = x(float(e["t"]) / 60)
        svg.append(f'<text x="{ex:.1f}" y="{base}" transform="rotate(35 {ex:.1f} {base})" font-size="10">'
                   f'{escape(SHORT.get(e["kind"], e["kind"]))}</text>')
    svg.append("</svg>")
    os.makedirs(os.path.dirname(os.path.abspath(svg_path)), exist_ok=True)
    with open(svg_path, "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()
