"""Steadiness: memory over many calls through one client, and sockets left after closing it.

    python -m benchmarks.bench_steady [calls]

Against the loopback server of the overhead benchmark (its own process): after a warm-up, the
RSS of this process (psutil) is read before and after ``calls`` chat calls through one
``Client``, then before and after a tenth as many streamed calls; the target is no growth beyond
10 MB. Then the TCP connections of this process to the server's port are counted while the
client is open and after ``close()`` (target: zero), for the sync client and for an
``AsyncClient`` that ran 100 calls at a time.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from typing import Any

from benchmarks._server import MODEL, ServerProcess

KEY = "sk-bench-0000"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
TARGET = "openai:" + MODEL


def _sockets(process: Any, port: int) -> int:
    """Open TCP connections of ``process`` to ``port`` (any state)."""
    connections = getattr(process, "net_connections", None) or process.connections
    return sum(1 for c in connections(kind="tcp") if c.raddr and c.raddr.port == port)


def _rss_mb(process: Any) -> float:
    gc.collect()
    return float(process.memory_info().rss) / 2**20


def _growth(process: Any, fn: Any, calls: int) -> dict[str, float]:
    before = _rss_mb(process)
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    elapsed = time.perf_counter() - start
    after = _rss_mb(process)
    return {
        "calls": calls,
        "seconds": elapsed,
        "rss_before_mb": before,
        "rss_after_mb": after,
        "growth_mb": after - before,
    }


async def _async_sockets(base: str, port: int, process: Any, calls: int) -> dict[str, Any]:
    from llmos import AsyncClient

    client = AsyncClient(providers={"openai": {"api_key": KEY, "base_url": base}}, env={})
    queue = iter(range(calls))

    async def worker() -> None:
        for _ in queue:
            await client.chat(TARGET, MESSAGES, max_tokens=32)

    await asyncio.gather(*(worker() for _ in range(100)))
    open_now = _sockets(process, port)
    await client.aclose()
    await asyncio.sleep(0)  # let closed transports finish closing
    return {
        "calls": calls,
        "concurrency": 100,
        "open": open_now,
        "after_close": _sockets(process, port),
    }


def run(calls: int = 10_000) -> dict[str, Any]:
    """RSS growth over ``calls`` chats and ``calls // 10`` streams; sockets after close."""
    import psutil

    from llmos import Client

    process = psutil.Process()
    with ServerProcess() as server:
        base = server.url + "/v1"
        client = Client(providers={"openai": {"api_key": KEY, "base_url": base}}, env={})

        def chat() -> None:
            client.chat(TARGET, MESSAGES, max_tokens=32)

        def stream() -> None:
            for _ in client.stream(TARGET, MESSAGES, max_tokens=32):
                pass

        for _ in range(500):  # warm: connection, caches, lazy imports, first allocations
            chat()
        for _ in range(50):
            stream()
        chats = _growth(process, chat, calls)
        streams = _growth(process, stream, max(calls // 10, 1))
        open_now = _sockets(process, server.port)
        client.close()
        sync_sockets = {"open": open_now, "after_close": _sockets(process, server.port)}
        async_sockets = asyncio.run(_async_sockets(base, server.port, process, 2000))
    return {
        "chat": chats,
        "stream": streams,
        "sockets_sync": sync_sockets,
        "sockets_async": async_sockets,
        "max_growth_mb": max(chats["growth_mb"], streams["growth_mb"]),
    }


def main() -> None:
    result = run(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
    for name in ("chat", "stream"):
        r = result[name]
        print(
            f"{r['calls']:>6} {name} calls in {r['seconds']:.1f} s: RSS {r['rss_before_mb']:.1f} "
            f"-> {r['rss_after_mb']:.1f} MB ({r['growth_mb']:+.2f} MB)"
        )
    for name in ("sockets_sync", "sockets_async"):
        r = result[name]
        print(f"{name}: {r['open']} open while in use, {r['after_close']} after close")


if __name__ == "__main__":
    main()
