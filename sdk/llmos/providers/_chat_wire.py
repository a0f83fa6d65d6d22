"""The OpenAI chat-completions dialect, shared by every provider that speaks it.

OpenAI, AI21, the Hugging Face router, TGI's ``/v1/chat/completions``, vLLM and llama.cpp's
server send and answer the same JSON shapes with small differences. A :class:`Dialect` names the
request-side differences; answers and stream chunks are read by one lenient parser that accepts
every variant seen in the reference (wire-formats.md): finish reasons such as ``eos_token``,
tool-call arguments sent as JSON objects, ``tool_calls`` deltas sent as one object, content as a
list of text parts, usage with or without token details, AI21's missing ``model``.

Pure translation, no I/O: plain dicts (what ``json.loads`` gives) in and out. Shapes that would
give a wrong answer raise :class:`~llmos.errors.InvalidResponseError`; an error object where an
answer was expected raises its mapped llmos error. Outputs use plain constructors: with nested
models passed as instances pydantic checks them in about a microsecond each, less than
``model_construct``, and the checks catch a server's odd types.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from llmos.errors import InvalidRequestError, InvalidResponseError
from llmos.providers._errors import is_error_payload, payload_error, request_id_from
from llmos.types import (
    AssistantMessage,
    ChatRequest,
    ChatResponse,
    FinishReason,
    Message,
    ResponseFormat,
    StreamEvent,
    TokenLogprob,
    Tool,
    ToolCall,
    ToolCallDelta,
    TopLogprob,
    Usage,
)

__all__ = [
    "FINISH_REASONS", "OPENAI", "Dialect", "StreamState", "decode_json", "encode_body",
    "logprobs_of", "normalise_finish_reason", "openai_response_format", "parse_completion",
    "request_body", "response_events", "usage_of",
]  # fmt: skip


def _reasons(result: FinishReason, *raw: str) -> dict[str, FinishReason]:
    return dict.fromkeys(raw, result)


#: Every server's finish reason -> llmos's four values (TGI, AI21, vLLM and gateways included).
FINISH_REASONS: dict[str, FinishReason] = {
    **_reasons("stop", "stop", "eos_token", "eos", "stop_sequence", "endoftext", "end_turn"),
    **_reasons("length", "length", "max_tokens", "max_output_tokens", "model_length"),
    # function_call: the deprecated functions API; tool_use: Anthropic-style gateways.
    **_reasons("tool_calls", "tool_calls", "function_call", "tool_use"),
    **_reasons("content_filter", "content_filter"),
}

_SHAPE_ERRORS = (AttributeError, IndexError, KeyError, TypeError, ValueError)


def normalise_finish_reason(raw: Any, *, has_tool_calls: bool = False) -> FinishReason:
    """stop, length, tool_calls or content_filter for any server's finish reason.

    Unknown or missing reasons count as ``stop``; a stop that came with tool calls counts as
    ``tool_calls`` (TGI ends them with ``eos_token``, OpenAI with ``stop`` when tool_choice names
    the function), because callers branch on ``tool_calls``.
    """
    reason = FINISH_REASONS.get(raw.lower(), "stop") if isinstance(raw, str) else "stop"
    return "tool_calls" if has_tool_calls and reason == "stop" else reason


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Dialect:
    """How one server family's request JSON differs from OpenAI's."""

    #: Send message ``name`` fields (AI21's messages have none).
    names: bool = True
    #: Leave ``content`` out of an assistant message that only calls tools, instead of null.
    omit_null_content: bool = False
    #: Send ``tool_choice``. Without it ``none`` leaves the tools out and other values are not
    #: sent (the provider refuses them before sending).
    tool_choice: bool = True
    #: Send ``strict`` on tool definitions.
    tool_strict: bool = True


#: OpenAI's own dialect (vLLM, llama.cpp and most compatible servers speak it too).
OPENAI = Dialect()


def _message(message: Message, dialect: Dialect) -> dict[str, Any]:
    if message.role == "assistant":
        out: dict[str, Any] = {"role": "assistant"}
        calls = message.tool_calls
        if message.content is not None:
            out["content"] = message.content
        elif not calls:
            out["content"] = ""  # servers refuse an assistant message with neither
        elif not dialect.omit_null_content:
            out["content"] = None
        if calls:
            out["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in calls
            ]
    elif message.role == "tool":
        # Tool messages take no name in this dialect.
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    else:
        out = {"role": message.role, "content": message.content}
    if message.name and dialect.names:
        out["name"] = message.name
    return out


def _tool(tool: Tool, dialect: Dialect) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name, "parameters": tool.parameters}
    if tool.description:
        function["description"] = tool.description
    if tool.strict is not None and dialect.tool_strict:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def openai_response_format(
    fmt: ResponseFormat | None, *, send_text: bool = False
) -> dict[str, Any] | None:
    """OpenAI's ``response_format`` for ``fmt`` (json_schema nested under ``json_schema``).

    ``send_text`` sends ``{"type": "text"}`` for plain text instead of leaving the field out.
    """
    if fmt is None or (fmt.type == "text" and not send_text):
        return None
    if fmt.type != "json_schema":
        return {"type": fmt.type}
    spec: dict[str, Any] = {"name": fmt.name or "response", "schema": fmt.json_schema or {}}
    if fmt.strict is not None:
        spec["strict"] = fmt.strict
    return {"type": "json_schema", "json_schema": spec}


def request_body(
    request: ChatRequest,
    dialect: Dialect = OPENAI,
    *,
    max_tokens_field: str = "max_tokens",
    response_format: dict[str, Any] | None = None,
    stream: bool = False,
    stream_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The chat-completions body of ``request``; ``extra_body`` is merged last and wins.

    ``response_format`` is the field as this server wants it (see :func:`openai_response_format`);
    ``stream_options`` is sent with streamed calls only, when given.
    """
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [_message(m, dialect) for m in request.messages],
    }
    if request.max_tokens is not None:
        body[max_tokens_field] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop"] = request.stop
    if request.seed is not None:
        body["seed"] = request.seed
    choice = request.tool_choice
    if request.tools and (dialect.tool_choice or choice != "none"):
        body["tools"] = [_tool(t, dialect) for t in request.tools]
    if choice is not None and dialect.tool_choice:
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
    if stream:
        body["stream"] = True
        if stream_options is not None:
            body["stream_options"] = stream_options
    if request.extra_body:
        body.update(request.extra_body)
    return body


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode_body(body: dict[str, Any], *, model: str) -> bytes:
    """``body`` as compact UTF-8 JSON; a value JSON cannot hold (from extra_body) is refused."""
    try:
        return _ENCODER.encode(body).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(
            f"extra_body cannot be sent as JSON: {exc}; pass only JSON values (str, number, "
            "bool, None, list, dict)",
            field="extra_body",
            model=model,
        ) from None


