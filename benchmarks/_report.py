"""The targets of the benchmark and the markdown report of one run's results.

Targets are read off the results here and reported, never asserted: a missed target is a
finding for the README, not a failure of the command.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks._machine import one_line

#: (case, description, goal, comparison, limit, reads the measured value off that case)
TargetSpec = tuple[str, str, str, str, float, Callable[[dict[str, Any]], float]]


def _ratio(case: dict[str, Any], name: str) -> float:
    return float(case["ratios"][name]["wall"])


def _worst(rows: list[dict[str, Any]], key: str) -> float:
    return min(float(r[key]) for r in rows if key in r)


TARGETS: tuple[TargetSpec, ...] = (
    ("import", "import llmos / import openai (wall)", "≤ 0.5", "le", 0.5,
     lambda c: _ratio(c, "import llmos / import openai")),
    ("import", "import llmos / import litellm (wall)", "≤ 0.05", "le", 0.05,
     lambda c: _ratio(c, "import llmos / import litellm")),
    ("import", "RSS after import llmos (MB)", "≤ 45", "le", 45.0,
     lambda c: c["rows"]["import llmos"]["rss_after_import_mb"]),
    ("import", "RSS after from llmos import Client (MB)", "≤ 45", "le", 45.0,
     lambda c: c["rows"]["from llmos import Client"]["rss_after_import_mb"]),
    ("overhead", "per-call wall time llmos / openai SDK, sync", "≤ 1.10", "le", 1.10,
     lambda c: c["targets"]["wall_vs_openai"]),
    ("overhead", "per-call wall time llmos / openai SDK, sync stream", "≤ 1.10", "le", 1.10,
     lambda c: c["targets"]["wall_vs_openai_stream"]),
    *(
        ("overhead", f"throughput llmos / litellm, {cell}", "≥ 3", "ge", 3.0,
         lambda c, cell=cell: c["targets"]["rps_vs_litellm_by_cell"][cell])
        for cell in ("sync c1", "sync c1 stream", "async c1", "async c1 stream", "async c100",
                     "async c100 stream")
    ),
    ("overhead", "async c100 throughput llmos / raw httpx", "≥ 0.9", "ge", 0.9,
     lambda c: c["targets"]["async_c100_vs_httpx"]),
    ("overhead", "async c100 stream throughput llmos / raw httpx", "≥ 0.9", "ge", 0.9,
     lambda c: c["targets"]["async_c100_stream_vs_httpx"]),
    ("local", "local tokens/s llmos / llama-cpp-python, same settings", "≥ 0.97", "ge", 0.97,
     lambda c: c["identical"]["ratio_tokens_per_s"]),
    ("local", "local tokens/s llmos defaults / llama-cpp-python defaults", "≥ 1.05", "ge", 1.05,
     lambda c: c["defaults"]["ratio_tokens_per_s"]),
    ("counting", "count_tokens / raw tiktoken (worst text size)", "≥ 0.9", "ge", 0.9,
     lambda c: _worst(c["throughput"], "count_tokens_ratio")),
    ("counting", "token_counter / raw tiktoken (worst text size)", "≥ 0.9", "ge", 0.9,
     lambda c: _worst(c["throughput"], "token_counter_ratio")),
    ("counting", "count_prompt / raw tiktoken (chat messages)", "≥ 0.9", "ge", 0.9,
     lambda c: _worst(c["throughput"], "count_prompt_ratio")),
    ("steady", "RSS growth over the steadiness calls (MB)", "≤ 10", "le", 10.0,
     lambda c: c["max_growth_mb"]),
    ("steady", "sockets open after Client.close()", "= 0", "le", 0.0,
     lambda c: c["sockets_sync"]["after_close"]),
    ("steady", "sockets open after AsyncClient.aclose() (after c100)", "= 0", "le", 0.0,
     lambda c: c["sockets_async"]["after_close"]),
)  # fmt: skip


def evaluate(cases: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the cases that ran: measured value, goal, met or missed."""
    out: list[dict[str, Any]] = []
    for case, description, goal, op, limit, read in TARGETS:
        if case not in cases or "error" in cases[case]:
            continue
        value = float(read(cases[case]))
        met = value <= limit if op == "le" else value >= limit
        out.append({"case": case, "target": description, "goal": goal, "value": value, "met": met})
    return out


# --------------------------------------------------------------------------- markdown


