"""Result rows -> one TargetSummary per (target, task), and one per target over all its tasks.

Rules (the report repeats them):

* Rows are de-duplicated by their key (target, task, item, repeat); the last one wins, so a
  resumed run's JSONL can be read whole.
* Speed statistics (p50/p95, see :func:`llmos.compare.metrics.stat`) use successful rows only;
  ``samples`` says how many values each one had.
* Quality: the mean of each metric over the task's rows, where a failed row (an error, no
  answer) counts as 0 for every metric the task measured. A metric no successful row could
  measure (``tests_passed`` with code execution off) stays None with the rows' reason. With the
  task items at hand, translation's ``bleu`` is corpus BLEU over all rows (a failed row is an
  empty hypothesis) and ``bleu_sentence_mean`` the mean sentence BLEU.
* Cost: the sum of the rows' costs. When a successful row's cost is unknown, the total and the
  per-item cost are None with the reason (never a partial sum); a failed row without a cost
  counts as 0 and a note says so.
* Blended price per 1M tokens: (3 x input + 1 x output) / 4 from the price catalog
  (``llmos.pricing.price(target)``); None with the reason when the target is not priced.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from llmos.compare.metrics import TASK_METRICS, corpus_bleu, stat
from llmos.compare.model import ItemResult, MetricValue, TargetSummary, TaskItem
from llmos.compare.perplexity import NO_LOGPROBS
from llmos.errors import LLMOSError

if TYPE_CHECKING:
    from llmos.pricing import PriceEntry

__all__ = ["ALL_TASKS", "PriceLookup", "blended_price", "catalog_price", "dedupe", "summarize"]

ALL_TASKS = "all"
PriceLookup = Callable[[str], "PriceEntry | None"]

_SPEEDS = (
    ("ttft_s", "ttft_p50_s", "ttft_p95_s"),
    ("total_s", "latency_p50_s", "latency_p95_s"),
    ("tokens_per_s", "tokens_per_s_p50", "tokens_per_s_p95"),
    ("inter_token_s", "inter_token_p50_s", "inter_token_p95_s"),
)


def dedupe(results: Iterable[ItemResult]) -> list[ItemResult]:
    """The rows with one per key (the last one seen), in first-seen order."""
    latest: dict[tuple[str, str, str, int], ItemResult] = {}
    for row in results:
        latest[row.key()] = row
    return list(latest.values())


def catalog_price(target: str) -> PriceEntry | None:
    """The process-wide price catalog's entry for ``target`` (None when unpriced)."""
    from llmos.pricing import price

    return price(target)


def blended_price(target: str, lookup: PriceLookup | None = None) -> MetricValue:
    """USD per 1M tokens at 3 input : 1 output, from the price catalog."""
    try:
        entry = (lookup or catalog_price)(target)
    except LLMOSError as exc:
        return MetricValue(value=None, reason=f"price lookup failed: {exc}")
    if entry is None:
        return MetricValue(
            value=None,
            reason=f"no price for {target} in the catalog; add one with "
            f"llmos.pricing.register({target!r}, input=..., output=...)",
        )
    blended = (3 * entry.input + entry.output) / 4
    reason = "self-hosted: no API fee; compute cost not included" if entry.self_hosted else None
    return MetricValue(value=float(blended), reason=reason)


def _quality(
    task: str, rows: Sequence[ItemResult], items: Mapping[tuple[str, str], TaskItem] | None
) -> tuple[dict[str, MetricValue], dict[str, int], list[str]]:
    ok = [r for r in rows if r.ok]
    failed = len(rows) - len(ok)
    names = list(TASK_METRICS.get(task, ()))
    names += sorted({m for r in ok for m in r.quality} - set(names))
    quality: dict[str, MetricValue] = {}
    samples: dict[str, int] = {}
    notes: list[str] = []
    for name in names:
        values = [v for r in ok if (m := r.quality.get(name)) and (v := m.value) is not None]
        if ok and not values:
            reasons = [m.reason for r in ok if (m := r.quality.get(name)) and m.reason]
            why = reasons[0] if reasons else "not measured"
            quality[name] = MetricValue(value=None, reason=why)
            notes.append(f"{task}: {name} n/a ({why})")
            continue
        values += [0.0] * failed
        quality[name] = MetricValue(value=sum(values) / len(values))
        samples[name] = len(values)
    if failed and ok:
        notes.append(f"{task}: {failed} failed item(s) counted as 0 quality")
    elif failed:
        notes.append(f"{task}: every item failed; quality is 0")
    if task == "translation" and "bleu" in quality and items is not None:
        pairs = [(r.output if r.ok else "", items.get((r.task, r.item_id))) for r in rows]
        known = [(out, item.references) for out, item in pairs if item is not None]
        if known and quality["bleu"].value is not None:
            quality["bleu_sentence_mean"] = quality["bleu"]
            samples["bleu_sentence_mean"] = samples["bleu"]
            score = corpus_bleu([o for o, _ in known], [refs for _, refs in known])
            quality["bleu"] = MetricValue(value=score)
            samples["bleu"] = len(known)
            if len(known) < len(pairs):
                notes.append(f"translation: {len(pairs) - len(known)} row(s) not in the items")
    return quality, samples, notes


