"""A loopback server speaking OpenAI's Chat Completions, Embeddings and Models wire format.

    app = create_app()
    with LoopbackServer(app) as server:
        client = Client(providers={"openai": {"base_url": server.url + "/v1", "api_key": "k"}})

Conventions shared with the other loopback servers:

- ``app.state.requests``: every JSON request body, in order (failed requests included).
- ``app.state.headers``: the headers of each request, in the same order (lower-case names).
- ``app.state.failures``: ``(status, body, headers)`` tuples; while non-empty, each request pops
  the first and is answered with it (body JSON-serialised unless it is a str). See ``ERRORS``
  for the reference error bodies, and :func:`error_body` to build others.

Default answers (fixed, so tests can compare):

- text ``ANSWER`` ("The capital of France is Paris."), streamed as ``ANSWER_PIECES`` after a
  first chunk with ``role`` and empty content, as OpenAI does;
- with ``tools`` (and tool_choice not "none", last message not a tool result): one call of
  ``get_weather`` (or the tool named by tool_choice) with arguments ``{"city": "Paris"}``, id
  ``call_1``, finish_reason ``tool_calls``; streamed as fragments keyed by index, the arguments
  split across ``TOOL_ARGUMENT_PIECES``;
- with ``response_format`` json_object or json_schema: content ``JSON_ANSWER``;
- usage ``USAGE`` (cached, cache-write and reasoning details included); in streams only when
  ``stream_options.include_usage`` is true, as a last chunk with ``choices: []``;
- ``max_tokens``/``max_completion_tokens`` below the number of pieces truncate the answer to
  that many pieces with finish_reason ``length`` (and completion_tokens equal to the limit);
- ``logprobs: true`` adds one logprob per piece (and ``top_logprobs`` alternatives);
- response header ``x-request-id: req_<n>`` and ids ``chatcmpl-<n>``, where n is the number of
  requests in ``app.state.headers`` (so clearing that list restarts the count at 1).

Triggers, by the content of the last user message:

- ``__stream_error__``: a stream sends one content chunk, then
  ``data: {"error": {"message": "The server had an error...", "type": "server_error"}}``
  and ends (no ``[DONE]``); a plain request is answered 500 with that body.
- ``__cut_stream__``: a stream sends two content chunks and ends without finish_reason,
  usage or ``[DONE]``.
- ``__no_usage__``: no usage anywhere (plain: ``usage: null``; streams: no usage chunk).
- ``__bad_json__``: a 200 answer whose body (or, in a stream, whose second event) is not JSON.
- ``__function_call__``: the deprecated ``function_call`` answer, finish_reason
  ``function_call``.
- ``__refusal__``: content null, ``refusal`` set (structured-output refusal).
- ``__sleep__:<seconds>``: wait that long before answering (for timeout tests).
- ``__stall__:<seconds>``: a stream sends its first content chunk, then waits that long
  before the rest (for read timeouts after the first token).

Validation, as OpenAI does it (400 ``invalid_request_error`` unless said otherwise): unknown
body fields, missing ``model``/``messages``, bad roles, ``max_tokens`` together with
``max_completion_tokens``, ``max_tokens`` sent to o-series/gpt-5+ models
(``unsupported_parameter``), ``stream_options`` without ``stream``, ``top_logprobs`` without
``logprobs``, malformed tools, a named tool_choice that is not among the tools, a json_schema
response_format without ``name`` or ``schema``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = [
    "ANSWER",
    "ANSWER_PIECES",
    "ERRORS",
    "JSON_ANSWER",
    "TOOL_ARGUMENTS",
    "USAGE",
    "create_app",
    "error_body",
]

ANSWER = "The capital of France is Paris."
ANSWER_PIECES = ["The", " capital", " of", " France", " is", " Paris", "."]
JSON_ANSWER = '{"answer": "Paris"}'
JSON_PIECES = ['{"answer', '": "', "Paris", '"}']
TOOL_NAME = "get_weather"
TOOL_ARGUMENTS = '{"city": "Paris"}'
TOOL_ARGUMENT_PIECES = ['{"ci', 'ty": "Pa', 'ris"}']
CREATED = 1764547200
FINGERPRINT = "fp_loopback"
EMBEDDING_DIMENSIONS = 8

USAGE: dict[str, Any] = {
    "prompt_tokens": 24,
    "completion_tokens": 9,
    "total_tokens": 33,
    "prompt_tokens_details": {"cached_tokens": 8, "cache_write_tokens": 4, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 2,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}

_CHAT_FIELDS = {
    "model",
    "messages",
    "max_completion_tokens",
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "n",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "presence_penalty",
    "frequency_penalty",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "stream",
    "stream_options",
    "reasoning_effort",
    "service_tier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "prompt_cache_options",
    "store",
    "metadata",
    "user",
    "safety_identifier",
    "verbosity",
    "modalities",
    "audio",
    "prediction",
    "web_search_options",
    "functions",
    "function_call",
}
_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5", "gpt-6")


def error_body(
    message: str,
    type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """An OpenAI error body: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