# --------------------------------------------------------------------------- error objects


def _request_id(headers: Mapping[str, str] | None) -> str | None:
    # Only error paths ask: reading headers costs more than the rest of a small answer.
    return request_id_from(headers) if headers else None


def decode_json(
    raw: bytes,
    *,
    provider: str,
    model: str,
    headers: Mapping[str, str] | None = None,
    what: str = "a chat completion",
) -> Any:
    """A JSON answer decoded; anything else is an InvalidResponseError that shows its start."""
    try:
        return json.loads(raw)
    except ValueError:
        shown = raw[:120].decode("utf-8", errors="replace")
        raise InvalidResponseError(
            f"the server answered with text that is not JSON instead of {what}: {shown!r}",
            provider=provider,
            model=model,
            request_id=_request_id(headers),
        ) from None


# --------------------------------------------------------------------------- answers


class _ShapeError(ValueError):
    """A shape that would give a wrong answer; its message is shown as is."""


def _count(value: Any) -> int:
    """A token count from a number or numeric text; anything else counts as 0."""
    if type(value) is int:  # the usual case, first
        return value if value > 0 else 0
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return 0
    try:
        return max(0, int(value))
    except ValueError:
        return 0


def usage_of(raw: Any) -> Usage:
    """llmos Usage from a ``usage`` object; absent or empty means the usage is missing."""
    if not isinstance(raw, Mapping) or not raw:
        return Usage(source="missing")
    prompt = _count(raw.get("prompt_tokens"))
    completion = raw.get("completion_tokens")
    if completion is None:  # AI21 has sent only a total
        completion_tokens = max(0, _count(raw.get("total_tokens")) - prompt)
    else:
        completion_tokens = _count(completion)
    prompt_details = raw.get("prompt_tokens_details")
    completion_details = raw.get("completion_tokens_details")
    if not isinstance(prompt_details, Mapping):
        prompt_details = {}
    if not isinstance(completion_details, Mapping):
        completion_details = {}
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion_tokens,
        cached_tokens=_count(prompt_details.get("cached_tokens")),
        cache_write_tokens=_count(prompt_details.get("cache_write_tokens")),
        reasoning_tokens=_count(completion_details.get("reasoning_tokens")),
        source="provider",
    )


