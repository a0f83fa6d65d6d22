"""The machine a benchmark ran on: CPU, cores, memory, OS, Python and package versions."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

PACKAGES = (
    "llmos",
    "openai",
    "httpx",
    "httpx2",
    "litellm",
    "aisuite",
    "llama-cpp-python",
    "tiktoken",
    "pydantic",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str | None]:
    """Installed version of each package the benchmarks compare (None: not installed)."""
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def load() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (other work on the machine skews results)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def describe() -> dict[str, Any]:
    """Everything needed to say where a result came from."""
    import psutil

    return {
        "cpu": _cpu_model(),
        "physical_cores": psutil.cpu_count(logical=False),
        "logical_cpus": psutil.cpu_count(logical=True),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "packages": versions(),
        "load_average": load(),
    }


def one_line(machine: dict[str, Any]) -> str:
    """A short description for a table caption."""
    return (
        f"{machine['cpu']}, {machine['physical_cores']} cores / {machine['logical_cpus']} "
        f"threads, {machine['ram_gib']} GiB RAM, {machine['os']}, {machine['python']}"
    )
