"""Shared plumbing of the providers that speak HTTP: pooled clients, timeouts, error mapping.

:func:`error_from_response` is the one error-body mapper. It reads every body shape in the
reference (OpenAI ``{"error": {...}}``, AI21 ``{"detail": ...}``, Hugging Face/TGI
``{"error": str, "error_type": ...}``, ``{"errors": [...]}``, the ``X-Error-Message`` header,
HTML pages) and maps by status first, then by the provider's own code, to one llmos error class.
:func:`payload_error` maps the same bodies when they arrive inside a 200 answer or a stream.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import itertools
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from llmos._secrets import redact
from llmos.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    ContentFilterError,
    ContextLengthError,
    InvalidRequestError,
    InvalidResponseError,
    LLMOSError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
)
from llmos.providers._sse import aiter_events, iter_events, parse_data

if TYPE_CHECKING:
    import httpx

    from llmos.providers.base import CallContext

__all__ = [
    "ErrorMapper",
    "HttpPool",
    "aiter_payloads",
    "apost",
    "error_from_response",
    "error_from_transport",
    "is_error_payload",
    "iter_payloads",
    "parse_retry_after",
    "payload_error",
    "payload_status",
    "post",
    "request_id_from",
    "timeout_for",
]

_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-amzn-requestid", "x-trace-id", "cf-ray")
_CONTEXT_CODES = {"context_length_exceeded", "string_above_max_length", "context_window_exceeded"}
_CONTEXT_TEXT = re.compile(
    r"maximum context length|context length|context window|too many tokens|"
    r"must be <= \d+|exceeds? the (?:model'?s? )?(?:maximum|context)|reduce the length",
    re.IGNORECASE,
)
_QUOTA_CODES = {"insufficient_quota", "quota_exceeded", "billing_hard_limit_reached"}
_QUOTA_TEXT = re.compile(
    r"exceeded your current quota|insufficient[_ ]quota|out of credits|"
    r"exceeded your monthly included credits|payment required|billing",
    re.IGNORECASE,
)
_FILTER_CODES = {"content_filter", "content_policy_violation", "moderation_blocked"}


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, else ``retry-after`` (seconds or an HTTP date)."""
    lower = {k.lower(): v for k, v in headers.items()}
    ms = lower.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = lower.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def request_id_from(headers: Mapping[str, str]) -> str | None:
    """The provider's request id, from the first header that carries one."""
    lower = {k.lower(): v for k, v in headers.items()}
    for name in _REQUEST_ID_HEADERS:
        if lower.get(name):
            return lower[name]
    return None


def _should_retry(headers: Mapping[str, str]) -> bool | None:
    value = {k.lower(): v for k, v in headers.items()}.get("x-should-retry")
    if value is None:
        return None
    if value.strip().lower() == "true":
        return True
    if value.strip().lower() == "false":
        return False
    return None


def _describe(body: Any, headers: Mapping[str, str]) -> tuple[str | None, str | None, str | None]:
    """(message, code, type) from any known error body shape."""
    header_message = {k.lower(): v for k, v in headers.items()}.get("x-error-message")
    if isinstance(body, Mapping):
        err = body.get("error")
        if isinstance(err, Mapping):  # OpenAI, llama.cpp server, HF router
            code = err.get("code")
            return (
                _str(err.get("message")) or header_message,
                None if code is None else str(code),
                _str(err.get("type")),
            )
        if isinstance(err, str):  # HF / TGI
            extra = _str(body.get("error_description"))
            message = f"{err}: {extra}" if extra else err
            return message, _str(body.get("error_type")), _str(body.get("error_type"))
        if isinstance(err, list) and err:
            return "; ".join(str(e) for e in err), None, None
        detail = body.get("detail")
        if isinstance(detail, str):  # AI21 (FastAPI style)
            return detail, None, None
        if isinstance(detail, list) and detail:  # FastAPI validation errors
            parts = []
            for item in detail:
                if isinstance(item, Mapping):
                    loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                    parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
                else:
                    parts.append(str(item))
            return "; ".join(parts), None, "validation"
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            first = errors[0]
            text = first.get("message") if isinstance(first, Mapping) else first
            return str(text), None, None
        plain = body.get("message")
        if isinstance(plain, str):
            return plain, _str(body.get("code")), None
    if isinstance(body, str) and body.strip():
        return _text_summary(body), None, None
    return header_message, None, None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _text_summary(text: str) -> str:
    stripped = text.strip()
    if stripped[:1] == "<":
        title = re.search(r"<title>(.*?)</title>", stripped, re.IGNORECASE | re.DOTALL)
        label = title.group(1).strip() if title else "no title"
        return f"the server answered with an HTML page ({label}) instead of JSON"
    return stripped[:300]


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    body: Any,
    *,
    provider: str,
    model: str | None = None,
) -> LLMOSError:
    """The llmos error for an HTTP error answer; ``body`` is parsed JSON or raw text."""
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", errors="replace")
    if isinstance(body, str):
        with contextlib.suppress(ValueError):
            body = json.loads(body)
    message, code, kind = _describe(body, headers)
    message = redact(message or f"HTTP {status} with no error message")
    common: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "status_code": status,
        "request_id": request_id_from(headers),
        "provider_code": code,
        "should_retry": _should_retry(headers),
        "body": body if isinstance(body, (dict, list)) else None,
    }
    codes = {c for c in (code, kind) if c}
    if codes & _QUOTA_CODES or (status in (402, 429) and _QUOTA_TEXT.search(message)):
        common["should_retry"] = False  # waiting does not refill an empty account
        return QuotaExceededError(message, **common)
    if codes & _CONTEXT_CODES or (status in (400, 413, 422) and _CONTEXT_TEXT.search(message)):
        return ContextLengthError(message, **common)
    if codes & _FILTER_CODES:
        return ContentFilterError(message, **common)
    if status == 401:
        return AuthenticationError(message, **common)
    if status == 403:
        return PermissionDeniedError(message, **common)
    if status == 404:
        return NotFoundError(message, **common)
    if status == 408:
        return APITimeoutError(message, **common)
    if status == 409:
        return ConflictError(message, **common)
    if status == 429:
        return RateLimitError(message, retry_after=parse_retry_after(headers), **common)
    if status in (400, 413, 422):
        return InvalidRequestError(message, **common)
    if status == 424:  # TGI generation error / AI21 model error: the input made the model fail
        return ServerError(message, retryable=False, **common)
    if status >= 500:
        return ServerError(message, retry_after=parse_retry_after(headers), **common)
    if isinstance(body, str) and body.lstrip()[:1] == "<":
        return InvalidResponseError(message, **common)
    return APIError(message, **common)


