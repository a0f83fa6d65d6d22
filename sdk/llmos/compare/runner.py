"""Run task items on targets: a closed loop of N workers over one client, results kept as JSONL.

Each job is one (target, item, repeat). Workers take the next job whose target has room (an
in-process local model takes one job at a time, so its latency is not inflated by waiting on
its own lock), stream the answer through the same ``Client`` any user has, score it, and append
one :class:`ItemResult` line to the results file, flushed at once. On start the file is read and
rows already present for this run are not run again, so an interrupted run resumes without
losing or repeating rows.

What identifies a run and its rows, the results file and the cost estimate live in
:mod:`llmos.compare.plan` (re-exported here).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from llmos._log import get_logger
from llmos.compare.model import ItemResult, MetricValue, Scoreboard, TaskItem
from llmos.compare.plan import (
    Job,
    ResultsFile,
    RowKey,
    RunEstimate,
    RunSettings,
    TargetEstimate,
    check_targets,
    messages_for,
    plus,
    run_key,
    seed_for,
)
from llmos.errors import InvalidRequestError, LLMOSError

if TYPE_CHECKING:
    from llmos.client import Client

__all__ = [
    "ItemScores",
    "Job",
    "ResultsFile",
    "RunEstimate",
    "RunInterrupted",
    "RunOutcome",
    "RunSettings",
    "Runner",
    "Scorer",
    "TargetEstimate",
    "check_targets",
    "default_scorer",
    "messages_for",
    "run_key",
    "seed_for",
]

_log = get_logger("compare.runner")


# --------------------------------------------------------------------------- scoring hook


@dataclass
class ItemScores:
    """What the quality metrics made of one output, and whether its code was run."""

    quality: dict[str, MetricValue] = field(default_factory=dict)
    code_executed: bool | None = None


#: Scores one output: (item, output text, target) -> ItemScores.
Scorer = Callable[[TaskItem, str, str], ItemScores]


def default_scorer(settings: RunSettings) -> Scorer:
    """The task metrics of :mod:`llmos.compare.metrics`; code runs only with execute_code."""
    from llmos.compare import metrics

    def score(item: TaskItem, output: str, target: str) -> ItemScores:
        quality = metrics.score_item(item, output, execute_code=settings.execute_code)
        executed = None
        if item.task == "code":
            # Syntax that fails is reported as not run, so only a value without that note ran.
            passed = quality.get("tests_passed")
            executed = bool(
                settings.execute_code
                and passed is not None
                and passed.value is not None
                and not (passed.reason or "").startswith("not run")
            )
        return ItemScores(quality=quality, code_executed=executed)

    return score


# --------------------------------------------------------------------------- outcome


class RunInterrupted(KeyboardInterrupt):
    """The run was stopped (Ctrl-C); ``outcome`` holds what finished, already on disk."""

    def __init__(self, outcome: RunOutcome) -> None:
        super().__init__("comparison interrupted")
        self.outcome = outcome


@dataclass
class RunOutcome:
    """The rows of a run (resumed and new, one per key), and what was skipped or noticed."""

    run_key: str
    rows: list[ItemResult]
    new_rows: int
    resumed_rows: int
    skipped: dict[str, str]
    notes: list[str]
    results_path: Path
    interrupted: bool = False


# --------------------------------------------------------------------------- the runner


class _Scheduler:
    """Hands out jobs in order, skipping targets that are at their concurrency limit."""

    def __init__(self, jobs: list[Job], limits: dict[str, int]) -> None:
        self._jobs = list(jobs)
        self._limits = limits
        self._busy: dict[str, int] = {}
        self._cond = threading.Condition()
        self.stopped = False

    def next(self) -> Job | None:
        with self._cond:
            while True:
                if self.stopped or not self._jobs:
                    return None
                for i, job in enumerate(self._jobs):
                    if self._busy.get(job.target, 0) < self._limits.get(job.target, 1):
                        self._busy[job.target] = self._busy.get(job.target, 0) + 1
                        return self._jobs.pop(i)
                self._cond.wait()

    def done(self, job: Job) -> None:
        with self._cond:
            self._busy[job.target] -= 1
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self.stopped = True
            self._cond.notify_all()


class Runner:
    """Runs items on targets with one client; see the module docstring.

    ``on_row`` is called with each new row once it is on disk; if it raises, the run stops
    cleanly (KeyboardInterrupt becomes :class:`RunInterrupted`) and the error is raised.
    """

    def __init__(
        self,
        client: Client,
        targets: Sequence[str],
        items: Sequence[TaskItem],
        results_path: str | os.PathLike[str],
        settings: RunSettings | None = None,
        *,
        scorer: Scorer | None = None,
        on_row: Callable[[ItemResult], None] | None = None,
        progress: bool = False,
    ) -> None:
        if not items:
            raise InvalidRequestError("no task items to run", field="tasks")
        self.client = client
        self.settings = settings or RunSettings()
        self.items = list(items)
        self.key = run_key(self.items, self.settings)
        self.targets, self.skipped = check_targets(client, targets)
        self.results = ResultsFile(results_path)
        self.scorer = scorer
        self.on_row = on_row
        self.progress = progress
        self._stop = threading.Event()

    # ------------------------------------------------------------------ planning

    def all_jobs(self) -> list[Job]:
        """Every job of the run, repeat by repeat, item by item, targets interleaved."""
        return [
            Job(target, item, repeat)
            for repeat in range(self.settings.repeats)
            for item in self.items
            for target in self.targets
        ]

    def _done(self, *, repair: bool = False) -> tuple[dict[RowKey, ItemResult], list[str]]:
        rows, notes = self.results.load(self.key, repair=repair)
        if self.settings.retry_errors:
            rows = {k: r for k, r in rows.items() if r.ok}
        return rows, notes

    def pending(self) -> list[Job]:
        """The jobs not yet in the results file."""
        done, _ = self._done()
        return [job for job in self.all_jobs() if job.key() not in done]

    def estimate(self) -> RunEstimate:
        """The cost of the run, per target, without sending anything (warm-up included)."""
        done, _ = self._done()
        repeats = self.settings.repeats
        out: list[TargetEstimate] = []
        for target in self.targets:
            est = TargetEstimate(target)
            est.needs_key = self.client.provider(target.split(":", 1)[0]).needs_key
            for item in self.items:
                e = self.client.estimate(
                    target, messages_for(item), max_tokens=self.settings.max_tokens_for(item)
                )
                left = sum(1 for r in range(repeats) if (target, item.task, item.id, r) not in done)
                est.calls += repeats
                est.pending_calls += left
                est.worst_case_usd = plus(est.worst_case_usd, e.worst_case_usd, repeats)
                est.expected_usd = plus(est.expected_usd, e.expected_usd, repeats)
                est.pending_worst_case_usd = plus(
                    est.pending_worst_case_usd, e.worst_case_usd, left
                )
                est.pending_expected_usd = plus(est.pending_expected_usd, e.expected_usd, left)
                est.reason = est.reason or e.reason
            if self.settings.warmup:
                warm = self.client.estimate(target, messages_for(self.items[0]), max_tokens=1)
                est.worst_case_usd = plus(est.worst_case_usd, warm.worst_case_usd)
                est.expected_usd = plus(est.expected_usd, warm.expected_usd)
                if est.pending_calls:  # a warm-up is sent only when something is left to run
                    est.pending_worst_case_usd = plus(
                        est.pending_worst_case_usd, warm.worst_case_usd
                    )
                    est.pending_expected_usd = plus(est.pending_expected_usd, warm.expected_usd)
            out.append(est)
        return RunEstimate(out)

    def _limits(self) -> dict[str, int]:
        limits: dict[str, int] = {}
        for target in self.targets:
            provider = self.client.provider(target.split(":", 1)[0])
            # One in-process model runs one generation at a time; more workers would only
            # queue on its lock and count the wait as latency.
            limits[target] = 1 if provider.kind == "local" else self.settings.concurrency
        return limits

    # ------------------------------------------------------------------ running

    def stop(self) -> None:
        """Ask the workers to stop; calls in flight are abandoned and not recorded."""
        self._stop.set()

    def run(self) -> RunOutcome:
        """Run what is pending and return every row of the run."""
        done, notes = self._done(repair=True)
        resumed = sum(1 for job in self.all_jobs() if job.key() in done)
        if resumed:
            notes.append(f"resumed: {resumed} row(s) already in {self.results.path}")
        jobs = [job for job in self.all_jobs() if job.key() not in done]
        scheduler = _Scheduler(jobs, self._limits())
        scorer = self.scorer or default_scorer(self.settings)
        new: list[ItemResult] = []
        failure: list[BaseException] = []
        self._stop.clear()

        def work(advance: Callable[[str], None]) -> None:
            # Anything that escapes a job (on_row raising, a full disk) stops the whole run
            # cleanly and is raised by run() once every worker has finished.
            try:
                while not self._stop.is_set():
                    job = scheduler.next()
                    if job is None:
                        return
                    try:
                        row = self._run_job(job, scorer)
                    finally:
                        scheduler.done(job)
                    if row is None:  # stopped mid-call
                        return
                    self.results.append(row)
                    new.append(row)
                    advance(job.target)
                    if self.on_row is not None:
                        self.on_row(row)
            except BaseException as exc:
                failure.append(exc)
                self.stop()
                scheduler.stop()

        interrupted = False
        if self.settings.warmup:
            try:
                self._warm_up(list(dict.fromkeys(job.target for job in jobs)))
            except KeyboardInterrupt:
                interrupted = True
                scheduler.stop()
        workers = min(self.settings.concurrency, max(1, len(jobs)))
        with self._progress(len(jobs)) as advance:
            threads = [
                threading.Thread(target=work, args=(advance,), name=f"compare-{i}", daemon=True)
                for i in range(workers)
            ]
            for t in threads:
                t.start()
            try:
                _join(threads)
            except KeyboardInterrupt:
                interrupted = True
                self.stop()
                scheduler.stop()
                _join(threads)  # a second Ctrl-C leaves the (daemon) workers behind
        rows = self._rows(done, new)
        outcome = RunOutcome(
            run_key=self.key,
            rows=rows,
            new_rows=len(new),
            resumed_rows=resumed,
            skipped=dict(self.skipped),
            notes=notes,
            results_path=self.results.path,
            interrupted=interrupted or any(isinstance(e, KeyboardInterrupt) for e in failure),
        )
        if outcome.interrupted:
            raise RunInterrupted(outcome)
        if failure:
            raise failure[0]
        return outcome

    def scoreboard(
        self, rows: Sequence[ItemResult], weights: str | dict[str, float] | None = None
    ) -> Scoreboard:
        """Summaries, usability and scores of ``rows`` (the client is still needed here: the
        usability rubric reads each target's declared capabilities)."""
        from llmos.compare import aggregate, scoring, usability

        summaries = aggregate.summarize(rows, self.items)
        targets = list(dict.fromkeys(s.target for s in summaries))
        assessed = {
            t: usability.assess_usability(t, usability.capabilities_for(self.client, t), rows)
            for t in targets
        }
        return scoring.scoreboard(summaries, usability=assessed, weights=weights)

    def _warm_up(self, targets: list[str]) -> None:
        """One unrecorded 1-token call per target; a failure here shows up in the real rows."""
        messages = messages_for(self.items[0])
        for target in targets:
            if self._stop.is_set():
                return
            try:
                self.client.chat(
                    target,
                    messages,
                    max_tokens=1,
                    timeout=self.settings.timeout_s,
                    fallbacks=[],
                )
            except LLMOSError as exc:
                _log.info("warm-up call to %s failed: %s", target, exc)

    def _rows(self, done: dict[RowKey, ItemResult], new: list[ItemResult]) -> list[ItemResult]:
        by_key = dict(done)
        for row in new:
            by_key[row.key()] = row
        return [by_key[job.key()] for job in self.all_jobs() if job.key() in by_key]

    def _progress(self, total: int) -> Any:
        return _ProgressBar(total, enabled=self.progress)

    def _takes_temperature(self, target: str) -> bool:
        """Reasoning models refuse a temperature other than 1: theirs stays at the default."""
        provider, _, model = target.partition(":")
        try:
            return self.client.provider(provider).capabilities(model).sampling
        except LLMOSError:
            return True  # the call itself will report the problem

    def _run_job(self, job: Job, scorer: Scorer) -> ItemResult | None:
        """One streamed call, measured and scored; None when the run was stopped meanwhile."""
        item = job.item
        settings = self.settings
        options: dict[str, Any] = {
            "max_tokens": settings.max_tokens_for(item),
            "seed": seed_for(settings.seed, item.id, job.repeat),
            "timeout": settings.timeout_s,
            "fallbacks": [],  # a comparison measures each target itself, never a substitute
        }
        if settings.temperature is not None and self._takes_temperature(job.target):
            options["temperature"] = settings.temperature
        if settings.perplexity == "output" and self._wants_logprobs(job.target):
            options["logprobs"] = True
        base: dict[str, Any] = {
            "run_key": self.key,
            "target": job.target,
            "task": item.task,
            "item_id": item.id,
            "repeat": job.repeat,
        }
        delta_times: list[float] = []
        response = None
        try:
            stream = self.client.stream(job.target, messages_for(item), **options)
            try:
                for event in stream:
                    if self._stop.is_set():
                        return None
                    if event.type == "delta":
                        delta_times.append(time.perf_counter())
                    elif event.type == "final":
                        response = event.response
            finally:
                stream.close()
        except LLMOSError as exc:
            return ItemResult(
                **base,
                ok=False,
                error_type=type(exc).__name__,
                error_message=str(exc),
                finished_at=time.time(),
            )
        except Exception as exc:  # a bug below us must not end the whole comparison
            _log.warning("unexpected error on %s: %r", job.target, exc, exc_info=True)
            return ItemResult(
                **base,
                ok=False,
                error_type=type(exc).__name__,
                error_message=f"unexpected error: {exc}",
                finished_at=time.time(),
            )
        if response is None:
            return ItemResult(
                **base,
                ok=False,
                error_type="InvalidResponseError",
                error_message="the stream ended without a final response",
                finished_at=time.time(),
            )
        return self._row(base, job, response, delta_times, scorer)

    def _wants_logprobs(self, target: str) -> bool:
        from llmos.compare.perplexity import supports_local_scoring, wants_logprobs

        name, _, model = target.partition(":")
        provider = self.client.provider(name)
        if supports_local_scoring(provider):
            return False  # scored after the call instead; the local model offers no logprobs
        return wants_logprobs(provider.capabilities(model))

    def _perplexity(
        self, job: Job, response: Any
    ) -> tuple[MetricValue | None, Literal["output", "reference"] | None]:
        """Perplexity of the text the settings name, and which text it was."""
        from llmos.compare import perplexity as ppl

        mode = self.settings.perplexity
        if mode == "off":
            return None, None
        name, _, model = job.target.partition(":")
        provider = self.client.provider(name)
        if ppl.supports_local_scoring(provider):
            if mode == "output":
                text: str | None = response.text
            else:
                text = job.item.references[0] if job.item.references else None
            if text is None:
                return MetricValue(value=None, reason="the item has no reference text"), None
            value = ppl.local_perplexity(provider, model, messages_for(job.item), text)
        elif mode == "output":
            value = ppl.perplexity_from_logprobs(response.logprobs)
        else:
            value = MetricValue(value=None, reason="only a local model can score a reference text")
        return value, (mode if value.value is not None else None)

    def _row(
        self,
        base: dict[str, Any],
        job: Job,
        response: Any,
        delta_times: list[float],
        scorer: Scorer,
    ) -> ItemResult:
        usage = response.usage
        latency = response.latency
        total_s = latency.total_s
        ttft_s = latency.ttft_s
        completion = usage.completion_tokens if usage.source != "missing" else None
        tokens_per_s = None
        if completion and ttft_s is not None and total_s > ttft_s:
            tokens_per_s = completion / (total_s - ttft_s)
        inter_token_s = None
        if len(delta_times) >= 2:
            inter_token_s = (delta_times[-1] - delta_times[0]) / (len(delta_times) - 1)
        cost = response.cost
        output = response.text
        try:
            scores = scorer(job.item, output, job.target)
        except Exception as exc:  # a metric failing must not lose the measured call
            _log.warning("scoring %s on %s failed: %r", job.item.id, job.target, exc)
            scores = ItemScores(
                quality={"scoring": MetricValue(value=None, reason=f"scoring failed: {exc}")}
            )
        perplexity, perplexity_of = self._perplexity(job, response)
        return ItemResult(
            **base,
            ok=True,
            output=output,
            prompt_tokens=usage.prompt_tokens if usage.source != "missing" else None,
            completion_tokens=completion,
            usage_source=usage.source,
            ttft_s=ttft_s,
            total_s=total_s,
            tokens_per_s=tokens_per_s,
            inter_token_s=inter_token_s,
            cost_usd=cost.total_usd if cost is not None else None,
            cost_reason=(cost.reason if cost is not None else "no cost computed"),
            quality=scores.quality,
            perplexity=perplexity,
            perplexity_of=perplexity_of,
            code_executed=scores.code_executed,
            finished_at=time.time(),
        )


def _join(threads: list[threading.Thread]) -> None:
    # Short joins keep the main thread responsive to Ctrl-C.
    for t in threads:
        while t.is_alive():
            t.join(0.2)


class _ProgressBar:
    """A transient rich progress bar on stderr, shown only on a terminal."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> Callable[[str], None]:
        if self.enabled and self.total:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            console = Console(stderr=True)
            if console.is_terminal:
                self._progress = Progress(
                    TextColumn("comparing"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeRemainingColumn(),
                    TextColumn("{task.description}"),
                    console=console,
                    transient=True,
                )
                self._progress.start()
                self._task = self._progress.add_task("", total=self.total)
        return self.advance

    def advance(self, target: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=1, description=target)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
