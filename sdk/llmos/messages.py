"""Turning what users pass (a string, OpenAI-style dicts, Message objects) into a ChatRequest.

This is the client boundary: everything is validated here once, and every problem becomes an
:class:`~llmos.errors.InvalidRequestError` that names the field and says how to fix it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Union

from pydantic import BaseModel, ValidationError

from llmos.errors import InvalidRequestError
from llmos.types import (
    AssistantMessage,
    ChatRequest,
    Document,
    Message,
    NamedToolChoice,
    ResponseFormat,
    SystemMessage,
    Tool,
    ToolCall,
    ToolChoice,
    ToolMessage,
    UserMessage,
)

__all__ = [
    "MessagesInput",
    "ResponseFormatInput",
    "build_request",
    "coerce_messages",
    "coerce_response_format",
    "coerce_tools",
]

MessagesInput = Union[str, Sequence[Message | Mapping[str, Any]]]
"""A prompt string, or a list of Message objects and/or OpenAI-style message dicts."""

ResponseFormatInput = Union[type[BaseModel], ResponseFormat, Mapping[str, Any], str, None]
"""A pydantic class, a ResponseFormat, an OpenAI response_format dict, a JSON schema, or "json"."""

_ROLES = ("system", "developer", "user", "assistant", "tool")


def _text(content: Any, where: str) -> str:
    """Message content as text: a string, or a list of OpenAI text parts joined together."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        pieces = []
        for i, part in enumerate(content):
            if isinstance(part, str):
                pieces.append(part)
            elif isinstance(part, Mapping) and part.get("type") == "text":
                pieces.append(str(part.get("text", "")))
            else:
                kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
                raise InvalidRequestError(
                    f"{where}.content[{i}]: only text parts are supported, got {kind!r}",
                    field=f"{where}.content",
                )
        return "".join(pieces)
    raise InvalidRequestError(
        f"{where}.content must be a string or a list of text parts, got {type(content).__name__}",
        field=f"{where}.content",
    )


def _tool_call(raw: Any, where: str) -> ToolCall:
    if isinstance(raw, ToolCall):
        return raw
    if not isinstance(raw, Mapping):
        raise InvalidRequestError(
            f"{where} must be a dict like {{'id': ..., 'function': {{'name': ..., "
            f"'arguments': ...}}}}, got {type(raw).__name__}",
            field=where,
        )
    function = raw.get("function", raw)
    name = function.get("name") if isinstance(function, Mapping) else None
    call_id = raw.get("id")
    if not call_id or not name:
        missing = "id" if not call_id else "function.name"
        raise InvalidRequestError(f"{where}.{missing} is required", field=f"{where}.{missing}")
    arguments = function.get("arguments", "{}")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return ToolCall(id=str(call_id), name=str(name), arguments=arguments)


def _message(raw: Any, index: int) -> Message:
    where = f"messages[{index}]"
    if isinstance(raw, (SystemMessage, UserMessage, AssistantMessage, ToolMessage)):
        return raw
    if not isinstance(raw, Mapping):
        raise InvalidRequestError(
            f"{where} must be a dict with 'role' and 'content' or an llmos Message, "
            f"got {type(raw).__name__}",
            field=where,
        )
    role = raw.get("role")
    if role not in _ROLES:
        raise InvalidRequestError(
            f"{where}.role: unknown role {role!r}; use one of system, user, assistant, tool",
            field=f"{where}.role",
        )
    known = {"role", "content", "name", "tool_calls", "tool_call_id"}
    ignored = {"refusal", "annotations", "audio", "function_call"}
    unknown = sorted(  # key=repr: a dict's keys need not be strings, nor comparable
        (k for k in raw if k not in known and k not in ignored), key=repr
    )
    if unknown:
        raise InvalidRequestError(
            f"{where}: unknown field {unknown[0]!r} for a {role} message",
            field=f"{where}.{unknown[0]}",
        )
    name = raw.get("name")
    if role in ("system", "developer", "user"):
        if raw.get("content") is None:
            raise InvalidRequestError(f"{where}.content is required", field=f"{where}.content")
        text = _text(raw["content"], where)
        if role == "user":
            return UserMessage(content=text, name=name)
        return SystemMessage(content=text, name=name)
    if role == "assistant":
        content = raw.get("content")
        listed = _listed(raw.get("tool_calls"), f"{where}.tool_calls", "a list of tool calls")
        calls = [_tool_call(c, f"{where}.tool_calls[{i}]") for i, c in enumerate(listed or [])]
        if content is None and not calls:
            raise InvalidRequestError(
                f"{where}: an assistant message needs content or tool_calls",
                field=f"{where}.content",
            )
        return AssistantMessage(
            content=None if content is None else _text(content, where), tool_calls=calls, name=name
        )
    tool_call_id = raw.get("tool_call_id")
    if not tool_call_id:
        raise InvalidRequestError(
            f"{where}.tool_call_id is required: a tool message must name the assistant tool "
            "call it answers",
            field=f"{where}.tool_call_id",
        )
    if raw.get("content") is None:
        raise InvalidRequestError(f"{where}.content is required", field=f"{where}.content")
    return ToolMessage(
        tool_call_id=str(tool_call_id), content=_text(raw["content"], where), name=name
    )


