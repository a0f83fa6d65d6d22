"""``llmos models``: every provider and known model, its capabilities, and whether it is set up.

"Configured" means a call could be attempted: a key is present where one is needed (keys are
never shown), or for the local provider, that the ``local`` extra is installed.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from llmos.errors import LLMOSError

__all__ = ["add_parser", "list_models", "run"]

_FEATURES = (
    "streaming",
    "tools",
    "json_schema",
    "json_object",
    "embeddings",
    "logprobs",
    "sampling",
)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``llmos models``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "models",
        help="list providers, known models, capabilities and whether each is configured",
        description="List providers and known models with their capabilities and whether each "
        "is configured (a key is present where one is needed). Keys are never shown.",
    )
    parser.add_argument("--provider", help="only this provider")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def list_models(provider_filter: str | None = None) -> list[dict[str, Any]]:
    """One row per provider and known model: capabilities and configuration status."""
    from llmos.client import Client

    rows: list[dict[str, Any]] = []
    with Client() as client:
        registry = client._core.registry
        names = registry.known_names()
        if provider_filter:
            names = [n for n in names if n == registry.canonical(provider_filter)]
        for name in names:
            try:
                provider = client.provider(name)
            except LLMOSError as error:
                rows.append(
                    {
                        "provider": name,
                        "model": None,
                        "configured": False,
                        "note": error.message,
                        "capabilities": {},
                    }
                )
                continue
            models: list[str | None] = list(provider.known_models) or [None]
            for model in models:
                caps = provider.capabilities(model or "")
                rows.append(
                    {
                        "provider": name,
                        "model": model,
                        "kind": provider.kind,
                        "configured": provider.is_configured(),
                        "base_url": provider.base_url,
                        "needs_key": provider.needs_key,
                        "note": provider.description,
                        "capabilities": caps.as_dict(),
                    }
                )
    return rows


def _yes(value: object) -> str:
    return "✓" if value else "·"


def run(args: argparse.Namespace) -> int:
    """Run ``llmos models``."""
    rows = list_models(args.provider)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="llmos providers and models", show_lines=False)
    table.add_column("target")
    table.add_column("ready")
    for feature in _FEATURES:
        table.add_column(feature.replace("_", " "))
    table.add_column("context", justify="right")
    for row in rows:
        caps = row["capabilities"]
        target = f"{row['provider']}:{row['model']}" if row["model"] else row["provider"]
        context = caps.get("context_window")
        table.add_row(
            target,
            "yes" if row["configured"] else "no key" if row.get("needs_key") else "no",
            *(_yes(caps.get(f)) for f in _FEATURES),
            f"{context:,}" if context else "?",
        )
    Console().print(table)
    return 0
