"""``llmos cost`` on a prompt, a text file and a JSONL batch, as a table and as JSON."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import llmos.cli.cost as cost_cli
import llmos.pricing
from llmos.cli import main

CHEAP_TO_DEAR = ["openai:text-embedding-3-small", "ai21:jamba-mini", "openai:gpt-5.4"]


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main(["cost", *argv, "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_a_prompt_is_estimated_on_each_model_sorted_by_cost(
    capsys: pytest.CaptureFixture[str],
) -> None:
    models = ",".join(reversed(CHEAP_TO_DEAR))
    code, doc, _ = run_json(
        capsys, "Summarise the plot of Hamlet.", "--models", models, "--max-tokens", "200"
    )
    assert code == 0
    assert [row["target"] for row in doc["models"]] == CHEAP_TO_DEAR
    assert doc["input"] == {"kind": "prompt", "requests": 1, "skipped_lines": 0}
    gpt = doc["models"][2]
    assert gpt["price"]["source"] == "https://developers.openai.com/api/docs/pricing"
    assert gpt["price"]["as_of"] == "2026-12-01"
    assert gpt["max_output_tokens"] == 200 and gpt["expected_output_tokens"] == 100
    p = gpt["prompt_tokens"]
    assert Decimal(gpt["worst_case_usd"]) == (p * Decimal("2.5") + 200 * Decimal(15)) / 10**6
    embedding = doc["models"][0]
    assert embedding["prompt_tokens_exact"] is True  # cl100k counts exactly offline
    expected = llmos.pricing.count_message_tokens("Summarise the plot of Hamlet.", "openai:gpt-4")
    assert embedding["prompt_tokens"] == expected.tokens


def test_models_can_be_repeated_and_unknown_prices_sort_last(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, doc, _ = run_json(
        capsys,
        "hi",
        "-m",
        "hf:meta-llama/Llama-3.1-8B-Instruct",
        "-m",
        "ai21:jamba-mini",
        "--max-tokens",
        "10",
    )
    assert code == 0
    first, last = doc["models"]
    assert first["target"] == "ai21:jamba-mini"
    assert last["worst_case_usd"] is None and "name the provider" in last["reason"]


def test_a_text_file_is_one_user_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "doc.txt"
    text = "The quarterly report shows growth. " * 200
    path.write_text(text)
    code, doc, _ = run_json(capsys, "--file", str(path), "-m", "openai:gpt-3.5-turbo")
    assert code == 0 and doc["input"]["kind"] == "file"
    row = doc["models"][0]
    assert row["prompt_tokens"] == llmos.pricing.count_message_tokens(text, "openai:gpt-4").tokens
    # no --max-tokens: the worst case is the model's own output limit
    assert row["max_output_tokens"] == 4096
    assert row["lifecycle"] == "deprecated (2026-10-23)"


def test_a_jsonl_batch_reports_bad_lines_by_number_and_estimates_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "batch.jsonl"
    lines = [
        json.dumps({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 20}),
        '{"messages": [{"role": "user", "content": "cut off"}',
        json.dumps({"prompt": "What is 2+2?"}),
        "",
        json.dumps(
            {
                "custom_id": "r1",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": "gpt-4o",
                    "max_tokens": 5,
                    "messages": [{"role": "user", "content": "Name a colour"}],
                },
            }
        ),
        json.dumps({"messages": [{"role": "wizard", "content": "x"}]}),
    ]
    path.write_text("\n".join(lines) + "\n")
    code, doc, err = run_json(
        capsys, "--jsonl", str(path), "-m", "ai21:jamba-mini", "--max-tokens", "50"
    )
    assert code == 1  # some lines were skipped
    assert doc["input"]["requests"] == 3 and doc["input"]["skipped_lines"] == 2
    assert [e["line"] for e in doc["errors"]] == [2, 6]
    assert "invalid JSON" in doc["errors"][0]["error"]
    assert "messages[0].role" in doc["errors"][1]["error"]
    assert "line 2:" in err and "line 6:" in err
    row = doc["models"][0]
    assert row["max_output_tokens"] == 20 + 50 + 5  # per-line max_tokens, else --max-tokens
    per_line = [
        llmos.pricing.count_message_tokens(m, "ai21:jamba-mini").tokens
        for m in ("Hi", "What is 2+2?", "Name a colour")
    ]
    assert row["prompt_tokens"] == sum(per_line)


def test_a_jsonl_file_with_no_valid_line_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("not json\n")
    code = main(["cost", "--jsonl", str(path), "-m", "ai21:jamba-mini"])
    _, err = capsys.readouterr()
    assert code == 1 and "line 1" in err and "no valid request" in err


def test_the_table_shows_prices_sources_and_dates(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-key-never-shown")
    code = main(
        ["cost", "Hello", "-m", "openai:gpt-5.4-mini,openai:gpt-4.1-nano", "--max-tokens", "64"]
    )
    out, err = capsys.readouterr()
    assert code == 0
    assert "openai:gpt-5.4-mini" in out and "2026-12-01" in out
    assert "developers.openai.com" in out and "deprecated (2026-10-23)" in out
    assert out.index("openai:gpt-4.1-nano") < out.index("openai:gpt-5.4-mini")  # cheaper first
    assert "sk-test-secret" not in out + err


def test_batch_prices_halve_the_openai_estimate(capsys: pytest.CaptureFixture[str]) -> None:
    _, live, _ = run_json(capsys, "hi", "-m", "openai:gpt-5.4-mini", "--max-tokens", "100")
    _, batch, _ = run_json(
        capsys, "hi", "-m", "openai:gpt-5.4-mini", "--max-tokens", "100", "--batch"
    )
    assert batch["batch_prices"] is True
    live_usd = Decimal(live["models"][0]["worst_case_usd"])
    assert Decimal(batch["models"][0]["worst_case_usd"]) * 2 == live_usd


def test_large_files_show_a_progress_bar_on_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(json.dumps({"prompt": f"question {i}"}) for i in range(300)))
    screen = io.StringIO()
    monkeypatch.setattr(cost_cli, "LARGE_FILE_BYTES", 1000)
    monkeypatch.setattr(
        cost_cli, "_stderr_console", lambda: Console(file=screen, force_terminal=True, width=80)
    )
    code, doc, _ = run_json(capsys, "--jsonl", str(path), "-m", "ai21:jamba-mini")
    assert code == 0 and doc["input"]["requests"] == 300
    assert "estimating" in screen.getvalue()


def test_bad_arguments_are_clear_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "hi", "--max-tokens", "0"]) == 1
    assert "--max-tokens" in capsys.readouterr().err
    assert main(["cost", "hi", "-m", "gpt-4o"]) == 1
    assert "provider" in capsys.readouterr().err
    assert main(["cost", "--file", "/no/such/file.txt"]) == 1
    assert "--file" in capsys.readouterr().err
