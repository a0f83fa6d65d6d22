"""The provider protocol every backend implements, its settings, and capabilities as data.

A provider translates one validated :class:`~llmos.types.ChatRequest` into one request on its
wire format and back. It makes exactly one attempt per call: retries, fallbacks, budgets and
costs belong to the client, so no provider loops or sleeps on its own.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmos._secrets import Secret
from llmos.errors import ConfigurationError, MissingAPIKeyError, UnsupportedFeatureError
from llmos.timeouts import Deadline, Timeout
from llmos.types import ChatRequest, ChatResponse, EmbeddingResponse, StreamEvent, TokenCount

__all__ = [
    "CallContext",
    "Capabilities",
    "Provider",
    "ProviderSettings",
]


@dataclass(frozen=True)
class Capabilities:
    """What a provider (and model family) can do; checked before any request is sent."""

    streaming: bool = True
    tools: bool = False
    json_schema: bool = False
    json_object: bool = False
    embeddings: bool = False
    logprobs: bool = False
    documents: bool = False
    #: Whether temperature and top_p other than 1 are accepted (reasoning models refuse them).
    sampling: bool = True
    stream_usage: bool = True
    context_window: int | None = None
    max_output_tokens: int | None = None
    needs_key: bool = True
    runs_offline: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    #: Capability names a request can ask for (see ChatRequest.wants()).
    FEATURES: ClassVar[tuple[str, ...]] = (
        "streaming",
        "tools",
        "json_schema",
        "json_object",
        "embeddings",
        "logprobs",
        "documents",
        "sampling",
    )

    def with_(self, **changes: Any) -> Capabilities:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """Plain-data form for tables and JSON."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def missing(self, wanted: set[str]) -> list[str]:
        """The wanted features this target lacks, in a stable order."""
        return [name for name in self.FEATURES if name in wanted and not getattr(self, name)]


