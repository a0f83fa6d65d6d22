"""``llmos cost``: what a prompt, a text file or a JSONL batch would cost across models.

    llmos cost "Summarise this" --models openai:gpt-5.4-mini,ai21:jamba-mini --max-tokens 256
    llmos cost --file report.txt -m openai:gpt-5.4 -m local:gemma-3-270m
    llmos cost --jsonl batch.jsonl --json

A JSONL line is one chat request: ``{"messages": [...], "max_tokens": N}``, ``{"prompt": "..."}``
or an OpenAI Batch API line (``{"custom_id": ..., "body": {...}}``). A malformed line is reported
with its number on stderr (and under ``errors`` with ``--json``) and the other lines are still
estimated; the exit code is then 1. Nothing is sent to any provider.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO, Any

from llmos.errors import InvalidRequestError, LLMOSError

__all__ = ["DEFAULT_MODELS", "add_parser", "run"]

#: Models compared when --models is not given (none of them scheduled for retirement).
DEFAULT_MODELS = (
    "openai:gpt-5.4-mini",
    "openai:gpt-5.4",
    "ai21:jamba-mini",
    "ai21:jamba-large",
    "huggingface:meta-llama/Llama-3.1-8B-Instruct:nebius",
    "huggingface:meta-llama/Llama-3.3-70B-Instruct:nebius",
)
#: Files at least this large get a progress bar (when stderr is a terminal).
LARGE_FILE_BYTES = 1 << 20
_MAX_ERRORS_SHOWN = 20
_PLACEHOLDER_MODEL = "estimate"  # requests are priced per target; their own model is unused


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``llmos cost``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "cost",
        help="estimate what a prompt, file or JSONL batch would cost across models",
        description="Estimate prompt tokens and the worst-case and expected cost of a prompt, "
        "a text file or a JSONL file of chat requests on one or more models, from the price "
        "catalog. Nothing is sent.",
    )
    parser.add_argument("prompt", nargs="?", help="the prompt; '-' reads stdin")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--file", metavar="PATH", help="a text file sent as one user message")
    source.add_argument(
        "--jsonl",
        metavar="PATH",
        help='a JSONL file of chat requests: {"messages": [...], "max_tokens": N} '
        'or {"prompt": "..."} per line',
    )
    parser.add_argument(
        "-m",
        "--models",
        action="append",
        metavar="MODELS",
        help="provider:model targets, comma separated or repeated "
        f"(default: {', '.join(DEFAULT_MODELS)})",
    )
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="output allowance per request (JSONL lines may set their own); default: the "
        "model's output limit",
    )
    parser.add_argument("-s", "--system", help="a system message for a prompt or --file")
    parser.add_argument("--batch", action="store_true", help="price with Batch API rates")
    parser.add_argument("--json", action="store_true", help="print JSON only, no table")
    parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    return parser


# --------------------------------------------------------------------------- inputs


@dataclass
class _Line:
    number: int
    request: Any = None  # ChatRequest
    error: str | None = None


def _models(values: list[str] | None) -> list[str]:
    models: list[str] = []
    for value in values or list(DEFAULT_MODELS):
        for raw in value.split(","):
            item = raw.strip()
            if item and item not in models:
                models.append(item)
    if not models:
        raise InvalidRequestError("--models names no model", field="--models")
    return models


def _request(body: Any, max_tokens: int | None, system: str | None = None) -> Any:
    from llmos.messages import build_request

    if isinstance(body, str):
        messages: Any = body
    else:
        messages = body
    if system is not None:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": messages}]
    return build_request(_PLACEHOLDER_MODEL, messages, max_tokens=max_tokens)


def _jsonl_request(obj: Any, default_max: int | None) -> Any:
    from llmos.messages import build_request

    if not isinstance(obj, dict):
        raise InvalidRequestError(
            f'expected a JSON object like {{"messages": [...]}}, got {type(obj).__name__}'
        )
    body = obj["body"] if isinstance(obj.get("body"), dict) else obj
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens", default_max))
    if "messages" in body:
        messages = body["messages"]
    elif "prompt" in body:
        messages = body["prompt"]
        if not isinstance(messages, str):
            raise InvalidRequestError("'prompt' must be a string", field="prompt")
    else:
        raise InvalidRequestError("the line has neither 'messages' nor 'prompt'", field="messages")
    return build_request(
        _PLACEHOLDER_MODEL,
        messages,
        max_tokens=max_tokens,
        tools=body.get("tools"),
        documents=body.get("documents"),
    )


def _jsonl_lines(stream: IO[bytes], default_max: int | None, advance: Any) -> Iterator[_Line]:
    for number, raw in enumerate(stream, start=1):
        advance(len(raw))
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw.decode("utf-8").strip())
        except UnicodeDecodeError as exc:
            yield _Line(number, error=f"not UTF-8 text ({exc.reason} at byte {exc.start})")
            continue
        except json.JSONDecodeError as exc:
            yield _Line(number, error=f"invalid JSON: {exc.msg} (column {exc.colno})")
            continue
        try:
            yield _Line(number, request=_jsonl_request(obj, default_max))
        except LLMOSError as exc:
            yield _Line(number, error=exc.message)


def _read_text(args: argparse.Namespace) -> str:
    if args.file:
        try:
            with open(args.file, encoding="utf-8") as f:
                return f.read()
        except OSError as exc:
            raise InvalidRequestError(
                f"--file {args.file!r}: {exc.strerror}", field="--file"
            ) from None
        except UnicodeDecodeError:
            raise InvalidRequestError(
                f"--file {args.file!r} is not UTF-8 text", field="--file"
            ) from None
    prompt = args.prompt
    if prompt is None or prompt == "-":
        if prompt is None and (sys.stdin is None or sys.stdin.isatty()):
            raise InvalidRequestError(
                'nothing to estimate: pass a prompt, e.g. llmos cost "Hello", or --file PATH '
                "or --jsonl PATH",
                field="prompt",
            )
        prompt = sys.stdin.read()
    return str(prompt)


# --------------------------------------------------------------------------- estimating


@dataclass
class _Total:
    target: Any
    requests: int = 0
    prompt_tokens: int = 0
    exact: bool = True
    source: str = ""
    max_output_tokens: int = 0
    expected_output_tokens: int = 0
    worst: Decimal | None = Decimal(0)
    expected: Decimal | None = Decimal(0)
    reason: str | None = None
    entry: Any = None
    notes: list[str] = field(default_factory=list)

    def add(self, estimate: Any) -> None:
        self.requests += 1
        self.prompt_tokens += estimate.prompt_tokens
        self.exact = self.exact and estimate.prompt_tokens_exact
        self.source = self.source or estimate.prompt_tokens_source
        self.max_output_tokens += estimate.max_output_tokens
        self.expected_output_tokens += estimate.expected_output_tokens
        self.worst = _plus(self.worst, estimate.worst_case_usd)
        self.expected = _plus(self.expected, estimate.expected_usd)
        self.reason = self.reason or estimate.reason


def _plus(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    return None if a is None or b is None else a + b


class _Estimator:
    """Estimates requests on every target, counting each request once per distinct tokenizer."""

    def __init__(self, models: list[str], batch: bool) -> None:
        from llmos.pricing import Pricing
        from llmos.providers.registry import ProviderRegistry
        from llmos.routing import parse_target

        self.registry = ProviderRegistry()
        self.pricing = Pricing(registry=self.registry)
        self.batch = batch
        self.totals = [_Total(parse_target(m, field="--models")) for m in models]
        self.providers: dict[str, Any] = {}
        for total in self.totals:
            total.entry = self.pricing.resolve(total.target).entry
            self.providers[str(total.target)] = self._provider(total.target)

    def _provider(self, target: Any) -> Any:
        """A provider instance only where it counts tokens itself (local models)."""
        from llmos.providers.base import Provider

        try:
            cls = self.registry.provider_class(target.provider)
            if cls.count_prompt_tokens is Provider.count_prompt_tokens:
                return None
            return self.registry.create(target.provider)
        except Exception:  # no such provider or extra missing: approximate instead
            return None

    def add(self, request: Any) -> None:
        counts: dict[tuple[str, bool, str], Any] = {}
        for total in self.totals:
            provider = self.providers[str(total.target)]
            prompt = None
            key: tuple[str, bool, str] | None = None
            if provider is None:
                key = self.pricing.encoding_for(total.target, total.entry)
                prompt = counts.get(key)
            estimate = self.pricing.estimate(
                total.target, request, provider, prompt=prompt, batch=self.batch
            )
            if key is not None and prompt is None:
                counts[key] = _count_of(estimate)
            total.add(estimate)

    def close(self) -> None:
        for provider in self.providers.values():
            if provider is not None:
                provider.close()


def _count_of(estimate: Any) -> Any:
    from llmos.types import TokenCount

    return TokenCount(
        tokens=estimate.prompt_tokens,
        method="exact" if estimate.prompt_tokens_exact else "approximate",
        tokenizer=estimate.prompt_tokens_source,
    )


# --------------------------------------------------------------------------- output


def _usd(value: Decimal | None) -> str:
    if value is None:
        return "unknown"
    if value == 0:
        return "$0"
    return "$" + format(value.quantize(Decimal("1e-8")).normalize(), "f")


def _str(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _lifecycle(entry: Any, today: Any) -> str | None:
    if entry is None:
        return None
    if entry.retired(today):
        when = entry.deprecation_date.isoformat() if entry.deprecation_date else "no date"
        return f"deprecated ({when})"
    if entry.deprecation_date is not None:
        return f"retires {entry.deprecation_date.isoformat()}"
    return None


def _sort_key(total: _Total) -> tuple[int, Decimal, Decimal]:
    unknown = total.expected is None or total.worst is None
    return (
        1 if unknown else 0,
        total.expected if total.expected is not None else Decimal(0),
        total.worst if total.worst is not None else Decimal(0),
    )


def _row(total: _Total, today: Any) -> dict[str, Any]:
    entry = total.entry
    price = None
    if entry is not None:
        price = {
            "key": entry.key,
            "input_per_1m": _str(entry.input),
            "cached_input_per_1m": _str(entry.cached_input),
            "cache_write_per_1m": _str(entry.cache_write),
            "output_per_1m": _str(entry.output),
            "batch_input_per_1m": _str(entry.batch_input),
            "batch_output_per_1m": _str(entry.batch_output),
            "source": entry.source_url or entry.source,
            "as_of": entry.as_of,
            "deprecation_date": entry.deprecation_date.isoformat()
            if entry.deprecation_date
            else None,
            "note": entry.note,
        }
    return {
        "target": str(total.target),
        "requests": total.requests,
        "prompt_tokens": total.prompt_tokens,
        "prompt_tokens_exact": total.exact,
        "prompt_tokens_source": total.source,
        "max_output_tokens": total.max_output_tokens,
        "expected_output_tokens": total.expected_output_tokens,
        "worst_case_usd": _str(total.worst),
        "expected_usd": _str(total.expected),
        "reason": total.reason,
        "lifecycle": _lifecycle(entry, today),
        "price": price,
    }


def _source_host(url: str | None) -> str:
    """The host of a price source URL, so the table stays narrow (--json keeps the full URL)."""
    if not url:
        return "—"
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or url
    return host.removeprefix("www.")


def _table(rows: list[dict[str, Any]], title: str) -> Any:
    from rich.table import Table

    notes = {row["target"]: [n for n in (row["lifecycle"], row["reason"]) if n] for row in rows}
    table = Table(
        title=title,
        title_justify="left",
        caption="~ marks an approximate prompt-token count (the model's own tokenizer is not "
        "at hand); --json names the tokenizer used and the full price source",
        caption_justify="left",
    )
    table.add_column("model", overflow="fold", ratio=3)
    table.add_column("prompt tokens", justify="right")
    table.add_column("max out", justify="right")
    table.add_column("worst case", justify="right", no_wrap=True)
    table.add_column("expected", justify="right", no_wrap=True)
    table.add_column("$/1M in·out", justify="right", no_wrap=True)
    table.add_column("source", overflow="fold")
    table.add_column("as of", no_wrap=True)
    if any(notes.values()):
        table.add_column("notes", overflow="fold", ratio=2)
    for row in rows:
        price = row["price"]
        rates = f"{price['input_per_1m']}·{price['output_per_1m']}" if price else "—"
        cells = [
            row["target"],
            ("" if row["prompt_tokens_exact"] else "~") + f"{row['prompt_tokens']:,}",
            f"{row['max_output_tokens']:,}",
            _usd(None if row["worst_case_usd"] is None else Decimal(row["worst_case_usd"])),
            _usd(None if row["expected_usd"] is None else Decimal(row["expected_usd"])),
            rates,
            _source_host(price["source"]) if price else "—",
            (price["as_of"] or "—") if price else "—",
        ]
        if any(notes.values()):
            cells.append("; ".join(notes[row["target"]]))
        table.add_row(*cells)
    return table


# --------------------------------------------------------------------------- run


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _progress(path: str, args: argparse.Namespace) -> Any:
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    console = _stderr_console()
    size = os.path.getsize(path)
    show = not args.no_progress and console.is_terminal and size >= LARGE_FILE_BYTES
    return Progress(
        TextColumn("estimating"),
        BarColumn(),
        TaskProgressColumn(),
        console=console,
        transient=True,
        disable=not show,
    ), size


def _estimate_jsonl(args: argparse.Namespace, estimator: _Estimator) -> list[tuple[int, str]]:
    errors: list[tuple[int, str]] = []
    try:
        stream = open(args.jsonl, "rb")  # noqa: SIM115 - closed below, read while progressing
    except OSError as exc:
        raise InvalidRequestError(
            f"--jsonl {args.jsonl!r}: {exc.strerror}", field="--jsonl"
        ) from None
    progress, size = _progress(args.jsonl, args)
    with stream, progress:
        task = progress.add_task("estimate", total=size)

        def advance(n: int) -> None:
            progress.advance(task, n)

        for line in _jsonl_lines(stream, args.max_tokens, advance):
            if line.error is not None:
                errors.append((line.number, line.error))
            else:
                estimator.add(line.request)
    return errors


def run(args: argparse.Namespace) -> int:
    """Run ``llmos cost``."""
    from llmos.pricing import ModelDeprecationWarning

    if args.max_tokens is not None and args.max_tokens < 1:
        raise InvalidRequestError("--max-tokens must be 1 or more", field="--max-tokens")
    if args.jsonl and args.prompt is not None:
        raise InvalidRequestError("pass a prompt or --jsonl, not both", field="prompt")
    if args.file and args.prompt is not None:
        raise InvalidRequestError("pass a prompt or --file, not both", field="prompt")
    models = _models(args.models)
    errors: list[tuple[int, str]] = []
    with warnings.catch_warnings():
        # Deprecations are shown in the table instead of as Python warnings.
        warnings.simplefilter("ignore", ModelDeprecationWarning)
        estimator = _Estimator(models, args.batch)
        try:
            if args.jsonl:
                errors = _estimate_jsonl(args, estimator)
                what = {"kind": "jsonl", "path": args.jsonl}
            else:
                estimator.add(_request(_read_text(args), args.max_tokens, args.system))
                what = {"kind": "file", "path": args.file} if args.file else {"kind": "prompt"}
        finally:
            estimator.close()
    today = estimator.pricing.catalog.today
    totals = sorted(estimator.totals, key=_sort_key)
    rows = [_row(t, today) for t in totals]
    requests = totals[0].requests if totals else 0
    if args.json:
        doc = {
            "input": {**what, "requests": requests, "skipped_lines": len(errors)},
            "batch_prices": args.batch,
            "models": rows,
            "errors": [{"line": n, "error": e} for n, e in errors],
        }
        print(json.dumps(doc, indent=2))
    else:
        from rich.console import Console

        title = f"{requests} request{'s' if requests != 1 else ''}" + (
            " · Batch API prices" if args.batch else ""
        )
        Console().print(_table(rows, title))
    for number, error in errors[:_MAX_ERRORS_SHOWN]:
        print(f"llmos cost: {args.jsonl}: line {number}: {error} (line skipped)", file=sys.stderr)
    if len(errors) > _MAX_ERRORS_SHOWN:
        print(
            f"llmos cost: ... and {len(errors) - _MAX_ERRORS_SHOWN} more bad lines", file=sys.stderr
        )
    if args.jsonl and requests == 0:
        print(f"llmos cost: {args.jsonl}: no valid request to estimate", file=sys.stderr)
        return 1
    return 1 if errors else 0