def _checked_message(raw: Any, index: int) -> Message:
    try:
        return _message(raw, index)
    except ValidationError as exc:  # a field of the right name but the wrong type
        raise _from_validation(exc, prefix=f"messages[{index}]") from None


def coerce_messages(messages: MessagesInput) -> list[Message]:
    """Messages from a prompt string or a list of dicts/Message objects, checked one by one."""
    if isinstance(messages, str):
        if not messages.strip():
            raise InvalidRequestError("messages: the prompt is empty", field="messages")
        return [UserMessage(content=messages)]
    if isinstance(messages, Mapping) or not isinstance(messages, Sequence):
        raise InvalidRequestError(
            f"messages must be a string or a list of messages, got {type(messages).__name__}",
            field="messages",
        )
    if len(messages) == 0:
        raise InvalidRequestError(
            "messages is empty: pass a prompt string or at least one message", field="messages"
        )
    result = [_checked_message(raw, i) for i, raw in enumerate(messages)]
    _check_tool_flow(result)
    return result


def _check_tool_flow(messages: list[Message]) -> None:
    """A tool message must answer a tool call made earlier in the conversation."""
    seen: set[str] = set()
    for i, msg in enumerate(messages):
        if isinstance(msg, AssistantMessage):
            seen.update(call.id for call in msg.tool_calls)
        elif isinstance(msg, ToolMessage) and msg.tool_call_id not in seen:
            raise InvalidRequestError(
                f"messages[{i}].tool_call_id {msg.tool_call_id!r} answers no earlier assistant "
                "tool call; include the assistant message with that tool call before it",
                field=f"messages[{i}].tool_call_id",
            )


def coerce_tools(tools: Sequence[Tool | Mapping[str, Any]] | None) -> list[Tool] | None:
    """Tools from Tool objects or OpenAI-style ``{"type": "function", "function": {...}}`` dicts."""
    if tools is None:
        return None
    if isinstance(tools, Mapping) or not isinstance(tools, Sequence):
        raise InvalidRequestError("tools must be a list of tools", field="tools")
    result: list[Tool] = []
    for i, raw in enumerate(tools):
        if isinstance(raw, Tool):
            result.append(raw)
            continue
        if not isinstance(raw, Mapping):
            raise InvalidRequestError(
                f"tools[{i}] must be a dict or llmos.Tool, got {type(raw).__name__}",
                field=f"tools[{i}]",
            )
        spec = raw.get("function", raw) if raw.get("type", "function") == "function" else None
        if not isinstance(spec, Mapping):
            raise InvalidRequestError(
                f"tools[{i}]: only function tools are supported", field=f"tools[{i}].type"
            )
        try:
            result.append(Tool.model_validate({k: v for k, v in spec.items() if k != "type"}))
        except ValidationError as exc:
            raise _from_validation(exc, prefix=f"tools[{i}]") from None
    names = [t.name for t in result]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidRequestError(f"tools: duplicate tool name {dupes[0]!r}", field="tools")
    return result or None


def _tool_choice(value: Any, tools: list[Tool] | None) -> ToolChoice | None:
    if value is None:
        return None
    if value in ("auto", "none", "required"):
        choice: ToolChoice = value
    elif isinstance(value, NamedToolChoice):
        choice = value
    elif isinstance(value, Mapping):
        fn = value.get("function", value)
        name = fn.get("name") if isinstance(fn, Mapping) else None
        if not name:
            raise InvalidRequestError(
                "tool_choice: a dict must name the tool, e.g. {'type': 'function', "
                "'function': {'name': 'get_weather'}}",
                field="tool_choice",
            )
        choice = NamedToolChoice(name=str(name))
    elif isinstance(value, str):
        choice = NamedToolChoice(name=value)
    else:
        raise InvalidRequestError(
            "tool_choice must be 'auto', 'none', 'required' or a tool name", field="tool_choice"
        )
    if choice != "none" and not tools:
        raise InvalidRequestError(
            "tool_choice was given without tools; pass tools=[...] too", field="tool_choice"
        )
    if isinstance(choice, NamedToolChoice) and tools and choice.name not in {t.name for t in tools}:
        raise InvalidRequestError(
            f"tool_choice names {choice.name!r}, which is not among the tools given",
            field="tool_choice",
        )
    return choice


def coerce_response_format(value: ResponseFormatInput) -> ResponseFormat | None:
    """A ResponseFormat from a pydantic class, an OpenAI dict, a bare JSON schema, or "json"."""
    try:
        return _response_format(value)
    except ValidationError as exc:
        raise _from_validation(exc, prefix="response_format") from None


