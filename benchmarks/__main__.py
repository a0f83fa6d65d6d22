"""Run every benchmark side by side and write benchmarks/results.json and results.md.

    pip install -e ".[bench]"
    python -m benchmarks                  # every case, about 5-8 minutes on 2 cores
    python -m benchmarks --quick          # a smoke run with fewer and shorter rounds
    python -m benchmarks --only overhead,steady

Cases: import (import time and memory), overhead (per-call overhead on a loopback server),
local (local generation), counting (token counting, estimates, a JSONL cost estimate), steady
(memory and sockets over many calls), providers (the httpx providers vs raw httpx). Progress
goes to stderr; the markdown table goes to stdout and to results.md. Each case runs in a
fresh interpreter, so no case measures memory, caches or threads another one left behind; a
case that fails is reported as such and the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before anything imports litellm

from benchmarks import _machine, _report

HERE = Path(__file__).resolve().parent
#: case -> (full settings, quick settings)
SETTINGS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "import": ({"repeats": 10}, {"repeats": 3}),
    "counting": ({"requests": 10_000, "rounds": 5}, {"requests": 10_000, "rounds": 2}),
    "local": ({"repeats": 5}, {"repeats": 2}),
    "overhead": ({"seconds": 0.4, "rounds": 5}, {"seconds": 0.15, "rounds": 2}),
    "steady": ({"calls": 10_000}, {"calls": 2_000}),
    "providers": ({"calls": 200, "rounds": 5}, {"calls": 50, "rounds": 2}),
}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _import(s: dict[str, Any]) -> dict[str, Any]:
    from benchmarks import bench_import

    return bench_import.run(s["repeats"])


def _counting(s: dict[str, Any]) -> dict[str, Any]:
    from benchmarks import bench_counting

    result = bench_counting.run()
    result["jsonl"] = bench_counting.run_jsonl(s["requests"], s["rounds"])
    return result


def _local(s: dict[str, Any]) -> dict[str, Any]:
    from benchmarks import bench_local

    return bench_local.run(s["repeats"])


def _overhead(s: dict[str, Any]) -> dict[str, Any]:
    from benchmarks import bench_overhead

    return bench_overhead.run(s["seconds"], s["rounds"], log=_log)


def _steady(s: dict[str, Any]) -> dict[str, Any]:
    from benchmarks import bench_steady

    return bench_steady.run(s["calls"])


def _providers(s: dict[str, Any]) -> dict[str, Any]:
    from benchmarks import bench_http

    return bench_http.run(s["calls"], s["rounds"])


CASES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "import": _import,
    "counting": _counting,
    "local": _local,
    "overhead": _overhead,
    "steady": _steady,
    "providers": _providers,
}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="fewer and shorter rounds (smoke run)")
    parser.add_argument(
        "--only", metavar="CASES", help=f"comma-separated cases to run ({', '.join(CASES)})"
    )
    parser.add_argument(
        "--out", metavar="DIR", default=str(HERE), help="where results.json and results.md go"
    )
    # Internal: run one case in this process and write its result as JSON.
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    chosen = [c.strip() for c in args.only.split(",") if c.strip()] if args.only else list(CASES)
    unknown = [c for c in chosen if c not in CASES]
    if unknown:
        parser.error(f"unknown case {unknown[0]!r}; choose from {', '.join(CASES)}")
    args.cases = chosen
    return args


def _child(args: argparse.Namespace) -> int:
    result = CASES[args.case](json.loads(args.settings))
    Path(args.result).write_text(json.dumps(result, default=str))
    return 0


def _run_case(name: str, settings: dict[str, Any]) -> dict[str, Any]:
    """One case in a fresh interpreter; its result, or the error that stopped it."""
    root = str(HERE.parent)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH")))),
    }
    with tempfile.TemporaryDirectory(prefix="llmos-bench-") as tmp:
        path = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "benchmarks", "--case", name]
        command += ["--settings", json.dumps(settings), "--result", str(path)]
        done = subprocess.run(command, cwd=root, env=env, check=False)
        if done.returncode != 0 or not path.exists():
            return {"error": f"the {name} case failed (exit code {done.returncode}; see stderr)"}
        result: dict[str, Any] = json.loads(path.read_text())
        return result


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.case:
        return _child(args)
    started = time.perf_counter()
    machine = _machine.describe()
    _log(f"machine: {_machine.one_line(machine)}; load average {machine['load_average']}")
    cases: dict[str, Any] = {}
    for name in args.cases:
        settings = SETTINGS[name][1 if args.quick else 0]
        _log(f"[{name}] {settings} ...")
        t0 = time.perf_counter()
        load_before = _machine.load()
        result = _run_case(name, settings)
        result["run"] = {
            "settings": settings,
            "seconds": time.perf_counter() - t0,
            "load_before": load_before,
            "load_after": _machine.load(),
        }
        cases[name] = result
        _log(f"[{name}] done in {result['run']['seconds']:.0f} s")
    command = "python -m benchmarks" + (" " + " ".join(argv or sys.argv[1:])).rstrip()
    results = {
        "command": command.strip(),
        "mode": "quick" if args.quick else "full",
        "machine": machine,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "total_s": time.perf_counter() - started,
        "cases": cases,
        "targets": _report.evaluate(cases),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    text = _report.markdown(results)
    (out / "results.md").write_text(text)
    print(text)
    _log(f"wrote {out / 'results.json'} and {out / 'results.md'}")
    return 1 if any("error" in c for c in cases.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
