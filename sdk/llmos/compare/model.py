"""The data of a comparison: task items in, one result row per item and target out, summaries.

These models are the contract between the task loader, the runner, the metrics, the scoring and
the reports. Result rows are what the runner appends to its JSONL file, one line per item, target
and repeat, so an interrupted run resumes from them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ItemResult",
    "MetricValue",
    "Scoreboard",
    "TargetScore",
    "TargetSummary",
    "TaskItem",
    "TaskKind",
]

TaskKind = Literal["generation", "translation", "qa", "summarization", "support", "code"]
"""The jobs a comparison covers."""


class TaskItem(BaseModel):
    """One prompt of a task set, with what its answer is judged against.

    Which fields matter depends on ``task``: translation and summarization have ``references``;
    qa has ``answers`` (accepted answers); support has ``facts`` (facts the reply must contain);
    code has ``tests`` (Python that asserts on the function named ``entry_point``).
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    task: TaskKind
    prompt: str = Field(min_length=1)
    system: str | None = None
    references: list[str] = Field(default_factory=list)
    answers: list[str] = Field(default_factory=list)
    facts: list[str] = Field(default_factory=list)
    tests: str | None = None
    entry_point: str | None = None
    max_tokens: int = Field(default=128, ge=1, le=4096)
    tags: list[str] = Field(default_factory=list)


class MetricValue(BaseModel):
    """A measured value, or None with the reason it could not be measured."""

    value: float | None
    reason: str | None = None


class ItemResult(BaseModel):
    """What one target did with one item (one line of the results JSONL)."""

    model_config = ConfigDict(extra="ignore")

    run_key: str
    target: str
    task: TaskKind
    item_id: str
    repeat: int = 0
    ok: bool
    error_type: str | None = None
    error_message: str | None = None
    output: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    usage_source: str | None = None
    ttft_s: float | None = None
    total_s: float | None = None
    tokens_per_s: float | None = None
    inter_token_s: float | None = None
    cost_usd: Decimal | None = None
    cost_reason: str | None = None
    quality: dict[str, MetricValue] = Field(default_factory=dict)
    perplexity: MetricValue | None = None
    perplexity_of: Literal["output", "reference"] | None = None
    code_executed: bool | None = None
    finished_at: float = 0.0

    def key(self) -> tuple[str, str, str, int]:
        """The identity of a row: the same key is never run twice in one run."""
        return (self.target, self.task, self.item_id, self.repeat)


class TargetSummary(BaseModel):
    """Everything measured for one target over one task (or ``task="all"``)."""

    target: str
    task: str
    items: int
    errors: int
    error_rate: float
    ttft_p50_s: float | None = None
    ttft_p95_s: float | None = None
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    tokens_per_s_p50: float | None = None
    tokens_per_s_p95: float | None = None
    inter_token_p50_s: float | None = None
    inter_token_p95_s: float | None = None
    quality: dict[str, MetricValue] = Field(default_factory=dict)
    perplexity: MetricValue | None = None
    perplexity_of: str | None = None
    cost_per_item_usd: MetricValue | None = None
    cost_total_usd: MetricValue | None = None
    blended_price_per_1m: MetricValue | None = None
    notes: list[str] = Field(default_factory=list)
    #: How many values each statistic was computed from ("ttft_s": 12, "bleu": 15, ...).
    samples: dict[str, int] = Field(default_factory=dict)


class TargetScore(BaseModel):
    """One target's 0–100 scores per dimension, the weighted total, and how they were reached."""

    target: str
    dimensions: dict[str, MetricValue]
    overall: MetricValue
    rank: int | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class Scoreboard(BaseModel):
    """The scored comparison: weights, rubric, per-target scores and summaries."""

    weights: dict[str, float]
    rubric: dict[str, Any]
    scores: list[TargetScore]
    summaries: list[TargetSummary]
    missing: list[str] = Field(default_factory=list)
