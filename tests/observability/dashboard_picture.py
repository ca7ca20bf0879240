"""Draws the Grafana dashboard's panels as one static HTML page (inline SVG), from a live
Prometheus' answers to the panels' own queries, so a headless browser can take a picture of what
the dashboard shows. Grafana itself is not packaged where this project installs from; this draws
the same queries, on the same grid, with the same units and legends, and nothing else."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

COLUMN_PX = 56  # Grafana's grid: 24 columns; a row unit is 30 px
ROW_PX = 30
COLORS = ["#73bf69", "#f2cc0c", "#5794f2", "#ff9830", "#f2495c", "#b877d9", "#8ab8ff", "#96d98d"]


@dataclass
class Series:
    legend: str
    points: list[tuple[float, float]]  # (unix seconds, value), NaN dropped


def legend_of(template: str, labels: dict) -> str:
    out = template
    for key, value in labels.items():
        out = out.replace("{{" + key + "}}", value or '""')
    return out


def fmt(value: float, unit: str) -> str:
    if math.isnan(value):
        return "-"
    if unit == "percentunit":
        return f"{value * 100:.1f}%"
    if unit == "s":
        if value >= 86400:
            return f"{value / 86400:.1f} d"
        if value >= 1:
            return f"{value:.1f} s"
        return f"{value * 1000:.1f} ms"
    if unit == "reqps":
        return f"{value:.1f} req/s"
    return f"{value:g}"


def _timeseries(series: list[Series], unit: str, width: int, height: int, span: tuple[float, float]) -> str:
    left, right, top, bottom = 70, 10, 8, 22
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for s in series for _, v in s.points]
    hi = max(values) if values else 1.0
    hi = hi * 1.1 if hi > 0 else 1.0
    t0, t1 = span

    def xy(t: float, v: float) -> str:
        x = left + (t - t0) / max(t1 - t0, 1) * plot_w
        y = top + plot_h - v / hi * plot_h
        return f"{x:.1f},{y:.1f}"

    parts = [f'<svg width="{width}" height="{height}">']
    for i in range(5):
        v = hi * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">'
                     f"{html.escape(fmt(v, unit))}</text>")
    for i, s in enumerate(series):
        if s.points:
            points = " ".join(xy(t, v) for t, v in s.points)
            parts.append(f'<polyline points="{points}" stroke="{COLORS[i % len(COLORS)]}" class="line"/>')
    parts.append(f'<text x="{left}" y="{height - 6}" class="axis">{int(t1 - t0)} s shown</text></svg>')
    return "".join(parts)


def render_html(dashboard: dict, results: dict[tuple[int, str], list[Series]],
                span: tuple[float, float], title: str) -> str:
    """results: {(panel id, refId): series}. Returns the whole page."""
    boxes = []
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        width, height = grid["w"] * COLUMN_PX - 8, grid["h"] * ROW_PX - 8
        unit = panel["fieldConfig"]["defaults"].get("unit", "short")
        series = [s for t in panel["targets"] for s in results.get((panel["id"], t["refId"]), [])]
        if panel["type"] == "stat":
            cells = "".join(
                f'<div class="stat"><div class="value" style="color:{COLORS[i % len(COLORS)]}">'
                f"{html.escape(fmt(s.points[-1][1], unit) if s.points else '-')}</div>"
                f'<div class="legend">{html.escape(s.legend)}</div></div>'
                for i, s in enumerate(series)) or '<div class="nodata">No data</div>'
            body = f'<div class="stats">{cells}</div>'
        else:
            body = _timeseries(series, unit, width - 16, height - 58, span) + '<div class="legends">' + "".join(
                f'<span><i style="background:{COLORS[i % len(COLORS)]}"></i>{html.escape(s.legend)}</span>'
                for i, s in enumerate(series)) + "</div>"
            if not series:
                body = '<div class="nodata">No data</div>'
        boxes.append(
            f'<div class="panel" style="left:{grid["x"] * COLUMN_PX}px;top:{grid["y"] * ROW_PX + 44}px;'
            f'width:{width}px;height:{height}px"><div class="title">{html.escape(panel["title"])}</div>'
            f"{body}</div>")
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"]) * ROW_PX + 52
    return f"""<!doctype html><html><head><meta charset="utf-8"><style>
body {{ margin:0; background:#111217; color:#ccccdc; font:13px DejaVu Sans, sans-serif; }}
h1 {{ font-size:16px; font-weight:500; margin:0; padding:12px 10px; }}
.board {{ position:relative; width:{24 * COLUMN_PX}px; height:{bottom}px; }}
.panel {{ position:absolute; background:#181b1f; border:1px solid #2c3235; border-radius:2px;
  padding:6px 8px; box-sizing:border-box; overflow:hidden; }}
.title {{ font-weight:500; margin-bottom:4px; }}
.grid {{ stroke:#2c3235; }} .axis {{ fill:#8e8e8e; font-size:11px; }}
.line {{ fill:none; stroke-width:1.5; }}
.legends span {{ margin-right:12px; font-size:11px; white-space:nowrap; }}
.legends i {{ display:inline-block; width:10px; height:3px; margin:0 4px 3px 0; }}
.stats {{ display:flex; gap:24px; justify-content:center; align-items:center; height:80%; }}
.stat .value {{ font-size:34px; font-weight:500; text-align:center; }}
.stat .legend, .nodata {{ text-align:center; color:#8e8e8e; }}
.nodata {{ margin-top:30px; }}
</style></head><body><h1>{html.escape(title)}</h1><div class="board">{"".join(boxes)}</div></body></html>"""
