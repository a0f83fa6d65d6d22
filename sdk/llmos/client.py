"""Client and AsyncClient: the public entry points, two thin classes over one shared core."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from decimal import Decimal
from types import TracebackType
from typing import Any

from typing_extensions import Self, Unpack

from llmos._core import Call, ChatOptions, Core
from llmos.errors import InvalidRequestError, InvalidResponseError, LLMOSError
from llmos.messages import MessagesInput
from llmos.pricing import Reservation
from llmos.providers.base import Provider, ProviderSettings
from llmos.retry import Clock, RetryPolicy, acall_with_retries, call_with_retries
from llmos.routing import (
    CircuitBreaker,
    Target,
    counts_against_health,
    parse_target,
    scrub_context,
)
from llmos.streaming import AsyncChatStream, ChatStream, StreamAssembler
from llmos.timeouts import TimeoutInput
from llmos.types import (
    Attempt,
    ChatRequest,
    ChatResponse,
    CostEstimate,
    EmbeddingResponse,
    StreamEvent,
)

__all__ = ["AsyncClient", "Client"]


def _final_event(response: ChatResponse) -> StreamEvent:
    return StreamEvent.model_construct(
        type="final",
        delta="",
        tool_call=None,
        finish_reason=response.finish_reason,
        raw_finish_reason=response.raw_finish_reason,
        usage=response.usage,
        latency=response.latency,
        cost=response.cost,
        id=response.id,
        model=response.model,
        logprobs=None,
        response=response,
    )


def _check_inputs(inputs: Sequence[str] | str) -> list[str]:
    items = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(items, Sequence) or not items:
        raise InvalidRequestError(
            "inputs must be a string or a non-empty list of strings", field="inputs"
        )
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise InvalidRequestError(
                f"inputs[{i}] must be a string, got {type(item).__name__}", field=f"inputs[{i}]"
            )
    return list(items)


class _Base:
    """Constructor and read-only helpers shared by both clients."""

    def __init__(
        self,
        *,
        providers: Mapping[str, Mapping[str, Any] | ProviderSettings] | None = None,
        model: str | None = None,
        fallbacks: Sequence[str] | None = None,
        retry: RetryPolicy | None = None,
        timeout: TimeoutInput = None,
        budget_usd: float | Decimal | str | None = None,
        circuit_breaker: CircuitBreaker | None = None,
        compute_usd_per_hour: float | None = None,
        clock: Clock | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Set up a client; nothing is imported or connected until the first call.

        ``providers`` maps provider names to settings (api_key, base_url, ...); keys otherwise
        come from the environment (OPENAI_API_KEY, AI21_API_KEY, HF_TOKEN). ``model`` is the
        default target (else LLMOS_MODEL, else the embedded ``local:gemma-3-270m``).
        ``fallbacks`` are tried in order when a target fails for reasons not the caller's.
        ``clock`` replaces real time, for tests.
        """
        self._core = Core(
            providers=providers,
            model=model,
            fallbacks=fallbacks,
            retry=retry,
            timeout=timeout,
            budget_usd=budget_usd,
            circuit_breaker=circuit_breaker,
            clock=clock,
            compute_usd_per_hour=compute_usd_per_hour,
            env=env,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={str(self._core.default_target)!r})"

    @property
    def default_model(self) -> str:
        """The model used when a call names none."""
        return str(self._core.default_target)

    def provider(self, name: str) -> Provider:
        """The provider instance serving ``name`` (created on first use)."""
        return self._core.provider(name)

    def estimate(
        self, model: str | None, messages: MessagesInput, *, max_tokens: int | None = None
    ) -> CostEstimate:
        """What a call would cost, worst case and expected, before anything is sent."""
        return self._core.estimate(model, messages, max_tokens)

    def health(self) -> dict[str, dict[str, object]]:
        """Circuit-breaker state per target: closed, open (with seconds to retry) or half_open."""
        return self._core.health()

    def spend(self) -> dict[str, Any]:
        """What this client has spent, in total and by provider and model."""
        return self._core.ledger.report()


