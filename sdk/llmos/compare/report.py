"""Reports of a comparison: the Report itself, JSON and CSV (the terminal tables are in
:mod:`llmos.compare.report_terminal`).

Every value a report shows is either measured or written ``n/a (reason)``: a missing number is
never left blank or shown as zero. The HTML report (:mod:`llmos.compare.report_html`) is built
from the same :class:`Report`.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmos.compare.model import ItemResult, MetricValue, Scoreboard, TargetScore, TargetSummary

if TYPE_CHECKING:
    from llmos.compare.runner import RunOutcome, RunSettings

__all__ = [
    "FORMATS",
    "MEASURES",
    "Report",
    "build_report",
    "code_note",
    "csv_table",
    "fmt_measure",
    "fmt_metric",
    "missing_reason",
    "na",
    "perplexity_note",
    "quality_index",
    "to_json",
    "write_reports",
]

#: Report files ``write_reports`` can write, by format name.
FORMATS: dict[str, str] = {"json": "report.json", "csv": "report.csv", "html": "report.html"}

#: The measured columns of a summary, in report order: field, header, unit.
MEASURES: tuple[tuple[str, str, str], ...] = (
    ("latency_p50_s", "latency p50", "s"),
    ("latency_p95_s", "latency p95", "s"),
    ("ttft_p50_s", "TTFT p50", "s"),
    ("ttft_p95_s", "TTFT p95", "s"),
    ("tokens_per_s_p50", "tokens/s p50", "tok/s"),
    ("tokens_per_s_p95", "tokens/s p95", "tok/s"),
    ("inter_token_p50_s", "inter-token p50", "s"),
    ("inter_token_p95_s", "inter-token p95", "s"),
)
#: Cost columns of a summary (MetricValue fields): field, header.
COSTS: tuple[tuple[str, str], ...] = (
    ("cost_per_item_usd", "cost/item"),
    ("cost_total_usd", "cost total"),
    ("blended_price_per_1m", "$/1M tokens"),
)


@dataclass
class Report:
    """Everything a report shows: the scoreboard, the rows behind it and the run's settings."""

    board: Scoreboard
    rows: list[ItemResult] = field(default_factory=list)
    #: The run's settings and identity (run_key, targets, tasks, repeats, seed, ...).
    run: dict[str, Any] = field(default_factory=dict)
    #: Targets left out, with the one-line reason (no key, unknown provider...).
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def ranked(self) -> list[TargetScore]:
        """Scores best first (unranked targets last, in their order)."""
        return sorted(self.board.scores, key=lambda s: (s.rank is None, s.rank if s.rank else 0))

    def summaries(self, target: str) -> list[TargetSummary]:
        """A target's summaries: per task, then the all-tasks one."""
        own = [s for s in self.board.summaries if s.target == target]
        return sorted(own, key=lambda s: (s.task == "all", s.task))

    def overall(self, target: str) -> TargetSummary | None:
        """A target's all-tasks summary (the only summary when there is one task)."""
        own = self.summaries(target)
        for s in own:
            if s.task == "all":
                return s
        return own[0] if len(own) == 1 else None

    def dimensions(self) -> list[str]:
        """Score dimensions, in weight order, then any others the scores carry."""
        names = list(self.board.weights)
        for score in self.board.scores:
            names += [d for d in score.dimensions if d not in names]
        return names

    def quality_metrics(self) -> list[str]:
        """Every quality metric name any summary carries, in first-seen order."""
        names: list[str] = []
        for s in self.board.summaries:
            names += [m for m in s.quality if m not in names]
        return names


