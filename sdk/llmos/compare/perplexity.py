"""Perplexity: exp(-mean token log-probability) of a text, and whose text it was.

* Targets that return token logprobs (OpenAI with ``logprobs=True``): the perplexity of the
  model's own output, from :attr:`ChatResponse.logprobs` (:func:`perplexity_from_logprobs`).
* Local GGUF models: llama.cpp scores any text, the reference or the model's output, after the
  item's prompt (:func:`local_perplexity`). The local provider keeps logits for the last
  position only (``logits_all`` would hold n_ctx x vocabulary floats, about 4 GB at n_ctx 4096
  for Gemma 3's 262k vocabulary), so the text is evaluated one token at a time and each
  position's logits are log-softmaxed with numpy before the next: memory stays at a few
  vocabulary-sized rows, however long the text.
* Anything else: ``MetricValue(None, reason=NO_LOGPROBS)``.

Perplexities depend on the tokenizer and on which text was scored, so they are reported next
to ``perplexity_of`` ("output" or "reference") and are not part of the performance score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from llmos.compare.model import MetricValue

if TYPE_CHECKING:
    from llmos.messages import MessagesInput
    from llmos.providers.base import Capabilities, Provider
    from llmos.types import TokenLogprob

__all__ = [
    "NO_LOGPROBS",
    "PerplexityOf",
    "local_perplexity",
    "perplexity_from_logprobs",
    "supports_local_scoring",
    "token_logprobs",
    "wants_logprobs",
]

PerplexityOf = Literal["output", "reference"]
NO_LOGPROBS = "target exposes no logprobs"


def wants_logprobs(capabilities: Capabilities) -> bool:
    """Whether to ask a target for token logprobs (it declares them)."""
    return bool(capabilities.logprobs)


def supports_local_scoring(provider: Provider) -> bool:
    """Whether ``provider`` can score a given text itself (the in-process local provider)."""
    from llmos.providers.local import LocalProvider

    return isinstance(provider, LocalProvider)


def _from_values(values: Sequence[float]) -> MetricValue:
    if not values:
        return MetricValue(value=None, reason="no tokens to score")
    mean = sum(values) / len(values)
    if not math.isfinite(mean):
        return MetricValue(value=None, reason="a token had zero probability")
    try:
        return MetricValue(value=math.exp(-mean))
    except OverflowError:
        return MetricValue(value=None, reason="perplexity overflows a float")


def perplexity_from_logprobs(
    logprobs: Sequence[TokenLogprob] | Sequence[float] | None,
) -> MetricValue:
    """exp(-mean logprob) of the returned tokens; None with the reason when there are none."""
    if logprobs is None:
        return MetricValue(value=None, reason=NO_LOGPROBS)
    values = [float(x) if isinstance(x, (int, float)) else float(x.logprob) for x in logprobs]
    return _from_values(values)


def _log_softmax_at(logits: Any, token: int) -> float:
    """log p(token) from one position's logits, in float64 (one vocabulary-sized row)."""
    import numpy as np

    row = np.asarray(logits, dtype=np.float64)
    top = float(row.max())
    return float(row[token] - top - math.log(float(np.exp(row - top).sum())))


def token_logprobs(llm: Any, context: Sequence[int], tokens: Sequence[int]) -> list[float]:
    """log p(tokens[i] | context + tokens[:i]) for each token, under a loaded ``llama_cpp.Llama``.

    Holds one position's logits at a time. The caller holds the model's lock (see
    ``LocalProvider.session``); the model's evaluation state is replaced.
    """
    import numpy as np

    if not context:
        raise ValueError("token_logprobs needs at least one context token (e.g. BOS)")
    if len(context) + len(tokens) > llm.n_ctx():
        raise ValueError("context + tokens exceed the context window")
    import llama_cpp

    n_vocab = llm.n_vocab()
    llm.reset()
    llm.eval(list(context))
    result: list[float] = []
    for i, token in enumerate(tokens):
        pointer = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        logits = np.ctypeslib.as_array(pointer, shape=(n_vocab,))
        result.append(_log_softmax_at(logits, int(token)))
        if i + 1 < len(tokens):
            llm.eval([int(token)])
    return result


def local_perplexity(
    provider: Provider,
    model: str,
    messages: MessagesInput,
    text: str,
) -> MetricValue:
    """Perplexity of ``text`` as the answer to ``messages`` under a local model.

    ``text`` is the reference (``perplexity_of="reference"``) or the model's earlier output
    (``"output"``); the caller records which. Errors become a None value with the reason.
    """
    from llmos.messages import coerce_messages

    if not supports_local_scoring(provider):
        return MetricValue(value=None, reason=NO_LOGPROBS)
    if not text.strip():
        return MetricValue(value=None, reason="empty text: nothing to score")
    conversation = coerce_messages(messages)
    try:
        with provider.session(model) as (llm, fmt):  # type: ignore[attr-defined]
            prompt = fmt.render(conversation)
            # Formats that trim the answer's leading space (a transcript ending "Assistant:")
            # see the text after a space; scoring it without one would misplace its first token.
            spaced = (" " + text) if getattr(prompt, "lstrip", False) else text
            tokens = llm.tokenize(spaced.encode("utf-8"), add_bos=False, special=False)
            context = list(prompt.tokens) or [llm.token_bos()]
            room = llm.n_ctx() - len(context)
            if len(tokens) > room:
                return MetricValue(
                    value=None,
                    reason=f"prompt + text ({len(context) + len(tokens)} tokens) exceed the "
                    f"{llm.n_ctx()}-token context window",
                )
            values = token_logprobs(llm, context, tokens)
    except Exception as exc:  # llama.cpp and template failures: report, never abort a run
        return MetricValue(value=None, reason=f"local scoring failed: {type(exc).__name__}: {exc}")
    return _from_values(values)
