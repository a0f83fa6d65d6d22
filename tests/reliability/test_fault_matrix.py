"""The fault matrix: every injected fault, through both transports, sync and async, chat and stream.

Per case the table says whether the fault is retried, how many requests the server must see, the
waits llmos must take (on a fake clock), the status and the exact llmos error class. After each
call the client is closed and no socket to the server and no thread may be left behind.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

import pytest
from tests.servers.base import LoopbackServer
from tests.servers.faults import ANSWER, FaultApp

from llmos import (
    APIConnectionError,
    APITimeoutError,
    AsyncClient,
    AuthenticationError,
    Client,
    ConflictError,
    ContextLengthError,
    InvalidRequestError,
    InvalidResponseError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
)
from llmos.errors import LLMOSError
from llmos.types import Attempt

from .conftest import (
    POLICY,
    ROUTES,
    TIMEOUT,
    FakeClock,
    Route,
    client_sockets,
    new_threads,
    provider_settings,
)

BACKOFF = (0.5, 1.0)  # initial_delay 0.5, multiplier 2, no jitter


@dataclass(frozen=True)
class Case:
    """One fault served on every request of a call, and what llmos must make of it."""

    fault: str
    error: type[LLMOSError]
    requests: int
    #: Waits before attempts 2, 3...; None for an HTTP-date Retry-After (checked by range).
    waits: tuple[float, ...] | None
    status: int | None
    modes: tuple[str, ...] = ("chat", "stream")
    #: The error comes after content reached the caller, so it is neither retried nor replayed.
    mid_stream: bool = False

    @property
    def retried(self) -> bool:
        return self.requests > 1


CASES = [
    Case("429s", RateLimitError, 3, (2.0, 2.0), 429),
    Case("429ms", RateLimitError, 3, (1.5, 1.5), 429),
    Case("429date", RateLimitError, 3, None, 429),
    Case("429cap", RateLimitError, 1, (), 429),
    Case("500", ServerError, 3, BACKOFF, 500),
    Case("502", ServerError, 3, BACKOFF, 502),
    Case("503", ServerError, 3, BACKOFF, 503),
    Case("503ra", ServerError, 3, (1.0, 1.0), 503),
    Case("504", ServerError, 3, BACKOFF, 504),
    Case("408", APITimeoutError, 3, BACKOFF, 408),
    Case("409", ConflictError, 3, BACKOFF, 409),
    Case("401", AuthenticationError, 1, (), 401),
    Case("400", InvalidRequestError, 1, (), 400),
    Case("quota", QuotaExceededError, 1, (), 429),
    Case("context", ContextLengthError, 1, (), 400),
    Case("noretry", ServerError, 1, (), 503),
    Case("forceretry", InvalidRequestError, 3, BACKOFF, 400),
    Case("reset", APIConnectionError, 3, BACKOFF, None),
    Case("stall", APITimeoutError, 3, BACKOFF, None),
    Case("malformed", InvalidResponseError, 3, BACKOFF, None),
    Case("html", ServerError, 3, BACKOFF, 502),
    Case("stallstream", APITimeoutError, 1, (), None, modes=("stream",), mid_stream=True),
    Case("truncated", InvalidResponseError, 1, (), None, modes=("stream",), mid_stream=True),
]

PERSISTENT = [
    pytest.param(case, mode, id=f"{case.fault}-{mode}") for case in CASES for mode in case.modes
]
TRANSIENT = [
    pytest.param(case, mode, id=f"{case.fault}-{mode}")
    for case in CASES
    for mode in case.modes
    if case.retried and not case.mid_stream
]
ROUTE_PARAMS = [pytest.param(r, id=r.provider) for r in ROUTES]


@dataclass
class Outcome:
    """What one call came to, and what it left behind."""

    text: str = ""
    error: LLMOSError | None = None
    attempts: list[Attempt] = field(default_factory=list)
    target: str | None = None
    sockets_left: int = 0
    threads_left: list[threading.Thread] = field(default_factory=list)


def run_sync(
    server: LoopbackServer, route: Route, mode: str, tag: str, clock: FakeClock
) -> Outcome:
    threads = set(threading.enumerate())
    sockets = client_sockets(server.port)
    outcome = Outcome()
    client = Client(
        env={}, clock=clock, providers=provider_settings(server.url), retry=POLICY, timeout=TIMEOUT
    )
    try:
        if mode == "chat":
            response = client.chat(route.target, tag)
            outcome.text, outcome.attempts, outcome.target = (
                response.text,
                response.attempts,
                response.target,
            )
        else:
            for event in client.stream(route.target, tag):
                outcome.text += event.delta
                if event.response is not None:
                    outcome.attempts = event.response.attempts
                    outcome.target = event.response.target
    except LLMOSError as exc:
        outcome.error, outcome.attempts = exc, exc.attempts
    finally:
        client.close()
    outcome.sockets_left = client_sockets(server.port) - sockets
    outcome.threads_left = new_threads(threads)
    return outcome


def run_async(
    server: LoopbackServer, route: Route, mode: str, tag: str, clock: FakeClock
) -> Outcome:
    """The same call on AsyncClient, in its own event loop (closed before threads are counted)."""
    threads = set(threading.enumerate())
    sockets = client_sockets(server.port)
    outcome = Outcome()

    async def scenario() -> None:
        client = AsyncClient(
            env={},
            clock=clock,
            providers=provider_settings(server.url),
            retry=POLICY,
            timeout=TIMEOUT,
        )
        try:
            if mode == "chat":
                response = await client.chat(route.target, tag)
                outcome.text, outcome.attempts = response.text, response.attempts
                outcome.target = response.target
            else:
                async for event in client.stream(route.target, tag):
                    outcome.text += event.delta
                    if event.response is not None:
                        outcome.attempts = event.response.attempts
                        outcome.target = event.response.target
        except LLMOSError as exc:
            outcome.error, outcome.attempts = exc, exc.attempts
        finally:
            await client.aclose()

    asyncio.run(scenario())
    outcome.sockets_left = client_sockets(server.port) - sockets
    outcome.threads_left = new_threads(threads)
    return outcome


def check_waits(expected: tuple[float, ...] | None, slept: list[float], count: int) -> None:
    if expected is None:  # Retry-After as an HTTP date 5 s ahead, at one-second resolution
        assert len(slept) == count
        assert all(3.0 < wait <= 5.0 for wait in slept), slept
    else:
        assert slept == pytest.approx(list(expected))


def check_persistent(
    case: Case, route: Route, outcome: Outcome, app: FaultApp, tag: str, clock: FakeClock
) -> None:
    assert outcome.sockets_left == 0, "a connection to the server is still open"
    assert outcome.threads_left == [], f"threads left running: {outcome.threads_left}"
    assert app.count(tag) == case.requests, "requests the server received"
    error = outcome.error
    assert error is not None, f"the call answered {outcome.text!r} instead of failing"
    assert type(error) is case.error, f"{type(error).__name__}: {error}"
    assert error.provider == route.provider
    if case.mid_stream:
        # Content reached the caller, so the stream fails where it stands: no retry, no replay.
        assert outcome.text and ANSWER.startswith(outcome.text)
        assert [a.ok for a in outcome.attempts] == [True]
        assert clock.slept == []
        return
    assert outcome.text == ""
    assert error.status_code == case.status
    check_waits(case.waits, clock.slept, case.requests - 1)
    attempts = outcome.attempts
    assert len(attempts) == case.requests
    assert [a.number for a in attempts] == list(range(1, case.requests + 1))
    assert {a.target for a in attempts} == {route.target}
    assert {a.error_type for a in attempts} == {case.error.__name__}
    assert {a.status_code for a in attempts} == {case.status}
    assert not any(a.ok for a in attempts)
    assert [a.waited_s for a in attempts[1:]] == pytest.approx(clock.slept)
    assert attempts[0].waited_s == 0.0


@pytest.mark.parametrize("route", ROUTE_PARAMS)
@pytest.mark.parametrize(("case", "mode"), PERSISTENT)
def test_a_persistent_fault(
    case: Case, mode: str, route: Route, fault_server: LoopbackServer, fault_app: FaultApp, tag: str
) -> None:
    clock = FakeClock()
    fault_app.script(tag, *[case.fault] * 3)
    outcome = run_sync(fault_server, route, mode, tag, clock)
    check_persistent(case, route, outcome, fault_app, tag, clock)
    if case.fault == "429cap":
        assert isinstance(outcome.error, RateLimitError)
        assert outcome.error.retry_after == 3600.0  # the ask, for the caller to schedule
    if case.fault == "html":
        assert outcome.error is not None and "HTML page (502 Bad Gateway)" in str(outcome.error)


@pytest.mark.parametrize("route", ROUTE_PARAMS)
@pytest.mark.parametrize(("case", "mode"), PERSISTENT)
def test_a_persistent_fault_async(
    case: Case, mode: str, route: Route, fault_server: LoopbackServer, fault_app: FaultApp, tag: str
) -> None:
    clock = FakeClock()
    fault_app.script(tag, *[case.fault] * 3)
    outcome = run_async(fault_server, route, mode, tag, clock)
    check_persistent(case, route, outcome, fault_app, tag, clock)


@pytest.mark.parametrize("route", ROUTE_PARAMS)
@pytest.mark.parametrize(("case", "mode"), TRANSIENT)
def test_a_transient_fault_is_retried_and_answered(
    case: Case, mode: str, route: Route, fault_server: LoopbackServer, fault_app: FaultApp, tag: str
) -> None:
    clock = FakeClock()
    fault_app.script(tag, case.fault)
    outcome = run_sync(fault_server, route, mode, tag, clock)
    assert outcome.error is None, f"{type(outcome.error).__name__}: {outcome.error}"
    assert outcome.text == ANSWER and outcome.target == route.target
    assert fault_app.count(tag) == 2
    check_waits(None if case.waits is None else case.waits[:1], clock.slept, 1)
    assert [(a.ok, a.error_type, a.status_code) for a in outcome.attempts] == [
        (False, case.error.__name__, case.status),
        (True, None, None),
    ]
    assert outcome.attempts[1].waited_s == pytest.approx(clock.slept[0])
    assert outcome.sockets_left == 0 and outcome.threads_left == []


@pytest.mark.parametrize("route", ROUTE_PARAMS)
@pytest.mark.parametrize("mode", ["chat", "stream"])
def test_a_healthy_call_is_one_request_and_leaves_nothing_open(
    mode: str, route: Route, fault_server: LoopbackServer, fault_app: FaultApp, tag: str
) -> None:
    clock = FakeClock()
    outcome = run_sync(fault_server, route, mode, tag, clock)
    assert outcome.error is None and outcome.text == ANSWER
    assert fault_app.count(tag) == 1 and clock.slept == []
    assert [a.ok for a in outcome.attempts] == [True]
    assert outcome.sockets_left == 0 and outcome.threads_left == []
