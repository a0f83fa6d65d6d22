"""The one retry layer of llmos, on tenacity.

What is retried: connection errors, timeouts, 408, 409, 429 (not quota exhaustion), 5xx and
unreadable answers; a provider's ``x-should-retry: true|false`` header overrides that. The wait
honours ``retry-after-ms``, then ``retry-after`` (seconds or an HTTP date) when it is within
``max_retry_after``; a longer ask ends the retries at once with the RateLimitError, which carries
``retry_after``. Otherwise the wait backs off exponentially with jitter. Provider SDK retries are
always off, so one setting of ``max_attempts`` means exactly that many requests per target.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from llmos.errors import ConfigurationError, LLMOSError
from llmos.timeouts import Deadline

__all__ = ["Clock", "RetryPolicy", "SystemClock", "acall_with_retries", "call_with_retries"]

T = TypeVar("T")


class Clock:
    """Time as llmos sees it; tests pass a fake one so that waits cost nothing."""

    def monotonic(self) -> float:
        """Seconds on a monotonic clock."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Block this thread for ``seconds``."""
        time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        """Suspend this task for ``seconds``."""
        await asyncio.sleep(seconds)


SystemClock = Clock


@dataclass(frozen=True)
class RetryPolicy:
    """How one target is retried. ``max_attempts`` counts requests: 1 means no retry.

    The wait before retry n (n = 1, 2, ...) is ``min(initial_delay * multiplier**(n-1), max_delay)``
    scaled by ``1 - jitter * random()``, unless the provider said how long to wait. ``deadline``
    (seconds) bounds the whole call, retries, waits and fallbacks included.
    """

    max_attempts: int = 3
    initial_delay: float = 0.5
    max_delay: float = 8.0
    multiplier: float = 2.0
    jitter: float = 0.25
    max_retry_after: float = 120.0
    deadline: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise ConfigurationError("RetryPolicy.max_attempts must be an integer")
        if self.max_attempts < 1:
            raise ConfigurationError(
                "RetryPolicy.max_attempts must be at least 1 (1 means no retry), "
                f"got {self.max_attempts}"
            )
        # Written as "not (valid)" so that NaN, which fails every comparison, is refused too.
        for name in ("initial_delay", "max_delay", "max_retry_after"):
            if not _number(getattr(self, name)) >= 0:
                raise ConfigurationError(
                    f"RetryPolicy.{name} must be a number of seconds, zero or more"
                )
        if not math.isfinite(_number(self.initial_delay)):
            raise ConfigurationError("RetryPolicy.initial_delay must be a finite number")
        if not (1 <= _number(self.multiplier) < math.inf):
            raise ConfigurationError("RetryPolicy.multiplier must be a finite number, 1 or more")
        if not 0 <= _number(self.jitter) <= 1:
            raise ConfigurationError("RetryPolicy.jitter must be between 0 and 1")
        if self.deadline is not None and not _number(self.deadline) > 0:
            raise ConfigurationError("RetryPolicy.deadline must be a positive number of seconds")

    @classmethod
    def none(cls) -> RetryPolicy:
        """A policy that never retries."""
        return cls(max_attempts=1)

    def should_retry(self, error: BaseException) -> bool:
        """Whether ``error`` is worth another attempt on the same target."""
        if not isinstance(error, LLMOSError):
            return False
        if error.should_retry is not None:
            return error.should_retry
        return error.retryable

    def backoff(self, retry_number: int, rand: Callable[[], float] = random.random) -> float:
        """The wait before retry ``retry_number`` (1-based) when the provider gave none."""
        try:
            growth = self.multiplier ** (retry_number - 1)
        except OverflowError:  # a huge multiplier: the cap applies anyway
            growth = math.inf
        base = min(self.initial_delay * growth, self.max_delay) if self.initial_delay else 0.0
        return base * (1 - self.jitter * rand())

    def wait_for(self, error: BaseException, retry_number: int) -> float | None:
        """Seconds to wait before retrying after ``error``, or None when it must not be retried."""
        if not self.should_retry(error):
            return None
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None and retry_after > 0:
            if retry_after > self.max_retry_after:
                return None
            return float(retry_after)
        return self.backoff(retry_number)


