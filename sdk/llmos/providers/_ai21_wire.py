"""AI21 chat wire format: request bodies, answers, stream chunks (reference §2.2).

Pure translation, no I/O: :mod:`llmos.providers.ai21` sends what :func:`build_body` makes and
hands what comes back to :func:`parse_completion` or a :class:`StreamState`. Parsing is lenient
where AI21 is sparse (no ``object``/``created``/``system_fingerprint``, ``model`` optional,
``meta`` ignored) and strict where a wrong shape would give a wrong answer.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from llmos.errors import InvalidRequestError, InvalidResponseError
from llmos.providers._http import error_from_response
from llmos.types import (
    AssistantMessage,
    ChatRequest,
    ChatResponse,
    FinishReason,
    Latency,
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
    "adrain",
    "build_body",
    "completion_events",
    "drain",
    "is_error_payload",
    "normalise_finish",
    "parse_completion",
    "payload_status",
]

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "end_turn": "stop",
    "eos": "stop",
    "eos_token": "stop",
    "stop_sequence": "stop",
    "endoftext": "stop",
    "length": "length",
    "max_tokens": "length",
    "max_output_tokens": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}

#: Chunks read after [DONE] at most; a server that keeps sending loses its connection instead.
_DRAIN_CHUNKS = 8

# Templates: model_copy(update=...) is ~10x cheaper than model_construct on hot stream paths.
_DELTA = StreamEvent.model_construct(type="delta", delta="")
_TOOL_FRAGMENT = StreamEvent.model_construct(type="tool_call", delta="")
_FINAL = StreamEvent.model_construct(type="final", delta="")


def normalise_finish(raw: Any, has_calls: bool) -> FinishReason:
    """The llmos finish reason for AI21's raw one (tool calls imply ``tool_calls``)."""
    found = _FINISH.get(raw) if isinstance(raw, str) else None
    if found is not None:
        return found
    return "tool_calls" if has_calls else "stop"


# --------------------------------------------------------------------------- request


def _wire_message(message: Message) -> dict[str, Any]:
    # AI21's message models carry role and content only (plus tool fields): `name` is dropped.
    if message.role == "assistant":
        out: dict[str, Any] = {"role": "assistant"}
        if message.content is not None or not message.tool_calls:
            out["content"] = message.content or ""
        if message.tool_calls:
            out["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in message.tool_calls
            ]
        return out
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    return {"role": message.role, "content": message.content}


def build_body(request: ChatRequest, *, stream: bool) -> bytes:
    """The JSON body of one AI21 chat call, serialised once."""
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [_wire_message(m) for m in request.messages],
    }
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop"] = request.stop
    if request.seed is not None:
        body["seed"] = request.seed  # passthrough: not in AI21's SDK signature (see AI21Provider)
    if request.tools and request.tool_choice != "none":  # "none": the model sees no tools
        body["tools"] = [
            {"type": "function", "function": _tool_function(t.name, t.description, t.parameters)}
            for t in request.tools
        ]
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_object":
        body["response_format"] = {"type": "json_object"}
    if request.documents:
        body["documents"] = [
            d.model_dump(exclude_none=True) if (d.id or d.metadata) else {"content": d.content}
            for d in request.documents
        ]
    if request.extra_body:
        body.update(request.extra_body)
    # Set last so that extra_body cannot make the body disagree with how it is read.
    if stream:
        body["stream"] = True
    else:
        body.pop("stream", None)
    try:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(
            f"extra_body cannot be sent as JSON: {exc}; pass only JSON values (str, number, "
            "bool, None, list, dict)",
            field="extra_body",
            model=request.model,
        ) from None


def _tool_function(name: str, description: str | None, parameters: dict[str, Any]) -> Any:
    spec: dict[str, Any] = {"name": name, "parameters": parameters}
    if description:
        spec["description"] = description
    return spec


