"""The one exception tree of llmos.

Every error llmos raises is an ``LLMOSError``::

    LLMOSError
    ├── ConfigurationError          setup is wrong: unknown provider, bad model path, missing extra
    │   └── MissingAPIKeyError      no key for a provider that needs one (fallback-worthy)
    ├── InvalidRequestError         the request itself is wrong (field names the culprit)
    │   ├── ContextLengthError      prompt + max_tokens do not fit the model's context window
    │   └── UnsupportedFeatureError the target lacks a capability the request asks for
    ├── BudgetExceededError         the call's worst-case cost exceeds what the budget has left
    ├── CircuitOpenError            the target failed too often lately and is skipped for now
    ├── APIError                    a provider answered with an error, or could not be reached
    │   ├── AuthenticationError     401
    │   ├── PermissionDeniedError   403
    │   ├── NotFoundError           404
    │   ├── ConflictError           409 (retried)
    │   ├── RateLimitError          429 (retried; ``retry_after`` in seconds when the provider said)
    │   │   └── ClientRateLimitError  this client's own rate limit would outlive the deadline
    │   ├── QuotaExceededError      429 insufficient_quota and friends (never retried)
    │   ├── ContentFilterError      the provider refused the content
    │   ├── ServerError             5xx (retried)
    │   │   └── ModelLoadingError   Hugging Face 503 "model is loading" (retry_after = estimate)
    │   ├── InvalidResponseError    the provider's answer could not be understood (HTML, bad JSON)
    │   └── APIConnectionError      the network failed (retried)
    │       └── APITimeoutError     a connect or read timeout (retried)
    │           └── DeadlineExceededError  the call's total deadline passed (not retried)
    └── AllProvidersFailedError     every target of a fallback chain failed; ``attempts`` says how

Provider errors carry ``provider``, ``model``, ``status_code``, ``request_id``, ``provider_code``
and ``retryable``. No error ever holds an API key: messages from providers pass through
:func:`llmos._secrets.redact` before they are stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmos.types import Attempt

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AllProvidersFailedError",
    "AuthenticationError",
    "BudgetExceededError",
    "CircuitOpenError",
    "ClientRateLimitError",
    "ConfigurationError",
    "ConflictError",
    "ContentFilterError",
    "ContextLengthError",
    "DeadlineExceededError",
    "InvalidRequestError",
    "InvalidResponseError",
    "LLMOSError",
    "MissingAPIKeyError",
    "ModelLoadingError",
    "NotFoundError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "RateLimitError",
    "ServerError",
    "UnsupportedFeatureError",
]


class LLMOSError(Exception):
    """Root of every error llmos raises."""

    #: Whether retrying the same call on the same target may succeed.
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
        provider_code: str | None = None,
        retryable: bool | None = None,
        should_retry: bool | None = None,
        body: Any = None,
    ) -> None:
        from llmos._secrets import redact, redact_data

        self.message = redact(message)
        self.provider = provider
        self.model = model
        self.status_code = status_code
        self.request_id = request_id
        self.provider_code = provider_code
        if retryable is not None:
            self.retryable = retryable
        #: The provider's ``x-should-retry`` verdict, which overrides ``retryable`` when set.
        self.should_retry = should_retry
        #: The provider's error body (parsed JSON when it was JSON), keys scrubbed.
        self.body = redact_data(body) if body is not None else None
        #: The attempts that led to this error, when it came out of a client call.
        self.attempts: list[Attempt] = []
        super().__init__(self.message)

    def __str__(self) -> str:
        parts = [self.message]
        context = []
        if self.provider:
            context.append(f"provider={self.provider}")
        if self.model:
            context.append(f"model={self.model}")
        if self.status_code is not None:
            context.append(f"status={self.status_code}")
        if self.provider_code:
            context.append(f"code={self.provider_code}")
        if self.request_id:
            context.append(f"request_id={self.request_id}")
        if context:
            parts.append(f"({', '.join(context)})")
        return " ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class ConfigurationError(LLMOSError):
    """The client or a provider is set up wrongly; fix the configuration, not the request."""


class MissingAPIKeyError(ConfigurationError):
    """A provider that needs a key has none. A fallback chain moves on to its next target."""


class InvalidRequestError(LLMOSError):
    """The request is invalid. ``field`` names the offending field when one is to blame."""

    def __init__(self, message: str, *, field: str | None = None, **kwargs: Any) -> None:
        self.field = field
        super().__init__(message, **kwargs)


class ContextLengthError(InvalidRequestError):
    """The prompt plus max_tokens exceed the model's context window.

    Not retried on the same target; a fallback chain moves on to the next target, whose window
    may be larger.
    """


class UnsupportedFeatureError(InvalidRequestError):
    """The target lacks a capability the request asks for; raised before anything is sent."""

    def __init__(self, message: str, *, feature: str | None = None, **kwargs: Any) -> None:
        self.feature = feature
        super().__init__(message, field=feature, **kwargs)


class BudgetExceededError(LLMOSError):
    """The call's worst-case cost exceeds the budget left; nothing was sent."""

    def __init__(
        self,
        message: str,
        *,
        worst_case_usd: Any = None,
        remaining_usd: Any = None,
        **kwargs: Any,
    ) -> None:
        self.worst_case_usd = worst_case_usd
        self.remaining_usd = remaining_usd
        super().__init__(message, **kwargs)


