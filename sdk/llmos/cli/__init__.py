"""The ``llmos`` command: ``llmos chat | models | cost | compare``.

Each subcommand lives in its own module with ``add_parser(subparsers)`` and ``run(args)``; this
module only dispatches, and turns llmos errors into one clear line on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from llmos._version import __version__

__all__ = ["main"]

#: Subcommand name -> module that implements it.
SUBCOMMANDS: dict[str, str] = {
    "chat": "llmos.cli.chat",
    "models": "llmos.cli.models",
    "cost": "llmos.cli.cost",
    "compare": "llmos.cli.compare",
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="llmos",
        description="One interface to OpenAI, AI21, Hugging Face, OpenAI-compatible servers "
        "and local GGUF models.",
    )
    parser.add_argument("--version", action="version", version=f"llmos {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sub = module.add_parser(subparsers)
        sub.set_defaults(_run=module.run, command=name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``llmos`` console script; returns the exit code."""
    from llmos.errors import LLMOSError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        code: int = args._run(args)
    except LLMOSError as error:
        print(f"llmos: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("llmos: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
