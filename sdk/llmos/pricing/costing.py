"""Estimates before a call and costs after it, from the catalog and the token counters.

Money is exact :class:`~decimal.Decimal` arithmetic on per-1M-token prices (``price * 10**-6``
per token), never floats and never rounded, except compute cost (a $/hour rate times measured
seconds), which is rounded half-even to 10**-12 USD.

Cost of a call, from its usage (``prompt_tokens`` includes cached and cache-write tokens and
``completion_tokens`` includes reasoning tokens)::

    (prompt - cached - cache_write) * input + cached * cached_input
        + cache_write * cache_write_price + completion * output
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Literal, Protocol

from llmos._log import get_logger
from llmos.pricing.catalog import (
    ENV_PRICES,
    Catalog,
    PriceEntry,
    Resolution,
    canonical_provider,
    default_catalog,
    per_token,
)
from llmos.pricing.tokens import CL100K, Encoder, Tokenizers, default_tokenizers
from llmos.types import ChatRequest, Cost, CostEstimate, Latency, TokenCount, Usage

if TYPE_CHECKING:
    from llmos.providers.base import Provider
    from llmos.routing import Target

__all__ = ["EXPECTED_OUTPUT_CAP", "EXPECTED_OUTPUT_SHARE", "Pricing"]

log = get_logger("pricing")

#: The expected case assumes this share of the output allowance is generated...
EXPECTED_OUTPUT_SHARE = Decimal("0.5")
#: ...and at most this many tokens (answers rarely use a large max_tokens in full).
EXPECTED_OUTPUT_CAP = 512
_COMPUTE_QUANTUM = Decimal("1e-12")
_ZERO = Decimal(0)
_REMOTE_KINDS = ("openai", "ai21", "huggingface")


class _Kinds(Protocol):
    def provider_class(self, name: str) -> type[Provider]: ...


def _as_decimal(value: float | Decimal | str | None) -> Decimal | None:
    if value is None:
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


class Pricing:
    """Prices calls for one client: ``estimate`` before sending, ``cost`` after. Thread-safe.

    ``compute_usd_per_hour`` prices the wall time of ``local`` (in-process) models. ``registry``
    tells the provider kind behind a configured name (e.g. a custom name of kind ``local``).
    ``catalog`` and ``tokenizers`` default to the process-wide ones.
    """

    def __init__(
        self,
        compute_usd_per_hour: float | Decimal | str | None = None,
        *,
        registry: _Kinds | None = None,
        catalog: Catalog | None = None,
        tokenizers: Tokenizers | None = None,
    ) -> None:
        self.compute_usd_per_hour = _as_decimal(compute_usd_per_hour)
        self._registry = registry
        self._catalog = catalog
        self._tokenizers = tokenizers
        self._openai_encodings: dict[str, tuple[str, bool]] = {}
        self._resolved: dict[tuple[str, str, str | None], tuple[object, Resolution]] = {}
        self._counters: dict[
            tuple[str, str], tuple[PriceEntry | None, tuple[Encoder, bool, str]]
        ] = {}

    @property
    def catalog(self) -> Catalog:
        """The price catalog this client reads (loaded on first use)."""
        return self._catalog or default_catalog()

    @property
    def tokenizers(self) -> Tokenizers:
        """The token counters this client uses."""
        return self._tokenizers or default_tokenizers()

    # ------------------------------------------------------------------ prices

    def _kind(self, provider: str) -> str | None:
        if self._registry is None:
            return None
        try:
            return self._registry.provider_class(provider).kind or None
        except Exception:  # unknown or unimportable provider: no kind to go by
            return None

    def resolve(self, target: Target, kind: str | None = None) -> Resolution:
        """The price entry for ``target``, or the reason it has none.

        A configured name falls back to the prices of its kind: a custom ``local`` name is
        free, a custom ``openai``-kind name uses OpenAI's prices. Custom OpenAI-compatible
        servers have no price until one is registered (they may be a paid service).
        """
        catalog = self.catalog
        # Every call prices its target: remember resolutions until the catalog changes.
        generation = catalog.generation()
        cache_key = (target.provider, target.model, kind)
        cached = self._resolved.get(cache_key)
        if cached is not None and cached[0] is generation:
            return cached[1]
        resolution = self._resolve(target, kind)
        if len(self._resolved) > 4096:
            self._resolved.clear()
        self._resolved[cache_key] = (generation, resolution)
        return resolution

    def _resolve(self, target: Target, kind: str | None) -> Resolution:
        catalog = self.catalog
        provider = canonical_provider(target.provider)
        found = catalog.lookup(provider, target.model)
        if found is not None:
            return found
        kind = kind or self._kind(provider)
        if kind is not None and kind != provider and (kind == "local" or kind in _REMOTE_KINDS):
            found = catalog.lookup(kind, target.model)
            if found is not None:
                return found
        key = f"{provider}:{target.model}"
        if kind == "openai-compatible":
            return Resolution(
                None,
                f"{provider!r} is an OpenAI-compatible server with no price in the catalog; "
                f"if you run it yourself, mark it free with llmos.pricing.register("
                f"'{provider}:*', input=0, output=0, self_hosted=True), otherwise register "
                "its prices",
            )
        return Resolution(
            None,
            f"no price known for {key} in the price catalog; register it with "
            f"llmos.pricing.register('{key}', input=..., output=...) (USD per 1M tokens) or "
            f"a {ENV_PRICES} file",
        )

    # ------------------------------------------------------------------ counting

    def _openai_encoding(self, model: str) -> tuple[str, bool]:
        found = self._openai_encodings.get(model)
        if found is None:
            from tiktoken.model import encoding_name_for_model

            try:
                found = (encoding_name_for_model(model), True)
            except KeyError:  # a model tiktoken does not know: o200k is the current family
                found = ("o200k_base", False)
            self._openai_encodings[model] = found
        return found

    def encoding_for(self, target: Target, entry: PriceEntry | None) -> tuple[str, bool, str]:
        """The tiktoken encoding to count ``target`` with, whether it is the model's own, and
        a note on the count."""
        if entry is not None and entry.encoding:
            return entry.encoding, entry.encoding_exact, "" if entry.encoding_exact else "assumed"
        provider = entry.provider if entry is not None else canonical_provider(target.provider)
        if provider == "openai":
            name, exact = self._openai_encoding(target.model)
            return name, exact, "" if exact else "assumed"
        return CL100K, False, f"approximation for {provider}"

    def count_prompt(
        self,
        target: Target,
        request: ChatRequest,
        provider: Provider | None = None,
        entry: PriceEntry | None = None,
    ) -> TokenCount:
        """Prompt tokens of ``request`` on ``target``: the provider's own tokenizer when it has
        one (local models), else tiktoken, else a cl100k approximation marked as such."""
        if provider is not None:
            from llmos.providers.base import Provider as _Base

            if type(provider).count_prompt_tokens is not _Base.count_prompt_tokens:
                try:
                    counted = provider.count_prompt_tokens(request)
                except Exception as exc:  # fall back to an approximation, and say so
                    log.warning("%s could not count tokens (%s); approximating", target, exc)
                else:
                    if counted is not None:
                        return counted
        encoder, exact, label = self._counter(target, entry)
        tokens, formula_exact = self.tokenizers.count_request(encoder, request)
        method: Literal["exact", "approximate"] = (
            "exact" if exact and formula_exact else "approximate"
        )
        return TokenCount(tokens=tokens, method=method, tokenizer=label)

    def _counter(self, target: Target, entry: PriceEntry | None) -> tuple[Encoder, bool, str]:
        """(encoder, whether its counts are exact, label) for a target, cached per target."""
        key = (target.provider, target.model)
        found = self._counters.get(key)
        if found is not None and found[0] is entry:
            return found[1]
        name, exact, note = self.encoding_for(target, entry)
        encoder = self.tokenizers.encoder(name)
        label = f"{encoder.label} ({note})" if note else encoder.label
        counter = (encoder, exact and encoder.exact, label)
        self._counters[key] = (entry, counter)
        return counter

    # ------------------------------------------------------------------ before a call

    def estimate(
        self,
        target: Target,
        request: ChatRequest,
        provider: Provider | None = None,
        *,
        prompt: TokenCount | None = None,
        batch: bool = False,
    ) -> CostEstimate:
        """What ``request`` will cost on ``target`` before it is sent.

        The worst case bills every prompt token at the highest input rate (cache writes where
        billed, no cache hits) and all of max_tokens as output; the expected case bills the
        prompt at the input rate and :data:`EXPECTED_OUTPUT_SHARE` of max_tokens (at most
        :data:`EXPECTED_OUTPUT_CAP`). ``batch`` prices with Batch API rates where known.
        """
        resolution = self.resolve(target, provider.kind if provider is not None else None)
        entry = resolution.entry
        if entry is not None:
            self.catalog.note_use(entry)
        count = prompt or self.count_prompt(target, request, provider, entry)
        worst_out, expected_out, why = self._output(request, entry, count.tokens)
        worst: Decimal | None = None
        expected: Decimal | None = None
        reason = resolution.reason
        if entry is not None and entry.self_hosted:
            worst = expected = _ZERO
        elif entry is not None:
            rates = entry.rates(count.tokens, batch=batch)
            top_input = max(rates.input, rates.cache_write)
            expected = per_token(rates.input) * count.tokens + per_token(rates.output) * (
                expected_out
            )
            if worst_out is None:
                reason = why
            else:
                worst = per_token(top_input) * count.tokens + per_token(rates.output) * worst_out
        return CostEstimate(
            target=str(target),
            prompt_tokens=count.tokens,
            prompt_tokens_source=count.tokenizer,
            prompt_tokens_exact=count.method == "exact",
            max_output_tokens=worst_out or 0,
            expected_output_tokens=expected_out,
            worst_case_usd=worst,
            expected_usd=expected,
            reason=reason,
            price_key=entry.key if entry is not None else None,
            price_source=_source(entry),
            price_as_of=entry.as_of if entry is not None else None,
        )

    def _output(
        self, request: ChatRequest, entry: PriceEntry | None, prompt_tokens: int
    ) -> tuple[int | None, int, str | None]:
        """(worst-case output tokens or None, expected output tokens, why the worst is unknown)."""
        if entry is not None and entry.mode == "embedding":
            return 0, 0, None
        limit: int | None = request.max_tokens
        if limit is None and entry is not None:
            limit = entry.max_output
            if entry.context_window is not None:
                room = max(0, entry.context_window - prompt_tokens)
                limit = room if limit is None else min(limit, room)
        if limit is None:
            return (
                None,
                EXPECTED_OUTPUT_CAP,
                f"the output limit of {entry.key if entry else 'this model'} is unknown, so "
                "the worst case is too; set max_tokens",
            )
        share = math.ceil(limit * EXPECTED_OUTPUT_SHARE)
        return limit, min(share, EXPECTED_OUTPUT_CAP), None

    # ------------------------------------------------------------------ after a call

    def cost(self, target: Target, usage: Usage, latency: Latency) -> Cost:
        """The cost of a finished call from its usage; ``total_usd`` is None when unknown."""
        resolution = self.resolve(target)
        entry = resolution.entry
        if entry is None:
            return Cost(total_usd=None, reason=resolution.reason)
        self.catalog.note_use(entry)
        source = _source(entry)
        if entry.self_hosted:
            compute = self._compute(entry, latency)
            return Cost(
                total_usd=compute if compute is not None else _ZERO,
                input_usd=_ZERO,
                cached_input_usd=_ZERO,
                cache_write_usd=_ZERO,
                output_usd=_ZERO,
                compute_usd=compute,
                price_key=entry.key,
                price_source=source,
                price_as_of=entry.as_of,
            )
        if usage.source == "missing":
            return Cost(
                total_usd=None,
                reason=f"{target} reported no token usage, so its cost is unknown",
                price_key=entry.key,
                price_source=source,
                price_as_of=entry.as_of,
            )
        rates = entry.rates(usage.prompt_tokens)
        cached, written = usage.cached_tokens, usage.cache_write_tokens
        uncached = usage.prompt_tokens - cached - written
        if uncached < 0:
            # The provider counted cache tokens outside prompt_tokens; bill all three as given.
            uncached = usage.prompt_tokens
        input_usd = per_token(rates.input) * uncached
        cached_usd = per_token(rates.cached_input) * cached
        write_usd = per_token(rates.cache_write) * written
        output_usd = per_token(rates.output) * usage.completion_tokens
        # Every field given and every value computed here: no validation needed on this hot path.
        return Cost.model_construct(
            total_usd=input_usd + cached_usd + write_usd + output_usd,
            input_usd=input_usd,
            cached_input_usd=cached_usd,
            cache_write_usd=write_usd,
            output_usd=output_usd,
            compute_usd=None,
            reason=None,
            price_key=entry.key,
            price_source=source,
            price_as_of=entry.as_of,
        )

    def _compute(self, entry: PriceEntry, latency: Latency) -> Decimal | None:
        rate = entry.compute_usd_per_hour
        if entry.provider == "local" and self.compute_usd_per_hour is not None:
            rate = self.compute_usd_per_hour
        if rate is None:
            return None
        seconds = Decimal(repr(max(0.0, latency.total_s)))
        return (rate * seconds / 3600).quantize(_COMPUTE_QUANTUM, rounding=ROUND_HALF_EVEN)


def _source(entry: PriceEntry | None) -> str | None:
    if entry is None:
        return None
    return entry.source_url or entry.source
