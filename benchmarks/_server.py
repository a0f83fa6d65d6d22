"""A minimal HTTP/1.1 keep-alive server that answers OpenAI chat completions at once.

    python -m benchmarks._server [--port N]      # prints "PORT <n>" once it listens

It exists so that the per-call overhead benchmark measures the clients, not the server: it runs
in its own process, on plain asyncio protocols (no framework), and every answer is prepared in
advance. ``POST /v1/chat/completions`` answers a canned completion (``Content-Length``), or, when
the body asks for ``"stream": true``, a canned stream of ``STREAM_CHUNKS`` content chunks, a
finish chunk, a usage chunk and ``[DONE]`` as server-sent events, in chunked transfer encoding
(one HTTP chunk per event). Anything else gets 404. Requests may carry ``Content-Length`` or
chunked bodies; connections stay open until the client closes them or sends
``Connection: close``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

MODEL = "gpt-4o-mini"
ANSWER = "The capital of France is Paris."
STREAM_CHUNKS = 200
USAGE = {"prompt_tokens": 14, "completion_tokens": 8, "total_tokens": 22}
ROUTE = b"/v1/chat/completions"
_STREAM = re.compile(rb'"stream"\s*:\s*true')


def _completion() -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1_760_000_000,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
            "system_fingerprint": "fp_bench",
        },
        separators=(",", ":"),
    ).encode()


def _chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1_760_000_000,
        "model": MODEL,
        "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def stream_events() -> list[bytes]:
    """The SSE events of the canned stream, each ``data: ...\\n\\n``."""
    events = [_chunk({"role": "assistant", "content": ""})]
    events += [_chunk({"content": f" tok{i}"}) for i in range(STREAM_CHUNKS)]
    events.append(_chunk({}, "stop"))
    usage = _chunk({})
    usage["choices"] = []
    usage["usage"] = {**USAGE, "completion_tokens": STREAM_CHUNKS}
    events.append(usage)
    out = [b"data: " + json.dumps(e, separators=(",", ":")).encode() + b"\n\n" for e in events]
    out.append(b"data: [DONE]\n\n")
    return out


def _http_chunks(parts: list[bytes]) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)
    return body + b"0\r\n\r\n"


class _Date:
    """The Date header, formatted once a second instead of once a request."""

    def __init__(self) -> None:
        self.second = -1
        self.value = b""

    def get(self) -> bytes:
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.value = email.utils.formatdate(now, usegmt=True).encode()
        return self.value


_DATE = _Date()
_COMPLETION = _completion()
_STREAM_BODY = _http_chunks(stream_events())
_NOT_FOUND = b'{"error":{"message":"not found","type":"invalid_request_error"}}'


def _head(status: bytes, content_type: bytes, framing: bytes, close: bool) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ndate: " + _DATE.get() + b"\r\ncontent-type: " + content_type
        + b"\r\n" + framing + b"x-request-id: req_bench\r\n"
        + (b"connection: close\r\n" if close else b"") + b"\r\n"
    )  # fmt: skip


def _chunked_body(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """A chunked request body starting at ``start``: (body, end offset), None if incomplete."""
    body = bytearray()
    pos = start
    while True:
        line_end = buffer.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(bytes(buffer[pos:line_end]).split(b";", 1)[0], 16)
        pos = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", pos - 2)
            return (bytes(body), trailer_end + 4) if trailer_end >= 0 else None
        if len(buffer) < pos + size + 2:
            return None
        body += buffer[pos : pos + size]
        pos += size + 2


class _Connection(asyncio.Protocol):
    """One client connection: parse pipelined requests, answer each at once."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None and self._one():
            pass

    def _one(self) -> bool:
        buffer = self.buffer
        head_end = buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return False
        lines = bytes(buffer[:head_end]).split(b"\r\n")
        method, path, _version = lines[0].split(b" ", 2)
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        start = head_end + 4
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            found = _chunked_body(buffer, start)
            if found is None:
                return False
            body, end = found
        else:
            end = start + int(headers.get(b"content-length", b"0"))
            if len(buffer) < end:
                return False
            body = bytes(buffer[start:end])
        del buffer[:end]
        close = headers.get(b"connection", b"").lower() == b"close"
        self._answer(method, path.split(b"?", 1)[0], body, close)
        return True

    def _answer(self, method: bytes, path: bytes, body: bytes, close: bool) -> None:
        transport = self.transport
        assert transport is not None
        if method == b"POST" and path == ROUTE:
            if _STREAM.search(body):
                head = _head(
                    b"200 OK", b"text/event-stream", b"transfer-encoding: chunked\r\n", close
                )
                transport.write(head + _STREAM_BODY)
            else:
                length = b"content-length: %d\r\n" % len(_COMPLETION)
                transport.write(_head(b"200 OK", b"application/json", length, close) + _COMPLETION)
        else:
            length = b"content-length: %d\r\n" % len(_NOT_FOUND)
            transport.write(
                _head(b"404 Not Found", b"application/json", length, close) + _NOT_FOUND
            )
        if close:
            transport.close()
            self.transport = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(port: int) -> None:
    """Listen on 127.0.0.1:``port`` (0: any free port) until killed."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Connection, "127.0.0.1", port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"PORT {bound}\n")
    sys.stdout.flush()
    async with server:
        await server.serve_forever()


ROOT = Path(__file__).resolve().parent.parent


class ServerProcess:
    """This server in a child process (so it never shares the client's interpreter)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._server"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"the benchmark server did not start: {line!r}")
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.pid = self.process.pid

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _request_bytes(stream: bool) -> bytes:
    body = json.dumps(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "max_tokens": 32,
            **({"stream": True} if stream else {}),
        }
    ).encode()
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    )


async def _ceiling(port: int, concurrency: int, seconds: float, stream: bool) -> float:
    request = _request_bytes(stream)
    count = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal count
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < stop_at:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if stream:
                await reader.readuntil(b"\r\n0\r\n\r\n")
            else:
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
            count += 1
        writer.close()
        await writer.wait_closed()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - start)


def ceiling(port: int, concurrency: int, seconds: float = 1.0, *, stream: bool = False) -> float:
    """Requests/s this server answers to a bare asyncio socket client (keep-alive)."""
    return asyncio.run(_ceiling(port, concurrency, seconds, stream))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C on a server started by hand
        asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
