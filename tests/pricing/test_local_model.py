"""The estimate for the embedded local model equals the prompt_tokens generation reports.

Runs the real Gemma 3 270M model through the local provider; skipped until that provider and
llama-cpp-python are importable.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python (the local extra) is not installed")
try:
    import llmos.providers.local  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the local provider landing
    pytest.skip(f"llmos.providers.local is not importable yet: {exc}", allow_module_level=True)

from llmos import Client

MODEL = "local:gemma-3-270m"
MESSAGES = [
    {"role": "system", "content": "Answer in one word."},
    {"role": "user", "content": "What colour is the sky on a clear day?"},
]


@pytest.mark.slow
def test_local_estimate_equals_reported_prompt_tokens_and_compute_is_priced() -> None:
    with Client(env={}, budget_usd="0.01", compute_usd_per_hour=0.36) as client:
        estimate = client.estimate(MODEL, MESSAGES, max_tokens=4)
        response = client.chat(MODEL, MESSAGES, max_tokens=4)
        spent = client.spend()
    assert estimate.prompt_tokens_exact
    assert estimate.prompt_tokens == response.usage.prompt_tokens
    assert estimate.worst_case_usd == 0  # no API fee; compute is measured afterwards
    cost = response.cost
    assert cost is not None and cost.input_usd == 0 and cost.output_usd == 0
    # compute = $0.36/h x wall time, rounded to 1e-12 USD
    expected = (Decimal("0.36") * Decimal(repr(response.latency.total_s)) / 3600).quantize(
        Decimal("1e-12")
    )
    assert cost.compute_usd == expected == cost.total_usd
    assert spent["total_usd"] == cost.total_usd
