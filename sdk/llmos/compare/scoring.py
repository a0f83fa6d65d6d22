"""Scores 0–100 per dimension across the compared targets, and the weighted overall score.

Dimensions (raw value per target, then min-max normalised across targets):

* **performance** = 0.75 x quality index + 0.25 x speed ratio, where
  - quality index: the mean over tasks of each task's primary metric
    (:data:`~llmos.compare.metrics.PRIMARY_METRICS`) divided by its best value (BLEU / 100),
    so 0–1. Failed items count as 0 (see aggregate). Only tasks every target has a value for
    are used, with one metric per task for all targets (code: ``tests_passed`` when the code
    ran, else ``syntax_ok``); tasks left out are listed in ``missing``.
  - speed ratio: the fastest target's median end-to-end latency divided by this target's
    (1 for the fastest). A target with no timed answer gets 0; when no target has one, the
    speed part is left out (performance = quality index) and flagged.
* **price** (lower is better): mean actual cost per item, when every target has it; else the
  blended price per 1M tokens (3 input : 1 output) when every target has that; else cost per
  item where known, and the others are missing. The basis used is reported.
* **usability**: the rubric's points (:mod:`llmos.compare.usability`).

Normalisation: ``100 x (x - worst) / (best - worst)``. When every present value is equal, or
only one target has a value, each present value scores 100. A missing raw value stays missing.

Overall: the weighted mean of the dimensions a target has, ``sum(w x s) / sum(w)`` over those
with a value and weight > 0. A missing dimension re-weights the others and is listed in
``Scoreboard.missing``. Weights come from ``performance=0.4,price=0.3,usability=0.3`` (the
default); dimensions a given spec leaves out weigh 0; they are normalised to sum to 1.

Ranks: by overall score, highest first, scores equal to 6 decimals share a rank and the next
rank skips ("1, 1, 3"); a target without an overall score has no rank.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from llmos.compare.aggregate import ALL_TASKS
from llmos.compare.metrics import METRICS, PRIMARY_METRICS
from llmos.compare.model import MetricValue, Scoreboard, TargetScore, TargetSummary
from llmos.compare.usability import RUBRIC, UsabilityScore
from llmos.errors import InvalidRequestError

__all__ = [
    "DEFAULT_WEIGHTS",
    "DIMENSIONS",
    "SCORING_RULES",
    "SPEED_SHARE",
    "normalise",
    "parse_weights",
    "rank",
    "scoreboard",
]

DIMENSIONS: tuple[str, ...] = ("performance", "price", "usability")
DEFAULT_WEIGHTS: dict[str, float] = {"performance": 0.4, "price": 0.3, "usability": 0.3}
SPEED_SHARE = 0.25
_TIE_DIGITS = 6

#: The scoring rules as data, printed with every result next to the weights and the rubric.
SCORING_RULES: dict[str, Any] = {
    "normalisation": "min-max across targets to 0-100; all equal (or one target) -> 100; "
    "missing stays missing",
    "performance": f"{1 - SPEED_SHARE:g} x quality index (mean over common tasks of the primary "
    f"metric / its best value; failed items count 0) + {SPEED_SHARE:g} x speed ratio (fastest "
    "median latency / this target's)",
    "primary_metrics": {task: list(names) for task, names in PRIMARY_METRICS.items()},
    "price": "lower is better: cost per item if every target has it, else blended price per 1M "
    "tokens (3 input : 1 output) if every target has it, else cost per item where known",
    "usability": "rubric points (see rubric)",
    "overall": "sum(weight x score) / sum(weight) over the dimensions present; a missing "
    "dimension re-weights the rest and is listed under missing",
    "ranks": "highest overall first; equal to 6 decimals share a rank (1, 1, 3)",
}


def _weights_error(message: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"weights: {message}; write them like 'performance=0.4,price=0.3,usability=0.3' "
        f"(dimensions: {', '.join(DIMENSIONS)})",
        field="weights",
    )


def parse_weights(spec: str | Mapping[str, float] | None = None) -> dict[str, float]:
    """Weights per dimension, normalised to sum to 1; None, "" or {} gives the defaults.

    Unknown names, repeated names, non-numbers, negative or non-finite values and all-zero
    weights raise InvalidRequestError(field="weights").
    """
    if spec is None or not spec or (isinstance(spec, str) and not spec.strip()):
        return dict(DEFAULT_WEIGHTS)
    raw: dict[str, Any] = {}
    if isinstance(spec, str):
        for part in spec.split(","):
            name, sep, value = part.partition("=")
            name = name.strip()
            if not sep or not name:
                raise _weights_error(f"{part.strip()!r} is not name=value")
            if name in raw:
                raise _weights_error(f"{name!r} is given twice")
            raw[name] = value.strip()
    else:
        raw = dict(spec)
    weights: dict[str, float] = dict.fromkeys(DIMENSIONS, 0.0)
    for name, value in raw.items():
        if name not in DIMENSIONS:
            raise _weights_error(f"unknown dimension {name!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise _weights_error(f"{name}={value!r} is not a number") from None
        if not math.isfinite(number) or number < 0:
            raise _weights_error(f"{name}={value} must be a finite number >= 0")
        weights[name] = number
    total = sum(weights.values())
    if total <= 0:
        raise _weights_error("at least one weight must be above 0")
    return {name: w / total for name, w in weights.items()}


def normalise(
    values: Mapping[str, float | None], *, higher_is_better: bool = True
) -> dict[str, float | None]:
    """Min-max to 0–100 across the present values; equal (or single) values all score 100."""
    present = [v for v in values.values() if v is not None]
    if not present:
        return dict.fromkeys(values)
    low, high = min(present), max(present)
    result: dict[str, float | None] = {}
    for key, value in values.items():
        if value is None:
            result[key] = None
        elif math.isclose(high, low, rel_tol=1e-12, abs_tol=1e-15):
            result[key] = 100.0
        else:
            share = (value - low) / (high - low)
            result[key] = 100.0 * (share if higher_is_better else 1.0 - share)
    return result


def rank(values: Mapping[str, float | None]) -> dict[str, int | None]:
    """Competition ranks, highest first; ties (to 6 decimals) share a rank; None has none."""
    rounded = {k: round(v, _TIE_DIGITS) for k, v in values.items() if v is not None}
    ordered = sorted(rounded.values(), reverse=True)
    return {k: (ordered.index(rounded[k]) + 1 if k in rounded else None) for k in values}


# ----------------------------------------------------------------------------- raw dimensions


def _task_metric(task: str, summaries: Sequence[TargetSummary]) -> str | None:
    """The task's primary metric that every target has a value for, if any."""
    for name in PRIMARY_METRICS.get(task, ()):
        if all((m := s.quality.get(name)) and m.value is not None for s in summaries):
            return name
    return None


