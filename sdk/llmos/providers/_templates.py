"""Turning chat messages into the exact prompt tokens a local GGUF model sees, and its output
back into answer text (:class:`AnswerText`: stop strings and trimming, as the format asks).

Three formats, chosen per model (the ``chat_format`` setting overrides the choice):

* ``gguf``: the model's own Jinja chat template (``tokenizer.chat_template`` in its metadata),
  rendered the way llama-cpp-python renders it for ``create_chat_completion``. The default
  whenever the file has a template.
* ``transcript``: for base models without a template (the embedded Gemma 3 270M is one)::

      <system message>\\n\\n
      User: <message>\\n
      Assistant: <message>\\n
      User: <message>\\n
      Assistant:

  System messages are a plain preamble paragraph (small base models follow that better than a
  ``System:`` label); tool results are ``Tool: ...`` lines. Generation stops at ``\\nUser:`` or
  ``\\nAssistant:`` (the model starting the next turn itself), and the answer is trimmed of
  surrounding whitespace. When the last message is from the assistant, the model continues it.
* any other name (``chatml``, ``gemma``, ``llama-3``, ...): one of llama-cpp-python's built-in
  chat formats.

Every format yields token ids; generation and :meth:`count_prompt_tokens` both use them, which
is why the count before a call equals the ``prompt_tokens`` it reports.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from llmos.errors import ConfigurationError, InvalidRequestError
from llmos.types import AssistantMessage, Message, SystemMessage, ToolMessage, UserMessage

__all__ = ["TRANSCRIPT_STOPS", "AnswerText", "Prompt", "PromptFormat", "choose_format"]

#: Where a transcript answer ends: the model starting the next turn.
TRANSCRIPT_STOPS: tuple[str, ...] = ("\nUser:", "\nAssistant:")


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt: its tokens, its text, the stop strings it brings, how to trim answers."""

    tokens: list[int]
    text: str
    stop: tuple[str, ...]
    format: str
    lstrip: bool = False
    rstrip: bool = False


class PromptFormat(Protocol):
    """Renders messages into a Prompt for one loaded model."""

    name: str

    def render(self, messages: Sequence[Message]) -> Prompt:
        """The prompt for ``messages``."""
        ...


def _as_dicts(messages: Sequence[Message]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for m in messages:
        item: dict[str, Any] = {"role": m.role, "content": m.content or ""}
        if isinstance(m, ToolMessage):
            item["tool_call_id"] = m.tool_call_id
        result.append(item)
    return result


class TranscriptFormat:
    """The plain ``User:``/``Assistant:`` transcript for models without a chat template."""

    name = "transcript"

    def __init__(self, llm: Any) -> None:
        self._llm = llm

    def text(self, messages: Sequence[Message]) -> tuple[str, bool]:
        """The transcript, and whether it continues a final assistant message."""
        parts: list[str] = []
        for m in messages:
            if isinstance(m, SystemMessage):
                parts.append(f"{m.content}\n\n")
            elif isinstance(m, UserMessage):
                parts.append(f"User: {m.content}\n")
            elif isinstance(m, AssistantMessage):
                parts.append(f"Assistant: {m.content or ''}\n")
            else:
                parts.append(f"Tool: {m.content}\n")
        continuing = isinstance(messages[-1], AssistantMessage)
        if continuing:
            parts[-1] = parts[-1][:-1]
        else:
            parts.append("Assistant:")
        return "".join(parts), continuing

    def render(self, messages: Sequence[Message]) -> Prompt:
        """Tokens of the transcript; message text is never parsed as special tokens."""
        text, continuing = self.text(messages)
        tokens = self._llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        return Prompt(
            tokens=tokens,
            text=text,
            stop=TRANSCRIPT_STOPS,
            format=self.name,
            lstrip=not continuing,
            rstrip=True,
        )


class GGUFTemplateFormat:
    """The Jinja chat template stored in the GGUF file."""

    name = "gguf"

    def __init__(self, llm: Any, template: str) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._llm = llm
        self._formatter: Any = Jinja2ChatFormatter(
            template=template,
            eos_token=_token_text(llm, llm.token_eos()),
            bos_token=_token_text(llm, llm.token_bos()),
            stop_token_ids=[llm.token_eos()],
        )

    def render(self, messages: Sequence[Message]) -> Prompt:
        """Render the template exactly as llama-cpp-python's chat handler does."""
        try:
            result = self._formatter(messages=_as_dicts(messages))
        except Exception as exc:  # jinja2 errors and the template's raise_exception()
            raise InvalidRequestError(
                f"the model's chat template rejected these messages: {exc}",
                field="messages",
            ) from None
        tokens = self._llm.tokenize(
            result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
        )
        return Prompt(tokens=tokens, text=result.prompt, stop=_stops(result.stop), format="gguf")


class _Captured(Exception):
    def __init__(self, kwargs: dict[str, Any]) -> None:
        super().__init__("captured")
        self.kwargs = kwargs


class _CaptureLlama:
    """Stands in for a Llama so a llama-cpp chat handler formats and tokenizes, then stops.

    Built-in handlers end by calling ``create_completion(prompt=<tokens>, stop=...)``; catching
    that call gives the exact tokens and stops the handler would generate from.
    """

    def __init__(self, llm: Any) -> None:
        self._llm = llm

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llm, name)

    def create_completion(self, *args: Any, **kwargs: Any) -> Any:
        raise _Captured(kwargs)

    __call__ = create_completion


