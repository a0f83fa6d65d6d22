"""AI21 Studio (Jamba) chat completions over httpx: ``POST {base_url}/chat/completions``.

The wire format is OpenAI-like with AI21's quirks (reference §2): content is a string only, a
``documents`` grounding field, ``json_object`` but no ``json_schema``, usage on the last stream
chunk without any ``stream_options``, no ``object``/``created`` in answers, ``meta`` on them, and
FastAPI-style error bodies (``{"detail": str}`` or ``{"detail": [{loc, msg, type}]}``). This
module holds the model tables, capabilities, AI21's dialect and the HTTP calls; the chat JSON
itself is built and read by the shared :mod:`llmos.providers._chat_wire`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, ClassVar

from llmos._version import __version__
from llmos.errors import InvalidRequestError, UnsupportedFeatureError
from llmos.providers._chat_wire import (
    Dialect,
    StreamState,
    decode_json,
    encode_body,
    openai_response_format,
    parse_completion,
    request_body,
    response_events,
)
from llmos.providers._errors import error_from_transport
from llmos.providers._http import HttpPool, aiter_payloads, apost, iter_payloads, post
from llmos.providers.base import CallContext, Capabilities, Provider, ProviderSettings
from llmos.types import ChatRequest, ChatResponse, StreamEvent

if TYPE_CHECKING:
    import httpx

__all__ = ["AI21Provider"]

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

#: AI21's messages carry role and content only (plus the tool fields), its tools no ``strict``;
#: ``tool_choice`` is not sent (``auto`` is what AI21 does; ``none`` leaves the tools out).
DIALECT = Dialect(names=False, omit_null_content=True, tool_choice=False, tool_strict=False)


def retired_replacement(model: str) -> str | None:
    """The Jamba model replacing a retired Jurassic ``model``; None when it is not retired."""
    name = model.lower().removeprefix("ai21.")
    if name in RETIRED_MODELS:
        return RETIRED_MODELS[name]
    if name.startswith(("j1-", "j2-")):
        return "jamba-large" if ("ultra" in name or "jumbo" in name) else "jamba-mini"
    return None


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
      Deprecated names (1.6, jamba-instruct) still work; the price catalog, which marks them
      deprecated with their successor, warns once per process (ModelDeprecationWarning).
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
        super().__init__(name, settings)  # checks a configured base_url
        self._url = (self.base_url or DEFAULT_BASE_URL).rstrip("/") + "/chat/completions"
        self._pool = HttpPool(self._headers)

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

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.api_key()}",  # raises when missing or unsafe
            "Content-Type": "application/json",
            "User-Agent": f"llmos/{__version__}",
            **self.settings.headers,
        }

    def _body(self, request: ChatRequest, stream: bool) -> bytes:
        body = request_body(
            request, DIALECT, response_format=openai_response_format(request.response_format)
        )
        if request.documents:
            body.setdefault(
                "documents",
                [
                    d.model_dump(exclude_none=True)
                    if (d.id or d.metadata)
                    else {"content": d.content}
                    for d in request.documents
                ],
            )
        # Set last, so that extra_body cannot make the body disagree with how it is read.
        if stream:
            body["stream"] = True
        else:
            body.pop("stream", None)
        return encode_body(body, model=request.model)

    def _parse(self, raw: bytes, request: ChatRequest, headers: Mapping[str, str]) -> ChatResponse:
        data = decode_json(raw, provider=self.name, model=request.model, headers=headers)
        return parse_completion(data, provider=self.name, model=request.model, headers=headers)

    def _read(self, response: httpx.Response, model: str) -> bytes:
        import httpx

        try:
            return response.read()
        except httpx.HTTPError as exc:
            raise error_from_transport(exc, provider=self.name, model=model) from None

    async def _aread(self, response: httpx.Response, model: str) -> bytes:
        import httpx

        try:
            return await response.aread()
        except httpx.HTTPError as exc:
            raise error_from_transport(exc, provider=self.name, model=model) from None

    # ------------------------------------------------------------------ calls

    def chat(self, request: ChatRequest, ctx: CallContext) -> ChatResponse:
        """One chat completion."""
        body = self._body(request, False)
        response = post(
            self._pool.sync(), self._url, body, ctx, provider=self.name, model=request.model
        )
        return self._parse(response.content, request, response.headers)

    async def achat(self, request: ChatRequest, ctx: CallContext) -> ChatResponse:
        """Async twin of :meth:`chat`."""
        body = self._body(request, False)
        response = await apost(
            self._pool.async_(), self._url, body, ctx, provider=self.name, model=request.model
        )
        return self._parse(response.content, request, response.headers)

    def stream(self, request: ChatRequest, ctx: CallContext) -> Iterator[StreamEvent]:
        """One streamed chat completion: deltas and tool-call fragments, then the final event."""
        body = self._body(request, True)
        model = request.model
        response = post(
            self._pool.sync(), self._url, body, ctx, provider=self.name, model=model, stream=True
        )
        try:
            if _is_json(response):
                raw = self._read(response, model)
                yield from response_events(self._parse(raw, request, response.headers))
                return
            state = StreamState(self.name, model, response.headers)
            done = False
            for payload in iter_payloads(response, ctx, provider=self.name, model=model):
                if payload is None:
                    done = True
                else:
                    yield from state.feed(payload)
            yield state.final(done=done)
        finally:
            response.close()

    async def astream(self, request: ChatRequest, ctx: CallContext) -> AsyncIterator[StreamEvent]:
        """Async twin of :meth:`stream`."""
        body = self._body(request, True)
        model = request.model
        response = await apost(
            self._pool.async_(),
            self._url,
            body,
            ctx,
            provider=self.name,
            model=model,
            stream=True,
        )
        try:
            if _is_json(response):
                raw = await self._aread(response, model)
                for event in response_events(self._parse(raw, request, response.headers)):
                    yield event
                return
            state = StreamState(self.name, model, response.headers)
            done = False
            async for payload in aiter_payloads(response, ctx, provider=self.name, model=model):
                if payload is None:
                    done = True
                else:
                    for event in state.feed(payload):
                        yield event
            yield state.final(done=done)
        finally:
            await response.aclose()

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the sync connection pool."""
        self._pool.close()

    async def aclose(self) -> None:
        """Close both connection pools."""
        await self._pool.aclose()


def _is_json(response: httpx.Response) -> bool:
    """True when a stream request was answered with one JSON body instead of events."""
    return str(response.headers.get("content-type", "")).startswith("application/json")
