"""The price catalog: the shipped data file, user overrides, aliases and deprecation notices.

Prices live in ``prices.json`` next to this module (US dollars per 1M tokens, as strings so they
load as exact Decimals). Three layers are merged, later ones winning field by field:

1. the shipped file;
2. a user file named by the ``LLMOS_PRICES`` environment variable (same format);
3. entries registered from Python with :func:`llmos.pricing.register`.

Nothing is read until the first lookup; what is loaded is kept for the life of the catalog.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from importlib import resources
from typing import Any

from llmos._log import get_logger
from llmos.errors import ConfigurationError
from llmos.pricing.entry import (
    FIELDS,
    PROVIDER_ALIASES,
    LongContext,
    PriceEntry,
    Rates,
    alias_keys,
    canonical_key,
    canonical_provider,
    parse_entry,
    per_token,
    plain_value,
)

__all__ = [
    "ENV_PRICES",
    "PROVIDER_ALIASES",
    "Catalog",
    "LongContext",
    "ModelDeprecationWarning",
    "PriceEntry",
    "Rates",
    "Resolution",
    "canonical_provider",
    "default_catalog",
    "per_token",
]

log = get_logger("pricing")

#: Environment variable naming a JSON file of price overrides.
ENV_PRICES = "LLMOS_PRICES"
#: Hugging Face router suffixes that choose a provider at call time instead of naming one.
HF_POLICIES = frozenset({"fastest", "cheapest", "preferred", "auto"})


class ModelDeprecationWarning(UserWarning):
    """A priced model is past its deprecation date (shown once per model and catalog)."""


@dataclass(frozen=True)
class Resolution:
    """The outcome of a lookup: the entry used, or why there is none."""

    entry: PriceEntry | None
    reason: str | None = None
    alias: str | None = None


@dataclass
class _Index:
    entries: dict[str, PriceEntry] = field(default_factory=dict)
    names: dict[str, PriceEntry] = field(default_factory=dict)  # lower-cased keys and aliases
    env_path: str | None = None


class Catalog:
    """Model prices with lazy loading, overrides and alias resolution. Thread-safe.

    ``today`` fixes the date deprecations are judged against (tests); ``env`` replaces
    ``os.environ`` for finding ``LLMOS_PRICES``.
    """

    def __init__(
        self,
        *,
        today: date | None = None,
        env: Mapping[str, str] | None = None,
        shipped: Mapping[str, Any] | None = None,
    ) -> None:
        self._today = today
        self._env = env
        self._shipped_doc = shipped
        self._lock = threading.RLock()
        self._index: _Index | None = None
        self._registered: dict[str, dict[str, Any]] = {}
        self._warned: set[str] = set()
        #: How many times a price file was read (the shipped one and the user's), for tests.
        self.reads = 0

    # ------------------------------------------------------------------ state

    @property
    def loaded(self) -> bool:
        """Whether the data file has been read."""
        return self._index is not None

    @property
    def today(self) -> date:
        """The date deprecations are judged against."""
        return self._today or date.today()

    def _env_path(self) -> str | None:
        env = os.environ if self._env is None else self._env
        return env.get(ENV_PRICES) or None

    def generation(self) -> object:
        """An object that changes whenever the catalog's contents do (for caching lookups)."""
        return self._current()

    def _current(self) -> _Index:
        index = self._index
        if index is not None and index.env_path == self._env_path():
            return index
        with self._lock:
            index = self._index
            if index is None or index.env_path != self._env_path():
                index = self._build()
                self._index = index
            return index

    # ------------------------------------------------------------------ loading

    def _read_shipped(self) -> dict[str, Any]:
        if self._shipped_doc is not None:
            return dict(self._shipped_doc)
        self.reads += 1
        text = resources.files("llmos.pricing").joinpath("prices.json").read_text("utf-8")
        doc: dict[str, Any] = json.loads(text)
        self._shipped_doc = doc  # parsed once; overrides are merged over it on every rebuild
        return dict(doc)

    def _read_user(self, path: str) -> dict[str, Any]:
        self.reads += 1
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f, parse_float=Decimal)
        except FileNotFoundError:
            raise ConfigurationError(
                f"{ENV_PRICES}={path!r}: no such file; point it at a JSON price file or unset it"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"{ENV_PRICES}={path!r}: cannot read it: {exc}") from None
        except json.JSONDecodeError as exc:
            raise ConfigurationError(
                f"{ENV_PRICES}={path!r}: invalid JSON at line {exc.lineno}, column {exc.colno}: "
                f"{exc.msg}"
            ) from None
        if not isinstance(doc, dict):
            raise ConfigurationError(
                f'{ENV_PRICES}={path!r}: expected a JSON object like {{"models": {{...}}}}'
            )
        if "models" not in doc:  # a bare mapping of "provider:model" -> fields is accepted too
            doc = {"models": doc}
        return doc

    def _build(self) -> _Index:
        shipped = self._read_shipped()
        sources: dict[str, Any] = dict(shipped.get("sources") or {})
        layers: list[tuple[str, dict[str, Any], str | None]] = [
            ("the shipped price catalog", dict(shipped.get("models") or {}), None)
        ]
        env_path = self._env_path()
        if env_path:
            user = self._read_user(env_path)
            user_sources = user.get("sources") or {}
            if not isinstance(user_sources, dict):
                raise ConfigurationError(f"{ENV_PRICES}={env_path!r}: 'sources' must be an object")
            sources.update(user_sources)
            models = user.get("models")
            if not isinstance(models, dict):
                raise ConfigurationError(f"{ENV_PRICES}={env_path!r}: 'models' must be an object")
            url = "file://" + os.path.abspath(env_path)
            layers.append((f"{ENV_PRICES}={env_path!r}", models, url))
        with self._lock:
            layers.append(("llmos.pricing.register()", dict(self._registered), "register()"))

        raw: dict[str, dict[str, Any]] = {}
        origins: dict[str, str] = {}  # key in raw -> the layer that last changed it
        lower: dict[str, str] = {}  # lower-cased key or alias -> key in raw
        for where, models, origin in layers:
            for key, fields_ in models.items():
                canonical = canonical_key(key, where)
                if not isinstance(fields_, Mapping):
                    raise ConfigurationError(f"{where}: models[{key!r}] must be an object")
                unknown = sorted(set(fields_) - FIELDS)
                if unknown:
                    raise ConfigurationError(
                        f"{where}: models[{key!r}].{unknown[0]}: unknown field; "
                        f"known fields: {', '.join(sorted(FIELDS))}"
                    )
                target = lower.get(canonical.lower(), canonical)
                merged = dict(raw.get(target, {}))
                merged.update(fields_)
                if origin is not None and "source" not in fields_:
                    merged["source"] = origin
                    merged["as_of"] = fields_.get("as_of") or self.today.isoformat()
                raw[target] = merged
                origins[target] = where
                lower[target.lower()] = target
                for alias in alias_keys(target, merged.get("aliases"), where):
                    lower.setdefault(alias.lower(), target)

        index = _Index(env_path=env_path)
        for key, fields_ in raw.items():
            entry = parse_entry(key, fields_, sources, where=origins[key])
            index.entries[key] = entry
        for name, key in lower.items():
            index.names[name] = index.entries[key]
        log.debug("price catalog loaded: %d entries", len(index.entries))
        return index

    # ------------------------------------------------------------------ lookups

    def entries(self) -> list[PriceEntry]:
        """Every entry, in file order."""
        return list(self._current().entries.values())

    def get(self, key: str) -> PriceEntry | None:
        """The entry for ``provider:model`` (aliases and case ignored), or None."""
        provider, _, model = key.partition(":")
        return self._current().names.get(f"{canonical_provider(provider)}:{model}".lower())

    def lookup(self, provider: str, model: str) -> Resolution | None:
        """The entry for ``provider:model`` or a reason there is none; None when not known at all.

        Tries the exact name, then an alias, then Hugging Face's provider rules, then the
        provider's wildcard entry (``local:*``).
        """
        provider = canonical_provider(provider)
        names = self._current().names
        wanted = f"{provider}:{model}".lower()
        entry = names.get(wanted)
        if entry is not None:
            alias = None if entry.key.lower() == wanted else f"{provider}:{model}"
            return Resolution(entry, alias=alias)
        if provider == "huggingface":
            return self._huggingface(model, names)
        entry = names.get(f"{provider}:*")
        if entry is not None:
            return Resolution(entry)
        return None

    def _huggingface(self, model: str, names: Mapping[str, PriceEntry]) -> Resolution:
        base, sep, sub = model.rpartition(":")
        if not sep:
            base, sub = model, ""
        prefix = f"huggingface:{base}:".lower()
        offers = sorted(
            (e.input + e.output, e.model.rpartition(":")[2])
            for k, e in names.items()
            if k.startswith(prefix) and k == e.key.lower()
        )
        priced = [name for _, name in offers]
        example = f"huggingface:{base}:{priced[0] if priced else 'PROVIDER'}"
        known = f" (priced providers, cheapest first: {', '.join(priced)})" if priced else ""
        if sub == "hf-inference":
            return Resolution(
                None,
                "Hugging Face bills hf-inference by compute time, not tokens, so the cost of "
                f"huggingface:{model} is not known per token; name another provider, "
                f"e.g. {example}{known}",
            )
        if not sub or sub.lower() in HF_POLICIES:
            how = f" by its '{sub}' policy" if sub else ""
            return Resolution(
                None,
                f"Hugging Face chooses the provider for {base}{how} at call time, so its price "
                f"is not known in advance; name the provider with a suffix, e.g. {example}"
                f"{known}",
            )
        return Resolution(
            None,
            f"no price known for {base} on Hugging Face provider {sub!r}{known}; register one "
            f"with llmos.pricing.register('huggingface:{base}:{sub}', input=..., output=...) "
            f"or {ENV_PRICES}",
        )

    def note_use(self, entry: PriceEntry) -> None:
        """Warn once per model when a call or estimate uses a model past its deprecation date."""
        if entry.key in self._warned or not entry.retired(self.today):
            return
        with self._lock:
            if entry.key in self._warned:
                return
            self._warned.add(entry.key)
        when = f" on {entry.deprecation_date.isoformat()}" if entry.deprecation_date else ""
        successor = f"; its successor is {entry.successor}" if entry.successor else ""
        message = (
            f"{entry.key} was deprecated{when} according to the price catalog"
            f"{successor}. Calls to it may fail; choose a current model."
        )
        log.warning(message)
        warnings.warn(message, ModelDeprecationWarning, stacklevel=3)

    # ------------------------------------------------------------------ overrides

    def register(self, key: str, **fields: Any) -> PriceEntry:
        """Add or change an entry from Python; fields not given keep their current values."""
        canonical = canonical_key(key, "llmos.pricing.register()")
        unknown = sorted(set(fields) - FIELDS)
        if unknown:
            raise ConfigurationError(
                f"llmos.pricing.register({key!r}): unknown field {unknown[0]!r}; "
                f"known fields: {', '.join(sorted(FIELDS))}"
            )
        values = {k: plain_value(v) for k, v in fields.items() if v is not None}
        with self._lock:
            previous = self._registered.get(canonical)
            self._registered[canonical] = {**(previous or {}), **values}
            try:
                self._index = self._build()
            except ConfigurationError:
                if previous is None:
                    del self._registered[canonical]
                else:
                    self._registered[canonical] = previous
                raise
            found = self.get(canonical)
        assert found is not None
        return found

    def unregister(self, key: str) -> None:
        """Drop an entry registered from Python (shipped and file entries stay)."""
        canonical = canonical_key(key, "llmos.pricing.unregister()")
        with self._lock:
            if self._registered.pop(canonical, None) is not None and self._index is not None:
                self._index = self._build()


_default: Catalog | None = None
_default_lock = threading.Lock()


def default_catalog() -> Catalog:
    """The process-wide catalog that clients and :func:`llmos.pricing.register` share."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Catalog()
    return _default
