"""AI21 Studio (Jamba) chat completions over httpx: ``POST {base_url}/chat/completions``.

The wire format is OpenAI-like with AI21's quirks (reference §2): content is a string only, a
``documents`` grounding field, ``json_object`` but no ``json_schema``, usage on the last stream
chunk without any ``stream_options``, no ``object``/``created`` in answers, ``meta`` on them, and
FastAPI-style error bodies (``{"detail": str}`` or ``{"detail": [{loc, msg, type}]}``). This
module holds the model tables, capabilities and the HTTP calls; the translation itself lives in
:mod:`llmos.providers._ai21_wire`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from llmos._log import get_logger
from llmos._version import __version__
from llmos.errors import (
    APITimeoutError,
    ConfigurationError,
    InvalidRequestError,
    InvalidResponseError,
    LLMOSError,
    UnsupportedFeatureError,
)
from llmos.providers._ai21_wire import (
    StreamState,
    adrain,
    build_body,
    completion_events,
    drain,
    parse_completion,
)
from llmos.providers._http import (
    HttpPool,
    aread_error_body,
    error_from_response,
    error_from_transport,
    read_error_body,
    timeout_for,
)
from llmos.providers._sse import aiter_events, iter_events, parse_data
from llmos.providers.base import CallContext, Capabilities, Provider, ProviderSettings
from llmos.types import ChatRequest, ChatResponse, StreamEvent

if TYPE_CHECKING:
    import httpx

__all__ = ["AI21Provider"]

_log = get_logger("providers.ai21")

DEFAULT_BASE_URL = "https://api.ai21.com/studio/v1"

#: Names AI21 serves today (aliases first). Any other ``jamba-*`` name is passed through.
CURRENT_MODELS = (
    "jamba-large",
    "jamba-mini",
    "jamba-large-1.7",
    "jamba-mini-1.7",
    "jamba-1.5-large",
    "jamba-1.5-mini",
)

#: Still served but deprecated by AI21: model -> what to use instead (warned once per process).
DEPRECATED_MODELS: dict[str, str] = {
    "jamba-large-1.6": "jamba-large",
    "jamba-mini-1.6": "jamba-mini",
    "jamba-instruct": "jamba-mini",
    "jamba-instruct-preview": "jamba-mini",
}

#: Retired Jurassic names with a known successor; other ``j1-*``/``j2-*`` names map by size.
RETIRED_MODELS: dict[str, str] = {
    "j1-jumbo": "jamba-large",
    "j2-jumbo": "jamba-large",
    "j2-ultra": "jamba-large",
    "j2-jumbo-instruct": "jamba-large",
    "j1-grande": "jamba-mini",
    "j1-grande-instruct": "jamba-mini",
    "j1-large": "jamba-mini",
    "j2-grande": "jamba-mini",
    "j2-grande-instruct": "jamba-mini",
    "j2-mid": "jamba-mini",
    "j2-light": "jamba-mini",
}

_JAMBA = Capabilities(
    streaming=True,
    tools=True,
    json_schema=False,
    json_object=True,
    embeddings=False,
    logprobs=False,
    documents=True,
    stream_usage=True,
    context_window=256_000,
    max_output_tokens=4096,
    needs_key=True,
    notes=(
        "json_schema is refused before sending: AI21 only has json_object",
        "documents are sent as AI21's grounding `documents` field",
        "usage always arrives on the last stream chunk",
    ),
)

#: Capabilities per model family (the two Jamba sizes differ in price, not in features).
FAMILY_CAPABILITIES: dict[str, Capabilities] = {"jamba-large": _JAMBA, "jamba-mini": _JAMBA}

_warned: set[str] = set()
_warned_lock = threading.Lock()


def retired_replacement(model: str) -> str | None:
    """The Jamba model replacing a retired Jurassic ``model``; None when it is not retired."""
    name = model.lower().removeprefix("ai21.")
    if name in RETIRED_MODELS:
        return RETIRED_MODELS[name]
    if name.startswith(("j1-", "j2-")):
        return "jamba-large" if ("ultra" in name or "jumbo" in name) else "jamba-mini"
    return None


def _warn_deprecated(model: str, replacement: str) -> None:
    with _warned_lock:
        if model in _warned:
            return
        _warned.add(model)
    _log.warning(
        "AI21 model %r is deprecated and will be removed; use %r instead", model, replacement
    )


# --------------------------------------------------------------------------- provider


class AI21Provider(Provider):
    """AI21 Studio's Jamba models (``ai21:jamba-mini``, ``ai21:jamba-large``) over httpx.

    Decisions where AI21's API leaves a choice:

    - **json_schema** is refused before sending with UnsupportedFeatureError: AI21 has only
      ``json_object``, and faking a schema with prompt text would change the prompt (and its cost)
      while promising a guarantee the server does not give. Ask for ``response_format="json"``.
    - **Retired Jurassic models** (``j1-*``, ``j2-*``) raise InvalidRequestError(field="model")
      naming the Jamba successor, before anything is sent. The call's model string is what is
      wrong, not the client's configuration (the same client serves every Jamba model), so the
      fix belongs in the request; and as an InvalidRequestError it stops a fallback chain loudly
      instead of being skipped like a missing key, and never counts against the target's health.
      Deprecated names (1.6, jamba-instruct) still work and log one warning per process.
    - **max_tokens** above 4096 (AI21's documented limit) is refused by the base check.
    - **seed** is passed through as ``seed`` (unverified server support; AI21 answers 422 if it
      refuses it). **tool_choice**: ``auto`` is AI21's behaviour and is not sent; ``none`` omits
      the tools from the body; ``required`` and a named tool are refused with
      UnsupportedFeatureError (send ``extra_body={"tool_choice": ...}`` to try anyway).
    - **logprobs** is not declared (no documented request field); logprobs the server returns
      (e.g. asked for through ``extra_body``) are parsed.
    - Message ``name`` fields are dropped (AI21 messages have none); one choice per call
      (``n`` other than 1 in extra_body is refused).
    """

    kind: ClassVar[str] = "ai21"
    description: ClassVar[str] = "AI21 Studio Jamba chat completions (httpx)"
    env_api_key: ClassVar[str | None] = "AI21_API_KEY"
    env_base_url: ClassVar[str | None] = "AI21_BASE_URL"
    default_base_url: ClassVar[str | None] = DEFAULT_BASE_URL
    known_models: ClassVar[tuple[str, ...]] = CURRENT_MODELS
    needs_key: ClassVar[bool] = True

    def __init__(self, name: str, settings: ProviderSettings) -> None:
        super().__init__(name, settings)
        base = self.base_url or DEFAULT_BASE_URL
        try:
            parts = urlsplit(base)
        except ValueError as exc:
            parts, why = None, str(exc)
        else:
            why = "it needs http:// or https:// and a host"
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"providers['{name}'].base_url {base!r} is not a usable URL ({why}); "
                f"set it to e.g. {DEFAULT_BASE_URL!r}",
                provider=name,
            )
        self._url = base.rstrip("/") + "/chat/completions"
        self._pool: HttpPool | None = None
        self._pool_lock = threading.Lock()

    # ------------------------------------------------------------------ description and checks

    def capabilities(self, model: str) -> Capabilities:
        """Jamba capabilities; every Jamba family shares them."""
        family = "jamba-large" if "large" in model else "jamba-mini"
        return FAMILY_CAPABILITIES.get(family, _JAMBA)

    def check(self, request: ChatRequest, *, stream: bool = False) -> None:
        """Refuse retired models and what AI21 cannot do, before anything is sent."""
        model = request.model
        replacement = retired_replacement(model)
        if replacement is not None:
            raise InvalidRequestError(
                f"AI21 model {model!r} is a retired Jurassic model and no longer served; "
                f"use '{self.name}:{replacement}' instead",
                field="model",
                provider=self.name,
                model=model,
            )
        successor = DEPRECATED_MODELS.get(model)
        if successor is not None:
            _warn_deprecated(model, successor)
        fmt = request.response_format
        if fmt is not None and fmt.type == "json_schema":
            raise UnsupportedFeatureError(
                f"{self.name}:{model} does not support json_schema response formats (AI21 has "
                "only json_object); use response_format='json' and validate the output "
                "yourself, or choose a target that supports json_schema",
                feature="json_schema",
                provider=self.name,
                model=model,
            )
        choice = request.tool_choice
        if choice is not None and choice not in ("auto", "none"):
            shown = choice if isinstance(choice, str) else f"the named tool {choice.name!r}"
            raise UnsupportedFeatureError(
                f"{self.name}:{model} cannot force tool use (tool_choice={shown}); AI21 "
                "decides itself (tool_choice='auto'). Drop tool_choice, or send "
                "extra_body={'tool_choice': ...} to try it unverified",
                feature="tool_choice",
                provider=self.name,
                model=model,
            )
        n = request.extra_body.get("n")
        if n is not None and n != 1:
            raise InvalidRequestError(
                f"extra_body n={n!r}: llmos reads one choice per call; drop n or set it to 1",
                field="extra_body.n",
                provider=self.name,
                model=model,
            )
        super().check(request, stream=stream)

    # ------------------------------------------------------------------ plumbing

    def _http(self) -> HttpPool:
        pool = self._pool
        if pool is None:
            headers = {
                "Authorization": f"Bearer {self.api_key()}",  # raises when missing or unsafe
                "Content-Type": "application/json",
                "User-Agent": f"llmos/{__version__}",
                **self.settings.headers,
            }
            with self._pool_lock:
                if self._pool is None:
                    self._pool = HttpPool(headers)
                pool = self._pool
        return pool

    def _transport_error(self, exc: Exception, model: str) -> LLMOSError:
        import httpx

        if isinstance(exc, httpx.InvalidURL):
            return ConfigurationError(
                f"providers['{self.name}'].base_url gives the invalid URL {self._url!r}: {exc}; "
                f"set it to e.g. {DEFAULT_BASE_URL!r}",
                provider=self.name,
                model=model,
            )
        return error_from_transport(exc, provider=self.name, model=model)

    def _error(self, response: httpx.Response, body: Any, model: str) -> LLMOSError:
        return error_from_response(
            response.status_code, response.headers, body, provider=self.name, model=model
        )

    def _parse(self, raw: bytes, request: ChatRequest, headers: Mapping[str, str]) -> ChatResponse:
        try:
            data = json.loads(raw)
        except ValueError:
            shown = raw[:120].decode("utf-8", errors="replace")
            raise InvalidResponseError(
                f"the answer is not JSON: {shown!r}", provider=self.name, model=request.model
            ) from None
        try:
            return parse_completion(data, request, self.name, headers)
        except LLMOSError as exc:
            exc.provider = exc.provider or self.name
            exc.model = exc.model or request.model
            raise
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise InvalidResponseError(
                f"the answer does not have AI21's chat completion shape ({exc!r})",
                provider=self.name,
                model=request.model,
            ) from None

    def _deadline_passed(self, ctx: CallContext, model: str) -> APITimeoutError | None:
        if ctx.deadline.at is not None and ctx.deadline.expired():
            return APITimeoutError(
                "the call's total timeout passed while the stream was running",
                provider=self.name,
                model=model,
            )
        return None

    def _unexpected_json(
        self, raw: bytes, request: ChatRequest, headers: Mapping[str, str]
    ) -> Iterator[StreamEvent]:
        """A stream request answered with one JSON body: an error object, or a whole answer."""
        yield from completion_events(self._parse(raw, request, headers))

    # ------------------------------------------------------------------ sync calls

    def chat(self, request: ChatRequest, ctx: CallContext) -> ChatResponse:
        """One chat completion."""
        import httpx

        client = self._http().sync()
        body = build_body(request, stream=False)
        try:
            response = client.post(self._url, content=body, timeout=timeout_for(ctx))
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self._transport_error(exc, request.model) from None
        if not 200 <= response.status_code < 300:
            raise self._error(response, response.content, request.model)
        return self._parse(response.content, request, response.headers)

    def stream(self, request: ChatRequest, ctx: CallContext) -> Iterator[StreamEvent]:
        """One streamed chat completion: deltas and tool-call fragments, then the final event."""
        import httpx

        client = self._http().sync()
        body = build_body(request, stream=True)
        try:
            response = client.send(
                client.build_request("POST", self._url, content=body, timeout=timeout_for(ctx)),
                stream=True,
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self._transport_error(exc, request.model) from None
        try:
            if not 200 <= response.status_code < 300:
                raise self._error(response, read_error_body(response), request.model)
            headers = response.headers
            if headers.get("content-type", "").startswith("application/json"):
                yield from self._unexpected_json(response.read(), request, headers)
                return
            state = StreamState(self.name, request.model)
            chunks = response.iter_bytes()
            for event in iter_events(chunks):
                payload = parse_data(event, provider=self.name, model=request.model)
                if payload is None:
                    state.done = True
                    drain(chunks)
                    break
                yield from self._feed(state, payload, headers, request)
                late = self._deadline_passed(ctx, request.model)
                if late is not None:
                    raise late
            yield state.final()
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self._transport_error(exc, request.model) from None
        finally:
            response.close()

    def _feed(
        self,
        state: StreamState,
        payload: Any,
        headers: Mapping[str, str],
        request: ChatRequest,
    ) -> list[StreamEvent]:
        try:
            return state.feed(payload, headers)
        except LLMOSError as exc:
            exc.provider = exc.provider or self.name
            exc.model = exc.model or request.model
            raise
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise InvalidResponseError(
                f"a stream chunk does not have AI21's chunk shape ({exc!r})",
                provider=self.name,
                model=request.model,
            ) from None

    # ------------------------------------------------------------------ async calls

    async def achat(self, request: ChatRequest, ctx: CallContext) -> ChatResponse:
        """Async twin of :meth:`chat`."""
        import httpx

        client = self._http().async_()
        body = build_body(request, stream=False)
        try:
            response = await client.post(self._url, content=body, timeout=timeout_for(ctx))
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self._transport_error(exc, request.model) from None
        if not 200 <= response.status_code < 300:
            raise self._error(response, response.content, request.model)
        return self._parse(response.content, request, response.headers)

    async def astream(self, request: ChatRequest, ctx: CallContext) -> AsyncIterator[StreamEvent]:
        """Async twin of :meth:`stream`."""
        import httpx

        client = self._http().async_()
        body = build_body(request, stream=True)
        try:
            response = await client.send(
                client.build_request("POST", self._url, content=body, timeout=timeout_for(ctx)),
                stream=True,
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self._transport_error(exc, request.model) from None
        try:
            if not 200 <= response.status_code < 300:
                raise self._error(response, await aread_error_body(response), request.model)
            headers = response.headers
            if headers.get("content-type", "").startswith("application/json"):
                for item in self._unexpected_json(await response.aread(), request, headers):
                    yield item
                return
            state = StreamState(self.name, request.model)
            achunks = response.aiter_bytes()
            async for event in aiter_events(achunks):
                payload = parse_data(event, provider=self.name, model=request.model)
                if payload is None:
                    state.done = True
                    await adrain(achunks)
                    break
                for item in self._feed(state, payload, headers, request):
                    yield item
                late = self._deadline_passed(ctx, request.model)
                if late is not None:
                    raise late
            yield state.final()
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self._transport_error(exc, request.model) from None
        finally:
            await response.aclose()

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the sync connection pool."""
        if self._pool is not None:
            self._pool.close()

    async def aclose(self) -> None:
        """Close both connection pools."""
        if self._pool is not None:
            await self._pool.aclose()
