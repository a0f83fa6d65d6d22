"""Client-side rate limits: requests per minute and tokens per minute as token buckets.

A batch job that knows a provider's limits stays under them instead of collecting 429s. One
limiter serves every thread and task of a client: the bucket is guarded by a thread lock, and
async callers sleep on the event loop, never holding the lock while they wait.

Every request takes from the buckets, retries included (the provider counts those too). A
bucket may go into debt: each caller reserves its share at once and then waits until the debt
is paid off, so callers are served in the order they asked. A wait that would outlive the
call's deadline is refused at once with :class:`ClientRateLimitError`, its share given back.
"""

from __future__ import annotations

import threading

from llmos.errors import ClientRateLimitError, ConfigurationError, InvalidRequestError
from llmos.retry import Clock

__all__ = ["ClientRateLimitError", "RateLimiter", "TokenBucket"]


class TokenBucket:
    """``capacity`` units refilled continuously at ``per_minute`` units per minute."""

    def __init__(self, per_minute: float, clock: Clock, capacity: float | None = None) -> None:
        if per_minute <= 0:
            raise ConfigurationError("rate limits must be positive numbers per minute")
        self.rate = per_minute / 60.0
        self.capacity = capacity if capacity is not None else per_minute
        self._level = self.capacity
        self._clock = clock
        self._updated = clock.monotonic()

    def _refill(self) -> None:
        now = self._clock.monotonic()
        self._level = min(self.capacity, self._level + (now - self._updated) * self.rate)
        self._updated = now

    def take(self, amount: float) -> float:
        """Take ``amount`` now, going into debt if need be; returns seconds to wait before use."""
        self._refill()
        self._level -= amount
        return 0.0 if self._level >= 0 else -self._level / self.rate

    def give_back(self, amount: float) -> None:
        """Return ``amount`` taken by a request that was never sent."""
        self._level = min(self.capacity, self._level + amount)


class RateLimiter:
    """Requests-per-minute and tokens-per-minute limits for one provider."""

    def __init__(
        self,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        clock: Clock | None = None,
        *,
        name: str | None = None,
    ) -> None:
        self._clock = clock or Clock()
        self.name = name
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self._requests = (
            TokenBucket(requests_per_minute, self._clock) if requests_per_minute else None
        )
        self._tokens = TokenBucket(tokens_per_minute, self._clock) if tokens_per_minute else None
        self._lock = threading.Lock()

    def _reserve(self, tokens: int, max_wait: float | None) -> float:
        if self._tokens is not None and tokens > self._tokens.capacity:
            raise InvalidRequestError(
                f"this call may use {tokens} tokens, more than the tokens_per_minute limit of "
                f"{self._tokens.capacity:.0f}; lower max_tokens or raise the limit",
                field="max_tokens",
                provider=self.name,
            )
        with self._lock:
            wait = 0.0
            if self._requests is not None:
                wait = max(wait, self._requests.take(1))
            if self._tokens is not None:
                wait = max(wait, self._tokens.take(tokens))
            if max_wait is None or wait <= max_wait:
                return wait
            if self._requests is not None:
                self._requests.give_back(1)
            if self._tokens is not None:
                self._tokens.give_back(tokens)
        raise ClientRateLimitError(
            f"the client-side rate limit of provider '{self.name}' "
            f"({self._describe()}) needs a {wait:.1f} s wait, longer than the "
            f"{max_wait:.1f} s left before the call's deadline; nothing was sent",
            retry_after=wait,
            should_retry=False,
            provider=self.name,
        )

    def _describe(self) -> str:
        parts = []
        if self.requests_per_minute:
            parts.append(f"requests_per_minute={self.requests_per_minute:g}")
        if self.tokens_per_minute:
            parts.append(f"tokens_per_minute={self.tokens_per_minute:g}")
        return ", ".join(parts)

    def acquire(self, tokens: int = 0, *, max_wait: float | None = None) -> float:
        """Block until a request of ``tokens`` tokens may go; returns the seconds waited.

        A wait longer than ``max_wait`` raises ClientRateLimitError without waiting.
        """
        wait = self._reserve(tokens, max_wait)
        if wait > 0:
            self._clock.sleep(wait)
        return wait

    async def aacquire(self, tokens: int = 0, *, max_wait: float | None = None) -> float:
        """Async twin of :meth:`acquire`: waits without blocking the event loop."""
        wait = self._reserve(tokens, max_wait)
        if wait > 0:
            await self._clock.asleep(wait)
        return wait
