"""A loopback server that injects faults into chat completions, for the reliability tests.

    app = FaultApp()
    with LoopbackServer(app) as server:
        app.script("call-1", "503", "503")       # the next two requests tagged call-1 fail
        client.chat("openai:gpt-4.1-mini", "call-1")
        assert app.count("call-1") == 3          # two 503s, then the answer

One fault script serves two wire formats, so a fault reaches both kinds of transport llmos has:

- ``POST /v1/chat/completions``: OpenAI's format (the ``openai`` provider through the openai SDK,
  and the ``openai-compatible`` kind);
- ``POST /studio/v1/chat/completions``: AI21's format (the ``ai21`` provider, over httpx).

A request's *tag* is the text of its last user message. Each tag has a FIFO of faults (shared by
both routes, or one per route with ``script(..., path=...)``); a request pops the first one and
suffers it, and once the FIFO is empty it is answered normally (plain or streamed, as asked).
Faults by name (see ``FAULTS``):

- ``429s`` / ``429ms`` / ``429date`` / ``429cap``: 429 with ``Retry-After: 2``; with
  ``retry-after-ms: 1500`` (and a ``Retry-After: 7`` it must win over); with an HTTP date 5 s
  ahead; with ``Retry-After: 3600`` (over any sane cap);
- ``500`` ``502`` ``503`` ``504`` ``408`` ``409`` ``401`` ``400``: that status with an error body;
  ``503ra``: 503 with ``Retry-After: 1``;
- ``quota``: 429 ``insufficient_quota``; ``context``: 400 ``context_length_exceeded``;
- ``noretry``: 503 with ``x-should-retry: false``; ``forceretry``: 400 with
  ``x-should-retry: true``;
- ``echo401``: 401 whose message echoes the request's Authorization header (as some servers do);
- ``reset``: headers and part of the body, then the connection is dropped (in a stream: the
  role-only first chunk, then the drop, so no content has been sent);
- ``stall``: nothing at all until the client gives up (it hangs up) or ``max_stall`` passes;
- ``stallstream``: a stream sends its first content chunk, then stalls the same way;
- ``truncated``: a stream sends two content chunks and ends without finish_reason or [DONE];
- ``malformed``: a 200 whose body (or, in a stream, whose first event) is not JSON;
- ``html``: a 502 HTML error page, as a proxy in front of the provider sends;
- ``redirect``: a 307 to ``app.redirect_to`` (another origin), to see where keys follow.

Test hooks: ``count(tag)`` is how many requests carried ``tag``; ``authorizations`` lists
``(path, Authorization header or None)`` per request; ``requests`` the JSON bodies in order;
``default`` is a FIFO of faults for requests whose tag has no script.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import threading
import time
from collections import Counter, deque
from typing import Any

__all__ = ["ANSWER", "FAULTS", "STREAM_PIECES", "FaultApp", "InjectedReset"]

ANSWER = "The capital of France is Paris."
STREAM_PIECES = ["The", " capital", " of", " France", " is", " Paris", "."]
USAGE = {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
CREATED = 1764547200

OPENAI_PATH = "/v1/chat/completions"
AI21_PATH = "/studio/v1/chat/completions"

#: Every fault this server can inject, with what it does.
FAULTS: dict[str, str] = {
    "429s": "429 with Retry-After: 2 (seconds)",
    "429ms": "429 with retry-after-ms: 1500 and Retry-After: 7",
    "429date": "429 with Retry-After as an HTTP date 5 s ahead",
    "429cap": "429 with Retry-After: 3600",
    "500": "500 server error",
    "502": "502 bad gateway",
    "503": "503 service unavailable",
    "503ra": "503 with Retry-After: 1",
    "504": "504 gateway timeout",
    "408": "408 request timeout",
    "409": "409 conflict",
    "401": "401 invalid key",
    "400": "400 invalid request",
    "quota": "429 insufficient_quota",
    "context": "400 context_length_exceeded",
    "noretry": "503 with x-should-retry: false",
    "forceretry": "400 with x-should-retry: true",
    "echo401": "401 echoing the Authorization header",
    "reset": "connection dropped mid-body",
    "stall": "no byte until the client hangs up",
    "stallstream": "a stream stalls after its first content chunk",
    "truncated": "a stream ends after two content chunks, unfinished",
    "malformed": "a 200 whose body or first event is not JSON",
    "html": "a 502 HTML error page",
    "redirect": "a 307 to another origin",
}

_HTML = (
    "<html><head><title>502 Bad Gateway</title></head>"
    "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
)


class InjectedReset(Exception):
    """Raised inside the app to make uvicorn drop the connection mid-answer."""


class _QuietResets(logging.Filter):
    """Keeps uvicorn from logging a traceback for every injected reset."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, InjectedReset)


