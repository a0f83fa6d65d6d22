"""Quality metrics per item and the statistics of speed samples.

Per item, by task (every value in a :class:`MetricValue`, None with a reason when it cannot be
measured):

=============  ================================================================================
translation    ``bleu``: sentence BLEU, ``sacrebleu.sentence_bleu(output, references)`` with
               sacrebleu's defaults (13a tokenizer, ``exp`` smoothing, case-sensitive,
               effective order), 0–100. Task summaries use corpus BLEU, :func:`corpus_bleu`.
summarization  ``rouge_l``: ROUGE-L F-measure from ``rouge_score.rouge_scorer.RougeScorer(
               ["rougeL"], use_stemmer=True)``, best over the references (``score_multi``), 0–1.
qa             ``exact_match``: the output's first non-empty line, normalised, equals an
               accepted answer (small models ramble on after the answer);
               ``contains_match``: an accepted answer appears in the output as whole words.
               0 or 1.
support        ``facts_coverage``: share of the required facts the reply states, 0–1.
generation     ``topic_coverage``: share of the item's topic words used; ``distinct_2``: unique
               word bigrams / all bigrams (1 = no repetition). 0–1.
code           ``tests_passed`` (1 when the tests pass in the sandbox; only with
               ``execute_code``) and ``syntax_ok`` (the extracted code parses and defines the
               entry point). 0 or 1.
=============  ================================================================================

Normalisation (qa, support, generation): lower case, punctuation and symbols become spaces,
the articles a/an/the are dropped, whitespace collapses. A fact or answer may list alternatives
separated by ``|``. Copies of the item's prompt and system text are removed from the output
before matching, so echoing the question does not earn points.

Speed statistics: p50 and p95 by linear interpolation between the closest ranks (numpy's default
"linear" method, Hyndman & Fan type 7), over the values present; missing values are ignored and
``n`` says how many there were.
"""

from __future__ import annotations

import math
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from llmos.compare.model import MetricValue, TaskItem
from llmos.compare.sandbox import SandboxLimits, check_syntax, extract_code, run_tests
from llmos.errors import ConfigurationError

__all__ = [
    "METRICS",
    "NOT_EXECUTED",
    "PRIMARY_METRICS",
    "TASK_METRICS",
    "Stat",
    "contains_match",
    "corpus_bleu",
    "distinct_n",
    "exact_match",
    "facts_coverage",
    "normalize_text",
    "percentile",
    "rouge_l",
    "score_item",
    "sentence_bleu",
    "stat",
]

#: Metric name -> (what it measures, its best value). Every metric is higher-is-better.
METRICS: dict[str, tuple[str, float]] = {
    "bleu": ("BLEU (sacrebleu, 13a, exp smoothing); corpus BLEU in task summaries", 100.0),
    "bleu_sentence_mean": ("mean sentence BLEU over the items", 100.0),
    "rouge_l": ("ROUGE-L F-measure (rouge-score, Porter stemming), best reference", 1.0),
    "exact_match": ("normalised first line equals an accepted answer", 1.0),
    "contains_match": ("an accepted answer appears in the output as whole words", 1.0),
    "facts_coverage": ("share of required facts stated", 1.0),
    "topic_coverage": ("share of topic words used", 1.0),
    "distinct_2": ("unique word bigrams / all bigrams", 1.0),
    "tests_passed": ("the item's tests passed in the sandbox", 1.0),
    "syntax_ok": ("extracted code parses and defines the entry point", 1.0),
}
#: The metrics each task produces per item.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "translation": ("bleu",),
    "summarization": ("rouge_l",),
    "qa": ("exact_match", "contains_match"),
    "support": ("facts_coverage",),
    "generation": ("topic_coverage", "distinct_2"),
    "code": ("tests_passed", "syntax_ok"),
}
#: The metric that stands for a task's quality in scoring: the first one that has a value.
PRIMARY_METRICS: dict[str, tuple[str, ...]] = {
    "translation": ("bleu",),
    "summarization": ("rouge_l",),
    "qa": ("contains_match",),
    "support": ("facts_coverage",),
    "generation": ("topic_coverage",),
    "code": ("tests_passed", "syntax_ok"),
}
NOT_EXECUTED = "not executed (--execute-code off); scored on syntax only"

_EXTRA = "pip install 'llmos[compare]'"
_ARTICLES = frozenset({"a", "an", "the"})
_scorer_lock = threading.Lock()
_scorer: Any = None


# ----------------------------------------------------------------------------- text matching


def normalize_text(text: str) -> str:
    """Lower case, punctuation/symbols to spaces, articles dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).lower()
    chars = [" " if unicodedata.category(c)[0] in "PSZC" else c for c in text]
    return " ".join(w for w in "".join(chars).split() if w not in _ARTICLES)


def _alternatives(entries: Iterable[str]) -> list[list[str]]:
    """Each entry's normalised alternatives (``a|b``), entries that normalise to nothing dropped."""
    result = []
    for entry in entries:
        options = [n for part in entry.split("|") if (n := normalize_text(part))]
        if options:
            result.append(options)
    return result


def _has_phrase(haystack: str, phrase: str) -> bool:
    return f" {phrase} " in f" {haystack} "


def _strip_echo(output: str, echoes: Iterable[str | None]) -> str:
    """The normalised output without verbatim (normalised) copies of the prompt texts."""
    text = normalize_text(output)
    for echo in echoes:
        if echo and (norm := normalize_text(echo)):
            text = " ".join(f" {text} ".replace(f" {norm} ", " ").split())
    return text


def exact_match(output: str, answers: Sequence[str]) -> float:
    """1.0 when the output's first non-empty line, normalised, equals an accepted answer."""
    first = next((line for line in output.splitlines() if line.strip()), "")
    text = normalize_text(first)
    return float(any(text == option for options in _alternatives(answers) for option in options))


