"""The comparison report in the terminal: rich tables, with long n/a reasons as footnotes."""

from __future__ import annotations

from typing import Any

from llmos.compare.report import (
    Report,
    code_note,
    fmt_measure,
    fmt_metric,
    na,
    perplexity_note,
    rubric_lines,
    rubric_table,
    scoring_rules,
    weights_text,
)

__all__ = ["Footnotes", "measure_table", "print_report", "quality_table", "score_table"]


def _name_columns(table: Any, report: Report) -> None:
    table.add_column("target", overflow="fold")
    table.add_column("task", overflow="fold")


def _add_row(table: Any, *cells: str) -> None:
    """Add cells as plain text: a target or reason is never read as rich markup or emoji."""
    from rich.text import Text

    table.add_row(*(Text(cell) for cell in cells))


class Footnotes:
    """Long n/a reasons in terminal cells become ``n/a [k]``, with the reason printed below."""

    LIMIT = 14

    def __init__(self) -> None:
        self.reasons: dict[str, int] = {}

    def __call__(self, text: str) -> str:
        if not (text.startswith("n/a (") and text.endswith(")")) or len(text) <= self.LIMIT:
            return text
        reason = text[len("n/a (") : -1]
        number = self.reasons.setdefault(reason, len(self.reasons) + 1)
        return f"n/a [{number}]"

    def lines(self) -> list[str]:
        """``[k] reason`` for every reason referred to."""
        return [f"[{k}] {reason}" for reason, k in self.reasons.items()]


def score_table(report: Report, notes: Footnotes | None = None) -> Any:
    """Per target: rank, overall score and each dimension's score (0–100)."""
    from rich.table import Table

    short = notes or Footnotes()
    dims = report.dimensions()
    table = Table(title="Scores (0–100, higher is better)", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("target", overflow="fold")
    table.add_column("overall", justify="right")
    for d in dims:
        table.add_column(d, justify="right", overflow="fold")
    for score in report.ranked():
        _add_row(
            table,
            str(score.rank) if score.rank is not None else "—",
            score.target,
            short(fmt_metric(score.overall, "score")),
            *(short(fmt_metric(score.dimensions.get(d), "score")) for d in dims),
        )
    return table


def measure_table(report: Report, notes: Footnotes | None = None) -> Any:
    """Per target and task: p50 latency, TTFT and tokens/s, cost per item, errors."""
    from rich.table import Table

    short = notes or Footnotes()
    table = Table(title="Measurements (p50 over successful calls)", title_justify="left")
    _name_columns(table, report)
    table.add_column("latency", justify="right")
    table.add_column("TTFT", justify="right")
    table.add_column("tok/s", justify="right")
    table.add_column("cost/item", justify="right")
    table.add_column("errors", justify="right", no_wrap=True)
    for score in report.ranked():
        for s in report.summaries(score.target):
            _add_row(
                table,
                s.target,
                s.task,
                short(fmt_measure(s, "latency_p50_s", "s")),
                short(fmt_measure(s, "ttft_p50_s", "s")),
                short(fmt_measure(s, "tokens_per_s_p50", "tok/s")),
                short(fmt_metric(s.cost_per_item_usd, "usd")),
                f"{s.errors}/{s.items}",
            )
    return table


def quality_table(report: Report, notes: Footnotes | None = None) -> Any:
    """Per target and task: every quality metric (and perplexity) of that task."""
    from rich.table import Table

    short = notes or Footnotes()
    table = Table(title="Quality per task (mean over items)", title_justify="left")
    _name_columns(table, report)
    table.add_column("metrics", overflow="fold")
    table.add_column("perplexity", justify="right", overflow="fold")
    for score in report.ranked():
        for s in report.summaries(score.target):
            if s.task == "all":
                continue
            if s.quality:
                metrics = ", ".join(f"{n} {short(fmt_metric(m))}" for n, m in s.quality.items())
            else:
                metrics = short(na("no quality metric for this task"))
            _add_row(table, s.target, s.task, metrics, short(fmt_metric(s.perplexity)))
    return table


def print_report(report: Report, console: Any = None) -> None:
    """Print the tables, the weights and the rubric, and what was skipped or noticed."""
    from rich.console import Console

    console = console or Console(emoji=False)
    notes = Footnotes()
    console.print(score_table(report, notes))
    console.print(measure_table(report, notes))
    console.print(quality_table(report, notes))
    for line in notes.lines():
        console.print(line, markup=False, highlight=False, emoji=False)
    console.print("[bold]Weights[/bold]: " + weights_text(report.board), emoji=False)
    table = rubric_table(report.board.rubric)
    if table is not None:
        from rich.table import Table

        title, header, rows = table
        rich_table = Table(title=f"Usability rubric: {title}", title_justify="left")
        for name in header:
            rich_table.add_column(
                name, overflow="fold", justify="right" if name == "points" else "left"
            )
        for row in rows:
            _add_row(rich_table, *row)
        console.print(rich_table)
    rules = scoring_rules(report.board.rubric)
    if rules:
        console.print("[bold]Scoring[/bold]:")
        for line in rubric_lines(rules, "  "):
            console.print(line, markup=False, highlight=False, emoji=False)
    console.print(perplexity_note(report), markup=False, emoji=False)
    console.print(code_note(report), markup=False, emoji=False)
    for target, reason in report.skipped.items():
        console.print(f"skipped {target}: {reason}", markup=False, highlight=False, emoji=False)
    for missing in report.board.missing:
        console.print(f"missing: {missing}", markup=False, highlight=False, emoji=False)
    for note in report.notes:
        console.print(f"note: {note}", markup=False, highlight=False, emoji=False)
