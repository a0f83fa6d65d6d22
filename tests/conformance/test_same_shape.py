"""The same messages and parameters give a ChatResponse of the same shape from ``openai:`` (on a
loopback server and on llama-cpp-python's real server) and from ``local:``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.servers import openai_server
from tests.servers.base import LoopbackServer
from tests.servers.llama_server import LlamaServer, shared_llama_server

from llmos import Client, RetryPolicy

MESSAGES = [
    {"role": "system", "content": "Answer in one short sentence."},
    {"role": "user", "content": "What is the capital of France?"},
]
PARAMS: dict[str, Any] = {"max_tokens": 16, "temperature": 0, "seed": 7, "stop": ["\n\n"]}


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    yield from shared_llama_server(tmp_path_factory)


def shape(value: Any) -> Any:
    """The structure of a dumped response: keys and value types, not the values."""
    if isinstance(value, dict):
        # A cost's parts are None where no price is known (openai:gemma): values, not shape.
        return {
            k: ("cost" if k == "cost" and v is not None else shape(v))
            for k, v in value.items()
            # queued_s is only measured where calls queue (the local model's lock).
            if k not in ("parsed", "parse_error", "queued_s")
        }
    if isinstance(value, list):
        return [shape(v) for v in value[:1]]
    return type(value).__name__


def test_openai_loopback_llama_server_and_local_answer_in_one_shape(
    llama_server: LlamaServer, local_client: Client
) -> None:
    with LoopbackServer(openai_server.create_app()) as server:
        loopback = Client(
            providers={"openai": {"api_key": "sk-test-shape", "base_url": server.url + "/v1"}},
            retry=RetryPolicy.none(),
            env={},
        )
        real = Client(
            providers={
                "openai": {"api_key": "sk-test-shape", "base_url": llama_server.url + "/v1"}
            },
            retry=RetryPolicy.none(),
            env={},
        )
        responses = {
            "loopback": loopback.chat("openai:gpt-4.1-mini", MESSAGES, **PARAMS),
            "llama_cpp.server": real.chat("openai:gemma", MESSAGES, **PARAMS),
            "local": local_client.chat("local:gemma-3-270m", MESSAGES, **PARAMS),
        }
        loopback.close()
        real.close()
    shapes = {name: shape(r.model_dump(mode="json")) for name, r in responses.items()}
    assert shapes["loopback"] == shapes["llama_cpp.server"] == shapes["local"]
    for name, response in responses.items():
        assert response.text, name
        assert response.finish_reason in ("stop", "length"), name
        assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0, name
        assert response.id, name
        assert [a.ok for a in response.attempts] == [True], name
        assert response.cost is not None and (
            response.cost.total_usd is not None or response.cost.reason
        ), name
