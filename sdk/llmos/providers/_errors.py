"""The one error-body mapper: provider error answers to llmos errors.

:func:`error_from_response` reads every body shape in the reference (OpenAI ``{"error": {...}}``,
AI21 ``{"detail": ...}``, Hugging Face/TGI ``{"error": str, "error_type": ...}``,
``{"errors": [...]}``, the ``X-Error-Message`` header, HTML pages) and maps by status first, then
by the provider's own code, to one llmos error class. :func:`payload_error` maps the same bodies
when they arrive inside a 200 answer or a stream; :func:`error_from_transport` maps httpx
transport failures. Every message passes through key redaction.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import re
import time
from collections.abc import Mapping
from typing import Any

from llmos._secrets import redact
from llmos.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
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

__all__ = [
    "error_from_response",
    "error_from_transport",
    "is_error_payload",
    "parse_retry_after",
    "payload_error",
    "payload_status",
    "request_id_from",
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
