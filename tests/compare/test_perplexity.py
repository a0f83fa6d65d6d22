"""Perplexity from returned logprobs, and of any text under the real embedded model."""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

import pytest

from llmos import Client
from llmos.compare.model import MetricValue
from llmos.compare.perplexity import (
    NO_LOGPROBS,
    local_perplexity,
    perplexity_from_logprobs,
    supports_local_scoring,
    token_logprobs,
    wants_logprobs,
)
from llmos.messages import coerce_messages
from llmos.providers.base import Capabilities
from llmos.providers.local import LocalProvider, LocalSettings
from llmos.types import TokenLogprob

MODEL = "gemma-3-270m"
MESSAGES = [
    {"role": "system", "content": "Answer the question with a short phrase."},
    {"role": "user", "content": "What is the capital of France?"},
]


def local(client: Client) -> LocalProvider:
    provider = client.provider("local")
    assert isinstance(provider, LocalProvider)
    return provider


# --------------------------------------------------------------------------- from logprobs


def test_perplexity_from_returned_logprobs() -> None:
    logprobs = [TokenLogprob(token="a", logprob=-0.5), TokenLogprob(token="b", logprob=-1.5)]
    assert perplexity_from_logprobs(logprobs).value == pytest.approx(math.exp(1.0))
    assert perplexity_from_logprobs([-2.0, 0.0]).value == pytest.approx(math.exp(1.0))


def test_no_logprobs_is_a_missing_value_with_the_reason() -> None:
    assert perplexity_from_logprobs(None) == MetricValue(value=None, reason=NO_LOGPROBS)
    assert perplexity_from_logprobs([]).reason == "no tokens to score"
    assert perplexity_from_logprobs([float("-inf")]).reason == "a token had zero probability"


def test_only_targets_declaring_logprobs_are_asked_for_them() -> None:
    assert wants_logprobs(Capabilities(logprobs=True))
    assert not wants_logprobs(Capabilities())


def test_remote_providers_cannot_score_a_given_text() -> None:
    with Client(providers={"openai": {"api_key": "sk-test"}}) as client:
        provider = client.provider("openai")
        assert not supports_local_scoring(provider)
        assert local_perplexity(provider, "gpt-5.4-mini", MESSAGES, "Paris.") == MetricValue(
            value=None, reason=NO_LOGPROBS
        )


# --------------------------------------------------------------------------- local model


def test_local_perplexity_prefers_fluent_text(local_client: Client) -> None:
    provider = local(local_client)
    fluent = local_perplexity(provider, MODEL, MESSAGES, "The capital of France is Paris.")
    noise = local_perplexity(provider, MODEL, MESSAGES, "Banana purple seventeen of the elephant.")
    assert fluent.value is not None and noise.value is not None
    assert 1.0 < fluent.value < noise.value
    again = local_perplexity(provider, MODEL, MESSAGES, "The capital of France is Paris.")
    assert again.value == pytest.approx(fluent.value, rel=1e-9)


def test_token_logprobs_equal_llama_cpp_full_logits(
    local_client: Client, embedded_model_path: Path
) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    import numpy as np

    provider = local(local_client)
    with provider.session(MODEL) as (llm, fmt):
        context = list(fmt.render(coerce_messages(MESSAGES)).tokens)
        tokens = llm.tokenize(b" The capital of France is Paris.", add_bos=False, special=False)
        ours = token_logprobs(llm, context, tokens)
    # The reference keeps every position's logits (logits_all) in a small separate context,
    # fed one token at a time as ours is (batched evaluation rounds slightly differently).
    ref = llama_cpp.Llama(
        model_path=str(embedded_model_path), n_ctx=128, logits_all=True, verbose=False
    )
    try:
        ref.eval(context)
        for token in tokens:
            ref.eval([token])
        scores = np.asarray(ref.scores[: len(context) + len(tokens)], dtype=np.float64)
    finally:
        ref.close()
    expected = []
    for i, token in enumerate(tokens):
        row = scores[len(context) - 1 + i]
        top = row.max()
        expected.append(row[token] - top - math.log(np.exp(row - top).sum()))
    assert ours == pytest.approx(expected, abs=1e-6)


def test_scoring_keeps_memory_to_a_few_vocabulary_rows(local_client: Client) -> None:
    provider = local(local_client)
    text = " ".join(["The quick brown fox jumps over the lazy dog."] * 5)
    with provider.session(MODEL) as (llm, _):
        n_vocab = llm.n_vocab()
        n_tokens = len(llm.tokenize(text.encode(), add_bos=False, special=False))
    tracemalloc.start()
    try:
        value = local_perplexity(provider, MODEL, MESSAGES, text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert value.value is not None
    all_logits = n_tokens * n_vocab * 4  # what logits for every position would take
    assert n_tokens >= 40
    assert peak < 4 * n_vocab * 8  # a few float64 rows, whatever the text's length
    assert peak < all_logits / 4


def test_scoring_does_not_disturb_later_generation(local_client: Client) -> None:
    kwargs = dict(max_tokens=12, temperature=0.0, seed=7)
    before = local_client.chat(f"local:{MODEL}", MESSAGES, **kwargs).text
    local_perplexity(local(local_client), MODEL, MESSAGES, "Paris is the capital of France.")
    with local(local_client).session(MODEL) as (llm, _):
        pass
    assert llm.n_tokens == 0  # the session reset the evaluation state
    after = local_client.chat(f"local:{MODEL}", MESSAGES, **kwargs).text
    assert after == before


def test_text_longer_than_the_context_window_is_reported(embedded_model_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    provider = LocalProvider("local", LocalSettings(n_ctx=64))
    try:
        value = local_perplexity(provider, MODEL, MESSAGES, "word " * 2000)
    finally:
        provider.close()
    assert value.value is None
    assert "exceed the" in (value.reason or "")
    assert "-token context window" in (value.reason or "")


def test_empty_text_is_not_scored(local_client: Client) -> None:
    value = local_perplexity(local(local_client), MODEL, MESSAGES, "  ")
    assert value == MetricValue(value=None, reason="empty text: nothing to score")