def _perplexity(rows: Sequence[ItemResult]) -> tuple[MetricValue | None, str | None, int]:
    scored = [r for r in rows if r.ok and r.perplexity is not None]
    values = [r.perplexity.value for r in scored if r.perplexity and r.perplexity.value is not None]
    if not scored:
        return None, None, 0
    whose = sorted({r.perplexity_of for r in scored if r.perplexity_of})
    of = whose[0] if len(whose) == 1 else (f"mixed ({', '.join(whose)})" if whose else None)
    if not values:
        reasons = [r.perplexity.reason for r in scored if r.perplexity and r.perplexity.reason]
        return MetricValue(value=None, reason=reasons[0] if reasons else NO_LOGPROBS), of, 0
    return MetricValue(value=sum(values) / len(values)), of, len(values)


def _cost(rows: Sequence[ItemResult]) -> tuple[MetricValue, MetricValue, list[str]]:
    unknown = [r for r in rows if r.ok and r.cost_usd is None]
    free_failures = sum(1 for r in rows if not r.ok and r.cost_usd is None)
    notes = [f"{free_failures} failed call(s) without a cost counted as 0"] if free_failures else []
    if unknown:
        why = next((r.cost_reason for r in unknown if r.cost_reason), "price unknown")
        reason = f"cost unknown for {len(unknown)} of {len(rows)} item(s): {why}"
        return MetricValue(value=None, reason=reason), MetricValue(value=None, reason=reason), notes
    total = sum((r.cost_usd for r in rows if r.cost_usd is not None), Decimal(0))
    per_item = total / len(rows) if rows else Decimal(0)
    return MetricValue(value=float(total)), MetricValue(value=float(per_item)), notes


def _summary(
    target: str,
    task: str,
    rows: Sequence[ItemResult],
    quality: dict[str, MetricValue],
    samples: dict[str, int],
    notes: list[str],
    blended: MetricValue,
) -> TargetSummary:
    ok = [r for r in rows if r.ok]
    fields: dict[str, float | None] = {}
    samples = dict(samples)
    for attr, p50, p95 in _SPEEDS:
        s = stat(getattr(r, attr) for r in ok)
        fields[p50], fields[p95] = s.p50, s.p95
        samples[attr] = s.n
    perplexity, perplexity_of, n_ppl = _perplexity(rows)
    if perplexity is not None:
        samples["perplexity"] = n_ppl
    total, per_item, cost_notes = _cost(rows)
    errors = len(rows) - len(ok)
    return TargetSummary(
        target=target,
        task=task,
        items=len(rows),
        errors=errors,
        error_rate=errors / len(rows) if rows else 0.0,
        quality=quality,
        perplexity=perplexity,
        perplexity_of=perplexity_of,
        cost_per_item_usd=per_item,
        cost_total_usd=total,
        blended_price_per_1m=blended,
        notes=[*notes, *cost_notes],
        samples=samples,
        **fields,
    )


def summarize(
    results: Iterable[ItemResult],
    items: Sequence[TaskItem] | None = None,
    *,
    price_lookup: PriceLookup | None = None,
) -> list[TargetSummary]:
    """Per target (first-seen order): one summary per task, then one with ``task="all"``.

    ``items`` (the task items run) enables corpus BLEU; ``price_lookup`` replaces the catalog
    lookup (tests, custom prices).
    """
    rows = dedupe(results)
    by_item: dict[tuple[str, str], TaskItem] | None = None
    if items is not None:
        by_item = {(i.task, i.id): i for i in items}
    targets = list(dict.fromkeys(r.target for r in rows))
    summaries: list[TargetSummary] = []
    for target in targets:
        mine = [r for r in rows if r.target == target]
        blended = blended_price(target, price_lookup)
        merged: dict[str, MetricValue] = {}
        merged_samples: dict[str, int] = {}
        all_notes: list[str] = []
        for task in dict.fromkeys(r.task for r in mine):
            task_rows = [r for r in mine if r.task == task]
            quality, samples, notes = _quality(task, task_rows, by_item)
            summaries.append(_summary(target, task, task_rows, quality, samples, notes, blended))
            merged.update(quality)
            merged_samples.update(samples)
            all_notes.extend(notes)
        summaries.append(
            _summary(target, ALL_TASKS, mine, merged, merged_samples, all_notes, blended)
        )
    return summaries
