"""Result rows -> summaries: errors, speed percentiles, quality with failures, costs, prices."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import sacrebleu

from llmos.compare.aggregate import ALL_TASKS, blended_price, dedupe, summarize
from llmos.compare.metrics import NOT_EXECUTED
from llmos.compare.model import ItemResult, MetricValue, TaskItem
from llmos.compare.scoring import scoreboard
from llmos.pricing import PriceEntry

ITEMS = [
    TaskItem(id="t1", task="translation", prompt="The cat.", references=["Le chat."]),
    TaskItem(
        id="t2",
        task="translation",
        prompt="Thank you.",
        references=["Merci beaucoup.", "Merci."],
    ),
    TaskItem(id="t3", task="translation", prompt="It rains.", references=["Il pleut."]),
    TaskItem(id="q1", task="qa", prompt="?", answers=["a"]),
    TaskItem(id="q2", task="qa", prompt="?", answers=["b"]),
]


def row(target: str, task: str, item: str, ok: bool = True, **fields: Any) -> ItemResult:
    base: dict[str, Any] = dict(run_key="r", target=target, task=task, item_id=item, ok=ok)
    if not ok:
        base.update(error_type="ServerError", error_message="upstream failed")
    return ItemResult(**{**base, **fields})


def q(**metrics: float | None) -> dict[str, MetricValue]:
    return {k: MetricValue(value=v) for k, v in metrics.items()}


def rows_for_a() -> list[ItemResult]:
    return [
        row("a:x", "translation", "t1", output="Le chat.", quality=q(bleu=100.0),
            total_s=1.0, ttft_s=0.1, tokens_per_s=50.0, inter_token_s=0.02,
            cost_usd=Decimal("0.001")),
        row("a:x", "translation", "t2", output="Merci.", quality=q(bleu=100.0),
            total_s=2.0, ttft_s=0.2, tokens_per_s=40.0, inter_token_s=0.025,
            cost_usd=Decimal("0.002")),
        row("a:x", "translation", "t3", ok=False),
        row("a:x", "qa", "q1", output="a", quality=q(exact_match=1.0, contains_match=1.0),
            total_s=3.0, ttft_s=0.3, cost_usd=Decimal("0.003")),
        row("a:x", "qa", "q2", output="c", quality=q(exact_match=0.0, contains_match=1.0),
            total_s=4.0, ttft_s=None, cost_usd=Decimal("0.004")),
    ]  # fmt: skip


def lookup(target: str) -> PriceEntry | None:
    if target == "a:x":
        return PriceEntry(
            key="a:x", provider="a", model="x", input=Decimal("1"), output=Decimal("5")
        )
    return None


def by_task(summaries: list[Any], target: str = "a:x") -> dict[str, Any]:
    return {s.task: s for s in summaries if s.target == target}


def test_one_summary_per_task_then_all() -> None:
    summaries = summarize(rows_for_a(), ITEMS, price_lookup=lookup)
    assert [(s.target, s.task) for s in summaries] == [
        ("a:x", "translation"),
        ("a:x", "qa"),
        ("a:x", ALL_TASKS),
    ]


def test_error_rate_and_speed_percentiles_over_successful_rows() -> None:
    s = by_task(summarize(rows_for_a(), ITEMS, price_lookup=lookup))
    assert (s["translation"].items, s["translation"].errors) == (3, 1)
    assert s["translation"].error_rate == pytest.approx(1 / 3)
    total = s[ALL_TASKS]
    assert (total.items, total.errors, total.error_rate) == (5, 1, 0.2)
    # latencies 1, 2, 3, 4 (the failed row has none): p50 2.5, p95 3.85 (linear)
    assert total.latency_p50_s == pytest.approx(2.5)
    assert total.latency_p95_s == pytest.approx(3.85)
    # ttft 0.1, 0.2, 0.3 (one missing): n says 3
    assert total.ttft_p50_s == pytest.approx(0.2)
    assert total.samples["ttft_s"] == 3 and total.samples["total_s"] == 4
    assert total.tokens_per_s_p50 == pytest.approx(45.0)
    assert total.inter_token_p95_s == pytest.approx(0.02 + 0.005 * 0.95)


def test_failed_rows_count_as_zero_quality_and_corpus_bleu_matches_sacrebleu() -> None:
    s = by_task(summarize(rows_for_a(), ITEMS, price_lookup=lookup))
    tr = s["translation"]
    assert tr.quality["bleu_sentence_mean"].value == pytest.approx(200 / 3)
    expected = sacrebleu.corpus_bleu(
        ["Le chat.", "Merci.", ""],
        [["Le chat.", "Merci beaucoup.", "Il pleut."], [None, "Merci.", None]],
    ).score
    assert tr.quality["bleu"].value == pytest.approx(expected)
    assert tr.samples["bleu"] == 3
    assert "translation: 1 failed item(s) counted as 0 quality" in tr.notes
    assert s["qa"].quality["exact_match"].value == 0.5
    assert s["qa"].quality["contains_match"].value == 1.0
    assert s[ALL_TASKS].quality.keys() >= {"bleu", "exact_match", "contains_match"}


def test_without_items_bleu_is_the_mean_sentence_bleu() -> None:
    s = by_task(summarize(rows_for_a(), price_lookup=lookup))
    assert s["translation"].quality["bleu"].value == pytest.approx(200 / 3)
    assert "bleu_sentence_mean" not in s["translation"].quality


def test_every_item_failing_gives_zero_quality() -> None:
    rows = [row("b:y", "qa", "q1", ok=False), row("b:y", "qa", "q2", ok=False)]
    (qa, _) = summarize(rows, price_lookup=lookup)
    assert qa.quality["contains_match"].value == 0.0 and qa.error_rate == 1.0
    assert "qa: every item failed; quality is 0" in qa.notes
    assert qa.latency_p50_s is None and qa.samples["total_s"] == 0


def test_unmeasured_metric_keeps_its_reason_and_a_note() -> None:
    quality = {
        "tests_passed": MetricValue(value=None, reason=NOT_EXECUTED),
        "syntax_ok": MetricValue(value=1.0),
    }
    rows = [row("a:x", "code", "c1", quality=quality), row("a:x", "code", "c2", ok=False)]
    (code, _) = summarize(rows, price_lookup=lookup)
    assert code.quality["tests_passed"] == MetricValue(value=None, reason=NOT_EXECUTED)
    assert code.quality["syntax_ok"].value == 0.5
    assert f"code: tests_passed n/a ({NOT_EXECUTED})" in code.notes


def test_costs_sum_exactly_and_blended_price_is_three_to_one() -> None:
    total = by_task(summarize(rows_for_a(), ITEMS, price_lookup=lookup))[ALL_TASKS]
    assert total.cost_total_usd == MetricValue(value=0.01)
    assert total.cost_per_item_usd == MetricValue(value=0.002)  # 0.010 / 5 rows
    assert "1 failed call(s) without a cost counted as 0" in total.notes
    assert total.blended_price_per_1m == MetricValue(value=2.0)  # (3*1 + 5) / 4


def test_an_unknown_cost_makes_the_totals_unknown_with_the_reason() -> None:
    rows = [
        *rows_for_a(),
        row("a:x", "qa", "q3", output="x", cost_usd=None, cost_reason="no price for a:x"),
    ]
    total = by_task(summarize(rows, price_lookup=lookup))[ALL_TASKS]
    assert total.cost_total_usd is not None and total.cost_total_usd.value is None
    assert total.cost_total_usd.reason == "cost unknown for 1 of 6 item(s): no price for a:x"
    assert total.cost_per_item_usd == total.cost_total_usd


def test_blended_price_from_the_real_catalog_and_for_unpriced_targets() -> None:
    assert blended_price("openai:gpt-5.4-mini").value == pytest.approx((3 * 0.75 + 4.5) / 4)
    local = blended_price("local:gemma-3-270m")
    assert local.value == 0.0 and "self-hosted" in (local.reason or "")
    unknown = blended_price("nobody:model")
    assert unknown.value is None
    assert "llmos.pricing.register('nobody:model'" in (unknown.reason or "")


def test_rows_are_deduplicated_by_key_last_wins() -> None:
    first = row("a:x", "qa", "q1", ok=False)
    again = row("a:x", "qa", "q1", output="a", quality=q(contains_match=1.0))
    other_repeat = row("a:x", "qa", "q1", repeat=1, ok=False)
    assert dedupe([first, other_repeat, again]) == [again, other_repeat]
    (qa, _) = summarize([first, again], price_lookup=lookup)
    assert qa.items == 1 and qa.errors == 0


def test_perplexity_is_averaged_and_says_whose_text() -> None:
    rows = [
        row("a:x", "qa", "q1", perplexity=MetricValue(value=2.0), perplexity_of="output"),
        row("a:x", "qa", "q2", perplexity=MetricValue(value=4.0), perplexity_of="output"),
    ]
    (qa, _) = summarize(rows, price_lookup=lookup)
    assert qa.perplexity == MetricValue(value=3.0)
    assert qa.perplexity_of == "output" and qa.samples["perplexity"] == 2
    mixed = [
        *rows,
        row("a:x", "qa", "q3", perplexity=MetricValue(value=6.0), perplexity_of="reference"),
    ]
    (qa, _) = summarize(mixed, price_lookup=lookup)
    assert qa.perplexity_of == "mixed (output, reference)"
    none = [
        row(
            "b:y",
            "qa",
            "q1",
            perplexity=MetricValue(value=None, reason="target exposes no logprobs"),
        )
    ]
    (qa, _) = summarize(none, price_lookup=lookup)
    assert qa.perplexity == MetricValue(value=None, reason="target exposes no logprobs")


def test_summaries_feed_the_scoreboard() -> None:
    rows = [
        *rows_for_a(),
        row("b:y", "translation", "t1", output="Chat.", quality=q(bleu=20.0), total_s=0.5,
            cost_usd=Decimal(0)),
        row("b:y", "translation", "t2", output="Merci.", quality=q(bleu=100.0), total_s=0.5,
            cost_usd=Decimal(0)),
        row("b:y", "translation", "t3", output="Il pleut.", quality=q(bleu=100.0), total_s=0.5,
            cost_usd=Decimal(0)),
        row("b:y", "qa", "q1", output="a", quality=q(exact_match=1.0, contains_match=1.0),
            total_s=0.5, cost_usd=Decimal(0)),
        row("b:y", "qa", "q2", output="b", quality=q(exact_match=1.0, contains_match=1.0),
            total_s=0.5, cost_usd=Decimal(0)),
    ]  # fmt: skip
    board = scoreboard(summarize(rows, ITEMS, price_lookup=lookup))
    assert [s.target for s in board.scores] == ["b:y", "a:x"]
    best = board.scores[0]
    assert best.dimensions["performance"].value == 100 and best.dimensions["price"].value == 100
