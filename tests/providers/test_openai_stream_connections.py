"""Streamed calls through the openai provider give their connection back to the pool.

The provider reads streams itself instead of through the SDK's stream object, which closes the
connection at ``[DONE]`` with the end of the body unread: every streamed call would then open a
new connection (a new TLS handshake against a real host).
"""

from __future__ import annotations

from collections.abc import Iterator

import psutil
import pytest
from tests.servers.base import LoopbackServer
from tests.servers.openai_server import ANSWER, create_app

from llmos import AsyncClient, Client

MODEL = "openai:gpt-4.1-mini"


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(create_app()) as running:
        yield running


def _settings(server: LoopbackServer) -> dict[str, dict[str, str]]:
    return {"openai": {"base_url": server.url + "/v1", "api_key": "sk-test-connections"}}


def _client_sockets(port: int) -> int:
    """Established connections of this process to ``port`` (the client ends only)."""
    return sum(
        1
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


def test_streams_reuse_one_connection(server: LoopbackServer) -> None:
    with Client(providers=_settings(server), env={}) as client:
        counts = []
        for _ in range(3):
            text = "".join(e.delta for e in client.stream(MODEL, "Hi"))
            assert text == ANSWER
            counts.append(_client_sockets(server.port))
        assert client.chat(MODEL, "Hi").text == ANSWER
        counts.append(_client_sockets(server.port))
    assert counts == [1, 1, 1, 1]
    assert _client_sockets(server.port) == 0


async def test_async_streams_reuse_one_connection(server: LoopbackServer) -> None:
    async with AsyncClient(providers=_settings(server), env={}) as client:
        counts = []
        for _ in range(3):
            text = "".join([e.delta async for e in client.stream(MODEL, "Hi")])
            assert text == ANSWER
            counts.append(_client_sockets(server.port))
    assert counts == [1, 1, 1]
    assert _client_sockets(server.port) == 0


def test_a_stream_broken_off_early_closes_its_connection(server: LoopbackServer) -> None:
    with Client(providers=_settings(server), env={}) as client:
        stream = client.stream(MODEL, "Hi")
        next(iter(stream))
        stream.close()
        assert _client_sockets(server.port) == 0  # unread body: not reusable, so not kept
        assert "".join(e.delta for e in client.stream(MODEL, "Hi")) == ANSWER
        assert _client_sockets(server.port) == 1
