"""One price entry: its fields, the rates that apply to a call, and parsing from JSON data.

Prices are USD per 1M tokens held as exact Decimals; parsing errors are ConfigurationErrors that
name the file (or ``register()``), the entry and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from llmos.errors import ConfigurationError
from llmos.providers.registry import ALIASES

__all__ = [
    "FIELDS",
    "PROVIDER_ALIASES",
    "LongContext",
    "PriceEntry",
    "Rates",
    "alias_keys",
    "canonical_key",
    "canonical_provider",
    "parse_entry",
    "per_token",
    "plain_value",
]

#: Other spellings of provider names: the provider registry's, so both agree.
PROVIDER_ALIASES: dict[str, str] = ALIASES

_MILLION = 6  # prices are per 10**6 tokens
_PRICE_FIELDS = ("input", "cached_input", "cache_write", "output", "batch_input", "batch_output")
_INT_FIELDS = ("context_window", "max_output")
_TEXT_FIELDS = ("mode", "successor", "encoding", "source", "as_of", "note", "deprecation_date")
_BOOL_FIELDS = ("deprecated", "encoding_exact", "self_hosted")
_OTHER_FIELDS = ("aliases", "long_context", "compute_usd_per_hour")
FIELDS = frozenset((*_PRICE_FIELDS, *_INT_FIELDS, *_TEXT_FIELDS, *_BOOL_FIELDS, *_OTHER_FIELDS))


def canonical_provider(name: str) -> str:
    """The catalog's spelling of a provider name (``hf`` -> ``huggingface``)."""
    return PROVIDER_ALIASES.get(name, name)


def per_token(price: Decimal) -> Decimal:
    """A per-1M-token price as a per-token price, exactly."""
    return price.scaleb(-_MILLION)


@dataclass(frozen=True)
class Rates:
    """The per-1M-token prices that apply to one call (tier and batch already chosen)."""

    input: Decimal
    cached_input: Decimal
    cache_write: Decimal
    output: Decimal


@dataclass(frozen=True)
class LongContext:
    """Prices for a whole call whose prompt has more than ``above_prompt_tokens`` tokens."""

    above_prompt_tokens: int
    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None


@dataclass(frozen=True)
class PriceEntry:
    """One model's prices (USD per 1M tokens), limits, lifecycle and where the numbers came from."""

    key: str
    provider: str
    model: str
    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    batch_input: Decimal | None = None
    batch_output: Decimal | None = None
    long_context: LongContext | None = None
    mode: str = "chat"
    context_window: int | None = None
    max_output: int | None = None
    deprecation_date: date | None = None
    deprecated: bool = False
    successor: str | None = None
    encoding: str | None = None
    encoding_exact: bool = True
    aliases: tuple[str, ...] = ()
    self_hosted: bool = False
    compute_usd_per_hour: Decimal | None = None
    source: str | None = None
    source_url: str | None = None
    as_of: str | None = None
    note: str | None = None

    @property
    def bills_cache_writes(self) -> bool:
        """Whether cache writes have their own price for this model."""
        return self.cache_write is not None

    def rates(self, prompt_tokens: int = 0, *, batch: bool = False) -> Rates:
        """The prices for a call with ``prompt_tokens`` tokens, on the Batch API when ``batch``.

        A missing cached-input or cache-write price bills those tokens at the input price.
        Batch prices have no separate cache prices: cached tokens are billed at the batch input.
        """
        tier = self.long_context
        if tier is not None and prompt_tokens > tier.above_prompt_tokens:
            inp, out = tier.input, tier.output
            cached, write = tier.cached_input, tier.cache_write
        else:
            inp, out = self.input, self.output
            cached, write = self.cached_input, self.cache_write
        if batch and self.batch_input is not None and self.batch_output is not None:
            if tier is not None and prompt_tokens > tier.above_prompt_tokens:
                # The Batch API halves the long-context tier as it halves the base prices.
                inp = inp * self.batch_input / self.input if self.input else self.batch_input
                out = out * self.batch_output / self.output if self.output else self.batch_output
            else:
                inp, out = self.batch_input, self.batch_output
            cached = write = None
        return Rates(
            input=inp,
            cached_input=inp if cached is None else cached,
            cache_write=inp if write is None else write,
            output=out,
        )

    def retired(self, today: date) -> bool:
        """Whether the model is past its deprecation date (or marked deprecated without one)."""
        if self.deprecation_date is not None:
            return self.deprecation_date <= today
        return self.deprecated


def canonical_key(key: object, where: str) -> str:
    """``provider:model`` with the provider alias resolved; ConfigurationError if malformed."""
    if not isinstance(key, str) or ":" not in key:
        raise ConfigurationError(
            f"{where}: price keys are 'provider:model' strings like 'openai:gpt-5.4-mini' or "
            f"'vllm:*', got {key!r}"
        )
    provider, _, model = key.strip().partition(":")
    if not provider or not model:
        raise ConfigurationError(f"{where}: {key!r} needs both a provider and a model")
    return f"{canonical_provider(provider)}:{model}"