class NamedFormat:
    """One of llama-cpp-python's built-in chat formats, chosen by name."""

    def __init__(self, llm: Any, name: str) -> None:
        from llama_cpp import llama_chat_format

        self.name = name
        self._llm = llm
        try:
            self._handler: Any = llama_chat_format.get_chat_completion_handler(name)
        except Exception as exc:  # its message lists the valid names
            raise ConfigurationError(
                f"unknown chat_format {name!r}: use 'gguf' (the model's template), "
                f"'transcript', or a llama-cpp-python format ({exc})",
                provider="local",
            ) from None

    def render(self, messages: Sequence[Message]) -> Prompt:
        """Run the handler against a stand-in model and keep what it would have generated from."""
        prompt: Any = None
        stop: Any = None
        try:
            self._handler(llama=_CaptureLlama(self._llm), messages=_as_dicts(messages))
        except _Captured as captured:
            prompt = captured.kwargs.get("prompt")
            stop = captured.kwargs.get("stop")
        except Exception as exc:
            raise InvalidRequestError(
                f"chat_format {self.name!r} rejected these messages: {exc}", field="messages"
            ) from None
        if isinstance(prompt, str):
            prompt = self._llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        if not isinstance(prompt, list):
            raise ConfigurationError(
                f"chat_format {self.name!r} does not render a plain prompt, so llmos cannot use "
                "it; choose another chat_format",
                provider="local",
            )
        text = self._llm.detokenize(prompt, special=True).decode("utf-8", errors="replace")
        return Prompt(tokens=prompt, text=text, stop=_stops(stop), format=self.name)


def _token_text(llm: Any, token: int) -> str:
    if token < 0:
        return ""
    return str(llm.detokenize([token], special=True).decode("utf-8", errors="ignore"))


def _stops(stop: Any) -> tuple[str, ...]:
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,) if stop else ()
    return tuple(s for s in stop if isinstance(s, str) and s)


def choose_format(llm: Any, chat_format: str | None) -> PromptFormat:
    """The prompt format for a loaded model: the override, else its template, else a transcript."""
    template = llm.metadata.get("tokenizer.chat_template")
    if chat_format in (None, "", "auto"):
        return GGUFTemplateFormat(llm, template) if template else TranscriptFormat(llm)
    if chat_format == "transcript":
        return TranscriptFormat(llm)
    if chat_format == "gguf":
        if not template:
            raise ConfigurationError(
                f"chat_format='gguf' but {llm.model_path} has no chat template in its "
                "metadata; use chat_format='transcript' or a named format such as 'chatml'",
                provider="local",
            )
        return GGUFTemplateFormat(llm, template)
    return NamedFormat(llm, chat_format)


# --------------------------------------------------------------------------- answers


def _cut(pending: bytes, stops: tuple[bytes, ...]) -> tuple[int, bool]:
    """How many bytes of ``pending`` may be emitted, and whether a stop sequence was found."""
    found = [at for stop in stops if (at := pending.find(stop)) >= 0]
    if found:
        return min(found), True
    cut = len(pending)
    for stop in stops:  # keep back a tail that may still grow into a stop sequence
        for k in range(min(len(stop) - 1, len(pending)), 0, -1):
            if pending.endswith(stop[:k]):
                cut = min(cut, len(pending) - k)
                break
    return cut, False


class AnswerText:
    """Generated bytes in, answer text out: UTF-8 decoded, cut at the first of ``stops``, and
    trimmed as ``prompt`` says. Streams and whole answers share it, so their texts are equal."""

    def __init__(self, prompt: Prompt, stops: tuple[bytes, ...]) -> None:
        self._stops = stops
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")
        self._lstrip, self._rstrip = prompt.lstrip, prompt.rstrip
        self._pending = b""  # generated bytes not yet emitted: a possible stop sequence's start
        self._held = ""  # trailing whitespace kept back until more text follows (rstrip)
        #: Whether a stop sequence was found (nothing after it is text).
        self.stopped = False

    def feed(self, piece: bytes) -> str:
        """The text that may be emitted after ``piece`` (often "": held back or trimmed)."""
        pending = self._pending + piece
        cut, self.stopped = _cut(pending, self._stops)
        text = self._decoder.decode(pending[:cut], final=self.stopped)
        self._pending = pending[cut:]
        if self._lstrip and text:
            text = text.lstrip()
            self._lstrip = not text
        if self._rstrip and text:
            text = self._held + text
            body = text.rstrip()
            self._held, text = text[len(body) :], body
        return text

    def end(self) -> str:
        """The rest, once generation ended without a stop sequence."""
        text = self._decoder.decode(self._pending, final=True)
        if self._lstrip:
            text = text.lstrip()
        if not self._rstrip:
            return text
        text = text.rstrip()
        return self._held + text if text else ""
