"""Run an ASGI app on a loopback port in a background thread, for the length of a test.

    with LoopbackServer(app) as server:
        client = Client(providers={"openai": {"base_url": server.url + "/v1", "api_key": "k"}})

Every request the app receives is counted in ``server.hits`` by path, so tests can assert how
many requests a call really sent.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from types import TracebackType
from typing import Any

import uvicorn

ASGIApp = Any


class _CountingApp:
    def __init__(self, app: ASGIApp, hits: Counter[str], lock: threading.Lock) -> None:
        self.app = app
        self.hits = hits
        self.lock = lock

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            with self.lock:
                self.hits[scope["path"]] += 1
        await self.app(scope, receive, send)


class LoopbackServer:
    """An ASGI app served by uvicorn on 127.0.0.1 at a free port."""

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1") -> None:
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when the
        # listening socket says proto=TCP; without it every keep-alive answer waits ~40 ms
        # for a delayed ACK (Nagle), which flattens any throughput measurement.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, 0))
        self._sock = sock
        self.host = host
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            _CountingApp(app, self.hits, self._lock),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"loopback-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:54321."""
        return f"http://{self.host}:{self.port}"

    def total_hits(self, path: str | None = None) -> int:
        """Requests received, on one path or in all."""
        with self._lock:
            return self.hits[path] if path is not None else sum(self.hits.values())

    def reset_hits(self) -> None:
        """Forget the requests counted so far."""
        with self._lock:
            self.hits.clear()

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def start(self) -> LoopbackServer:
        """Start serving and wait until the port answers."""
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("loopback server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
