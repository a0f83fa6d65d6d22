"""Reports: the terminal tables, JSON and CSV, built from a scoreboard and its rows.

``sample_report()`` is a small, fixed comparison of three targets (one free and local, one
priced, one without a price) that the HTML tests use too.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from rich.console import Console

from llmos.compare.model import (
    ItemResult,
    MetricValue,
    Scoreboard,
    TargetScore,
    TargetSummary,
)
from llmos.compare.report import (
    FORMATS,
    Report,
    code_note,
    csv_table,
    fmt_metric,
    missing_reason,
    na,
    perplexity_note,
    to_json,
    write_reports,
)
from llmos.compare.report_terminal import print_report
from llmos.errors import InvalidRequestError

WEIGHTS = {"quality": 0.4, "performance": 0.2, "price": 0.2, "usability": 0.2}
RUBRIC = {
    "name": "llmos usability rubric",
    "version": 1,
    "criteria": [
        {"name": "streaming", "group": "capabilities", "points": 10, "rule": "streams tokens"},
        {"name": "success_rate", "group": "measured", "points": 24, "rule": "share ok"},
    ],
}
UNPRICED = "no price for box:big in the catalog"


def mv(value: float | None, reason: str | None = None) -> MetricValue:
    return MetricValue(value=value, reason=reason)


def summary(target: str, task: str, **fields: object) -> TargetSummary:
    base: dict[str, object] = {
        "target": target,
        "task": task,
        "items": 2,
        "errors": 0,
        "error_rate": 0.0,
        "ttft_p50_s": 0.05,
        "ttft_p95_s": 0.08,
        "latency_p50_s": 0.4,
        "latency_p95_s": 0.6,
        "tokens_per_s_p50": 80.0,
        "tokens_per_s_p95": 95.0,
        "inter_token_p50_s": 0.012,
        "inter_token_p95_s": 0.02,
        "cost_per_item_usd": mv(0.0),
        "cost_total_usd": mv(0.0),
        "blended_price_per_1m": mv(0.0, "self-hosted"),
    }
    if task == "qa":
        base["quality"] = {"contains_match": mv(0.5), "exact_match": mv(0.0)}
    elif task == "code":
        base["quality"] = {
            "tests_passed": mv(None, "not executed (--execute-code off)"),
            "syntax_ok": mv(1.0),
        }
    base.update(fields)
    return TargetSummary.model_validate(base)


def sample_report() -> Report:
    local, paid, box = "local:gemma-3-270m", "openai:gpt-5.4-mini", "box:big"
    priced = {
        "cost_per_item_usd": mv(0.00012),
        "cost_total_usd": mv(0.00048),
        "blended_price_per_1m": mv(0.8),
    }
    unpriced = {
        "cost_per_item_usd": mv(None, UNPRICED),
        "cost_total_usd": mv(None, UNPRICED),
        "blended_price_per_1m": mv(None, UNPRICED),
    }
    summaries = [
        summary(local, "qa", perplexity=mv(3.2), perplexity_of="output"),
        summary(local, "code"),
        summary(local, "all", perplexity=mv(3.2), perplexity_of="output"),
        summary(paid, "qa", latency_p50_s=1.5, ttft_p50_s=0.3, **priced),
        summary(paid, "code", **priced),
        summary(paid, "all", latency_p50_s=1.5, ttft_p50_s=0.3, **priced),
        summary(
            box,
            "qa",
            errors=2,
            error_rate=1.0,
            ttft_p50_s=None,
            ttft_p95_s=None,
            latency_p50_s=None,
            latency_p95_s=None,
            tokens_per_s_p50=None,
            tokens_per_s_p95=None,
            inter_token_p50_s=None,
            inter_token_p95_s=None,
            **unpriced,
        ),
        summary(
            box,
            "all",
            errors=2,
            error_rate=1.0,
            items=2,
            ttft_p50_s=None,
            latency_p50_s=None,
            tokens_per_s_p50=None,
            **unpriced,
        ),
    ]
    scores = [
        TargetScore(
            target=paid,
            dimensions={
                "quality": mv(80.0),
                "performance": mv(55.0),
                "price": mv(70.0),
                "usability": mv(90.0),
            },
            overall=mv(75.0),
            rank=1,
        ),
        TargetScore(
            target=local,
            dimensions={
                "quality": mv(40.0),
                "performance": mv(90.0),
                "price": mv(100.0),
                "usability": mv(70.0),
            },
            overall=mv(68.0),
            rank=2,
        ),
        TargetScore(
            target=box,
            dimensions={
                "quality": mv(0.0),
                "performance": mv(None, "every call failed"),
                "price": mv(None, UNPRICED),
                "usability": mv(30.0),
            },
            overall=mv(None, "price unknown"),
            rank=None,
        ),
    ]
    rows = [
        ItemResult(
            run_key="k",
            target=local,
            task="qa",
            item_id="qa-1",
            ok=True,
            output="Paris",
            perplexity=mv(3.2),
            perplexity_of="output",
        ),
        ItemResult(
            run_key="k",
            target=paid,
            task="code",
            item_id="code-1",
            ok=True,
            output="def f(): pass",
            code_executed=False,
            quality={"tests_passed": mv(None, "not executed (--execute-code off)")},
        ),
        ItemResult(
            run_key="k",
            target=box,
            task="qa",
            item_id="qa-1",
            ok=False,
            error_type="APIConnectionError",
            error_message="connection refused <img src=x onerror=alert(1)>",
        ),
    ]
    board = Scoreboard(
        weights=WEIGHTS,
        rubric=RUBRIC,
        scores=scores,
        summaries=summaries,
        missing=["box:big: price unknown, so no overall score"],
    )
    return Report(
        board=board,
        rows=rows,
        run={"run_key": "k", "tasks": ["qa", "code"], "repeats": 1, "seed": 0},
        skipped={"ai21:jamba-mini": "no API key (set AI21_API_KEY)"},
        notes=["resumed: 1 row(s) already in results.jsonl"],
    )


# --------------------------------------------------------------------------- helpers


def test_missing_values_say_why() -> None:
    assert na("price unknown") == "n/a (price unknown)"
    assert fmt_metric(mv(None, "every call failed")) == "n/a (every call failed)"
    assert fmt_metric(None) == "n/a (not measured)"
    assert fmt_metric(mv(0.000123), "usd") == "$0.000123"
    assert fmt_metric(mv(0.0), "usd") == "$0"
    failed = summary("box:big", "qa", errors=2, ttft_p50_s=None)
    assert missing_reason(failed, "ttft_p50_s") == "every call failed"
    partial = summary("box:big", "qa", errors=1, tokens_per_s_p50=None)
    assert "completion token" in missing_reason(partial, "tokens_per_s_p50")


def test_notes_say_what_perplexity_was_computed_on_and_whether_code_ran() -> None:
    report = sample_report()
    assert perplexity_note(report) == (
        "Perplexity was computed on each target's own output (local:gemma-3-270m)."
    )
    note = code_note(report)
    assert note == "Code was not executed (--execute-code off)."

    report.run["execute_code"] = True
    unparsed = mv(0.0, "not run: syntax error: invalid syntax (line 1)")
    report.rows[1] = report.rows[1].model_copy(update={"quality": {"tests_passed": unparsed}})
    assert code_note(report) == (
        "Code execution was on, but none of the 1 code answers was run "
        "(not run: syntax error: invalid syntax (line 1))."
    )

    report.rows[1] = report.rows[1].model_copy(update={"code_executed": True})
    assert code_note(report).startswith("Code was executed: all 1")


# --------------------------------------------------------------------------- JSON and CSV


def test_json_holds_the_whole_scoreboard_and_a_rows_summary() -> None:
    report = sample_report()
    doc = json.loads(json.dumps(to_json(report)))

    assert doc["scoreboard"]["weights"] == WEIGHTS
    assert doc["scoreboard"]["rubric"] == RUBRIC
    assert [s["target"] for s in doc["scoreboard"]["scores"]] == [
        "openai:gpt-5.4-mini",
        "local:gemma-3-270m",
        "box:big",
    ]
    assert len(doc["scoreboard"]["summaries"]) == 8
    assert doc["rows"]["total"] == 3 and doc["rows"]["ok"] == 2
    assert doc["rows"]["by_target"]["box:big"] == {"rows": 1, "ok": 0, "errors": 1}
    (error,) = doc["rows"]["errors"]
    assert error["error_type"] == "APIConnectionError" and error["item_id"] == "qa-1"
    assert doc["skipped"] == {"ai21:jamba-mini": "no API key (set AI21_API_KEY)"}
    assert doc["run"]["run_key"] == "k"
    assert "own output" in doc["perplexity_note"]


def test_csv_has_one_row_per_target_and_task_and_every_cell_filled() -> None:
    report = sample_report()
    header, rows = csv_table(report)

    assert len(rows) == len(report.board.summaries)
    for column in ("score_overall", "score_quality", "score_price", "latency_p50_s"):
        assert column in header
    assert "quality_contains_match" in header and "quality_tests_passed" in header
    for row in rows:
        assert len(row) == len(header)
        for cell in row:
            assert cell.strip(), "an empty cell"
            if cell.startswith("n/a"):
                assert cell.startswith("n/a (") and cell.endswith(")") and len(cell) > 6
    by_key = {(r[1], r[2]): dict(zip(header, r, strict=True)) for r in rows}
    box = by_key[("box:big", "qa")]
    assert box["latency_p50_s"] == "n/a (every call failed)"
    assert box["cost_per_item_usd"] == f"n/a ({UNPRICED})"
    assert box["rank"].startswith("n/a")
    local_code = by_key[("local:gemma-3-270m", "code")]
    assert local_code["quality_tests_passed"] == "n/a (not executed (--execute-code off))"
    assert local_code["quality_contains_match"] == "n/a (not a metric of code)"
    assert float(by_key[("openai:gpt-5.4-mini", "all")]["score_overall"]) == 75.0


def test_write_reports_writes_every_format(tmp_path: Path) -> None:
    report = sample_report()
    written = write_reports(report, tmp_path / "out")

    assert set(written) == set(FORMATS)
    assert json.loads(written["json"].read_text()) == json.loads(json.dumps(to_json(report)))
    with open(written["csv"], newline="") as f:
        assert len(list(csv.DictReader(f))) == len(report.board.summaries)
    assert written["html"].read_text().startswith("<!DOCTYPE html>")
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_write_reports_refuses_an_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError) as info:
        write_reports(sample_report(), tmp_path, ["json", "pdf"])
    assert "pdf" in str(info.value) and info.value.field == "formats"


# --------------------------------------------------------------------------- terminal


def test_terminal_report_shows_scores_measures_weights_rubric_and_skips() -> None:
    console = Console(record=True, width=250, color_system=None)
    print_report(sample_report(), console)
    text = console.export_text()

    for expected in (
        "Scores",
        "openai:gpt-5.4-mini",
        "75.0",
        "Measurements",
        "contains_match 0.5",
        "] every call failed",  # as a footnote
        "] price unknown",
        "$0.00012",
        "Weights: quality 0.4, performance 0.2, price 0.2, usability 0.2",
        "Usability rubric",
        "success_rate",
        "skipped ai21:jamba-mini: no API key (set AI21_API_KEY)",
        "Perplexity was computed on each target's own output",
        "Code was not executed",
        "note: resumed",
    ):
        assert expected in text, expected
    # A reason becomes a numbered footnote under the tables, each reason once.
    footnotes = [line for line in text.splitlines() if line.startswith("[")]
    assert len(footnotes) == len(set(footnotes)) >= 3
    assert f"] {UNPRICED}" in text
    number = next(line for line in footnotes if UNPRICED in line).split("]")[0] + "]"
    assert f"n/a {number}" in text
    # Best first: the ranked targets in rank order, the unranked one last.
    assert text.index("openai:gpt-5.4-mini") < text.index("local:gemma-3-270m")
    assert text.index("local:gemma-3-270m") < text.index("box:big")
