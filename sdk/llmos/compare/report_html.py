"""The HTML report: one self-contained file, readable offline, charts drawn as inline SVG.

Nothing is loaded from anywhere: no CDN, no font, no image, and a Content-Security-Policy that
forbids any fetch, so the file shows the same on a laptop in a plane. The charts are generated
here in Python: quality against price (scatter), latency and throughput per target (bars), and
the weighted score breakdown (stacked bars). Each chart is ``<svg class="chart" id="...">``; a
few lines of inline script mark each one ``data-rendered`` once the browser has laid it out.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from html import escape
from typing import Any

from llmos.compare.model import TargetScore, TargetSummary
from llmos.compare.report import (
    COSTS,
    MEASURES,
    Report,
    code_note,
    fmt_measure,
    fmt_metric,
    fmt_usd,
    na,
    perplexity_note,
    quality_index,
    rubric_lines,
    rubric_table,
    scoring_rules,
    weights_text,
)

__all__ = ["CHART_IDS", "render_html"]

#: The ids of the charts every report has, in page order.
CHART_IDS = ("quality-vs-price", "latency", "throughput", "score-breakdown")

_PALETTE = ("#2563eb", "#f97316", "#16a34a", "#dc2626", "#9333ea", "#0891b2", "#ca8a04", "#db2777")
_WIDTH = 900
_LABEL_W = 260  # room for target names left of horizontal bars
_BAR_H = 18
_ROW_GAP = 10

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;
max-width:1000px;color:#111827;background:#fff;line-height:1.4}
h1{font-size:1.6em;margin-bottom:0}h2{margin-top:2em;border-bottom:1px solid #e5e7eb}
table{border-collapse:collapse;margin:8px 0;font-size:.9em}
th,td{border:1px solid #e5e7eb;padding:4px 8px;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f4f6}
.na{color:#6b7280;font-style:italic}.meta{color:#4b5563}.chart-note{color:#6b7280;font-size:.9em}
svg.chart{display:block;margin:12px 0;background:#fff}
svg text{font-family:inherit;font-size:12px;fill:#111827}svg .axis{stroke:#9ca3af}
svg .grid{stroke:#e5e7eb}.legend span{display:inline-block;margin-right:16px}
.swatch{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}
pre{background:#f9fafb;padding:8px;overflow:auto}.wide{overflow-x:auto}
"""

