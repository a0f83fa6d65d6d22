"""Actual costs from usage, checked against hand-computed values with exact Decimal arithmetic.

Prices are USD per 1M tokens; every expected value below is written out by hand from the
shipped catalog (wire-formats reference §5) and the formula in §1.2.
"""

from __future__ import annotations

from decimal import Decimal

from llmos.pricing import Catalog, Pricing
from llmos.routing import Target, parse_target
from llmos.types import Latency, Usage

M = Decimal(10) ** 6
NO_TIME = Latency(total_s=0.0)


def cost(pricing: Pricing, target: str, **usage: int):
    return pricing.cost(parse_target(target), Usage(**usage), NO_TIME)


def test_plain_usage_is_prompt_times_input_plus_completion_times_output(
    pricing: Pricing, catalog: Catalog
) -> None:
    c = cost(pricing, "openai:gpt-4.1-mini", prompt_tokens=1200, completion_tokens=300)
    entry = catalog.get("openai:gpt-4.1-mini")
    assert entry is not None and (entry.input, entry.output) == (Decimal("0.4"), Decimal("1.6"))
    # 1200 * 0.4 / 1e6 + 300 * 1.6 / 1e6 = 0.00048 + 0.00048
    assert c.total_usd == Decimal("0.00096")
    assert c.total_usd == (1200 * entry.input + 300 * entry.output) / M
    assert (c.input_usd, c.output_usd) == (Decimal("0.00048"), Decimal("0.00048"))
    assert c.cached_input_usd == 0 and c.cache_write_usd == 0
    assert c.price_key == "openai:gpt-4.1-mini"
    assert c.price_source == "https://developers.openai.com/api/docs/pricing"
    assert c.price_as_of == "2026-12-01" and c.reason is None


def test_cached_input_tokens_are_part_of_prompt_tokens_and_billed_at_the_cached_price(
    pricing: Pricing,
) -> None:
    # The reference's example usage: 1200 prompt tokens of which 1024 were cached.
    c = cost(
        pricing,
        "openai:gpt-4.1-mini",
        prompt_tokens=1200,
        completion_tokens=300,
        cached_tokens=1024,
    )
    # (1200 - 1024) * 0.4 + 1024 * 0.1 + 300 * 1.6 = 70.4 + 102.4 + 480 = 652.8 per 1e6
    assert c.input_usd == Decimal("0.0000704")
    assert c.cached_input_usd == Decimal("0.0001024")
    assert c.output_usd == Decimal("0.00048")
    assert c.total_usd == Decimal("0.0006528")


def test_reasoning_tokens_are_billed_as_output_once_inside_completion_tokens(
    pricing: Pricing,
) -> None:
    c = cost(pricing, "openai:o3", prompt_tokens=1000, completion_tokens=500, reasoning_tokens=400)
    # o3: $2 in, $8 out. completion_tokens (500) already includes the 400 reasoning tokens.
    assert c.output_usd == Decimal("0.004")
    assert c.total_usd == Decimal("0.006")  # 1000 * 2 + 500 * 8 = 6000 per 1e6
    without = cost(pricing, "openai:o3", prompt_tokens=1000, completion_tokens=500)
    assert without.total_usd == c.total_usd


def test_cache_writes_are_billed_at_their_own_rate_on_models_that_bill_them(
    pricing: Pricing, catalog: Catalog
) -> None:
    entry = catalog.get("openai:gpt-5.6-sol")
    assert entry is not None and entry.bills_cache_writes
    assert entry.cache_write == Decimal("5.0") == entry.input * Decimal("1.25")
    c = cost(
        pricing,
        "openai:gpt-5.6-sol",
        prompt_tokens=10_000,
        cached_tokens=2_000,
        cache_write_tokens=3_000,
        completion_tokens=1_000,
    )
    # uncached 5000 * 4 + cached 2000 * 0.4 + written 3000 * 5.0 + output 1000 * 20
    # = 20000 + 800 + 15000 + 20000 = 55800 per 1e6
    assert c.input_usd == Decimal("0.02")
    assert c.cached_input_usd == Decimal("0.0008")
    assert c.cache_write_usd == Decimal("0.015")
    assert c.output_usd == Decimal("0.02")
    assert c.total_usd == Decimal("0.0558")


def test_cache_write_tokens_on_a_model_without_a_write_price_cost_the_input_price(
    pricing: Pricing,
) -> None:
    c = cost(
        pricing,
        "openai:gpt-4.1-mini",
        prompt_tokens=1000,
        cache_write_tokens=400,
        completion_tokens=0,
    )
    assert c.total_usd == Decimal("0.0004")  # all 1000 prompt tokens at $0.4