def _performance(
    targets: Sequence[str],
    by_task: dict[str, dict[str, TargetSummary]],
    overall: dict[str, TargetSummary],
    missing: list[str],
) -> tuple[dict[str, float | None], dict[str, dict[str, Any]]]:
    details: dict[str, dict[str, Any]] = {t: {"tasks": {}} for t in targets}
    used: list[tuple[str, str]] = []
    for task, rows in by_task.items():
        absent = [t for t in targets if t not in rows]
        metric = None if absent else _task_metric(task, [rows[t] for t in targets])
        if metric is None:
            why = f"not run for {', '.join(absent)}" if absent else "no metric with a value for all"
            missing.append(f"performance: task {task!r} left out of the quality index ({why})")
            continue
        used.append((task, metric))
    quality: dict[str, float | None] = {}
    for t in targets:
        values = []
        for task, metric in used:
            value = by_task[task][t].quality[metric].value
            assert value is not None
            share = value / METRICS.get(metric, ("", 1.0))[1]
            details[t]["tasks"][task] = {"metric": metric, "value": value}
            values.append(share)
        quality[t] = sum(values) / len(values) if values else None
    latency = {t: overall[t].latency_p50_s if t in overall else None for t in targets}
    timed = [v for v in latency.values() if v is not None and v > 0]
    raw: dict[str, float | None] = {}
    for t in targets:
        q = quality[t]
        lat = latency[t]
        if not timed:
            speed = None
        elif lat is None:
            speed = 0.0
            missing.append(f"{t}: no measured latency; speed ratio counted as 0")
        else:
            speed = min(timed) / lat if lat > 0 else 1.0
        details[t].update(quality_index=q, latency_p50_s=lat, speed_ratio=speed)
        if q is None:
            raw[t] = None
            missing.append(f"{t}: performance missing (no task with a quality value for all)")
        elif speed is None:
            raw[t] = q
        else:
            raw[t] = (1 - SPEED_SHARE) * q + SPEED_SHARE * speed
        details[t]["raw"] = raw[t]
    if not timed:
        missing.append("performance: no target has a measured latency; speed left out")
    return raw, details


