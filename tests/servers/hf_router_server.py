"""A loopback server that speaks the Hugging Face Inference Providers router's chat wire format.

Routes: ``POST /v1/chat/completions`` (plain, and ``"stream": true`` with or without
``stream_options.include_usage``) and ``GET /v1/models``.

Like the router in front of TGI-backed providers, finish reasons are free strings:

- text ``"The capital of France is Paris."`` (streamed in seven chunks), finish_reason
  ``eos_token``; ``stop_sequence`` when the request has ``stop``; ``length`` when ``max_tokens``
  is smaller than the answer's chunk count (the answer is cut to ``max_tokens`` chunks);
- with ``tools``: a call of ``get_weather`` with ``{"city": "Paris"}``, finish_reason
  ``tool_calls`` (streamed as a name fragment and two argument fragments);
- with ``response_format`` of type ``json_object`` or ``json_schema``: ``{"answer": "Paris"}``.

Usage: prompt tokens are the whitespace-separated words of every message plus 3 per message;
completion tokens are the chunks sent. Streams with ``include_usage`` end with a
``choices: []`` chunk carrying usage, then ``data: [DONE]``; without it no usage is sent.

Validation like the router's: no bearer token -> 401 ``{"error": "Invalid credentials in
Authorization header"}``; a model without ``org/`` -> 404 OpenAI-shaped ``model_not_found``; a
suffix after ``:`` that is neither a known provider nor ``fastest|cheapest|preferred`` -> 400
OpenAI-shaped ``invalid_request_error``.

Triggers, in the text of the last user message:

- ``[[stream-error]]``: after two content chunks the stream sends
  ``data: {"error": {"message": "upstream provider failed", "type": "server_error", "code": 502}}``;
- ``[[cut]]``: the stream stops after two content chunks, with no finish_reason and no [DONE];
- ``[[echo-key]]``: a 400 whose message repeats the bearer token (to test redaction).

Test hooks on ``app.state``: ``requests`` receives every JSON body in order, ``headers`` the
request headers of each (lower-cased), ``bill_to`` each request's ``X-HF-Bill-To`` (or None) and
``models`` each requested model string, suffix included. While ``failures`` (``(status, body,
headers)`` tuples) is non-empty, each request pops the first one and is answered with it (a
non-str body is JSON-serialised). Answers carry ``x-request-id: req-<n>``.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

ANSWER_CHUNKS = ["The", " capital", " of", " France", " is", " Paris", "."]
JSON_CHUNKS = ['{"answer"', ': "Paris"}']
TOOL_NAME = "get_weather"
TOOL_ARGUMENT_CHUNKS = ['{"city"', ': "Paris"}']
PROVIDERS = {"cerebras", "together", "novita", "nebius", "sambanova", "groq", "fireworks-ai"}
POLICIES = {"fastest", "cheapest", "preferred"}
MODELS = [
    {
        "id": "meta-llama/Llama-3.1-8B-Instruct",
        "object": "model",
        "created": 1721174400,
        "owned_by": "meta-llama",
        "providers": [
            {
                "provider": "cerebras",
                "status": "live",
                "context_length": 128000,
                "pricing": {"input": 0.10, "output": 0.10},
                "supports_tools": True,
            },
            {
                "provider": "novita",
                "status": "live",
                "context_length": 16384,
                "pricing": {"input": 0.02, "output": 0.05},
                "supports_tools": False,
            },
        ],
    },
    {
        "id": "meta-llama/Llama-3.3-70B-Instruct",
        "object": "model",
        "created": 1733443200,
        "owned_by": "meta-llama",
        "providers": [
            {
                "provider": "together",
                "status": "live",
                "context_length": 131072,
                "pricing": {"input": 1.04, "output": 1.04},
                "supports_tools": True,
            },
        ],
    },
]


def prompt_tokens(body: dict[str, Any]) -> int:
    """Prompt tokens the server reports: words of every message plus 3 per message."""
    messages = body.get("messages") or []
    return sum(len(str(m.get("content") or "").split()) for m in messages) + 3 * len(messages)


def _openai_error(status: int, message: str, kind: str, code: str | None) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": code}}, status
    )


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


def _plan(body: dict[str, Any]) -> tuple[str, list[str], str]:
    """What to answer: kind ("text" | "json" | "tool"), chunks, and the raw finish reason."""
    if body.get("tools"):
        return "tool", TOOL_ARGUMENT_CHUNKS, "tool_calls"
    fmt = body.get("response_format") or {}
    if fmt.get("type") in ("json_object", "json_schema"):
        return "json", JSON_CHUNKS, "stop"
    chunks, finish = ANSWER_CHUNKS, "eos_token"
    if body.get("stop"):
        finish = "stop_sequence"
    limit = body.get("max_tokens")
    if isinstance(limit, int) and limit < len(chunks):
        chunks, finish = chunks[:limit], "length"
    return "text", chunks, finish


def _usage(body: dict[str, Any], completion: int) -> dict[str, Any]:
    prompt = prompt_tokens(body)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _validate(request: Request, body: dict[str, Any]) -> Response | None:
    auth = request.headers.get("authorization", "")
    if not auth.startswith("Bearer ") or not auth[7:]:
        return JSONResponse({"error": "Invalid credentials in Authorization header"}, 401)
    model = body.get("model")
    if not isinstance(model, str) or "/" not in model:
        return _openai_error(
            404, f"The model `{model}` does not exist", "invalid_request_error", "model_not_found"
        )
    _, colon, suffix = model.partition(":")
    if colon and suffix not in PROVIDERS | POLICIES:
        return _openai_error(
            400, f"Provider '{suffix}' is not supported", "invalid_request_error", None
        )
    if "[[echo-key]]" in _last_user_text(body):
        return _openai_error(
            400, f"bad request from token {auth[7:]}", "invalid_request_error", None
        )
    return None


def _chunk(state: Any, model: str, delta: dict[str, Any], finish: str | None = None) -> str:
    payload = {
        "id": f"chatcmpl-{state.count}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": None,
    }
    return f"data: {json.dumps(payload)}\n\n"


async def _stream(state: Any, body: dict[str, Any]) -> AsyncIterator[str]:
    kind, chunks, finish = _plan(body)
    model = body["model"]
    trigger = _last_user_text(body)
    yield _chunk(state, model, {"role": "assistant", "content": ""})
    for i, piece in enumerate(chunks):
        if i == 2 and "[[stream-error]]" in trigger:
            error = {"message": "upstream provider failed", "type": "server_error", "code": 502}
            yield f"data: {json.dumps({'error': error})}\n\n"
            return
        if i == 2 and "[[cut]]" in trigger:
            return
        if kind == "tool":
            call: dict[str, Any] = {"index": 0, "function": {"arguments": piece}}
            if i == 0:
                first = {
                    "index": 0,
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": TOOL_NAME, "arguments": ""},
                }
                yield _chunk(state, model, {"tool_calls": [first]})
            yield _chunk(state, model, {"tool_calls": [call]})
        else:
            yield _chunk(state, model, {"content": piece})
    yield _chunk(state, model, {}, finish)
    if (body.get("stream_options") or {}).get("include_usage"):
        usage_chunk = {
            "id": f"chatcmpl-{state.count}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [],
            "usage": _usage(body, len(chunks)),
        }
        yield f"data: {json.dumps(usage_chunk)}\n\n"
    yield "data: [DONE]\n\n"


def _complete(state: Any, body: dict[str, Any]) -> dict[str, Any]:
    kind, chunks, finish = _plan(body)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(chunks)}
    if kind == "tool":
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": TOOL_NAME, "arguments": "".join(chunks)},
                }
            ],
        }
    return {
        "id": f"chatcmpl-{state.count}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "system_fingerprint": "hf-router-loopback",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": _usage(body, len(chunks)),
    }


def failure_response(failure: tuple[int, Any, dict[str, str]]) -> Response:
    """The answer for one queued ``(status, body, headers)`` failure."""
    status, payload, headers = failure
    content = payload if isinstance(payload, str) else json.dumps(payload)
    kind = "text/plain" if isinstance(payload, str) else "application/json"
    return Response(content, status_code=status, headers=headers, media_type=kind)


async def chat_completions(request: Request) -> Response:
    state = request.app.state
    state.count += 1
    raw = await request.body()
    try:
        body = json.loads(raw)
    except ValueError:
        return JSONResponse({"error": "Failed to parse the request body as JSON"}, 422)
    state.requests.append(body)
    state.headers.append({k.lower(): v for k, v in request.headers.items()})
    state.bill_to.append(request.headers.get("x-hf-bill-to"))
    state.models.append(body.get("model"))
    if state.failures:
        return failure_response(state.failures.pop(0))
    invalid = _validate(request, body)
    if invalid is not None:
        invalid.headers["x-request-id"] = f"req-{state.count}"
        return invalid
    headers = {"x-request-id": f"req-{state.count}"}
    if body.get("stream"):
        return StreamingResponse(
            _stream(state, body), media_type="text/event-stream", headers=headers
        )
    return JSONResponse(_complete(state, body), headers=headers)


async def list_models(request: Request) -> Response:
    return JSONResponse({"object": "list", "data": MODELS})


def create_app() -> Starlette:
    """The router loopback app, with empty ``requests``, ``headers``, ``bill_to``, ``models`` and
    ``failures`` on its state."""
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", list_models, methods=["GET"]),
        ]
    )
    app.state.requests = []
    app.state.headers = []
    app.state.bill_to = []
    app.state.models = []
    app.state.failures = []
    app.state.count = 0
    return app