def build_report(outcome: RunOutcome, board: Scoreboard, settings: RunSettings) -> Report:
    """The report of a finished run: its scoreboard, rows, settings and skipped targets."""
    tasks = list(dict.fromkeys(row.task for row in outcome.rows))
    run = {
        "run_key": outcome.run_key,
        "targets": list(dict.fromkeys(row.target for row in outcome.rows)),
        "tasks": tasks,
        "repeats": settings.repeats,
        "seed": settings.seed,
        "temperature": settings.temperature,
        "max_tokens_cap": settings.max_tokens,
        "timeout_s": settings.timeout_s,
        "concurrency": settings.concurrency,
        "execute_code": settings.execute_code,
        "perplexity": settings.perplexity,
        "results": str(outcome.results_path),
        "rows": len(outcome.rows),
        "new_rows": outcome.new_rows,
        "resumed_rows": outcome.resumed_rows,
    }
    return Report(
        board=board,
        rows=list(outcome.rows),
        run=run,
        skipped=dict(outcome.skipped),
        notes=list(outcome.notes),
    )


def quality_index(score: TargetScore) -> MetricValue:
    """A target's quality on 0–100: the scoring's quality index (mean primary metric over the
    common tasks), else a ``quality`` dimension, else missing with the reason."""
    perf = score.details.get("performance") if isinstance(score.details, dict) else None
    if isinstance(perf, dict) and "quality_index" in perf:
        value = perf["quality_index"]
        if isinstance(value, (int, float)):
            return MetricValue(value=100.0 * float(value))
        return MetricValue(value=None, reason="no task with a quality value for every target")
    if "quality" in score.dimensions:
        return score.dimensions["quality"]
    return MetricValue(value=None, reason="no quality measure in the scores")


# --------------------------------------------------------------------------- formatting


def na(reason: str | None) -> str:
    """The text of a missing value."""
    return f"n/a ({reason or 'not measured'})"


def missing_reason(summary: TargetSummary, name: str) -> str:
    """Why a measured column of a summary is empty."""
    if summary.items == 0:
        return "no rows"
    if summary.errors >= summary.items:
        return "every call failed"
    if name.startswith(("ttft", "inter_token")):
        return "no streamed text" if name.startswith("ttft") else "fewer than two streamed chunks"
    if name.startswith("tokens_per_s"):
        return "no completion token count or no generation time"
    return "not measured"


