"""The Hugging Face wire format: request bodies, answers and stream events, with no I/O.

Covers the OpenAI-compatible chat schema of the router and of TGI's ``/v1/chat/completions``
(with TGI's quirks: free-form finish reasons such as ``eos_token``, tool-call arguments sent as
JSON objects, ``tool_calls`` deltas sent as one object) and TGI's ``/generate`` and
``/generate_stream``. :mod:`llmos.providers.huggingface` does the sending.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Union

from llmos.errors import InvalidResponseError, LLMOSError
from llmos.providers._http import error_from_response, request_id_from
from llmos.types import (
    AssistantMessage,
    ChatRequest,
    ChatResponse,
    FinishReason,
    Latency,
    Message,
    NamedToolChoice,
    ResponseFormat,
    StreamEvent,
    TokenLogprob,
    ToolCall,
    ToolCallDelta,
    ToolMessage,
    TopLogprob,
    Usage,
)

__all__ = [
    "CONTEXT_WINDOWS",
    "ChatStreamParser",
    "GenerateStreamParser",
    "PromptFormat",
    "build_prompt",
    "chat_body",
    "generate_body",
    "normalise_finish_reason",
    "parse_chat",
    "parse_generate",
    "stream_error",
]

PromptFormat = Union[Literal["plain", "chatml", "raw"], Callable[..., str]]
"""How /generate prompts are built from messages: a built-in format or a callable."""

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "eos_token": "stop",
    "stop_sequence": "stop",
    "endoftext": "stop",
    "eos": "stop",
    "length": "length",
    "max_tokens": "length",
    "max_output_tokens": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
# In-stream errors carry no HTTP status; TGI's error_type says which one it would have had.
_STREAM_ERROR_STATUS = {
    "validation": 422,
    "generation": 424,
    "overloaded": 429,
    "incomplete_generation": 500,
}
_SHAPE_ERRORS = (KeyError, IndexError, TypeError, ValueError, AttributeError)


def _windows(model: str, pairs: Sequence[tuple[str, int]]) -> dict[tuple[str, str], int]:
    return {(model, provider): tokens for provider, tokens in pairs}


#: Context windows of router models by (model, provider suffix); wire-formats §5.3.
CONTEXT_WINDOWS: dict[tuple[str, str], int] = {
    **_windows(
        "meta-llama/Llama-3.1-8B-Instruct",
        [
            ("nebius", 128000),
            ("novita", 16384),
            ("deepinfra", 131072),
            ("cerebras", 128000),
            ("hyperbolic", 32768),
            ("together", 131072),
        ],
    ),
    **_windows(
        "meta-llama/Llama-3.3-70B-Instruct",
        [
            ("hyperbolic", 131072),
            ("nebius", 131072),
            ("novita", 12288),
            ("sambanova", 131072),
            ("cerebras", 128000),
            ("together", 131072),
        ],
    ),
}


def normalise_finish_reason(raw: str | None, *, tool_calls: bool = False) -> FinishReason:
    """TGI's and the router's free-form finish reasons as llmos's four values."""
    reason = _FINISH.get(raw or "", "stop")
    # TGI ends tool calls with eos_token; callers branch on "tool_calls", so say so.
    return "tool_calls" if tool_calls and reason == "stop" else reason


# --------------------------------------------------------------------------- requests


def build_prompt(messages: Sequence[Message], prompt_format: PromptFormat = "plain") -> str:
    """The ``/generate`` prompt for ``messages``.

    ``plain``: ``"System: ...\\n\\nUser: ...\\n\\nAssistant: ...\\n\\nUser: ...\\n\\nAssistant:"``;
    ``chatml``: ``<|im_start|>role\\ncontent<|im_end|>\\n`` turns, then
    ``<|im_start|>assistant\\n``;
    ``raw``: the contents alone, joined by blank lines (for completion-style prompts).
    """
    if callable(prompt_format):
        return str(prompt_format(list(messages)))
    turns = [(m.role, _plain_content(m)) for m in messages]
    if prompt_format == "raw":
        return "\n\n".join(text for _, text in turns)
    if prompt_format == "chatml":
        body = "".join(f"<|im_start|>{role}\n{text}<|im_end|>\n" for role, text in turns)
        return body + "<|im_start|>assistant\n"
    return "".join(f"{role.capitalize()}: {text}\n\n" for role, text in turns) + "Assistant:"


