"""Per-call overhead of the httpx providers (ai21, huggingface) against raw httpx.

    python benchmarks/bench_http.py [calls_per_round] [rounds]

The loopback servers of the test suite (tests/servers/ai21_server.py, hf_router_server.py) run in
a separate process (uvicorn), so the server's work does not share the client's interpreter. Each
round runs the contenders alternately (raw httpx, then llmos) on the same server: sync calls one
after another, and async calls at concurrency 1 and 32. Throughput ratios are llmos / raw httpx
(target >= 0.9); the added latency per call is the difference of the median per-call times.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "What is the capital of France?"

#: name -> (server app factory, route, llmos model, provider settings from the base URL)
CASES: dict[str, tuple[str, str, str, Callable[[str], dict[str, Any]]]] = {
    "ai21": (
        "tests.servers.ai21_server:create_app",
        "/studio/v1/chat/completions",
        "ai21:jamba-mini",
        lambda url: {"ai21": {"api_key": "bench-key", "base_url": url + "/studio/v1"}},
    ),
    "huggingface": (
        "tests.servers.hf_router_server:create_app",
        "/v1/chat/completions",
        "huggingface:meta-llama/Llama-3.1-8B-Instruct:cerebras",
        lambda url: {
            "huggingface": {"api_key": "hf_benchkey12345", "base_url": url + "/v1", "api": "router"}
        },
    ),
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A uvicorn process serving one loopback app."""

    def __init__(self, app: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                app,
                "--factory",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"server {app} did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _body(model: str) -> bytes:
    return json.dumps(
        {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 32}
    ).encode()


def _median_rate(samples: list[float]) -> dict[str, float]:
    return {
        "calls_per_s": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
    }


def _sync_round(fn: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return calls / (time.perf_counter() - start)


async def _async_round(fn: Callable[[], Awaitable[Any]], calls: int, concurrency: int) -> float:
    queue = iter(range(calls))

    async def worker() -> None:
        for _ in queue:
            await fn()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return calls / (time.perf_counter() - start)


def bench_case(name: str, calls: int, rounds: int) -> dict[str, Any]:
    """Raw httpx vs llmos on one provider's loopback server, sync and async."""
    import httpx

    from llmos import AsyncClient, Client

    app, route, model, settings = CASES[name]
    wire_model = model.split(":", 1)[1]
    server = Server(app)
    try:
        url = server.url
        headers = {"Authorization": "Bearer bench-key", "Content-Type": "application/json"}
        body = _body(wire_model)
        raw_sync = httpx.Client(headers=headers)
        client = Client(providers=settings(url), env={})

        def raw_call() -> Any:
            response = raw_sync.post(url + route, content=body)
            response.raise_for_status()
            return json.loads(response.content)

        def llmos_call() -> Any:
            return client.chat(model, PROMPT, max_tokens=32)

        for _ in range(50):  # warm both paths (connections, imports, price lookups)
            raw_call()
            llmos_call()
        sync: dict[str, list[float]] = {"raw": [], "llmos": []}
        for _ in range(rounds):
            sync["raw"].append(_sync_round(raw_call, calls))
            sync["llmos"].append(_sync_round(llmos_call, calls))
        raw_sync.close()
        client.close()

        async def run_async() -> dict[str, dict[str, list[float]]]:
            raw_async = httpx.AsyncClient(headers=headers, limits=httpx.Limits(max_connections=200))
            aclient = AsyncClient(providers=settings(url), env={})

            async def raw_acall() -> Any:
                response = await raw_async.post(url + route, content=body)
                response.raise_for_status()
                return json.loads(response.content)

            async def llmos_acall() -> Any:
                return await aclient.chat(model, PROMPT, max_tokens=32)

            out: dict[str, dict[str, list[float]]] = {}
            for concurrency in (1, 32):
                await _async_round(raw_acall, 50, concurrency)
                await _async_round(llmos_acall, 50, concurrency)
                samples: dict[str, list[float]] = {"raw": [], "llmos": []}
                for _ in range(rounds):
                    samples["raw"].append(await _async_round(raw_acall, calls, concurrency))
                    samples["llmos"].append(await _async_round(llmos_acall, calls, concurrency))
                out[f"async_c{concurrency}"] = samples
            await raw_async.aclose()
            await aclient.aclose()
            return out

        modes = {"sync": sync, **asyncio.run(run_async())}
    finally:
        server.stop()
    result: dict[str, Any] = {}
    for mode, samples in modes.items():
        raw = _median_rate(samples["raw"])
        ours = _median_rate(samples["llmos"])
        result[mode] = {
            "raw_httpx": raw,
            "llmos": ours,
            "ratio": ours["calls_per_s"] / raw["calls_per_s"],
            "added_us_per_call": (1 / ours["calls_per_s"] - 1 / raw["calls_per_s"]) * 1e6,
        }
    return result


def run(calls: int = 300, rounds: int = 5) -> dict[str, Any]:
    """Every case; ratios are llmos throughput / raw httpx throughput."""
    return {
        "calls_per_round": calls,
        "rounds": rounds,
        "cases": {name: bench_case(name, calls, rounds) for name in CASES},
    }


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    result = run(calls, rounds)
    print(f"{calls} calls per round, {rounds} alternating rounds, server in its own process")
    header = ("provider", "mode", "raw httpx/s", "llmos/s", "ratio", "+us/call")
    print("{:12} {:9} {:>12} {:>9} {:>6} {:>9}".format(*header))
    for name, modes in result["cases"].items():
        for mode, row in modes.items():
            print(
                f"{name:12} {mode:9} {row['raw_httpx']['calls_per_s']:12.0f} "
                f"{row['llmos']['calls_per_s']:9.0f} {row['ratio']:6.3f} "
                f"{row['added_us_per_call']:9.0f}"
            )


if __name__ == "__main__":
    main()
