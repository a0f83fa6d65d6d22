"""The comparison runner: closed-loop workers over one client, JSONL rows, resume, estimates.

Remote targets run against the OpenAI-wire loopback server (two "models" of one
openai-compatible provider); the local target against the embedded Gemma 3 270M.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from tests.servers.base import LoopbackServer
from tests.servers.openai_server import ANSWER, ERRORS, create_app

from llmos import Client
from llmos.compare.model import ItemResult, TaskItem
from llmos.compare.runner import (
    ResultsFile,
    RunInterrupted,
    Runner,
    RunSettings,
    check_targets,
    run_key,
    seed_for,
)
from llmos.errors import InvalidRequestError

TARGETS = ["box:alpha", "box:beta"]


def qa_items(n: int = 3) -> list[TaskItem]:
    return [
        TaskItem(
            id=f"qa-{i}",
            task="qa",
            system="Answer briefly.",
            prompt=f"Question {i}: what is the capital of France?",
            answers=["Paris"],
            max_tokens=16,
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def loopback() -> Iterator[LoopbackServer]:
    app = create_app()
    with LoopbackServer(app) as server:
        server.app = app  # type: ignore[attr-defined]
        yield server


@pytest.fixture
def app(loopback: LoopbackServer) -> Any:
    app = loopback.app  # type: ignore[attr-defined]
    app.state.requests.clear()
    app.state.headers.clear()
    app.state.failures.clear()
    loopback.reset_hits()
    return app


@pytest.fixture
def client(loopback: LoopbackServer, app: Any) -> Iterator[Client]:
    providers = {"box": {"kind": "openai-compatible", "base_url": loopback.url + "/v1"}}
    with Client(providers=providers, env={}) as c:
        yield c


def keys_in(path: Path) -> Counter[tuple[str, str, str, int]]:
    """Every row key in a results file, counted (the file as a whole, not one run)."""
    rows = [ItemResult.model_validate_json(line) for line in path.read_text().splitlines()]
    return Counter(row.key() for row in rows)


def chat_requests(app: Any) -> list[dict[str, Any]]:
    """The measured calls (streamed); warm-up calls are plain chat calls."""
    return [r for r in app.state.requests if "messages" in r and r.get("stream")]


def warmups(app: Any) -> list[dict[str, Any]]:
    return [r for r in app.state.requests if "messages" in r and not r.get("stream")]


# --------------------------------------------------------------------------- running


def test_every_job_becomes_one_measured_row(client: Client, app: Any, tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    settings = RunSettings(repeats=2, concurrency=3)
    outcome = Runner(client, TARGETS, qa_items(3), results, settings).run()

    assert outcome.new_rows == len(outcome.rows) == 2 * 3 * 2
    assert set(keys_in(results).values()) == {1}
    for row in outcome.rows:
        assert row.ok, row.error_message
        assert row.output == ANSWER
        assert row.run_key == outcome.run_key
        assert row.ttft_s is not None and row.total_s is not None and row.total_s >= row.ttft_s
        assert row.completion_tokens == 9 and row.usage_source == "provider"
        assert row.tokens_per_s is not None and row.tokens_per_s > 0
        assert row.inter_token_s is not None
        assert row.quality["contains_match"].value == 1.0
        assert row.cost_usd is None and row.cost_reason  # an unpriced server: why, not $0
        assert row.perplexity is not None and row.perplexity.reason  # no logprobs offered
    assert len(chat_requests(app)) == 12


def test_calls_are_greedy_streamed_and_seeded_per_item_and_repeat(
    client: Client, app: Any, tmp_path: Path
) -> None:
    items = qa_items(2)
    Runner(client, TARGETS, items, tmp_path / "r.jsonl", RunSettings(repeats=2, seed=7)).run()

    seeds: dict[tuple[str, str], set[int]] = {}
    for body in chat_requests(app):
        assert body["stream"] is True
        assert body["temperature"] == 0
        assert body["max_tokens"] == 16
        assert body["messages"][0] == {"role": "system", "content": "Answer briefly."}
        prompt = body["messages"][-1]["content"]
        seeds.setdefault((prompt, body["model"]), set()).add(body["seed"])
    for item in items:
        expected = {seed_for(7, item.id, 0), seed_for(7, item.id, 1)}
        # The same seeds on both targets: they answer the same question under the same draw.
        assert seeds[(item.prompt, "alpha")] == seeds[(item.prompt, "beta")] == expected


def test_each_target_is_warmed_up_once_before_measuring(
    client: Client, app: Any, tmp_path: Path
) -> None:
    results = tmp_path / "r.jsonl"
    Runner(client, TARGETS, qa_items(2), results).run()
    assert sorted(r["model"] for r in warmups(app)) == ["alpha", "beta"]
    assert all(r["max_tokens"] == 1 for r in warmups(app))
    assert len(chat_requests(app)) == 4  # warm-ups are not rows

    app.state.requests.clear()
    Runner(client, TARGETS, qa_items(2), results).run()  # nothing left to run: no warm-up
    assert app.state.requests == []


def test_temperature_none_sends_no_temperature_and_max_tokens_caps_items(
    client: Client, app: Any, tmp_path: Path
) -> None:
    settings = RunSettings(temperature=None, max_tokens=4)
    Runner(client, ["box:alpha"], qa_items(1), tmp_path / "r.jsonl", settings).run()

    (body,) = chat_requests(app)
    assert "temperature" not in body
    assert body["max_tokens"] == 4


def test_errors_become_rows_with_the_llmos_error_class(
    client: Client, app: Any, tmp_path: Path
) -> None:
    app.state.failures.append(ERRORS["bad_request"])  # 400: not retried
    settings = RunSettings(concurrency=1, warmup=False)
    outcome = Runner(client, ["box:alpha"], qa_items(2), tmp_path / "r.jsonl", settings).run()

    failed = [r for r in outcome.rows if not r.ok]
    assert len(failed) == 1 and len(outcome.rows) == 2
    assert failed[0].error_type == "InvalidRequestError"
    assert "temperature" in (failed[0].error_message or "")
    assert failed[0].output == "" and failed[0].quality == {}


def test_a_slow_item_times_out_as_an_error_row(client: Client, app: Any, tmp_path: Path) -> None:
    slow = TaskItem(id="slow", task="qa", prompt="__sleep__:1", answers=["x"], max_tokens=8)
    settings = RunSettings(timeout_s=0.3, warmup=False)
    outcome = Runner(client, ["box:alpha"], [slow], tmp_path / "r.jsonl", settings).run()

    (row,) = outcome.rows
    assert not row.ok
    assert row.error_type == "APITimeoutError"


def test_targets_without_a_key_or_provider_are_skipped_with_a_reason(
    client: Client, tmp_path: Path
) -> None:
    usable, skipped = check_targets(
        client, ["box:alpha", "openai:gpt-5.4-mini", "nope:model", "box:alpha"]
    )
    assert usable == ["box:alpha"]
    assert "OPENAI_API_KEY" in skipped["openai:gpt-5.4-mini"]
    assert "unknown provider" in skipped["nope:model"]

    runner = Runner(client, ["box:alpha", "openai:gpt-5.4-mini"], qa_items(1), tmp_path / "r")
    outcome = runner.run()
    assert {r.target for r in outcome.rows} == {"box:alpha"}
    assert outcome.skipped == {"openai:gpt-5.4-mini": skipped["openai:gpt-5.4-mini"]}


def test_settings_refuse_bad_values_naming_the_field() -> None:
    with pytest.raises(InvalidRequestError) as info:
        RunSettings(concurrency=0)
    assert info.value.field == "concurrency"
    with pytest.raises(InvalidRequestError) as info:
        RunSettings(temperature=3)
    assert info.value.field == "temperature"


# --------------------------------------------------------------------------- resuming


class Stop(Exception):
    pass


def stop_after(k: int, exc: BaseException) -> Any:
    seen: list[ItemResult] = []

    def on_row(row: ItemResult) -> None:
        seen.append(row)
        if len(seen) == k:
            raise exc

    return on_row


def test_an_interrupted_run_resumes_without_losing_or_repeating_rows(
    client: Client, app: Any, tmp_path: Path
) -> None:
    results = tmp_path / "results.jsonl"
    items = qa_items(4)
    settings = RunSettings(repeats=2, concurrency=1)
    total = len(TARGETS) * len(items) * 2

    with pytest.raises(Stop):
        Runner(client, TARGETS, items, results, settings, on_row=stop_after(5, Stop())).run()
    assert sum(keys_in(results).values()) == 5
    assert len(chat_requests(app)) == 5

    outcome = Runner(client, TARGETS, items, results, settings).run()

    assert outcome.resumed_rows == 5 and outcome.new_rows == total - 5
    counts = keys_in(results)
    expected = {(t, "qa", item.id, r) for t in TARGETS for item in items for r in range(2)}
    assert set(counts) == expected
    assert all(n == 1 for n in counts.values())
    assert len(chat_requests(app)) == total  # nothing was asked twice


def test_ctrl_c_keeps_finished_rows_and_concurrent_resume_has_each_row_once(
    client: Client, tmp_path: Path
) -> None:
    results = tmp_path / "results.jsonl"
    items = qa_items(5)
    settings = RunSettings(concurrency=4)

    with pytest.raises(RunInterrupted) as info:
        Runner(
            client, TARGETS, items, results, settings, on_row=stop_after(3, KeyboardInterrupt())
        ).run()
    kept = info.value.outcome
    assert kept.interrupted and kept.new_rows >= 3
    assert sum(keys_in(results).values()) == kept.new_rows  # what finished is on disk

    outcome = Runner(client, TARGETS, items, results, settings).run()
    counts = keys_in(results)
    assert len(counts) == len(TARGETS) * len(items) == len(outcome.rows)
    assert all(n == 1 for n in counts.values())


def test_a_torn_last_line_is_ignored_reported_and_run_again(
    client: Client, app: Any, tmp_path: Path
) -> None:
    results = tmp_path / "results.jsonl"
    items = qa_items(2)
    Runner(client, ["box:alpha"], items, results).run()
    lines = results.read_text().splitlines()
    # A crash in the middle of writing the second row leaves half a line and no newline.
    results.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])
    app.state.requests.clear()

    outcome = Runner(client, ["box:alpha"], items, results).run()

    assert any("torn last line" in note for note in outcome.notes)
    assert outcome.resumed_rows == 1 and outcome.new_rows == 1
    assert len(chat_requests(app)) == 1
    assert all(n == 1 for n in keys_in(results).values())  # the file is whole JSONL again


def test_rows_of_other_runs_are_kept_but_not_reused(client: Client, tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    items = qa_items(1)
    first = Runner(client, ["box:alpha"], items, results, RunSettings(seed=1)).run()
    second = Runner(client, ["box:alpha"], items, results, RunSettings(seed=2)).run()

    assert first.run_key != second.run_key
    assert second.new_rows == 1 and second.resumed_rows == 0
    assert len(results.read_text().splitlines()) == 2


def test_adding_a_target_or_repeats_reuses_the_rows_already_measured(
    client: Client, app: Any, tmp_path: Path
) -> None:
    results = tmp_path / "results.jsonl"
    items = qa_items(2)
    Runner(client, ["box:alpha"], items, results).run()
    app.state.requests.clear()

    outcome = Runner(client, TARGETS, items, results, RunSettings(repeats=2)).run()

    assert outcome.resumed_rows == 2 and outcome.new_rows == 6
    assert len(chat_requests(app)) == 6


def test_retry_errors_runs_failed_rows_again_and_the_new_row_wins(
    client: Client, app: Any, tmp_path: Path
) -> None:
    results = tmp_path / "results.jsonl"
    items = qa_items(1)
    app.state.failures.append(ERRORS["bad_request"])
    first = Runner(client, ["box:alpha"], items, results, RunSettings(warmup=False)).run()
    assert not first.rows[0].ok

    kept = Runner(client, ["box:alpha"], items, results).run()
    assert kept.new_rows == 0 and not kept.rows[0].ok  # an error is a result, kept by default

    again = Runner(client, ["box:alpha"], items, results, RunSettings(retry_errors=True)).run()
    assert again.new_rows == 1 and again.rows[0].ok
    rows, _ = ResultsFile(results).load(again.run_key)
    assert [r.ok for r in rows.values()] == [True]


def test_run_key_covers_what_a_row_means_and_nothing_else() -> None:
    items = qa_items(2)
    base = run_key(items, RunSettings())
    assert run_key(items, RunSettings(repeats=3, concurrency=1, timeout_s=5)) == base
    assert run_key(items, RunSettings(seed=1)) != base
    assert run_key(items, RunSettings(temperature=0.5)) != base
    assert run_key(items, RunSettings(max_tokens=8)) != base
    changed = [items[0].model_copy(update={"prompt": "Another question?"}), items[1]]
    assert run_key(changed, RunSettings()) != base
    assert seed_for(0, "qa-0", 0) == seed_for(0, "qa-0", 0) != seed_for(0, "qa-0", 1)


# --------------------------------------------------------------------------- estimates


def test_estimate_multiplies_per_item_estimates_and_counts_what_is_left(
    loopback: LoopbackServer, app: Any, tmp_path: Path
) -> None:
    providers = {
        "box": {"kind": "openai-compatible", "base_url": loopback.url + "/v1"},
        "openai": {"api_key": "sk-test-not-sent", "base_url": loopback.url + "/v1"},
    }
    items = qa_items(2)
    results = tmp_path / "r.jsonl"
    with Client(providers=providers, env={}) as client:
        settings = RunSettings(repeats=3, warmup=False)
        runner = Runner(client, ["openai:gpt-5.4-mini", "box:alpha"], items, results, settings)
        estimate = runner.estimate()
        one = [client.estimate("openai:gpt-5.4-mini", _messages(i), max_tokens=16) for i in items]
        warm = client.estimate("openai:gpt-5.4-mini", _messages(items[0]), max_tokens=1)
        with_warmup = Runner(
            client, ["openai:gpt-5.4-mini"], items, results, RunSettings(repeats=3)
        ).estimate()

    paid, box = estimate.targets
    expected = sum((e.worst_case_usd or Decimal(0)) for e in one) * 3
    assert paid.worst_case_usd == expected > 0
    assert paid.calls == paid.pending_calls == 6
    # The warm-up call is part of the estimate too.
    assert with_warmup.worst_case_usd == expected + (warm.worst_case_usd or 0)
    assert box.worst_case_usd is None and box.reason  # unpriced: unknown, with the reason
    assert estimate.worst_case_usd is None
    assert app.state.requests == []  # nothing was sent
    # The paid target's worst case is over a zero threshold; the keyless server never asks.
    reasons = estimate.needs_confirmation(Decimal(0))
    assert len(reasons) == 1 and "could cost up to" in reasons[0]
    assert estimate.needs_confirmation(Decimal(100)) == []


def test_an_unpriced_paid_target_always_needs_confirmation(
    loopback: LoopbackServer, tmp_path: Path
) -> None:
    providers = {"openai": {"api_key": "sk-test-not-sent", "base_url": loopback.url + "/v1"}}
    with Client(providers=providers, env={}) as client:
        runner = Runner(client, ["openai:some-future-model"], qa_items(1), tmp_path / "r")
        reasons = runner.estimate().needs_confirmation(Decimal(100))
    assert len(reasons) == 1 and "price unknown" in reasons[0]


def _messages(item: TaskItem) -> list[dict[str, str]]:
    from llmos.compare.tasks import item_messages

    return item_messages(item)


# --------------------------------------------------------------------------- the local model


@pytest.mark.slow
def test_local_target_runs_one_at_a_time_with_perplexity_of_its_output(
    local_client: Client, tmp_path: Path
) -> None:
    items = qa_items(2)
    settings = RunSettings(concurrency=4, max_tokens=6)
    runner = Runner(local_client, ["local:gemma-3-270m"], items, tmp_path / "r.jsonl", settings)
    assert runner._limits() == {"local:gemma-3-270m": 1}

    outcome = runner.run()

    assert len(outcome.rows) == 2
    for row in outcome.rows:
        assert row.ok, row.error_message
        assert row.cost_usd is not None  # the local model is priced (at $0 without compute)
        assert row.perplexity is not None
        if row.output.strip():
            assert row.perplexity.value is not None and row.perplexity.value >= 1
            assert row.perplexity_of == "output"
    # Temperature 0 and a fixed seed: the same run again gives the same answers.
    again = Runner(
        local_client, ["local:gemma-3-270m"], items, tmp_path / "again.jsonl", settings
    ).run()
    assert [r.output for r in again.rows] == [r.output for r in outcome.rows]


def test_results_file_lines_are_one_json_object_each(client: Client, tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    Runner(client, TARGETS, qa_items(2), results).run()
    text = results.read_text()
    assert text.endswith("\n")
    for line in text.splitlines():
        assert isinstance(json.loads(line), dict)
