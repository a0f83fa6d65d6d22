"""Chat Completions wire format <-> llmos types, for every provider that speaks it via the SDK.

Requests become plain dicts for ``client.chat.completions.create(**body)``; responses and stream
chunks are the SDK's objects, which it builds *without* validation, so every read here is
lenient: missing or None details count as zero, odd shapes raise and are reported by the caller
as :class:`~llmos.errors.InvalidResponseError`. Outputs use the plain constructors: with nested
models passed as instances, pydantic's checks cost about a microsecond per object, less than
``model_construct`` (whose default-factory handling is slow), and they catch a server's odd types.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from llmos.errors import InvalidResponseError
from llmos.types import (
    AssistantMessage,
    ChatRequest,
    ChatResponse,
    FinishReason,
    Message,
    StreamEvent,
    TokenLogprob,
    ToolCall,
    ToolCallDelta,
    TopLogprob,
    Usage,
)

__all__ = [
    "StreamState",
    "chat_response",
    "logprobs_from",
    "normalise_finish_reason",
    "request_body",
    "usage_from",
]

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "function_call": "tool_calls",  # the deprecated functions API
    "eos_token": "stop",  # TGI and servers built on it
    "eos": "stop",
    "stop_sequence": "stop",
    "endoftext": "stop",
    "end_turn": "stop",
    "max_tokens": "length",
    "max_output_tokens": "length",
    "model_length": "length",
    "tool_use": "tool_calls",
}


def normalise_finish_reason(raw: str | None, *, has_tool_calls: bool) -> FinishReason:
    """One of stop, length, tool_calls, content_filter for any server's finish reason."""
    if raw:
        known = _FINISH.get(raw.lower())
        if known is not None:
            return known
    return "tool_calls" if has_tool_calls else "stop"


# --------------------------------------------------------------------------- requests


def _message(message: Message) -> dict[str, Any]:
    if message.role == "assistant":
        out: dict[str, Any] = {"role": "assistant", "content": message.content}
        if message.tool_calls:
            out["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in message.tool_calls
            ]
    elif message.role == "tool":
        # OpenAI's tool messages take no name.
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    else:
        out = {"role": message.role, "content": message.content}
    if message.name:
        out["name"] = message.name
    return out


def request_body(
    request: ChatRequest,
    *,
    max_tokens_param: str,
    response_format: dict[str, Any] | None,
) -> dict[str, Any]:
    """The Chat Completions body of ``request`` (without stream and transport options)."""
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [_message(m) for m in request.messages],
    }
    if request.max_tokens is not None:
        body[max_tokens_param] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop"] = request.stop
    if request.seed is not None:
        body["seed"] = request.seed
    if request.tools:
        tools = []
        for tool in request.tools:
            function: dict[str, Any] = {"name": tool.name, "parameters": tool.parameters}
            if tool.description is not None:
                function["description"] = tool.description
            if tool.strict is not None:
                function["strict"] = tool.strict
            tools.append({"type": "function", "function": function})
        body["tools"] = tools
    choice = request.tool_choice
    if choice is not None:
        body["tool_choice"] = (
            choice
            if isinstance(choice, str)
            else {"type": "function", "function": {"name": choice.name}}
        )
    if response_format is not None:
        body["response_format"] = response_format
    if request.logprobs:
        body["logprobs"] = True
        if request.top_logprobs is not None:
            body["top_logprobs"] = request.top_logprobs
    return body


# --------------------------------------------------------------------------- responses


def _count(obj: Any, name: str) -> int:
    value = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return 0


def usage_from(usage: Any) -> Usage:
    """llmos Usage from a Chat Completions ``usage`` object (None: usage is missing)."""
    if usage is None:
        return Usage(source="missing")
    prompt = getattr(usage, "prompt_tokens_details", None)
    completion = getattr(usage, "completion_tokens_details", None)
    return Usage(
        prompt_tokens=_count(usage, "prompt_tokens"),
        completion_tokens=_count(usage, "completion_tokens"),
        cached_tokens=_count(prompt, "cached_tokens"),
        cache_write_tokens=_count(prompt, "cache_write_tokens"),
        reasoning_tokens=_count(completion, "reasoning_tokens"),
        source="provider",
    )


def logprobs_from(logprobs: Any) -> list[TokenLogprob] | None:
    """Token logprobs from a choice's ``logprobs`` (None when the server sent none)."""
    content = getattr(logprobs, "content", None) if logprobs is not None else None
    if not content:
        return None
    return [
        TokenLogprob(
            token=str(item.token),
            logprob=float(item.logprob),
            top_logprobs=[
                TopLogprob(token=str(alt.token), logprob=float(alt.logprob))
                for alt in (item.top_logprobs or ())
            ],
        )
        for item in content
    ]


