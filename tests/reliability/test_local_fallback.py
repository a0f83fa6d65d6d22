"""Fallback chains that end in the real embedded model: an app keeps answering with no network.

One client for the module holds the loaded Gemma 3 270M next to three remote targets: one
whose port is closed, one with no key at all, and one behind the fault server.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.servers.base import LoopbackServer
from tests.servers.faults import FaultApp

from llmos import Client, RetryPolicy, Timeout

from .conftest import OPENAI_KEY, FakeClock, closed_port

pytestmark = pytest.mark.slow

LOCAL = "local:gemma-3-270m"


@pytest.fixture(scope="module")
def chain_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def chain_client(
    embedded_model_path: Path, fault_server: LoopbackServer, chain_clock: FakeClock
) -> Iterator[Client]:
    pytest.importorskip("llama_cpp", reason="needs pip install 'llmos[local]'")
    client = Client(
        env={},
        clock=chain_clock,
        providers={
            "dead": {
                "kind": "openai",
                "base_url": f"http://127.0.0.1:{closed_port()}/v1",
                "api_key": OPENAI_KEY,
            },
            "keyless": {"kind": "openai", "base_url": fault_server.url + "/v1"},
            "flaky": {
                "kind": "openai",
                "base_url": fault_server.url + "/v1",
                "api_key": OPENAI_KEY,
            },
            "local": {"seed": 0},
        },
        fallbacks=[LOCAL],
        retry=RetryPolicy(max_attempts=3, jitter=0),
        timeout=Timeout(connect=1.0, read=0.5),
    )
    client.chat(LOCAL, "Hi", max_tokens=1)  # load the model once, not inside a test
    yield client
    client.close()


def test_an_unreachable_primary_falls_back_to_the_local_model(chain_client: Client) -> None:
    response = chain_client.chat("dead:gpt-4.1-mini", "Say hello.", max_tokens=8)
    assert response.target == LOCAL and response.provider == "local"
    assert response.text.strip() and response.usage.completion_tokens > 0
    primary = [a for a in response.attempts if a.target == "dead:gpt-4.1-mini"]
    assert [a.error_type for a in primary] == ["APIConnectionError"] * 3
    assert response.attempts[-1].target == LOCAL and response.attempts[-1].ok


def test_a_primary_with_no_key_falls_back_without_any_network(
    chain_client: Client, fault_app: FaultApp, tag: str
) -> None:
    response = chain_client.chat("keyless:gpt-4.1-mini", tag, max_tokens=8)
    assert response.target == LOCAL and response.text.strip()
    assert fault_app.count(tag) == 0
    assert response.attempts[0].error_type == "MissingAPIKeyError"


def test_a_primary_answering_503_falls_back_to_the_local_model(
    chain_client: Client, fault_app: FaultApp, tag: str, chain_clock: FakeClock
) -> None:
    fault_app.script(tag, "503", "503", "503")
    slept = len(chain_clock.slept)
    response = chain_client.chat("flaky:gpt-4.1-mini", tag, max_tokens=8)
    assert response.target == LOCAL and response.text.strip()
    assert fault_app.count(tag) == 3
    assert chain_clock.slept[slept:] == [0.5, 1.0]
    assert [a.status_code for a in response.attempts] == [503, 503, 503, None]


def test_a_stream_falls_back_to_the_local_model_before_any_content(
    chain_client: Client, fault_app: FaultApp, tag: str
) -> None:
    fault_app.script(tag, "503", "503", "503")
    events = list(chain_client.stream("flaky:gpt-4.1-mini", tag, max_tokens=8))
    final = events[-1].response
    assert final is not None and final.target == LOCAL
    assert "".join(e.delta for e in events) == final.text and final.text.strip()
    assert fault_app.count(tag) == 3


def test_the_first_fallback_to_a_local_target_warns_once(
    chain_client: Client, embedded_model_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The embedded model named by its path: a target of its own (so no earlier test has
    # fallen back to it yet) served by the model already loaded.
    by_path = f"local:{embedded_model_path}"
    caplog.set_level(logging.WARNING, logger="llmos.routing")
    for prompt in ("One.", "Two.", "Three."):
        response = chain_client.chat(
            "dead:gpt-4.1-mini", prompt, max_tokens=2, fallbacks=[by_path], retry=RetryPolicy.none()
        )
        assert response.target == by_path and response.provider == "local"
    warnings = [r.getMessage() for r in caplog.records if r.name == "llmos.routing"]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"falling back to {by_path} after APIConnectionError")
