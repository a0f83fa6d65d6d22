"""Assembling streamed events into a response, and the stream objects callers iterate.

Providers yield content events (text deltas and tool-call fragments) and then one final event
with finish_reason and usage. The client passes content events through as they come and replaces
the provider's final event with a complete one: latency, cost and the assembled ChatResponse.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import Any

from llmos.errors import InvalidResponseError
from llmos.types import (
    AssistantMessage,
    ChatResponse,
    FinishReason,
    Latency,
    StreamEvent,
    TokenLogprob,
    ToolCall,
    Usage,
)

__all__ = ["AsyncChatStream", "ChatStream", "StreamAssembler"]


class StreamAssembler:
    """Collects content events and timing, and builds the final ChatResponse of a stream."""

    def __init__(self, *, provider: str, model: str, target: str, started: float) -> None:
        self.provider = provider
        self.model = model
        self.target = target
        self.started = started
        self.first_token_at: float | None = None
        self.text: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.logprobs: list[TokenLogprob] = []
        self.events = 0

    def add(self, event: StreamEvent) -> None:
        """Take in one content event."""
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        self.events += 1
        if event.delta:
            self.text.append(event.delta)
        if event.logprobs:
            self.logprobs.extend(event.logprobs)
        if event.tool_call is not None:
            frag = event.tool_call
            call = self.calls.setdefault(frag.index, {"id": None, "name": None, "arguments": []})
            if frag.id:
                call["id"] = frag.id
            if frag.name:
                call["name"] = frag.name
            call["arguments"].append(frag.arguments)

    def tool_calls(self) -> list[ToolCall]:
        """The tool calls assembled from their fragments, in index order."""
        result = []
        for index in sorted(self.calls):
            call = self.calls[index]
            if not call["name"]:
                raise InvalidResponseError(
                    f"streamed tool call {index} never received its function name",
                    provider=self.provider,
                    model=self.model,
                )
            result.append(
                ToolCall(
                    id=call["id"] or f"call_{index}",
                    name=call["name"],
                    arguments="".join(call["arguments"]) or "{}",
                )
            )
        return result

    def finish(self, final: StreamEvent) -> ChatResponse:
        """The complete response, once the provider's final event has arrived."""
        now = time.perf_counter()
        ttft = None if self.first_token_at is None else self.first_token_at - self.started
        calls = self.tool_calls()
        finish_reason: FinishReason = final.finish_reason or ("tool_calls" if calls else "stop")
        return ChatResponse.model_construct(
            id=final.id,
            provider=self.provider,
            model=final.model or self.model,
            target=self.target,
            message=AssistantMessage(
                content="".join(self.text) if self.text or not calls else None, tool_calls=calls
            ),
            finish_reason=finish_reason,
            raw_finish_reason=final.raw_finish_reason,
            usage=final.usage or Usage(source="missing"),
            latency=Latency(
                total_s=now - self.started,
                ttft_s=ttft,
                # Providers that queue calls (the local model lock) report the wait here.
                queued_s=final.latency.queued_s if final.latency is not None else None,
            ),
            cost=None,
            attempts=[],
            logprobs=self.logprobs or final.logprobs,
            parsed=None,
            parse_error=None,
        )


class ChatStream:
    """A streamed chat answer: iterate it for events; the last one carries the whole response.

    Use it as a context manager (or call :meth:`close`) to release the connection early.
    """

    def __init__(self, events: Iterator[StreamEvent], on_close: Callable[[], None] | None = None):
        self._events = events
        self._on_close = on_close
        self.response: ChatResponse | None = None

    def __iter__(self) -> Iterator[StreamEvent]:
        return self

    def __next__(self) -> StreamEvent:
        event = next(self._events)
        if event.response is not None:
            self.response = event.response
        return event

    def text(self) -> str:
        """Consume the rest of the stream and return the whole text."""
        for _ in self:
            pass
        return self.response.text if self.response is not None else ""

    def close(self) -> None:
        """Stop the stream and release its connection."""
        close = getattr(self._events, "close", None)
        if close is not None:
            close()
        if self._on_close is not None:
            self._on_close()
            self._on_close = None

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncChatStream:
    """Async twin of :class:`ChatStream`: ``async for event in client.stream(...)``."""

    def __init__(self, events: AsyncIterator[StreamEvent]):
        self._events = events
        self.response: ChatResponse | None = None

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self

    async def __anext__(self) -> StreamEvent:
        event = await self._events.__anext__()
        if event.response is not None:
            self.response = event.response
        return event

    async def text(self) -> str:
        """Consume the rest of the stream and return the whole text."""
        async for _ in self:
            pass
        return self.response.text if self.response is not None else ""

    async def aclose(self) -> None:
        """Stop the stream and release its connection."""
        aclose = getattr(self._events, "aclose", None)
        if aclose is not None:
            await aclose()

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