_SCRIPT = """
window.addEventListener("load", function () {
  var charts = document.querySelectorAll("svg.chart"), rendered = 0;
  for (var i = 0; i < charts.length; i++) {
    var box = charts[i].getBBox();
    if (box.width > 0 && box.height > 0) {
      charts[i].setAttribute("data-rendered", "yes");
      rendered++;
    }
  }
  document.documentElement.setAttribute("data-charts-rendered", String(rendered));
});
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _cell(text: str, numeric: bool = False) -> str:
    if text.startswith("n/a"):
        return f'<td class="na">{_e(text)}</td>'
    return f'<td class="num">{_e(text)}</td>' if numeric else f"<td>{_e(text)}</td>"


def _color(i: int) -> str:
    return _PALETTE[i % len(_PALETTE)]


def _ticks(top: float, n: int = 5) -> list[float]:
    return [top * i / n for i in range(n + 1)]


def _tick(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _nice_top(value: float) -> float:
    """A round axis maximum at or above ``value``."""
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** _floor_log10(value)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _floor_log10(value: float) -> int:
    exponent = 0
    while value >= 10:
        value /= 10
        exponent += 1
    while value < 1:
        value *= 10
        exponent -= 1
    return exponent


def _svg(chart_id: str, title: str, height: int, body: list[str]) -> str:
    return (
        f'<svg class="chart" id="{chart_id}" '
        f'width="{_WIDTH}" height="{height}" viewBox="0 0 {_WIDTH} {height}" role="img" '
        f'aria-label="{_e(title)}"><title>{_e(title)}</title>' + "".join(body) + "</svg>"
    )


# --------------------------------------------------------------------------- charts


def quality_vs_price(report: Report) -> tuple[str, list[str]]:
    """Scatter of quality score (y) against cost per item (x); returns (svg, not plotted)."""
    points: list[tuple[str, float, float, int]] = []
    left_out: list[str] = []
    for i, score in enumerate(report.ranked()):
        quality = quality_index(score)
        summary = report.overall(score.target)
        price = summary.cost_per_item_usd if summary is not None else None
        if quality.value is None:
            left_out.append(f"{score.target}: quality {na(quality.reason)}")
        elif price is None or price.value is None:
            left_out.append(
                f"{score.target}: price {na(price.reason if price is not None else None)}"
            )
        else:
            points.append((score.target, price.value, quality.value, i))
    height, left, right, top, bottom = 420, 80, 40, 20, 60
    plot_w, plot_h = _WIDTH - left - right, height - top - bottom
    x_top = _nice_top(max((p[1] for p in points), default=0.0))
    body: list[str] = []
    for t in _ticks(x_top):
        x = left + plot_w * t / x_top
        body.append(
            f'<line class="grid" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}"/>'
        )
        label = _e(fmt_usd(t))
        body.append(
            f'<text x="{x:.1f}" y="{top + plot_h + 18}" text-anchor="middle">{label}</text>'
        )
    for t in _ticks(100.0):
        y = top + plot_h - plot_h * t / 100
        body.append(
            f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}"/>'
        )
        body.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{t:.0f}</text>')
    body.append(
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" '
        f'y2="{top + plot_h}"/><line class="axis" x1="{left}" y1="{top}" x2="{left}" '
        f'y2="{top + plot_h}"/>'
    )
    body.append(
        f'<text x="{left + plot_w / 2}" y="{height - 15}" text-anchor="middle">cost per item '
        "(USD)</text>"
        f'<text x="18" y="{top + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 18 {top + plot_h / 2})">quality index (0–100)</text>'
    )
    for target, usd, score_q, i in points:
        x = left + plot_w * usd / x_top
        y = top + plot_h - plot_h * max(0.0, min(score_q, 100.0)) / 100
        anchor = "end" if x > left + plot_w * 0.7 else "start"
        dx = -10 if anchor == "end" else 10
        body.append(
            f'<circle class="point" data-target="{_e(target)}" cx="{x:.1f}" cy="{y:.1f}" r="7" '
            f'fill="{_color(i)}"><title>{_e(target)}: quality {score_q:.1f}, '
            f"{_e(fmt_usd(usd))} per item</title></circle>"
            f'<text x="{x + dx:.1f}" y="{y - 10:.1f}" text-anchor="{anchor}">{_e(target)}</text>'
        )
    return _svg("quality-vs-price", "Quality against price", height, body), left_out


def _hbars(
    chart_id: str,
    title: str,
    series: Sequence[tuple[str, str]],
    rows: Sequence[tuple[str, list[tuple[float | None, str]]]],
    unit: str,
) -> str:
    """Horizontal grouped bars: one group per row label, one bar per series.

    ``rows`` holds (label, [(value or None, text shown), ...]); a None value draws no bar and
    writes its text (an n/a reason) instead.
    """
    per_group = len(series) * (_BAR_H + 2) + _ROW_GAP
    top, bottom = 10, 40
    height = top + bottom + max(1, len(rows)) * per_group
    plot_w = _WIDTH - _LABEL_W - 120
    values = [v for _, bars in rows for v, _ in bars if v is not None]
    x_top = _nice_top(max(values, default=0.0))
    body: list[str] = []
    plot_bottom = height - bottom
    for t in _ticks(x_top):
        x = _LABEL_W + plot_w * t / x_top
        body.append(
            f'<line class="grid" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{plot_bottom}"/>'
            f'<text x="{x:.1f}" y="{plot_bottom + 16}" text-anchor="middle">{_tick(t)}</text>'
        )
    body.append(
        f'<text x="{_LABEL_W + plot_w / 2}" y="{height - 6}" text-anchor="middle">{_e(unit)}</text>'
    )
    for g, (label, bars) in enumerate(rows):
        y0 = top + g * per_group
        mid = y0 + len(series) * (_BAR_H + 2) / 2
        body.append(
            f'<text x="{_LABEL_W - 8}" y="{mid + 4:.1f}" text-anchor="end">{_e(label)}</text>'
        )
        for s, ((value, text), (name, color)) in enumerate(zip(bars, series, strict=True)):
            y = y0 + s * (_BAR_H + 2)
            if value is None:
                body.append(
                    f'<text class="na" x="{_LABEL_W + 4}" y="{y + _BAR_H - 5}" '
                    f'fill="#6b7280">{_e(name)}: {_e(text)}</text>'
                )
                continue
            w = max(1.0, plot_w * value / x_top)
            body.append(
                f'<rect class="bar" data-target="{_e(label)}" data-series="{_e(name)}" '
                f'x="{_LABEL_W}" y="{y}" width="{w:.1f}" height="{_BAR_H}" fill="{color}">'
                f"<title>{_e(label)} · {_e(name)}: {_e(text)}</title></rect>"
                f'<text x="{_LABEL_W + w + 6:.1f}" y="{y + _BAR_H - 5}">{_e(text)}</text>'
            )
    body.append(
        f'<line class="axis" x1="{_LABEL_W}" y1="{top}" x2="{_LABEL_W}" y2="{plot_bottom}"/>'
    )
    return _svg(chart_id, title, height, body)


def _legend(series: Sequence[tuple[str, str]]) -> str:
    items = "".join(
        f'<span><i class="swatch" style="background:{color}"></i>{_e(name)}</span>'
        for name, color in series
    )
    return f'<p class="legend">{items}</p>'


def latency_chart(report: Report) -> str:
    """p50 time to first token and p50 total latency per target."""
    series = [("TTFT p50", _color(0)), ("latency p50", _color(1))]
    rows = []
    for score in report.ranked():
        s = report.overall(score.target)
        bars: list[tuple[float | None, str]] = []
        for name in ("ttft_p50_s", "latency_p50_s"):
            value = getattr(s, name) if s is not None else None
            text = fmt_measure(s, name, "s") if s is not None else na("no summary")
            bars.append((value, text))
        rows.append((score.target, bars))
    return _legend(series) + _hbars("latency", "Latency per target", series, rows, "seconds")


def throughput_chart(report: Report) -> str:
    """p50 output tokens per second per target."""
    series = [("tokens/s p50", _color(2))]
    rows = []
    for score in report.ranked():
        s = report.overall(score.target)
        value = s.tokens_per_s_p50 if s is not None else None
        text = fmt_measure(s, "tokens_per_s_p50", "tok/s") if s is not None else na("no summary")
        rows.append((score.target, [(value, text)]))
    return _hbars("throughput", "Throughput per target", series, rows, "output tokens per second")


def breakdown_chart(report: Report) -> tuple[str, str]:
    """Stacked bars: each dimension's weighted share of the overall score; (legend, svg)."""
    dims = report.dimensions()
    series = [(d, _color(i)) for i, d in enumerate(dims)]
    scores = report.ranked()
    per_row = _BAR_H + _ROW_GAP + 8
    top, bottom = 10, 40
    height = top + bottom + max(1, len(scores)) * per_row
    plot_w = _WIDTH - _LABEL_W - 120
    body: list[str] = []
    for t in _ticks(100.0):
        x = _LABEL_W + plot_w * t / 100
        body.append(
            f'<line class="grid" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - bottom}"/>'
            f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle">{t:.0f}</text>'
        )
    body.append(
        f'<text x="{_LABEL_W + plot_w / 2}" y="{height - 6}" text-anchor="middle">weighted '
        "score (0–100)</text>"
    )
    for r, score in enumerate(scores):
        y = top + r * per_row
        body.append(
            f'<text x="{_LABEL_W - 8}" y="{y + _BAR_H - 5}" text-anchor="end">'
            f"{_e(score.target)}</text>"
        )
        x = float(_LABEL_W)
        # The overall score is the weighted mean of the dimensions a target has, so its
        # segments are weighted over those same dimensions and add up to the overall score.
        total_weight = sum(
            max(0.0, report.board.weights.get(d, 0.0))
            for d in dims
            if (m := score.dimensions.get(d)) is not None and m.value is not None
        )
        for d, color in series:
            metric = score.dimensions.get(d)
            weight = max(0.0, report.board.weights.get(d, 0.0))
            if metric is None or metric.value is None or weight == 0 or total_weight == 0:
                continue
            share = metric.value * weight / total_weight
            w = plot_w * share / 100
            body.append(
                f'<rect class="bar segment" data-target="{_e(score.target)}" '
                f'data-dimension="{_e(d)}" x="{x:.1f}" y="{y}" width="{max(w, 0.5):.1f}" '
                f'height="{_BAR_H}" fill="{color}"><title>{_e(score.target)} · {_e(d)}: '
                f"{metric.value:.1f} × weight {weight:g} → {share:.1f}</title></rect>"
            )
            x += w
        body.append(
            f'<text x="{x + 6:.1f}" y="{y + _BAR_H - 5}">'
            f"{_e(fmt_metric(score.overall, 'score'))}</text>"
        )
    svg = _svg("score-breakdown", "Score breakdown by dimension", height, body)
    return _legend(series), svg


