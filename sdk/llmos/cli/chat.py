"""``llmos chat "PROMPT"``: stream an answer, then one summary line.

The default model is the embedded ``local:gemma-3-270m`` (no key, no network) unless ``--model``
or LLMOS_MODEL says otherwise. ``--json`` prints the whole ChatResponse as JSON instead.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from llmos.errors import InvalidRequestError

__all__ = ["add_parser", "run", "summary_line"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``llmos chat``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "chat",
        help="ask a model one question and stream the answer",
        description="Stream a model's answer to PROMPT (or to stdin), then print a summary "
        "line: model, tokens in/out, latency, tokens/s and cost.",
    )
    parser.add_argument("prompt", nargs="?", help="the prompt; '-' or nothing reads stdin")
    parser.add_argument(
        "-m", "--model", help="provider:model (default: LLMOS_MODEL or local:gemma-3-270m)"
    )
    parser.add_argument("-s", "--system", help="a system message")
    parser.add_argument("--max-tokens", type=int, default=None, help="cap on generated tokens")
    parser.add_argument("--temperature", type=float, default=None, help="sampling temperature")
    parser.add_argument(
        "--json", action="store_true", help="print the whole response as JSON, without streaming"
    )
    return parser


def _read_prompt(args: argparse.Namespace) -> str:
    prompt = args.prompt
    if prompt is None or prompt == "-":
        if sys.stdin is None or (prompt is None and sys.stdin.isatty()):
            raise InvalidRequestError(
                'no prompt: pass it as an argument, e.g. llmos chat "Hello", or pipe it in',
                field="prompt",
            )
        prompt = sys.stdin.read()
    if not prompt.strip():
        raise InvalidRequestError("the prompt is empty", field="prompt")
    return str(prompt)


def summary_line(response: Any) -> str:
    """``model · tokens in/out · latency · tokens/s · cost`` for a finished response."""
    usage = response.usage
    latency = response.latency
    gen_time = latency.total_s - (latency.ttft_s or 0.0)
    rate = usage.completion_tokens / gen_time if gen_time > 0 and usage.completion_tokens else 0.0
    cost = response.cost
    if cost is None or cost.total_usd is None:
        reason = cost.reason if cost is not None and cost.reason else "price unknown"
        cost_text = f"cost n/a ({reason})"
    else:
        cost_text = f"${cost.total_usd:.6f}"
    approx = "" if usage.source in ("provider", "tokenizer") else f" ({usage.source})"
    return (
        f"{response.target} · {usage.prompt_tokens} in / {usage.completion_tokens} out{approx}"
        f" · {latency.total_s:.2f} s · {rate:.1f} tok/s · {cost_text}"
    )


def _prepare_embedded(target: str) -> None:
    """Assemble the embedded model with a progress bar the first time it is used."""
    if target not in ("local", "local:gemma-3-270m"):
        return
    from llmos.providers.local import embedded_model_ready, ensure_embedded_model

    if embedded_model_ready():
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    with Progress(
        TextColumn("preparing the embedded model (first use)"),
        BarColumn(),
        DownloadColumn(),
        transient=True,
        console=_stderr_console(),
    ) as progress:
        task = progress.add_task("assemble", total=None)

        def report(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        ensure_embedded_model(progress=report)


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def run(args: argparse.Namespace) -> int:
    """Run ``llmos chat``."""
    from llmos.client import Client

    prompt = _read_prompt(args)
    messages: list[dict[str, str]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": prompt})
    options: dict[str, Any] = {}
    if args.max_tokens is not None:
        options["max_tokens"] = args.max_tokens
    if args.temperature is not None:
        options["temperature"] = args.temperature

    with Client(model=args.model) as client:
        _prepare_embedded(client.default_model)
        if args.json:
            response = client.chat(None, messages, **options)
            print(response.model_dump_json(indent=2))
            return 0
        stream = client.stream(None, messages, **options)
        out = sys.stdout
        with stream:
            for event in stream:
                if event.delta:
                    out.write(event.delta)
                    out.flush()
        out.write("\n")
        if stream.response is not None:
            print(summary_line(stream.response), file=sys.stderr)
    return 0
