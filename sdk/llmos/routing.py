"""Where a call goes: ``provider:model`` parsing, fallback chains and circuit breaking.

A call has an ordered chain of targets: the model asked for, then its fallbacks. Each target is
tried (with retries, see retry.py) until one answers. A failure moves on to the next target only
when it is not the caller's fault:

* moves on: connection errors, timeouts, 429 rate limits, exhausted quota, 5xx, unreadable
  answers, a missing or rejected key, an open circuit, a budget that this target's price would
  exceed, and a context-length error (the next target's window may be larger);
* raises at once: invalid requests, unknown models (404), content refusals, and configuration
  errors other than a missing key (an insecure base_url included);
* ends the chain: the call's own deadline passing (DeadlineExceededError). Targets not yet tried
  are not tried, and nothing is counted against them.

A context-length error moves on but is not retried on the same target (the same prompt cannot
fit the same window), and it does not count against the target's health: the request was too
long, the target did nothing wrong. With a single target its own error is raised; with several,
AllProvidersFailedError lists every error and attempt. Streams may fall back only before their
first content event.

The circuit breaker counts a call's failure once per target, after its retries, and only for
failures that say the target is unwell (connection, timeout, 429, quota, 5xx, unreadable
answers, a rejected key); the caller's errors, missing keys, budgets, context-length errors,
the call's deadline and the client's own rate limit never open a circuit.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

from llmos._log import get_logger
from llmos.errors import (
    AllProvidersFailedError,
    APIConnectionError,
    AuthenticationError,
    BudgetExceededError,
    CircuitOpenError,
    ClientRateLimitError,
    ConfigurationError,
    ContextLengthError,
    DeadlineExceededError,
    InvalidRequestError,
    InvalidResponseError,
    LLMOSError,
    MissingAPIKeyError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
    UnsupportedFeatureError,
)
from llmos.retry import Clock
from llmos.types import Attempt

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "CircuitOpenError",
    "Router",
    "Target",
    "is_fallback_worthy",
    "parse_target",
    "scrub_context",
]

log = get_logger("routing")
T = TypeVar("T")

#: Models used when a provider name is given alone (``local`` means the embedded model).
DEFAULT_MODELS: dict[str, str] = {"local": "gemma-3-270m"}


@dataclass(frozen=True)
class Target:
    """One provider and model to send a call to."""

    provider: str
    model: str

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"


def parse_target(value: object, *, field: str = "model") -> Target:
    """Split ``provider:model`` on the first colon; a bare ``local`` means the embedded model."""
    if isinstance(value, Target):
        return value
    if not isinstance(value, str):
        raise InvalidRequestError(
            f"{field} must be a string like 'openai:gpt-4.1-mini', got {type(value).__name__}",
            field=field,
        )
    text = value.strip()
    provider, sep, model = text.partition(":")
    if not sep:
        if text in DEFAULT_MODELS:
            return Target(text, DEFAULT_MODELS[text])
        raise InvalidRequestError(
            f"{field} {value!r} has no provider; write it as 'provider:model', "
            f"e.g. 'openai:{text or 'gpt-4.1-mini'}' or 'local:gemma-3-270m'",
            field=field,
        )
    if not provider or not model:
        raise InvalidRequestError(
            f"{field} {value!r} needs both a provider and a model, e.g. 'openai:gpt-4.1-mini'",
            field=field,
        )
    return Target(provider.strip(), model.strip())


def is_fallback_worthy(error: BaseException) -> bool:
    """Whether a failure of one target should move the call on to the next."""
    if isinstance(error, DeadlineExceededError):
        return False  # no time is left for any target
    if isinstance(error, (ContextLengthError, MissingAPIKeyError, BudgetExceededError)):
        return True
    if isinstance(error, CircuitOpenError):
        return True
    if isinstance(error, (InvalidRequestError, ConfigurationError)):
        return False
    return isinstance(
        error,
        (
            APIConnectionError,
            RateLimitError,
            QuotaExceededError,
            ServerError,
            InvalidResponseError,
            AuthenticationError,
            PermissionDeniedError,
        ),
    ) or (isinstance(error, LLMOSError) and error.retryable)


def counts_against_health(error: BaseException) -> bool:
    """Whether a failure says the target itself is unwell (not the caller, budget or config)."""
    if isinstance(
        error,
        (
            InvalidRequestError,
            ConfigurationError,
            BudgetExceededError,
            CircuitOpenError,
            DeadlineExceededError,
            ClientRateLimitError,
        ),
    ):
        return False
    return is_fallback_worthy(error)


BreakerStatus = Literal["closed", "open", "half_open"]


@dataclass
class BreakerState:
    """The health of one target as the circuit breaker sees it."""

    status: BreakerStatus = "closed"
    consecutive_failures: int = 0
    opened_at: float | None = None
    probing: bool = False
    last_error: str | None = None


class CircuitBreaker:
    """Skips a target after ``failure_threshold`` consecutive failures, for ``cooldown`` seconds.

    After the cool-down one probe call is let through (half-open): success closes the circuit,
    failure opens it again. Thread-safe; shared by every call of one client.
    """

    def __init__(
        self, failure_threshold: int = 5, cooldown: float = 30.0, clock: Clock | None = None
    ) -> None:
        if failure_threshold < 1:
            raise ConfigurationError("circuit breaker failure_threshold must be at least 1")
        if cooldown < 0:
            raise ConfigurationError("circuit breaker cooldown must not be negative")
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock or Clock()
        self._states: dict[str, BreakerState] = {}
        self._lock = threading.Lock()

    def allow(self, target: str) -> bool:
        """Whether a call may go to ``target`` now; takes the half-open probe slot if due."""
        with self._lock:
            state = self._states.get(target)
            if state is None or state.status == "closed":
                return True
            if state.status == "open":
                assert state.opened_at is not None
                if self._clock.monotonic() - state.opened_at < self.cooldown:
                    return False
                state.status = "half_open"
                state.probing = False
            if state.probing:
                return False
            state.probing = True
            return True

    def record_success(self, target: str) -> None:
        """A call to ``target`` succeeded: the circuit closes."""
        with self._lock:
            self._states[target] = BreakerState()

    def record_failure(self, target: str, error: BaseException) -> None:
        """A call to ``target`` failed in a way that says the target is unwell."""
        with self._lock:
            state = self._states.setdefault(target, BreakerState())
            state.consecutive_failures += 1
            state.last_error = type(error).__name__
            if state.status == "open":
                return  # a call already in flight when it opened: the cool-down stands
            state.probing = False
            if state.status == "half_open" or state.consecutive_failures >= self.failure_threshold:
                log.warning(
                    "circuit open for %s after %d consecutive failures (last: %s); "
                    "skipping it for %.0f s",
                    target,
                    state.consecutive_failures,
                    state.last_error,
                    self.cooldown,
                )
                state.status = "open"
                state.opened_at = self._clock.monotonic()

    def release(self, target: str) -> None:
        """Give back a half-open probe slot taken by a call that never reached the target."""
        with self._lock:
            state = self._states.get(target)
            if state is not None and state.status == "half_open":
                state.probing = False

    def snapshot(self) -> dict[str, dict[str, object]]:
        """Every target's state, for ``client.health()``."""
        with self._lock:
            now = self._clock.monotonic()
            out: dict[str, dict[str, object]] = {}
            for target, state in self._states.items():
                retry_in = None
                if state.status == "open" and state.opened_at is not None:
                    retry_in = max(0.0, self.cooldown - (now - state.opened_at))
                out[target] = {
                    "status": state.status,
                    "consecutive_failures": state.consecutive_failures,
                    "last_error": state.last_error,
                    "retry_in_s": retry_in,
                }
            return out


