"""The circuit breaker over HTTP: a failing target is skipped, probed once, and its state shown.

A call counts once against a target however many attempts it made; once the circuit is open the
server sees nothing from that target until the cool-down ends and one probe goes through.
"""

from __future__ import annotations

import threading

import pytest
from tests.servers.base import LoopbackServer
from tests.servers.faults import ANSWER, FaultApp

from llmos import APITimeoutError, CircuitBreaker, Client, RetryPolicy, ServerError
from llmos.routing import CircuitOpenError

from .conftest import AI21, OPENAI, TIMEOUT, FakeClock, provider_settings


def make_client(
    server: LoopbackServer, clock: FakeClock, breaker: CircuitBreaker, **kwargs: object
) -> Client:
    options: dict[str, object] = {"retry": RetryPolicy.none(), "timeout": TIMEOUT, **kwargs}
    return Client(
        env={},
        clock=clock,
        providers=provider_settings(server.url),
        circuit_breaker=breaker,
        **options,
    )  # type: ignore[arg-type]


def test_the_circuit_opens_after_n_failed_calls_skips_then_probes_once(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str, clock: FakeClock
) -> None:
    breaker = CircuitBreaker(failure_threshold=2, cooldown=30, clock=clock)
    fault_app.script(tag, *["503"] * 6, path=OPENAI.path)
    with make_client(
        fault_server,
        clock,
        breaker,
        fallbacks=[AI21.target],
        retry=RetryPolicy(max_attempts=3, jitter=0),
    ) as client:
        for _ in range(2):  # two calls, three attempts each: two failures, not six
            assert client.chat(OPENAI.target, tag).target == AI21.target
        assert fault_app.count(tag, OPENAI.path) == 6
        state = client.health()[OPENAI.target]
        assert state["status"] == "open" and state["consecutive_failures"] == 2
        assert state["last_error"] == "ServerError" and state["retry_in_s"] == 30
        clock.now += 10
        assert client.health()[OPENAI.target]["retry_in_s"] == 20
        assert client.health()[AI21.target]["status"] == "closed"

        for _ in range(3):  # skipped: not one request reaches the open target
            response = client.chat(OPENAI.target, tag)
            assert response.target == AI21.target
            assert response.attempts[0].skipped
            assert response.attempts[0].error_type == "CircuitOpenError"
        assert fault_app.count(tag, OPENAI.path) == 6

        clock.now += 21
        fault_app.script(
            tag, "503", path=OPENAI.path
        )  # the probe fails: open again, for another cool-down
        assert client.chat(OPENAI.target, tag, retry=RetryPolicy.none()).target == AI21.target
        assert fault_app.count(tag, OPENAI.path) == 7
        assert client.health()[OPENAI.target]["status"] == "open"
        client.chat(OPENAI.target, tag)
        assert fault_app.count(tag, OPENAI.path) == 7

        clock.now += 31  # this probe answers: the circuit closes
        response = client.chat(OPENAI.target, tag)
        assert response.target == OPENAI.target and response.text == ANSWER
        assert client.health()[OPENAI.target] == {
            "status": "closed",
            "consecutive_failures": 0,
            "last_error": None,
            "retry_in_s": None,
        }


def test_a_dead_target_stops_costing_its_timeout_once_open(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str, clock: FakeClock
) -> None:
    breaker = CircuitBreaker(failure_threshold=2, cooldown=60, clock=clock)
    fault_app.script(tag, *["stall"] * 10, path=OPENAI.path)
    with make_client(fault_server, clock, breaker, fallbacks=[AI21.target]) as client:
        for _ in range(6):
            response = client.chat(OPENAI.target, tag)
            assert response.target == AI21.target
        # Only the first two calls waited for the stalling server's read timeout.
        assert fault_app.count(tag, OPENAI.path) == 2
        errors = [a.error_type for a in response.attempts]
        assert errors == ["CircuitOpenError", None]


def test_an_open_circuit_on_a_lone_target_fails_fast_with_circuit_open_error(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str, clock: FakeClock
) -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown=60, clock=clock)
    fault_app.script(tag, "stall", "stall")
    with make_client(fault_server, clock, breaker) as client:
        with pytest.raises(APITimeoutError):
            client.chat(AI21.target, tag)
        with pytest.raises(CircuitOpenError) as info:
            client.chat(AI21.target, tag)
        assert info.value.provider == "ai21" and "circuit is open" in str(info.value)
        assert [a.skipped for a in info.value.attempts] == [True]
    assert fault_app.count(tag) == 1


def test_caller_errors_and_context_length_do_not_open_the_circuit(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str, clock: FakeClock
) -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown=60, clock=clock)
    with make_client(fault_server, clock, breaker) as client:
        for fault in ("400", "context", "400"):
            fault_app.script(tag, fault)
            with pytest.raises(Exception):
                client.chat(OPENAI.target, tag)
        assert client.health().get(OPENAI.target, {"status": "closed"})["status"] == "closed"
        assert client.chat(OPENAI.target, tag).text == ANSWER
    assert fault_app.count(tag) == 4


def test_half_open_lets_exactly_one_probe_through_under_concurrency(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str, clock: FakeClock
) -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown=30, clock=clock)
    with make_client(fault_server, clock, breaker, fallbacks=[AI21.target]) as client:
        fault_app.script(tag, "503", path=OPENAI.path)
        client.chat(OPENAI.target, tag)
        assert client.health()[OPENAI.target]["status"] == "open"
        clock.now += 31
        # The probe stalls (and fails); every other call meanwhile must skip the target.
        fault_app.script(tag, "stall", path=OPENAI.path)
        targets: list[str] = []
        lock = threading.Lock()

        def call() -> None:
            response = client.chat(OPENAI.target, tag)
            with lock:
                targets.append(response.target)

        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert targets == [AI21.target] * 8
    assert fault_app.count(tag, OPENAI.path) == 2  # the first failure, then one probe
    assert fault_app.count(tag, AI21.path) == 9


async def test_the_async_client_shares_the_breaker_state(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str, clock: FakeClock
) -> None:
    from llmos import AsyncClient

    breaker = CircuitBreaker(failure_threshold=2, cooldown=30, clock=clock)
    fault_app.script(tag, "503", "503", path=OPENAI.path)
    async with AsyncClient(
        env={},
        clock=clock,
        providers=provider_settings(fault_server.url),
        circuit_breaker=breaker,
        retry=RetryPolicy.none(),
        timeout=TIMEOUT,
        fallbacks=[AI21.target],
    ) as client:
        for _ in range(4):
            assert (await client.chat(OPENAI.target, tag)).target == AI21.target
        assert client.health()[OPENAI.target]["status"] == "open"
    assert fault_app.count(tag, OPENAI.path) == 2


def test_a_late_failure_from_a_call_in_flight_does_not_extend_the_cooldown(
    clock: FakeClock,
) -> None:
    # Two calls were sent before the circuit opened; the second fails 20 s after the first.
    breaker = CircuitBreaker(failure_threshold=1, cooldown=30, clock=clock)
    breaker.record_failure(OPENAI.target, ServerError("first"))
    clock.now += 20
    breaker.record_failure(OPENAI.target, ServerError("late"))
    state = breaker.snapshot()[OPENAI.target]
    assert state["status"] == "open" and state["retry_in_s"] == 10
    assert state["consecutive_failures"] == 2
    clock.now += 10
    assert breaker.allow(OPENAI.target)  # the probe, on time
    assert not breaker.allow(OPENAI.target)  # and only one
