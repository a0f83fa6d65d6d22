"""Shared plumbing of the providers that speak HTTP: pooled clients, timeouts, one POST with
error mapping, and SSE payload streams. The error-body mapper itself is in ``_errors.py``."""

from __future__ import annotations

import functools
import itertools
import json
import threading
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any

from llmos.errors import (
    APITimeoutError,
    ConfigurationError,
    LLMOSError,
)
from llmos.providers._errors import error_from_response, error_from_transport
from llmos.providers._sse import aiter_events, iter_events, parse_data

if TYPE_CHECKING:
    import httpx

    from llmos.providers.base import CallContext

__all__ = [
    "ErrorMapper",
    "HttpPool",
    "aiter_payloads",
    "apost",
    "iter_payloads",
    "parsed_url",
    "post",
    "timeout_for",
]


@functools.lru_cache(maxsize=256)
def parsed_url(url: str) -> httpx.URL:
    """``url`` parsed once: httpx would otherwise parse the same string on every request."""
    import httpx

    return httpx.URL(url)


def timeout_for(ctx: CallContext) -> httpx.Timeout:
    """httpx timeouts for one attempt, each shortened to what the call's deadline leaves."""
    import httpx

    read = ctx.read_timeout()
    return httpx.Timeout(connect=ctx.connect_timeout(), read=read, write=read, pool=read)