def _scored(item: Any) -> tuple[str, float] | None:
    """(token, logprob) of one logprob entry, None when it lacks either."""
    if not isinstance(item, Mapping):
        return None
    token, value = item.get("token"), item.get("logprob")
    if token is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return str(token), float(value)


def logprobs_of(raw: Any) -> list[TokenLogprob] | None:
    """Token logprobs from a choice's ``logprobs`` (``{content: [...]}``); malformed entries are
    skipped, and None means the server sent none."""
    if not isinstance(raw, Mapping):
        return None
    content = raw.get("content")
    if isinstance(content, Mapping):  # a single entry where a list is documented
        content = [content]
    if not content or not isinstance(content, list):
        return None
    found = []
    for item in content:
        scored = _scored(item)
        if scored is None:
            continue
        tops = [
            TopLogprob(token=alt[0], logprob=alt[1])
            for alt in map(_scored, item.get("top_logprobs") or ())
            if alt is not None
        ]
        found.append(TokenLogprob(token=scored[0], logprob=scored[1], top_logprobs=tops))
    return found or None


def _text(content: Any) -> str | None:
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):  # some servers answer with a list of text parts
        return "".join(
            str(p.get("text", "")) if isinstance(p, Mapping) else str(p) for p in content
        )
    raise _ShapeError(f"message content is a JSON {type(content).__name__}, not text")


def _arguments(value: Any) -> str:
    # Older TGI sends tool-call arguments as a JSON object rather than JSON text.
    if isinstance(value, str):
        return value
    return "" if value is None else json.dumps(value)


def _tool_calls(raw: Any, legacy: Any) -> list[ToolCall]:
    items = [raw] if isinstance(raw, Mapping) else list(raw or ())
    if not items and isinstance(legacy, Mapping):  # the deprecated function_call
        items = [{"function": legacy}]
    calls = []
    for i, item in enumerate(items):
        function = item.get("function") or {}
        name = function.get("name")
        if not name:
            raise _ShapeError(f"tool call {i} in the answer has no function name")
        call_id = item.get("id")
        calls.append(
            ToolCall(
                id=f"call_{i}" if call_id is None or call_id == "" else str(call_id),
                name=str(name),
                arguments=_arguments(function.get("arguments")) or "{}",
                type="function",
            )
        )
    return calls


