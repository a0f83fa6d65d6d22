"""The price catalog: shipped data, aliases, overrides and deprecation notices."""

from __future__ import annotations

import json
import warnings
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

import llmos.pricing
from llmos.cli.cost import DEFAULT_MODELS
from llmos.errors import ConfigurationError
from llmos.messages import build_request
from llmos.pricing import Catalog, ModelDeprecationWarning, Pricing
from llmos.routing import parse_target

from .conftest import TODAY


def test_every_shipped_entry_names_its_source_and_date(catalog: Catalog) -> None:
    entries = catalog.entries()
    assert len(entries) > 50
    for entry in entries:
        assert entry.as_of, entry.key
        assert entry.source, entry.key
        if not entry.self_hosted:
            assert (entry.source_url or "").startswith("https://"), entry.key
            assert entry.input >= 0 and entry.output >= 0


def test_catalog_covers_openai_ai21_hugging_face_embeddings_and_local(catalog: Catalog) -> None:
    for key in (
        "openai:gpt-4o",
        "openai:gpt-4.1-mini",
        "openai:o3",
        "openai:gpt-5",
        "openai:gpt-5.4-mini",
        "openai:gpt-5.6-sol",
        "openai:gpt-6-luna",
        "openai:text-embedding-3-small",
        "openai:text-embedding-3-large",
        "openai:text-embedding-ada-002",
        "ai21:jamba-large",
        "ai21:jamba-mini",
        "huggingface:meta-llama/Llama-3.3-70B-Instruct:sambanova",
        "local:anything",
    ):
        provider, _, model = key.partition(":")
        found = catalog.lookup(provider, model)
        assert found is not None and found.entry is not None, key
    entry = catalog.get("openai:gpt-4o")
    assert entry is not None
    assert (entry.input, entry.cached_input, entry.output) == (
        Decimal("2.5"),
        Decimal("1.25"),
        Decimal("10"),
    )
    assert (entry.batch_input, entry.batch_output) == (Decimal("1.25"), Decimal("5"))
    assert (entry.context_window, entry.max_output) == (128000, 16384)
    assert entry.deprecation_date == date(2027, 1, 14)


def test_the_gpt_5_6_price_conflict_is_recorded_on_its_entries(catalog: Catalog) -> None:
    for key in ("openai:gpt-5.6-sol", "openai:gpt-5.6-terra", "openai:gpt-5.6-luna"):
        entry = catalog.get(key)
        assert entry is not None and "preview" in (entry.note or ""), key
        assert entry.as_of == "2026-12-01"


def test_default_and_example_models_are_not_scheduled_for_retirement(catalog: Catalog) -> None:
    example = Path(__file__).parents[2] / "examples" / "cost_estimator.py"
    named = [m for m in DEFAULT_MODELS]
    for target in named:
        found = catalog.lookup(*target.split(":", 1))
        assert found is not None and found.entry is not None, target
        assert found.entry.deprecation_date is None and not found.entry.deprecated, target
    assert "gpt-5.4-mini" in example.read_text()


def test_dated_snapshots_and_short_names_resolve_to_their_entry(catalog: Catalog) -> None:
    for alias, key in (
        ("gpt-4o-2024-08-06", "openai:gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "openai:gpt-4o-mini"),
        ("gpt-4.1-mini-2025-04-14", "openai:gpt-4.1-mini"),
        ("gpt-5-2025-08-07", "openai:gpt-5"),
        ("gpt-5.6", "openai:gpt-5.6-sol"),
    ):
        found = catalog.lookup("openai", alias)
        assert found is not None and found.entry is not None and found.entry.key == key
        assert found.alias == f"openai:{alias}"
    jamba = catalog.lookup("ai21", "jamba-mini")
    assert jamba is not None and jamba.entry is not None
    assert jamba.entry.key == "ai21:jamba-mini-1.7"


def test_provider_aliases_and_hugging_face_names_resolve(catalog: Catalog) -> None:
    found = catalog.lookup("hf", "META-LLAMA/llama-3.1-8b-instruct:Nebius")
    assert found is not None and found.entry is not None
    assert found.entry.key == "huggingface:meta-llama/Llama-3.1-8B-Instruct:nebius"
    assert catalog.get("hf:meta-llama/Llama-3.1-8B-Instruct:nebius") is found.entry
    unnamed = catalog.lookup("huggingface", "meta-llama/Llama-3.1-8B-Instruct")
    assert unnamed is not None and unnamed.entry is None
    # The reason names a priced provider to use, cheapest first.
    assert "huggingface:meta-llama/Llama-3.1-8B-Instruct:nscale" in (unnamed.reason or "")


def test_an_unknown_model_is_not_found(catalog: Catalog) -> None:
    assert catalog.lookup("openai", "gpt-9-imaginary") is None
    assert catalog.lookup("acme", "model") is None


def test_register_adds_and_partially_overrides_entries(catalog: Catalog) -> None:
    added = catalog.register("acme:fast", input=0.1, output="0.3", context_window=8192)
    assert added.input == Decimal("0.1") and added.output == Decimal("0.3")
    assert added.source == "register()" and added.as_of == TODAY.isoformat()
    changed = catalog.register("openai:gpt-5.6", input="5", output="30", as_of="2026-06-01")
    assert changed.key == "openai:gpt-5.6-sol"  # the alias edits its entry
    assert (changed.input, changed.output) == (Decimal("5"), Decimal("30"))
    assert changed.cached_input == Decimal("0.4")  # fields not given keep their values
    assert changed.as_of == "2026-06-01"
    catalog.unregister("openai:gpt-5.6")
    restored = catalog.get("openai:gpt-5.6-sol")
    assert restored is not None and restored.input == Decimal("4")


def test_register_refuses_bad_fields_and_keeps_the_catalog_usable(catalog: Catalog) -> None:
    with pytest.raises(ConfigurationError, match="unknown field 'inpt'"):
        catalog.register("acme:x", inpt=1, output=1)
    with pytest.raises(ConfigurationError, match="input must be zero or more"):
        catalog.register("acme:x", input=-1, output=1)
    with pytest.raises(ConfigurationError, match="'provider:model'"):
        catalog.register("gpt-4o", input=1, output=1)
    with pytest.raises(ConfigurationError, match=r"models\['acme:y'\]\.input is required"):
        catalog.register("acme:y", output=1)
    assert catalog.get("acme:y") is None and catalog.get("openai:gpt-4o") is not None


def test_module_level_register_prices_calls_for_every_pricing() -> None:
    try:
        llmos.pricing.register("testonly-provider:*", input=0, output=0, self_hosted=True)
        entry = llmos.pricing.price("testonly-provider:any-model")
        assert entry is not None and entry.self_hosted
        estimate = Pricing().estimate(
            parse_target("testonly-provider:any-model"), build_request("m", "hi", max_tokens=5)
        )
        assert estimate.worst_case_usd == 0
    finally:
        llmos.pricing.unregister("testonly-provider:*")
    assert llmos.pricing.price("testonly-provider:any-model") is None


def test_a_user_price_file_overrides_the_shipped_catalog(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "models": {
                    "openai:gpt-5.4-mini": {"input": "0.5", "as_of": "2026-11-30"},
                    "acme:chat": {"input": 1.25, "output": 2, "aliases": ["chat-latest"]},
                }
            }
        )
    )
    catalog = Catalog(today=TODAY, env={"LLMOS_PRICES": str(path)})
    mini = catalog.get("openai:gpt-5.4-mini")
    assert mini is not None
    assert mini.input == Decimal("0.5") and mini.output == Decimal("4.5")
    assert mini.source_url == f"file://{path}" and mini.as_of == "2026-11-30"
    acme = catalog.get("acme:chat-latest")
    assert acme is not None and acme.key == "acme:chat" and acme.input == Decimal("1.25")
    # register() wins over the file
    assert catalog.register("acme:chat", input=3).input == Decimal("3")