# --------------------------------------------------------------------------- tables


def _score_table(report: Report) -> str:
    dims = report.dimensions()
    head = "".join(f"<th>{_e(d)}</th>" for d in dims)
    rows = []
    for score in report.ranked():
        cells = [
            _cell(str(score.rank) if score.rank is not None else "—", True),
            _cell(score.target),
            _cell(fmt_metric(score.overall, "score"), True),
        ]
        cells += [_cell(fmt_metric(score.dimensions.get(d), "score"), True) for d in dims]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<table id="scores"><tr><th>#</th><th>target</th><th>overall</th>{head}</tr>'
        + "".join(rows)
        + "</table>"
    )


def _summary_cells(s: TargetSummary, metrics: list[str]) -> list[str]:
    cells = [_cell(s.target), _cell(s.task), _cell(f"{s.errors}/{s.items}", True)]
    cells += [_cell(fmt_measure(s, name, unit), True) for name, _, unit in MEASURES]
    for m in metrics:
        value = s.quality.get(m)
        cells.append(
            _cell(fmt_metric(value) if value is not None else na(f"not a metric of {s.task}"), True)
        )
    ppl = fmt_metric(s.perplexity)
    if s.perplexity_of and not ppl.startswith("n/a"):
        ppl += f" (of {s.perplexity_of})"
    cells.append(_cell(ppl, True))
    cells += [_cell(fmt_metric(getattr(s, name), "usd"), True) for name, _ in COSTS[:2]]
    cells.append(_cell(fmt_metric(s.blended_price_per_1m, "usd"), True))
    cells.append(_cell("; ".join(s.notes) or "—"))
    return cells


