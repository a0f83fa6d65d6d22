"""Test doubles shared by the suites: time that only moves when llmos waits."""

from __future__ import annotations

import threading

from llmos.retry import Clock


class FakeClock(Clock):
    """Time that moves only when llmos sleeps; records every wait. Thread-safe.

    Pass it as ``Client(clock=FakeClock())`` so retry, rate-limit and breaker waits cost nothing;
    with ``advance=False`` waits are recorded but time stands still.
    """

    def __init__(self, *, advance: bool = True) -> None:
        self.now = 1000.0
        self.slept: list[float] = []
        self.advance = advance
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            if self.advance:
                self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