#: The reference error answers (wire-formats.md §1.4), as ``app.state.failures`` items.
ERRORS: dict[str, tuple[int, Any, dict[str, str]]] = {
    "bad_request": (400, error_body("Invalid value for 'temperature'.", param="temperature"), {}),
    "authentication": (401, error_body("Incorrect API key provided.", code="invalid_api_key"), {}),
    "permission": (
        403,
        error_body(
            "Country, region, or territory not supported.",
            type="permission_error",
            code="unsupported_country_region_territory",
        ),
        {},
    ),
    "not_found": (
        404,
        error_body(
            "The model 'gpt-9' does not exist or you do not have access to it.",
            code="model_not_found",
            param="model",
        ),
        {},
    ),
    "conflict": (409, error_body("Conflicting concurrent request.", type="conflict_error"), {}),
    "unprocessable": (422, error_body("Unprocessable request."), {}),
    "rate_limit": (
        429,
        error_body(
            "Rate limit reached for gpt-4o-mini on requests per min (RPM).",
            type="requests",
            code="rate_limit_exceeded",
        ),
        {"retry-after-ms": "1500", "retry-after": "2", "x-ratelimit-remaining-requests": "0"},
    ),
    "insufficient_quota": (
        429,
        error_body(
            "You exceeded your current quota, please check your plan and billing details.",
            type="insufficient_quota",
            code="insufficient_quota",
        ),
        {},
    ),
    "context_length": (
        400,
        error_body(
            "This model's maximum context length is 128000 tokens. However, your messages "
            "resulted in 130000 tokens.",
            code="context_length_exceeded",
            param="messages",
        ),
        {},
    ),
    "server_error": (
        500,
        error_body(
            "The server had an error while processing your request. Sorry about that!",
            type="server_error",
        ),
        {},
    ),
    "overloaded": (
        503,
        error_body(
            "The engine is currently overloaded, please try again later.",
            type="server_error",
            code="engine_overloaded",
        ),
        {"retry-after": "1"},
    ),
}