class Client(_Base):
    """The synchronous client: ``with Client() as c: c.chat("openai:gpt-4.1-mini", "Hi")``."""

    def chat(
        self, model: str | None, messages: MessagesInput, **options: Unpack[ChatOptions]
    ) -> ChatResponse:
        """Send a chat call and return the whole answer."""
        core = self._core
        call = core.prepare(model, messages, options)

        def on_target(target: Target, attempts: list[Attempt]) -> ChatResponse:
            provider, request = core.target_request(call, target, stream=False)
            reservation = core.reserve(call, target, provider, request)
            tokens = core.rate_tokens(request)

            def attempt() -> ChatResponse:
                core.throttle(call, provider, tokens)  # every request counts, retries too
                return provider.chat(request, core.context(call, provider, request.model))

            try:
                response = call_with_retries(
                    attempt,
                    call.retry,
                    deadline=call.deadline,
                    clock=core.clock,
                    on_attempt=core.attempt_hook(attempts, target),
                )
            except BaseException:
                core.release(reservation)
                raise
            return core.finish(call, target, response, reservation)

        return core.router.run(call.chain, on_target, call.attempts)

    def stream(
        self, model: str | None, messages: MessagesInput, **options: Unpack[ChatOptions]
    ) -> ChatStream:
        """Stream a chat answer; the request is validated now and sent on first iteration."""
        call = self._core.prepare(model, messages, options)
        return ChatStream(self._events(call))

    def _open(
        self, call: Call, target: Target, attempts: list[Attempt]
    ) -> tuple[Provider, ChatRequest, Reservation | None, StreamEvent, Iterator[StreamEvent]]:
        core = self._core
        provider, request = core.target_request(call, target, stream=True)
        reservation = core.reserve(call, target, provider, request)
        tokens = core.rate_tokens(request)

        def once() -> tuple[StreamEvent, Iterator[StreamEvent]]:
            core.throttle(call, provider, tokens)
            events = provider.stream(request, core.context(call, provider, request.model))
            try:
                return next(events), events
            except StopIteration:
                raise InvalidResponseError(
                    "the stream ended before any event", provider=provider.name, model=request.model
                ) from None
            except BaseException:
                _close(events)
                raise

        try:
            first, events = call_with_retries(
                once,
                call.retry,
                deadline=call.deadline,
                clock=core.clock,
                on_attempt=core.attempt_hook(attempts, target),
            )
        except BaseException:
            core.release(reservation)
            raise
        return provider, request, reservation, first, events

    def _events(self, call: Call) -> Iterator[StreamEvent]:
        core = self._core
        opened: dict[str, Target] = {}

        def on_target(target: Target, attempts: list[Attempt]) -> Any:
            result = self._open(call, target, attempts)
            opened["target"] = target
            return result

        provider, request, reservation, first, events = core.router.run(
            call.chain, on_target, call.attempts
        )
        target = opened["target"]
        assembler = StreamAssembler(
            provider=provider.name, model=request.model, target=str(target), started=call.started
        )
        settled = False
        try:
            for event in itertools.chain([first], events):
                if event.type != "final":
                    assembler.add(event)
                    yield event
                    core.check_deadline(call, provider.name, request.model)
                    continue
                response = assembler.finish(event)
                response = core.finish(
                    call,
                    target,
                    response,
                    reservation,
                    total_s=response.latency.total_s,
                    ttft_s=response.latency.ttft_s,
                )
                settled = True
                yield _final_event(response)
                return
            raise InvalidResponseError(
                "the stream ended without a final event",
                provider=provider.name,
                model=request.model,
            )
        except LLMOSError as error:
            if counts_against_health(error):
                core.breaker.record_failure(str(target), error)
            error.attempts = list(call.attempts)
            scrub_context(error)
            raise
        finally:
            _close(events)
            if not settled:
                core.settle(reservation, None)  # cut short: book the worst case, not zero

    def embed(
        self,
        model: str,
        inputs: Sequence[str] | str,
        *,
        retry: RetryPolicy | None = None,
        timeout: TimeoutInput = None,
    ) -> EmbeddingResponse:
        """Embeddings for one string or a list of strings, in input order."""
        core = self._core
        target = parse_target(model)
        items = _check_inputs(inputs)
        call = core.prepare_embedding(target, retry, timeout)
        started = time.perf_counter()

        def on_target(target: Target, attempts: list[Attempt]) -> EmbeddingResponse:
            provider = core.provider(target.provider)
            tokens = core.embedding_tokens(items)

            def attempt() -> EmbeddingResponse:
                core.throttle(call, provider, tokens)
                return provider.embed(target.model, items, core.context(call, provider))

            return call_with_retries(
                attempt,
                call.retry,
                deadline=call.deadline,
                clock=core.clock,
                on_attempt=core.attempt_hook(attempts, target),
            )

        result = core.router.run(call.chain, on_target, call.attempts)
        return core.finish_embedding(call, target, result, time.perf_counter() - started)

    def close(self) -> None:
        """Close every provider this client opened (connection pools, loaded models)."""
        for provider in self._core.open_providers():
            provider.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _close(events: object) -> None:
    close = getattr(events, "close", None)
    if close is not None:
        close()


