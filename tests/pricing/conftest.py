"""Shared fixtures: a fresh catalog pinned to the reference date, and offline tokenizers."""

from __future__ import annotations

from datetime import date

import pytest

from llmos.pricing import Catalog, Pricing
from llmos.pricing.tokens import Tokenizers

#: The date the shipped catalog and the reference were compiled.
TODAY = date(2026, 12, 1)


def _unreachable(name: str) -> object:
    raise ConnectionError(f"no network in tests (wanted {name})")


@pytest.fixture
def catalog() -> Catalog:
    return Catalog(today=TODAY, env={})


@pytest.fixture
def offline() -> Tokenizers:
    """Tokenizers on a machine with no network and an empty tiktoken cache."""
    return Tokenizers(loader=_unreachable, is_cached=lambda name: False)  # type: ignore[arg-type]


@pytest.fixture
def pricing(catalog: Catalog, offline: Tokenizers) -> Pricing:
    return Pricing(catalog=catalog, tokenizers=offline)
