"""Import time of llmos vs the openai SDK, each in a fresh interpreter.

    python benchmarks/bench_import.py [repeats]

Each round starts new ``python -c`` processes, alternately, for: a bare interpreter (the
baseline every row includes), ``import llmos``, ``from llmos import Client``, and ``import
openai``. Rows give the median and min-max wall time; ratios are llmos / openai, on the raw
times and with the interpreter's own start-up subtracted.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from typing import Any

STATEMENTS: dict[str, str] = {
    "python (baseline)": "pass",
    "import llmos": "import llmos",
    "from llmos import Client": "from llmos import Client",
    "import openai": "import openai",
}


def _time(statement: str) -> float:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True, env=env)
    return time.perf_counter() - start


def run(repeats: int = 15) -> dict[str, Any]:
    """Median and min-max seconds per statement, and the llmos/openai ratios."""
    for statement in STATEMENTS.values():  # warm the OS file cache (and .pyc files) first
        _time(statement)
    samples: dict[str, list[float]] = {name: [] for name in STATEMENTS}
    for _ in range(repeats):
        for name, statement in STATEMENTS.items():
            samples[name].append(_time(statement))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    base = medians["python (baseline)"]
    openai = medians["import openai"]
    return {
        "repeats": repeats,
        "python": sys.version.split()[0],
        "rows": {
            name: {"median": medians[name], "min": min(v), "max": max(v)}
            for name, v in samples.items()
        },
        "ratio_import_llmos": medians["import llmos"] / openai,
        "ratio_client": medians["from llmos import Client"] / openai,
        "ratio_import_llmos_minus_startup": (medians["import llmos"] - base) / (openai - base),
        "ratio_client_minus_startup": (medians["from llmos import Client"] - base)
        / (openai - base),
    }


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    result = run(repeats)
    print(f"fresh interpreters (Python {result['python']}), {repeats} alternating rounds")
    for name, row in result["rows"].items():
        print(
            f"{name:26} {row['median'] * 1000:7.1f} ms  "
            f"({row['min'] * 1000:.1f}-{row['max'] * 1000:.1f})"
        )
    print(
        f"ratio vs import openai: import llmos {result['ratio_import_llmos']:.3f}, "
        f"from llmos import Client {result['ratio_client']:.3f}"
    )
    print(
        "without interpreter start-up: import llmos "
        f"{result['ratio_import_llmos_minus_startup']:.3f}, from llmos import Client "
        f"{result['ratio_client_minus_startup']:.3f}"
    )


if __name__ == "__main__":
    main()
