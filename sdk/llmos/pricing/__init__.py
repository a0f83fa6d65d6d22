"""Prices, token counts, estimates before a call, costs after it, and budgets.

    import llmos.pricing
    llmos.pricing.register("vllm-box:*", input=0, output=0, self_hosted=True)
    llmos.pricing.count_tokens("Hello there", "openai:gpt-5.4-mini")
    llmos.pricing.price("openai:gpt-5.4-mini").output        # Decimal('4.5') per 1M tokens

Importing this package reads no data and imports no tokenizer: the catalog loads on the first
estimate, cost or lookup, and tiktoken on the first count.

Modules: ``catalog`` (the data file, overrides, aliases), ``tokens`` (tiktoken, offline-safe),
``costing`` (Pricing: estimates and costs), ``budget`` (Budget, SpendLedger).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from llmos.pricing.budget import Budget, Reservation, SpendLedger
from llmos.pricing.catalog import (
    ENV_PRICES,
    Catalog,
    LongContext,
    ModelDeprecationWarning,
    PriceEntry,
    Rates,
    Resolution,
    default_catalog,
)
from llmos.pricing.costing import Pricing
from llmos.types import TokenCount

__all__ = [
    "ENV_PRICES",
    "Budget",
    "Catalog",
    "LongContext",
    "ModelDeprecationWarning",
    "PriceEntry",
    "Pricing",
    "Rates",
    "Reservation",
    "Resolution",
    "SpendLedger",
    "count_message_tokens",
    "count_tokens",
    "entries",
    "price",
    "register",
    "token_counter",
    "unregister",
]

_pricing: Pricing | None = None
_text_counters: dict[str, tuple[Any, Literal["exact", "approximate"], str]] = {}


def _default_pricing() -> Pricing:
    global _pricing
    if _pricing is None:
        _pricing = Pricing()
    return _pricing


def register(key: str, **fields: Any) -> PriceEntry:
    """Add or override a price for every client in this process.

    ``key`` is ``provider:model`` (or ``provider:*`` for every model of a provider); prices
    are USD per 1M tokens: ``input``, ``output``, ``cached_input``, ``cache_write``,
    ``batch_input``, ``batch_output``. Other fields: ``context_window``, ``max_output``,
    ``deprecation_date``, ``aliases``, ``self_hosted``, ``compute_usd_per_hour``, ``source``,
    ``as_of``, ``note``. Fields not given keep the shipped values. Registrations win over the
    LLMOS_PRICES file, which wins over the shipped catalog.
    """
    _text_counters.clear()
    return default_catalog().register(key, **fields)


def unregister(key: str) -> None:
    """Remove a price registered with :func:`register`."""
    _text_counters.clear()
    default_catalog().unregister(key)


def price(model: str) -> PriceEntry | None:
    """The catalog entry for ``provider:model`` (aliases resolve), or None when unpriced."""
    from llmos.routing import parse_target

    target = parse_target(model)
    return _default_pricing().resolve(target).entry


def entries() -> list[PriceEntry]:
    """Every entry of the process-wide catalog."""
    return default_catalog().entries()


def count_tokens(text: str, model: str = "openai:gpt-5.4-mini") -> TokenCount:
    """Tokens in a plain ``text`` for ``model`` (no chat overhead); says if it is exact."""
    encode, method, label = _text_counters.get(model) or _text_counter(model)
    return TokenCount(tokens=len(encode(text)), method=method, tokenizer=label)


def token_counter(model: str = "openai:gpt-5.4-mini") -> Callable[[str], int]:
    """A plain ``text -> tokens`` function for ``model``, for hot loops (see count_tokens for
    whether its counts are exact)."""
    encode = (_text_counters.get(model) or _text_counter(model))[0]

    def count(text: str) -> int:
        return len(encode(text))

    return count


def _text_counter(model: str) -> tuple[Any, Literal["exact", "approximate"], str]:
    found = _text_counters.get(model)
    if found is None:
        from llmos.routing import parse_target

        pricing = _default_pricing()
        target = parse_target(model)
        name, exact, note = pricing.encoding_for(target, pricing.resolve(target).entry)
        encoder = pricing.tokenizers.encoder(name)
        label = encoder.label + (f" ({note})" if note else "")
        method: Literal["exact", "approximate"] = (
            "exact" if exact and encoder.exact else "approximate"
        )
        found = (encoder.encoding.encode_ordinary, method, label)
        _text_counters[model] = found
    return found


def count_message_tokens(messages: Any, model: str = "openai:gpt-5.4-mini") -> TokenCount:
    """Prompt tokens of chat ``messages`` for ``model``, with OpenAI's per-message overhead."""
    from llmos.messages import build_request
    from llmos.routing import parse_target

    target = parse_target(model)
    request = build_request(target.model, messages)
    pricing = _default_pricing()
    return pricing.count_prompt(target, request, None, pricing.resolve(target).entry)
