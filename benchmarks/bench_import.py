"""Import time and memory of llmos vs the openai SDK, litellm and aisuite, in fresh interpreters.

    python benchmarks/bench_import.py [repeats]

Each round starts new ``python -c`` processes, alternately, for: a bare interpreter (the
baseline every row includes), ``import llmos``, ``from llmos import Client``, ``import openai``,
``import litellm`` (with LITELLM_LOCAL_MODEL_COST_MAP=True, so it reads its bundled price map
instead of fetching one) and ``import aisuite``. Rows give the median and min-max wall time and
the peak RSS of the process (``wait4``), and, from one more run each, the RSS right after the
import. Ratios are llmos over a peer, on the raw times and with the interpreter's own start-up
subtracted.

Every package gets the same bytecode cache: the children write and read ``.pyc`` files under a
private PYTHONPYCACHEPREFIX, warmed by one untimed run, as after any ``pip install``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

STATEMENTS: dict[str, str] = {
    "python (baseline)": "pass",
    "import llmos": "import llmos",
    "from llmos import Client": "from llmos import Client",
    "import openai": "import openai",
    "import litellm": "import litellm",
    "import aisuite": "import aisuite",
}
PEERS = ("import openai", "import litellm", "import aisuite")
_RSS_AFTER = (
    "; import re; print(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read())[1])"
)


def _env(cache: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    return env


def _time(statement: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a fresh interpreter running ``statement``."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", statement], env=env)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"python -c {statement!r} failed ({process.returncode})")
    return elapsed, usage.ru_maxrss / 1024  # KiB on Linux


def _rss_after(statement: str, env: dict[str, str]) -> float | None:
    """RSS in MB right after ``statement`` (Linux /proc), None where unavailable."""
    if not os.path.exists("/proc/self/status"):
        return None
    out = subprocess.run(
        [sys.executable, "-c", statement + _RSS_AFTER],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.split()[-1]) / 1024


def _row(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def run(repeats: int = 10) -> dict[str, Any]:
    """Per statement: wall time and peak RSS (median, min-max), RSS after import; ratios."""
    with tempfile.TemporaryDirectory(prefix="llmos-bench-pyc-") as cache:
        env = _env(cache)
        for statement in STATEMENTS.values():  # compile every module once, warm the file cache
            _time(statement, env)
        times: dict[str, list[float]] = {name: [] for name in STATEMENTS}
        peaks: dict[str, list[float]] = {name: [] for name in STATEMENTS}
        for _ in range(repeats):
            for name, statement in STATEMENTS.items():
                wall, peak = _time(statement, env)
                times[name].append(wall)
                peaks[name].append(peak)
        after = {name: _rss_after(statement, env) for name, statement in STATEMENTS.items()}
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["python (baseline)"]
    ratios: dict[str, dict[str, float]] = {}
    for ours in ("import llmos", "from llmos import Client"):
        for peer in PEERS:
            ratios[f"{ours} / {peer}"] = {
                "wall": medians[ours] / medians[peer],
                "minus_startup": (medians[ours] - base) / (medians[peer] - base),
            }
    return {
        "repeats": repeats,
        "python": sys.version.split()[0],
        "rows": {
            name: {
                "wall_s": _row(times[name]),
                "peak_rss_mb": _row(peaks[name]),
                "rss_after_import_mb": after[name],
            }
            for name in STATEMENTS
        },
        "ratios": ratios,
    }


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    result = run(repeats)
    print(f"fresh interpreters (Python {result['python']}), {repeats} alternating rounds")
    print(f"{'':26} {'wall ms (min-max)':>24} {'peak RSS MB':>12} {'RSS after':>10}")
    for name, row in result["rows"].items():
        wall, peak = row["wall_s"], row["peak_rss_mb"]
        after = row["rss_after_import_mb"]
        print(
            f"{name:26} {wall['median'] * 1000:8.1f} ({wall['min'] * 1000:.1f}-"
            f"{wall['max'] * 1000:.1f}) {peak['median']:12.1f} "
            f"{after if after is None else round(after, 1)!s:>10}"
        )
    for name, ratio in result["ratios"].items():
        print(f"{name:42} {ratio['wall']:.3f} (without start-up {ratio['minus_startup']:.3f})")


if __name__ == "__main__":
    main()
