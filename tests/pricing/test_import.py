"""Importing llmos reads no price data and imports no tokenizer; the first estimate does."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
import llmos
from llmos import Client, Provider
import llmos.pricing.catalog as catalog

client = Client(env={})
before = {
    "catalog_loaded": catalog._default is not None and catalog._default.loaded,
    "tiktoken": "tiktoken" in sys.modules,
}
client._core.registry.register("plain", Provider)
client.estimate("plain:model", "Hello", max_tokens=8)
after = {"catalog_loaded": catalog._default.loaded, "reads": catalog._default.reads}
client.estimate("plain:model", "Hello again", max_tokens=8)
after["reads_later"] = catalog._default.reads
print(json.dumps({"before": before, "after": after}))
"""


def test_import_reads_no_catalog_and_the_first_estimate_reads_it_once() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["before"] == {"catalog_loaded": False, "tiktoken": False}
    assert result["after"] == {"catalog_loaded": True, "reads": 1, "reads_later": 1}
