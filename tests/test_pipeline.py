"""The call pipeline (validation, retries, fallbacks, circuit breaker, streams) on a test provider.

ScriptedProvider is a real Provider subclass whose answers come from a script, so the pipeline
code runs unchanged; only the wire is replaced.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import ClassVar

import pytest
from tests.fakes import FakeClock

from llmos import (
    AllProvidersFailedError,
    AsyncClient,
    Capabilities,
    CircuitBreaker,
    Client,
    InvalidRequestError,
    Provider,
    RateLimitError,
    RetryPolicy,
    ServerError,
    UnsupportedFeatureError,
)
from llmos.errors import APIConnectionError, LLMOSError
from llmos.providers.base import CallContext
from llmos.types import AssistantMessage, ChatRequest, ChatResponse, StreamEvent, Usage


class ScriptedProvider(Provider):
    """Answers from ``script``: an exception instance is raised, anything else answers."""

    kind = "scripted"
    needs_key = False
    caps: ClassVar[Capabilities] = Capabilities(tools=False, needs_key=False)

    def __init__(self, name: str, settings: object) -> None:
        super().__init__(name, settings)  # type: ignore[arg-type]
        self.script: list[object] = []
        self.calls = 0
        self.stream_script: list[object] = []

    def capabilities(self, model: str) -> Capabilities:
        return self.caps

    def _next(self) -> object:
        self.calls += 1
        return self.script.pop(0) if self.script else "ok"

    def chat(self, request: ChatRequest, ctx: CallContext) -> ChatResponse:
        step = self._next()
        if isinstance(step, BaseException):
            raise step
        return ChatResponse(
            provider=self.name,
            model=request.model,
            target=f"{self.name}:{request.model}",
            message=AssistantMessage(content=f"{step} from {self.name}"),
            finish_reason="stop",
            usage=Usage(prompt_tokens=3, completion_tokens=2),
        )

    async def achat(self, request: ChatRequest, ctx: CallContext) -> ChatResponse:
        await asyncio.sleep(0)
        return self.chat(request, ctx)

    def stream(self, request: ChatRequest, ctx: CallContext) -> Iterator[StreamEvent]:
        self.calls += 1
        for step in list(self.stream_script) or ["Hel", "lo"]:
            if isinstance(step, BaseException):
                raise step
            yield StreamEvent(type="delta", delta=str(step))
        yield StreamEvent(type="final", finish_reason="stop", usage=Usage(completion_tokens=2))

    async def astream(self, request: ChatRequest, ctx: CallContext) -> AsyncIterator[StreamEvent]:
        for event in self.stream(request, ctx):
            await asyncio.sleep(0)
            yield event


def make_client(*names: str, cls: type = Client, **kwargs: object) -> Client:
    clock = kwargs.pop("clock", None) or FakeClock()
    client = cls(clock=clock, env={}, **kwargs)
    for name in names:
        client._core.registry.register(name, ScriptedProvider)
    return client


def provider(client: Client, name: str) -> ScriptedProvider:
    p = client.provider(name)
    assert isinstance(p, ScriptedProvider)
    return p


def test_retries_retryable_errors_then_answers_and_records_attempts() -> None:
    clock = FakeClock()
    client = make_client("a", clock=clock, retry=RetryPolicy(max_attempts=3, jitter=0))
    provider(client, "a").script = [
        ServerError("boom", status_code=503),
        RateLimitError("slow down", status_code=429, retry_after=2.0),
    ]
    response = client.chat("a:m", "hi")
    assert response.text == "ok from a"
    assert provider(client, "a").calls == 3
    assert [a.ok for a in response.attempts] == [False, False, True]
    assert [a.error_type for a in response.attempts] == ["ServerError", "RateLimitError", None]
    assert clock.slept == [0.5, 2.0]  # backoff, then the provider's Retry-After
    assert [a.waited_s for a in response.attempts] == [0.0, 0.5, 2.0]


def test_caller_errors_are_not_retried_or_fallen_back() -> None:
    client = make_client("a", "b", fallbacks=["b:m"])
    provider(client, "a").script = [InvalidRequestError("bad", status_code=400)]
    with pytest.raises(InvalidRequestError) as info:
        client.chat("a:m", "hi")
    assert provider(client, "a").calls == 1
    assert provider(client, "b").calls == 0
    assert len(info.value.attempts) == 1


def test_retry_after_over_the_cap_stops_at_once() -> None:
    clock = FakeClock()
    client = make_client("a", clock=clock, retry=RetryPolicy(max_attempts=5, max_retry_after=10))
    provider(client, "a").script = [RateLimitError("wait", status_code=429, retry_after=60.0)]
    with pytest.raises(RateLimitError) as info:
        client.chat("a:m", "hi")
    assert info.value.retry_after == 60.0
    assert provider(client, "a").calls == 1 and clock.slept == []


def test_fallback_moves_on_and_names_the_serving_target() -> None:
    client = make_client("a", "b", fallbacks=["b:m2"], retry=RetryPolicy(max_attempts=2))
    provider(client, "a").script = [APIConnectionError("down"), APIConnectionError("down")]
    response = client.chat("a:m", "hi")
    assert response.target == "b:m2" and response.provider == "b"
    assert [(a.target, a.ok) for a in response.attempts] == [
        ("a:m", False),
        ("a:m", False),
        ("b:m2", True),
    ]


def test_all_targets_failing_lists_every_error_and_attempt() -> None:
    client = make_client("a", "b", retry=RetryPolicy.none())
    provider(client, "a").script = [ServerError("a down", status_code=500)]
    provider(client, "b").script = [ServerError("b down", status_code=502)]
    with pytest.raises(AllProvidersFailedError) as info:
        client.chat("a:m", "hi", fallbacks=["b:m"])
    assert [str(e.message) for e in info.value.errors] == ["a down", "b down"]
    assert [a.target for a in info.value.attempts] == ["a:m", "b:m"]


def test_circuit_opens_after_repeated_failures_then_probes_once() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, cooldown=30, clock=clock)
    client = make_client(
        "a", "b", clock=clock, circuit_breaker=breaker, fallbacks=["b:m"], retry=RetryPolicy.none()
    )
    a = provider(client, "a")
    a.script = [ServerError("x")] * 2
    client.chat("a:m", "hi")
    client.chat("a:m", "hi")
    assert client.health()["a:m"]["status"] == "open"
    response = client.chat("a:m", "hi")  # skipped: no request reaches a
    assert a.calls == 2 and response.target == "b:m"
    assert response.attempts[0].skipped and response.attempts[0].error_type == "CircuitOpenError"
    clock.now += 31
    response = client.chat("a:m", "hi")  # half-open probe succeeds and closes the circuit
    assert a.calls == 3 and response.target == "a:m"
    assert client.health()["a:m"]["status"] == "closed"


def test_unsupported_feature_raises_on_primary_and_passes_over_fallbacks() -> None:
    client = make_client("a", "b", retry=RetryPolicy.none())
    tools = [{"type": "function", "function": {"name": "f"}}]
    with pytest.raises(UnsupportedFeatureError) as info:
        client.chat("a:m", "hi", tools=tools)
    assert info.value.feature == "tools" and provider(client, "a").calls == 0


def test_deadline_stops_retries_with_the_real_error() -> None:
    clock = FakeClock()
    client = make_client(
        "a", clock=clock, retry=RetryPolicy(max_attempts=10, initial_delay=4, jitter=0, deadline=5)
    )
    provider(client, "a").script = [ServerError("x")] * 10
    with pytest.raises(ServerError):
        client.chat("a:m", "hi")
    assert provider(client, "a").calls == 2  # waits of 4 s, then 8 s would pass the deadline
    assert clock.slept == [4.0]


def test_stream_events_then_final_with_whole_response() -> None:
    client = make_client("a")
    events = list(client.stream("a:m", "hi"))
    assert [e.delta for e in events[:-1]] == ["Hel", "lo"]
    final = events[-1]
    assert final.is_final and final.response is not None
    assert final.response.text == "Hello" and final.usage is not None


def test_stream_falls_back_before_first_content_only() -> None:
    client = make_client("a", "b", fallbacks=["b:m"], retry=RetryPolicy.none())
    provider(client, "a").stream_script = [ServerError("before any content")]
    events = list(client.stream("a:m", "hi"))
    assert events[-1].response is not None and events[-1].response.target == "b:m"

    client = make_client("a", "b", fallbacks=["b:m"], retry=RetryPolicy.none())
    provider(client, "a").stream_script = ["partial ", ServerError("mid-stream")]
    stream = client.stream("a:m", "hi")
    assert next(stream).delta == "partial "
    with pytest.raises(ServerError):
        next(stream)
    assert provider(client, "b").calls == 0


def test_rate_limit_waits_on_the_clock() -> None:
    clock = FakeClock()
    client = Client(clock=clock, env={}, providers={"a": {"kind": "a", "requests_per_minute": 60}})
    client._core.registry.register("a", ScriptedProvider, requests_per_minute=60)
    for _ in range(62):
        client.chat("a:m", "hi", max_tokens=5)
    # 60 requests fit the bucket; each further one waits a second.
    assert clock.slept == pytest.approx([1.0, 1.0])


def test_max_cost_refuses_unpriced_calls_before_sending() -> None:
    client = make_client("a")
    with pytest.raises(LLMOSError):
        client.chat("a:m", "hi", max_cost_usd=0.01)
    assert provider(client, "a").calls == 0


async def test_async_client_fallback_and_stream() -> None:
    client = make_client("a", "b", cls=AsyncClient, fallbacks=["b:m"], retry=RetryPolicy.none())
    a = client.provider("a")
    assert isinstance(a, ScriptedProvider)
    a.script = [ServerError("down")]
    response = await client.chat("a:m", "hi")
    assert response.target == "b:m"
    text = await client.stream("a:m", "hi").text()
    assert text == "Hello"
    await client.aclose()
