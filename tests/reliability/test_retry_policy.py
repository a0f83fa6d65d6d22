"""RetryPolicy over HTTP: per client and per call, its backoff shape, caps and jitter."""

from __future__ import annotations

import pytest
from tests.servers.base import LoopbackServer
from tests.servers.faults import ANSWER, FaultApp

from llmos import Client, ConfigurationError, RateLimitError, RetryPolicy, ServerError

from .conftest import AI21, OPENAI, TIMEOUT, FakeClock, provider_settings


def make_client(server: LoopbackServer, clock: FakeClock, retry: RetryPolicy) -> Client:
    return Client(
        env={}, clock=clock, providers=provider_settings(server.url), retry=retry, timeout=TIMEOUT
    )


def test_a_per_call_policy_replaces_the_clients(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str, clock: FakeClock
) -> None:
    with make_client(fault_server, clock, RetryPolicy(max_attempts=2, jitter=0)) as client:
        fault_app.script(tag, *["503"] * 10)
        with pytest.raises(ServerError):
            client.chat(OPENAI.target, tag)
        assert fault_app.count(tag) == 2
        with pytest.raises(ServerError) as info:
            client.chat(OPENAI.target, tag, retry=RetryPolicy(max_attempts=5, jitter=0))
        assert fault_app.count(tag) == 7 and len(info.value.attempts) == 5
        with pytest.raises(ServerError):
            client.chat(OPENAI.target, tag, retry=RetryPolicy.none())
        assert fault_app.count(tag) == 8


def test_backoff_grows_by_the_multiplier_up_to_max_delay(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str, clock: FakeClock
) -> None:
    policy = RetryPolicy(max_attempts=5, initial_delay=1, multiplier=3, max_delay=5, jitter=0)
    fault_app.script(tag, *["500"] * 4)
    with make_client(fault_server, clock, policy) as client:
        assert client.chat(AI21.target, tag).text == ANSWER
    assert clock.slept == [1.0, 3.0, 5.0, 5.0]
    assert fault_app.count(tag) == 5


def test_jitter_only_ever_shortens_a_wait(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str, clock: FakeClock
) -> None:
    policy = RetryPolicy(max_attempts=3, initial_delay=2, multiplier=2, jitter=0.5)
    with make_client(fault_server, clock, policy) as client:
        for _ in range(10):
            fault_app.script(tag, "502", "502")
            client.chat(OPENAI.target, tag)
    firsts, seconds = clock.slept[0::2], clock.slept[1::2]
    assert all(1.0 <= w <= 2.0 for w in firsts) and all(2.0 <= w <= 4.0 for w in seconds)
    assert len(set(clock.slept)) > 2  # it does vary


def test_a_retry_after_just_over_max_retry_after_ends_the_retries(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str, clock: FakeClock
) -> None:
    fault_app.script(tag, "429s", "429s")  # asks for 2 s
    with make_client(fault_server, clock, RetryPolicy(max_attempts=3, max_retry_after=1.5)) as c:
        with pytest.raises(RateLimitError) as info:
            c.chat(AI21.target, tag)
    assert info.value.retry_after == 2.0 and clock.slept == []
    assert fault_app.count(tag) == 1


def test_a_retry_after_overrides_the_backoff_even_above_max_delay(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str, clock: FakeClock
) -> None:
    fault_app.script(tag, "429s")
    policy = RetryPolicy(max_attempts=3, initial_delay=0.1, max_delay=0.5, jitter=0)
    with make_client(fault_server, clock, policy) as client:
        assert client.chat(OPENAI.target, tag).text == ANSWER
    assert clock.slept == [2.0]


@pytest.mark.parametrize(
    "bad",
    [
        {"max_attempts": 0},
        {"max_attempts": 2.5},
        {"max_attempts": True},
        {"initial_delay": -1},
        {"multiplier": 0.5},
        {"jitter": 1.5},
        {"deadline": 0},
        {"max_retry_after": float("nan")},
        {"multiplier": float("inf")},
    ],
)
def test_a_bad_policy_is_refused_with_the_field_named(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError) as info:
        RetryPolicy(**bad)  # type: ignore[arg-type]
    assert f"RetryPolicy.{next(iter(bad))}" in str(info.value)