TargetCall = Callable[[Target, list[Attempt]], T]


class Router:
    """Runs one call over its chain of targets, honouring the circuit breaker."""

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker
        self._warned: set[str] = set()
        self._warned_lock = threading.Lock()

    def _skip(self, target: Target, attempts: list[Attempt]) -> CircuitOpenError:
        status = self.breaker.snapshot().get(str(target), {})
        error = CircuitOpenError(
            f"{target} is skipped: its circuit is open after repeated failures "
            f"(retry in {status.get('retry_in_s') or 0:.0f} s)",
            provider=target.provider,
            model=target.model,
        )
        attempts.append(
            Attempt(
                target=str(target),
                ok=False,
                skipped=True,
                error_type="CircuitOpenError",
                message=error.message,
            )
        )
        return error

    def _note_fallback(self, target: Target, previous: BaseException) -> None:
        key = str(target)
        with self._warned_lock:
            if key in self._warned:
                return
            self._warned.add(key)
        log.warning("falling back to %s after %s: %s", key, type(previous).__name__, previous)

    def _failed(
        self, chain: list[Target], errors: list[LLMOSError], attempts: list[Attempt]
    ) -> LLMOSError:
        if len(chain) == 1 and errors:
            error = errors[-1]
            error.attempts = attempts
            return scrub_context(error)
        names = ", ".join(str(t) for t in chain)
        message = f"all {len(chain)} targets failed ({names})"
        if errors and isinstance(errors[-1], DeadlineExceededError) and len(errors) < len(chain):
            message = (
                f"the call's deadline passed after {len(errors) - 1} of {len(chain)} targets "
                f"failed ({names})"
            )
        return AllProvidersFailedError(
            message, errors=[scrub_context(e) for e in errors], attempts=attempts
        )

    def _handle(
        self,
        target: Target,
        error: BaseException,
        index: int,
        chain: list[Target],
        errors: list[LLMOSError],
        attempts: list[Attempt],
    ) -> None:
        """Record a failure; re-raise it when the chain must stop here."""
        if counts_against_health(error):
            self.breaker.record_failure(str(target), error)
        else:
            self.breaker.release(str(target))
        if not isinstance(error, LLMOSError):
            raise error
        if not any(a.target == str(target) for a in attempts):
            # Refused before any request (budget, capability, missing key): still on the record.
            attempts.append(
                Attempt(
                    target=str(target),
                    ok=False,
                    skipped=True,
                    error_type=type(error).__name__,
                    status_code=error.status_code,
                    message=error.message,
                )
            )
        errors.append(error)
        if isinstance(error, DeadlineExceededError):
            raise self._failed(chain, errors, attempts) from None
        # A fallback that cannot serve this request is passed over; the primary raises.
        passed_over = isinstance(error, UnsupportedFeatureError) and index > 0
        if not passed_over and not is_fallback_worthy(error):
            error.attempts = attempts
            raise scrub_context(error)

    def run(
        self, chain: list[Target], call: TargetCall[T], attempts: list[Attempt] | None = None
    ) -> T:
        """Try each target in turn until one answers; attempts are recorded on ``attempts``."""
        attempts = [] if attempts is None else attempts
        errors: list[LLMOSError] = []
        for index, target in enumerate(chain):
            if index > 0 and errors:
                self._note_fallback(target, errors[-1])
            if not self.breaker.allow(str(target)):
                errors.append(self._skip(target, attempts))
                continue
            try:
                result = call(target, attempts)
            except BaseException as error:
                self._handle(target, error, index, chain, errors, attempts)
                continue
            self.breaker.record_success(str(target))
            return result
        raise self._failed(chain, errors, attempts)

    async def arun(
        self,
        chain: list[Target],
        call: Callable[[Target, list[Attempt]], Awaitable[T]],
        attempts: list[Attempt] | None = None,
    ) -> T:
        """Async twin of :meth:`run`."""
        attempts = [] if attempts is None else attempts
        errors: list[LLMOSError] = []
        for index, target in enumerate(chain):
            if index > 0 and errors:
                self._note_fallback(target, errors[-1])
            if not self.breaker.allow(str(target)):
                errors.append(self._skip(target, attempts))
                continue
            try:
                result = await call(target, attempts)
            except BaseException as error:
                self._handle(target, error, index, chain, errors, attempts)
                continue
            self.breaker.record_success(str(target))
            return result
        raise self._failed(chain, errors, attempts)


def scrub_context(error: LLMOSError) -> LLMOSError:
    """``error`` without the hidden exception it replaced (``raise ... from None``).

    Providers translate SDK and httpx errors with ``from None``; the original still hangs on
    ``__context__``, holding request objects whose headers carry the API key. Tracebacks never
    show a suppressed context, so dropping it loses nothing a user could see.
    """
    if error.__suppress_context__:
        error.__context__ = None
    return error


def dedupe_chain(
    primary: Target, fallbacks: list[Target], *, aliases: Mapping[str, str]
) -> list[Target]:
    """The chain with repeats removed, keeping first occurrences."""
    chain: list[Target] = []
    seen: set[tuple[str, str]] = set()
    for target in [primary, *fallbacks]:
        key = (aliases.get(target.provider, target.provider), target.model)
        if key not in seen:
            seen.add(key)
            chain.append(target)
    return chain
