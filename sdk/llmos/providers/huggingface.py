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
  messages (``prompt_format``, see :func:`~llmos.providers._tgi_wire.build_prompt`) and
  ``details: true`` for finish reasons and token counts. No tools.
* ``auto`` (the default for any other base URL): ``chat``; if that route answers 404, the same call
  goes to ``/generate`` and the instance remembers which route exists, so detection costs one
  extra request per provider instance, never one per call.

Both chat routes speak the shared chat-completions dialect (:mod:`llmos.providers._chat_wire`,
which also reads TGI's ``eos_token`` finish reasons, object-valued tool arguments and one-object
``tool_calls`` deltas); ``/generate`` speaks TGI's own dialect (:mod:`llmos.providers._tgi_wire`).
This module holds the routes, route detection and Hugging Face's errors.

``base_url`` may be given with or without a trailing ``/v1``. Off the router a key is optional
(self-hosted TGI usually has none); a 401 then says how to set one. A cold model answers 503 with
``estimated_time``: that becomes :class:`ModelLoadingError`, a retryable ServerError whose
``retry_after`` is the estimate. The provider never waits itself: retry.py waits when the
estimate fits ``RetryPolicy.max_retry_after`` and the call's deadline, and otherwise the error
reaches the caller saying how long the model needs.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, Union
from urllib.parse import urlsplit

from pydantic import Field

from llmos.errors import (
    APIError,
    AuthenticationError,
    LLMOSError,
    ModelLoadingError,
    NotFoundError,
    UnsupportedFeatureError,
)
from llmos.providers._chat_wire import (
    Dialect,
    StreamState,
    decode_json,
    encode_body,
    openai_response_format,
    parse_completion,
    request_body,
)
from llmos.providers._errors import error_from_response, request_id_from
from llmos.providers._http import HttpPool, aiter_payloads, apost, iter_payloads, post
from llmos.providers._tgi_wire import (
    GenerateStreamParser,
    PromptFormat,
    build_prompt,
    generate_body,
    parse_generate,
    tgi_grammar,
)
from llmos.providers.base import CallContext, Capabilities, Provider, ProviderSettings
from llmos.types import ChatRequest, ChatResponse, StreamEvent

if TYPE_CHECKING:
    import httpx

__all__ = [
    "CONTEXT_WINDOWS",
    "GenerateStreamParser",
    "HuggingFaceProvider",
    "HuggingFaceSettings",
    "ModelLoadingError",
    "PromptFormat",
    "build_prompt",
    "generate_body",
    "parse_generate",
]

T = TypeVar("T")
HFApi = Literal["auto", "router", "chat", "generate"]

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
#: The router and TGI leave out an assistant message's null content when it only calls tools.
DIALECT = Dialect(omit_null_content=True)


def _windows(model: str, **by_provider: int) -> dict[tuple[str, str], int]:
    return {(model, provider): tokens for provider, tokens in by_provider.items()}


#: Context windows of router models by (model, provider suffix); wire-formats §5.3.
CONTEXT_WINDOWS: dict[tuple[str, str], int] = {
    **_windows("meta-llama/Llama-3.1-8B-Instruct", nebius=128000, novita=16384,
               deepinfra=131072, cerebras=128000, hyperbolic=32768, together=131072),
    **_windows("meta-llama/Llama-3.3-70B-Instruct", hyperbolic=131072, nebius=131072,
               novita=12288, sambanova=131072, cerebras=128000, together=131072),
}  # fmt: skip


class HuggingFaceSettings(ProviderSettings):
    """Settings of the Hugging Face provider (see the module docstring for ``api``)."""

    #: The route; None picks ``router`` for router.huggingface.co and ``auto`` elsewhere.
    api: HFApi | None = None
    #: Organisation billed for router calls (sent as ``X-HF-Bill-To``).
    bill_to: str | None = None
    #: How /generate prompts are built: "plain", "chatml", "raw" or a callable(messages) -> str.
    prompt_format: PromptFormat = "plain"
    #: ``max_new_tokens`` sent to /generate when the call gives no max_tokens.
    default_max_new_tokens: int = Field(default=512, ge=1)


#: The stream parser of the route in use: chat chunks or /generate_stream token events.
_Parser = Union[StreamState, GenerateStreamParser]