class ProviderSettings(BaseModel):
    """Settings common to every provider; providers extend this with their own fields.

    Unknown keys are rejected so a misspelt setting is an error, not a silent default.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    kind: str | None = None
    api_key: Secret | None = None
    base_url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: Timeout | None = None
    allow_insecure_http: bool = False
    requests_per_minute: float | None = Field(default=None, gt=0)
    tokens_per_minute: float | None = Field(default=None, gt=0)

    @field_validator("api_key", mode="before")
    @classmethod
    def _wrap_key(cls, value: Any) -> Any:
        if value is None or isinstance(value, Secret):
            return value
        if isinstance(value, str):
            return Secret(value) if value else None
        raise ValueError("api_key must be a string")

    @field_validator("timeout", mode="before")
    @classmethod
    def _coerce_timeout(cls, value: Any) -> Any:
        if value is None or isinstance(value, Timeout):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return Timeout(read=float(value), total=float(value))
        if isinstance(value, dict):
            return Timeout(**value)
        raise ValueError("timeout must be seconds, a dict of connect/read/total, or llmos.Timeout")

    def __repr_args__(self) -> Any:
        # The key is a Secret already; this keeps reprs short and obviously masked.
        for name, value in super().__repr_args__():
            yield name, ("***" if name == "api_key" and value is not None else value)


@dataclass
class CallContext:
    """What a provider needs to bound one attempt: its timeouts and the call's deadline."""

    timeout: Timeout
    deadline: Deadline

    def read_timeout(self) -> float:
        """The read timeout, shortened to what the deadline leaves."""
        return max(0.001, self.deadline.cap(self.timeout.read))

    def connect_timeout(self) -> float:
        """The connect timeout, shortened to what the deadline leaves."""
        return max(0.001, self.deadline.cap(self.timeout.connect))


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_url(name: str, url: str) -> None:
    """Refuse a base_url that is not an absolute http(s) URL, naming the provider."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        host, parts = None, None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise ConfigurationError(
            f"providers[{name!r}].base_url {url!r} is not an http(s) URL; "
            "use a URL like 'https://api.example.com/v1'",
            provider=name,
        )


class Provider:
    """Base class of every provider. Subclasses override what they support.

    Class attributes are data: the registry, ``llmos models`` and the comparison module read them
    without making any request.
    """

    #: The provider kind (the name of the implementation, e.g. ``openai-compatible``).
    kind: ClassVar[str] = ""
    #: One line that says what this provider reaches.
    description: ClassVar[str] = ""
    settings_class: ClassVar[type[ProviderSettings]] = ProviderSettings
    env_api_key: ClassVar[str | None] = None
    env_base_url: ClassVar[str | None] = None
    default_base_url: ClassVar[str | None] = None
    #: Models worth listing in ``llmos models`` (a provider may accept many more).
    known_models: ClassVar[tuple[str, ...]] = ()
    #: Whether calls need an API key.
    needs_key: ClassVar[bool] = True

    def __init__(self, name: str, settings: ProviderSettings) -> None:
        self.name = name
        self.settings = settings
        self._transport_checked = False
        if settings.base_url is not None:
            _check_url(name, settings.base_url)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, base_url={self.base_url!r})"

    # ------------------------------------------------------------------ description

    @property
    def base_url(self) -> str | None:
        """Where requests go: the configured base_url, the env override, or the default."""
        return self.settings.base_url or self.default_base_url

    def capabilities(self, model: str) -> Capabilities:
        """What this provider can do for ``model``."""
        return Capabilities()

    def is_configured(self) -> bool:
        """True when a call could be attempted (a key is present where one is needed)."""
        return not self.needs_key or bool(self.settings.api_key)

    # ------------------------------------------------------------------ checks

    def check(self, request: ChatRequest, *, stream: bool = False) -> None:
        """Refuse, before anything is sent, a request this target cannot serve."""
        caps = self.capabilities(request.model)
        wanted = request.wants()
        if stream:
            wanted.add("streaming")
        missing = caps.missing(wanted)
        if missing == ["sampling"]:
            raise UnsupportedFeatureError(
                f"{self.name}:{request.model} accepts no temperature or top_p other than 1 "
                "(a reasoning model); leave them out, or choose a model that takes them",
                feature="sampling",
                provider=self.name,
                model=request.model,
            )
        if missing:
            raise UnsupportedFeatureError(
                f"{self.name}:{request.model} does not support {', '.join(missing)}; "
                "remove it from the request or choose a target that supports it "
                "(see `llmos models`)",
                feature=missing[0],
                provider=self.name,
                model=request.model,
            )
        if (
            caps.max_output_tokens is not None
            and request.max_tokens is not None
            and request.max_tokens > caps.max_output_tokens
        ):
            from llmos.errors import InvalidRequestError

            raise InvalidRequestError(
                f"max_tokens={request.max_tokens} exceeds the {caps.max_output_tokens}-token "
                f"output limit of {self.name}:{request.model}; "
                f"set max_tokens to {caps.max_output_tokens} or less",
                field="max_tokens",
                provider=self.name,
                model=request.model,
            )

    def api_key(self) -> str:
        """The key to send, checked against the transport; raises when missing or unsafe."""
        key = self.settings.api_key
        if key is None:
            hint = f"set {self.env_api_key} or pass " if self.env_api_key else "pass "
            raise MissingAPIKeyError(
                f"no API key for provider '{self.name}': {hint}"
                f"providers={{'{self.name}': {{'api_key': ...}}}}",
                provider=self.name,
            )
        self.check_transport()
        return key.get()

    def check_transport(self) -> None:
        """Refuse to send a key over plain http to a host that is not this machine."""
        if self._transport_checked:
            return
        url = self.base_url or ""
        parts = urlsplit(url)
        if (
            parts.scheme == "http"
            and not _is_loopback(parts.hostname or "")
            and not self.settings.allow_insecure_http
            and self.settings.api_key is not None
        ):
            raise ConfigurationError(
                f"refusing to send the API key of provider '{self.name}' over plain http to "
                f"{parts.hostname}: use https, or pass allow_insecure_http=True in its settings "
                "if this network is trusted",
                provider=self.name,
            )
        self._transport_checked = True

    # ------------------------------------------------------------------ calls

    def chat(self, request: ChatRequest, ctx: CallContext) -> ChatResponse:
        """One attempt at a chat completion."""
        raise self._unsupported("chat", request.model)

    def stream(self, request: ChatRequest, ctx: CallContext) -> Iterator[StreamEvent]:
        """One attempt at a streamed chat completion: deltas, then one final event."""
        raise self._unsupported("streaming", request.model)

    async def achat(self, request: ChatRequest, ctx: CallContext) -> ChatResponse:
        """Async twin of :meth:`chat`."""
        raise self._unsupported("chat", request.model)

    def astream(self, request: ChatRequest, ctx: CallContext) -> AsyncIterator[StreamEvent]:
        """Async twin of :meth:`stream`."""
        raise self._unsupported("streaming", request.model)

    def embed(self, model: str, inputs: Sequence[str], ctx: CallContext) -> EmbeddingResponse:
        """Embeddings for ``inputs``."""
        raise self._unsupported("embeddings", model)

    async def aembed(
        self, model: str, inputs: Sequence[str], ctx: CallContext
    ) -> EmbeddingResponse:
        """Async twin of :meth:`embed`."""
        raise self._unsupported("embeddings", model)

    def count_prompt_tokens(self, request: ChatRequest) -> TokenCount | None:
        """The exact prompt token count when this provider has its own tokenizer at hand."""
        return None

    def close(self) -> None:
        """Release sync resources (connection pools, loaded models)."""

    async def aclose(self) -> None:
        """Release async resources."""
        self.close()

    # ------------------------------------------------------------------ helpers

    def _unsupported(self, feature: str, model: str) -> UnsupportedFeatureError:
        return UnsupportedFeatureError(
            f"provider '{self.name}' does not support {feature}",
            feature=feature,
            provider=self.name,
            model=model,
        )

    @classmethod
    def settings_from_env(cls, env: dict[str, str] | None = None) -> dict[str, Any]:
        """Settings this provider takes from environment variables (key and base URL)."""
        env = dict(os.environ) if env is None else env
        found: dict[str, Any] = {}
        if cls.env_api_key and env.get(cls.env_api_key):
            found["api_key"] = env[cls.env_api_key]
        if cls.env_base_url and env.get(cls.env_base_url):
            found["base_url"] = env[cls.env_base_url]
        return found
