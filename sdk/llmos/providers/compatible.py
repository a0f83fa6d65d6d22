"""Any OpenAI-compatible server by base_url: vLLM, llama.cpp's server, Ollama, LM Studio.

It speaks Chat Completions through the same code as the OpenAI provider; what differs is
declared here as data: which server it is, what that server supports, and whether its streams
report usage.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from llmos.errors import ConfigurationError, UnsupportedFeatureError
from llmos.providers._chat_wire import StreamState
from llmos.providers.base import Capabilities, ProviderSettings
from llmos.providers.openai import ChatCompletionsProvider
from llmos.types import ChatRequest, Usage

__all__ = ["SERVER_PROFILES", "CompatibleProvider", "CompatibleSettings"]

#: Sent when no key is configured: the SDK insists on one, and no real key may leak this way.
NO_KEY = "sk-no-key"

_OVERRIDABLE = (*Capabilities.FEATURES, "stream_usage")

_BASE = Capabilities(needs_key=False)

#: What each server is known to support out of the box. Unknown servers get only plain and
#: streamed chat; anything else must be declared in settings (``capabilities={...}``).
SERVER_PROFILES: dict[str, Capabilities] = {
    "generic": _BASE.with_(stream_usage=True),
    # vLLM: tools need --enable-auto-tool-choice; guided decoding gives both JSON modes.
    "vllm": _BASE.with_(tools=True, json_object=True, json_schema=True, logprobs=True,
                        embeddings=True, stream_usage=True),
    # llama.cpp (and llama-cpp-python's server): JSON by grammar, no usage in streams, tools
    # only with a function-calling chat format, embeddings only with --embedding.
    "llamacpp": _BASE.with_(json_object=True, json_schema=True, stream_usage=False,
                            notes=("no usage in streams: counted approximately",)),
    "ollama": _BASE.with_(tools=True, json_object=True, json_schema=True, embeddings=True,
                          stream_usage=True),
    "lmstudio": _BASE.with_(tools=True, json_schema=True, embeddings=True, stream_usage=True),
}  # fmt: skip


class CompatibleSettings(ProviderSettings):
    """Settings of an OpenAI-compatible server.

    ``server`` picks a profile of what it supports (see :data:`SERVER_PROFILES`); when unset,
    a provider named like a profile (``vllm``, ``ollama``, ...) uses that profile.
    ``capabilities`` overrides single features, e.g. ``{"tools": True}`` for a llama.cpp server
    started with a function-calling chat format.
    """

    server: str | None = None
    stream_usage: bool | None = None
    context_window: int | None = Field(default=None, gt=0)
    max_output: int | None = Field(default=None, gt=0)
    capabilities: dict[str, bool] = Field(default_factory=dict)
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] | None = None

    @field_validator("server")
    @classmethod
    def _known_server(cls, value: str | None) -> str | None:
        if value is not None and value not in SERVER_PROFILES:
            raise ValueError(f"unknown server {value!r}; known: {', '.join(SERVER_PROFILES)}")
        return value

    @field_validator("capabilities")
    @classmethod
    def _known_features(cls, value: dict[str, bool]) -> dict[str, bool]:
        unknown = sorted(set(value) - set(_OVERRIDABLE))
        if unknown:
            raise ValueError(f"unknown capability {unknown[0]!r}; known: {', '.join(_OVERRIDABLE)}")
        return value


class CompatibleProvider(ChatCompletionsProvider):
    """An OpenAI-compatible server at ``base_url``; no key needed unless configured.

    Declared per server (``server=`` in settings, see :data:`SERVER_PROFILES`):

    - ``vllm``: tools, json_object, json_schema, logprobs, embeddings, usage in streams.
    - ``llamacpp``: json_object and json_schema (sent as llama.cpp's
      ``{"type": "json_object", "schema": ...}``); no tools, logprobs or embeddings by default;
      streams carry no usage, so ``stream_options`` is not sent and the final usage is counted
      approximately (one token per streamed chunk, about four characters per prompt token) and
      marked ``source="approximate"``.
    - ``ollama``: tools, both JSON modes, embeddings, usage in streams.
    - ``lmstudio``: tools, json_schema, embeddings, usage in streams.
    - ``generic`` (any other server): plain and streamed chat only, usage asked for in streams.

    Override single features with ``capabilities={"tools": True}``, the stream usage request
    with ``stream_usage=True|False`` and the limits with ``context_window``/``max_output``.
    ``max_tokens`` is sent as ``max_tokens``.
    """

    kind: ClassVar[str] = "openai-compatible"
    description: ClassVar[str] = (
        "Any OpenAI-compatible server by base_url (vLLM, llama.cpp, Ollama, LM Studio)"
    )
    settings_class: ClassVar[type[ProviderSettings]] = CompatibleSettings
    env_api_key: ClassVar[str | None] = None
    env_base_url: ClassVar[str | None] = None
    default_base_url: ClassVar[str | None] = None
    known_models: ClassVar[tuple[str, ...]] = ()
    needs_key: ClassVar[bool] = False
    #: Floats, not the SDK's default base64, which not every server implements.
    embedding_encoding: ClassVar[str | None] = "float"

    def __init__(self, name: str, settings: ProviderSettings) -> None:
        super().__init__(name, settings)
        self.compat: CompatibleSettings = (
            settings if isinstance(settings, CompatibleSettings) else CompatibleSettings()
        )
        server = self.compat.server or (name if name in SERVER_PROFILES else "generic")
        self.server = server
        caps = SERVER_PROFILES[server]
        changes: dict[str, Any] = dict(self.compat.capabilities)
        if self.compat.stream_usage is not None:
            changes["stream_usage"] = self.compat.stream_usage
        if self.compat.context_window is not None:
            changes["context_window"] = self.compat.context_window
        if self.compat.max_output is not None:
            changes["max_output_tokens"] = self.compat.max_output
        self._caps = caps.with_(**changes)
        self.max_tokens_param = self.compat.max_tokens_param or "max_tokens"

    def is_configured(self) -> bool:
        """True once a base_url is known."""
        return bool(self.base_url)

    def capabilities(self, model: str) -> Capabilities:
        """What this server is declared to support (the same for every model it serves)."""
        return self._caps

    def check(self, request: ChatRequest, *, stream: bool = False) -> None:
        """Refuse unsupported features, and say how to declare them if the server has them."""
        try:
            super().check(request, stream=stream)
        except UnsupportedFeatureError as exc:
            hint = (
                f"; if this server supports it, declare it: providers={{'{self.name}': "
                f"{{'capabilities': {{'{exc.feature}': True}}}}}}"
            )
            exc.message += hint
            exc.args = (exc.message,)
            raise

    def sdk_api_key(self) -> str:
        """The configured key, else a placeholder: the SDK needs some Authorization value."""
        if not self.base_url:
            raise ConfigurationError(
                f"provider '{self.name}' (openai-compatible) has no base_url: pass "
                f"providers={{'{self.name}': {{'kind': 'openai-compatible', "
                f"'base_url': 'http://host:8000/v1'}}}} or set LLMOS_"
                f"{self.name.upper().replace('-', '_')}_BASE_URL",
                provider=self.name,
            )
        if self.settings.api_key is None:
            return NO_KEY
        return self.api_key()

    def response_format_param(self, request: ChatRequest) -> dict[str, Any] | None:
        """llama.cpp takes a schema inside json_object; others take OpenAI's json_schema."""
        fmt = request.response_format
        if self.server == "llamacpp" and fmt is not None and fmt.type == "json_schema":
            return {"type": "json_object", "schema": fmt.json_schema or {}}
        return super().response_format_param(request)

    def stream_options(self) -> dict[str, Any] | None:
        """Ask for usage only from servers that send it (llama.cpp rejects or ignores it)."""
        return {"include_usage": True} if self._caps.stream_usage else None

    def usage_without_report(self, request: ChatRequest, state: StreamState) -> Usage:
        """A cheap, labelled approximation: servers like llama.cpp stream one token per chunk."""
        chars = sum(len(getattr(m, "content", None) or "") for m in request.messages)
        return Usage(
            prompt_tokens=max(1, chars // 4) + 4 * len(request.messages),
            completion_tokens=state.text_chunks,
            source="approximate",
        )
