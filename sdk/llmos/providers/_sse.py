"""Server-sent events, decoded as the WHATWG spec says.

Handles multi-line ``data:`` fields (joined with newlines), ``:`` comments and keep-alives,
``event:``, ``id:`` and ``retry:`` fields, CRLF, CR and LF line endings, a leading BOM, and lines
split across network chunks. Events are dispatched at blank lines; at the end of the stream a
pending event is dispatched too, because some servers omit the last blank line. A stream cut off
mid-event then fails to parse as JSON, which the provider reports as a cut stream.

We keep this small module instead of httpx-sse because it works on raw bytes from any source
(sync, async, or a test's list of chunks), dispatches nothing for data-less events as the spec
requires, and leaves content-type and ``[DONE]`` handling to the provider that knows its dialect.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterable, Generator, Iterable
from dataclasses import dataclass
from typing import Any

from llmos.errors import InvalidResponseError

__all__ = ["DONE", "SSEDecoder", "SSEEvent", "aiter_events", "iter_events", "parse_data"]

#: The sentinel data OpenAI-style servers send as their last event.
DONE = "[DONE]"


@dataclass
class SSEEvent:
    """One dispatched event."""

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Incremental decoder: feed it byte chunks, get back the events they complete."""

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None
        self._started = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Events completed by ``chunk``."""
        if not chunk:
            return []
        buffer = self._buffer + chunk
        if not self._started:
            self._started = True
            if buffer.startswith(b"\xef\xbb\xbf"):
                buffer = buffer[3:]
        # A CR at the end may be the first half of a CRLF split across chunks: keep it back.
        hold = b""
        if buffer.endswith(b"\r"):
            buffer, hold = buffer[:-1], b"\r"
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *lines, rest = buffer.split(b"\n")
        self._buffer = rest + hold
        events: list[SSEEvent] = []
        for raw in lines:
            event = self._line(raw.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None  # a comment or keep-alive
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = SSEEvent(
            data="\n".join(self._data),
            event=self._event or "message",
            id=self._id,
            retry=self._retry,
        )
        self._data = []
        self._event = ""
        return event

    def pending(self) -> bool:
        """True when bytes or fields of an unfinished event are buffered (a cut-off stream)."""
        return bool(self._buffer.strip() or self._data)


def iter_events(chunks: Iterable[bytes]) -> Generator[SSEEvent, None, None]:
    """Events from an iterable of byte chunks."""
    decoder = SSEDecoder()
    for chunk in chunks:
        yield from decoder.feed(chunk)
    if decoder.pending():
        yield from decoder.feed(b"\n\n")


async def aiter_events(chunks: AsyncIterable[bytes]) -> AsyncGenerator[SSEEvent, None]:
    """Events from an async iterable of byte chunks."""
    decoder = SSEDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    if decoder.pending():
        for event in decoder.feed(b"\n\n"):
            yield event


def parse_data(event: SSEEvent, *, provider: str, model: str | None = None) -> Any:
    """The JSON payload of an event, or None for ``[DONE]``; malformed JSON is an error."""
    data = event.data.strip()
    if data == DONE:
        return None
    try:
        return json.loads(data)
    except json.JSONDecodeError:
        raise InvalidResponseError(
            f"the stream sent an event that is not JSON: {data[:120]!r}",
            provider=provider,
            model=model,
        ) from None
