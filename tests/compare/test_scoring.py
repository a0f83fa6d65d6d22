"""Scoring math on hand-made summaries: normalisation, weights, ties and missing values."""

from __future__ import annotations

import pytest

from llmos.compare.model import MetricValue, TargetSummary
from llmos.compare.scoring import (
    DEFAULT_WEIGHTS,
    SCORING_RULES,
    normalise,
    parse_weights,
    rank,
    scoreboard,
)
from llmos.compare.usability import RUBRIC, UsabilityScore
from llmos.errors import InvalidRequestError


def mv(value: float | None, reason: str | None = None) -> MetricValue:
    return MetricValue(value=value, reason=reason if value is None else None)


def summaries(
    target: str,
    quality: dict[str, dict[str, float | None]],
    latency: float | None,
    cost: float | None,
    blended: float | None = None,
) -> list[TargetSummary]:
    """Per-task summaries with the given primary metrics, plus the target's "all" summary."""
    rows = [
        TargetSummary(
            target=target,
            task=task,
            items=10,
            errors=0,
            error_rate=0.0,
            quality={name: mv(v, "not measured") for name, v in metrics.items()},
        )
        for task, metrics in quality.items()
    ]
    rows.append(
        TargetSummary(
            target=target,
            task="all",
            items=10 * len(quality),
            errors=0,
            error_rate=0.0,
            latency_p50_s=latency,
            cost_per_item_usd=mv(cost, "cost unknown for 1 of 20 item(s): price unknown"),
            blended_price_per_1m=mv(blended, "no price for this target in the catalog"),
        )
    )
    return rows


def usability(target: str, points: float) -> UsabilityScore:
    return UsabilityScore(target=target, points=points, criteria={"success_rate": points})


def three_targets() -> list[TargetSummary]:
    return [
        *summaries(
            "a:x", {"qa": {"contains_match": 0.8}, "translation": {"bleu": 40.0}}, 1.0, 0.002
        ),
        *summaries(
            "b:y", {"qa": {"contains_match": 0.6}, "translation": {"bleu": 20.0}}, 0.5, 0.001
        ),
        *summaries(
            "c:z", {"qa": {"contains_match": 0.4}, "translation": {"bleu": 60.0}}, 2.0, None
        ),
    ]


USE = {"a:x": usability("a:x", 80), "b:y": usability("b:y", 60), "c:z": usability("c:z", 70)}


# --------------------------------------------------------------------------- weights


def test_default_weights() -> None:
    assert parse_weights(None) == DEFAULT_WEIGHTS == parse_weights("") == parse_weights({})