# --------------------------------------------------------------------------- provider


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
        self._pool = HttpPool(self._headers)

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
        window = CONTEXT_WINDOWS.get((base, suffix))
        return _ROUTER_CAPS if window is None else _ROUTER_CAPS.with_(context_window=window)

    def is_configured(self) -> bool:
        """The router needs a key; an endpoint or TGI server may not."""
        return self._api != "router" or bool(self.settings.api_key)

    # ------------------------------------------------------------------ shared by sync and async

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **self.settings.headers}
        if self._api == "router" or self.settings.api_key is not None:
            headers["Authorization"] = f"Bearer {self.api_key()}"  # raises when missing
        if self.settings.bill_to:
            headers["X-HF-Bill-To"] = self.settings.bill_to
        return headers

    def _chat_payload(self, request: ChatRequest, stream: bool) -> bytes:
        fmt = request.response_format
        if self._api == "router":
            wanted = openai_response_format(fmt)
        else:  # TGI takes structured output as a grammar
            wanted = tgi_grammar(fmt) if fmt is not None and fmt.type != "text" else None
        body = request_body(
            request,
            DIALECT,
            response_format=wanted,
            stream=stream,
            stream_options={"include_usage": True},
        )
        return encode_body(body, model=request.model)

    def _generate_payload(self, request: ChatRequest) -> tuple[bytes, str]:
        prompt = build_prompt(request.messages, self.settings.prompt_format)
        body = generate_body(request, prompt, self.settings.default_max_new_tokens)
        return encode_body(body, model=request.model), prompt

    def _chat_answer(self, response: httpx.Response, request: ChatRequest) -> ChatResponse:
        headers = response.headers
        data = decode_json(
            response.content, provider=self.name, model=request.model, headers=headers
        )
        answer = parse_completion(data, provider=self.name, model=request.model, headers=headers)
        if answer.id is None:  # TGI sends no id; the request id names the answer instead
            answer.id = request_id_from(headers)
        return answer

    def _generate_answer(
        self, response: httpx.Response, request: ChatRequest, prompt: str
    ) -> ChatResponse:
        data = decode_json(
            response.content,
            provider=self.name,
            model=request.model,
            headers=response.headers,
            what="a /generate answer",
        )
        return parse_generate(data, response.headers, request, self.name, prompt)

    def _error(self, status: int, headers: Mapping[str, str], body: Any, model: str) -> LLMOSError:
        error = error_from_response(status, headers, body, provider=self.name, model=model)
        # A cold start answers 503 {"error": "Model ... is currently loading", "estimated_time": s}
        body_map = error.body if isinstance(error.body, Mapping) else {}
        if status == 503 and ("estimated_time" in body_map or "loading" in error.message.lower()):
            return self._loading(error, body_map.get("estimated_time"))
        if isinstance(error, AuthenticationError) and self.settings.api_key is None:
            return AuthenticationError(
                f"{error.message}; this server wants a token: set {self.env_api_key} or pass "
                f"providers={{'{self.name}': {{'api_key': ...}}}}",
                provider=self.name,
                model=model,
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

    def _post_args(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        model = request.model
        return {
            "provider": self.name,
            "model": model,
            "stream": stream,
            "on_error": lambda status, headers, body: self._error(status, headers, body, model),
        }

    # ------------------------------------------------------------------ sync

    def _send(
        self, url: str, payload: bytes, request: ChatRequest, ctx: CallContext, stream: bool
    ) -> httpx.Response:
        return post(self._pool.sync(), url, payload, ctx, **self._post_args(request, stream))

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
            return response, GenerateStreamParser(self.name, request, prompt, response.headers)

        if self._api == "generate":
            return generate()
        payload = self._chat_payload(request, True)
        try:
            response = self._send(self._chat_url, payload, request, ctx, True)
        except NotFoundError as missing:
            self._check_switch(request, missing)
            return self._switch(generate, missing)
        self._found("chat")
        return response, StreamState(self.name, request.model, response.headers)

    def stream(self, request: ChatRequest, ctx: CallContext) -> Iterator[StreamEvent]:
        """One streamed call: content events, then one final event."""
        response, parser = self._open_stream(request, ctx)
        done = False
        try:
            for payload in iter_payloads(response, ctx, provider=self.name, model=request.model):
                if payload is None:
                    done = True
                else:
                    yield from parser.feed(payload)
        finally:
            response.close()
        yield parser.final(done=done)

    def close(self) -> None:
        """Close the sync connection pool."""
        self._pool.close()

    # ------------------------------------------------------------------ async

    async def _asend(
        self, url: str, payload: bytes, request: ChatRequest, ctx: CallContext, stream: bool
    ) -> httpx.Response:
        return await apost(
            self._pool.async_(), url, payload, ctx, **self._post_args(request, stream)
        )

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
            return response, GenerateStreamParser(self.name, request, prompt, response.headers)

        if self._api == "generate":
            return await generate()
        payload = self._chat_payload(request, True)
        try:
            response = await self._asend(self._chat_url, payload, request, ctx, True)
        except NotFoundError as missing:
            self._check_switch(request, missing)
            return await self._aswitch(generate, missing)
        self._found("chat")
        return response, StreamState(self.name, request.model, response.headers)

    async def astream(self, request: ChatRequest, ctx: CallContext) -> AsyncIterator[StreamEvent]:
        """Async twin of :meth:`stream`."""
        response, parser = await self._aopen_stream(request, ctx)
        done = False
        try:
            async for payload in aiter_payloads(
                response, ctx, provider=self.name, model=request.model
            ):
                if payload is None:
                    done = True
                else:
                    for event in parser.feed(payload):
                        yield event
        finally:
            await response.aclose()
        yield parser.final(done=done)

    async def aclose(self) -> None:
        """Close both connection pools."""
        await self._pool.aclose()
