"""Timeouts and deadlines: connect, read and total, per client and per call.

Real stalls here are short (a fraction of a second); backoff waits run on a clock that skips
them but counts them towards the deadline (WallClock), so no test sleeps through a backoff.
The only wall-clock bounds asserted are several times the deadline: what they catch is a call
that ignores its deadline and waits out a multi-second read timeout or retry schedule.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest
from tests.servers.base import LoopbackServer
from tests.servers.faults import ANSWER, FaultApp

from llmos import (
    AllProvidersFailedError,
    APITimeoutError,
    AsyncClient,
    Client,
    RetryPolicy,
    ServerError,
    Timeout,
)

from .conftest import (
    AI21,
    OPENAI,
    READ_TIMEOUT,
    ROUTES,
    FakeClock,
    Route,
    WallClock,
    provider_settings,
)

ROUTE_PARAMS = [pytest.param(r, id=r.provider) for r in ROUTES]


@pytest.fixture(autouse=True, scope="module")
def _transports_imported() -> None:
    """Import the HTTP stacks up front: a first import inside a call eats into its deadline."""
    import httpx  # noqa: F401
    import openai  # noqa: F401


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A listening port whose accept queue is full: new connections hang in the handshake."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = int(server.getsockname()[1])
    fillers = []
    for _ in range(3):
        sock = socket.socket()
        sock.setblocking(False)
        try:
            sock.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(sock)
    time.sleep(0.05)
    yield port
    for sock in fillers:
        sock.close()
    server.close()


@pytest.mark.parametrize("route", ROUTE_PARAMS)
def test_the_connect_timeout_bounds_a_handshake_that_never_completes(
    route: Route, full_backlog: int, clock: FakeClock
) -> None:
    url = f"http://127.0.0.1:{full_backlog}"
    with Client(
        env={},
        clock=clock,
        providers=provider_settings(url),
        retry=RetryPolicy.none(),
        timeout=Timeout(connect=0.2, read=30),
    ) as client:
        with pytest.raises(APITimeoutError) as info:
            client.chat(route.target, "hello")
    assert info.value.provider == route.provider


@pytest.mark.parametrize("route", ROUTE_PARAMS)
@pytest.mark.parametrize("mode", ["chat", "stream"])
def test_a_per_call_read_timeout_overrides_the_clients(
    route: Route,
    mode: str,
    fault_server: LoopbackServer,
    fault_app: FaultApp,
    tag: str,
    clock: FakeClock,
) -> None:
    # The client would wait 30 s; the server gives up after 5 s with a bare 500. Only the
    # call's own 0.25 s read timeout turns the stall into an APITimeoutError.
    fault_app.script(tag, "stall" if mode == "chat" else "stallstream")
    with Client(
        env={},
        clock=clock,
        providers=provider_settings(fault_server.url),
        retry=RetryPolicy.none(),
        timeout=Timeout(read=30),
    ) as client:
        with pytest.raises(APITimeoutError):
            if mode == "chat":
                client.chat(route.target, tag, timeout=Timeout(read=READ_TIMEOUT))
            else:
                for _ in client.stream(route.target, tag, timeout=Timeout(read=READ_TIMEOUT)):
                    pass
    assert fault_app.count(tag) == 1


@pytest.mark.parametrize("route", ROUTE_PARAMS)
def test_a_provider_setting_read_timeout_applies_to_that_provider_only(
    route: Route, fault_server: LoopbackServer, fault_app: FaultApp, tag: str, clock: FakeClock
) -> None:
    providers = provider_settings(fault_server.url)
    providers[route.provider]["timeout"] = {"read": READ_TIMEOUT}
    fault_app.script(tag, "stall")
    with (
        Client(
            env={},
            clock=clock,
            providers=providers,
            retry=RetryPolicy.none(),
            timeout=Timeout(read=30),
        ) as client,
        pytest.raises(APITimeoutError),
    ):
        client.chat(route.target, tag)


def test_no_call_outlives_its_deadline_across_retries_and_fallbacks(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str
) -> None:
    # Every target stalls; reads would wait 3 s each, five attempts per target, three targets.
    fault_app.script(tag, *["stall"] * 15)
    providers = provider_settings(fault_server.url)
    providers["vllm"] = {"kind": "openai-compatible", "base_url": fault_server.url + "/v1"}
    clock = WallClock()
    with Client(
        env={},
        clock=clock,
        providers=providers,
        retry=RetryPolicy(max_attempts=5, initial_delay=0.01, jitter=0),
        timeout=Timeout(connect=1, read=3.0, total=0.5),
        fallbacks=[AI21.target, "vllm:served-model"],
    ) as client:
        started = time.monotonic()
        with pytest.raises(AllProvidersFailedError) as info:
            client.chat(OPENAI.target, tag)
        elapsed = time.monotonic() - started
        # The first read was cut to the deadline; nothing else was sent after it passed.
        assert fault_app.count(tag) == 1
        assert elapsed < 2.5, f"the call ran {elapsed:.2f} s past a 0.5 s deadline"
        error = info.value
        assert all(isinstance(e, APITimeoutError) for e in error.errors)
        assert error.errors[0].provider == "openai"
        # Targets never contacted were not tried, and their health is untouched.
        assert [a.target for a in error.attempts if not a.skipped] == [OPENAI.target]
        health = client.health()
        assert AI21.target not in health or health[AI21.target]["consecutive_failures"] == 0
        assert "vllm:served-model" not in health or (
            health["vllm:served-model"]["consecutive_failures"] == 0
        )


def test_the_retry_deadline_counts_backoff_waits_and_leaves_the_rest_to_fallbacks(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str
) -> None:
    fault_app.script(tag, *["503"] * 10)
    clock = WallClock()
    policy = RetryPolicy(max_attempts=10, initial_delay=4, multiplier=2, jitter=0, deadline=10)
    with (
        Client(
            env={},
            clock=clock,
            providers=provider_settings(fault_server.url),
            retry=policy,
            fallbacks=[AI21.target],
        ) as client,
        pytest.raises(AllProvidersFailedError) as info,
    ):
        client.chat(OPENAI.target, tag)
    # openai: fail, wait 4, fail; the next wait (8) would pass the deadline, so ai21 gets the
    # ~6 s left: fail, wait 4, fail; another 8 s wait would pass it again.
    assert fault_app.count(tag, OPENAI.path) == 2
    assert fault_app.count(tag, AI21.path) == 2
    assert clock.slept == [4.0, 4.0]
    assert [type(e) for e in info.value.errors] == [ServerError, ServerError]


def test_a_stream_cannot_outlive_its_deadline_after_the_first_token(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str
) -> None:
    fault_app.script(tag, "stallstream")
    received = ""
    with Client(
        env={},
        clock=WallClock(),
        providers=provider_settings(fault_server.url),
        timeout=Timeout(read=3.0, total=0.5),
        fallbacks=[AI21.target],
    ) as client:
        started = time.monotonic()
        with pytest.raises(APITimeoutError):
            for event in client.stream(OPENAI.target, tag):
                received += event.delta
        elapsed = time.monotonic() - started
    assert received == "The"
    assert elapsed < 2.5
    assert fault_app.count(tag, AI21.path) == 0


def test_a_number_as_timeout_bounds_both_the_read_and_the_whole_call(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str
) -> None:
    fault_app.script(tag, *["stall"] * 5)
    with Client(
        env={},
        clock=WallClock(),
        providers=provider_settings(fault_server.url),
        retry=RetryPolicy(max_attempts=5, initial_delay=0.01, jitter=0),
    ) as client:
        started = time.monotonic()
        with pytest.raises(APITimeoutError):
            client.chat(AI21.target, tag, timeout=0.4)
        elapsed = time.monotonic() - started
    assert fault_app.count(tag) == 1
    assert elapsed < 2.5


async def test_the_async_client_honours_the_deadline_the_same_way(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str
) -> None:
    fault_app.script(tag, *["stall"] * 10)
    async with AsyncClient(
        env={},
        clock=WallClock(),
        providers=provider_settings(fault_server.url),
        retry=RetryPolicy(max_attempts=5, initial_delay=0.01, jitter=0),
        timeout=Timeout(read=3.0, total=0.5),
        fallbacks=[AI21.target],
    ) as client:
        started = time.monotonic()
        with pytest.raises(AllProvidersFailedError):
            await asyncio.wait_for(client.chat(OPENAI.target, tag), timeout=10)
        elapsed = time.monotonic() - started
    assert fault_app.count(tag) == 1
    assert elapsed < 2.5


def test_a_healthy_call_is_unaffected_by_a_generous_deadline(
    fault_server: LoopbackServer, tag: str
) -> None:
    with Client(
        env={},
        clock=WallClock(),
        providers=provider_settings(fault_server.url),
        timeout=Timeout(total=30),
    ) as client:
        assert client.chat(OPENAI.target, tag).text == ANSWER
        assert client.stream(AI21.target, tag).text() == ANSWER
