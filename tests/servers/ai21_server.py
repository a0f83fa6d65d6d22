"""A loopback server that speaks AI21 Studio's chat completions wire format, quirks included.

Route: ``POST /studio/v1/chat/completions`` (plain and ``"stream": true``). Like AI21 it answers
without ``object``/``created``, adds ``meta.requestDurationMillis``, and in streams sends usage as
null on every chunk but the last, ``: keep-alive`` comment lines, a first delta of
``{"role": "assistant"}`` and an empty-content last delta carrying finish_reason and usage.

Default answers:

- text ``"The capital of France is Paris."`` (streamed in several chunks), finish_reason ``stop``;
- with ``tools``: a call of ``get_weather`` with ``{"city": "Paris"}``, finish_reason
  ``tool_calls`` (streamed as a name fragment and two argument fragments);
- with ``response_format: {"type": "json_object"}``: ``{"answer": "Paris"}``;
- with ``documents``: ``"According to document <id or 0>: <first document's content>"``.

Validation like AI21's (FastAPI style): a missing bearer token -> 401 ``{"detail": ...}``; a
model not named ``jamba*`` -> 404 ``{"detail": "Not Found"}``; non-string message content, a
bad role, ``max_tokens`` outside 1..4096, temperature outside 0..2, top_p outside 0..1, an
unknown response_format type, a document without string content, or a body that is not JSON ->
422 ``{"detail": [{"loc": [...], "msg": ..., "type": ...}]}``.

Triggers, in the text of the last user message:

- ``[[length]]``: finish_reason ``length``;
- ``[[no-model]]``: the answer (or chunks) carry no ``model`` field;
- ``[[stream-error]]``: after two content chunks the stream sends
  ``data: {"error": {"message": "model crashed mid-stream", "type": "server_error"}}``;
- ``[[stream-detail]]``: the first event of the stream is ``data: {"detail": "Model overloaded",
  "status": 503}``;
- ``[[cut]]``: the stream stops after two content chunks, with no finish_reason and no [DONE];
- ``[[slow]]``: the answer (or, in a stream, the chunk after the first delta) waits 2 s.

Test hooks: ``app.state.requests`` receives every JSON body in order (and
``app.state.headers`` the request headers of each, lower-cased); while
``app.state.failures`` (``(status, body, headers)`` tuples) is non-empty, each request pops the
first one and is answered with it (a non-str body is JSON-serialised).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

ANSWER = "The capital of France is Paris."
JSON_ANSWER = '{"answer": "Paris"}'
TOOL_NAME = "get_weather"
TOOL_ARGUMENTS = '{"city": "Paris"}'
MAX_TOKENS_LIMIT = 4096
_ROLES = {"system", "user", "assistant", "tool"}


def token_count(text: str) -> int:
    """The server's deterministic "token" count: whitespace-separated words."""
    return len(text.split())


def prompt_tokens(body: dict[str, Any]) -> int:
    """Prompt tokens the server reports for a request body."""
    total = sum(token_count(m.get("content") or "") for m in body.get("messages", []))
    total += sum(token_count(d.get("content", "")) for d in body.get("documents") or [])
    return total + 3 * len(body.get("messages", []))


def _invalid(loc: list[Any], msg: str, kind: str) -> JSONResponse:
    return JSONResponse({"detail": [{"loc": ["body", *loc], "msg": msg, "type": kind}]}, 422)


def _validate(body: Any) -> Response | None:
    """AI21-like validation of a chat body; None when it is acceptable."""
    if not isinstance(body, dict):
        return _invalid([], "Input should be a valid dictionary", "dict_type")
    model = body.get("model")
    if not isinstance(model, str):
        return _invalid(["model"], "Field required", "missing")
    if not model.startswith("jamba"):
        return JSONResponse({"detail": "Not Found"}, 404)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _invalid(["messages"], "List should have at least 1 item", "too_short")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            return _invalid(["messages", i, "role"], "Input should be a valid role", "enum")
        content = message.get("content")
        may_omit = message["role"] == "assistant" and message.get("tool_calls")
        if not (isinstance(content, str) or (content is None and may_omit)):
            return _invalid(
                ["messages", i, "content"], "Input should be a valid string", "string_type"
            )
        if message["role"] == "tool" and not isinstance(message.get("tool_call_id"), str):
            return _invalid(["messages", i, "tool_call_id"], "Field required", "missing")
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or not 1 <= max_tokens <= MAX_TOKENS_LIMIT
    ):
        return _invalid(
            ["max_tokens"],
            f"Input should be less than or equal to {MAX_TOKENS_LIMIT}",
            "less_than_equal",
        )
    temperature = body.get("temperature")
    if temperature is not None and not (
        isinstance(temperature, (int, float)) and 0 <= temperature <= 2
    ):
        return _invalid(["temperature"], "Input should be between 0 and 2", "range")
    top_p = body.get("top_p")
    if top_p is not None and not (isinstance(top_p, (int, float)) and 0 < top_p <= 1):
        return _invalid(["top_p"], "Input should be between 0 and 1", "range")
    fmt = body.get("response_format")
    if fmt is not None and (
        not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object")
    ):
        return _invalid(
            ["response_format", "type"], "Input should be 'text' or 'json_object'", "literal_error"
        )
    for i, doc in enumerate(body.get("documents") or []):
        if not isinstance(doc, dict) or not isinstance(doc.get("content"), str):
            return _invalid(["documents", i, "content"], "Field required", "missing")
    return None


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body["messages"]):
        if message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