def _text(content: Any) -> str | None:
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):  # some servers answer with a list of text parts
        return "".join(
            str(p.get("text", "")) if isinstance(p, Mapping) else str(p) for p in content
        )
    raise TypeError(f"message content is a {type(content).__name__}, not text")


def chat_response(completion: Any, *, provider: str, target: str, model: str) -> ChatResponse:
    """A ChatResponse from the SDK's ChatCompletion; raises on shapes it cannot read."""
    choices = getattr(completion, "choices", None)
    if not choices:
        what = "non-JSON text" if isinstance(completion, (str, bytes)) else "no choices"
        raise InvalidResponseError(
            f"the server answered with {what} instead of a chat completion",
            provider=provider,
            model=model,
        )
    choice = choices[0]
    message = choice.message
    calls = [
        ToolCall(
            id=str(call.id or f"call_{i}"),
            name=str(call.function.name),
            arguments=call.function.arguments or "{}",
            type="function",
        )
        for i, call in enumerate(message.tool_calls or ())
    ]
    legacy = getattr(message, "function_call", None)
    if legacy is not None and not calls:
        calls = [
            ToolCall(
                id="call_0",
                name=str(legacy.name),
                arguments=legacy.arguments or "{}",
                type="function",
            )
        ]
    content = _text(message.content)
    raw = choice.finish_reason
    finish = normalise_finish_reason(raw, has_tool_calls=bool(calls))
    refusal = getattr(message, "refusal", None)
    if refusal and not content:
        content, finish = str(refusal), "content_filter"
    reported = completion.id
    return ChatResponse(
        id=None if reported is None else str(reported),
        provider=provider,
        model=completion.model or model,
        target=target,
        message=AssistantMessage(role="assistant", content=content, tool_calls=calls, name=None),
        finish_reason=finish,
        raw_finish_reason=raw,
        usage=usage_from(completion.usage),
        logprobs=logprobs_from(choice.logprobs),
    )


# --------------------------------------------------------------------------- streams


class StreamState:
    """What a stream has said so far; turns each chunk into content events."""

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model
        self.id: str | None = None
        self.reported_model: str | None = None
        self.raw_finish: str | None = None
        self.usage: Usage | None = None
        self.text_chunks = 0
        self.tool_calls = False
        self.refused = False
        self.logprobs: list[TokenLogprob] = []

    def feed(self, chunk: Any) -> list[StreamEvent]:
        """The content events of one chunk (often none: role-only and usage chunks)."""
        if self.id is None and chunk.id:
            self.id = str(chunk.id)
        if self.reported_model is None and chunk.model:
            self.reported_model = str(chunk.model)
        if chunk.usage is not None:
            self.usage = usage_from(chunk.usage)
        events: list[StreamEvent] = []
        for choice in chunk.choices or ():
            if choice.index:  # only the first choice is ever asked for
                continue
            pending = logprobs_from(choice.logprobs)
            delta = choice.delta
            if delta is not None:
                text = _text(delta.content)
                refusal = getattr(delta, "refusal", None)
                if refusal:
                    text, self.refused = (text or "") + str(refusal), True
                if text:
                    self.text_chunks += 1
                    events.append(StreamEvent(type="delta", delta=text, logprobs=pending))
                    pending = None
                for call in delta.tool_calls or ():
                    self._tool_event(events, call.index or 0, call.id, call.function)
                legacy = getattr(delta, "function_call", None)
                if legacy is not None:
                    self._tool_event(events, 0, None, legacy)
            if pending:
                self.logprobs.extend(pending)
            if choice.finish_reason:
                self.raw_finish = str(choice.finish_reason)
        return events

    def _tool_event(
        self, events: list[StreamEvent], index: int, call_id: Any, function: Any
    ) -> None:
        name = getattr(function, "name", None)
        arguments = getattr(function, "arguments", None) or ""
        if not (call_id or name or arguments):
            return
        self.tool_calls = True
        events.append(
            StreamEvent(
                type="tool_call",
                tool_call=ToolCallDelta(
                    index=int(index),
                    id=None if call_id is None else str(call_id),
                    name=None if name is None else str(name),
                    arguments=str(arguments),
                ),
            )
        )

    def final(self, missing_usage: Callable[[], Usage], request_id: str | None) -> StreamEvent:
        """The final event; a stream that never finished is an error, not a short answer."""
        if self.raw_finish is None:
            raise InvalidResponseError(
                "the stream ended before the model finished (no finish_reason): the "
                "connection was cut or the server stopped early",
                provider=self.provider,
                model=self.model,
                request_id=request_id,
            )
        finish = normalise_finish_reason(self.raw_finish, has_tool_calls=self.tool_calls)
        return StreamEvent(
            type="final",
            finish_reason="content_filter" if self.refused else finish,
            raw_finish_reason=self.raw_finish,
            usage=self.usage if self.usage is not None else missing_usage(),
            id=self.id,
            model=self.reported_model,
            logprobs=self.logprobs or None,
        )
