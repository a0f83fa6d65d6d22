"""Hugging Face over httpx: the Inference Providers router, Inference Endpoints and TGI servers.

The ``api`` setting picks the route:

* ``router`` (the default for ``https://router.huggingface.co``): the router's OpenAI-compatible
  ``/v1/chat/completions``. Model ids are ``org/model`` with an optional ``:provider`` or
  ``:fastest`` / ``:cheapest`` / ``:preferred`` suffix, sent unchanged
  (``huggingface:meta-llama/Llama-3.1-8B-Instruct:cerebras``). Needs HF_TOKEN.
* ``chat``: the OpenAI-compatible ``<base>/v1/chat/completions`` of a TGI server or Inference
  Endpoint. TGI ignores the model field (``<name>:tgi`` is the usual spelling); structured output
  is sent as TGI's grammar ``{"type": "json", "value": schema}``.
* ``generate``: TGI's ``/generate`` and ``/generate_stream``, with a prompt built from the
  messages (``prompt_format``, see :func:`~llmos.providers._hf_wire.build_prompt`) and
  ``details: true`` for finish reasons and token counts. No tools.
* ``auto`` (the default for any other base URL): ``chat``; if that route answers 404, the same call
  goes to ``/generate`` and the instance remembers which route exists, so detection costs one
  extra request per provider instance, never one per call.

``base_url`` may be given with or without a trailing ``/v1``. Off the router a key is optional
(self-hosted TGI usually has none); a 401 then says how to set one. A cold model answers 503 with
``estimated_time``: that becomes :class:`ModelLoadingError`, a retryable ServerError whose
``retry_after`` is the estimate. The provider never waits itself: retry.py waits when the
estimate fits ``RetryPolicy.max_retry_after`` and the call's deadline, and otherwise the error
reaches the caller saying how long the model needs.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, Union
from urllib.parse import urlsplit

from pydantic import Field

from llmos.errors import (
    APIError,
    AuthenticationError,
    InvalidResponseError,
    LLMOSError,
    NotFoundError,
    ServerError,
    UnsupportedFeatureError,
)
from llmos.providers import _hf_wire as wire
from llmos.providers._http import (
    HttpPool,
    aread_error_body,
    error_from_response,
    error_from_transport,
    read_error_body,
    request_id_from,
    timeout_for,
)
from llmos.providers._sse import aiter_events, iter_events, parse_data
from llmos.providers.base import CallContext, Capabilities, Provider, ProviderSettings
from llmos.types import ChatRequest, ChatResponse, StreamEvent

if TYPE_CHECKING:
    import httpx

__all__ = ["HuggingFaceProvider", "HuggingFaceSettings", "ModelLoadingError"]

T = TypeVar("T")
HFApi = Literal["auto", "router", "chat", "generate"]
_Parser = Union[wire.ChatStreamParser, wire.GenerateStreamParser]

ROUTER_URL = "https://router.huggingface.co/v1"
_ROUTER_CAPS = Capabilities(
    tools=True,
    json_schema=True,
    json_object=True,
    notes=("logprobs depend on the serving provider, so they are not offered",),
)
_TGI_CHAT_CAPS = Capabilities(
    tools=True,
    json_schema=True,
    json_object=True,
    logprobs=True,
    needs_key=False,
    notes=("structured output is sent as TGI's grammar {type: json, value: schema}",),
)
_GENERATE_CAPS = Capabilities(
    json_schema=True,
    json_object=True,
    logprobs=True,
    needs_key=False,
    notes=("the prompt is built from the messages (see prompt_format)",),
)


class ModelLoadingError(ServerError):
    """The model is still loading (503 with ``estimated_time``); retried after ``retry_after``."""

    def __init__(self, message: str, *, estimated_time: float | None = None, **kwargs: Any):
        super().__init__(message, retry_after=estimated_time, **kwargs)
        self.estimated_time = estimated_time


class HuggingFaceSettings(ProviderSettings):
    """Settings of the Hugging Face provider (see the module docstring for ``api``)."""

    #: The route; None picks ``router`` for router.huggingface.co and ``auto`` elsewhere.
    api: HFApi | None = None
    #: Organisation billed for router calls (sent as ``X-HF-Bill-To``).
    bill_to: str | None = None
    #: How /generate prompts are built: "plain", "chatml", "raw" or a callable(messages) -> str.
    prompt_format: wire.PromptFormat = "plain"
    #: ``max_new_tokens`` sent to /generate when the call gives no max_tokens.
    default_max_new_tokens: int = Field(default=512, ge=1)


class HuggingFaceProvider(Provider):
    """Hugging Face Inference Providers (router), Inference Endpoints and TGI servers."""

    kind: ClassVar[str] = "huggingface"
    description: ClassVar[str] = (
        "Hugging Face: the Inference Providers router, Inference Endpoints and TGI servers"
    )
    settings_class: ClassVar[type[ProviderSettings]] = HuggingFaceSettings
    env_api_key: ClassVar[str | None] = "HF_TOKEN"
    env_base_url: ClassVar[str | None] = "HF_BASE_URL"
    default_base_url: ClassVar[str | None] = ROUTER_URL
    known_models: ClassVar[tuple[str, ...]] = (
        "meta-llama/Llama-3.1-8B-Instruct",
        "meta-llama/Llama-3.1-8B-Instruct:cerebras",
        "meta-llama/Llama-3.3-70B-Instruct",
        "deepseek-ai/DeepSeek-V3-0324",
        "Qwen/Qwen2.5-72B-Instruct",
    )
    needs_key: ClassVar[bool] = True
    settings: HuggingFaceSettings

    def __init__(self, name: str, settings: ProviderSettings) -> None:
        if not isinstance(settings, HuggingFaceSettings):
            settings = HuggingFaceSettings.model_validate(dict(settings))
        super().__init__(name, settings)
        base = self.base_url or ROUTER_URL
        on_router = urlsplit(base).hostname == "router.huggingface.co"
        self._api: HFApi = self.settings.api or ("router" if on_router else "auto")
        root = base.rstrip("/")
        self._root = root[:-3] if root.endswith("/v1") else root
        self._chat_url = self._root + "/v1/chat/completions"
        self._generate_url = self._root + "/generate"
        self._stream_url = self._root + "/generate_stream"
        self._pool = HttpPool()
        self._headers: dict[str, str] | None = None

    @classmethod
    def settings_from_env(cls, env: dict[str, str] | None = None) -> dict[str, Any]:
        """HF_TOKEN (else the older HUGGING_FACE_HUB_TOKEN) and HF_BASE_URL."""
        env = dict(os.environ) if env is None else env
        found = super().settings_from_env(env)
        if "api_key" not in found and env.get("HUGGING_FACE_HUB_TOKEN"):
            found["api_key"] = env["HUGGING_FACE_HUB_TOKEN"]
        return found

    @property
    def api(self) -> HFApi:
        """The route in use: router, chat, generate, or auto while not yet detected."""
        return self._api

    def capabilities(self, model: str) -> Capabilities:
        """Router chat, TGI chat, or TGI /generate capabilities (``auto`` counts as chat)."""
        if self._api == "generate":
            return _GENERATE_CAPS
        if self._api != "router":
            return _TGI_CHAT_CAPS
        base, _, suffix = model.partition(":")
        window = wire.CONTEXT_WINDOWS.get((base, suffix))
        return _ROUTER_CAPS if window is None else _ROUTER_CAPS.with_(context_window=window)

    def is_configured(self) -> bool:
        """The router needs a key; an endpoint or TGI server may not."""
        return self._api != "router" or bool(self.settings.api_key)

    # ------------------------------------------------------------------ shared by sync and async

    def _request_headers(self) -> dict[str, str]:
        if self._headers is None:
            headers = {"Content-Type": "application/json", **self.settings.headers}
            if self._api == "router" or self.settings.api_key is not None:
                headers["Authorization"] = f"Bearer {self.api_key()}"
            if self.settings.bill_to:
                headers["X-HF-Bill-To"] = self.settings.bill_to
            self._headers = headers
        return self._headers

    def _chat_payload(self, request: ChatRequest, stream: bool) -> bytes:
        body = wire.chat_body(request, tgi=self._api != "router", stream=stream)
        return json.dumps(body).encode()

    def _generate_payload(self, request: ChatRequest) -> tuple[bytes, str]:
        prompt = wire.build_prompt(request.messages, self.settings.prompt_format)
        body = wire.generate_body(request, prompt, self.settings.default_max_new_tokens)
        return json.dumps(body).encode(), prompt

    def _decode(self, response: httpx.Response, request: ChatRequest) -> Any:
        try:
            return json.loads(response.content)
        except ValueError:
            raise InvalidResponseError(
                f"the answer is not JSON: {response.content[:120]!r}",
                provider=self.name,
                model=request.model,
                request_id=request_id_from(response.headers),
            ) from None

    def _chat_answer(self, response: httpx.Response, request: ChatRequest) -> ChatResponse:
        data = self._decode(response, request)
        return wire.parse_chat(data, request, self.name, request_id_from(response.headers))

    def _generate_answer(
        self, response: httpx.Response, request: ChatRequest, prompt: str
    ) -> ChatResponse:
        data = self._decode(response, request)
        return wire.parse_generate(data, response.headers, request, self.name, prompt)

    def _error(
        self, status: int, headers: Mapping[str, str], body: Any, request: ChatRequest
    ) -> LLMOSError:
        error = error_from_response(status, headers, body, provider=self.name, model=request.model)
        # A cold start answers 503 {"error": "Model ... is currently loading", "estimated_time": s}
        body_map = error.body if isinstance(error.body, Mapping) else {}
        if status == 503 and ("estimated_time" in body_map or "loading" in error.message.lower()):
            return self._loading(error, body_map.get("estimated_time"))
        if isinstance(error, AuthenticationError) and self.settings.api_key is None:
            return AuthenticationError(
                f"{error.message}; this server wants a token: set {self.env_api_key} or pass "
                f"providers={{'{self.name}': {{'api_key': ...}}}}",
                provider=self.name,
                model=request.model,
                status_code=status,
                request_id=error.request_id,
                body=error.body,
            )
        return error

    def _loading(self, error: LLMOSError, estimate: Any) -> ModelLoadingError:
        try:
            seconds: float | None = float(estimate)
        except (TypeError, ValueError):
            seconds = getattr(error, "retry_after", None)
        if seconds is not None and seconds > 0:
            hint = (
                f"Hugging Face estimates it needs about {seconds:g} s more to load; llmos waits "
                "that long when it fits RetryPolicy.max_retry_after and the call's deadline, "
                f"otherwise retry in {seconds:g} s"
            )
        else:
            hint = "the model is still loading; retry shortly"
        return ModelLoadingError(
            f"{error.message} ({hint})",
            estimated_time=seconds,
            provider=self.name,
            model=error.model,
            status_code=error.status_code,
            request_id=error.request_id,
            provider_code=error.provider_code,
            should_retry=error.should_retry,
            body=error.body,
        )

    def _check_switch(self, request: ChatRequest, missing: NotFoundError) -> None:
        """Allow trying /generate after a chat-route 404, or re-raise that 404."""
        if self._api != "auto":
            raise missing
        if request.tools:
            raise UnsupportedFeatureError(
                f"{self.name} at {self._root} has no chat route, only /generate, which cannot "
                "call tools; remove tools or choose another target",
                feature="tools",
                provider=self.name,
                model=request.model,
            )

    def _switch_failed(self, error: LLMOSError, missing: NotFoundError) -> LLMOSError:
        if isinstance(error, NotFoundError):
            return NotFoundError(
                f"{missing.message}; {self._root} has neither /v1/chat/completions nor "
                "/generate: check the base_url",
                provider=self.name,
                model=missing.model,
                status_code=404,
                request_id=missing.request_id,
                body=missing.body,
            )
        if isinstance(error, APIError) and error.status_code is not None:
            self._api = "generate"  # /generate answered, so it exists
        return error

    def _found(self, route: HFApi) -> None:
        if self._api == "auto":
            self._api = route

    # ------------------------------------------------------------------ sync

    def _send(
        self, url: str, payload: bytes, request: ChatRequest, ctx: CallContext, stream: bool
    ) -> httpx.Response:
        import httpx

        client = self._pool.sync()
        try:
            built = client.build_request(
                "POST",
                url,
                content=payload,
                headers=self._request_headers(),
                timeout=timeout_for(ctx),
            )
            response = client.send(built, stream=stream)
        except httpx.HTTPError as exc:
            raise error_from_transport(exc, provider=self.name, model=request.model) from None
        if response.status_code >= 400:
            body = read_error_body(response)
            response.close()
            raise self._error(response.status_code, response.headers, body, request)
        return response

    def _generate(self, request: ChatRequest, ctx: CallContext) -> ChatResponse:
        payload, prompt = self._generate_payload(request)
        response = self._send(self._generate_url, payload, request, ctx, False)
        return self._generate_answer(response, request, prompt)

    def _switch(self, fn: Callable[[], T], missing: NotFoundError) -> T:
        try:
            result = fn()
        except LLMOSError as error:
            raise self._switch_failed(error, missing) from None
        self._api = "generate"
        return result

    def chat(self, request: ChatRequest, ctx: CallContext) -> ChatResponse:
        """One chat call on the route in use."""
        if self._api == "generate":
            return self._generate(request, ctx)
        payload = self._chat_payload(request, False)
        try:
            response = self._send(self._chat_url, payload, request, ctx, False)
        except NotFoundError as missing:
            self._check_switch(request, missing)
            return self._switch(lambda: self._generate(request, ctx), missing)
        self._found("chat")
        return self._chat_answer(response, request)

    def _open_stream(
        self, request: ChatRequest, ctx: CallContext
    ) -> tuple[httpx.Response, _Parser]:
        def generate() -> tuple[httpx.Response, _Parser]:
            payload, prompt = self._generate_payload(request)
            response = self._send(self._stream_url, payload, request, ctx, True)
            parser = wire.GenerateStreamParser(self.name, request, prompt, response.headers)
            return response, parser

        if self._api == "generate":
            return generate()
        payload = self._chat_payload(request, True)
        try:
            response = self._send(self._chat_url, payload, request, ctx, True)
        except NotFoundError as missing:
            self._check_switch(request, missing)
            return self._switch(generate, missing)
        self._found("chat")
        return response, wire.ChatStreamParser(self.name, request)

    def stream(self, request: ChatRequest, ctx: CallContext) -> Iterator[StreamEvent]:
        """One streamed call: content events, then one final event."""
        import httpx

        response, parser = self._open_stream(request, ctx)
        done = False
        try:
            for sse in iter_events(response.iter_bytes()):
                payload = parse_data(sse, provider=self.name, model=request.model)
                if payload is None:
                    done = True
                    break
                yield from parser.feed(payload)
        except httpx.HTTPError as exc:
            raise error_from_transport(exc, provider=self.name, model=request.model) from None
        finally:
            response.close()
        yield parser.final(done)

    def close(self) -> None:
        """Close the sync connection pool."""
        self._pool.close()

    # ------------------------------------------------------------------ async

    async def _asend(
        self, url: str, payload: bytes, request: ChatRequest, ctx: CallContext, stream: bool
    ) -> httpx.Response:
        import httpx

        client = self._pool.async_()
        try:
            built = client.build_request(
                "POST",
                url,
                content=payload,
                headers=self._request_headers(),
                timeout=timeout_for(ctx),
            )
            response = await client.send(built, stream=stream)
        except httpx.HTTPError as exc:
            raise error_from_transport(exc, provider=self.name, model=request.model) from None
        if response.status_code >= 400:
            body = await aread_error_body(response)
            await response.aclose()
            raise self._error(response.status_code, response.headers, body, request)
        return response

    async def _agenerate(self, request: ChatRequest, ctx: CallContext) -> ChatResponse:
        payload, prompt = self._generate_payload(request)
        response = await self._asend(self._generate_url, payload, request, ctx, False)
        return self._generate_answer(response, request, prompt)

    async def _aswitch(self, fn: Callable[[], Awaitable[T]], missing: NotFoundError) -> T:
        try:
            result = await fn()
        except LLMOSError as error:
            raise self._switch_failed(error, missing) from None
        self._api = "generate"
        return result

    async def achat(self, request: ChatRequest, ctx: CallContext) -> ChatResponse:
        """Async twin of :meth:`chat`."""
        if self._api == "generate":
            return await self._agenerate(request, ctx)
        payload = self._chat_payload(request, False)
        try:
            response = await self._asend(self._chat_url, payload, request, ctx, False)
        except NotFoundError as missing:
            self._check_switch(request, missing)
            return await self._aswitch(lambda: self._agenerate(request, ctx), missing)
        self._found("chat")
        return self._chat_answer(response, request)

    async def _aopen_stream(
        self, request: ChatRequest, ctx: CallContext
    ) -> tuple[httpx.Response, _Parser]:
        async def generate() -> tuple[httpx.Response, _Parser]:
            payload, prompt = self._generate_payload(request)
            response = await self._asend(self._stream_url, payload, request, ctx, True)
            parser = wire.GenerateStreamParser(self.name, request, prompt, response.headers)
            return response, parser

        if self._api == "generate":
            return await generate()
        payload = self._chat_payload(request, True)
        try:
            response = await self._asend(self._chat_url, payload, request, ctx, True)
        except NotFoundError as missing:
            self._check_switch(request, missing)
            return await self._aswitch(generate, missing)
        self._found("chat")
        return response, wire.ChatStreamParser(self.name, request)

    async def astream(self, request: ChatRequest, ctx: CallContext) -> AsyncIterator[StreamEvent]:
        """Async twin of :meth:`stream`."""
        import httpx

        response, parser = await self._aopen_stream(request, ctx)
        done = False
        try:
            async for sse in aiter_events(response.aiter_bytes()):
                payload = parse_data(sse, provider=self.name, model=request.model)
                if payload is None:
                    done = True
                    break
                for event in parser.feed(payload):
                    yield event
        except httpx.HTTPError as exc:
            raise error_from_transport(exc, provider=self.name, model=request.model) from None
        finally:
            await response.aclose()
        yield parser.final(done)

    async def aclose(self) -> None:
        """Close both connection pools."""
        await self._pool.aclose()
