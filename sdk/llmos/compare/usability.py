"""Usability from data, not opinion: a published rubric over what a target declares, what its
setup needs, and how its calls behaved in the run.

The rubric (:data:`RUBRIC`, 100 points; printed with every result):

=====================  =====  =============================================================
declared capabilities         from ``provider.capabilities(model)``
  streaming               10  streams tokens
  tools                   10  function/tool calling
  json_schema              8  JSON-schema output (4 for JSON-object mode only)
  embeddings               4  an embeddings endpoint
  logprobs                 4  token log-probabilities
  context_window           8  >=128k tokens 8, >=32k 6, >=8k 4, >=4k 2, smaller/unknown 0
                              (the declared window, else the price catalog's)
setup                         what you need before the first call
  no_key                   6  works without an API key (``needs_key`` false)
  offline                  6  runs without network access (``runs_offline``)
  no_local_install         8  nothing to install or host yourself: not an in-process or
                              self-hosted target (``runs_offline`` or a ``self_hosted`` price)
measured                      from this run's result rows
  success_rate            24  24 x share of calls that succeeded
  typed_errors            12  12 x mean credit over failed calls: 1 for a typed llmos error whose
                              message says what to do, 0.5 for a typed error without a fix, 0
                              for anything else; all 12 when no call failed
=====================  =====  =============================================================

"Says what to do" means the message contains one of :data:`FIX_WORDS` as a word (``set``,
``use``, ``pip install``...) or a ``name=value`` hint. "Typed" means ``error_type`` names a
class of the llmos error tree.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from llmos.compare.model import ItemResult
from llmos.errors import LLMOSError

if TYPE_CHECKING:
    from llmos.client import Client
    from llmos.compare.aggregate import PriceLookup
    from llmos.providers.base import Capabilities

__all__ = [
    "FIX_WORDS",
    "RUBRIC",
    "UsabilityScore",
    "assess_usability",
    "capabilities_for",
    "error_credit",
]

CONTEXT_BUCKETS: tuple[tuple[int, int], ...] = ((131072, 8), (32768, 6), (8192, 4), (4096, 2))
FIX_WORDS: tuple[str, ...] = (
    "set", "use", "pass", "add", "check", "install", "pip install", "retry", "try", "wait",
    "lower", "raise", "shorten", "reduce", "increase", "choose", "give", "register", "enable",
    "upgrade", "remove", "see",
)  # fmt: skip
_FIX = re.compile(
    r"\b(" + "|".join(re.escape(w) for w in FIX_WORDS) + r")\b|\b\w+=\S", re.IGNORECASE
)

#: The rubric as data: every criterion, its points and its rule.
RUBRIC: dict[str, Any] = {
    "name": "llmos usability rubric",
    "version": 1,
    "max_points": 100,
    "criteria": [
        {"name": "streaming", "group": "capabilities", "points": 10, "rule": "declares streaming"},
        {"name": "tools", "group": "capabilities", "points": 10, "rule": "declares tool calling"},
        {
            "name": "json_schema",
            "group": "capabilities",
            "points": 8,
            "rule": "8 for JSON-schema output, 4 for JSON-object mode only",
        },
        {"name": "embeddings", "group": "capabilities", "points": 4, "rule": "has embeddings"},
        {"name": "logprobs", "group": "capabilities", "points": 4, "rule": "returns logprobs"},
        {
            "name": "context_window",
            "group": "capabilities",
            "points": 8,
            "rule": "declared (else catalog) window: >=128k 8, >=32k 6, >=8k 4, >=4k 2, else 0",
            "buckets": [list(b) for b in CONTEXT_BUCKETS],
        },
        {"name": "no_key", "group": "setup", "points": 6, "rule": "needs no API key"},
        {"name": "offline", "group": "setup", "points": 6, "rule": "runs without network"},
        {
            "name": "no_local_install",
            "group": "setup",
            "points": 8,
            "rule": "nothing to install or host: not runs_offline, not a self_hosted price entry",
        },
        {
            "name": "success_rate",
            "group": "measured",
            "points": 24,
            "rule": "points x share of calls that succeeded",
        },
        {
            "name": "typed_errors",
            "group": "measured",
            "points": 12,
            "rule": "points x mean credit of failed calls: 1 typed llmos error with a fix in its "
            "message, 0.5 typed without one, 0 untyped; full points when none failed",
            "fix_words": list(FIX_WORDS),
        },
    ],
}
_POINTS: dict[str, int] = {c["name"]: c["points"] for c in RUBRIC["criteria"]}


class UsabilityScore(BaseModel):
    """One target's rubric points, per criterion, with the data each came from."""

    target: str
    points: float
    max_points: int = 100
    criteria: dict[str, float]
    evidence: dict[str, Any] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


