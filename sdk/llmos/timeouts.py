"""Timeouts and deadlines: connect, read and total, so that no call outlives what it was given.

Every attempt's connect and read timeouts are cut to what the call's deadline leaves, so the
deadline bounds retries, backoff waits, rate-limit waits and fallbacks together. Once it has
passed, nothing more is sent: the call ends with :class:`DeadlineExceededError`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Union

from llmos.errors import DeadlineExceededError

__all__ = ["Deadline", "DeadlineExceededError", "Timeout", "TimeoutInput", "to_timeout"]


@dataclass(frozen=True)
class Timeout:
    """Seconds allowed to connect, to wait for each read (a silent stream included), and in total.

    ``total`` bounds the whole call, retries, waits and fallbacks included; None means no bound.
    """

    connect: float = 5.0
    read: float = 600.0
    total: float | None = None

    def __post_init__(self) -> None:
        for name in ("connect", "read", "total"):
            value = getattr(self, name)
            if value is None and name == "total":
                continue
            # "not (0 < value < inf)" refuses NaN too; an infinite socket timeout overflows.
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not 0 < value < math.inf:
                from llmos.errors import ConfigurationError

                raise ConfigurationError(
                    f"timeout.{name} must be a positive, finite number of seconds, got {value!r}"
                )


TimeoutInput = Union[Timeout, float, int, None]
"""A Timeout, or a number meaning that many seconds for the read and the total."""


def to_timeout(value: TimeoutInput, default: Timeout) -> Timeout:
    """Normalise a user's timeout argument; a bare number bounds both reads and the whole call."""
    if value is None:
        return default
    if isinstance(value, Timeout):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        from llmos.errors import ConfigurationError

        raise ConfigurationError(
            f"timeout must be a number of seconds or llmos.Timeout(...), got {type(value).__name__}"
        )
    seconds = float(value)
    return Timeout(connect=min(default.connect, seconds), read=seconds, total=seconds)


class Deadline:
    """A point in monotonic time after which a call must stop; ``None`` total means never."""

    __slots__ = ("_clock", "at")

    def __init__(self, total: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.at = None if total is None else self._clock() + total

    def remaining(self) -> float | None:
        """Seconds left, never negative; None when unbounded."""
        if self.at is None:
            return None
        return max(0.0, self.at - self._clock())

    def expired(self) -> bool:
        """True once the deadline has passed."""
        return self.at is not None and self._clock() >= self.at

    def cap(self, seconds: float) -> float:
        """``seconds`` shortened to what the deadline leaves."""
        left = self.remaining()
        return seconds if left is None else min(seconds, left)
