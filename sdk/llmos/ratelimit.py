"""Client-side rate limits: requests per minute and tokens per minute as token buckets.

A batch job that knows a provider's limits stays under them instead of collecting 429s. One
limiter serves every thread and task of a client: the bucket is guarded by a thread lock, and
async callers sleep on the event loop, never holding the lock while they wait.
"""

from __future__ import annotations

import threading

from llmos.errors import ConfigurationError, InvalidRequestError
from llmos.retry import Clock

__all__ = ["RateLimiter", "TokenBucket"]


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


class RateLimiter:
    """Requests-per-minute and tokens-per-minute limits for one provider."""

    def __init__(
        self,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._clock = clock or Clock()
        self._requests = (
            TokenBucket(requests_per_minute, self._clock) if requests_per_minute else None
        )
        self._tokens = TokenBucket(tokens_per_minute, self._clock) if tokens_per_minute else None
        self._lock = threading.Lock()

    def _reserve(self, tokens: int) -> float:
        if self._tokens is not None and tokens > self._tokens.capacity:
            raise InvalidRequestError(
                f"this call may use {tokens} tokens, more than the tokens_per_minute limit of "
                f"{self._tokens.capacity:.0f}; lower max_tokens or raise the limit",
                field="max_tokens",
            )
        with self._lock:
            wait = 0.0
            if self._requests is not None:
                wait = max(wait, self._requests.take(1))
            if self._tokens is not None:
                wait = max(wait, self._tokens.take(tokens))
            return wait

    def acquire(self, tokens: int = 0) -> float:
        """Block until a request of ``tokens`` tokens may go; returns the seconds waited."""
        wait = self._reserve(tokens)
        if wait > 0:
            self._clock.sleep(wait)
        return wait

    async def aacquire(self, tokens: int = 0) -> float:
        """Async twin of :meth:`acquire`: waits without blocking the event loop."""
        wait = self._reserve(tokens)
        if wait > 0:
            await self._clock.asleep(wait)
        return wait
