"""Quality metrics equal the reference libraries; matching and percentiles on hand-made cases."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import sacrebleu
from rouge_score import rouge_scorer

from llmos.compare.metrics import (
    NOT_EXECUTED,
    contains_match,
    corpus_bleu,
    distinct_n,
    exact_match,
    facts_coverage,
    normalize_text,
    percentile,
    rouge_l,
    score_item,
    sentence_bleu,
    stat,
)
from llmos.compare.model import TaskItem
from llmos.errors import ConfigurationError

HYPOTHESES = [
    "Le chat est sur la table.",
    "Bonjour, comment vas tu ?",
    "Je voudrais un café.",
    "",
]
REFERENCES = [
    ["Le chat est sur la table."],
    ["Bonjour, comment allez-vous ?", "Bonjour, comment vas-tu ?"],
    ["Je voudrais une tasse de café, s'il vous plaît."],
    ["Il pleut aujourd'hui."],
]


@pytest.mark.parametrize("index", range(len(HYPOTHESES)))
def test_sentence_bleu_equals_sacrebleu(index: int) -> None:
    hyp, refs = HYPOTHESES[index], REFERENCES[index]
    expected = sacrebleu.sentence_bleu(hyp, refs).score
    assert sentence_bleu(hyp, refs) == pytest.approx(expected, abs=1e-12)


def test_corpus_bleu_equals_sacrebleu_with_one_reference_each() -> None:
    hyps = HYPOTHESES[:3]
    refs = [REFERENCES[0], REFERENCES[1][:1], REFERENCES[2]]
    expected = sacrebleu.corpus_bleu(hyps, [[r[0] for r in refs]]).score
    assert corpus_bleu(hyps, refs) == pytest.approx(expected, abs=1e-12)


def test_corpus_bleu_with_uneven_references_pads_the_streams_with_none() -> None:
    streams = [
        [r[0] for r in REFERENCES],
        [r[1] if len(r) > 1 else None for r in REFERENCES],
    ]
    expected = sacrebleu.corpus_bleu(HYPOTHESES, streams).score
    assert corpus_bleu(HYPOTHESES, REFERENCES) == pytest.approx(expected, abs=1e-12)
    # a second reference can only help
    assert corpus_bleu(HYPOTHESES, REFERENCES) >= corpus_bleu(
        HYPOTHESES, [r[:1] for r in REFERENCES]
    )


def test_corpus_bleu_needs_one_reference_list_per_output() -> None:
    with pytest.raises(ValueError, match="one reference list per output"):
        corpus_bleu(["a"], [])


SUMMARIES = [
    (
        "The library closes in July for roof repairs.",
        ["The library will shut in July to fix its roof."],
    ),
    (
        "Maya gave tomatoes to her neighbours.",
        ["Maya grew many tomatoes.", "Maya shared her tomatoes with the neighbours."],
    ),
    ("Nothing in common here.", ["A dog was found by the river."]),
]


@pytest.mark.parametrize(("output", "refs"), SUMMARIES)
def test_rouge_l_equals_rouge_score_with_stemming_best_reference(
    output: str, refs: list[str]
) -> None:
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    expected = max(scorer.score(ref, output)["rougeL"].fmeasure for ref in refs)
    assert rouge_l(output, refs) == pytest.approx(expected, abs=1e-12)


def test_missing_compare_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sacrebleu", None)  # makes `import sacrebleu` fail
    with pytest.raises(ConfigurationError, match=r"pip install 'llmos\[compare\]'"):
        sentence_bleu("a", ["a"])


def test_normalisation_ignores_case_punctuation_and_articles() -> None:
    assert normalize_text("The  Pacific   Ocean!") == "pacific ocean"
    assert normalize_text("An apple, a day.") == "apple day"
    assert normalize_text("555-0100 $4") == "555 0100 4"


def test_exact_and_contains_match() -> None:
    answers = ["Pacific Ocean", "the Pacific"]
    assert exact_match("the pacific ocean.", answers) == 1.0
    assert exact_match("It is the Pacific Ocean.", answers) == 0.0
    assert exact_match("\nPacific.\n\nUser: and the next question", answers) == 1.0
    assert contains_match("It is the Pacific Ocean.", answers) == 1.0
    assert contains_match("Pacificville", answers) == 0.0  # whole words only
    assert contains_match("seven", ["7|seven"]) == 1.0


def test_echoing_the_prompt_earns_no_points() -> None:
    prompt = "Write about a dog and a ball."
    assert facts_coverage("Write about a dog and a ball.", ["dog", "ball"], [prompt]) == 0.0
    assert facts_coverage("The dog chased the ball.", ["dog", "ball"], [prompt]) == 1.0


def test_facts_coverage_counts_alternatives_and_needs_facts() -> None:
    facts = ["30 days", "refund|money back"]
    assert facts_coverage("You can get your money back within 30 days.", facts) == 1.0
    assert facts_coverage("Within 30 days.", facts) == 0.5
    assert facts_coverage("anything", []) is None


def test_distinct_2_measures_repetition() -> None:
    assert distinct_n("a b c d", 2) == 1.0  # articles are dropped first: "b c d"
    assert distinct_n("go go go go", 2) == pytest.approx(1 / 3)
    assert distinct_n("one", 2) == 0.0


def test_percentile_interpolates_linearly_like_numpy() -> None:
    values = [0.4, 0.1, 0.3, 0.2, 2.0]
    for q in (0, 50, 95, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)
    assert percentile([], 50) is None
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1.0], 101)


def test_stat_ignores_missing_values_and_counts_the_rest() -> None:
    s = stat([None, 1.0, 3.0, None, float("nan")])
    assert (s.n, s.p50, s.mean) == (2, 2.0, 2.0)
    assert s.p95 == pytest.approx(2.9)
    assert stat([None]).n == 0 and stat([None]).p50 is None


def test_score_item_per_task() -> None:
    qa = TaskItem(id="q", task="qa", prompt="Capital of France?", answers=["Paris"])
    assert score_item(qa, "Paris")["exact_match"].value == 1.0
    assert score_item(qa, "It is Paris.")["contains_match"].value == 1.0
    tr = TaskItem(id="t", task="translation", prompt="x", references=["Le chat."])
    assert score_item(tr, "Le chat.")["bleu"].value == pytest.approx(100.0)
    gen = TaskItem(id="g", task="generation", prompt="Write.", facts=["sea"])
    scores = score_item(gen, "The sea is calm.")
    assert scores["topic_coverage"].value == 1.0 and scores["distinct_2"].value == 1.0
    bare = TaskItem(id="g2", task="generation", prompt="Write.")
    assert (
        score_item(bare, "text")["topic_coverage"].reason == "the item lists no topic words (facts)"
    )


def test_code_is_not_executed_unless_asked() -> None:
    item = TaskItem(id="c", task="code", prompt="f", tests="assert f(2) == 4", entry_point="f")
    scores = score_item(item, "```python\ndef f(x):\n    return x * 2\n```")
    assert scores["tests_passed"].value is None
    assert scores["tests_passed"].reason == NOT_EXECUTED
    assert scores["syntax_ok"].value == 1.0
    bad = score_item(item, "def f(x) return")
    assert bad["syntax_ok"].value == 0.0 and "syntax error" in (bad["syntax_ok"].reason or "")


def test_code_runs_with_execute_code() -> None:
    item = TaskItem(id="c", task="code", prompt="f", tests="assert f(2) == 4", entry_point="f")
    good = score_item(item, "def f(x):\n    return x * 2\n", execute_code=True)
    assert good["tests_passed"].value == 1.0
    wrong = score_item(item, "def f(x):\n    return x + 3\n", execute_code=True)
    assert wrong["tests_passed"].value == 0.0
    assert "assert f(2) == 4" in (wrong["tests_passed"].reason or "")
    broken = score_item(item, "def f(x) return", execute_code=True)
    assert broken["tests_passed"].value == 0.0
    assert (broken["tests_passed"].reason or "").startswith("not run: syntax error")