def test_prompts_over_the_long_context_threshold_use_the_tier_prices(pricing: Pricing) -> None:
    c = cost(pricing, "openai:gpt-5.4", prompt_tokens=300_000, completion_tokens=1_000)
    # above 272k prompt tokens gpt-5.4 costs $5 in / $22.5 out for the whole call
    assert c.total_usd == Decimal("1.5225")  # 300000 * 5 + 1000 * 22.5 = 1522500 per 1e6
    short = cost(pricing, "openai:gpt-5.4", prompt_tokens=272_000, completion_tokens=1_000)
    assert short.total_usd == Decimal("0.695")  # 272000 * 2.5 + 1000 * 15


def test_embeddings_cost_their_input_tokens(pricing: Pricing) -> None:
    c = cost(pricing, "openai:text-embedding-3-small", prompt_tokens=1000)
    assert c.total_usd == Decimal("0.00002")


def test_ai21_and_hugging_face_provider_prices(pricing: Pricing) -> None:
    jamba = cost(pricing, "ai21:jamba-mini", prompt_tokens=144, completion_tokens=14)
    assert jamba.total_usd == Decimal("0.0000344")  # 144 * 0.2 + 14 * 0.4 = 34.4 per 1e6
    assert jamba.price_key == "ai21:jamba-mini-1.7"
    hf = cost(
        pricing,
        "hf:meta-llama/Llama-3.1-8B-Instruct:cerebras",
        prompt_tokens=1000,
        completion_tokens=1000,
    )
    assert hf.total_usd == Decimal("0.0002")  # (1000 + 1000) * 0.10
    assert hf.price_key == "huggingface:meta-llama/Llama-3.1-8B-Instruct:cerebras"


def test_unknown_prices_give_none_with_a_reason_never_zero(pricing: Pricing) -> None:
    for target in (
        "openai:gpt-9-imaginary",
        "acme:model",
        "hf:meta-llama/Llama-3.1-8B-Instruct",
        "hf:meta-llama/Llama-3.1-8B-Instruct:cheapest",
        "hf:meta-llama/Llama-3.1-8B-Instruct:hf-inference",
    ):
        c = cost(pricing, target, prompt_tokens=10, completion_tokens=10)
        assert c.total_usd is None, target
        assert c.reason, target
    hf = cost(pricing, "hf:meta-llama/Llama-3.1-8B-Instruct", prompt_tokens=1)
    assert "name the provider" in (hf.reason or "")
    assert "huggingface:meta-llama/Llama-3.1-8B-Instruct:" in (hf.reason or "")
    custom = cost(pricing, "acme:model", prompt_tokens=1)
    assert "llmos.pricing.register('acme:model'" in (custom.reason or "")


def test_missing_usage_on_a_priced_model_is_an_unknown_cost(pricing: Pricing) -> None:
    c = pricing.cost(parse_target("openai:gpt-4.1-mini"), Usage(source="missing"), NO_TIME)
    assert c.total_usd is None and "no token usage" in (c.reason or "")
    assert c.price_key == "openai:gpt-4.1-mini"


def test_local_models_cost_no_api_fee_plus_optional_compute_time(
    catalog: Catalog,
) -> None:
    free = Pricing(catalog=catalog)
    c = free.cost(Target("local", "gemma-3-270m"), Usage(prompt_tokens=50), Latency(total_s=10))
    assert c.total_usd == 0 and c.compute_usd is None and c.price_key == "local:*"
    paid = Pricing(Decimal("0.36"), catalog=catalog)
    c = paid.cost(Target("local", "/models/x.gguf"), Usage(prompt_tokens=50), Latency(total_s=10))
    # $0.36/hour for 10 s = 0.36 * 10 / 3600 = $0.001 (compute is rounded to 1e-12)
    assert c.compute_usd == Decimal("0.001") and c.total_usd == Decimal("0.001")
    assert c.input_usd == 0 and c.output_usd == 0


def test_self_hosted_server_presets_are_free_and_custom_compatible_servers_unknown(
    catalog: Catalog,
) -> None:
    class Kinds:
        def provider_class(self, name: str) -> type:
            kind = {"gpu-box": "openai-compatible", "mine": "local", "corp": "openai"}[name]
            return type("P", (), {"kind": kind})

    pricing = Pricing(catalog=catalog, registry=Kinds())  # type: ignore[arg-type]
    usage = Usage(prompt_tokens=100, completion_tokens=100)
    assert pricing.cost(Target("ollama", "llama3"), usage, NO_TIME).total_usd == 0
    assert pricing.cost(Target("llamacpp", "x"), usage, NO_TIME).total_usd == 0
    custom = pricing.cost(Target("gpu-box", "llama3"), usage, NO_TIME)
    assert custom.total_usd is None and "self_hosted=True" in (custom.reason or "")
    # A configured name of kind local is free; one of kind openai uses OpenAI's prices.
    assert pricing.cost(Target("mine", "x"), usage, NO_TIME).total_usd == 0
    corp = pricing.cost(Target("corp", "gpt-4.1-mini"), usage, NO_TIME)
    assert corp.total_usd == Decimal("0.0002") and corp.price_key == "openai:gpt-4.1-mini"