_quiet = _QuietResets()
logging.getLogger("uvicorn.error").addFilter(_quiet)


def _error(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _status_fault(name: str, authorization: str | None) -> tuple[int, Any, dict[str, str]] | None:
    """(status, body, headers) of the faults that are a plain error answer."""
    server = _error("The server had an error while processing your request.", "server_error")
    if name == "429s":
        return (
            429,
            _error("Rate limit reached", "requests", "rate_limit_exceeded"),
            {"retry-after": "2"},
        )
    if name == "429ms":
        return (
            429,
            _error("Rate limit reached", "requests", "rate_limit_exceeded"),
            {
                "retry-after-ms": "1500",
                "retry-after": "7",
            },
        )
    if name == "429date":
        when = email.utils.formatdate(time.time() + 5, usegmt=True)
        return (
            429,
            _error("Rate limit reached", "requests", "rate_limit_exceeded"),
            {"retry-after": when},
        )
    if name == "429cap":
        return (
            429,
            _error("Rate limit reached", "requests", "rate_limit_exceeded"),
            {"retry-after": "3600"},
        )
    if name in ("500", "502", "503", "504"):
        return int(name), server, {}
    if name == "503ra":
        return 503, server, {"retry-after": "1"}
    if name == "408":
        return 408, _error("Request timed out.", "timeout"), {}
    if name == "409":
        return 409, _error("Conflict, please retry.", "conflict"), {}
    if name == "401":
        return (
            401,
            _error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
            {},
        )
    if name == "echo401":
        shown = (authorization or "").removeprefix("Bearer ")
        message = f"Incorrect API key provided: {shown}. Authorization: {authorization}"
        return 401, _error(message, "invalid_request_error", "invalid_api_key"), {}
    if name == "400":
        return 400, _error("Invalid value for 'temperature'.", "invalid_request_error"), {}
    if name == "quota":
        return (
            429,
            _error(
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                "insufficient_quota",
            ),
            {},
        )
    if name == "context":
        return (
            400,
            _error(
                "This model's maximum context length is 8192 tokens. However, your messages "
                "resulted in 9000 tokens.",
                "invalid_request_error",
                "context_length_exceeded",
            ),
            {},
        )
    if name == "noretry":
        return 503, server, {"x-should-retry": "false"}
    if name == "forceretry":
        return (
            400,
            _error("Try again, please.", "invalid_request_error"),
            {"x-should-retry": "true"},
        )
    if name == "html":
        return 502, _HTML, {"content-type": "text/html"}
    return None


class FaultApp:
    """The ASGI app: a chat completions endpoint in two wire formats, with scripted faults."""

    def __init__(self, *, max_stall: float = 5.0) -> None:
        self.max_stall = max_stall
        self.redirect_to = "http://127.0.0.1:9/v1/chat/completions"
        self.default: deque[str] = deque()
        self.requests: list[Any] = []
        self.authorizations: list[tuple[str, str | None]] = []
        self._scripts: dict[tuple[str | None, str], deque[str]] = {}
        self._counts: Counter[tuple[str, str]] = Counter()
        self._injected: Counter[str] = Counter()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ test hooks

    def script(self, tag: str, *faults: str, path: str | None = None) -> None:
        """Queue ``faults`` for the next requests tagged ``tag`` (after any already queued).

        With ``path``, only requests on that route take them (and before any shared script).
        """
        for fault in faults:
            if fault not in FAULTS:
                raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        with self._lock:
            self._scripts.setdefault((path, tag), deque()).extend(faults)

    def count(self, tag: str, path: str | None = None) -> int:
        """Requests received whose tag was ``tag`` (on ``path`` only, when given)."""
        with self._lock:
            return sum(n for (p, t), n in self._counts.items() if t == tag and path in (None, p))

    def counts(self) -> dict[str, int]:
        """Requests received per tag, over both paths."""
        with self._lock:
            out: Counter[str] = Counter()
            for (_, tag), n in self._counts.items():
                out[tag] += n
            return dict(out)

    def injected(self) -> dict[str, int]:
        """How many times each fault was served."""
        with self._lock:
            return dict(self._injected)

    def _take(self, path: str, tag: str) -> str | None:
        with self._lock:
            self._counts[path, tag] += 1
            fault: str | None = None
            for key in ((path, tag), (None, tag)):
                queue = self._scripts.get(key)
                if queue:
                    fault = queue.popleft()
                    break
            else:
                scripted = (path, tag) in self._scripts or (None, tag) in self._scripts
                if not scripted and self.default:
                    fault = self.default.popleft()
            if fault is not None:
                self._injected[fault] += 1
            return fault

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if scope["method"] != "POST" or path not in (OPENAI_PATH, AI21_PATH):
            await _send(send, 404, {"detail": "Not Found"})
            return
        raw = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        authorization = headers.get("authorization")
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        tag = _tag(body)
        with self._lock:
            self.requests.append(body)
            self.authorizations.append((path, authorization))
        fault = self._take(path, tag)
        flavour = "ai21" if path == AI21_PATH else "openai"
        streamed = isinstance(body, dict) and bool(body.get("stream"))
        model = str(body.get("model")) if isinstance(body, dict) else "unknown"
        await self._answer(fault, flavour, streamed, model, body, authorization, receive, send)

    async def _answer(
        self,
        fault: str | None,
        flavour: str,
        streamed: bool,
        model: str,
        body: Any,
        authorization: str | None,
        receive: Any,
        send: Any,
    ) -> None:
        plain = _status_fault(fault or "", authorization)
        if plain is not None:
            status, payload, headers = plain
            await _send(send, status, payload, headers)
            return
        if fault == "redirect":
            await _send(send, 307, {"detail": "moved"}, {"location": self.redirect_to})
            return
        if fault == "stall":
            await self._stall(receive)
            return
        if not streamed:
            await self._plain(fault, flavour, model, send)
            return
        await self._stream(fault, flavour, model, body, receive, send)

    async def _stall(self, receive: Any) -> None:
        # The request body has been read, so the next message is the client hanging up.
        try:
            await asyncio.wait_for(receive(), timeout=self.max_stall)
        except asyncio.TimeoutError:
            pass

    async def _plain(self, fault: str | None, flavour: str, model: str, send: Any) -> None:
        if fault == "malformed":
            await _send_raw(send, 200, b'{"id": "chatcmpl-bad", "choices": [', "application/json")
            return
        data = json.dumps(_completion(flavour, model)).encode()
        if fault == "reset":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(data)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": data[:20], "more_body": True})
            raise InjectedReset("connection reset mid-body")
        await _send_raw(send, 200, data, "application/json")

    async def _stream(
        self, fault: str | None, flavour: str, model: str, body: Any, receive: Any, send: Any
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )

        async def event(data: Any) -> None:
            text = data if isinstance(data, str) else json.dumps(data)
            await send(
                {
                    "type": "http.response.body",
                    "body": f"data: {text}\n\n".encode(),
                    "more_body": True,
                }
            )

        if fault == "malformed":
            await event("{this is not json")
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await event(_chunk(flavour, model, {"role": "assistant", "content": ""}))
        if fault == "reset":
            raise InjectedReset("connection reset mid-stream, before any content")
        for index, piece in enumerate(STREAM_PIECES):
            if fault == "truncated" and index == 2:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await event(_chunk(flavour, model, {"content": piece}))
            if fault == "stallstream" and index == 0:
                await self._stall(receive)
                return
        wants_usage = isinstance(body, dict) and bool(
            (body.get("stream_options") or {}).get("include_usage")
        )
        if flavour == "ai21":
            await event(_chunk(flavour, model, {"content": ""}, "stop", USAGE))
        else:
            await event(_chunk(flavour, model, {}, "stop"))
            if wants_usage:
                await event(
                    {
                        "id": "chatcmpl-1",
                        "object": "chat.completion.chunk",
                        "created": CREATED,
                        "model": model,
                        "choices": [],
                        "usage": USAGE,
                    }
                )
        await event("[DONE]")
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _tag(body: Any) -> str:
    """The text of the last user message, which tests use to name a call."""
    if not isinstance(body, dict):
        return ""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


def _completion(flavour: str, model: str) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "id": "chatcmpl-1",
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": ANSWER},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
    }
    if flavour == "openai":
        answer.update(object="chat.completion", created=CREATED)
    else:
        answer["meta"] = {"requestDurationMillis": 1}
    return answer


def _chunk(
    flavour: str,
    model: str,
    delta: dict[str, Any],
    finish: str | None = None,
    usage: Any = None,
) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    chunk: dict[str, Any] = {"id": "chatcmpl-1", "model": model, "choices": [choice]}
    if flavour == "openai":
        chunk.update(object="chat.completion.chunk", created=CREATED)
    else:
        chunk["usage"] = usage
    return chunk


async def _send(
    send: Any, status: int, payload: Any, headers: dict[str, str] | None = None
) -> None:
    headers = dict(headers or {})
    media = headers.pop("content-type", "application/json")
    data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
    await _send_raw(send, status, data, media, headers)


async def _send_raw(
    send: Any, status: int, data: bytes, media: str, headers: dict[str, str] | None = None
) -> None:
    raw = [(b"content-type", media.encode()), (b"content-length", str(len(data)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})
