"""TGI's native ``/generate`` dialect: prompts from messages, request bodies, answers and stream.

Used by the Hugging Face provider's ``generate`` route (TGI servers and Inference Endpoints without
a chat route). ``/generate`` takes one prompt string, so :func:`build_prompt` turns the messages
into one (``prompt_format``); ``details: true`` makes TGI report the finish reason and token
counts, which :func:`parse_generate` and :class:`GenerateStreamParser` read into llmos types.

Pure translation, no I/O: plain dicts (what ``json.loads`` gives) in and out, like
:mod:`llmos.providers._chat_wire`. Shapes that would give a wrong answer raise
:class:`~llmos.errors.InvalidResponseError`; an error event in a stream raises its mapped error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Union

from llmos.errors import InvalidResponseError
from llmos.providers._chat_wire import normalise_finish_reason
from llmos.providers._errors import payload_error, request_id_from
from llmos.types import (
    AssistantMessage,
    ChatRequest,
    ChatResponse,
    Message,
    ResponseFormat,
    StreamEvent,
    TokenLogprob,
    TopLogprob,
    Usage,
)

__all__ = [
    "GenerateStreamParser",
    "PromptFormat",
    "build_prompt",
    "generate_body",
    "parse_generate",
    "tgi_grammar",
]

PromptFormat = Union[Literal["plain", "chatml", "raw"], Callable[..., str]]
"""How /generate prompts are built from messages: a built-in format or a callable."""

_SHAPE_ERRORS = (KeyError, IndexError, TypeError, ValueError, AttributeError)


def tgi_grammar(fmt: ResponseFormat) -> dict[str, Any]:
    """Structured output as TGI's grammar ``{"type": "json", "value": <JSON schema>}``."""
    return {"type": "json", "value": fmt.json_schema or {"type": "object"}}


def build_prompt(messages: Sequence[Message], prompt_format: PromptFormat = "plain") -> str:
    """The ``/generate`` prompt for ``messages``.

    ``plain``: ``"System: ...\\n\\nUser: ...\\n\\nAssistant: ...\\n\\nUser: ...\\n\\nAssistant:"``;
    ``chatml``: ``<|im_start|>role\\ncontent<|im_end|>\\n`` turns, then
    ``<|im_start|>assistant\\n``;
    ``raw``: the contents alone, joined by blank lines (for completion-style prompts).
    """
    if callable(prompt_format):
        return str(prompt_format(list(messages)))
    turns = [(m.role, _plain_content(m)) for m in messages]
    if prompt_format == "raw":
        return "\n\n".join(text for _, text in turns)
    if prompt_format == "chatml":
        body = "".join(f"<|im_start|>{role}\n{text}<|im_end|>\n" for role, text in turns)
        return body + "<|im_start|>assistant\n"
    return "".join(f"{role.capitalize()}: {text}\n\n" for role, text in turns) + "Assistant:"


def _plain_content(message: Message) -> str:
    if isinstance(message, AssistantMessage) and message.content is None:
        return json.dumps([{"name": c.name, "arguments": c.arguments} for c in message.tool_calls])
    return message.content or ""


def generate_body(request: ChatRequest, prompt: str, default_max_new_tokens: int) -> dict[str, Any]:
    """A TGI ``/generate`` body; ``extra_body`` keys join ``parameters`` (e.g. ``top_k``)."""
    params: dict[str, Any] = {
        "max_new_tokens": request.max_tokens or default_max_new_tokens,
        "details": True,
        "return_full_text": False,
    }
    if request.temperature is not None:
        # TGI wants a strictly positive temperature, so 0 means greedy decoding; any other
        # value turns sampling on (TGI would decode greedily at exactly 1.0 otherwise).
        params["do_sample"] = request.temperature > 0
        if request.temperature > 0:
            params["temperature"] = request.temperature
    if request.top_p is not None and request.top_p < 1:  # TGI refuses top_p == 1
        params["top_p"] = request.top_p
    if request.stop:
        params["stop"] = request.stop
    if request.seed is not None:
        params["seed"] = request.seed
    fmt = request.response_format
    if fmt is not None and fmt.type != "text":
        params["grammar"] = tgi_grammar(fmt)
    if request.top_logprobs:
        params["top_n_tokens"] = request.top_logprobs
    params.update(request.extra_body)
    return {"inputs": prompt, "parameters": params}


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _generate_usage(details: Mapping[str, Any], headers: Mapping[str, str], prompt: str) -> Usage:
    """Token counts of a /generate answer: details, TGI's x-*-tokens headers, the prefill."""
    completion = _int(details.get("generated_tokens", headers.get("x-generated-tokens")))
    prompt_tokens = _int(headers.get("x-prompt-tokens", details.get("input_length")))
    prefill = details.get("prefill")
    if prompt_tokens is None and isinstance(prefill, list) and prefill:
        prompt_tokens = len(prefill)
    if completion is None and prompt_tokens is None:
        return Usage(source="missing")
    if prompt_tokens is None:  # a server too old to say: about four characters per token
        return Usage(
            prompt_tokens=len(prompt) // 4, completion_tokens=completion or 0, source="approximate"
        )
    return Usage(prompt_tokens=prompt_tokens, completion_tokens=completion or 0, source="provider")


