"""A loopback server that speaks text-generation-inference (TGI), quirks included.

Routes: ``POST /generate``, ``POST /generate_stream`` and ``POST /v1/chat/completions`` (plain
and streamed). ``create_app(chat_route=False)`` (or ``app.state.chat_route = False``) makes a
"generate-only" server whose chat route answers 404 with an empty body, as TGI's router does for
a route it lacks. ``create_app(token="...")`` requires ``Authorization: Bearer <token>``
(TGI's ``--api-key``), answering 401 ``{"error": "Unauthorized", "error_type": "authentication"}``.

Default answers (both routes): text ``"The capital of France is Paris."`` as seven tokens, then
the special token ``</s>`` (counted in generated_tokens, never part of the text), finish_reason
``eos_token``; ``stop_sequence`` when the request has stop sequences (no ``</s>``); ``length``
when ``max_new_tokens`` (``max_tokens`` on chat) is smaller than the answer (cut to that many
tokens). A JSON grammar (``parameters.grammar`` or chat ``response_format``, TGI style
``{"type": "json" | "json_object", "value": schema}``) answers ``{"answer": "Paris"}``. Chat with
``tools`` answers a call of ``get_weather`` with ``{"city": "Paris"}`` and finish_reason
``tool_calls``; like older TGI the arguments are a JSON *object*, the call id is ``"0"``, and
streamed ``tool_calls`` deltas are single objects, not lists.

``/generate`` answers ``{"generated_text", "details"}`` (details only with ``details: true``:
finish_reason, generated_tokens, seed, prefill ``[]``, tokens, and top_tokens with
``top_n_tokens``) and the headers ``x-prompt-tokens`` / ``x-generated-tokens``.
``/generate_stream`` sends ``{"index", "token": {"id", "text", "logprob", "special"},
"top_tokens", "generated_text": null, "details": null}`` per token; the last event carries the
full ``generated_text`` and ``details`` (finish_reason, generated_tokens, seed, input_length).
Prompt tokens are the whitespace-separated words of ``inputs`` (of the messages, on chat).

Validation like TGI's, answered 422 ``{"error": "Input validation error: ...", "error_type":
"validation"}``: temperature <= 0, top_p outside (0, 1), more than 4 stop sequences, prompt +
max_new_tokens over 4096; a body that does not deserialize (no ``inputs``, an unknown grammar
type, an OpenAI-style ``json_schema`` response_format) -> 422 plain text, as axum answers.

Triggers, in ``inputs`` (or the last user message on chat):

- ``[[stream-error]]``: after two tokens the stream sends ``data: {"error": "Request failed
  during generation: Server error: CUDA out of memory", "error_type": "generation"}``;
- ``[[overloaded-stream]]``: the first event is ``{"error": "Model is overloaded",
  "error_type": "overloaded"}``;
- ``[[cut]]``: the stream stops after two tokens, without details;
- ``[[done]]``: ``/generate_stream`` ends with ``data: [DONE]`` after the final event.

Test hooks on ``app.state``: ``requests`` receives every JSON body in order and ``headers`` the
request headers of each (lower-cased); while ``failures`` (``(status, body, headers)`` tuples)
is non-empty, each request pops the first one and is answered with it (a non-str body is
JSON-serialised). :func:`loading` builds the 503 "model is loading" failure.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from tests.servers.hf_router_server import failure_response

ANSWER_TOKENS = ["The", " capital", " of", " France", " is", " Paris", "."]
JSON_TOKENS = ['{"answer"', ': "Paris"}']
EOS = "</s>"
TOOL_NAME = "get_weather"
TOOL_ARGUMENTS = {"city": "Paris"}
MAX_TOTAL_TOKENS = 4096
MAX_STOP_SEQUENCES = 4
MODEL_ID = "tgi-loopback/model"


def loading(estimated_time: float = 20.0, model: str = "gpt2") -> tuple[int, Any, dict[str, str]]:
    """The 503 failure of a cold model: ``{"error": "... is currently loading", ...}``."""
    return (
        503,
        {"error": f"Model {model} is currently loading", "estimated_time": estimated_time},
        {},
    )


def words(text: str) -> int:
    """The server's deterministic token count of a text."""
    return len(text.split())


def _invalid(message: str) -> JSONResponse:
    return JSONResponse(
        {"error": f"Input validation error: {message}", "error_type": "validation"}, 422
    )


def _tokens(pieces: list[str], *, eos: bool, top_n: int) -> list[dict[str, Any]]:
    out = []
    for i, text in enumerate([*pieces, EOS] if eos else pieces):
        token: dict[str, Any] = {
            "id": 1000 + i,
            "text": text,
            "logprob": round(-0.1 * (i + 1), 3),
            "special": text == EOS,
        }
        top = [
            {"id": 2000 + j, "text": f"alt{j}", "logprob": -1.0 - j, "special": False}
            for j in range(top_n)
        ]
        out.append({"token": token, "top": top})
    return out