@functools.lru_cache(maxsize=1)
def _error_names() -> frozenset[str]:
    import llmos.routing  # noqa: F401 - defines CircuitOpenError, part of the tree

    names: set[str] = set()
    stack: list[type[BaseException]] = [LLMOSError]
    while stack:
        cls = stack.pop()
        names.add(cls.__name__)
        stack.extend(cls.__subclasses__())
    return frozenset(names)


def error_credit(error_type: str | None, message: str | None) -> float:
    """1.0 typed llmos error with an actionable message, 0.5 typed only, 0.0 otherwise."""
    if not error_type or error_type not in _error_names():
        return 0.0
    return 1.0 if message and _FIX.search(message) else 0.5


def _window_points(window: int | None) -> int:
    for threshold, points in CONTEXT_BUCKETS:
        if window is not None and window >= threshold:
            return points
    return 0


def capabilities_for(client: Client, target: str) -> Capabilities:
    """What ``target`` ("provider:model") declares, from the client's provider instance."""
    from llmos.routing import parse_target

    parsed = parse_target(target)
    return client.provider(parsed.provider).capabilities(parsed.model)


def assess_usability(
    target: str,
    capabilities: Capabilities,
    results: Sequence[ItemResult],
    *,
    price_lookup: PriceLookup | None = None,
) -> UsabilityScore:
    """Score ``target`` on the rubric from its capabilities, setup and result rows."""
    from llmos.compare.aggregate import catalog_price

    try:
        entry = (price_lookup or catalog_price)(target)
    except LLMOSError:
        entry = None
    caps = capabilities
    window = caps.context_window or (entry.context_window if entry is not None else None)
    self_hosted = bool(entry is not None and entry.self_hosted)
    rows = [r for r in results if r.target == target]
    failed = [r for r in rows if not r.ok]
    credits = [error_credit(r.error_type, r.error_message) for r in failed]
    notes: list[str] = []
    if rows:
        success = (len(rows) - len(failed)) / len(rows)
    else:
        success = 0.0
        notes.append("no result rows: measured criteria score 0")
    if rows and not failed:
        notes.append("no call failed: typed_errors gets full points")
    error_share = sum(credits) / len(credits) if credits else (1.0 if rows else 0.0)
    json_points = 8 if caps.json_schema else (4 if caps.json_object else 0)
    criteria = {
        "streaming": _POINTS["streaming"] * caps.streaming,
        "tools": _POINTS["tools"] * caps.tools,
        "json_schema": json_points,
        "embeddings": _POINTS["embeddings"] * caps.embeddings,
        "logprobs": _POINTS["logprobs"] * caps.logprobs,
        "context_window": _window_points(window),
        "no_key": _POINTS["no_key"] * (not caps.needs_key),
        "offline": _POINTS["offline"] * caps.runs_offline,
        "no_local_install": _POINTS["no_local_install"] * (not (caps.runs_offline or self_hosted)),
        "success_rate": _POINTS["success_rate"] * success,
        "typed_errors": _POINTS["typed_errors"] * error_share,
    }
    points = {k: float(v) for k, v in criteria.items()}
    evidence = {
        "capabilities": {
            k: getattr(caps, k)
            for k in ("streaming", "tools", "json_schema", "json_object", "embeddings", "logprobs")
        },
        "context_window": window,
        "needs_key": caps.needs_key,
        "runs_offline": caps.runs_offline,
        "self_hosted_price": self_hosted,
        "calls": len(rows),
        "failed_calls": len(failed),
        "success_rate": success if rows else None,
        "error_types": sorted({r.error_type or "untyped" for r in failed}),
        "error_credit_mean": sum(credits) / len(credits) if credits else None,
    }
    return UsabilityScore(
        target=target,
        points=round(sum(points.values()), 6),
        criteria=points,
        evidence=evidence,
        notes=notes,
    )