def contains_match(output: str, answers: Sequence[str], echoes: Sequence[str] = ()) -> float:
    """1.0 when an accepted answer appears in the output as whole words, else 0.0."""
    text = _strip_echo(output, echoes)
    found = any(_has_phrase(text, o) for options in _alternatives(answers) for o in options)
    return float(found)


def facts_coverage(output: str, facts: Sequence[str], echoes: Sequence[str] = ()) -> float | None:
    """Share of ``facts`` (each with ``|`` alternatives) stated in the output; None if no facts."""
    wanted = _alternatives(facts)
    if not wanted:
        return None
    text = _strip_echo(output, echoes)
    hits = sum(any(_has_phrase(text, option) for option in options) for options in wanted)
    return hits / len(wanted)


def distinct_n(output: str, n: int = 2) -> float:
    """Unique word n-grams / all word n-grams of the normalised output; 0.0 below n words."""
    words = normalize_text(output).split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


# ----------------------------------------------------------------------------- BLEU and ROUGE


def _sacrebleu() -> Any:
    try:
        import sacrebleu
    except ImportError:
        raise ConfigurationError(f"BLEU needs sacrebleu: {_EXTRA}") from None
    return sacrebleu


def sentence_bleu(output: str, references: Sequence[str]) -> float:
    """``sacrebleu.sentence_bleu(output, references).score`` with its default settings, 0–100."""
    return float(_sacrebleu().sentence_bleu(output, list(references)).score)


def corpus_bleu(outputs: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """``sacrebleu.corpus_bleu`` over items that may have different numbers of references.

    sacrebleu takes reference streams (the i-th reference of every item); items with fewer
    references are padded with None, which sacrebleu skips.
    """
    if len(outputs) != len(references):
        raise ValueError("corpus_bleu needs one reference list per output")
    width = max((len(refs) for refs in references), default=0)
    streams = [[refs[i] if i < len(refs) else None for refs in references] for i in range(width)]
    return float(_sacrebleu().corpus_bleu(list(outputs), streams).score)


def _rouge_scorer() -> Any:
    global _scorer
    with _scorer_lock:
        if _scorer is None:
            try:
                from rouge_score import rouge_scorer
            except ImportError:
                raise ConfigurationError(f"ROUGE needs rouge-score: {_EXTRA}") from None
            _scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
        return _scorer


def rouge_l(output: str, references: Sequence[str]) -> float:
    """ROUGE-L F-measure (rouge-score, Porter stemming), the best over ``references``, 0–1."""
    scores = _rouge_scorer().score_multi(list(references), output)
    return float(scores["rougeL"].fmeasure)


# ----------------------------------------------------------------------------- per item


def _code_metrics(
    item: TaskItem, output: str, execute_code: bool, limits: SandboxLimits | None
) -> dict[str, MetricValue]:
    assert item.entry_point is not None and item.tests is not None
    code = extract_code(output)
    ok, why = check_syntax(code, item.entry_point)
    result = {"syntax_ok": MetricValue(value=float(ok), reason=None if ok else why)}
    if not execute_code:
        result["tests_passed"] = MetricValue(value=None, reason=NOT_EXECUTED)
    elif not ok:
        result["tests_passed"] = MetricValue(value=0.0, reason=f"not run: {why}")
    else:
        run = run_tests(code, item.tests, item.entry_point, limits)
        reason = None if run.passed else f"{run.status}: {run.detail}"
        result["tests_passed"] = MetricValue(value=float(run.passed), reason=reason)
    return result


def score_item(
    item: TaskItem,
    output: str,
    *,
    execute_code: bool = False,
    limits: SandboxLimits | None = None,
) -> dict[str, MetricValue]:
    """The quality metrics of one successful answer (see the module docstring for each task).

    Code runs in the sandbox only when ``execute_code`` is True; otherwise ``tests_passed`` is
    None with the reason and ``syntax_ok`` carries the score.
    """
    echoes = (item.prompt, item.system or "")
    if item.task == "translation":
        return {"bleu": MetricValue(value=sentence_bleu(output, item.references))}
    if item.task == "summarization":
        return {"rouge_l": MetricValue(value=rouge_l(output, item.references))}
    if item.task == "qa":
        return {
            "exact_match": MetricValue(value=exact_match(output, item.answers)),
            "contains_match": MetricValue(value=contains_match(output, item.answers, echoes)),
        }
    if item.task == "support":
        value = facts_coverage(output, item.facts, echoes)
        return {"facts_coverage": _maybe(value, "the item lists no facts")}
    if item.task == "generation":
        value = facts_coverage(output, item.facts, echoes)
        return {
            "topic_coverage": _maybe(value, "the item lists no topic words (facts)"),
            "distinct_2": MetricValue(value=distinct_n(output, 2)),
        }
    return _code_metrics(item, output, execute_code, limits)


def _maybe(value: float | None, reason: str) -> MetricValue:
    return MetricValue(value=value, reason=None if value is not None else reason)


# ----------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Stat:
    """p50 and p95 of the values present, and how many there were."""

    n: int
    p50: float | None
    p95: float | None
    mean: float | None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0–100) by linear interpolation between closest ranks."""
    if not 0 <= q <= 100:
        raise ValueError("q must be between 0 and 100")
    data = sorted(values)
    if not data:
        return None
    position = (len(data) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (position - low)


def stat(values: Iterable[float | None]) -> Stat:
    """p50/p95/mean of the non-missing, finite values, with their count."""
    present = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not present:
        return Stat(0, None, None, None)
    return Stat(
        len(present), percentile(present, 50), percentile(present, 95), sum(present) / len(present)
    )