def _num(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def _spread(row: dict[str, float], scale: float = 1.0) -> str:
    return f"{_num(row['median'] * scale)} ({_num(row['min'] * scale)}–{_num(row['max'] * scale)})"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _targets_md(targets: list[dict[str, Any]]) -> list[str]:
    rows = [
        [t["target"], _num(t["value"]), t["goal"], "met" if t["met"] else "**missed**"]
        for t in targets
    ]
    return ["### Targets", "", *_table(["target", "measured", "goal", ""], rows), ""]


def _import_md(case: dict[str, Any]) -> list[str]:
    rows = []
    for name, row in case["rows"].items():
        after = row["rss_after_import_mb"]
        rows.append([
            f"`{name}`" if name.startswith(("import", "from")) else name,
            _spread(row["wall_s"], 1000),
            _num(row["peak_rss_mb"]["median"]),
            "n/a" if after is None else _num(after),
        ])  # fmt: skip
    return [
        f"### Import and memory (fresh interpreter, {case['repeats']} alternating rounds)",
        "",
        *_table(["statement", "wall ms", "peak RSS MB", "RSS after import MB"], rows),
        "",
        "Times include the interpreter's start-up (the `python (baseline)` row).",
        "",
    ]


def _overhead_md(case: dict[str, Any]) -> list[str]:
    cells = list(case["cells"])
    labels = case["contenders"]
    rps_rows, added_rows = [], []
    for name in labels:
        rps_rows.append([labels[name], *(_spread(case["cells"][c][name]["rps"]) for c in cells)])
        added = []
        for c in cells:
            row = case["cells"][c][name]
            latency = row.get("latency_us")
            cell = f"{_num(row['added_us'])}"
            if latency is not None:
                cell = f"{_num(latency['median'])} ({'+' if row['added_us'] >= 0 else ''}{cell})"
            added.append(cell)
        added_rows.append([labels[name], *added])
    ceiling = case["server_ceiling_rps"]
    return [
        f"### Per-call overhead (loopback OpenAI-format server in its own process; "
        f"{case['rounds']} alternating rounds of {case['seconds_per_round']} s per contender)",
        "",
        "Requests/s, median (min–max over rounds). Streams are "
        f"{case['stream_chunks']} content chunks.",
        "",
        *_table(["contender", *cells], rps_rows),
        "",
        "Median latency per call in µs, and in brackets what it adds to raw httpx; at "
        "concurrency 100, the added time per call (1/rate − 1/rate of httpx).",
        "",
        *_table(["contender", *cells], added_rows),
        "",
        "Server ceiling (bare asyncio socket client, same machine): "
        + ", ".join(f"{k} {v:,.0f}/s" for k, v in ceiling.items())
        + ".",
        "",
    ]


def _local_md(case: dict[str, Any]) -> list[str]:
    same, defaults = case["identical"], case["defaults"]
    rows = [
        ["tokens/s, same settings", _spread(same["tokens_per_s"]["llmos"]),
         _spread(same["tokens_per_s"]["raw"]), f"{same['ratio_tokens_per_s']:.3f}"],
        ["time to first token ms, same settings", _spread(same["ttft_s"]["llmos"], 1000),
         _spread(same["ttft_s"]["raw"], 1000), f"{same['ratio_ttft']:.3f}"],
        ["tokens/s, each with its defaults", _spread(defaults["tokens_per_s"]["llmos"]),
         _spread(defaults["tokens_per_s"]["raw"]), f"{defaults['ratio_tokens_per_s']:.3f}"],
    ]  # fmt: skip
    return [
        f"### Local generation (embedded Gemma 3 270M Q4_K_M, {case['max_tokens']} max tokens, "
        f"{case['repeats']} alternating rounds)",
        "",
        *_table(["", "llmos", "llama-cpp-python", "llmos / raw"], rows),
        "",
        f"Same settings: {case['settings']}; same text on both sides: {same['same_text']}. "
        f"Defaults: llmos {defaults['llmos']}, llama-cpp-python {defaults['raw']}.",
        "",
    ]


def _counting_md(case: dict[str, Any]) -> list[str]:
    rows = []
    for row in case["throughput"]:
        api = "count_tokens" if "count_tokens" in row else "count_prompt"
        fast = "—"
        if "token_counter" in row:
            fast = f"{_spread(row['token_counter'], 1e-6)} ({row['token_counter_ratio']:.3f})"
        rows.append([
            row["case"], f"{row['tokens']:,}", _spread(row["raw"], 1e-6),
            f"`{api}` {_spread(row[api], 1e-6)} ({row[api + '_ratio']:.3f})", fast,
        ])  # fmt: skip
    lines = [
        "### Counting and estimating",
        "",
        "Token counting, M tokens/s, median (min–max) of "
        f"{case['rounds']} alternating rounds; ratio to raw tiktoken in brackets.",
        "",
        *_table(["text", "tokens", "raw tiktoken", "llmos API", "`token_counter`"], rows),
        "",
    ]
    est = case["estimate"]
    lines += [
        f"{est['case']}: `Client.estimate` {_spread(est['estimate_ms'])} ms vs raw count "
        f"{_spread(est['raw_count_ms'])} ms ({est['prompt_tokens_source']}).",
        "",
    ]
    jsonl = case.get("jsonl")
    if jsonl is not None:
        s = jsonl["seconds"]
        rows = [
            ["`llmos cost --jsonl … --json` (in-process)", _spread(s["llmos"])],
            ["raw tiktoken by hand (parse, count, price)", _spread(s["raw"])],
            ["`llmos cost` as a new process (imports included)", _spread(s["command"])],
        ]
        lines += [
            f"Cost estimate of a {jsonl['requests']:,}-request JSONL ({jsonl['file_mb']:.1f} MB, "
            f"{jsonl['prompt_tokens']:,} prompt tokens, {jsonl['model']}): seconds, "
            f"{jsonl['rounds']} alternating rounds; raw / llmos = "
            f"{jsonl['ratio_raw_over_llmos']:.3f} ({jsonl['requests_per_s']:,.0f} requests/s).",
            "",
            *_table(["", "seconds"], rows),
            "",
        ]
    return lines


def _steady_md(case: dict[str, Any]) -> list[str]:
    rows = []
    for name in ("chat", "stream"):
        r = case[name]
        rows.append([
            f"{r['calls']:,} {name} calls ({r['seconds']:.1f} s)",
            f"{r['rss_before_mb']:.1f} → {r['rss_after_mb']:.1f}", f"{r['growth_mb']:+.2f}",
        ])  # fmt: skip
    sync, asyn = case["sockets_sync"], case["sockets_async"]
    return [
        "### Steadiness (one client, loopback server)",
        "",
        *_table(["", "RSS MB", "growth MB"], rows),
        "",
        f"Sockets to the server: sync client {sync['open']} open in use, "
        f"{sync['after_close']} after `close()`; async client after {asyn['calls']:,} calls "
        f"at concurrency {asyn['concurrency']}: {asyn['open']} open, {asyn['after_close']} "
        "after `aclose()`.",
        "",
    ]


def _providers_md(case: dict[str, Any]) -> list[str]:
    rows = []
    for name, modes in case["cases"].items():
        for mode, row in modes.items():
            rows.append([
                name, mode, f"{row['raw_httpx']['calls_per_s']:,.0f}",
                f"{row['llmos']['calls_per_s']:,.0f}", f"{row['ratio']:.3f}",
                f"{row['added_us_per_call']:.0f}",
            ])  # fmt: skip
    return [
        f"### httpx providers vs raw httpx (test-suite wire servers under uvicorn; "
        f"{case['calls_per_round']} calls × {case['rounds']} rounds)",
        "",
        *_table(["provider", "mode", "raw httpx/s", "llmos/s", "ratio", "+µs/call"], rows),
        "",
    ]


SECTIONS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "import": _import_md,
    "overhead": _overhead_md,
    "local": _local_md,
    "counting": _counting_md,
    "steady": _steady_md,
    "providers": _providers_md,
}


def markdown(results: dict[str, Any]) -> str:
    """The whole report: machine, targets, one section per case that ran."""
    machine = results["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in machine["packages"].items() if v)
    lines = [
        "## Benchmark results",
        "",
        f"Machine: {one_line(machine)}. Load average at start: {machine['load_average']}.",
        f"Packages: {packages}.",
        f"Command: `{results['command']}` ({results['total_s']:.0f} s, {results['mode']}).",
        "",
        *_targets_md(results["targets"]),
    ]
    for name, render in SECTIONS.items():
        case = results["cases"].get(name)
        if case is None:
            continue
        if "error" in case:
            lines += [f"### {name}", "", f"Did not run: {case['error']}", ""]
            continue
        lines += render(case)
    return "\n".join(lines).rstrip() + "\n"
