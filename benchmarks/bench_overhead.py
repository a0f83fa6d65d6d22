"""Per-call overhead: llmos vs raw httpx, the raw openai SDK and litellm on one loopback server.

    python -m benchmarks.bench_overhead [seconds_per_round] [rounds]

The server (benchmarks/_server.py) answers OpenAI Chat Completions at once from its own process:
a canned completion, or a canned 200-chunk SSE stream. Every contender sends the same chat
request (one user message, max_tokens 32) to it and reads the whole answer:

- ``httpx``: raw ``httpx.Client``/``AsyncClient`` (defaults) posting pre-encoded JSON and
  ``json.loads``-ing the body; streams iterate the lines and ``json.loads`` each ``data:`` line.
- ``httpx2``: the same with ``httpx2``, the HTTP library under openai SDK 3.x.
- ``openai``: the raw SDK, ``OpenAI(base_url=..., api_key=..., max_retries=0)``,
  ``chat.completions.create`` (typed response objects).
- ``openai.post``: the SDK's generic ``post`` returning plain JSON: exactly the SDK call that
  llmos's openai provider makes, without llmos around it.
- ``llmos``: ``Client.chat("openai:gpt-4o-mini", ...)`` / ``Client.stream``: validation, retry
  layer, routing, cost, the typed ChatResponse; the provider sends through the SDK's ``post``.
- ``litellm``: ``litellm.completion(model="openai/gpt-4o-mini", api_base=..., api_key=...)`` /
  ``acompletion``, with LITELLM_LOCAL_MODEL_COST_MAP=True.

Cells: non-streaming and streaming; sync at concurrency 1; async at concurrency 1 and 100. In
each round every contender runs alternately (A B C ... A B C) for ``seconds`` of calls (at least
one call per worker). Rows give requests/s (median and min-max over rounds); at concurrency 1
also the median latency of a call and what it adds to raw httpx's; at concurrency 100 the added
time per call is ``1/rate - 1/rate(httpx)``. Each contender's answer is checked once before
timing (the same text, every stream chunk), so no contender is timed doing less work.

All contenders share one interpreter, so after setup the garbage collector is told to leave the
objects that exist by then alone (``gc.freeze()``): otherwise each full collection scans every
library's import-time heap (over 200 ms per pass once litellm is loaded, against under 40 ms
without it) and lands on whichever contender happens to trigger it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before litellm is imported

from benchmarks._server import ANSWER, MODEL, STREAM_CHUNKS, ServerProcess, ceiling

PROMPT = "What is the capital of France?"
MESSAGES = [{"role": "user", "content": PROMPT}]
MAX_TOKENS = 32
KEY = "sk-bench-0000"
STREAM_TEXT = "".join(f" tok{i}" for i in range(STREAM_CHUNKS))
CONTENDERS = ("httpx", "httpx2", "openai", "openai.post", "llmos", "litellm")
LABELS = {
    "httpx": "raw httpx",
    "httpx2": "raw httpx2 (under openai 3.x)",
    "openai": "openai SDK chat.completions.create",
    "openai.post": "openai SDK generic post (llmos's path, no llmos)",
    "llmos": "llmos Client (openai provider)",
    "litellm": "litellm completion",
}
#: (cell name, streaming, async, concurrency)
CELLS = (
    ("sync c1", False, False, 1),
    ("sync c1 stream", True, False, 1),
    ("async c1", False, True, 1),
    ("async c1 stream", True, True, 1),
    ("async c100", False, True, 100),
    ("async c100 stream", True, True, 100),
)

SyncFns = dict[str, tuple[Callable[[], str], Callable[[], str]]]
AsyncFns = dict[str, tuple[Callable[[], Awaitable[str]], Callable[[], Awaitable[str]]]]


def _bodies() -> tuple[bytes, bytes]:
    plain = {"model": MODEL, "messages": MESSAGES, "max_tokens": MAX_TOKENS}
    stream = {**plain, "stream": True, "stream_options": {"include_usage": True}}
    return json.dumps(plain).encode(), json.dumps(stream).encode()


def _sse_text(lines: Any) -> str:
    parts: list[str] = []
    for line in lines:
        if line.startswith("data: ") and line != "data: [DONE]":
            for choice in json.loads(line[6:]).get("choices") or ():
                parts.append(choice["delta"].get("content") or "")
    return "".join(parts)


async def _asse_text(lines: Any) -> str:
    parts: list[str] = []
    async for line in lines:
        if line.startswith("data: ") and line != "data: [DONE]":
            for choice in json.loads(line[6:]).get("choices") or ():
                parts.append(choice["delta"].get("content") or "")
    return "".join(parts)


def _chunk_text(chunk: Any) -> str:
    """Content of a typed stream chunk (openai, litellm): empty for the usage chunk."""
    return (chunk.choices[0].delta.content or "") if chunk.choices else ""


def _dict_chunk_text(chunk: Any) -> str:
    choices = chunk.get("choices") or ()
    return (choices[0]["delta"].get("content") or "") if choices else ""


# --------------------------------------------------------------------------- contenders


def sync_contenders(base: str) -> tuple[SyncFns, Callable[[], None]]:
    """name -> (chat, stream) callables returning the answer text, and a closer."""
    import httpx
    import httpx2
    import litellm
    import openai

    from llmos import Client

    url = base + "/chat/completions"
    plain, streamed = _bodies()
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    raw = httpx.Client(headers=headers)
    raw2 = httpx2.Client(headers=headers)
    sdk = openai.OpenAI(base_url=base, api_key=KEY, max_retries=0)
    client = Client(providers={"openai": {"api_key": KEY, "base_url": base}}, env={})
    plain_dict, stream_dict = json.loads(plain), json.loads(streamed)

    def httpx_chat() -> str:
        response = raw.post(url, content=plain)
        response.raise_for_status()
        return str(json.loads(response.content)["choices"][0]["message"]["content"])

    def httpx_stream() -> str:
        with raw.stream("POST", url, content=streamed) as response:
            response.raise_for_status()
            return _sse_text(response.iter_lines())

    def httpx2_chat() -> str:
        response = raw2.post(url, content=plain)
        response.raise_for_status()
        return str(json.loads(response.content)["choices"][0]["message"]["content"])

    def httpx2_stream() -> str:
        with raw2.stream("POST", url, content=streamed) as response:
            response.raise_for_status()
            return _sse_text(response.iter_lines())

    def openai_chat() -> str:
        r = sdk.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=MAX_TOKENS)  # type: ignore[arg-type]
        return r.choices[0].message.content or ""

    def openai_stream() -> str:
        chunks = sdk.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,  # type: ignore[arg-type]
            max_tokens=MAX_TOKENS,
            stream=True,
            stream_options={"include_usage": True},
        )
        return "".join(_chunk_text(c) for c in chunks)

    def post_chat() -> str:
        response = sdk.post("/chat/completions", cast_to=httpx2.Response, body=plain_dict)
        return str(json.loads(response.content)["choices"][0]["message"]["content"])

    def post_stream() -> str:
        chunks = sdk.post(
            "/chat/completions",
            cast_to=object,
            body=stream_dict,
            stream=True,
            stream_cls=openai.Stream[object],
        )
        return "".join(_dict_chunk_text(c) for c in chunks)

    def llmos_chat() -> str:
        return client.chat("openai:" + MODEL, MESSAGES, max_tokens=MAX_TOKENS).text

    def llmos_stream() -> str:
        return "".join(
            e.delta for e in client.stream("openai:" + MODEL, MESSAGES, max_tokens=MAX_TOKENS)
        )

    options = {"api_base": base, "api_key": KEY, "max_tokens": MAX_TOKENS}

    def litellm_chat() -> str:
        r = litellm.completion(model="openai/" + MODEL, messages=MESSAGES, **options)
        return str(r.choices[0].message.content)

    def litellm_stream() -> str:
        chunks = litellm.completion(
            model="openai/" + MODEL,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            **options,
        )
        return "".join(_chunk_text(c) for c in chunks)

    def close() -> None:
        raw.close()
        raw2.close()
        sdk.close()
        client.close()

    fns: SyncFns = {
        "httpx": (httpx_chat, httpx_stream),
        "httpx2": (httpx2_chat, httpx2_stream),
        "openai": (openai_chat, openai_stream),
        "openai.post": (post_chat, post_stream),
        "llmos": (llmos_chat, llmos_stream),
        "litellm": (litellm_chat, litellm_stream),
    }
    return fns, close


def async_contenders(base: str) -> tuple[AsyncFns, Callable[[], Awaitable[None]]]:
    """Async twins of :func:`sync_contenders`; call inside the running loop."""
    import httpx
    import httpx2
    import litellm
    import openai

    from llmos import AsyncClient

    url = base + "/chat/completions"
    plain, streamed = _bodies()
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    raw = httpx.AsyncClient(headers=headers)
    raw2 = httpx2.AsyncClient(headers=headers)
    sdk = openai.AsyncOpenAI(base_url=base, api_key=KEY, max_retries=0)
    client = AsyncClient(providers={"openai": {"api_key": KEY, "base_url": base}}, env={})
    plain_dict, stream_dict = json.loads(plain), json.loads(streamed)

    async def httpx_chat() -> str:
        response = await raw.post(url, content=plain)
        response.raise_for_status()
        return str(json.loads(response.content)["choices"][0]["message"]["content"])

    async def httpx_stream() -> str:
        async with raw.stream("POST", url, content=streamed) as response:
            response.raise_for_status()
            return await _asse_text(response.aiter_lines())

    async def httpx2_chat() -> str:
        response = await raw2.post(url, content=plain)
        response.raise_for_status()
        return str(json.loads(response.content)["choices"][0]["message"]["content"])

    async def httpx2_stream() -> str:
        async with raw2.stream("POST", url, content=streamed) as response:
            response.raise_for_status()
            return await _asse_text(response.aiter_lines())

    async def openai_chat() -> str:
        r = await sdk.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=MAX_TOKENS)  # type: ignore[arg-type]
        return r.choices[0].message.content or ""

    async def openai_stream() -> str:
        chunks = await sdk.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,  # type: ignore[arg-type]
            max_tokens=MAX_TOKENS,
            stream=True,
            stream_options={"include_usage": True},
        )
        return "".join([_chunk_text(c) async for c in chunks])

    async def post_chat() -> str:
        response = await sdk.post("/chat/completions", cast_to=httpx2.Response, body=plain_dict)
        return str(json.loads(response.content)["choices"][0]["message"]["content"])

    async def post_stream() -> str:
        chunks = await sdk.post(
            "/chat/completions",
            cast_to=object,
            body=stream_dict,
            stream=True,
            stream_cls=openai.AsyncStream[object],
        )
        return "".join([_dict_chunk_text(c) async for c in chunks])

    async def llmos_chat() -> str:
        return (await client.chat("openai:" + MODEL, MESSAGES, max_tokens=MAX_TOKENS)).text

    async def llmos_stream() -> str:
        events = client.stream("openai:" + MODEL, MESSAGES, max_tokens=MAX_TOKENS)
        return "".join([e.delta async for e in events])

    options = {"api_base": base, "api_key": KEY, "max_tokens": MAX_TOKENS}

    async def litellm_chat() -> str:
        r = await litellm.acompletion(model="openai/" + MODEL, messages=MESSAGES, **options)
        return str(r.choices[0].message.content)

    async def litellm_stream() -> str:
        chunks = await litellm.acompletion(
            model="openai/" + MODEL,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            **options,
        )
        return "".join([_chunk_text(c) async for c in chunks])

    async def close() -> None:
        await raw.aclose()
        await raw2.aclose()
        await sdk.close()
        await client.aclose()

    fns: AsyncFns = {
        "httpx": (httpx_chat, httpx_stream),
        "httpx2": (httpx2_chat, httpx2_stream),
        "openai": (openai_chat, openai_stream),
        "openai.post": (post_chat, post_stream),
        "llmos": (llmos_chat, llmos_stream),
        "litellm": (litellm_chat, litellm_stream),
    }
    return fns, close


# --------------------------------------------------------------------------- timing


def _settle() -> None:
    """Collect once, then keep everything that exists now out of later collections."""
    gc.collect()
    gc.freeze()


def _check(name: str, text: str, stream: bool) -> None:
    expected = STREAM_TEXT if stream else ANSWER
    if text.strip() != expected.strip():
        raise AssertionError(f"{name} read {text[:60]!r}..., expected {expected[:60]!r}...")


def _sync_round(fn: Callable[[], str], seconds: float) -> tuple[float, list[float]]:
    clock = time.perf_counter
    latencies: list[float] = []
    start = end = clock()
    while end - start < seconds:
        t0 = clock()
        fn()
        end = clock()
        latencies.append(end - t0)
    return len(latencies) / (end - start), latencies


async def _async_round(
    fn: Callable[[], Awaitable[str]], seconds: float, concurrency: int
) -> tuple[float, list[float]]:
    clock = time.perf_counter
    latencies: list[float] = []
    stop_at = clock() + seconds

    async def worker() -> None:
        while True:
            t0 = clock()
            await fn()
            t1 = clock()
            latencies.append(t1 - t0)
            if t1 >= stop_at:
                return

    start = clock()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies) / (clock() - start), latencies


def _summary(rates: list[float], latencies: list[float], concurrency: int) -> dict[str, Any]:
    row: dict[str, Any] = {
        "rps": {"median": statistics.median(rates), "min": min(rates), "max": max(rates)},
        "calls": len(latencies),
    }
    if concurrency == 1:
        row["latency_us"] = {
            "median": statistics.median(latencies) * 1e6,
            "p90": statistics.quantiles(latencies, n=10)[-1] * 1e6 if len(latencies) > 1 else 0,
        }
    return row


def _cell_result(
    samples: dict[str, tuple[list[float], list[float]]], concurrency: int
) -> dict[str, Any]:
    rows = {name: _summary(r, lat, concurrency) for name, (r, lat) in samples.items()}
    base = rows["httpx"]
    for row in rows.values():
        if concurrency == 1:
            row["added_us"] = row["latency_us"]["median"] - base["latency_us"]["median"]
        else:
            row["added_us"] = 1e6 / row["rps"]["median"] - 1e6 / base["rps"]["median"]
    return rows


def _sync_cells(
    base: str, seconds: float, rounds: int, log: Callable[[str], None]
) -> dict[str, Any]:
    fns, close = sync_contenders(base)
    _settle()
    out: dict[str, Any] = {}
    try:
        for cell, stream, is_async, concurrency in CELLS:
            if is_async:
                continue
            pick = {name: pair[1 if stream else 0] for name, pair in fns.items()}
            for name, fn in pick.items():
                _check(name, fn(), stream)
                _sync_round(fn, seconds / 3)  # warm: connections, caches, lazy imports
            samples: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n in pick}
            for _ in range(rounds):
                for name, fn in pick.items():
                    rate, latencies = _sync_round(fn, seconds)
                    samples[name][0].append(rate)
                    samples[name][1].extend(latencies)
            out[cell] = _cell_result(samples, concurrency)
            log(f"  {cell}: " + _brief(out[cell]))
    finally:
        close()
    return out


async def _async_cells(
    base: str, seconds: float, rounds: int, log: Callable[[str], None]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for level in (1, 100):
        fns, close = async_contenders(base)  # fresh pools per level: idle connections cost
        _settle()
        try:
            for cell, stream, is_async, concurrency in CELLS:
                if not is_async or concurrency != level:
                    continue
                pick = {name: pair[1 if stream else 0] for name, pair in fns.items()}
                for name, fn in pick.items():
                    _check(name, await fn(), stream)
                    await _async_round(fn, seconds / 3, concurrency)
                samples: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n in pick}
                for _ in range(rounds):
                    for name, fn in pick.items():
                        rate, latencies = await _async_round(fn, seconds, concurrency)
                        samples[name][0].append(rate)
                        samples[name][1].extend(latencies)
                out[cell] = _cell_result(samples, concurrency)
                log(f"  {cell}: " + _brief(out[cell]))
        finally:
            await close()
    return out


def _brief(rows: dict[str, Any]) -> str:
    return ", ".join(f"{name} {row['rps']['median']:.0f}/s" for name, row in rows.items())


def targets(cells: dict[str, Any]) -> dict[str, Any]:
    """The ratios the issue's targets name, from the cells."""

    def rps(cell: str, name: str) -> float:
        return float(cells[cell][name]["rps"]["median"])

    def latency(cell: str, name: str) -> float:
        return float(cells[cell][name]["latency_us"]["median"])

    return {
        "wall_vs_openai": latency("sync c1", "llmos") / latency("sync c1", "openai"),
        "wall_vs_openai_stream": latency("sync c1 stream", "llmos")
        / latency("sync c1 stream", "openai"),
        "rps_vs_litellm": rps("sync c1", "llmos") / rps("sync c1", "litellm"),
        "rps_vs_litellm_by_cell": {c: rps(c, "llmos") / rps(c, "litellm") for c in cells},
        "async_c100_vs_httpx": rps("async c100", "llmos") / rps("async c100", "httpx"),
        "async_c100_stream_vs_httpx": rps("async c100 stream", "llmos")
        / rps("async c100 stream", "httpx"),
        "llmos_over_sdk_post_us": {
            c: cells[c]["llmos"]["added_us"] - cells[c]["openai.post"]["added_us"] for c in cells
        },
    }


def run(
    seconds: float = 0.4, rounds: int = 5, log: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """Every cell, the server's ceiling and the target ratios, as plain data."""
    with ServerProcess() as server:
        base = server.url + "/v1"
        ceilings = {
            "c1": ceiling(server.port, 1, 1.0),
            "c100": ceiling(server.port, 100, 1.0),
            "c1_stream": ceiling(server.port, 1, 1.0, stream=True),
            "c100_stream": ceiling(server.port, 100, 1.0, stream=True),
        }
        log("  server ceiling (bare asyncio socket client): " + ", ".join(
            f"{k} {v:,.0f}/s" for k, v in ceilings.items()
        ))  # fmt: skip
        cells = _sync_cells(base, seconds, rounds, log)
        cells.update(asyncio.run(_async_cells(base, seconds, rounds, log)))
    return {
        "seconds_per_round": seconds,
        "rounds": rounds,
        "stream_chunks": STREAM_CHUNKS,
        "contenders": LABELS,
        "server_ceiling_rps": ceilings,
        "cells": cells,
        "targets": targets(cells),
    }


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 0.4
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    result = run(seconds, rounds, log=print)
    print(json.dumps(result["targets"], indent=2))


if __name__ == "__main__":
    main()
