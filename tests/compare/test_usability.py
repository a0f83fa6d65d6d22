"""The usability rubric: published as data, scored from capabilities, setup and result rows."""

from __future__ import annotations

import json

import pytest

from llmos import Client
from llmos.compare.model import ItemResult
from llmos.compare.usability import RUBRIC, assess_usability, capabilities_for, error_credit
from llmos.providers.base import Capabilities

HOSTED = Capabilities(
    streaming=True,
    tools=True,
    json_schema=True,
    embeddings=False,
    logprobs=True,
    context_window=272_000,
    needs_key=True,
    runs_offline=False,
)


def row(
    target: str, n: int, ok: bool = True, error_type: str | None = None, message: str | None = None
) -> ItemResult:
    return ItemResult(
        run_key="r",
        target=target,
        task="qa",
        item_id=f"qa-{n}",
        ok=ok,
        error_type=error_type,
        error_message=message,
    )


def test_the_rubric_is_data_worth_100_points() -> None:
    assert sum(c["points"] for c in RUBRIC["criteria"]) == RUBRIC["max_points"] == 100
    assert json.loads(json.dumps(RUBRIC)) == RUBRIC
    assert {c["group"] for c in RUBRIC["criteria"]} == {"capabilities", "setup", "measured"}


def test_error_credit_rewards_typed_actionable_errors() -> None:
    fix = "no API key for provider 'openai': set OPENAI_API_KEY"
    assert error_credit("MissingAPIKeyError", fix) == 1.0
    assert error_credit("ServerError", "upstream failed") == 0.5
    assert error_credit("CircuitOpenError", "cool-down; retry later") == 1.0  # routing's error
    assert error_credit("RateLimitError", "slow down (max_tokens=64)") == 1.0  # name=value hint
    assert error_credit("KeyError", "set something") == 0.0
    assert error_credit(None, None) == 0.0


def test_hosted_target_points_by_hand() -> None:
    rows = [row("openai:m", i) for i in range(3)] + [
        row(
            "openai:m",
            3,
            ok=False,
            error_type="RateLimitError",
            message="rate limited; retry later",
        ),
        row("openai:m", 4, ok=False, error_type="TypeError", message="boom"),
    ]
    score = assess_usability("openai:m", HOSTED, rows, price_lookup=lambda t: None)
    assert score.criteria == {
        "streaming": 10.0,
        "tools": 10.0,
        "json_schema": 8.0,
        "embeddings": 0.0,
        "logprobs": 4.0,
        "context_window": 8.0,
        "no_key": 0.0,
        "offline": 0.0,
        "no_local_install": 8.0,
        "success_rate": pytest.approx(24 * 3 / 5),
        "typed_errors": pytest.approx(12 * (1.0 + 0.0) / 2),
    }
    assert score.points == pytest.approx(48 + 14.4 + 6)
    assert score.evidence["error_types"] == ["RateLimitError", "TypeError"]


def test_local_provider_declares_offline_keyless_but_needs_an_install() -> None:
    with Client() as client:  # capabilities need no loaded model
        caps = capabilities_for(client, "local:gemma-3-270m")
    rows = [row("local:gemma-3-270m", i) for i in range(4)]
    score = assess_usability("local:gemma-3-270m", caps, rows)
    assert score.criteria["no_key"] == 6 and score.criteria["offline"] == 6
    assert score.criteria["no_local_install"] == 0
    assert score.criteria["tools"] == 0 and score.criteria["logprobs"] == 0
    assert score.criteria["json_schema"] == 8
    assert score.criteria["context_window"] == 2  # n_ctx 4096 by default
    assert score.criteria["success_rate"] == 24 and score.criteria["typed_errors"] == 12
    assert "no call failed: typed_errors gets full points" in score.notes


def test_self_hosted_price_entry_means_a_local_install() -> None:
    caps = Capabilities(needs_key=False, json_object=True)
    score = assess_usability("ollama:llama3", caps, [row("ollama:llama3", 0)])
    assert score.evidence["self_hosted_price"] is True
    assert score.criteria["no_local_install"] == 0
    assert score.criteria["json_schema"] == 4  # JSON-object mode only
    assert score.criteria["no_key"] == 6 and score.criteria["offline"] == 0


def test_context_window_falls_back_to_the_catalog() -> None:
    score = assess_usability("openai:gpt-5.4-mini", HOSTED.with_(context_window=None), [])
    assert score.evidence["context_window"] == 272000
    assert score.criteria["context_window"] == 8


def test_no_rows_scores_the_measured_part_zero_and_says_so() -> None:
    score = assess_usability("openai:m", HOSTED, [], price_lookup=lambda t: None)
    assert score.criteria["success_rate"] == 0 and score.criteria["typed_errors"] == 0
    assert "no result rows: measured criteria score 0" in score.notes


def test_only_the_targets_own_rows_count() -> None:
    rows = [row("a:x", 0), row("b:y", 1, ok=False, error_type="KeyError", message="x")]
    score = assess_usability("a:x", HOSTED, rows, price_lookup=lambda t: None)
    assert score.evidence["calls"] == 1 and score.criteria["success_rate"] == 24