def _price(
    targets: Sequence[str], overall: dict[str, TargetSummary], missing: list[str]
) -> tuple[dict[str, float | None], dict[str, dict[str, Any]], str]:
    def value(t: str, attr: str) -> MetricValue | None:
        s = overall.get(t)
        return getattr(s, attr) if s is not None else None

    bases = ("cost_per_item_usd", "blended_price_per_1m")
    chosen = next(
        (b for b in bases if all((m := value(t, b)) and m.value is not None for t in targets)),
        bases[0],
    )
    raw: dict[str, float | None] = {}
    details: dict[str, dict[str, Any]] = {}
    for t in targets:
        m = value(t, chosen)
        raw[t] = m.value if m is not None else None
        details[t] = {"basis": chosen, "raw": raw[t]}
        if raw[t] is None:
            reason = (m.reason if m is not None else None) or "no summary for this target"
            details[t]["reason"] = reason
            missing.append(f"{t}: price missing ({reason})")
    return raw, details, chosen


def scoreboard(
    summaries: Sequence[TargetSummary],
    *,
    usability: Mapping[str, UsabilityScore] | None = None,
    weights: str | Mapping[str, float] | None = None,
) -> Scoreboard:
    """Score every target in ``summaries`` (from :func:`llmos.compare.aggregate.summarize`).

    ``usability`` maps target -> its rubric score (a target without one has usability
    missing); ``weights`` is a spec for :func:`parse_weights`.
    """
    w = parse_weights(weights)
    usability = usability or {}
    targets = list(dict.fromkeys(s.target for s in summaries))
    overall = {s.target: s for s in summaries if s.task == ALL_TASKS}
    by_task: dict[str, dict[str, TargetSummary]] = {}
    for s in summaries:
        if s.task != ALL_TASKS:
            by_task.setdefault(s.task, {})[s.target] = s
    missing: list[str] = []
    perf_raw, perf_details = _performance(targets, by_task, overall, missing)
    price_raw, price_details, basis = _price(targets, overall, missing)
    use_raw: dict[str, float | None] = {}
    for t in targets:
        score = usability.get(t)
        use_raw[t] = score.points if score is not None else None
        if score is None:
            missing.append(f"{t}: usability missing (not assessed)")
    normalised = {
        "performance": normalise(perf_raw),
        "price": normalise(price_raw, higher_is_better=False),
        "usability": normalise(use_raw),
    }
    overall_values: dict[str, float | None] = {}
    dims: dict[str, dict[str, MetricValue]] = {}
    for t in targets:
        dims[t] = {}
        for d in DIMENSIONS:
            v = normalised[d][t]
            dims[t][d] = MetricValue(value=v, reason=None if v is not None else f"{d} missing")
        present = [(w[d], dims[t][d].value) for d in DIMENSIONS if w[d] > 0]
        weighted = [(wd, v) for wd, v in present if v is not None]
        total_w = sum(wd for wd, _ in weighted)
        overall_values[t] = sum(wd * v for wd, v in weighted) / total_w if total_w else None
        lacking = [d for d in DIMENSIONS if w[d] > 0 and dims[t][d].value is None]
        if lacking and overall_values[t] is not None:
            kept = [d for d in DIMENSIONS if w[d] > 0 and d not in lacking]
            missing.append(
                f"{t}: overall re-weighted over {', '.join(kept)} ({', '.join(lacking)} missing)"
            )
    ranks = rank(overall_values)
    scores = [
        TargetScore(
            target=t,
            dimensions=dims[t],
            overall=MetricValue(
                value=overall_values[t],
                reason=None if overall_values[t] is not None else "no weighted dimension present",
            ),
            rank=ranks[t],
            details={
                "performance": perf_details[t],
                "price": price_details[t],
                "usability": usability[t].model_dump() if t in usability else None,
            },
        )
        for t in targets
    ]
    scores.sort(key=lambda s: (s.rank is None, s.rank or 0, targets.index(s.target)))
    return Scoreboard(
        weights=w,
        rubric={"usability": RUBRIC, "scoring": SCORING_RULES, "price_basis": basis},
        scores=scores,
        summaries=list(summaries),
        missing=list(dict.fromkeys(missing)),
    )