def _plan(json_answer: bool, stop: Any, limit: Any) -> tuple[list[str], str, bool]:
    """(token texts, finish reason, whether </s> ends them)."""
    pieces = JSON_TOKENS if json_answer else ANSWER_TOKENS
    if isinstance(limit, int) and limit < len(pieces):
        return pieces[:limit], "length", False
    if stop:
        return pieces, "stop_sequence", False
    return pieces, "eos_token", True


def _grammar_is_json(grammar: Any) -> bool | Response:
    if grammar is None:
        return False
    if not isinstance(grammar, dict) or grammar.get("type") not in ("json", "json_object", "regex"):
        return PlainTextResponse(
            "Failed to deserialize the JSON body into the target type: "
            "unknown variant for grammar `type`",
            422,
        )
    if "value" not in grammar:
        return PlainTextResponse(
            "Failed to deserialize the JSON body into the target type: missing field `value`", 422
        )
    return grammar["type"] != "regex"


def _check_params(params: dict[str, Any], prompt: int) -> Response | None:
    temperature = params.get("temperature")
    if temperature is not None and temperature <= 0:
        return _invalid("`temperature` must be strictly positive")
    top_p = params.get("top_p")
    if top_p is not None and not 0 < top_p < 1:
        return _invalid("`top_p` must be > 0.0 and < 1.0")
    if len(params.get("stop") or []) > MAX_STOP_SEQUENCES:
        return _invalid(f"`stop` supports up to {MAX_STOP_SEQUENCES} stop sequences")
    new = params.get("max_new_tokens") or 100
    if prompt + new > MAX_TOTAL_TOKENS:
        return _invalid(
            f"`inputs` tokens + `max_new_tokens` must be <= {MAX_TOTAL_TOKENS}. "
            f"Given: {prompt} `inputs` tokens and {new} `max_new_tokens`"
        )
    return None


async def _receive(request: Request, *, exists: bool = True) -> tuple[Any, Response | None]:
    """The JSON body, recorded; or the answer to send instead (404, failure, auth, bad JSON)."""
    state = request.app.state
    raw = await request.body()
    try:
        body = json.loads(raw)
    except ValueError:
        return None, PlainTextResponse("Failed to parse the request body as JSON", 422)
    state.requests.append(body)
    state.headers.append({k.lower(): v for k, v in request.headers.items()})
    if not exists:  # a route this server lacks: TGI's router answers 404 with no body
        return body, Response(status_code=404)
    if state.failures:
        return body, failure_response(state.failures.pop(0))
    if state.token and request.headers.get("authorization") != f"Bearer {state.token}":
        return body, JSONResponse({"error": "Unauthorized", "error_type": "authentication"}, 401)
    return body, None


def _sse(payload: Any) -> str:
    return f"data: {json.dumps(payload)}\n\n"


def _stream_trouble(trigger: str, i: int) -> str | None:
    """An in-stream error event, "cut" to stop, or None to go on, before token ``i``."""
    if i == 0 and "[[overloaded-stream]]" in trigger:
        return _sse({"error": "Model is overloaded", "error_type": "overloaded"})
    if i == 2 and "[[stream-error]]" in trigger:
        return _sse(
            {
                "error": "Request failed during generation: Server error: CUDA out of memory",
                "error_type": "generation",
            }
        )
    if i == 2 and "[[cut]]" in trigger:
        return "cut"
    return None


# --------------------------------------------------------------------------- /generate


_Planned = tuple[dict[str, Any], dict[str, Any], int, list[str], str, list[dict[str, Any]]]


async def _prepare_generate(request: Request) -> Response | _Planned:
    """The request and its planned answer, or the error answer to send instead."""
    body, early = await _receive(request)
    if early is not None:
        return early
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), str):
        return PlainTextResponse(
            "Failed to deserialize the JSON body into the target type: missing field `inputs`", 422
        )
    params = body.get("parameters") or {}
    prompt = words(body["inputs"])
    is_json = _grammar_is_json(params.get("grammar"))
    if isinstance(is_json, Response):
        return is_json
    problem = _check_params(params, prompt)
    if problem is not None:
        return problem
    pieces, finish, eos = _plan(bool(is_json), params.get("stop"), params.get("max_new_tokens"))
    tokens = _tokens(pieces, eos=eos, top_n=params.get("top_n_tokens") or 0)
    return body, params, prompt, pieces, finish, tokens


async def generate_once(request: Request) -> Response:
    planned = await _prepare_generate(request)
    if isinstance(planned, Response):
        return planned
    _, params, prompt, pieces, finish, tokens = planned
    answer: dict[str, Any] = {"generated_text": "".join(pieces)}
    if params.get("details"):
        answer["details"] = {
            "finish_reason": finish,
            "generated_tokens": len(tokens),
            "seed": params.get("seed"),
            "prefill": [],
            "tokens": [t["token"] for t in tokens],
        }
        if params.get("top_n_tokens"):
            answer["details"]["top_tokens"] = [t["top"] for t in tokens]
    headers = {
        "x-prompt-tokens": str(prompt),
        "x-generated-tokens": str(len(tokens)),
        "x-compute-type": "loopback",
    }
    return JSONResponse(answer, headers=headers)