# --------------------------------------------------------------------------- response parts


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, Mapping):
        return Usage(source="missing")
    prompt = int(raw.get("prompt_tokens") or 0)
    completion = raw.get("completion_tokens")
    if completion is None and raw.get("total_tokens") is not None:
        completion = int(raw["total_tokens"]) - prompt
    return Usage.model_construct(
        prompt_tokens=prompt,
        completion_tokens=int(completion or 0),
        cached_tokens=0,
        cache_write_tokens=0,
        reasoning_tokens=0,
        source="provider",
    )


def _arguments(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _tool_calls(raw: Any) -> list[ToolCall]:
    if not raw:
        return []
    calls = []
    for i, item in enumerate(raw):
        function = item.get("function") or {}
        name = function.get("name")
        if not name:
            raise InvalidResponseError(f"tool call {i} in the answer has no function name")
        calls.append(
            ToolCall.model_construct(
                id=str(item.get("id") or f"call_{i}"),
                name=str(name),
                arguments=_arguments(function.get("arguments")) or "{}",
                type="function",
            )
        )
    return calls


def _logprobs(raw: Any) -> list[TokenLogprob] | None:
    """AI21 logprobs ``{content: [{token, logprob, top_logprobs: [...]}]}``, when present."""
    if not isinstance(raw, Mapping):
        return None
    content = raw.get("content")
    if isinstance(content, Mapping):  # tolerate a single entry where a list is documented
        content = [content]
    if not isinstance(content, list):
        return None
    return [
        TokenLogprob.model_construct(
            token=str(item["token"]),
            logprob=float(item["logprob"]),
            top_logprobs=[
                TopLogprob.model_construct(token=str(t["token"]), logprob=float(t["logprob"]))
                for t in item.get("top_logprobs") or []
            ],
        )
        for item in content
    ]


def _fragment_event(index: int, call_id: Any, name: Any, arguments: str) -> StreamEvent:
    fragment = ToolCallDelta.model_construct(
        index=index,
        id=None if call_id is None else str(call_id),
        name=None if name is None else str(name),
        arguments=arguments,
    )
    return _TOOL_FRAGMENT.model_copy(update={"tool_call": fragment})


def is_error_payload(data: Mapping[str, Any]) -> bool:
    return "choices" not in data and ("error" in data or "detail" in data)


def payload_status(data: Mapping[str, Any]) -> int:
    """The HTTP status an in-body error names, else 500: the server failed mid-answer."""
    inner = data.get("error")
    for holder in (data, inner if isinstance(inner, Mapping) else {}):
        for key in ("status_code", "status", "code"):
            value = holder.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and 400 <= value <= 599:
                return value
    return 500


class StreamState:
    """What a stream has told so far; turns chunks into events and builds the final one."""

    __slots__ = ("done", "finish", "id", "logprobs", "model", "provider", "saw_calls", "usage")

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model
        self.id: str | None = None
        self.usage: Usage | None = None
        self.finish: str | None = None
        self.done = False
        self.saw_calls = False
        self.logprobs: list[TokenLogprob] = []

    def feed(self, data: Any, headers: Mapping[str, str]) -> list[StreamEvent]:
        """Content events of one decoded chunk; in-stream error objects raise."""
        if not isinstance(data, Mapping):
            raise InvalidResponseError(f"the stream sent {type(data).__name__}, not an object")
        if is_error_payload(data):
            raise error_from_response(
                payload_status(data), headers, data, provider=self.provider, model=self.model
            )
        if data.get("id"):
            self.id = str(data["id"])
        if data.get("model"):
            self.model = str(data["model"])
        usage = data.get("usage")
        if isinstance(usage, Mapping):  # null on every chunk but the last
            self.usage = _usage(usage)
        events: list[StreamEvent] = []
        for choice in data.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                events.append(_DELTA.model_copy(update={"delta": str(text)}))
            for position, frag in enumerate(delta.get("tool_calls") or ()):
                function = frag.get("function") or {}
                self.saw_calls = True
                events.append(
                    _fragment_event(
                        int(frag.get("index", position)),
                        frag.get("id"),
                        function.get("name"),
                        _arguments(function.get("arguments")),
                    )
                )
            found = _logprobs(choice.get("logprobs"))
            if found:
                self.logprobs.extend(found)
            if choice.get("finish_reason"):
                self.finish = str(choice["finish_reason"])
        return events

    def final(self) -> StreamEvent:
        """The one final event; a stream that ended with neither finish nor [DONE] was cut."""
        if self.finish is None and not self.done:
            raise InvalidResponseError(
                "the stream was cut short: it ended before a finish_reason or [DONE]",
                provider=self.provider,
                model=self.model,
            )
        return _FINAL.model_copy(
            update={
                "finish_reason": normalise_finish(self.finish, self.saw_calls),
                "raw_finish_reason": self.finish,
                "usage": self.usage or Usage(source="missing"),
                "id": self.id,
                "model": self.model,
                "logprobs": self.logprobs or None,
            }
        )


def drain(chunks: Iterator[bytes]) -> None:
    """Read the little left after [DONE] so the connection goes back to the pool."""
    for _ in itertools.islice(chunks, _DRAIN_CHUNKS):
        pass


async def adrain(chunks: AsyncIterator[bytes]) -> None:
    """Async twin of :func:`drain`."""
    for _ in range(_DRAIN_CHUNKS):
        try:
            await chunks.__anext__()
        except StopAsyncIteration:
            return


def parse_completion(
    data: Any, request: ChatRequest, provider: str, headers: Mapping[str, str]
) -> ChatResponse:
    """A ChatResponse from a decoded answer; an in-body error object raises its llmos error.

    Shape errors surface as KeyError/TypeError/ValueError/AttributeError for the caller to wrap.
    """
    if not isinstance(data, Mapping):
        raise InvalidResponseError(f"the answer is a JSON {type(data).__name__}, not an object")
    if is_error_payload(data):
        raise error_from_response(
            payload_status(data), headers, data, provider=provider, model=request.model
        )
    choices = data.get("choices")
    if not choices:
        raise InvalidResponseError("the answer has no choices")
    choice = choices[0]
    message = choice["message"]
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise InvalidResponseError("message.content in the answer is not a string")
    calls = _tool_calls(message.get("tool_calls"))
    raw_finish = choice.get("finish_reason")
    return ChatResponse.model_construct(
        id=None if data.get("id") is None else str(data["id"]),
        provider=provider,
        model=str(data.get("model") or request.model),
        target=f"{provider}:{request.model}",
        message=AssistantMessage.model_construct(
            role="assistant", content=content, tool_calls=calls, name=None
        ),
        finish_reason=normalise_finish(raw_finish, bool(calls)),
        raw_finish_reason=None if raw_finish is None else str(raw_finish),
        usage=_usage(data.get("usage")),
        # Every field is given: pydantic's default factories are slow under model_construct.
        latency=Latency.model_construct(total_s=0.0, ttft_s=None, queued_s=None),
        cost=None,
        attempts=[],
        logprobs=_logprobs(choice.get("logprobs")),
        parsed=None,
        parse_error=None,
    )


def completion_events(response: ChatResponse) -> Iterator[StreamEvent]:
    """A whole answer as stream events, for a stream request answered with one JSON body."""
    if response.message.content:
        yield _DELTA.model_copy(update={"delta": response.message.content})
    for i, call in enumerate(response.message.tool_calls):
        yield _fragment_event(i, call.id, call.name, call.arguments)
    yield _FINAL.model_copy(
        update={
            "finish_reason": response.finish_reason,
            "raw_finish_reason": response.raw_finish_reason,
            "usage": response.usage,
            "id": response.id,
            "model": response.model,
            "logprobs": response.logprobs,
        }
    )