def alias_keys(key: str, aliases: Any, where: str) -> list[str]:
    """The full ``provider:model`` names of an entry's aliases."""
    if aliases is None:
        return []
    if isinstance(aliases, str) or not isinstance(aliases, list | tuple):
        raise ConfigurationError(f"{where}: models[{key!r}].aliases must be a list of names")
    provider = key.partition(":")[0]
    out = []
    for alias in aliases:
        if not isinstance(alias, str) or not alias:
            raise ConfigurationError(f"{where}: models[{key!r}].aliases holds {alias!r}")
        out.append(canonical_key(alias, where) if ":" in alias else f"{provider}:{alias}")
    return out


def plain_value(value: Any) -> Any:
    """A Python value as the JSON-like data the parser takes (floats via their shortest repr)."""
    if isinstance(value, float):
        return str(value)  # repr of a float is its shortest round-trip decimal
    if isinstance(value, Decimal | date):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, LongContext):
        return {k: plain_value(v) for k, v in vars(value).items() if v is not None}
    return value


def _price(value: Any, where: str, name: str, *, required: bool = False) -> Decimal | None:
    if value is None:
        if required:
            raise ConfigurationError(f"{where}.{name} is required (USD per 1M tokens)")
        return None
    if isinstance(value, bool):
        raise ConfigurationError(f"{where}.{name} must be a number of USD per 1M tokens")
    try:
        price = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ConfigurationError(
            f"{where}.{name} must be a number of USD per 1M tokens, got {value!r}"
        ) from None
    if not price.is_finite() or price < 0:
        raise ConfigurationError(f"{where}.{name} must be zero or more, got {value!r}")
    return price


def _int(value: Any, where: str, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal) or int(value) != value:
        raise ConfigurationError(f"{where}.{name} must be a whole number of tokens, got {value!r}")
    if value <= 0:
        raise ConfigurationError(f"{where}.{name} must be positive, got {value!r}")
    return int(value)


def _text(value: Any, where: str, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"{where}.{name} must be a string, got {value!r}")
    return value


def _flag(value: Any, where: str, name: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ConfigurationError(f"{where}.{name} must be true or false, got {value!r}")
    return value


def _date(value: Any, where: str) -> date | None:
    text = _text(value, where, "deprecation_date")
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(
            f"{where}.deprecation_date must be a date like 2027-01-14, got {text!r}"
        ) from None


def _tier(value: Any, where: str) -> LongContext | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{where}.long_context must be an object")
    where = f"{where}.long_context"
    allowed = {"above_prompt_tokens", "input", "output", "cached_input", "cache_write"}
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ConfigurationError(f"{where}.{unknown[0]}: unknown field")
    above = _int(value.get("above_prompt_tokens"), where, "above_prompt_tokens")
    if above is None:
        raise ConfigurationError(f"{where}.above_prompt_tokens is required")
    inp = _price(value.get("input"), where, "input", required=True)
    out = _price(value.get("output"), where, "output", required=True)
    assert inp is not None and out is not None
    return LongContext(
        above_prompt_tokens=above,
        input=inp,
        output=out,
        cached_input=_price(value.get("cached_input"), where, "cached_input"),
        cache_write=_price(value.get("cache_write"), where, "cache_write"),
    )


def _source(value: str | None, sources: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(url, as_of) for a source name, URL or free text."""
    if value is None:
        return None, None
    known = sources.get(value)
    if isinstance(known, Mapping):
        return known.get("url"), known.get("as_of")
    if value.startswith(("http://", "https://", "file://")):
        return value, None
    return None, None


def parse_entry(
    key: str, raw: Mapping[str, Any], sources: Mapping[str, Any], where: str
) -> PriceEntry:
    """A validated PriceEntry from merged JSON fields; ``sources`` resolves source names."""
    provider, _, model = key.partition(":")
    at = f"{where}: models[{key!r}]"
    inp = _price(raw.get("input"), at, "input", required=True)
    out = _price(raw.get("output"), at, "output", required=True)
    assert inp is not None and out is not None
    source = _text(raw.get("source"), at, "source")
    url, source_as_of = _source(source, sources)
    aliases = tuple(a.partition(":")[2] for a in alias_keys(key, raw.get("aliases"), at))
    return PriceEntry(
        key=key,
        provider=provider,
        model=model,
        input=inp,
        output=out,
        cached_input=_price(raw.get("cached_input"), at, "cached_input"),
        cache_write=_price(raw.get("cache_write"), at, "cache_write"),
        batch_input=_price(raw.get("batch_input"), at, "batch_input"),
        batch_output=_price(raw.get("batch_output"), at, "batch_output"),
        long_context=_tier(raw.get("long_context"), at),
        mode=_text(raw.get("mode"), at, "mode") or "chat",
        context_window=_int(raw.get("context_window"), at, "context_window"),
        max_output=_int(raw.get("max_output"), at, "max_output"),
        deprecation_date=_date(raw.get("deprecation_date"), at),
        deprecated=_flag(raw.get("deprecated"), at, "deprecated", False),
        successor=_text(raw.get("successor"), at, "successor"),
        encoding=_text(raw.get("encoding"), at, "encoding"),
        encoding_exact=_flag(raw.get("encoding_exact"), at, "encoding_exact", True),
        aliases=aliases,
        self_hosted=_flag(raw.get("self_hosted"), at, "self_hosted", False),
        compute_usd_per_hour=_price(raw.get("compute_usd_per_hour"), at, "compute_usd_per_hour"),
        source=source,
        source_url=url,
        as_of=_text(raw.get("as_of"), at, "as_of") or source_as_of,
        note=_text(raw.get("note"), at, "note"),
    )