def _number(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "tok/s":
        return f"{value:.1f}"
    return f"{value:.4g}"


def fmt_measure(summary: TargetSummary, name: str, unit: str) -> str:
    """One measured column, or n/a with the reason."""
    value = getattr(summary, name)
    return na(missing_reason(summary, name)) if value is None else _number(value, unit)


def fmt_usd(value: float) -> str:
    """US dollars, with enough digits for fractions of a cent."""
    if value == 0:
        return "$0"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    return f"${value:.6f}".rstrip("0")


def fmt_metric(metric: MetricValue | None, kind: str = "number") -> str:
    """A MetricValue as text: its value, or n/a with its reason."""
    if metric is None:
        return na("not measured")
    if metric.value is None:
        return na(metric.reason)
    if kind == "usd":
        return fmt_usd(metric.value)
    if kind == "score":
        return f"{metric.value:.1f}"
    return f"{metric.value:.4g}"


def perplexity_note(report: Report) -> str:
    """Which text perplexity was computed on, from the rows (or the summaries)."""
    of: dict[str, set[str]] = {}
    for row in report.rows:
        if row.perplexity is not None and row.perplexity.value is not None and row.perplexity_of:
            of.setdefault(row.perplexity_of, set()).add(row.target)
    if not of:
        for s in report.board.summaries:
            if s.perplexity_of and s.perplexity is not None and s.perplexity.value is not None:
                of.setdefault(s.perplexity_of, set()).add(s.target)
    if not of:
        reasons = {
            r.perplexity.reason
            for r in report.rows
            if r.perplexity is not None and r.perplexity.reason
        }
        why = "; ".join(sorted(reasons)) if reasons else "no target returned what it needs"
        return f"Perplexity was not computed ({why})."
    parts = []
    if "output" in of:
        parts.append("on each target's own output (" + ", ".join(sorted(of["output"])) + ")")
    if "reference" in of:
        parts.append("on the task's reference texts (" + ", ".join(sorted(of["reference"])) + ")")
    return "Perplexity was computed " + " and ".join(parts) + "."


def code_note(report: Report) -> str:
    """Whether the code task's answers were run against their tests, and why not."""
    code_rows = [r for r in report.rows if r.task == "code" and r.ok]
    if not code_rows:
        return "No code task answers to execute."
    ran = sum(1 for r in code_rows if r.code_executed)
    total = len(code_rows)
    if ran == total:
        return f"Code was executed: all {ran} code answers ran against their tests in the sandbox."
    why: dict[str, int] = {}
    for r in code_rows:
        if not r.code_executed:
            metric = r.quality.get("tests_passed")
            reason = (metric.reason if metric is not None else None) or "not run"
            why[reason] = why.get(reason, 0) + 1
    reasons = "; ".join(f"{n} × {reason}" if n > 1 else reason for reason, n in why.items())
    if ran:
        return f"Code was executed for {ran} of {total} code answers; not run: {reasons}."
    if report.run.get("execute_code") is False or all(
        reason.startswith("not executed") for reason in why
    ):
        first = next(iter(why))
        if len(why) == 1 and first.startswith("not executed"):
            return f"Code was {first}."
        return f"Code was not executed ({reasons})."
    return f"Code execution was on, but none of the {total} code answers was run ({reasons})."


def weights_text(board: Scoreboard) -> str:
    if not board.weights:
        return "none"
    return ", ".join(f"{name} {weight:g}" for name, weight in board.weights.items())


def rubric_table(rubric: Any) -> tuple[str, list[str], list[list[str]]] | None:
    """A rubric with a ``criteria`` list as (title, header, rows); None for other shapes."""
    if isinstance(rubric, dict) and isinstance(rubric.get("usability"), dict):
        rubric = rubric["usability"]  # the scoreboard's rubric: {"usability": ..., "scoring": ...}
    if not isinstance(rubric, dict) or not isinstance(rubric.get("criteria"), list):
        return None
    criteria = [c for c in rubric["criteria"] if isinstance(c, dict)]
    header = [k for k in ("name", "group", "points", "rule") if any(k in c for c in criteria)]
    rows = [[str(c.get(k, "")) for k in header] for c in criteria]
    facts = [f"{k} {v}" for k, v in rubric.items() if k not in ("name", "criteria") and _plain(v)]
    title = str(rubric.get("name", "rubric")) + (f" ({', '.join(facts)})" if facts else "")
    return title, header, rows


def scoring_rules(rubric: Any) -> Any:
    """What of the scoreboard's rubric is not the usability criteria table (scoring rules,
    price basis...), or the whole rubric when it has no such table."""
    if rubric_table(rubric) is None:
        return rubric
    if isinstance(rubric, dict) and isinstance(rubric.get("usability"), dict):
        return {k: v for k, v in rubric.items() if k != "usability"}
    return None


def _plain(value: Any) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def _flat_list(value: Any) -> bool:
    return isinstance(value, list) and all(_plain(v) for v in value)


def rubric_lines(rubric: Any, indent: str = "") -> list[str]:
    lines: list[str] = []
    if isinstance(rubric, dict):
        for key, value in rubric.items():
            if _flat_list(value):
                lines.append(f"{indent}{key}: {', '.join(map(str, value))}")
            elif isinstance(value, dict) and value and all(_flat_list(v) for v in value.values()):
                # e.g. primary metrics per task: one line, "qa: contains_match; code: ..."
                inner = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in value.items())
                lines.append(f"{indent}{key}: {inner}")
            elif isinstance(value, (dict, list)):
                lines.append(f"{indent}{key}:")
                lines += rubric_lines(value, indent + "  ")
            else:
                lines.append(f"{indent}{key}: {value}")
    elif isinstance(rubric, list):
        for value in rubric:
            if isinstance(value, (dict, list)):
                lines += rubric_lines(value, indent + "  ")
            else:
                lines.append(f"{indent}- {value}")
    else:
        lines.append(f"{indent}{rubric}")
    return lines


# --------------------------------------------------------------------------- JSON