def _measure_table(report: Report) -> str:
    metrics = report.quality_metrics()
    head = ["target", "task", "errors", *(h for _, h, _ in MEASURES), *metrics, "perplexity"]
    head += [h for _, h in COSTS] + ["notes"]
    rows = [
        "<tr>" + "".join(_summary_cells(s, metrics)) + "</tr>"
        for score in report.ranked()
        for s in report.summaries(score.target)
    ]
    return (
        '<div class="wide"><table id="measurements"><tr>'
        + "".join(f"<th>{_e(h)}</th>" for h in head)
        + "</tr>"
        + "".join(rows)
        + "</table></div>"
    )


def _errors(report: Report, limit: int = 50) -> str:
    failed = [r for r in report.rows if not r.ok]
    if not failed:
        return "<p>No call failed.</p>"
    rows = "".join(
        f"<tr><td>{_e(r.target)}</td><td>{_e(r.task)}/{_e(r.item_id)}#{r.repeat}</td>"
        f"<td>{_e(r.error_type)}</td><td>{_e(r.error_message)}</td></tr>"
        for r in failed[:limit]
    )
    more = f"<p>… and {len(failed) - limit} more.</p>" if len(failed) > limit else ""
    return (
        '<table id="errors"><tr><th>target</th><th>item</th><th>error</th><th>message</th></tr>'
        + rows
        + "</table>"
        + more
    )