def _plain_content(message: Message) -> str:
    if isinstance(message, AssistantMessage) and message.content is None:
        return json.dumps([{"name": c.name, "arguments": c.arguments} for c in message.tool_calls])
    return message.content or ""


def _wire_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        item: dict[str, Any] = {"role": m.role}
        if isinstance(m, AssistantMessage):
            if m.content is not None:
                item["content"] = m.content
            if m.tool_calls:
                item["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in m.tool_calls
                ]
        else:
            item["content"] = m.content
            if isinstance(m, ToolMessage):
                item["tool_call_id"] = m.tool_call_id
        if m.name:
            item["name"] = m.name
        out.append(item)
    return out


def _response_format(fmt: ResponseFormat, tgi: bool) -> dict[str, Any]:
    if tgi:  # TGI's grammar: {"type": "json", "value": <JSON schema>}
        return {"type": "json", "value": fmt.json_schema or {"type": "object"}}
    if fmt.type == "json_object":
        return {"type": "json_object"}
    spec: dict[str, Any] = {"name": fmt.name or "response", "schema": fmt.json_schema or {}}
    if fmt.strict is not None:
        spec["strict"] = fmt.strict
    return {"type": "json_schema", "json_schema": spec}


def chat_body(request: ChatRequest, *, tgi: bool, stream: bool) -> dict[str, Any]:
    """An OpenAI-schema chat body; ``tgi`` sends structured output as a TGI grammar."""
    body: dict[str, Any] = {"model": request.model, "messages": _wire_messages(request.messages)}
    for name in ("max_tokens", "temperature", "top_p", "stop", "seed"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if request.tools:
        body["tools"] = [
            {"type": "function", "function": t.model_dump(exclude_none=True)} for t in request.tools
        ]
    choice = request.tool_choice
    if isinstance(choice, NamedToolChoice):
        body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
    elif choice is not None:
        body["tool_choice"] = choice
    fmt = request.response_format
    if fmt is not None and fmt.type != "text":
        body["response_format"] = _response_format(fmt, tgi)
    if request.logprobs:
        body["logprobs"] = True
        if request.top_logprobs is not None:
            body["top_logprobs"] = request.top_logprobs
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    body.update(request.extra_body)
    return body


def generate_body(request: ChatRequest, prompt: str, default_max_new_tokens: int) -> dict[str, Any]:
    """A TGI ``/generate`` body; ``extra_body`` keys join ``parameters`` (e.g. ``top_k``)."""
    params: dict[str, Any] = {
        "max_new_tokens": request.max_tokens or default_max_new_tokens,
        "details": True,
        "return_full_text": False,
    }
    if request.temperature is not None:
        # TGI wants a strictly positive temperature, so 0 means greedy decoding; any other
        # value turns sampling on (TGI would decode greedily at exactly 1.0 otherwise).
        params["do_sample"] = request.temperature > 0
        if request.temperature > 0:
            params["temperature"] = request.temperature
    if request.top_p is not None and request.top_p < 1:  # TGI refuses top_p == 1
        params["top_p"] = request.top_p
    if request.stop:
        params["stop"] = request.stop
    if request.seed is not None:
        params["seed"] = request.seed
    fmt = request.response_format
    if fmt is not None and fmt.type != "text":
        params["grammar"] = _response_format(fmt, tgi=True)
    if request.top_logprobs:
        params["top_n_tokens"] = request.top_logprobs
    params.update(request.extra_body)
    return {"inputs": prompt, "parameters": params}


# --------------------------------------------------------------------------- answers


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _usage_of(
    prompt: int, completion: int, *, cached: int = 0, reasoning: int = 0, source: Any = "provider"
) -> Usage:
    # Every field is passed: model_construct resolving defaults itself costs more than the rest.
    return Usage.model_construct(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        cache_write_tokens=0,
        reasoning_tokens=reasoning,
        source=source,
    )


def _missing() -> Usage:
    return _usage_of(0, 0, source="missing")


def _event(
    kind: Any = "delta",
    *,
    delta: str = "",
    tool_call: ToolCallDelta | None = None,
    logprobs: list[TokenLogprob] | None = None,
    raw: str | None = None,
    finish: FinishReason | None = None,
    usage: Usage | None = None,
    id: str | None = None,
    model: str | None = None,
) -> StreamEvent:
    return StreamEvent.model_construct(
        type=kind,
        delta=delta,
        tool_call=tool_call,
        finish_reason=finish,
        raw_finish_reason=raw,
        usage=usage,
        latency=None,
        cost=None,
        id=id,
        model=model,
        logprobs=logprobs,
        response=None,
    )


def _response(
    *,
    id: str | None,
    provider: str,
    model: str,
    request: ChatRequest,
    content: str | None,
    calls: list[ToolCall],
    raw: str | None,
    usage: Usage,
    logprobs: list[TokenLogprob] | None,
) -> ChatResponse:
    return ChatResponse.model_construct(
        id=id,
        provider=provider,
        model=model,
        target=f"{provider}:{request.model}",
        message=AssistantMessage.model_construct(
            role="assistant", content=content, tool_calls=calls, name=None
        ),
        finish_reason=normalise_finish_reason(raw, tool_calls=bool(calls)),
        raw_finish_reason=raw,
        usage=usage,
        latency=Latency.model_construct(total_s=0.0, ttft_s=None, queued_s=None),
        cost=None,
        attempts=[],
        logprobs=logprobs,
        parsed=None,
        parse_error=None,
    )


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, Mapping):
        return _missing()
    prompt = raw.get("prompt_tokens_details") or {}
    completion = raw.get("completion_tokens_details") or {}
    return _usage_of(
        _int(raw.get("prompt_tokens")) or 0,
        _int(raw.get("completion_tokens")) or 0,
        cached=_int(prompt.get("cached_tokens")) or 0,
        reasoning=_int(completion.get("reasoning_tokens")) or 0,
    )