async def generate_stream(request: Request) -> Response:
    planned = await _prepare_generate(request)
    if isinstance(planned, Response):
        return planned
    body, params, prompt, pieces, finish, tokens = planned
    trigger = body["inputs"]

    async def events() -> AsyncIterator[str]:
        for i, item in enumerate(tokens):
            trouble = _stream_trouble(trigger, i)
            if trouble == "cut":
                return
            if trouble is not None:
                yield trouble
                return
            last = i == len(tokens) - 1
            event: dict[str, Any] = {
                "index": i + 1,
                "token": item["token"],
                "top_tokens": item["top"] or None,
                "generated_text": None,
                "details": None,
            }
            if last:
                event["generated_text"] = "".join(pieces)
                if params.get("details"):
                    event["details"] = {
                        "finish_reason": finish,
                        "generated_tokens": len(tokens),
                        "seed": params.get("seed"),
                        "input_length": prompt,
                    }
            yield _sse(event)
        if "[[done]]" in trigger:
            yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


# --------------------------------------------------------------------------- chat


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


def _chunk(
    model: str, delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None
) -> str:
    choices = (
        []
        if delta is None
        else [
            {
                "index": 0,
                "delta": {"role": "assistant", **delta},
                "logprobs": None,
                "finish_reason": finish,
            }
        ]
    )
    return _sse(
        {
            "object": "chat.completion.chunk",
            "id": "",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "2.4.1-native",
            "choices": choices,
            "usage": usage,
        }
    )


async def chat(request: Request) -> Response:
    body, early = await _receive(request, exists=request.app.state.chat_route)
    if early is not None:
        return early
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return PlainTextResponse(
            "Failed to deserialize the JSON body into the target type: missing field `messages`",
            422,
        )
    is_json = _grammar_is_json(body.get("response_format"))
    if isinstance(is_json, Response):
        return is_json
    model = str(body.get("model") or MODEL_ID)
    prompt = sum(words(str(m.get("content") or "")) for m in body["messages"])
    pieces, finish, eos = _plan(bool(is_json), body.get("stop"), body.get("max_tokens"))
    completion = len(pieces) + (1 if eos else 0)
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    tools = bool(body.get("tools"))
    if not body.get("stream"):
        message: dict[str, Any] = {"role": "assistant", "content": "".join(pieces)}
        if tools:
            finish = "tool_calls"
            message = {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "0",
                        "type": "function",
                        "function": {
                            "name": TOOL_NAME,
                            "description": None,
                            "arguments": TOOL_ARGUMENTS,
                        },
                    }
                ],
            }
        return JSONResponse(
            {
                "object": "chat.completion",
                "id": "",
                "created": int(time.time()),
                "model": model,
                "system_fingerprint": "2.4.1-native",
                "choices": [
                    {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
                ],
                "usage": usage,
            }
        )
    trigger = _last_user_text(body)
    include_usage = (body.get("stream_options") or {}).get("include_usage")

    async def events() -> AsyncIterator[str]:
        if tools:
            arguments = json.dumps(TOOL_ARGUMENTS)
            parts = [arguments[:8], arguments[8:]]
            yield _chunk(
                model,
                {
                    "tool_calls": {
                        "index": 0,
                        "id": "",
                        "type": "function",
                        "function": {"name": TOOL_NAME, "arguments": ""},
                    }
                },
            )
            for part in parts:
                yield _chunk(
                    model,
                    {
                        "tool_calls": {
                            "index": 0,
                            "id": "",
                            "type": "function",
                            "function": {"name": None, "arguments": part},
                        }
                    },
                )
            yield _chunk(model, {}, "tool_calls")
        else:
            for i, piece in enumerate(pieces):
                trouble = _stream_trouble(trigger, i)
                if trouble == "cut":
                    return
                if trouble is not None:
                    yield trouble
                    return
                last = i == len(pieces) - 1
                yield _chunk(model, {"content": piece}, finish if last else None)
        if include_usage:
            yield _chunk(model, None, usage=usage)
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def create_app(*, chat_route: bool = True, token: str | None = None) -> Starlette:
    """The TGI loopback app, with empty ``requests``, ``headers`` and ``failures`` on its state."""
    app = Starlette(
        routes=[
            Route("/generate", generate_once, methods=["POST"]),
            Route("/generate_stream", generate_stream, methods=["POST"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
        ]
    )
    app.state.requests = []
    app.state.headers = []
    app.state.failures = []
    app.state.chat_route = chat_route
    app.state.token = token
    return app
