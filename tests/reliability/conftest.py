"""Shared pieces of the reliability tests: the fault server, fake clocks and resource counts.

Every test here goes over real HTTP to the loopback fault server (tests/servers/faults.py),
through the ``openai`` provider (openai SDK on httpx2) and the ``ai21`` provider (httpx), so
both transports are exercised. Waits between retries run on a fake clock; only socket timeouts
(kept at a fraction of a second) take real time.
"""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psutil
import pytest
from tests.fakes import FakeClock
from tests.servers.base import LoopbackServer
from tests.servers.faults import FaultApp

from llmos import RetryPolicy, Timeout
from llmos.retry import Clock

#: Keys used by every client here; the secret tests check that neither ever leaks.
OPENAI_KEY = "sk-test-SECRET-1234567890abcdef"
#: Not key-shaped on purpose: only llmos's memory of loaded keys can scrub it.
AI21_KEY = "ai21-plain-key-Zq7Wm4Rx0923"

#: The read timeout used against stalling servers: short, so stalls cost little real time.
READ_TIMEOUT = 0.25


@dataclass(frozen=True)
class Route:
    """One provider the fault server serves, and the model string that reaches it."""

    provider: str
    model: str
    path: str

    @property
    def target(self) -> str:
        return f"{self.provider}:{self.model}"


OPENAI = Route("openai", "gpt-4.1-mini", "/v1/chat/completions")
AI21 = Route("ai21", "jamba-mini", "/studio/v1/chat/completions")
ROUTES = [OPENAI, AI21]


class WallClock(Clock):
    """Real monotonic time, but waits are skipped and added to the time instead.

    For deadline tests: real socket timeouts use up real time, while backoff waits count
    towards the deadline without being slept.
    """

    def __init__(self) -> None:
        self.offset = 0.0
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return super().monotonic() + self.offset

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.offset += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


#: The policy of the matrix: three attempts, no jitter, so every wait is predictable.
POLICY = RetryPolicy(
    max_attempts=3, initial_delay=0.5, multiplier=2.0, jitter=0, max_retry_after=30
)
TIMEOUT = Timeout(connect=2.0, read=READ_TIMEOUT)


def provider_settings(url: str, **extra: Any) -> dict[str, dict[str, Any]]:
    """Settings pointing both HTTP providers at one fault server."""
    return {
        "openai": {"base_url": url + "/v1", "api_key": OPENAI_KEY, **extra},
        "ai21": {"base_url": url + "/studio/v1", "api_key": AI21_KEY, **extra},
    }


def client_sockets(port: int) -> int:
    """This process's TCP connections to ``port`` (the client side of them)."""
    return sum(
        1 for c in psutil.Process().net_connections(kind="tcp") if c.raddr and c.raddr.port == port
    )


def new_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """Threads alive now that were not alive in ``before``."""
    return [t for t in threading.enumerate() if t not in before and t.is_alive()]


def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused at once."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


@pytest.fixture(scope="module")
def fault_app() -> FaultApp:
    return FaultApp(max_stall=5.0)


@pytest.fixture(scope="module")
def fault_server(fault_app: FaultApp) -> Iterator[LoopbackServer]:
    with LoopbackServer(fault_app) as server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def tag(request: pytest.FixtureRequest) -> str:
    """A message text unique to this test, so the fault server can count its requests."""
    return f"{request.node.name}-{uuid.uuid4().hex[:8]}"
