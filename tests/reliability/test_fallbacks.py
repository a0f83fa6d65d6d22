"""Fallback chains over HTTP: which failures move on, which raise, and what the caller is told.

The rule (routing.py): a target's failure moves the call to the next target when it is not the
caller's fault (connection, timeout, 429, quota, 5xx, unreadable answers, a missing or rejected
key, a context-length error); the caller's own errors raise at once. Streams fall back only
before their first content event.
"""

from __future__ import annotations

import logging

import pytest
from tests.servers.base import LoopbackServer
from tests.servers.faults import ANSWER, FaultApp

from llmos import (
    AllProvidersFailedError,
    APITimeoutError,
    AsyncClient,
    Client,
    ContextLengthError,
    InvalidRequestError,
    InvalidResponseError,
    RetryPolicy,
    ServerError,
)

from .conftest import (
    AI21,
    OPENAI,
    POLICY,
    TIMEOUT,
    FakeClock,
    Route,
    provider_settings,
)

PAIRS = [
    pytest.param(OPENAI, AI21, id="openai-then-ai21"),
    pytest.param(AI21, OPENAI, id="ai21-then-openai"),
]


def make_client(server: LoopbackServer, clock: FakeClock, **kwargs: object) -> Client:
    providers = provider_settings(server.url)
    providers["vllm"] = {"kind": "openai-compatible", "base_url": server.url + "/v1"}
    options: dict[str, object] = {"retry": POLICY, "timeout": TIMEOUT, **kwargs}
    return Client(env={}, clock=clock, providers=providers, **options)  # type: ignore[arg-type]


# Faults that move a call on, and the requests the primary gets before it does.
MOVES_ON = [
    ("429s", "RateLimitError", 3),
    ("429cap", "RateLimitError", 1),
    ("quota", "QuotaExceededError", 1),
    ("503", "ServerError", 3),
    ("html", "ServerError", 3),
    ("reset", "APIConnectionError", 3),
    ("stall", "APITimeoutError", 3),
    ("malformed", "InvalidResponseError", 3),
    ("401", "AuthenticationError", 1),
    ("context", "ContextLengthError", 1),
]


@pytest.mark.parametrize(("primary", "fallback"), PAIRS)
@pytest.mark.parametrize(("fault", "error_type", "requests"), MOVES_ON)
def test_a_failure_that_is_not_the_callers_fault_moves_to_the_next_target(
    fault: str,
    error_type: str,
    requests: int,
    primary: Route,
    fallback: Route,
    fault_server: LoopbackServer,
    fault_app: FaultApp,
    tag: str,
    clock: FakeClock,
) -> None:
    fault_app.script(tag, *[fault] * requests)
    with make_client(fault_server, clock, fallbacks=[fallback.target]) as client:
        response = client.chat(primary.target, tag)
    assert response.text == ANSWER
    assert response.target == fallback.target and response.provider == fallback.provider
    assert fault_app.count(tag, primary.path) == requests
    assert fault_app.count(tag, fallback.path) == 1
    assert [(a.target, a.error_type) for a in response.attempts] == [
        *[(primary.target, error_type)] * requests,
        (fallback.target, None),
    ]


@pytest.mark.parametrize(("primary", "fallback"), PAIRS)
@pytest.mark.parametrize(("fault", "requests"), [("400", 1), ("forceretry", 3)])
def test_the_callers_own_error_raises_at_once_without_falling_back(
    fault: str,
    requests: int,
    primary: Route,
    fallback: Route,
    fault_server: LoopbackServer,
    fault_app: FaultApp,
    tag: str,
    clock: FakeClock,
) -> None:
    fault_app.script(tag, *[fault] * requests)
    with (
        make_client(fault_server, clock, fallbacks=[fallback.target]) as client,
        pytest.raises(InvalidRequestError) as info,
    ):
        client.chat(primary.target, tag)
    assert type(info.value) is InvalidRequestError
    assert fault_app.count(tag, primary.path) == requests  # x-should-retry: true is honoured
    assert fault_app.count(tag, fallback.path) == 0
    assert len(info.value.attempts) == requests


def test_context_length_moves_on_without_retrying_or_hurting_the_targets_health(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str, clock: FakeClock
) -> None:
    fault_app.script(tag, "context")
    with make_client(fault_server, clock) as client:
        response = client.chat(OPENAI.target, tag, fallbacks=[AI21.target])
        assert response.target == AI21.target
        assert fault_app.count(tag, OPENAI.path) == 1
        # The request was too long, not the target unwell: its circuit counts nothing.
        assert client.health().get(OPENAI.target, {}).get("consecutive_failures", 0) == 0
        fault_app.script(tag, "context")
        with pytest.raises(ContextLengthError) as info:  # alone, it raises at once
            client.chat(OPENAI.target, tag, fallbacks=[])
        assert fault_app.count(tag, OPENAI.path) == 2
        assert info.value.status_code == 400 and len(info.value.attempts) == 1


def test_a_missing_key_moves_on_and_sends_nothing(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str, clock: FakeClock
) -> None:
    providers = provider_settings(fault_server.url)
    del providers["openai"]["api_key"]
    with Client(env={}, clock=clock, providers=providers, retry=POLICY, timeout=TIMEOUT) as client:
        response = client.chat(OPENAI.target, tag, fallbacks=[AI21.target])
        assert response.target == AI21.target
        assert fault_app.count(tag, OPENAI.path) == 0
        first = response.attempts[0]
        assert (first.target, first.error_type) == (OPENAI.target, "MissingAPIKeyError")
        assert "OPENAI_API_KEY" in (first.message or "")
        assert client.health().get(OPENAI.target, {}).get("consecutive_failures", 0) == 0