def _answer(body: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
    """(text, tool calls) the server answers a body with."""
    if body.get("tools") and not any(m.get("role") == "tool" for m in body["messages"]):
        call = {
            "id": "call_" + uuid.uuid4().hex[:8],
            "type": "function",
            "function": {"name": TOOL_NAME, "arguments": TOOL_ARGUMENTS},
        }
        return None, [call]
    if (body.get("response_format") or {}).get("type") == "json_object":
        return JSON_ANSWER, []
    documents = body.get("documents") or []
    if documents:
        first = documents[0]
        return f"According to document {first.get('id', 0)}: {first['content']}", []
    return ANSWER, []


def _finish(text: str | None, calls: list[dict[str, Any]], trigger: str) -> str:
    if calls:
        return "tool_calls"
    return "length" if "[[length]]" in trigger else "stop"


def _usage(body: dict[str, Any], text: str | None, calls: list[dict[str, Any]]) -> dict[str, int]:
    prompt = prompt_tokens(body)
    completion = token_count(text or "") + sum(
        token_count(c["function"]["arguments"]) + 1 for c in calls
    )
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _pieces(text: str, size: int = 2) -> list[str]:
    words = text.split(" ")
    chunks = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    return [c if i == 0 else " " + c for i, c in enumerate(chunks)]


def _sse(data: Any) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


async def _stream(
    body: dict[str, Any], text: str | None, calls: list[dict[str, Any]], trigger: str
) -> AsyncIterator[bytes]:
    chunk_id = "chat-" + uuid.uuid4().hex
    base: dict[str, Any] = {"id": chunk_id}
    if "[[no-model]]" not in trigger:
        base["model"] = body["model"]

    def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _sse({**base, "choices": [choice], "usage": usage})

    yield b": keep-alive\n\n"
    if "[[stream-detail]]" in trigger:
        yield _sse({"detail": "Model overloaded", "status": 503})
        return
    yield chunk({"role": "assistant"})
    sent = 0
    for piece in _pieces(text or ""):
        if "[[slow]]" in trigger and sent == 1:
            await asyncio.sleep(2)
        if "[[stream-error]]" in trigger and sent == 2:
            yield _sse({"error": {"message": "model crashed mid-stream", "type": "server_error"}})
            return
        if "[[cut]]" in trigger and sent == 2:
            return
        yield chunk({"content": piece})
        yield b": keep-alive\n\n"
        sent += 1
    for index, call in enumerate(calls):
        head = {"index": index, "id": call["id"], "type": "function"}
        head["function"] = {"name": call["function"]["name"], "arguments": ""}
        yield chunk({"tool_calls": [head]})
        arguments = call["function"]["arguments"]
        half = len(arguments) // 2
        for part in (arguments[:half], arguments[half:]):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
    yield chunk({"content": ""}, _finish(text, calls, trigger), _usage(body, text, calls))
    yield b"data: [DONE]\n\n"


async def chat_completions(request: Request) -> Response:
    """AI21's ``/studio/v1/chat/completions``."""
    started = time.perf_counter()
    raw = await request.body()
    try:
        body = json.loads(raw)
    except ValueError:
        return _invalid([], "JSON decode error", "json_invalid")
    state = request.app.state
    state.requests.append(body)
    state.headers.append(dict(request.headers))
    if state.failures:
        status, payload, headers = state.failures.pop(0)
        if isinstance(payload, str):
            return Response(payload, status, headers=headers, media_type="text/plain")
        return Response(json.dumps(payload), status, headers=headers, media_type="application/json")
    if not request.headers.get("authorization", "").startswith("Bearer "):
        return JSONResponse({"detail": "Forbidden: Bad or missing API token."}, 401)
    invalid = _validate(body)
    if invalid is not None:
        return invalid
    text, calls = _answer(body)
    trigger = _last_user_text(body)
    if "[[slow]]" in trigger and not body.get("stream"):
        await asyncio.sleep(2)
    if body.get("stream"):
        return StreamingResponse(
            _stream(body, text, calls, trigger), media_type="text/event-stream"
        )
    answer: dict[str, Any] = {
        "id": "chat-" + uuid.uuid4().hex,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "tool_calls": calls or None},
                "logprobs": None,
                "finish_reason": _finish(text, calls, trigger),
            }
        ],
        "usage": _usage(body, text, calls),
        "meta": {"requestDurationMillis": int((time.perf_counter() - started) * 1000)},
    }
    if "[[no-model]]" not in trigger:
        answer["model"] = body["model"]
    return JSONResponse(answer)


def create_app() -> Starlette:
    """The AI21 loopback app, with empty ``requests``, ``headers`` and ``failures`` on its state."""
    app = Starlette(
        routes=[Route("/studio/v1/chat/completions", chat_completions, methods=["POST"])]
    )
    app.state.requests = []
    app.state.headers = []
    app.state.failures = []
    return app