def _response_format(value: ResponseFormatInput) -> ResponseFormat | None:
    if value is None or isinstance(value, ResponseFormat):
        return value
    if isinstance(value, type) and issubclass(value, BaseModel):
        return ResponseFormat.from_model(value)
    if isinstance(value, str):
        if value in ("json", "json_object"):
            return ResponseFormat(type="json_object")
        if value == "text":
            return ResponseFormat(type="text")
        raise InvalidRequestError(
            f"response_format {value!r} is not understood; use 'json', a JSON schema dict or a "
            "pydantic model class",
            field="response_format",
        )
    if isinstance(value, Mapping):
        kind = value.get("type")
        if kind in ("text", "json_object"):
            return ResponseFormat(type=kind)
        if kind == "json_schema":
            spec = value.get("json_schema", {})
            if not isinstance(spec, Mapping) or not isinstance(spec.get("schema"), Mapping):
                raise InvalidRequestError(
                    "response_format.json_schema.schema must be a JSON schema object",
                    field="response_format.json_schema.schema",
                )
            return ResponseFormat(
                type="json_schema",
                name=str(spec.get("name") or "response"),
                json_schema=dict(spec["schema"]),
                strict=spec.get("strict"),
            )
        # Anything else is taken as a bare JSON schema.
        return ResponseFormat(type="json_schema", name="response", json_schema=dict(value))
    raise InvalidRequestError(
        "response_format must be a pydantic model class, a JSON schema dict or 'json', "
        f"got {type(value).__name__}",
        field="response_format",
    )


def _from_validation(exc: ValidationError, prefix: str = "") -> InvalidRequestError:
    """An InvalidRequestError that names the first invalid field and what it must be."""
    err = exc.errors()[0]
    loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
    field = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
    got = err.get("input")
    shown = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
    return InvalidRequestError(f"{field}: {err['msg']}{shown}", field=field)


def _listed(value: Any, name: str, shape: str) -> list[Any] | None:
    """``value`` as a list, or an InvalidRequestError when it is not a list-like of items."""
    if value is None:
        return None
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise InvalidRequestError(f"{name} must be {shape}, got {type(value).__name__}", field=name)
    return list(value)


def build_request(
    model: str,
    messages: MessagesInput,
    *,
    max_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    stop: str | Sequence[str] | None = None,
    seed: int | None = None,
    tools: Sequence[Tool | Mapping[str, Any]] | None = None,
    tool_choice: Any = None,
    response_format: ResponseFormatInput = None,
    logprobs: bool = False,
    top_logprobs: int | None = None,
    documents: Sequence[Document | Mapping[str, Any] | str] | None = None,
    extra_body: Mapping[str, Any] | None = None,
) -> ChatRequest:
    """Validate everything a chat call was given and build the one ChatRequest providers see."""
    coerced = coerce_messages(messages)
    tool_list = coerce_tools(tools)
    choice = _tool_choice(tool_choice, tool_list)
    fmt = coerce_response_format(response_format)
    stops = (
        [stop] if isinstance(stop, str) else _listed(stop, "stop", "a string or a list of strings")
    )
    docs = _listed(documents, "documents", "a list of strings, dicts or llmos.Document")
    if docs is not None:
        docs = [Document(content=d) if isinstance(d, str) else d for d in docs]
    if top_logprobs is not None and not logprobs:
        logprobs = True
    if extra_body is not None and not isinstance(extra_body, Mapping):
        raise InvalidRequestError("extra_body must be a dict", field="extra_body")
    for name, value in (("max_tokens", max_tokens), ("seed", seed), ("top_logprobs", top_logprobs)):
        if isinstance(value, bool) or (value is not None and not isinstance(value, int)):
            raise InvalidRequestError(
                f"{name} must be an integer, got {type(value).__name__}", field=name
            )
    try:
        # Only the fields the caller set: the rest keep their defaults (cheaper to validate).
        given: dict[str, Any] = {"model": model, "messages": coerced}
        optional: tuple[tuple[str, Any], ...] = (
            ("max_tokens", max_tokens),
            ("temperature", temperature),
            ("top_p", top_p),
            ("stop", stops),
            ("seed", seed),
            ("tools", tool_list),
            ("tool_choice", choice),
            ("response_format", fmt),
            ("top_logprobs", top_logprobs),
            ("documents", docs),
        )
        for name, value in optional:
            if value is not None:
                given[name] = value
        if logprobs:
            given["logprobs"] = logprobs
        if extra_body:
            given["extra_body"] = dict(extra_body)
        request = ChatRequest(**given)
    except ValidationError as exc:
        raise _from_validation(exc) from None
    # model_validate copies nested models; keep the pydantic class the caller gave for parsing.
    if fmt is not None and request.response_format is not None:
        request.response_format._output_type = fmt.output_type
    return request