def _completion(data: Mapping[str, Any], provider: str, model: str) -> ChatResponse:
    choices = data.get("choices")
    if not choices or not isinstance(choices, list):
        raise _ShapeError(
            "the answer has no choices: it does not have the expected shape of a chat completion"
        )
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, Mapping):
        raise _ShapeError("choice 0 of the answer has no message")
    calls = _tool_calls(message.get("tool_calls"), message.get("function_call"))
    content = _text(message.get("content"))
    raw = choice.get("finish_reason")
    raw_finish = None if raw is None else str(raw)
    finish = normalise_finish_reason(raw_finish, has_tool_calls=bool(calls))
    refusal = message.get("refusal")
    if refusal and not content:
        content, finish = str(refusal), "content_filter"
    reported = data.get("id")
    return ChatResponse(
        id=None if reported is None or reported == "" else str(reported),
        provider=provider,
        model=str(data.get("model") or model),
        target=f"{provider}:{model}",
        message=AssistantMessage(role="assistant", content=content, tool_calls=calls, name=None),
        finish_reason=finish,
        raw_finish_reason=raw_finish,
        usage=usage_of(data.get("usage")),
        logprobs=logprobs_of(choice.get("logprobs")),
    )


def parse_completion(
    data: Any, *, provider: str, model: str, headers: Mapping[str, str] | None = None
) -> ChatResponse:
    """A ChatResponse from a decoded chat completion; ``model`` is the requested model.

    An error object raises its mapped llmos error; a shape that cannot be read raises
    InvalidResponseError (``headers`` give both their request id).
    """
    if not isinstance(data, Mapping):
        message = f"the answer is a JSON {type(data).__name__}, not a chat completion object"
    elif is_error_payload(data):
        raise payload_error(data, provider=provider, model=model, headers=headers)
    else:
        try:
            return _completion(data, provider, model)
        except _ShapeError as exc:
            message = str(exc)
        except _SHAPE_ERRORS as exc:
            message = (
                "the answer does not have the expected shape of a chat completion "
                f"({type(exc).__name__}: {exc})"
            )
    raise InvalidResponseError(
        message, provider=provider, model=model, request_id=_request_id(headers)
    )


# --------------------------------------------------------------------------- streams