def test_when_every_target_fails_the_error_lists_every_attempt_in_order(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str, clock: FakeClock
) -> None:
    fault_app.script(tag, *["503"] * 9)
    chain = [AI21.target, "vllm:served-model"]
    with make_client(fault_server, clock) as client, pytest.raises(AllProvidersFailedError) as info:
        client.chat(OPENAI.target, tag, fallbacks=chain)
    error = info.value
    assert [type(e) for e in error.errors] == [ServerError] * 3
    assert [e.provider for e in error.errors] == ["openai", "ai21", "vllm"]
    targets = [a.target for a in error.attempts]
    assert targets == [OPENAI.target] * 3 + [AI21.target] * 3 + ["vllm:served-model"] * 3
    assert [a.number for a in error.attempts] == [1, 2, 3] * 3
    assert all(a.status_code == 503 and not a.ok for a in error.attempts)
    text = str(error)
    assert "all 3 targets failed" in text and text.count("ServerError") == 3
    assert fault_app.count(tag) == 9


def test_per_call_fallbacks_replace_the_clients(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str, clock: FakeClock
) -> None:
    with make_client(fault_server, clock, fallbacks=[AI21.target]) as client:
        fault_app.script(tag, "503")
        response = client.chat(OPENAI.target, tag, retry=RetryPolicy.none())
        assert response.target == AI21.target  # the client's chain
        fault_app.script(tag, "503")
        response = client.chat(
            OPENAI.target, tag, retry=RetryPolicy.none(), fallbacks=["vllm:served-model"]
        )
        assert response.target == "vllm:served-model"  # the call's chain instead
        fault_app.script(tag, "503")
        with pytest.raises(ServerError):  # an empty chain means no fallback at all
            client.chat(OPENAI.target, tag, retry=RetryPolicy.none(), fallbacks=[])
    assert fault_app.count(tag, AI21.path) == 1


def test_the_first_fallback_to_each_target_logs_one_warning(
    fault_server: LoopbackServer,
    fault_app: FaultApp,
    tag: str,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="llmos")
    with make_client(
        fault_server, clock, fallbacks=[AI21.target, "vllm:served-model"], retry=RetryPolicy.none()
    ) as client:
        for _ in range(3):
            fault_app.script(tag, "503")
            assert client.chat(OPENAI.target, tag).target == AI21.target
        fault_app.script(tag, "503", "503")
        assert client.chat(OPENAI.target, tag).target == "vllm:served-model"
    warnings = [r.getMessage() for r in caplog.records if "falling back" in r.getMessage()]
    assert len(warnings) == 2
    assert warnings[0].startswith("falling back to ai21:jamba-mini after ServerError")
    assert warnings[1].startswith("falling back to vllm:served-model")


@pytest.mark.parametrize(("primary", "fallback"), PAIRS)
@pytest.mark.parametrize("fault", ["503", "reset", "stall", "malformed"])
def test_a_stream_falls_back_when_it_fails_before_any_content(
    fault: str,
    primary: Route,
    fallback: Route,
    fault_server: LoopbackServer,
    fault_app: FaultApp,
    tag: str,
    clock: FakeClock,
) -> None:
    fault_app.script(tag, fault)
    with make_client(
        fault_server, clock, fallbacks=[fallback.target], retry=RetryPolicy.none()
    ) as client:
        events = list(client.stream(primary.target, tag))
    assert "".join(e.delta for e in events) == ANSWER
    final = events[-1].response
    assert final is not None and final.target == fallback.target
    assert [a.ok for a in final.attempts] == [False, True]
    assert fault_app.count(tag, fallback.path) == 1


@pytest.mark.parametrize(("primary", "fallback"), PAIRS)
@pytest.mark.parametrize(
    ("fault", "error"), [("stallstream", APITimeoutError), ("truncated", InvalidResponseError)]
)
def test_a_stream_never_falls_back_after_content_reached_the_caller(
    fault: str,
    error: type[Exception],
    primary: Route,
    fallback: Route,
    fault_server: LoopbackServer,
    fault_app: FaultApp,
    tag: str,
    clock: FakeClock,
) -> None:
    fault_app.script(tag, fault)
    received = ""
    with (
        make_client(fault_server, clock, fallbacks=[fallback.target]) as client,
        pytest.raises(error) as info,
    ):
        for event in client.stream(primary.target, tag):
            received += event.delta
    assert received and ANSWER.startswith(received) and received != ANSWER
    assert fault_app.count(tag, primary.path) == 1  # neither retried...
    assert fault_app.count(tag, fallback.path) == 0  # ...nor replayed elsewhere
    assert getattr(info.value, "provider", None) == primary.provider


async def test_the_async_client_falls_back_the_same_way(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str, clock: FakeClock
) -> None:
    fault_app.script(tag, "503", "503", "503")
    async with AsyncClient(
        env={},
        clock=clock,
        providers=provider_settings(fault_server.url),
        retry=POLICY,
        timeout=TIMEOUT,
        fallbacks=[AI21.target],
    ) as client:
        response = await client.chat(OPENAI.target, tag)
        assert response.target == AI21.target and response.text == ANSWER
        fault_app.script(tag, "503")  # the stream's first attempt fails; its retry answers
        text = await client.stream(OPENAI.target, tag).text()
        assert text == ANSWER
    assert fault_app.count(tag, OPENAI.path) == 5
    assert fault_app.count(tag, AI21.path) == 1
    assert clock.slept == [0.5, 1.0, 0.5]