class _Invalid(Exception):
    def __init__(self, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.body = error_body(message, code=code, param=param)


def _json(status: int, body: Any, headers: dict[str, str]) -> Response:
    if isinstance(body, str):
        return Response(body, status_code=status, headers=headers, media_type="application/json")
    return JSONResponse(body, status_code=status, headers=headers)


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


# --------------------------------------------------------------------------- validation


def _validate_chat(body: dict[str, Any]) -> None:
    unknown = sorted(set(body) - _CHAT_FIELDS)
    if unknown:
        raise _Invalid(f"Unrecognized request argument supplied: {unknown[0]}", unknown[0])
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _Invalid("you must provide a model parameter", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _Invalid("'messages' must be a non-empty array", "messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise _Invalid(f"Invalid value for 'messages[{i}].role'.", f"messages[{i}].role")
        if message["role"] == "tool" and not message.get("tool_call_id"):
            raise _Invalid(
                f"Missing required parameter: 'messages[{i}].tool_call_id'.",
                f"messages[{i}].tool_call_id",
            )
        if message["role"] == "assistant" and message.get("content") is None:
            if not message.get("tool_calls") and not message.get("function_call"):
                raise _Invalid(
                    f"Invalid value for 'messages[{i}].content': expected a string, got null.",
                    f"messages[{i}].content",
                )
    if "max_tokens" in body and "max_completion_tokens" in body:
        raise _Invalid(
            "max_tokens and max_completion_tokens cannot both be set; use max_completion_tokens.",
            "max_tokens",
        )
    if "max_tokens" in body and model.startswith(_REASONING_PREFIXES):
        raise _Invalid(
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
            "'max_completion_tokens' instead.",
            "max_tokens",
            "unsupported_parameter",
        )
    if "stream_options" in body and not body.get("stream"):
        raise _Invalid(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )
    if body.get("top_logprobs") is not None and not body.get("logprobs"):
        raise _Invalid("'top_logprobs' requires 'logprobs' to be true.", "top_logprobs")
    names = []
    for i, tool in enumerate(body.get("tools") or []):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type") != "function":
            raise _Invalid(f"Invalid value for 'tools[{i}]'.", f"tools[{i}]")
        if not function.get("name"):
            raise _Invalid(
                f"Missing required parameter: 'tools[{i}].function.name'.",
                f"tools[{i}].function.name",
            )
        names.append(function["name"])
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if name not in names:
            raise _Invalid(
                f"Invalid value for 'tool_choice': no function named '{name}' was specified "
                "in the 'tools' parameter.",
                "tool_choice",
            )
    elif choice is not None and choice not in ("auto", "none", "required"):
        raise _Invalid(f"Invalid value for 'tool_choice': {choice!r}.", "tool_choice")
    fmt = body.get("response_format")
    if fmt is not None:
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind not in ("text", "json_object", "json_schema"):
            raise _Invalid("Invalid value for 'response_format.type'.", "response_format.type")
        if kind == "json_schema":
            spec = fmt.get("json_schema")
            if not isinstance(spec, dict) or not spec.get("name"):
                raise _Invalid(
                    "Missing required parameter: 'response_format.json_schema.name'.",
                    "response_format.json_schema.name",
                )
            if not isinstance(spec.get("schema"), dict):
                raise _Invalid(
                    "Invalid value for 'response_format.json_schema.schema'.",
                    "response_format.json_schema.schema",
                )


# --------------------------------------------------------------------------- answers


def _plan(body: dict[str, Any]) -> dict[str, Any]:
    """What to answer: text pieces or a tool call, finish reason and usage."""
    messages = body["messages"]
    choice = body.get("tool_choice")
    tools = body.get("tools") or []
    last_role = messages[-1].get("role")
    if tools and choice != "none" and last_role != "tool":
        name = choice["function"]["name"] if isinstance(choice, dict) else TOOL_NAME
        if not isinstance(choice, dict) and TOOL_NAME not in {t["function"]["name"] for t in tools}:
            name = tools[0]["function"]["name"]
        return {"tool": name, "finish": "tool_calls", "usage": dict(USAGE)}
    fmt = (body.get("response_format") or {}).get("type")
    pieces = JSON_PIECES if fmt in ("json_object", "json_schema") else ANSWER_PIECES
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    usage = json.loads(json.dumps(USAGE))
    finish = "stop"
    if isinstance(limit, int) and limit < len(pieces):
        pieces, finish = pieces[:limit], "length"
        usage["completion_tokens"] = limit
        usage["completion_tokens_details"]["reasoning_tokens"] = 0
        usage["total_tokens"] = usage["prompt_tokens"] + limit
    return {"pieces": pieces, "finish": finish, "usage": usage}


def _logprobs(pieces: list[str], top: int | None) -> dict[str, Any]:
    return {
        "content": [
            {
                "token": piece,
                "logprob": -0.01 * (i + 1),
                "bytes": list(piece.encode()),
                "top_logprobs": [
                    {"token": f"{piece}{j}", "logprob": -1.0 - j, "bytes": None}
                    for j in range(top or 0)
                ],
            }
            for i, piece in enumerate(pieces)
        ],
        "refusal": None,
    }


def _completion(body: dict[str, Any], n: int, trigger: str) -> dict[str, Any]:
    plan = _plan(body)
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    logprobs = None
    finish = plan["finish"]
    if "tool" in plan:
        message["tool_calls"] = [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": plan["tool"], "arguments": TOOL_ARGUMENTS},
            }
        ]
    elif trigger == "__function_call__":
        message["function_call"] = {"name": TOOL_NAME, "arguments": TOOL_ARGUMENTS}
        finish = "function_call"
    elif trigger == "__refusal__":
        message["refusal"] = "I'm sorry, I cannot help with that."
    else:
        message["content"] = "".join(plan["pieces"])
        if body.get("logprobs"):
            logprobs = _logprobs(plan["pieces"], body.get("top_logprobs"))
    return {
        "id": f"chatcmpl-{n}",
        "object": "chat.completion",
        "created": CREATED,
        "model": body["model"],
        "choices": [
            {"index": 0, "message": message, "logprobs": logprobs, "finish_reason": finish}
        ],
        "usage": None if trigger == "__no_usage__" else plan["usage"],
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }


def _chunk(
    n: int,
    model: str,
    delta: dict[str, Any] | None,
    finish: str | None = None,
    logprobs: Any = None,
) -> str:
    choices = (
        []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]
    )
    data = {
        "id": f"chatcmpl-{n}",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "system_fingerprint": FINGERPRINT,
        "choices": choices,
        "usage": None,
    }
    return f"data: {json.dumps(data)}\n\n"


async def _stream(body: dict[str, Any], n: int, trigger: str) -> AsyncIterator[str]:
    model = body["model"]
    plan = _plan(body)
    if "tool" in plan:
        first = {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": plan["tool"], "arguments": ""},
        }
        yield _chunk(n, model, {"role": "assistant", "content": None, "tool_calls": [first]})
        for piece in TOOL_ARGUMENT_PIECES:
            yield _chunk(n, model, {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
    else:
        yield _chunk(n, model, {"role": "assistant", "content": "", "refusal": None})
        top = body.get("top_logprobs")
        for i, piece in enumerate(plan["pieces"]):
            logprobs = _logprobs([piece], top) if body.get("logprobs") else None
            yield _chunk(n, model, {"content": piece}, logprobs=logprobs)
            if trigger.startswith("__stall__:") and i == 0:
                await asyncio.sleep(float(trigger.split(":", 1)[1]))
            if trigger == "__stream_error__":
                error = ERRORS["server_error"][1]
                yield f"data: {json.dumps(error)}\n\n"
                return
            if trigger == "__bad_json__":
                yield 'data: {"id": "chatcmpl-broken", "choices": [\n\n'
                return
            if trigger == "__cut_stream__" and i == 1:
                return
    yield _chunk(n, model, {}, plan["finish"])
    options = body.get("stream_options") or {}
    if options.get("include_usage") and trigger != "__no_usage__":
        usage_chunk = json.loads(_chunk(n, model, None)[len("data: ") :])
        usage_chunk["usage"] = plan["usage"]
        yield f"data: {json.dumps(usage_chunk)}\n\n"
    yield "data: [DONE]\n\n"


# --------------------------------------------------------------------------- embeddings


def _vector(text: str, dimensions: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round(digest[i % len(digest)] / 255.0, 6) for i in range(dimensions)]


def _embeddings(body: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(body) - {"model", "input", "dimensions", "encoding_format", "user"})
    if unknown:
        raise _Invalid(f"Unrecognized request argument supplied: {unknown[0]}", unknown[0])
    if not isinstance(body.get("model"), str):
        raise _Invalid("you must provide a model parameter", "model")
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs or not all(isinstance(x, str) for x in inputs):
        raise _Invalid("'input' must be a string or an array of strings", "input")
    dimensions = body.get("dimensions") or EMBEDDING_DIMENSIONS
    data = []
    for i, text in enumerate(inputs):
        vector: Any = _vector(text, dimensions)
        if body.get("encoding_format") == "base64":
            vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": vector})
    tokens = sum(max(1, len(text.split())) for text in inputs)
    return {
        "object": "list",
        "data": data,
        "model": body["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


# --------------------------------------------------------------------------- the app


def create_app() -> Starlette:
    """A fresh app with empty ``requests``, ``headers`` and ``failures`` lists."""

    async def begin(request: Request) -> tuple[int, dict[str, str], Any, Response | None]:
        """Record the request; answer a queued failure or a body that is not JSON."""
        app.state.headers.append({k.lower(): v for k, v in request.headers.items()})
        n = len(app.state.headers)
        headers = {"x-request-id": f"req_{n}", "openai-processing-ms": "12"}
        body: Any = None
        raw = await request.body()
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        if isinstance(body, dict):
            app.state.requests.append(body)
        if app.state.failures:
            status, failure, extra = app.state.failures.pop(0)
            return n, headers, body, _json(status, failure, {**headers, **extra})
        if request.method == "POST" and not isinstance(body, dict):
            problem = error_body("We could not parse the JSON body of your request.")
            return n, headers, body, _json(400, problem, headers)
        return n, headers, body, None

    async def chat(request: Request) -> Response:
        n, headers, body, early = await begin(request)
        if early is not None:
            return early
        try:
            _validate_chat(body)
        except _Invalid as exc:
            return _json(400, exc.body, headers)
        trigger = _last_user_text(body)
        if trigger.startswith("__sleep__:"):
            await asyncio.sleep(float(trigger.split(":", 1)[1]))
        if body.get("stream"):
            return StreamingResponse(
                _stream(body, n, trigger), media_type="text/event-stream", headers=headers
            )
        if trigger == "__stream_error__":
            return _json(500, ERRORS["server_error"][1], headers)
        if trigger == "__bad_json__":
            return _json(200, '{"id": "chatcmpl-broken", "choices": [', headers)
        return _json(200, _completion(body, n, trigger), headers)

    async def embeddings(request: Request) -> Response:
        _, headers, body, early = await begin(request)
        if early is not None:
            return early
        try:
            return _json(200, _embeddings(body), headers)
        except _Invalid as exc:
            return _json(400, exc.body, headers)

    async def models(request: Request) -> Response:
        _, headers, _, early = await begin(request)
        if early is not None:
            return early
        names = ["gpt-4o-mini", "gpt-4.1-mini", "gpt-5-mini", "text-embedding-3-small"]
        data = [
            {"id": m, "object": "model", "created": CREATED, "owned_by": "openai"} for m in names
        ]
        return _json(200, {"object": "list", "data": data}, headers)

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )
    app.state.requests = []
    app.state.headers = []
    app.state.failures = []
    return app