def _token_logprob(token: Mapping[str, Any], top: Any) -> TokenLogprob:
    return TokenLogprob(
        token=token["text"],
        logprob=float(token.get("logprob") or 0.0),
        top_logprobs=[
            TopLogprob(token=a["text"], logprob=float(a.get("logprob") or 0.0)) for a in top or ()
        ],
    )


def _bad_shape(provider: str, model: str, exc: Exception) -> InvalidResponseError:
    return InvalidResponseError(
        f"the answer does not have the expected shape ({type(exc).__name__}: {exc})",
        provider=provider,
        model=model,
    )


def parse_generate(
    data: Any, headers: Mapping[str, str], request: ChatRequest, provider: str, prompt: str
) -> ChatResponse:
    """A ChatResponse from a TGI ``/generate`` answer (``details`` gives reason and tokens)."""
    try:
        if isinstance(data, list):  # the compat route's shape: one item per input
            data = data[0]
        details = data.get("details") or {}
        raw = details.get("finish_reason")
        logprobs = None
        tokens = details.get("tokens")
        if request.logprobs and tokens:
            tops = details.get("top_tokens") or [None] * len(tokens)
            logprobs = [
                _token_logprob(t, top)
                for t, top in zip(tokens, tops, strict=False)
                if not t.get("special")
            ]
        return ChatResponse(
            id=request_id_from(headers),
            provider=provider,
            model=request.model,
            target=f"{provider}:{request.model}",
            message=AssistantMessage(content=str(data["generated_text"])),
            finish_reason=normalise_finish_reason(raw),
            raw_finish_reason=None if raw is None else str(raw),
            usage=_generate_usage(details, headers, prompt),
            logprobs=logprobs,
        )
    except _SHAPE_ERRORS as exc:
        raise _bad_shape(provider, request.model, exc) from None


class GenerateStreamParser:
    """TGI ``/generate_stream`` token events in, content events out, then one final event.

    Special tokens (``</s>`` and the like) are not text; the last event's ``details`` carries
    finish_reason, generated_tokens and input_length.
    """

    def __init__(
        self, provider: str, request: ChatRequest, prompt: str, headers: Mapping[str, str]
    ) -> None:
        self.provider = provider
        self.request = request
        self.prompt = prompt
        self.headers = headers
        self.details: Mapping[str, Any] | None = None

    def feed(self, event: Any) -> list[StreamEvent]:
        """The content event of one token event; raises the mapped error for an error event."""
        model = self.request.model
        if not isinstance(event, Mapping):
            raise InvalidResponseError(
                f"the stream sent an event that is not an object: {event!r:.120}",
                provider=self.provider,
                model=model,
            )
        if event.get("error") is not None:
            raise payload_error(
                event, provider=self.provider, model=model, headers=self.headers, in_stream=True
            )
        try:
            if event.get("details"):
                self.details = event["details"]
            token = event.get("token") or {}
            if not token.get("text") or token.get("special"):
                return []
            logprobs = None
            if self.request.logprobs:
                logprobs = [_token_logprob(token, event.get("top_tokens"))]
            return [StreamEvent(type="delta", delta=token["text"], logprobs=logprobs)]
        except _SHAPE_ERRORS as exc:
            raise _bad_shape(self.provider, model, exc) from None

    def final(self, *, done: bool) -> StreamEvent:
        """The final event; ``done`` says whether ``[DONE]`` arrived."""
        if self.details is None and not done:
            raise InvalidResponseError(
                "the stream ended before the server said it was finished (connection cut?)",
                provider=self.provider,
                model=self.request.model,
            )
        details = self.details or {}
        raw = details.get("finish_reason")
        return StreamEvent(
            type="final",
            finish_reason=normalise_finish_reason(raw),
            raw_finish_reason=None if raw is None else str(raw),
            usage=_generate_usage(details, self.headers, self.prompt),
            model=self.request.model,
        )