def _number(value: object) -> float:
    """``value`` as a float for validation; NaN (refused by every check) when it is not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


AttemptHook = Callable[[int, float, "BaseException | None", float], None]
"""Called after each attempt with (number, seconds waited before it, error or None, duration)."""


class _Plan:
    """Tenacity callbacks shared by the sync and async loops, and the per-attempt bookkeeping.

    The first attempt runs before tenacity is involved: most calls succeed at once, and
    tenacity's machinery costs tens of microseconds a call. Once an attempt has failed in a way
    worth retrying, tenacity runs the rest; ``offset`` keeps attempt numbers continuous.
    """

    def __init__(
        self, policy: RetryPolicy, deadline: Deadline, clock: Clock, on_attempt: AttemptHook
    ) -> None:
        self.policy = policy
        self.deadline = deadline
        self.clock = clock
        self.on_attempt = on_attempt
        self.pending_wait = 0.0
        self.number = 0
        self.offset = 0

    def wait_after(self, error: BaseException, number: int) -> float | None:
        """The wait before the attempt after attempt ``number``, or None to stop retrying."""
        if number >= self.policy.max_attempts:
            return None
        wait = self.policy.wait_for(error, number)
        if wait is None:
            return None
        left = self.deadline.remaining()
        if left is not None and wait >= left:
            return None  # waiting would outlive the deadline: fail now, with the real error
        return wait

    def retry(self, state: tenacity.RetryCallState) -> bool:
        outcome = state.outcome
        if outcome is None or not outcome.failed:
            return False
        error = outcome.exception()
        if error is None:
            return False
        wait = self.wait_after(error, state.attempt_number + self.offset)
        if wait is None:
            return False
        self.pending_wait = wait
        return True

    def stop(self, state: tenacity.RetryCallState) -> bool:
        # ``retry`` already refuses what may not be retried; this is the safety net.
        number = state.attempt_number + self.offset
        return number >= self.policy.max_attempts or self.deadline.expired()

    def wait(self, state: tenacity.RetryCallState) -> float:
        return self.pending_wait

    def begin(self) -> tuple[int, float, float]:
        self.number += 1
        waited, self.pending_wait = self.pending_wait, 0.0
        return self.number, waited, self.clock.monotonic()

    def end(self, begun: tuple[int, float, float], error: BaseException | None) -> None:
        number, waited, started = begun
        self.on_attempt(number, waited, error, self.clock.monotonic() - started)

    def after_first(self, error: BaseException) -> float | None:
        """Decide on retrying after the first attempt; sets up tenacity for the rest."""
        wait = self.wait_after(error, 1)
        if wait is not None:
            self.offset = 1
            self.pending_wait = wait
        return wait


def _noop(number: int, waited: float, error: BaseException | None, duration: float) -> None:
    return None


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    deadline: Deadline | None = None,
    clock: Clock | None = None,
    on_attempt: AttemptHook = _noop,
) -> T:
    """Run ``fn`` until it succeeds or ``policy`` says stop; the last error is raised as is."""
    clock = clock or Clock()
    plan = _Plan(policy, deadline or Deadline(policy.deadline, clock.monotonic), clock, on_attempt)

    def attempt() -> T:
        begun = plan.begin()
        try:
            result = fn()
        except BaseException as error:
            plan.end(begun, error)
            raise
        plan.end(begun, None)
        return result

    try:
        return attempt()
    except Exception as error:
        wait = plan.after_first(error)
        if wait is None:
            raise
    clock.sleep(wait)
    retrying = tenacity.Retrying(
        stop=plan.stop, wait=plan.wait, retry=plan.retry, sleep=clock.sleep, reraise=True
    )
    return retrying(attempt)


async def acall_with_retries(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    deadline: Deadline | None = None,
    clock: Clock | None = None,
    on_attempt: AttemptHook = _noop,
) -> T:
    """Async twin of :func:`call_with_retries`; waits suspend the task, never the loop."""
    clock = clock or Clock()
    plan = _Plan(policy, deadline or Deadline(policy.deadline, clock.monotonic), clock, on_attempt)

    async def attempt() -> T:
        begun = plan.begin()
        try:
            result = await fn()
        except BaseException as error:
            plan.end(begun, error)
            raise
        plan.end(begun, None)
        return result

    try:
        return await attempt()
    except Exception as error:
        wait = plan.after_first(error)
        if wait is None:
            raise
    await clock.asleep(wait)
    retrying = tenacity.AsyncRetrying(
        stop=plan.stop, wait=plan.wait, retry=plan.retry, sleep=clock.asleep, reraise=True
    )
    return await retrying(attempt)