class HttpPool:
    """The httpx clients of one provider instance, created on first use and closed with it.

    ``headers`` may be a function, called when the first client is made: providers build their
    Authorization header there, so a missing key fails the first call, not the constructor.
    """

    def __init__(
        self, headers: Mapping[str, str] | Callable[[], Mapping[str, str]] | None = None
    ) -> None:
        self._headers = headers
        self._sync: httpx.Client | None = None
        self._async: httpx.AsyncClient | None = None
        self._lock = threading.Lock()

    def _default_headers(self) -> dict[str, str]:
        headers = self._headers
        return dict((headers() if callable(headers) else headers) or {})

    def _limits(self) -> httpx.Limits:
        import httpx

        from llmos._log import guard_third_party_loggers

        guard_third_party_loggers("httpx", "httpcore")
        return httpx.Limits(max_connections=200, max_keepalive_connections=100)

    def sync(self) -> httpx.Client:
        """The shared sync client."""
        if self._sync is None:
            import httpx

            with self._lock:
                if self._sync is None:
                    self._sync = httpx.Client(
                        headers=self._default_headers(), limits=self._limits()
                    )
        return self._sync

    def async_(self) -> httpx.AsyncClient:
        """The shared async client (bound to the event loop that first uses it)."""
        if self._async is None:
            import httpx

            with self._lock:
                if self._async is None:
                    self._async = httpx.AsyncClient(
                        headers=self._default_headers(), limits=self._limits()
                    )
        return self._async

    def close(self) -> None:
        """Close the sync client."""
        with self._lock:
            client, self._sync = self._sync, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close both clients."""
        self.close()
        with self._lock:
            client, self._async = self._async, None
        if client is not None:
            await client.aclose()


def read_error_body(response: httpx.Response) -> Any:
    """The body of an error answer, parsed as JSON when it is JSON (for streamed responses too)."""
    try:
        raw = response.read()
    except Exception:  # the connection died while reading the error itself
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


async def aread_error_body(response: httpx.Response) -> Any:
    """Async twin of :func:`read_error_body`."""
    try:
        raw = await response.aread()
    except Exception:
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


# --------------------------------------------------------------------------- one POST, one stream

ErrorMapper = Callable[[int, Mapping[str, str], Any], LLMOSError]
"""Maps an error answer (status, headers, parsed body) to its llmos error."""

#: Chunks read after [DONE] at most; a server that keeps sending loses its connection instead.
_DRAIN_CHUNKS = 8


def _answer_error(
    response: httpx.Response, body: Any, on_error: ErrorMapper | None, provider: str, model: str
) -> LLMOSError:
    if on_error is not None:
        return on_error(response.status_code, response.headers, body)
    return error_from_response(
        response.status_code, response.headers, body, provider=provider, model=model
    )


def _invalid_url(exc: Exception, url: str, provider: str, model: str) -> ConfigurationError:
    return ConfigurationError(
        f"providers['{provider}'].base_url gives the invalid URL {url!r}: {exc}; "
        "set base_url to an http(s) URL like 'https://api.example.com/v1'",
        provider=provider,
        model=model,
    )


def post(
    client: httpx.Client,
    url: str,
    content: bytes,
    ctx: CallContext,
    *,
    provider: str,
    model: str,
    stream: bool = False,
    headers: Mapping[str, str] | None = None,
    on_error: ErrorMapper | None = None,
) -> httpx.Response:
    """POST ``content`` within ``ctx``'s timeouts: the 2xx answer, or its llmos error raised.

    Transport failures map through :func:`error_from_transport`; error answers through
    ``on_error`` when the provider adds its own reading, else :func:`error_from_response`.
    """
    import httpx

    try:
        request = client.build_request(
            "POST", parsed_url(url), content=content, headers=headers, timeout=timeout_for(ctx)
        )
        response = client.send(request, stream=stream)
    except httpx.InvalidURL as exc:
        raise _invalid_url(exc, url, provider, model) from None
    except httpx.HTTPError as exc:
        raise error_from_transport(exc, provider=provider, model=model) from None
    if not 200 <= response.status_code < 300:
        body = read_error_body(response)
        response.close()
        raise _answer_error(response, body, on_error, provider, model)
    return response


async def apost(
    client: httpx.AsyncClient,
    url: str,
    content: bytes,
    ctx: CallContext,
    *,
    provider: str,
    model: str,
    stream: bool = False,
    headers: Mapping[str, str] | None = None,
    on_error: ErrorMapper | None = None,
) -> httpx.Response:
    """Async twin of :func:`post`."""
    import httpx

    try:
        request = client.build_request(
            "POST", parsed_url(url), content=content, headers=headers, timeout=timeout_for(ctx)
        )
        response = await client.send(request, stream=stream)
    except httpx.InvalidURL as exc:
        raise _invalid_url(exc, url, provider, model) from None
    except httpx.HTTPError as exc:
        raise error_from_transport(exc, provider=provider, model=model) from None
    if not 200 <= response.status_code < 300:
        body = await aread_error_body(response)
        await response.aclose()
        raise _answer_error(response, body, on_error, provider, model)
    return response


def _late(provider: str, model: str) -> APITimeoutError:
    return APITimeoutError(
        "the call's total timeout passed while the stream was running",
        provider=provider,
        model=model,
    )


TransportErrorMapper = Callable[[Exception], LLMOSError]
"""Turns a transport library's exception into an llmos error (the openai SDK's, say)."""


def _transport_error(
    exc: Exception, map_error: TransportErrorMapper | None, provider: str, model: str
) -> LLMOSError | None:
    """The llmos error for a failure while reading a stream; None to let it propagate."""
    if isinstance(exc, LLMOSError):
        return None
    if map_error is not None:
        return map_error(exc)
    import httpx

    if isinstance(exc, httpx.HTTPError):
        return error_from_transport(exc, provider=provider, model=model)
    return None


def iter_payloads(
    response: Any,
    ctx: CallContext,
    *,
    provider: str,
    model: str,
    map_error: TransportErrorMapper | None = None,
) -> Generator[Any, None, None]:
    """The JSON payloads of a streamed SSE answer, then ``None`` if ``[DONE]`` arrived.

    ``response`` is an httpx (or httpx2) streamed response. Transport failures raise their llmos
    error (through ``map_error`` when given), and so does the call's total timeout passing
    mid-stream. After ``[DONE]`` the little that is left is read, so that the connection goes
    back to the pool instead of being closed. The caller closes the response.
    """
    chunks = response.iter_bytes()
    events = iter_events(chunks)
    try:
        for event in events:
            payload = parse_data(event, provider=provider, model=model)
            if payload is None:
                for _ in itertools.islice(chunks, _DRAIN_CHUNKS):
                    pass
                yield None
                return
            yield payload
            if ctx.deadline.expired():
                raise _late(provider, model)
    except Exception as exc:
        mapped = _transport_error(exc, map_error, provider, model)
        if mapped is None:
            raise
        raise mapped from None
    finally:
        events.close()


async def aiter_payloads(
    response: Any,
    ctx: CallContext,
    *,
    provider: str,
    model: str,
    map_error: TransportErrorMapper | None = None,
) -> AsyncGenerator[Any, None]:
    """Async twin of :func:`iter_payloads`."""
    chunks = response.aiter_bytes()
    events = aiter_events(chunks)
    try:
        async for event in events:
            payload = parse_data(event, provider=provider, model=model)
            if payload is None:
                for _ in range(_DRAIN_CHUNKS):
                    try:
                        await chunks.__anext__()
                    except StopAsyncIteration:
                        break
                yield None
                return
            yield payload
            if ctx.deadline.expired():
                raise _late(provider, model)
    except Exception as exc:
        mapped = _transport_error(exc, map_error, provider, model)
        if mapped is None:
            raise
        raise mapped from None
    finally:
        await events.aclose()