# An error object inside a 200 answer or a stream carries no HTTP status of its own; this is the
# one its type or code stands for (OpenAI error types and codes first, then TGI's error_type).
_ERROR_STATUS = {
    "invalid_request_error": 400, "context_length_exceeded": 400, "authentication_error": 401,
    "permission_error": 403, "not_found_error": 404, "rate_limit_exceeded": 429,
    "requests": 429, "tokens": 429, "insufficient_quota": 429,
    "validation": 422, "generation": 424, "overloaded": 429, "incomplete_generation": 500,
}  # fmt: skip


def is_error_payload(data: Mapping[str, Any]) -> bool:
    """True for an error object where an answer or a chunk was expected."""
    return data.get("error") is not None or ("detail" in data and "choices" not in data)


def payload_status(data: Mapping[str, Any]) -> tuple[int, bool]:
    """(HTTP status, stated) for an error object: the status it states, else the one its type
    or code stands for, else 500 (the server failed mid-answer)."""
    inner = data.get("error")
    detail: Mapping[str, Any] = inner if isinstance(inner, Mapping) else {}
    for holder in (data, detail):
        for key in ("status_code", "status", "code"):
            value = holder.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and 400 <= value <= 599:
                return value, key != "code"
    for kind in (data.get("error_type"), detail.get("code"), detail.get("type")):
        if isinstance(kind, str) and kind in _ERROR_STATUS:
            return _ERROR_STATUS[kind], False
    return 500, False


def payload_error(
    data: Mapping[str, Any],
    *,
    provider: str,
    model: str,
    headers: Mapping[str, str] | None = None,
    in_stream: bool = False,
) -> LLMOSError:
    """The llmos error for an error object inside a 200 answer or a stream.

    Mapped like an HTTP error answer; ``status_code`` stays None unless the object states an
    HTTP status itself, since the HTTP answer was a 200.
    """
    status, stated = payload_status(data)
    error = error_from_response(status, headers or {}, dict(data), provider=provider, model=model)
    if in_stream:
        error.message = f"error inside the stream: {error.message}"
        error.args = (error.message,)
    if not stated:
        error.status_code = None
    return error


def error_from_transport(exc: Exception, *, provider: str, model: str | None = None) -> LLMOSError:
    """The llmos error for an httpx transport failure (connect, read, timeout, protocol)."""
    import httpx

    text = redact(str(exc) or type(exc).__name__)
    if isinstance(exc, httpx.TimeoutException):
        kind = {
            httpx.ConnectTimeout: "connecting",
            httpx.ReadTimeout: "waiting for data",
            httpx.WriteTimeout: "sending",
            httpx.PoolTimeout: "waiting for a free connection",
        }.get(type(exc), "waiting")
        return APITimeoutError(f"timed out {kind}: {text}", provider=provider, model=model)
    if isinstance(exc, httpx.DecodingError):
        return InvalidResponseError(
            f"could not decode the answer: {text}", provider=provider, model=model
        )
    return APIConnectionError(f"connection failed: {text}", provider=provider, model=model)


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


def iter_payloads(
    response: httpx.Response, ctx: CallContext, *, provider: str, model: str
) -> Iterator[Any]:
    """The JSON payloads of a streamed SSE answer, then ``None`` if ``[DONE]`` arrived.

    Transport failures raise their llmos error, and so does the call's total timeout passing
    mid-stream. After ``[DONE]`` the little that is left is read, so that the connection goes
    back to the pool instead of being closed. The caller closes the response.
    """
    import httpx

    chunks = response.iter_bytes()
    try:
        for event in iter_events(chunks):
            payload = parse_data(event, provider=provider, model=model)
            if payload is None:
                for _ in itertools.islice(chunks, _DRAIN_CHUNKS):
                    pass
                yield None
                return
            yield payload
            if ctx.deadline.expired():
                raise _late(provider, model)
    except httpx.HTTPError as exc:
        raise error_from_transport(exc, provider=provider, model=model) from None


async def aiter_payloads(
    response: httpx.Response, ctx: CallContext, *, provider: str, model: str
) -> AsyncIterator[Any]:
    """Async twin of :func:`iter_payloads`."""
    import httpx

    chunks = response.aiter_bytes()
    try:
        async for event in aiter_events(chunks):
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
    except httpx.HTTPError as exc:
        raise error_from_transport(exc, provider=provider, model=model) from None
