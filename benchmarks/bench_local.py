"""Local generation through llmos vs raw llama-cpp-python on the embedded Gemma 3 270M.

    python benchmarks/bench_local.py [repeats]

Part 1 runs both at IDENTICAL settings: the same GGUF, n_ctx, n_threads, n_threads_batch and
seed; the same prompt text (the transcript llmos renders, passed to ``create_completion`` as
is), max_tokens, temperature 0 and stop sequences. Each round times, alternately (A B A B ...),
a whole answer (tokens/s = completion tokens / wall time of the call) and a stream (time to the
first non-empty piece). Rows give the median and min-max; the ratio is llmos / raw (target for
tokens/s: >= 0.97). The texts of both sides are compared too, as a check that the settings
really are the same.

Part 2 compares what each gives with its defaults: ``Client()`` against ``Llama(path,
verbose=False)`` (llama-cpp-python: n_ctx 512, half the logical CPUs as threads), with the same
prompt, max_tokens and temperature 0.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from llmos import Client
from llmos.messages import build_request
from llmos.providers._templates import TRANSCRIPT_STOPS
from llmos.providers.local import (
    LocalProvider,
    ensure_embedded_model,
    logical_cpus,
    physical_cores,
)

PROMPT = "Tell me a story about a dragon who lived in a castle."
MAX_TOKENS = 128
N_CTX = 4096
SEED = 1234


def _median_row(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _alternate(contenders: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            results[name].append(fn())
    return results


_rounds: dict[str, int] = {}


def _fresh_prompt(side: str) -> str:
    """A prompt neither model has cached, the same for both sides in one round, so time to
    first token includes processing the whole prompt."""
    _rounds[side] = _rounds.get(side, 0) + 1
    return f"Round {_rounds[side]}. {PROMPT}"


def _llmos_side(client: Client) -> tuple[Callable[[], float], Callable[[], float], list[str]]:
    texts: list[str] = []

    def tokens_per_s() -> float:
        start = time.perf_counter()
        r = client.chat("local", PROMPT, temperature=0, max_tokens=MAX_TOKENS, seed=SEED)
        elapsed = time.perf_counter() - start
        texts.append(r.text)
        return r.usage.completion_tokens / elapsed

    def ttft() -> float:
        prompt = _fresh_prompt("llmos")
        start = time.perf_counter()
        stream = client.stream("local", prompt, temperature=0, max_tokens=MAX_TOKENS, seed=SEED)
        for event in stream:
            if event.delta:
                first = time.perf_counter() - start
                break
        stream.close()
        return first

    return tokens_per_s, ttft, texts


def _raw_side(
    llm: Any, render: Callable[[str], str]
) -> tuple[Callable[[], float], Callable[[], float], list[str]]:
    prompt = render(PROMPT)
    texts: list[str] = []
    stop = list(TRANSCRIPT_STOPS)

    def tokens_per_s() -> float:
        start = time.perf_counter()
        r = llm.create_completion(
            prompt, max_tokens=MAX_TOKENS, temperature=0, stop=stop, seed=SEED
        )
        elapsed = time.perf_counter() - start
        texts.append(r["choices"][0]["text"].strip())
        return float(r["usage"]["completion_tokens"]) / elapsed

    def ttft() -> float:
        text = render(_fresh_prompt("raw"))
        start = time.perf_counter()
        chunks = llm.create_completion(
            text, max_tokens=MAX_TOKENS, temperature=0, stop=stop, seed=SEED, stream=True
        )
        first = 0.0
        for chunk in chunks:
            if chunk["choices"][0]["text"]:
                first = time.perf_counter() - start
                break
        chunks.close()
        return first

    return tokens_per_s, ttft, texts


def run(repeats: int = 5) -> dict[str, Any]:
    """All measurements as plain data (tokens/s, TTFT in seconds, ratios llmos/raw)."""
    from llama_cpp import Llama

    path = str(ensure_embedded_model())
    threads, threads_batch = physical_cores(), logical_cpus()
    settings = {
        "n_ctx": N_CTX,
        "n_threads": threads,
        "n_threads_batch": threads_batch,
        "seed": SEED,
    }
    result: dict[str, Any] = {
        "model": path,
        "prompt": PROMPT,
        "max_tokens": MAX_TOKENS,
        "repeats": repeats,
        "settings": settings,
    }
    with Client(providers={"local": dict(settings)}) as client:
        provider = client.provider("local")
        assert isinstance(provider, LocalProvider)

        def render(prompt: str) -> str:
            return provider.prompt_text(build_request("gemma-3-270m", prompt))

        raw = Llama(path, verbose=False, **settings)
        a_tps, a_ttft, a_texts = _llmos_side(client)
        b_tps, b_ttft, b_texts = _raw_side(raw, render)
        a_tps(), b_tps()  # warm both: first decode pays for allocations
        tps = _alternate({"llmos": a_tps, "raw": b_tps}, repeats)
        ttft = _alternate({"llmos": a_ttft, "raw": b_ttft}, repeats)
        raw.close()
    result["identical"] = {
        "tokens_per_s": {k: _median_row(v) for k, v in tps.items()},
        "ttft_s": {k: _median_row(v) for k, v in ttft.items()},
        "ratio_tokens_per_s": statistics.median(tps["llmos"]) / statistics.median(tps["raw"]),
        "ratio_ttft": statistics.median(ttft["llmos"]) / statistics.median(ttft["raw"]),
        "same_text": a_texts[-1] == b_texts[-1],
        "samples": {"tokens_per_s": tps, "ttft_s": ttft},
    }

    with Client() as client:
        c_tps, _, _ = _llmos_side(client)
        raw = Llama(path, verbose=False)
        d_tps, _, _ = _raw_side(raw, render)
        c_tps(), d_tps()
        defaults = _alternate({"llmos": c_tps, "raw": d_tps}, repeats)
        result["defaults"] = {
            "llmos": {"n_ctx": N_CTX, "n_threads": threads, "n_threads_batch": threads_batch},
            "raw": {"n_ctx": raw.n_ctx(), "n_threads": raw.n_threads},
            "tokens_per_s": {k: _median_row(v) for k, v in defaults.items()},
            "ratio_tokens_per_s": statistics.median(defaults["llmos"])
            / statistics.median(defaults["raw"]),
            "samples": defaults,
        }
        raw.close()
    return result


def _fmt(row: dict[str, float], scale: float = 1.0, unit: str = "") -> str:
    return (
        f"{row['median'] * scale:8.1f}{unit}  ({row['min'] * scale:.1f}-{row['max'] * scale:.1f})"
    )


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    result = run(repeats)
    same = result["identical"]
    print(f"embedded Gemma 3 270M, {MAX_TOKENS} max tokens, {repeats} alternating rounds")
    print(f"identical settings: {result['settings']}")
    print(f"{'':18}{'llmos':>26}{'raw llama-cpp':>26}")
    print(
        f"{'tokens/s':18}{_fmt(same['tokens_per_s']['llmos']):>26}"
        f"{_fmt(same['tokens_per_s']['raw']):>26}"
    )
    print(
        f"{'TTFT (ms)':18}{_fmt(same['ttft_s']['llmos'], 1000):>26}"
        f"{_fmt(same['ttft_s']['raw'], 1000):>26}"
    )
    print(
        f"ratio llmos/raw: tokens/s {same['ratio_tokens_per_s']:.3f}, "
        f"TTFT {same['ratio_ttft']:.3f}; same text: {same['same_text']}"
    )
    d = result["defaults"]
    print(f"\ndefaults: llmos {d['llmos']}  vs  llama-cpp-python {d['raw']}")
    print(
        f"{'tokens/s':18}{_fmt(d['tokens_per_s']['llmos']):>26}{_fmt(d['tokens_per_s']['raw']):>26}"
    )
    print(f"ratio llmos/raw: tokens/s {d['ratio_tokens_per_s']:.3f}")


if __name__ == "__main__":
    main()