def rows_summary(rows: Sequence[ItemResult]) -> dict[str, Any]:
    """Counts of the rows behind a report, and every failed row's error."""
    by_target: dict[str, dict[str, int]] = {}
    for row in rows:
        counts = by_target.setdefault(row.target, {"rows": 0, "ok": 0, "errors": 0})
        counts["rows"] += 1
        counts["ok" if row.ok else "errors"] += 1
    return {
        "total": len(rows),
        "ok": sum(1 for r in rows if r.ok),
        "by_target": by_target,
        "errors": [
            {
                "target": r.target,
                "task": r.task,
                "item_id": r.item_id,
                "repeat": r.repeat,
                "error_type": r.error_type,
                "error_message": r.error_message,
            }
            for r in rows
            if not r.ok
        ],
    }


def to_json(report: Report) -> dict[str, Any]:
    """The whole report as plain data: run, scoreboard, rows summary, skipped targets, notes."""
    return {
        "format": "llmos-compare/1",
        "run": report.run,
        "scoreboard": report.board.model_dump(mode="json"),
        "rows": rows_summary(report.rows),
        "skipped": report.skipped,
        "perplexity_note": perplexity_note(report),
        "code_note": code_note(report),
        "notes": report.notes,
    }


# --------------------------------------------------------------------------- CSV


def csv_table(report: Report) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the CSV: one row per target and task, every column filled.

    Missing values are written ``n/a (reason)`` in their own cell, like the terminal table.
    """
    dims = report.dimensions()
    metrics = report.quality_metrics()
    header = ["rank", "target", "task", "score_overall"]
    header += [f"score_{d}" for d in dims]
    header += ["items", "errors", "error_rate"]
    header += [name for name, _, _ in MEASURES]
    header += [f"quality_{m}" for m in metrics]
    header += ["perplexity", "perplexity_of"]
    header += [name for name, _ in COSTS]
    header += ["notes"]
    out: list[list[str]] = []
    for score in report.ranked():
        for s in report.summaries(score.target):
            row = [
                str(score.rank) if score.rank is not None else na("not ranked"),
                score.target,
                s.task,
                _csv_metric(score.overall),
            ]
            row += [_csv_metric(score.dimensions.get(d)) for d in dims]
            row += [str(s.items), str(s.errors), f"{s.error_rate:.4g}"]
            for name, _, _ in MEASURES:
                value = getattr(s, name)
                row.append(na(missing_reason(s, name)) if value is None else f"{value:.6g}")
            for m in metrics:
                value_m = s.quality.get(m)
                row.append(
                    _csv_metric(value_m) if value_m is not None else na(f"not a metric of {s.task}")
                )
            row.append(_csv_metric(s.perplexity))
            row.append(s.perplexity_of or na("no perplexity"))
            row += [_csv_metric(getattr(s, name)) for name, _ in COSTS]
            row.append("; ".join(s.notes) or "none")
            out.append(row)
    return header, out


def _csv_metric(metric: MetricValue | None) -> str:
    if metric is None:
        return na("not measured")
    if metric.value is None:
        return na(metric.reason)
    return f"{metric.value:.6g}"


def _csv_text(report: Report) -> str:
    header, rows = csv_table(report)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


# --------------------------------------------------------------------------- writing


def write_reports(
    report: Report, out_dir: str | os.PathLike[str], formats: Iterable[str] = FORMATS
) -> dict[str, Path]:
    """Write the report in each format into ``out_dir``; returns format -> path."""
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for fmt in formats:
        if fmt not in FORMATS:
            from llmos.errors import InvalidRequestError

            raise InvalidRequestError(
                f"unknown report format {fmt!r}; choose from {', '.join(FORMATS)}",
                field="formats",
            )
        path = directory / FORMATS[fmt]
        if fmt == "json":
            text = json.dumps(to_json(report), indent=2) + "\n"
        elif fmt == "csv":
            text = _csv_text(report)
        else:
            from llmos.compare.report_html import render_html

            text = render_html(report)
        _write_atomic(path, text)
        written[fmt] = path
    return written


def _write_atomic(path: Path, text: str) -> None:
    # A report is replaced whole, so a crash never leaves half a file where a good one was.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8", newline="")
    os.replace(tmp, path)
