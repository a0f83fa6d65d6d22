"""OpenAI Chat Completions and Embeddings, through the official ``openai`` SDK.

:class:`ChatCompletionsProvider` sends Chat Completions through the SDK and reads the answers
with the shared dialect code (:mod:`llmos.providers._chat_wire`); :class:`OpenAIProvider` adds
what is OpenAI's own: keys, organisation and project headers, model families and their
capabilities. ``providers/compatible.py`` builds on the same base.

Chat calls go through the SDK's generic ``post`` (its documented way to reach any endpoint):
the SDK still owns authentication, headers, timeouts and error answers, but hands back plain
JSON instead of building typed objects that would only be read once and dropped, so the one
lenient parser serves OpenAI and every compatible server alike. Streams come back as the raw
response and are decoded by llmos's own SSE decoder (:mod:`llmos.providers._sse`, as for the
httpx providers): the SDK's stream closes the connection at ``[DONE]`` with the end of the body
unread, so every streamed call would open a new connection (a new TLS handshake on a real
host); reading the rest returns it to the pool. It is also about a fifth faster per chunk.

The SDK's own retries are off (``max_retries=0``): retry.py owns retrying, so one attempt here is
one request. The SDK is imported on first use, never when llmos is imported.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast
from urllib.parse import urlsplit

from llmos._log import get_logger, guard_third_party_loggers
from llmos.errors import (
    APIConnectionError,
    APITimeoutError,
    InvalidResponseError,
    LLMOSError,
    UnsupportedFeatureError,
)
from llmos.providers._chat_wire import (
    StreamState,
    decode_json,
    openai_response_format,
    parse_completion,
    request_body,
)
from llmos.providers._errors import error_from_response, payload_error, request_id_from
from llmos.providers._http import aiter_payloads, iter_payloads
from llmos.providers.base import CallContext, Capabilities, Provider, ProviderSettings
from llmos.types import ChatRequest, ChatResponse, EmbeddingResponse, StreamEvent, Usage

if TYPE_CHECKING:
    import httpx2
    import openai

__all__ = ["MODEL_FAMILIES", "ChatCompletionsProvider", "OpenAIProvider", "OpenAISettings"]

_log = get_logger("providers.openai")

MaxTokensParam = Literal["max_tokens", "max_completion_tokens"]

#: Chat Completions, relative to the base URL (what chat.completions.create posts to).
_PATH = "/chat/completions"


class OpenAISettings(ProviderSettings):
    """Settings of the ``openai`` provider.

    ``max_tokens_param`` forces the name ``max_tokens`` is sent under; by default it is
    ``max_completion_tokens`` for OpenAI's own hosts and ``max_tokens`` anywhere else.
    """

    organization: str | None = None
    project: str | None = None
    max_tokens_param: MaxTokensParam | None = None


# --------------------------------------------------------------------------- the shared base


class ChatCompletionsProvider(Provider):
    """A provider that speaks OpenAI Chat Completions through the ``openai`` SDK.

    Subclasses say how to authenticate (:meth:`sdk_api_key`), what the target supports
    (:meth:`capabilities`) and where the server differs from OpenAI (the hooks below).
    """

    #: ``encoding_format`` of embedding requests; None leaves it to the SDK (base64 on the
    #: wire, decoded to floats by the SDK).
    embedding_encoding: ClassVar[str | None] = None

    #: Loggers of the libraries under the SDK, scrubbed of keys once a client exists.
    _GUARDED_LOGGERS: ClassVar[tuple[str, ...]] = (
        "openai",
        "httpx",
        "httpx2",
        "httpcore",
        "httpcore2",
    )

    def __init__(self, name: str, settings: ProviderSettings) -> None:
        super().__init__(name, settings)
        self._sync: openai.OpenAI | None = None
        self._async: openai.AsyncOpenAI | None = None
        self._lock = threading.Lock()
        self.max_tokens_param: MaxTokensParam = "max_tokens"

    # ------------------------------------------------------------------ hooks

    def sdk_api_key(self) -> str:
        """The key the SDK sends as ``Authorization: Bearer``."""
        return self.api_key()

    def sdk_options(self) -> dict[str, Any]:
        """Extra keyword arguments for ``openai.OpenAI(...)`` (organisation, project)."""
        return {}

    def response_format_param(self, request: ChatRequest) -> dict[str, Any] | None:
        """``response_format`` as this server wants it (OpenAI's nested json_schema form)."""
        return openai_response_format(request.response_format, send_text=True)

    def stream_options(self) -> dict[str, Any] | None:
        """``stream_options`` for streamed calls; None sends none."""
        return {"include_usage": True}

    def usage_without_report(self, request: ChatRequest, state: StreamState) -> Usage:
        """Usage of a stream whose server sent none."""
        return Usage(source="missing")

    # ------------------------------------------------------------------ SDK clients

    def _client_kwargs(self) -> dict[str, Any]:
        key = self.sdk_api_key()
        headers = dict(self.settings.headers)
        # Stated outright so that OPENAI_CUSTOM_HEADERS in the environment cannot swap in
        # another Authorization header behind llmos's back.
        headers["Authorization"] = f"Bearer {key}"
        guard_third_party_loggers(*self._GUARDED_LOGGERS)
        return {
            "api_key": key,
            "base_url": self.base_url,
            "max_retries": 0,
            "default_headers": headers,
            **self.sdk_options(),
        }

    def _pin_identity(self, client: openai.OpenAI | openai.AsyncOpenAI) -> None:
        # The SDK fills organisation and project from OPENAI_ORG_ID / OPENAI_PROJECT_ID when
        # given None; llmos reads the environment itself (Client(env=...)), so pin them.
        options = self.sdk_options()
        client.organization = options.get("organization")
        client.project = options.get("project")

    def sdk(self) -> openai.OpenAI:
        """The sync SDK client of this provider, created on first use."""
        client = self._sync
        if client is None:
            import openai

            with self._lock:
                client = self._sync
                if client is None:
                    client = openai.OpenAI(**self._client_kwargs())
                    self._pin_identity(client)
                    self._sync = client
        return client

    def async_sdk(self) -> openai.AsyncOpenAI:
        """The async SDK client of this provider, created on first use."""
        client = self._async
        if client is None:
            import openai

            with self._lock:
                client = self._async
                if client is None:
                    client = openai.AsyncOpenAI(**self._client_kwargs())
                    self._pin_identity(client)
                    self._async = client
        return client

    def close(self) -> None:
        """Close the sync SDK client (its connection pool)."""
        with self._lock:
            client, self._sync = self._sync, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close both SDK clients."""
        self.close()
        with self._lock:
            client, self._async = self._async, None
        if client is not None:
            await client.close()

    # ------------------------------------------------------------------ translation

    def _timeout(self, ctx: CallContext) -> httpx2.Timeout:
        import httpx2

        read = ctx.read_timeout()
        return httpx2.Timeout(connect=ctx.connect_timeout(), read=read, write=read, pool=read)

    def _body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        return request_body(
            request,
            max_tokens_field=self.max_tokens_param,
            response_format=self.response_format_param(request),
            stream=stream,
            stream_options=self.stream_options() if stream else None,
        )

    def _response(
        self, raw: bytes, headers: Mapping[str, str], request: ChatRequest
    ) -> ChatResponse:
        data = decode_json(raw, provider=self.name, model=request.model, headers=headers)
        response = parse_completion(data, provider=self.name, model=request.model, headers=headers)
        if _log.isEnabledFor(logging.DEBUG):
            request_id = request_id_from(headers)
            _log.debug("%s chat %s request_id=%s", self.name, request.model, request_id)
        return response

    def _final(self, request: ChatRequest, state: StreamState, done: bool) -> StreamEvent:
        if state.usage is None:
            state.usage = self.usage_without_report(request, state)
        return state.final(done=done)

    def error(
        self, exc: BaseException, model: str, headers: Mapping[str, str] | None = None
    ) -> LLMOSError:
        """The llmos error for anything the SDK, httpx2 mid-stream, or a malformed answer raised."""
        import httpx2
        import openai

        if isinstance(exc, LLMOSError):
            if exc.request_id is None and headers:
                exc.request_id = request_id_from(headers)
            return exc
        if isinstance(exc, openai.APIStatusError):
            response = exc.response
            return error_from_response(
                response.status_code,
                response.headers,
                _status_body(exc),
                provider=self.name,
                model=model,
            )
        # Streams are read from httpx2 directly, so its own errors arrive here unwrapped.
        if isinstance(exc, (openai.APITimeoutError, httpx2.TimeoutException)):
            return APITimeoutError(
                f"timed out waiting for {self.base_url}", provider=self.name, model=model
            )
        if isinstance(exc, (openai.APIConnectionError, httpx2.TransportError)):
            cause = exc.__cause__ if isinstance(exc, openai.APIConnectionError) else exc
            detail = f": {type(cause).__name__}: {cause}" if cause is not None else ""
            return APIConnectionError(
                f"could not reach {self.base_url}{detail}", provider=self.name, model=model
            )
        if isinstance(exc, openai.APIError) and not isinstance(
            exc, openai.APIResponseValidationError
        ):
            # An {"error": ...} event inside a stream: the SDK keeps only its error part.
            body = exc.body
            error: Any = body if isinstance(body, str) else {"message": exc.message}
            if isinstance(body, Mapping):
                error.update(body)
            return payload_error(
                {"error": error}, provider=self.name, model=model, headers=headers, in_stream=True
            )
        return InvalidResponseError(
            f"could not understand the answer: {type(exc).__name__}: {exc}",
            provider=self.name,
            model=model,
            request_id=request_id_from(headers) if headers else None,
        )

    # ------------------------------------------------------------------ calls

    def _post(self, request: ChatRequest, ctx: CallContext, *, stream: bool) -> dict[str, Any]:
        """Arguments of the SDK's ``post`` for one call: what chat.completions.create would send
        (body, bearer key, timeout), with the answer left raw for llmos to read."""
        import httpx2

        return {
            "cast_to": httpx2.Response,
            "body": self._body(request, stream=stream),
            "options": {"timeout": self._timeout(ctx), "security": {"bearer_auth": True}},
            "stream": stream,
        }

    def chat(self, request: ChatRequest, ctx: CallContext) -> ChatResponse:
        """One chat completion."""
        try:
            response = self.sdk().post(_PATH, **self._post(request, ctx, stream=False))
        except Exception as exc:
            raise self.error(exc, request.model) from None
        return self._response(response.content, response.headers, request)

    async def achat(self, request: ChatRequest, ctx: CallContext) -> ChatResponse:
        """Async twin of :meth:`chat`."""
        try:
            response = await self.async_sdk().post(_PATH, **self._post(request, ctx, stream=False))
        except Exception as exc:
            raise self.error(exc, request.model) from None
        return self._response(response.content, response.headers, request)

    def stream(self, request: ChatRequest, ctx: CallContext) -> Iterator[StreamEvent]:
        """One streamed chat completion: content events, then one final event."""
        model = request.model
        try:
            response = self.sdk().post(_PATH, **self._post(request, ctx, stream=True))
        except Exception as exc:
            raise self.error(exc, model) from None
        headers = response.headers
        state = StreamState(self.name, model, headers)
        done = False
        payloads = iter_payloads(
            response, ctx, provider=self.name, model=model,
            map_error=lambda exc: self.error(exc, model, headers),
        )  # fmt: skip
        try:
            for payload in payloads:
                if payload is None:  # [DONE]
                    done = True
                    break
                yield from state.feed(payload)
        finally:
            payloads.close()
            response.close()
        yield self._final(request, state, done)

    async def astream(self, request: ChatRequest, ctx: CallContext) -> AsyncIterator[StreamEvent]:
        """Async twin of :meth:`stream`."""
        model = request.model
        try:
            response = await self.async_sdk().post(_PATH, **self._post(request, ctx, stream=True))
        except Exception as exc:
            raise self.error(exc, model) from None
        headers = response.headers
        state = StreamState(self.name, model, headers)
        done = False
        payloads = aiter_payloads(
            response, ctx, provider=self.name, model=model,
            map_error=lambda exc: self.error(exc, model, headers),
        )  # fmt: skip
        try:
            async for payload in payloads:
                if payload is None:  # [DONE]
                    done = True
                    break
                for item in state.feed(payload):
                    yield item
        finally:
            await payloads.aclose()
            await response.aclose()
        yield self._final(request, state, done)

    def _check_embeddings(self, model: str) -> None:
        if not self.capabilities(model).embeddings:
            raise UnsupportedFeatureError(
                f"{self.name}:{model} does not serve embeddings; use an embedding model "
                "(see `llmos models`)",
                feature="embeddings",
                provider=self.name,
                model=model,
            )

    def _embedding_response(self, result: Any, model: str) -> EmbeddingResponse:
        try:
            data = sorted(result.data, key=lambda item: item.index)
            vectors = [list(item.embedding) for item in data]
            usage = result.usage
            prompt = int(getattr(usage, "prompt_tokens", 0) or 0) if usage is not None else 0
        except Exception as exc:
            raise InvalidResponseError(
                f"could not read the embeddings: {type(exc).__name__}: {exc}",
                provider=self.name,
                model=model,
            ) from None
        return EmbeddingResponse(
            provider=self.name,
            model=getattr(result, "model", None) or model,
            target=f"{self.name}:{model}",
            embeddings=vectors,
            usage=Usage(
                prompt_tokens=prompt, source="provider" if usage is not None else "missing"
            ),
        )

    def _embed_params(self, model: str, inputs: Sequence[str], ctx: CallContext) -> dict[str, Any]:
        params: dict[str, Any] = {"model": model, "input": list(inputs)}
        if self.embedding_encoding is not None:
            params["encoding_format"] = self.embedding_encoding
        params["timeout"] = self._timeout(ctx)
        return params

    def embed(self, model: str, inputs: Sequence[str], ctx: CallContext) -> EmbeddingResponse:
        """Embeddings for ``inputs``, in input order."""
        self._check_embeddings(model)
        try:
            result = self.sdk().embeddings.create(**self._embed_params(model, inputs, ctx))
        except Exception as exc:
            raise self.error(exc, model) from None
        return self._embedding_response(result, model)

    async def aembed(
        self, model: str, inputs: Sequence[str], ctx: CallContext
    ) -> EmbeddingResponse:
        """Async twin of :meth:`embed`."""
        self._check_embeddings(model)
        try:
            result = await self.async_sdk().embeddings.create(
                **self._embed_params(model, inputs, ctx)
            )
        except Exception as exc:
            raise self.error(exc, model) from None
        return self._embedding_response(result, model)


def _status_body(exc: openai.APIStatusError) -> Any:
    """The error answer's body as the server sent it (the SDK keeps only its ``error`` part)."""
    try:
        text = exc.response.text
    except Exception:  # the body was never read
        text = ""
    if text.strip():
        return text
    body = exc.body
    if isinstance(body, Mapping) and "error" not in body:
        return {"error": dict(body)}
    return body


# --------------------------------------------------------------------------- OpenAI itself

_CHAT = Capabilities(tools=True, json_schema=True, json_object=True, logprobs=True)
#: Reasoning models (o-series, gpt-5 and later) return no logprobs and accept no temperature
#: or top_p other than 1 (OpenAI answers 400 ``unsupported_value``).
_REASONING = _CHAT.with_(logprobs=False, sampling=False)
_EMBEDDING = Capabilities(streaming=False, embeddings=True, context_window=8191)
_RESPONSES_ONLY = ("served by the Responses API only, not by Chat Completions",)

#: Capabilities per model family, the more specific prefix first; from wire-formats.md §5.1.
MODEL_FAMILIES: tuple[tuple[str, Capabilities], ...] = (
    ("text-embedding-", _EMBEDDING),
    ("gpt-3.5-turbo", _CHAT.with_(context_window=16385, max_output_tokens=4096)),
    ("gpt-4o-mini", _CHAT.with_(context_window=128000, max_output_tokens=16384)),
    ("gpt-4o", _CHAT.with_(context_window=128000, max_output_tokens=16384)),
    ("gpt-4.1", _CHAT.with_(context_window=1047576, max_output_tokens=32768)),
    ("gpt-5-chat", _CHAT.with_(context_window=128000, max_output_tokens=16384)),
    (
        "gpt-5-pro",
        _REASONING.with_(context_window=400000, max_output_tokens=272000, notes=_RESPONSES_ONLY),
    ),
    ("gpt-5.4-mini", _REASONING.with_(context_window=272000, max_output_tokens=128000)),
    ("gpt-5.4-nano", _REASONING.with_(context_window=272000, max_output_tokens=128000)),
    ("gpt-5.4", _REASONING.with_(context_window=1050000, max_output_tokens=128000)),
    ("gpt-5.5", _REASONING.with_(context_window=1050000, max_output_tokens=128000)),
    ("gpt-5.6", _REASONING.with_(context_window=922000, max_output_tokens=128000)),
    ("gpt-5", _REASONING.with_(context_window=272000, max_output_tokens=128000)),
    ("gpt-6", _REASONING.with_(context_window=922000, max_output_tokens=128000)),
    (
        "o1-pro",
        _REASONING.with_(context_window=200000, max_output_tokens=100000, notes=_RESPONSES_ONLY),
    ),
    (
        "o3-pro",
        _REASONING.with_(context_window=200000, max_output_tokens=100000, notes=_RESPONSES_ONLY),
    ),
    ("o1", _REASONING.with_(context_window=200000, max_output_tokens=100000)),
    ("o3", _REASONING.with_(context_window=200000, max_output_tokens=100000)),
    ("o4", _REASONING.with_(context_window=200000, max_output_tokens=100000)),
)

#: Models with a retirement date (LiteLLM's copy of OpenAI's deprecations page, §5.1).
DEPRECATIONS: dict[str, date] = {
    "gpt-4o": date(2027, 1, 14),
    "gpt-4o-mini": date(2027, 1, 14),
    "gpt-4.1": date(2027, 1, 14),
    "gpt-4.1-mini": date(2027, 1, 14),
    "gpt-4.1-nano": date(2026, 10, 23),
    "o1": date(2026, 10, 23),
    "o3": date(2026, 12, 11),
    "o3-mini": date(2026, 10, 23),
    "o4-mini": date(2026, 10, 23),
    "gpt-5": date(2026, 12, 11),
    "gpt-5-mini": date(2026, 12, 11),
    "gpt-5-nano": date(2026, 12, 11),
    "gpt-5-chat-latest": date(2026, 7, 23),
    "gpt-5.1": date(2027, 4, 1),
    "gpt-5.4-nano": date(2027, 4, 1),
    "gpt-3.5-turbo": date(2026, 10, 23),
}

#: Chat Completions and embedding models in the catalog (Responses-only models left out).
CATALOG: tuple[str, ...] = (
    "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano",
    "o1", "o3", "o3-mini", "o4-mini",
    "gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-5-chat-latest", "gpt-5.1", "gpt-5.2",
    "gpt-5.4", "gpt-5.4-mini", "gpt-5.4-nano", "gpt-5.5",
    "gpt-5.6", "gpt-5.6-sol", "gpt-5.6-terra", "gpt-5.6-luna",
    "gpt-6-luna", "gpt-6-sol", "gpt-6.1-terra", "gpt-6.1-sol", "gpt-6-astra",
    "gpt-3.5-turbo",
    "text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002",
)  # fmt: skip


def models_available_on(day: date) -> tuple[str, ...]:
    """The catalog's models not yet retired on ``day``."""
    return tuple(m for m in CATALOG if m not in DEPRECATIONS or DEPRECATIONS[m] > day)


def family_capabilities(model: str) -> Capabilities:
    """Capabilities of an OpenAI model by family; unknown names get chat defaults."""
    name = model.removeprefix("ft:").lower()  # fine-tunes behave like their base model
    caps = next((c for prefix, c in MODEL_FAMILIES if name.startswith(prefix)), _CHAT)
    retired = DEPRECATIONS.get(name)
    if retired is not None and retired <= date.today():
        caps = caps.with_(notes=(*caps.notes, f"retired by OpenAI on {retired.isoformat()}"))
    return caps


def _is_openai_host(url: str | None) -> bool:
    host = (urlsplit(url).hostname or "") if url else "api.openai.com"
    return host == "api.openai.com" or host.endswith((".openai.com", ".openai.azure.com"))


class OpenAIProvider(ChatCompletionsProvider):
    """OpenAI's API: chat (plain, streamed, tools, JSON schema, logprobs) and embeddings."""

    kind: ClassVar[str] = "openai"
    description: ClassVar[str] = "OpenAI Chat Completions and Embeddings (official openai SDK)"
    settings_class: ClassVar[type[ProviderSettings]] = OpenAISettings
    env_api_key: ClassVar[str | None] = "OPENAI_API_KEY"
    env_base_url: ClassVar[str | None] = "OPENAI_BASE_URL"
    default_base_url: ClassVar[str | None] = "https://api.openai.com/v1"
    known_models: ClassVar[tuple[str, ...]] = models_available_on(date.today())
    needs_key: ClassVar[bool] = True

    def __init__(self, name: str, settings: ProviderSettings) -> None:
        super().__init__(name, settings)
        chosen = getattr(settings, "max_tokens_param", None)
        # OpenAI's own hosts want max_completion_tokens (reasoning models refuse max_tokens);
        # compatible servers behind a base_url mostly know only max_tokens.
        native: MaxTokensParam = (
            "max_completion_tokens" if _is_openai_host(self.base_url) else "max_tokens"
        )
        self.max_tokens_param = cast("MaxTokensParam", chosen or native)

    def sdk_options(self) -> dict[str, Any]:
        """Organisation and project headers, from settings or OPENAI_ORG_ID / OPENAI_PROJECT_ID."""
        return {
            "organization": getattr(self.settings, "organization", None),
            "project": getattr(self.settings, "project", None),
        }

    def capabilities(self, model: str) -> Capabilities:
        """What ``model`` supports, by model family."""
        return family_capabilities(model)

    @classmethod
    def settings_from_env(cls, env: dict[str, str] | None = None) -> dict[str, Any]:
        """Key, base URL, organisation and project from the environment."""
        import os

        env = dict(os.environ) if env is None else env
        found = super().settings_from_env(env)
        if env.get("OPENAI_ORG_ID"):
            found["organization"] = env["OPENAI_ORG_ID"]
        if env.get("OPENAI_PROJECT_ID"):
            found["project"] = env["OPENAI_PROJECT_ID"]
        return found