def _generate_usage(details: Mapping[str, Any], headers: Mapping[str, str], prompt: str) -> Usage:
    """Token counts of a /generate answer: details, TGI's x-*-tokens headers, the prefill."""
    completion = _int(details.get("generated_tokens", headers.get("x-generated-tokens")))
    prompt_tokens = _int(headers.get("x-prompt-tokens", details.get("input_length")))
    prefill = details.get("prefill")
    if prompt_tokens is None and isinstance(prefill, list) and prefill:
        prompt_tokens = len(prefill)
    if completion is None and prompt_tokens is None:
        return _missing()
    if prompt_tokens is None:  # a server too old to say: about four characters per token
        return _usage_of(len(prompt) // 4, completion or 0, source="approximate")
    return _usage_of(prompt_tokens, completion or 0)


def _chat_logprobs(raw: Any) -> list[TokenLogprob] | None:
    if not isinstance(raw, Mapping) or not raw.get("content"):
        return None
    return [
        TokenLogprob.model_construct(
            token=t["token"],
            logprob=float(t["logprob"]),
            top_logprobs=[
                TopLogprob.model_construct(token=a["token"], logprob=float(a["logprob"]))
                for a in t.get("top_logprobs") or ()
            ],
        )
        for t in raw["content"]
    ]


def _token_logprob(token: Mapping[str, Any], top: Any) -> TokenLogprob:
    return TokenLogprob.model_construct(
        token=token["text"],
        logprob=float(token.get("logprob") or 0.0),
        top_logprobs=[
            TopLogprob.model_construct(token=a["text"], logprob=float(a.get("logprob") or 0.0))
            for a in top or ()
        ],
    )


def _arguments(value: Any) -> str:
    # Older TGI sends tool-call arguments as a JSON object rather than JSON text.
    if isinstance(value, str):
        return value
    return "" if value is None else json.dumps(value)


def _tool_call(raw: Mapping[str, Any], index: int) -> ToolCall:
    function = raw["function"]
    call_id = raw.get("id")
    return ToolCall.model_construct(
        id=f"call_{index}" if call_id in (None, "") else str(call_id),
        name=str(function["name"]),
        arguments=_arguments(function.get("arguments")) or "{}",
        type="function",
    )


def _bad_shape(provider: str, model: str, exc: Exception) -> InvalidResponseError:
    return InvalidResponseError(
        f"the answer does not have the expected shape ({type(exc).__name__}: {exc})",
        provider=provider,
        model=model,
    )


def parse_chat(
    data: Any, request: ChatRequest, provider: str, request_id: str | None
) -> ChatResponse:
    """A ChatResponse from an OpenAI-schema chat answer (router or TGI)."""
    try:
        choice = data["choices"][0]
        message = choice.get("message") or {}
        calls = [_tool_call(c, i) for i, c in enumerate(message.get("tool_calls") or ())]
        raw = choice.get("finish_reason")
        return _response(
            id=data.get("id") or request_id,
            provider=provider,
            model=data.get("model") or request.model,
            request=request,
            content=message.get("content"),
            calls=calls,
            raw=raw,
            usage=_usage(data.get("usage")),
            logprobs=_chat_logprobs(choice.get("logprobs")) if request.logprobs else None,
        )
    except _SHAPE_ERRORS as exc:
        raise _bad_shape(provider, request.model, exc) from None


def parse_generate(
    data: Any, headers: Mapping[str, str], request: ChatRequest, provider: str, prompt: str
) -> ChatResponse:
    """A ChatResponse from a TGI ``/generate`` answer (``details`` gives reason and tokens)."""
    try:
        if isinstance(data, list):  # the compat route's shape: one item per input
            data = data[0]
        details = data.get("details") or {}
        raw = details.get("finish_reason")
        logprobs = None
        tokens = details.get("tokens")
        if request.logprobs and tokens:
            tops = details.get("top_tokens") or [None] * len(tokens)
            logprobs = [
                _token_logprob(t, top)
                for t, top in zip(tokens, tops, strict=False)
                if not t.get("special")
            ]
        return _response(
            id=request_id_from(headers),
            provider=provider,
            model=request.model,
            request=request,
            content=str(data["generated_text"]),
            calls=[],
            raw=raw,
            usage=_generate_usage(details, headers, prompt),
            logprobs=logprobs,
        )
    except _SHAPE_ERRORS as exc:
        raise _bad_shape(provider, request.model, exc) from None


# --------------------------------------------------------------------------- streams


def stream_error(payload: Any, provider: str, model: str) -> LLMOSError:
    """The llmos error for an ``{"error": ...}`` event (or a non-object) inside a stream."""
    if not isinstance(payload, Mapping):
        return InvalidResponseError(
            f"the stream sent an event that is not an object: {str(payload)[:120]!r}",
            provider=provider,
            model=model,
        )
    err = payload.get("error")
    status = _STREAM_ERROR_STATUS.get(str(payload.get("error_type")), 500)
    if isinstance(err, Mapping):  # OpenAI-shaped, from the router's providers
        code = err.get("code")
        if isinstance(code, int) and 400 <= code < 600:
            status = code
        elif err.get("type") == "invalid_request_error":
            status = 400
    error = error_from_response(status, {}, dict(payload), provider=provider, model=model)
    error.status_code = None  # the stream itself answered 200; the error came inside it
    return error


def _cut(provider: str, model: str) -> InvalidResponseError:
    return InvalidResponseError(
        "the stream ended before the server said it was finished (connection cut?)",
        provider=provider,
        model=model,
    )


class ChatStreamParser:
    """Chat-completion chunks in, content events out, then one final event."""

    def __init__(self, provider: str, request: ChatRequest) -> None:
        self.provider = provider
        self.request = request
        self.id: str | None = None
        self.model: str | None = None
        self.raw_finish: str | None = None
        self.usage: Usage | None = None
        self.calls = False

    def feed(self, chunk: Any) -> list[StreamEvent]:
        """The content events of one chunk; raises the mapped error for an error event."""
        if not isinstance(chunk, Mapping) or chunk.get("error") is not None:
            raise stream_error(chunk, self.provider, self.request.model)
        try:
            return self._feed(chunk)
        except _SHAPE_ERRORS as exc:
            raise _bad_shape(self.provider, self.request.model, exc) from None

    def _feed(self, chunk: Mapping[str, Any]) -> list[StreamEvent]:
        self.id = self.id or chunk.get("id") or None
        self.model = chunk.get("model") or self.model
        if chunk.get("usage"):
            self.usage = _usage(chunk["usage"])
        events: list[StreamEvent] = []
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                logprobs = _chat_logprobs(choice.get("logprobs")) if self.request.logprobs else None
                events.append(_event(delta=text, logprobs=logprobs))
            calls = delta.get("tool_calls") or ()
            for i, call in enumerate([calls] if isinstance(calls, Mapping) else calls):
                function = call.get("function") or {}
                self.calls = True
                fragment = ToolCallDelta.model_construct(
                    index=int(call.get("index", i)),
                    id=call.get("id") or None,
                    name=function.get("name") or None,
                    arguments=_arguments(function.get("arguments")),
                )
                events.append(_event("tool_call", tool_call=fragment))
            if choice.get("finish_reason"):
                self.raw_finish = choice["finish_reason"]
        return events

    def final(self, done: bool) -> StreamEvent:
        """The final event; ``done`` says whether ``[DONE]`` arrived."""
        if not done and self.raw_finish is None:
            raise _cut(self.provider, self.request.model)
        return _event(
            "final",
            finish=normalise_finish_reason(self.raw_finish, tool_calls=self.calls),
            raw=self.raw_finish,
            usage=self.usage or _missing(),
            id=self.id,
            model=self.model or self.request.model,
        )


class GenerateStreamParser:
    """TGI ``/generate_stream`` token events in, content events out, then one final event.

    Special tokens (``</s>`` and the like) are not text; the last event's ``details`` carries
    finish_reason, generated_tokens and input_length.
    """

    def __init__(
        self, provider: str, request: ChatRequest, prompt: str, headers: Mapping[str, str]
    ) -> None:
        self.provider = provider
        self.request = request
        self.prompt = prompt
        self.headers = headers
        self.details: Mapping[str, Any] | None = None

    def feed(self, event: Any) -> list[StreamEvent]:
        """The content event of one token event; raises the mapped error for an error event."""
        if not isinstance(event, Mapping) or event.get("error") is not None:
            raise stream_error(event, self.provider, self.request.model)
        try:
            if event.get("details"):
                self.details = event["details"]
            token = event.get("token") or {}
            if not token.get("text") or token.get("special"):
                return []
            logprobs = None
            if self.request.logprobs:
                logprobs = [_token_logprob(token, event.get("top_tokens"))]
            return [_event(delta=token["text"], logprobs=logprobs)]
        except _SHAPE_ERRORS as exc:
            raise _bad_shape(self.provider, self.request.model, exc) from None

    def final(self, done: bool) -> StreamEvent:
        """The final event; ``done`` says whether ``[DONE]`` arrived."""
        if self.details is None and not done:
            raise _cut(self.provider, self.request.model)
        details = self.details or {}
        raw = details.get("finish_reason")
        return _event(
            "final",
            finish=normalise_finish_reason(raw),
            raw=raw,
            usage=_generate_usage(details, self.headers, self.prompt),
            model=self.request.model,
        )