class StreamState:
    """What a chat-completions stream has said so far; turns each chunk into content events.

    Text deltas carry the logprobs of their chunk; logprobs that came without text, the usage
    chunk, the id, the model and the finish reason go into the one :meth:`final` event.
    """

    __slots__ = ("headers", "id", "logprobs", "model", "provider", "raw_finish", "refused",
                 "reported_model", "text_chunks", "tool_calls", "usage")  # fmt: skip

    def __init__(self, provider: str, model: str, headers: Mapping[str, str] | None = None) -> None:
        self.provider = provider
        self.model = model
        self.headers = headers
        self.id: str | None = None
        self.reported_model: str | None = None
        self.raw_finish: str | None = None
        self.usage: Usage | None = None
        #: Chunks that carried text (servers like llama.cpp send one token per chunk).
        self.text_chunks = 0
        self.tool_calls = False
        self.refused = False
        self.logprobs: list[TokenLogprob] = []

    def _error(self, message: str) -> InvalidResponseError:
        return InvalidResponseError(
            message, provider=self.provider, model=self.model, request_id=_request_id(self.headers)
        )

    def feed(self, chunk: Any) -> list[StreamEvent]:
        """The content events of one decoded chunk (often none: role-only and usage chunks).

        An error object raises its mapped error; a chunk that cannot be read raises
        InvalidResponseError.
        """
        if not isinstance(chunk, Mapping):
            raise self._error(f"the stream sent an event that is not an object: {chunk!r:.120}")
        if is_error_payload(chunk):
            raise payload_error(
                chunk,
                provider=self.provider,
                model=self.model,
                headers=self.headers,
                in_stream=True,
            )
        try:
            return self._feed(chunk)
        except _ShapeError as exc:
            raise self._error(str(exc)) from None
        except _SHAPE_ERRORS as exc:
            raise self._error(
                f"a stream chunk does not have the expected shape ({type(exc).__name__}: {exc})"
            ) from None

    def _feed(self, chunk: Mapping[str, Any]) -> list[StreamEvent]:
        if self.id is None and chunk.get("id"):
            self.id = str(chunk["id"])
        if chunk.get("model"):
            self.reported_model = str(chunk["model"])
        usage = chunk.get("usage")
        if usage:  # null on every chunk but the last
            self.usage = usage_of(usage)
        events: list[StreamEvent] = []
        for choice in chunk.get("choices") or ():
            if choice.get("index"):  # only the first choice is ever asked for
                continue
            # Most chunks carry one text delta and nothing else: the checks below skip absent
            # fields before any call or ABC isinstance (this loop runs once per token).
            raw_logprobs = choice.get("logprobs")
            pending = logprobs_of(raw_logprobs) if raw_logprobs is not None else None
            delta = choice.get("delta")
            if delta:
                content = delta.get("content")
                text = content if content is None or type(content) is str else _text(content)
                refusal = delta.get("refusal")
                if refusal:
                    text, self.refused = (text or "") + str(refusal), True
                if text:
                    self.text_chunks += 1
                    events.append(StreamEvent(type="delta", delta=text, logprobs=pending))
                    pending = None
                calls = delta.get("tool_calls")
                if calls:
                    listed = [calls] if isinstance(calls, Mapping) else calls
                    for position, call in enumerate(listed):
                        index = call.get("index")
                        self._fragment(
                            events,
                            index if isinstance(index, int) else position,
                            call.get("id"),
                            call.get("function") or {},
                        )
                legacy = delta.get("function_call")
                if legacy is not None and isinstance(legacy, Mapping):
                    self._fragment(events, 0, None, legacy)
            if pending:
                self.logprobs.extend(pending)
            if choice.get("finish_reason"):
                self.raw_finish = str(choice["finish_reason"])
        return events

    def _fragment(
        self, events: list[StreamEvent], index: int, call_id: Any, function: Mapping[str, Any]
    ) -> None:
        name = function.get("name")
        arguments = _arguments(function.get("arguments"))
        if not (call_id or name or arguments):
            return
        self.tool_calls = True
        fragment = ToolCallDelta(
            index=index,
            id=str(call_id) if call_id else None,
            name=str(name) if name else None,
            arguments=arguments,
        )
        events.append(StreamEvent(type="tool_call", tool_call=fragment))

    def final(self, *, done: bool) -> StreamEvent:
        """The one final event; ``done`` says whether ``[DONE]`` arrived.

        A stream that ended with neither a finish reason nor ``[DONE]`` was cut: an error, not
        a short answer.
        """
        if self.raw_finish is None and not done:
            raise self._error(
                "the stream ended before the model finished (no finish_reason or [DONE]): it "
                "was cut short by the connection or the server"
            )
        finish = normalise_finish_reason(self.raw_finish, has_tool_calls=self.tool_calls)
        return StreamEvent(
            type="final",
            finish_reason="content_filter" if self.refused else finish,
            raw_finish_reason=self.raw_finish,
            usage=self.usage if self.usage is not None else Usage(source="missing"),
            id=self.id,
            model=self.reported_model or self.model,
            logprobs=self.logprobs or None,
        )


def response_events(response: ChatResponse) -> Iterator[StreamEvent]:
    """A whole answer as stream events, for a stream request answered with one JSON body."""
    if response.message.content:
        yield StreamEvent(type="delta", delta=response.message.content)
    for i, call in enumerate(response.message.tool_calls):
        fragment = ToolCallDelta(index=i, id=call.id, name=call.name, arguments=call.arguments)
        yield StreamEvent(type="tool_call", tool_call=fragment)
    yield StreamEvent(
        type="final",
        finish_reason=response.finish_reason,
        raw_finish_reason=response.raw_finish_reason,
        usage=response.usage,
        id=response.id,
        model=response.model,
        logprobs=response.logprobs,
    )