def test_weights_parse_and_normalise_to_one() -> None:
    assert parse_weights("performance=2, price=1,usability=1") == {
        "performance": 0.5,
        "price": 0.25,
        "usability": 0.25,
    }
    assert parse_weights("price=3") == {"performance": 0.0, "price": 1.0, "usability": 0.0}
    assert parse_weights({"performance": 1, "usability": 1})["usability"] == 0.5


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("speed=1", "unknown dimension 'speed'"),
        ("price=-1", "price=-1 must be a finite number >= 0"),
        ("price=nan", "must be a finite number"),
        ("price=cheap", "price='cheap' is not a number"),
        ("price=0,usability=0", "at least one weight must be above 0"),
        ("price=1,price=2", "'price' is given twice"),
        ("price", "'price' is not name=value"),
        ("price=1,,usability=1", "'' is not name=value"),
    ],
)
def test_bad_weights_name_the_field_and_the_problem(spec: str, fragment: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_weights(spec)
    assert info.value.field == "weights"
    assert fragment in str(info.value)
    assert "performance=0.4,price=0.3,usability=0.3" in str(info.value)


# --------------------------------------------------------------------------- normalise / rank


def test_min_max_normalisation() -> None:
    assert normalise({"a": 2.0, "b": 4.0, "c": 3.0}) == {"a": 0.0, "b": 100.0, "c": 50.0}
    assert normalise({"a": 2.0, "b": 4.0}, higher_is_better=False) == {"a": 100.0, "b": 0.0}


def test_all_equal_and_single_values_score_100_and_missing_stays_missing() -> None:
    assert normalise({"a": 5.0, "b": 5.0, "c": None}) == {"a": 100.0, "b": 100.0, "c": None}
    assert normalise({"solo": 0.2}) == {"solo": 100.0}
    assert normalise({"a": None}) == {"a": None}


def test_ranks_share_ties_and_skip() -> None:
    assert rank({"a": 90.0, "b": 70.0, "c": 90.0, "d": None, "e": 10.0}) == {
        "a": 1,
        "b": 3,
        "c": 1,
        "d": None,
        "e": 4,
    }
    assert rank({"a": 50.0, "b": 50.0 + 1e-9}) == {"a": 1, "b": 1}  # equal to 6 decimals


# --------------------------------------------------------------------------- the scoreboard


def test_scoreboard_by_hand_with_a_missing_price() -> None:
    board = scoreboard(three_targets(), usability=USE)
    by = {s.target: s for s in board.scores}
    # quality index: a (0.8 + 0.40)/2 = 0.6, b (0.6 + 0.2)/2 = 0.4, c (0.4 + 0.6)/2 = 0.5
    # speed ratio (fastest 0.5 s): a 0.5, b 1.0, c 0.25
    # performance raw: a 0.575, b 0.55, c 0.4375 -> a 100, b 81.82, c 0
    assert by["a:x"].details["performance"]["quality_index"] == pytest.approx(0.6)
    assert by["c:z"].details["performance"]["speed_ratio"] == pytest.approx(0.25)
    assert by["a:x"].dimensions["performance"].value == pytest.approx(100)
    assert by["b:y"].dimensions["performance"].value == pytest.approx(100 * 0.1125 / 0.1375)
    assert by["c:z"].dimensions["performance"].value == pytest.approx(0)
    # price: cost per item (c unknown): a 0.002 -> 0, b 0.001 -> 100, c missing
    assert board.rubric["price_basis"] == "cost_per_item_usd"
    assert by["a:x"].dimensions["price"].value == pytest.approx(0)
    assert by["b:y"].dimensions["price"].value == pytest.approx(100)
    assert by["c:z"].dimensions["price"].value is None
    assert by["c:z"].dimensions["price"].reason == "price missing"
    # usability: 80, 60, 70 -> 100, 0, 50
    assert by["c:z"].dimensions["usability"].value == pytest.approx(50)
    # overall: a 0.4*100 + 0.3*0 + 0.3*100 = 70; b 0.4*81.82 + 0.3*100 = 62.73;
    # c has no price: (0.4*0 + 0.3*50) / 0.7 = 21.43
    assert by["a:x"].overall.value == pytest.approx(70)
    assert by["b:y"].overall.value == pytest.approx(0.4 * 100 * 0.1125 / 0.1375 + 30)
    assert by["c:z"].overall.value == pytest.approx(15 / 0.7)
    assert [s.target for s in board.scores] == ["a:x", "b:y", "c:z"]
    assert [s.rank for s in board.scores] == [1, 2, 3]
    assert any(m.startswith("c:z: price missing (cost unknown") for m in board.missing)
    assert "c:z: overall re-weighted over performance, usability (price missing)" in board.missing


def test_scoreboard_prints_its_rules_rubric_and_weights() -> None:
    board = scoreboard(three_targets(), usability=USE, weights="performance=1,price=1,usability=2")
    assert board.weights == {"performance": 0.25, "price": 0.25, "usability": 0.5}
    assert board.rubric["usability"] == RUBRIC
    assert board.rubric["scoring"] == SCORING_RULES
    assert len(board.summaries) == 9


def test_price_falls_back_to_the_blended_price_when_every_target_has_one() -> None:
    rows = [
        *summaries("a:x", {"qa": {"contains_match": 0.5}}, 1.0, None, blended=1.6875),
        *summaries("b:y", {"qa": {"contains_match": 0.5}}, 1.0, 0.001, blended=0.0),
    ]
    board = scoreboard(rows, usability={"a:x": usability("a:x", 50), "b:y": usability("b:y", 50)})
    by = {s.target: s for s in board.scores}
    assert board.rubric["price_basis"] == "blended_price_per_1m"
    assert by["a:x"].dimensions["price"].value == 0 and by["b:y"].dimensions["price"].value == 100
    # performance and usability tie: 100 each, so a = 0.4*100 + 0.3*0 + 0.3*100 = 70
    assert by["a:x"].overall.value == pytest.approx(70)
    assert by["b:y"].overall.value == pytest.approx(100)


def test_tied_targets_share_a_rank() -> None:
    same = {"qa": {"contains_match": 0.5}}
    rows = [
        *summaries("a:x", same, 1.0, 0.001),
        *summaries("b:y", same, 1.0, 0.001),
        *summaries("c:z", {"qa": {"contains_match": 0.1}}, 1.0, 0.002),
    ]
    use = {t: usability(t, 50) for t in ("a:x", "b:y", "c:z")}
    board = scoreboard(rows, usability=use)
    by = {s.target: s for s in board.scores}
    assert by["a:x"].overall.value == by["b:y"].overall.value == pytest.approx(100)
    assert (by["a:x"].rank, by["b:y"].rank, by["c:z"].rank) == (1, 1, 3)


def test_a_single_target_scores_100_everywhere() -> None:
    board = scoreboard(
        summaries("solo:m", {"qa": {"contains_match": 0.3}}, 2.0, 0.01),
        usability={"solo:m": usability("solo:m", 40)},
    )
    (score,) = board.scores
    assert {d: v.value for d, v in score.dimensions.items()} == {
        "performance": 100.0,
        "price": 100.0,
        "usability": 100.0,
    }
    assert score.overall.value == 100.0 and score.rank == 1


def test_a_task_some_target_lacks_is_left_out_of_the_quality_index() -> None:
    rows = [
        *summaries("a:x", {"qa": {"contains_match": 1.0}, "translation": {"bleu": 0.0}}, 1.0, 0.0),
        *summaries("b:y", {"qa": {"contains_match": 0.5}}, 1.0, 0.0),
    ]
    board = scoreboard(rows)
    by = {s.target: s for s in board.scores}
    assert by["a:x"].details["performance"]["quality_index"] == 1.0
    assert "translation" not in by["a:x"].details["performance"]["tasks"]
    assert "performance: task 'translation' left out of the quality index (not run for b:y)" in (
        board.missing
    )
    assert "a:x: usability missing (not assessed)" in board.missing


def test_code_uses_tests_passed_only_when_every_target_ran_the_tests() -> None:
    ran = {"code": {"tests_passed": 0.5, "syntax_ok": 1.0}}
    not_ran = {"code": {"tests_passed": None, "syntax_ok": 0.5}}
    board = scoreboard([*summaries("a:x", ran, 1.0, 0.0), *summaries("b:y", not_ran, 1.0, 0.0)])
    tasks = {s.target: s.details["performance"]["tasks"] for s in board.scores}
    assert tasks["a:x"]["code"] == {"metric": "syntax_ok", "value": 1.0}
    assert tasks["b:y"]["code"] == {"metric": "syntax_ok", "value": 0.5}
    both = scoreboard([*summaries("a:x", ran, 1.0, 0.0), *summaries("b:y", ran, 1.0, 0.0)])
    assert both.scores[0].details["performance"]["tasks"]["code"]["metric"] == "tests_passed"


def test_without_any_latency_performance_is_quality_alone_and_flagged() -> None:
    rows = [
        *summaries("a:x", {"qa": {"contains_match": 0.9}}, None, 0.0),
        *summaries("b:y", {"qa": {"contains_match": 0.3}}, None, 0.0),
    ]
    board = scoreboard(rows, weights="performance=1")
    by = {s.target: s for s in board.scores}
    assert by["a:x"].details["performance"]["raw"] == pytest.approx(0.9)
    assert by["a:x"].details["performance"]["speed_ratio"] is None
    assert "performance: no target has a measured latency; speed left out" in board.missing
    assert by["a:x"].overall.value == 100 and by["b:y"].overall.value == 0


def test_a_target_without_latency_gets_speed_zero_when_others_have_it() -> None:
    rows = [
        *summaries("a:x", {"qa": {"contains_match": 0.5}}, 1.0, 0.0),
        *summaries("b:y", {"qa": {"contains_match": 0.5}}, None, 0.0),
    ]
    board = scoreboard(rows)
    by = {s.target: s for s in board.scores}
    assert by["b:y"].details["performance"]["speed_ratio"] == 0.0
    assert by["b:y"].details["performance"]["raw"] == pytest.approx(0.375)
    assert "b:y: no measured latency; speed ratio counted as 0" in board.missing


def test_a_target_with_no_dimension_left_has_no_overall_and_no_rank() -> None:
    rows = [
        *summaries("a:x", {"qa": {"contains_match": 0.5}}, 1.0, 0.001),
        *summaries("b:y", {"qa": {"contains_match": 0.5}}, 1.0, None),
    ]
    board = scoreboard(rows, weights="price=1")
    by = {s.target: s for s in board.scores}
    assert by["b:y"].overall.value is None
    assert by["b:y"].overall.reason == "no weighted dimension present"
    assert by["b:y"].rank is None and board.scores[-1].target == "b:y"
    assert by["a:x"].rank == 1
