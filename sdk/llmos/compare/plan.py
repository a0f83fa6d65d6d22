"""What a comparison run is: its settings, its jobs and their keys, the results file that records
them, and what the run could cost.

The ``run_key`` covers what decides the content of a row: every item (prompt, system message,
references, tests), the seed, the temperature, the max_tokens cap, code execution and the
perplexity mode. Targets and the number of repeats are not part of it: a row's own key holds its
target and repeat, so rerunning with one more target, or more repeats, reuses every row already
measured.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from llmos.compare.model import ItemResult, TaskItem
from llmos.errors import InvalidRequestError, LLMOSError

if TYPE_CHECKING:
    from llmos.client import Client

__all__ = [
    "ROW_FORMAT",
    "Job",
    "ResultsFile",
    "RowKey",
    "RunEstimate",
    "RunSettings",
    "TargetEstimate",
    "check_targets",
    "messages_for",
    "plus",
    "run_key",
    "seed_for",
]

#: Bump when the way a row is produced changes, so old rows are not mixed with new ones.
ROW_FORMAT = 1
#: (target, task, item id, repeat): the identity of a row.
RowKey = tuple[str, str, str, int]

# --------------------------------------------------------------------------- settings and keys


@dataclass(frozen=True)
class RunSettings:
    """How a comparison runs: repeats, sampling, concurrency and the per-item timeout."""

    repeats: int = 1
    seed: int = 0
    #: Sent with every call; None sends no temperature (for models that refuse one).
    temperature: float | None = 0.0
    concurrency: int = 4
    timeout_s: float = 120.0
    #: Caps each item's own ``max_tokens`` (None keeps the item's).
    max_tokens: int | None = None
    #: Run the code task's answers against their tests in the sandbox (else: syntax only).
    execute_code: bool = False
    #: Which text perplexity is computed on: each target's own "output" (from the logprobs
    #: it returns, or scored by a local model), the item's "reference" (local models only), or
    #: "off".
    perplexity: Literal["output", "reference", "off"] = "output"
    #: Run again the rows that failed last time (the new row replaces the old one).
    retry_errors: bool = False
    #: Before measuring, send each target one unrecorded 1-token call, so that loading a local
    #: model, importing an SDK or opening a connection is not counted as an item's latency.
    warmup: bool = True

    def __post_init__(self) -> None:
        checks = (
            ("repeats", self.repeats >= 1, "1 or more"),
            ("concurrency", self.concurrency >= 1, "1 or more"),
            ("timeout_s", self.timeout_s > 0, "a positive number of seconds"),
            ("max_tokens", self.max_tokens is None or self.max_tokens >= 1, "1 or more"),
            (
                "perplexity",
                self.perplexity in ("output", "reference", "off"),
                "'output', 'reference' or 'off'",
            ),
            (
                "temperature",
                self.temperature is None or 0 <= self.temperature <= 2,
                "between 0 and 2",
            ),
        )
        for name, ok, what in checks:
            if not ok:
                raise InvalidRequestError(
                    f"{name} must be {what}, got {getattr(self, name)!r}", field=name
                )

    def max_tokens_for(self, item: TaskItem) -> int:
        """The output allowance of one item under this run."""
        if self.max_tokens is None:
            return item.max_tokens
        return min(item.max_tokens, self.max_tokens)


def run_key(items: Sequence[TaskItem], settings: RunSettings) -> str:
    """A short hash of everything that decides what a row means (see the module docstring)."""
    doc = {
        "format": ROW_FORMAT,
        "items": [item.model_dump(mode="json") for item in items],
        "seed": settings.seed,
        "temperature": settings.temperature,
        "max_tokens": settings.max_tokens,
        "execute_code": settings.execute_code,
        "perplexity": settings.perplexity,
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def seed_for(base: int, item_id: str, repeat: int) -> int:
    """The seed of one (item, repeat): fixed, the same on every target, different per repeat."""
    digest = hashlib.sha256(f"{base}:{item_id}:{repeat}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def messages_for(item: TaskItem) -> list[dict[str, str]]:
    """The chat messages an item is sent as (the task loader's conversation for it)."""
    from llmos.compare.tasks import item_messages

    return item_messages(item)


@dataclass(frozen=True)
class Job:
    """One call to make: an item on a target, for one repeat."""

    target: str
    item: TaskItem
    repeat: int

    def key(self) -> tuple[str, str, str, int]:
        """The key of the row this job produces (see ItemResult.key)."""
        return (self.target, self.item.task, self.item.id, self.repeat)


# --------------------------------------------------------------------------- targets


def check_targets(client: Client, targets: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Split targets into usable ones and skipped ones, each skipped one with a one-line reason.

    A target is skipped when its provider is unknown, cannot be set up (a missing extra), or
    needs a key that is not configured.
    """
    from llmos.routing import parse_target

    usable: list[str] = []
    skipped: dict[str, str] = {}
    for raw in targets:
        target = str(parse_target(raw, field="--models"))
        if target in usable or target in skipped:
            continue
        try:
            provider = client.provider(target.split(":", 1)[0])
        except LLMOSError as exc:
            skipped[target] = exc.message
            continue
        if not provider.is_configured():
            env = getattr(provider, "env_api_key", None)
            fix = f"set {env}" if env else "configure its api_key"
            skipped[target] = f"no API key ({fix})"
            continue
        usable.append(target)
    return usable, skipped


# --------------------------------------------------------------------------- results file


class ResultsFile:
    """The JSONL file of result rows: read on start, appended one flushed line per row."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def load(self, key: str, *, repair: bool = False) -> tuple[dict[RowKey, ItemResult], list[str]]:
        """Rows of run ``key`` (the last one wins per row key) and notes on what was skipped.

        A torn last line (a crash mid-write) is ignored; with ``repair`` it is also cut off the
        file, so the next append starts on a line of its own. Other unreadable lines are left in
        place and skipped.
        """
        rows: dict[RowKey, ItemResult] = {}
        notes: list[str] = []
        if not self.path.exists():
            return rows, notes
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        torn = lines.pop() if lines else b""  # after the last newline: "" unless torn
        if torn.strip():
            if repair:
                with open(self.path, "r+b") as f:
                    f.truncate(len(data) - len(torn))
            notes.append(
                f"{self.path}: ignored a torn last line ({len(torn)} bytes, from an interrupted "
                "write); that row will be run again"
            )
        bad = 0
        for raw in lines:
            if not raw.strip():
                continue
            try:
                row = ItemResult.model_validate_json(raw)
            except ValueError:
                bad += 1
                continue
            if row.run_key == key:
                rows[row.key()] = row
        if bad:
            notes.append(f"{self.path}: skipped {bad} line(s) that are not result rows")
        return rows, notes

    def append(self, row: ItemResult) -> None:
        """Write one row as one line and flush it, so a crash loses at most this line."""
        line = row.model_dump_json() + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()


# --------------------------------------------------------------------------- estimates


@dataclass
class TargetEstimate:
    """What one target's share of a run could cost: all of it, and what is left to run."""

    target: str
    calls: int = 0
    pending_calls: int = 0
    worst_case_usd: Decimal | None = Decimal(0)
    expected_usd: Decimal | None = Decimal(0)
    pending_worst_case_usd: Decimal | None = Decimal(0)
    pending_expected_usd: Decimal | None = Decimal(0)
    reason: str | None = None
    needs_key: bool = False


@dataclass
class RunEstimate:
    """The estimated cost of a run, per target and in total (None when a price is unknown)."""

    targets: list[TargetEstimate]

    def _sum(self, name: str) -> Decimal | None:
        total = Decimal(0)
        for t in self.targets:
            value = getattr(t, name)
            if value is None:
                return None
            total += value
        return total

    @property
    def worst_case_usd(self) -> Decimal | None:
        """Worst case of the whole run; None when any target's price is unknown."""
        return self._sum("worst_case_usd")

    @property
    def expected_usd(self) -> Decimal | None:
        """Expected cost of the whole run; None when any target's price is unknown."""
        return self._sum("expected_usd")

    @property
    def pending_worst_case_usd(self) -> Decimal | None:
        """Worst case of what is left to run."""
        return self._sum("pending_worst_case_usd")

    def needs_confirmation(self, threshold_usd: Decimal) -> list[str]:
        """Why the pending part of the run should be confirmed first (empty when it need not).

        Known worst cases are summed against the threshold; a target that needs a key (a paid
        service) whose price is unknown is always a reason to ask. Keyless servers (your own
        vLLM, llama.cpp, Ollama) with no price are only noted, never a reason to stop.
        """
        reasons: list[str] = []
        known = sum(
            (t.pending_worst_case_usd for t in self.targets if t.pending_worst_case_usd),
            Decimal(0),
        )
        if known > threshold_usd:
            reasons.append(f"the run could cost up to ${_money(known)}, over ${threshold_usd}")
        for t in self.targets:
            if t.pending_calls and t.pending_worst_case_usd is None and t.needs_key:
                reasons.append(f"{t.target}: price unknown ({t.reason})")
        return reasons


def plus(a: Decimal | None, b: Decimal | None, times: int = 1) -> Decimal | None:
    """``a + b * times``, or None when either is unknown."""
    return None if a is None or b is None else a + b * times


def _money(value: Decimal) -> str:
    return format(value.quantize(Decimal("1e-6")).normalize(), "f")