class AsyncClient(_Base):
    """The asyncio client: ``async with AsyncClient() as c: await c.chat(...)``."""

    async def chat(
        self, model: str | None, messages: MessagesInput, **options: Unpack[ChatOptions]
    ) -> ChatResponse:
        """Send a chat call and return the whole answer."""
        core = self._core
        call = core.prepare(model, messages, options)

        async def on_target(target: Target, attempts: list[Attempt]) -> ChatResponse:
            provider, request = core.target_request(call, target, stream=False)
            reservation = core.reserve(call, target, provider, request)
            tokens = core.rate_tokens(request)

            async def attempt() -> ChatResponse:
                await core.athrottle(call, provider, tokens)
                return await provider.achat(request, core.context(call, provider, request.model))

            try:
                response = await acall_with_retries(
                    attempt,
                    call.retry,
                    deadline=call.deadline,
                    clock=core.clock,
                    on_attempt=core.attempt_hook(attempts, target),
                )
            except BaseException:
                core.release(reservation)
                raise
            return core.finish(call, target, response, reservation)

        return await core.router.arun(call.chain, on_target, call.attempts)

    def stream(
        self, model: str | None, messages: MessagesInput, **options: Unpack[ChatOptions]
    ) -> AsyncChatStream:
        """Stream a chat answer: ``async for event in client.stream(...)``."""
        call = self._core.prepare(model, messages, options)
        return AsyncChatStream(self._events(call))

    async def _open(
        self, call: Call, target: Target, attempts: list[Attempt]
    ) -> tuple[Provider, ChatRequest, Reservation | None, StreamEvent, AsyncIterator[StreamEvent]]:
        core = self._core
        provider, request = core.target_request(call, target, stream=True)
        reservation = core.reserve(call, target, provider, request)
        tokens = core.rate_tokens(request)

        async def once() -> tuple[StreamEvent, AsyncIterator[StreamEvent]]:
            await core.athrottle(call, provider, tokens)
            events = provider.astream(request, core.context(call, provider, request.model))
            try:
                return await events.__anext__(), events
            except StopAsyncIteration:
                raise InvalidResponseError(
                    "the stream ended before any event", provider=provider.name, model=request.model
                ) from None
            except BaseException:
                await _aclose(events)
                raise

        try:
            first, events = await acall_with_retries(
                once,
                call.retry,
                deadline=call.deadline,
                clock=core.clock,
                on_attempt=core.attempt_hook(attempts, target),
            )
        except BaseException:
            core.release(reservation)
            raise
        return provider, request, reservation, first, events

    async def _events(self, call: Call) -> AsyncIterator[StreamEvent]:
        core = self._core
        opened: dict[str, Target] = {}

        async def on_target(target: Target, attempts: list[Attempt]) -> Any:
            result = await self._open(call, target, attempts)
            opened["target"] = target
            return result

        provider, request, reservation, first, events = await core.router.arun(
            call.chain, on_target, call.attempts
        )
        target = opened["target"]
        assembler = StreamAssembler(
            provider=provider.name, model=request.model, target=str(target), started=call.started
        )
        settled = False
        try:
            event: StreamEvent | None = first
            while event is not None:
                if event.type == "final":
                    response = assembler.finish(event)
                    response = core.finish(
                        call,
                        target,
                        response,
                        reservation,
                        total_s=response.latency.total_s,
                        ttft_s=response.latency.ttft_s,
                    )
                    settled = True
                    yield _final_event(response)
                    return
                assembler.add(event)
                yield event
                core.check_deadline(call, provider.name, request.model)
                try:
                    event = await events.__anext__()
                except StopAsyncIteration:
                    event = None
            raise InvalidResponseError(
                "the stream ended without a final event",
                provider=provider.name,
                model=request.model,
            )
        except LLMOSError as error:
            if counts_against_health(error):
                core.breaker.record_failure(str(target), error)
            error.attempts = list(call.attempts)
            scrub_context(error)
            raise
        finally:
            await _aclose(events)
            if not settled:
                core.settle(reservation, None)

    async def embed(
        self,
        model: str,
        inputs: Sequence[str] | str,
        *,
        retry: RetryPolicy | None = None,
        timeout: TimeoutInput = None,
    ) -> EmbeddingResponse:
        """Embeddings for one string or a list of strings, in input order."""
        core = self._core
        target = parse_target(model)
        items = _check_inputs(inputs)
        call = core.prepare_embedding(target, retry, timeout)
        started = time.perf_counter()

        async def on_target(target: Target, attempts: list[Attempt]) -> EmbeddingResponse:
            provider = core.provider(target.provider)
            tokens = core.embedding_tokens(items)

            async def attempt() -> EmbeddingResponse:
                await core.athrottle(call, provider, tokens)
                return await provider.aembed(target.model, items, core.context(call, provider))

            return await acall_with_retries(
                attempt,
                call.retry,
                deadline=call.deadline,
                clock=core.clock,
                on_attempt=core.attempt_hook(attempts, target),
            )

        result = await core.router.arun(call.chain, on_target, call.attempts)
        return core.finish_embedding(call, target, result, time.perf_counter() - started)

    async def aclose(self) -> None:
        """Close every provider this client opened."""
        for provider in self._core.open_providers():
            await provider.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def _aclose(events: object) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()
