"""Importing llmos stays light: no provider SDK, model runtime, HTTP stack or price data."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("openai", "llama_cpp", "httpx", "httpx2", "tiktoken", "sacrebleu", "rouge_score", "rich")


def _loaded_after(statement: str) -> dict[str, object]:
    code = (
        f"{statement}\n"
        "import json, sys\n"
        f"heavy = {list(HEAVY)!r}\n"
        "catalog = sys.modules.get('llmos.pricing.catalog')\n"
        "print(json.dumps({'modules': [m for m in heavy if m in sys.modules],\n"
        "                  'catalog_module': catalog is not None}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_import_llmos_loads_nothing_heavy() -> None:
    assert _loaded_after("import llmos")["modules"] == []


def test_client_class_loads_no_provider_sdk_or_http_stack() -> None:
    loaded = _loaded_after("from llmos import Client, AsyncClient, RetryPolicy\nClient()")
    assert loaded["modules"] == []


def test_public_names_resolve_lazily() -> None:
    import llmos

    for name in llmos.__all__:
        assert getattr(llmos, name) is not None
    assert "Client" in dir(llmos)