class APIError(LLMOSError):
    """A provider could not be reached or answered with an error.

    ``retry_after`` is the wait in seconds the provider asked for, when it said.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class AuthenticationError(APIError):
    """The provider rejected the credentials (401)."""


class PermissionDeniedError(APIError):
    """The credentials are valid but not allowed to do this (403)."""


class NotFoundError(APIError):
    """The model or route does not exist at the provider (404)."""


class ConflictError(APIError):
    """The provider reported a conflict (409); retried."""

    retryable = True


class RateLimitError(APIError):
    """The provider asked to slow down (429). ``retry_after`` is in seconds when known."""

    retryable = True


class ClientRateLimitError(RateLimitError):
    """This client's own rate limit would make the call wait past its deadline; nothing was sent.

    ``retry_after`` is the wait that was refused. Like a 429 it moves a fallback chain on, but
    it says nothing about the provider's health and is not retried on the same target.
    """

    retryable = False


class QuotaExceededError(APIError):
    """The account's quota or credit is exhausted; waiting will not help, so it is not retried."""


class ContentFilterError(APIError):
    """The provider refused the request or the output on content grounds."""


class ServerError(APIError):
    """The provider failed (5xx); retried."""

    retryable = True


class InvalidResponseError(APIError):
    """The provider's answer could not be understood (HTML, malformed JSON, a cut stream)."""

    retryable = True


class APIConnectionError(APIError):
    """The provider could not be reached or the connection broke; retried."""

    retryable = True


class APITimeoutError(APIConnectionError):
    """A connect, read or total timeout expired; retried while the deadline allows."""


class DeadlineExceededError(APITimeoutError):
    """The call's own deadline (``timeout.total`` or ``RetryPolicy.deadline``) has passed.

    Raised instead of sending anything more, so it is neither retried nor fallen back from,
    and it never counts against a target's health: the time ran out, the target did not fail.
    """

    retryable = False


class CircuitOpenError(LLMOSError):
    """The target failed too often lately and is skipped until its cool-down ends."""

    retryable = False


class ModelLoadingError(ServerError):
    """The model is still loading (Hugging Face 503 with ``estimated_time``).

    Retried after ``retry_after`` (the estimate) when it fits ``RetryPolicy.max_retry_after`` and
    the call's deadline; otherwise the message says how long the model needs.
    """

    def __init__(self, message: str, *, estimated_time: float | None = None, **kwargs: Any):
        super().__init__(message, retry_after=estimated_time, **kwargs)
        self.estimated_time = estimated_time


class AllProvidersFailedError(LLMOSError):
    """Every target of a fallback chain failed. ``errors`` and ``attempts`` say how, in order."""

    def __init__(
        self,
        message: str,
        *,
        errors: Sequence[LLMOSError] = (),
        attempts: Sequence[Attempt] = (),
    ) -> None:
        super().__init__(message)
        self.errors = list(errors)
        self.attempts = list(attempts)

    def __str__(self) -> str:
        lines = [self.message]
        lines.extend(f"  - {type(e).__name__}: {e}" for e in self.errors)
        return "\n".join(lines)
