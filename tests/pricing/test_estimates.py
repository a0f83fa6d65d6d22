"""Estimates before a call: prompt tokens and their source, worst and expected cost, price used."""

from __future__ import annotations

import math
from decimal import Decimal

from llmos import Client, Provider
from llmos.messages import build_request
from llmos.pricing import Pricing
from llmos.pricing.costing import EXPECTED_OUTPUT_CAP, EXPECTED_OUTPUT_SHARE
from llmos.routing import parse_target
from llmos.types import ChatRequest, TokenCount

M = Decimal(10) ** 6


def test_worst_case_is_all_of_max_tokens_and_expected_is_half_of_it(pricing: Pricing) -> None:
    request = build_request("m", "Explain tuples.", max_tokens=256)
    target = parse_target("openai:gpt-5.4-mini")
    est = pricing.estimate(target, request)
    prompt = pricing.count_prompt(target, request).tokens
    assert est.prompt_tokens == prompt
    assert est.max_output_tokens == 256 and est.expected_output_tokens == 128
    # gpt-5.4-mini: $0.75 in, $4.5 out
    assert est.worst_case_usd == (prompt * Decimal("0.75") + 256 * Decimal("4.5")) / M
    assert est.expected_usd == (prompt * Decimal("0.75") + 128 * Decimal("4.5")) / M
    assert est.price_key == "openai:gpt-5.4-mini"
    assert est.price_source == "https://developers.openai.com/api/docs/pricing"
    assert est.price_as_of == "2026-12-01" and est.reason is None
    assert est.target == "openai:gpt-5.4-mini"


def test_the_expected_case_is_capped(pricing: Pricing) -> None:
    est = pricing.estimate(
        parse_target("ai21:jamba-mini"), build_request("m", "hi", max_tokens=4000)
    )
    assert est.expected_output_tokens == EXPECTED_OUTPUT_CAP
    assert math.ceil(4000 * EXPECTED_OUTPUT_SHARE) > EXPECTED_OUTPUT_CAP


def test_the_worst_case_bills_prompt_tokens_at_the_cache_write_rate_where_billed(
    pricing: Pricing,
) -> None:
    request = build_request("m", "hello there", max_tokens=100)
    target = parse_target("openai:gpt-5.6-sol")
    est = pricing.estimate(target, request)
    p = est.prompt_tokens
    assert est.worst_case_usd == (p * Decimal("5.0") + 100 * Decimal("20")) / M
    assert est.expected_usd == (p * Decimal("4") + 50 * Decimal("20")) / M


def test_without_max_tokens_the_worst_case_is_the_models_output_limit(pricing: Pricing) -> None:
    est = pricing.estimate(parse_target("openai:gpt-4o"), build_request("m", "hi"))
    assert est.max_output_tokens == 16384  # gpt-4o's max output
    assert est.expected_output_tokens == EXPECTED_OUTPUT_CAP
    assert est.worst_case_usd is not None
    unknown_limit = pricing.estimate(
        parse_target("hf:meta-llama/Llama-3.1-8B-Instruct:nscale"), build_request("m", "hi")
    )
    assert unknown_limit.worst_case_usd is None and "set max_tokens" in (unknown_limit.reason or "")
    assert unknown_limit.expected_usd is not None


def test_batch_prices_are_used_when_asked(pricing: Pricing) -> None:
    request = build_request("m", "hi", max_tokens=1000)
    target = parse_target("openai:gpt-5.4-mini")
    live = pricing.estimate(target, request)
    batch = pricing.estimate(target, request, batch=True)
    p = batch.prompt_tokens
    assert batch.worst_case_usd == (p * Decimal("0.375") + 1000 * Decimal("2.25")) / M
    assert live.worst_case_usd == 2 * batch.worst_case_usd  # type: ignore[operator]


def test_an_unknown_price_estimates_tokens_but_no_money(pricing: Pricing) -> None:
    est = pricing.estimate(
        parse_target("hf:meta-llama/Llama-3.1-8B-Instruct"), build_request("m", "hi", max_tokens=9)
    )
    assert est.prompt_tokens > 0 and not est.prompt_tokens_exact
    assert est.worst_case_usd is None and est.expected_usd is None
    assert "name the provider" in (est.reason or "") and est.price_key is None


class CountingProvider(Provider):
    """A provider with its own tokenizer, like the local provider."""

    kind = "local"
    needs_key = False

    def count_prompt_tokens(self, request: ChatRequest) -> TokenCount:
        return TokenCount(tokens=42, method="exact", tokenizer="test-tokenizer")


class BrokenCounter(Provider):
    kind = "local"
    needs_key = False

    def count_prompt_tokens(self, request: ChatRequest) -> TokenCount:
        raise RuntimeError("tokenizer exploded")


def test_the_providers_own_count_is_used_when_it_has_one(pricing: Pricing) -> None:
    provider = CountingProvider("mine", Provider.settings_class())
    est = pricing.estimate(parse_target("mine:x"), build_request("m", "hi", max_tokens=4), provider)
    assert est.prompt_tokens == 42 and est.prompt_tokens_exact
    assert est.prompt_tokens_source == "test-tokenizer"
    assert est.worst_case_usd == 0 and est.price_key == "local:*"  # kind local: no API fee


def test_a_failing_provider_count_falls_back_to_an_approximation(pricing: Pricing) -> None:
    provider = BrokenCounter("mine", Provider.settings_class())
    est = pricing.estimate(parse_target("mine:x"), build_request("m", "hi", max_tokens=4), provider)
    assert est.prompt_tokens > 0 and not est.prompt_tokens_exact


def test_client_estimate_counts_with_the_providers_tokenizer() -> None:
    with Client(env={}) as client:
        client._core.registry.register("mine", CountingProvider)
        est = client.estimate("mine:model", "Hello", max_tokens=16)
    assert est.prompt_tokens == 42 and est.prompt_tokens_exact
    assert est.worst_case_usd == 0 and est.max_output_tokens == 16