def test_the_user_price_file_is_found_through_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"acme:env": {"input": "7", "output": "8"}}')
    catalog = Catalog(today=TODAY)
    assert catalog.get("acme:env") is None
    monkeypatch.setenv("LLMOS_PRICES", str(path))
    entry = catalog.get("acme:env")
    assert entry is not None and entry.output == Decimal("8")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"models": {"acme:x": {"input": "1", ', "invalid JSON at line 1"),
        ('{"models": {"acme:x": {"input": "1", "outptu": "2"}}}', "outptu: unknown field"),
        ('{"models": {"acme:x": {"input": "cheap", "output": "2"}}}', "input must be a number"),
        (
            '{"models": {"acme:x": {"input": "1", "output": "1", "deprecation_date": "soon"}}}',
            "deprecation_date must be a date",
        ),
        ('["acme:x"]', "expected a JSON object"),
    ],
)
def test_a_bad_user_price_file_is_a_clear_configuration_error(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    catalog = Catalog(today=TODAY, env={"LLMOS_PRICES": str(path)})
    with pytest.raises(ConfigurationError, match="LLMOS_PRICES") as info:
        catalog.get("openai:gpt-4o")
    assert message in str(info.value)


def test_a_missing_user_price_file_says_so(tmp_path: Path) -> None:
    catalog = Catalog(today=TODAY, env={"LLMOS_PRICES": str(tmp_path / "nope.json")})
    with pytest.raises(ConfigurationError, match="no such file"):
        catalog.entries()


def test_a_model_past_its_deprecation_date_warns_once(pricing: Pricing) -> None:
    request = build_request("m", "hi", max_tokens=5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            pricing.estimate(parse_target("openai:gpt-4.1-nano"), request)
        pricing.estimate(parse_target("openai:gpt-4.1-nano-2025-04-14"), request)
        pricing.estimate(parse_target("openai:o3"), request)  # retires 2026-12-11: not yet
        pricing.estimate(parse_target("openai:gpt-5.4-mini"), request)
    found = [w for w in caught if issubclass(w.category, ModelDeprecationWarning)]
    assert len(found) == 1
    assert "openai:gpt-4.1-nano" in str(found[0].message)
    assert "2026-10-23" in str(found[0].message)


def test_deprecation_is_judged_against_the_catalog_date() -> None:
    later = Pricing(catalog=Catalog(today=date(2026, 12, 11), env={}))
    request = build_request("m", "hi", max_tokens=5)
    with pytest.warns(ModelDeprecationWarning, match=r"openai:o3 .*successor is openai:gpt-5\.6"):
        later.estimate(parse_target("openai:o3"), request)
    with pytest.warns(ModelDeprecationWarning, match="jamba-mini-1.6"):
        later.estimate(parse_target("ai21:jamba-mini-1.6"), request)


def test_loading_is_lazy_and_happens_once(tmp_path: Path) -> None:
    catalog = Catalog(today=TODAY, env={})
    assert not catalog.loaded and catalog.reads == 0
    catalog.get("openai:gpt-4o")
    catalog.lookup("openai", "gpt-4.1")
    catalog.entries()
    assert catalog.loaded and catalog.reads == 1
    catalog.register("acme:x", input=1, output=1)  # rebuilds from the parsed data
    assert catalog.reads == 1