def _rubric_html(rubric: Any) -> str:
    table = rubric_table(rubric)
    rules = scoring_rules(rubric)
    text = f'<pre id="scoring-rules">{_e(chr(10).join(rubric_lines(rules)))}</pre>'
    if table is None:
        return text if rules else "<p>No rubric.</p>"
    title, header, rows = table
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(_cell(v, h == "points") for v, h in zip(row, header, strict=True))
        + "</tr>"
        for row in rows
    )
    rubric_table_html = f'<p>{_e(title)}</p><table id="rubric-table"><tr>{head}</tr>{body}</table>'
    return rubric_table_html + ("<h3>Scoring rules</h3>" + text if rules else "")


def _run_meta(report: Report) -> str:
    run = report.run
    parts = [
        f"{_e(k)}: {_e(', '.join(map(str, v)) if isinstance(v, list) else v)}"
        for k, v in run.items()
        if v is not None and k != "targets"
    ]
    return '<p class="meta">' + " · ".join(parts) + "</p>" if parts else ""


def _score_summary(scores: Sequence[TargetScore]) -> str:
    best = next((s for s in scores if s.rank == 1 and s.overall.value is not None), None)
    if best is None or best.overall.value is None:
        return ""
    return f"<p>Best overall: <b>{_e(best.target)}</b> ({best.overall.value:.1f} / 100).</p>"


def render_html(report: Report) -> str:
    """The whole report as one self-contained HTML document."""
    scatter, left_out = quality_vs_price(report)
    legend, breakdown = breakdown_chart(report)
    not_plotted = (
        '<p class="chart-note">Not plotted: ' + "; ".join(_e(x) for x in left_out) + "</p>"
        if left_out
        else ""
    )
    skipped = "".join(f"<li>{_e(t)}: {_e(r)}</li>" for t, r in report.skipped.items())
    missing = "".join(f"<li>{_e(m)}</li>" for m in report.board.missing)
    notes = "".join(f"<li>{_e(n)}</li>" for n in report.notes)
    rubric = _rubric_html(report.board.rubric)
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = [
        "<h1>llmos comparison</h1>",
        f'<p class="meta">generated {generated}</p>',
        _run_meta(report),
        _score_summary(report.ranked()),
        "<h2>Scores</h2>",
        _score_table(report),
        '<h2 id="charts">Quality against price</h2>',
        scatter,
        not_plotted,
        "<h2>Latency per target</h2>",
        latency_chart(report),
        "<h2>Throughput per target</h2>",
        throughput_chart(report),
        "<h2>Score breakdown</h2>",
        legend,
        breakdown,
        "<h2>Measurements per task</h2>",
        _measure_table(report),
        '<h2 id="weights">Weights</h2>',
        f"<p>{_e(weights_text(report.board))}</p>",
        '<h2 id="rubric">Usability rubric</h2>',
        rubric,
        '<h2 id="method">Method notes</h2>',
        f'<p id="perplexity-note">{_e(perplexity_note(report))}</p>',
        f'<p id="code-note">{_e(code_note(report))}</p>',
        f'<ul id="skipped">{skipped}</ul>' if skipped else "<p>No target was skipped.</p>",
        f'<ul id="missing">{missing}</ul>' if missing else "",
        f'<ul id="notes">{notes}</ul>' if notes else "",
        "<h2>Failed calls</h2>",
        _errors(report),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>llmos comparison</title><style>{_CSS}</style></head><body>"
        + "\n".join(part for part in body if part)
        + f"<script>{_SCRIPT}</script></body></html>\n"
    )
