"""``llmos compare``: score services on performance, price and usability over the same tasks.

    llmos compare                                       # what runs here: local + keyed services
    llmos compare --models local:gemma-3-270m,openai:gpt-5.4-mini --tasks qa,translation
    llmos compare --provider box=openai-compatible,base_url=http://127.0.0.1:8000/v1 \\
                  --models local:gemma-3-270m,box:my-model --tasks qa --limit 5
    llmos compare --tasks all --dry-run                 # the estimated cost, nothing sent

Results are appended to ``OUT/results.jsonl`` one row per item, target and repeat as they
finish; rerunning the same command resumes where an interrupted run stopped. The reports
(``report.json``, ``report.csv``, ``report.html``) are written to OUT at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from llmos.errors import InvalidRequestError

__all__ = ["DEFAULT_MODELS", "add_parser", "parse_provider", "run"]

#: Compared when --models is not given: the embedded local model, plus one model of each cloud
#: service whose key is set (the others are skipped with a one-line note).
DEFAULT_MODELS = (
    "local:gemma-3-270m",
    "openai:gpt-5.4-mini",
    "ai21:jamba-mini",
    "huggingface:meta-llama/Llama-3.1-8B-Instruct:nebius",
)
DEFAULT_OUT = "llmos-compare"
DEFAULT_CONFIRM_ABOVE = Decimal("1.00")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``llmos compare``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "compare",
        help="score models on performance, price and usability over the same tasks",
        description="Run the same task items on several targets (streaming, temperature 0, a "
        "fixed seed per item), measure quality, latency, throughput and cost, score them with "
        "your weights, and write JSON, CSV and a self-contained HTML report. Results go to "
        "OUT/results.jsonl as they finish, so an interrupted run resumes when rerun. Targets "
        "whose provider has no key are skipped with a note.",
    )
    parser.add_argument(
        "-m",
        "--models",
        action="append",
        metavar="MODELS",
        help="provider:model targets, comma separated or repeated (default: "
        f"{', '.join(DEFAULT_MODELS)}; those without a key are skipped)",
    )
    parser.add_argument(
        "-t",
        "--tasks",
        action="append",
        metavar="TASKS",
        help="task sets (generation, translation, qa, summarization, support, code, all) or "
        ".jsonl files, comma separated or repeated (default: all)",
    )
    parser.add_argument("--limit", type=int, help="use only the first N items of each task")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each item (default 1)")
    parser.add_argument(
        "-j", "--concurrency", type=int, default=4, help="calls in flight at once (default 4)"
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds allowed per item (default 120)"
    )
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    parser.add_argument(
        "--temperature",
        default="0",
        help="sampling temperature (default 0); 'none' sends none, for models that refuse one",
    )
    parser.add_argument("--max-tokens", type=int, help="cap on each item's own max_tokens")
    parser.add_argument(
        "--weights",
        help="score weights over performance, price and usability, e.g. "
        "'performance=0.5,price=0.3,usability=0.2' (default 0.4, 0.3, 0.3)",
    )
    parser.add_argument(
        "--execute-code",
        action="store_true",
        help="run the code task's answers against their tests in a sandbox (default: check "
        "syntax only)",
    )
    parser.add_argument(
        "--perplexity",
        choices=("output", "reference", "off"),
        default="output",
        help="what perplexity is computed on: each target's own output (from its logprobs, or "
        "scored by a local model; default), the task's reference text (local models only), "
        "or off",
    )
    parser.add_argument(
        "--provider",
        action="append",
        default=[],
        metavar="NAME=KIND,KEY=VALUE,...",
        help="configure a provider, e.g. box=openai-compatible,base_url=http://host:8000/v1 "
        "(keys: use LLMOS_<NAME>_API_KEY rather than the command line)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help='a JSON file {"providers": {name: settings}}, as Client(providers=...) takes',
    )
    parser.add_argument(
        "-o", "--out", default=DEFAULT_OUT, help=f"output directory (default ./{DEFAULT_OUT})"
    )
    parser.add_argument(
        "--results", help="results JSONL file (default OUT/results.jsonl); reused to resume"
    )
    parser.add_argument(
        "--formats", default="json,csv,html", help="reports to write (default json,csv,html)"
    )
    parser.add_argument(
        "--retry-errors", action="store_true", help="run again the rows that failed last time"
    )
    parser.add_argument(
        "--no-warmup",
        action="store_true",
        help="skip the one unrecorded 1-token call per target that keeps model loading and "
        "connection setup out of the measured latencies",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the estimated cost; send nothing"
    )
    parser.add_argument(
        "--confirm-above",
        default=str(DEFAULT_CONFIRM_ABOVE),
        metavar="USD",
        help=f"ask before a run whose worst case exceeds this (default ${DEFAULT_CONFIRM_ABOVE})",
    )
    parser.add_argument("-y", "--yes", action="store_true", help="never ask; run")
    parser.add_argument("--json", action="store_true", help="print the JSON report only")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


# --------------------------------------------------------------------------- inputs


def _split(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for value in values or []:
        for raw in value.split(","):
            part = raw.strip()
            if part and part not in out:
                out.append(part)
    return out


def parse_provider(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME=KIND,key=value,...`` (or ``NAME=key=value,...``) -> (name, settings)."""
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not name or not rest.strip():
        raise InvalidRequestError(
            f"--provider {text!r}: expected NAME=KIND,key=value,... e.g. "
            "box=openai-compatible,base_url=http://127.0.0.1:8000/v1",
            field="--provider",
        )
    settings: dict[str, Any] = {}
    for i, raw in enumerate(rest.split(",")):
        part = raw.strip()
        if not part:
            continue
        key, eq, value = part.partition("=")
        if not eq:
            if i == 0:
                settings["kind"] = part
                continue
            raise InvalidRequestError(
                f"--provider {name}: {part!r} is not key=value", field="--provider"
            )
        lowered = value.strip().lower()
        settings[key.strip()] = {"true": True, "false": False}.get(lowered, value.strip())
    return name, settings


def _providers(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    providers: dict[str, dict[str, Any]] = {}
    if args.config:
        try:
            doc = json.loads(Path(args.config).read_text(encoding="utf-8"))
        except OSError as exc:
            raise InvalidRequestError(
                f"--config {args.config!r}: {exc.strerror}", field="--config"
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidRequestError(
                f"--config {args.config!r} is not JSON: {exc}", field="--config"
            ) from None
        given = doc.get("providers") if isinstance(doc, dict) else None
        if not isinstance(given, dict) or not all(isinstance(v, dict) for v in given.values()):
            raise InvalidRequestError(
                f'--config {args.config!r}: expected {{"providers": {{"name": {{...}}}}}}',
                field="--config",
            )
        providers.update({str(k): dict(v) for k, v in given.items()})
    for text in args.provider:
        name, settings = parse_provider(text)
        providers[name] = {**providers.get(name, {}), **settings}
    return providers


def _temperature(text: str) -> float | None:
    if text.strip().lower() in ("none", "off", ""):
        return None
    try:
        return float(text)
    except ValueError:
        raise InvalidRequestError(
            f"--temperature {text!r}: give a number from 0 to 2, or 'none'", field="--temperature"
        ) from None


def _usd(text: str) -> Decimal:
    try:
        value = Decimal(text.lstrip("$"))
    except InvalidOperation:
        value = Decimal(-1)
    if not value.is_finite() or value < 0:
        raise InvalidRequestError(
            f"--confirm-above {text!r}: give an amount of US dollars, e.g. 1 or 0.50",
            field="--confirm-above",
        )
    return value


def _items(args: argparse.Namespace) -> list[Any]:
    from llmos.compare.tasks import load_tasks

    items, problems = load_tasks(_split(args.tasks) or ["all"])
    for problem in problems:
        _note(f"{problem} (line skipped)")
    if args.limit is not None:
        if args.limit < 1:
            raise InvalidRequestError("--limit must be 1 or more", field="--limit")
        counts: dict[str, int] = {}
        kept = []
        for item in items:
            counts[item.task] = counts.get(item.task, 0) + 1
            if counts[item.task] <= args.limit:
                kept.append(item)
        items = kept
    if not items:
        raise InvalidRequestError("the task sets hold no usable item", field="--tasks")
    return items


def _note(text: str) -> None:
    print(f"llmos compare: {text}", file=sys.stderr)


# --------------------------------------------------------------------------- cost


def _money(value: Decimal | None, reason: str | None, short: Any) -> str:
    if value is None:
        from llmos.compare.report import na

        return str(short(na(reason or "price unknown")))
    if value == 0:
        return "$0"
    return "$" + format(value.quantize(Decimal("1e-6")).normalize(), "f")


def _estimate_doc(estimate: Any) -> dict[str, Any]:
    def s(v: Decimal | None) -> str | None:
        return None if v is None else format(v, "f")

    return {
        "targets": [
            {
                "target": t.target,
                "calls": t.calls,
                "pending_calls": t.pending_calls,
                "worst_case_usd": s(t.worst_case_usd),
                "expected_usd": s(t.expected_usd),
                "pending_worst_case_usd": s(t.pending_worst_case_usd),
                "pending_expected_usd": s(t.pending_expected_usd),
                "reason": t.reason,
            }
            for t in estimate.targets
        ],
        "worst_case_usd": s(estimate.worst_case_usd),
        "expected_usd": s(estimate.expected_usd),
        "pending_worst_case_usd": s(estimate.pending_worst_case_usd),
    }


def _estimate_table(estimate: Any) -> tuple[Any, list[str]]:
    """The dry-run table, and the footnotes its n/a cells refer to."""
    from rich.table import Table
    from rich.text import Text

    from llmos.compare.report import na
    from llmos.compare.report_terminal import Footnotes

    short = Footnotes()
    table = Table(title="Estimated cost of the run (nothing sent)", title_justify="left")
    table.add_column("target", overflow="fold")
    table.add_column("calls", justify="right")
    table.add_column("left to run", justify="right")
    table.add_column("worst case", justify="right", overflow="fold")
    table.add_column("expected", justify="right", overflow="fold")
    table.add_column("worst case left", justify="right", overflow="fold")
    rows = [
        (
            t.target,
            str(t.calls),
            str(t.pending_calls),
            _money(t.worst_case_usd, t.reason, short),
            _money(t.expected_usd, t.reason, short),
            _money(t.pending_worst_case_usd, t.reason, short),
        )
        for t in estimate.targets
    ]

    def total(name: str) -> str:
        value = getattr(estimate, name)
        if value is not None:
            return _money(value, None, short)
        # Some price is unknown: show what the known ones add up to, marked as a floor.
        known = sum(
            (v for t in estimate.targets if (v := getattr(t, name)) is not None), Decimal(0)
        )
        note = short(na("at least: a target's price is unknown and not counted"))
        return f"≥ {_money(known, None, short)} {note.removeprefix('n/a ')}"

    rows.append(
        (
            "total",
            str(sum(t.calls for t in estimate.targets)),
            str(sum(t.pending_calls for t in estimate.targets)),
            total("worst_case_usd"),
            total("expected_usd"),
            total("pending_worst_case_usd"),
        )
    )
    for i, row in enumerate(rows):
        table.add_row(*(Text(cell) for cell in row), style="bold" if i == len(rows) - 1 else None)
    return table, short.lines()


def _confirm(reasons: list[str]) -> bool:
    """Ask whether to go on; refuse (False) when stdin cannot answer."""
    for reason in reasons:
        _note(reason)
    if sys.stdin is None or not sys.stdin.isatty():
        _note(
            "refusing to start without confirmation: stdin is not a terminal. Pass --yes to "
            "run anyway, raise --confirm-above, or --dry-run to see the estimate"
        )
        return False
    print("continue? [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


# --------------------------------------------------------------------------- run


def run(args: argparse.Namespace) -> int:
    """Run ``llmos compare``."""
    from llmos.client import Client
    from llmos.compare.report import (
        FORMATS,
        build_report,
        to_json,
        write_reports,
    )
    from llmos.compare.report_terminal import print_report
    from llmos.compare.runner import RunInterrupted, Runner, RunSettings

    formats = _split([args.formats])
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise InvalidRequestError(
            f"--formats: unknown format {unknown[0]!r}; choose from {', '.join(FORMATS)}",
            field="--formats",
        )
    settings = RunSettings(
        repeats=args.repeats,
        seed=args.seed,
        temperature=_temperature(args.temperature),
        concurrency=args.concurrency,
        timeout_s=args.timeout,
        max_tokens=args.max_tokens,
        execute_code=args.execute_code,
        perplexity=args.perplexity,
        retry_errors=args.retry_errors,
        warmup=not args.no_warmup,
    )
    threshold = _usd(args.confirm_above)
    if args.weights:
        from llmos.compare.scoring import parse_weights

        parse_weights(args.weights)  # a bad weight fails now, not after the run
    items = _items(args)
    models = _split(args.models) or list(DEFAULT_MODELS)
    out = Path(args.out)
    results = Path(args.results) if args.results else out / "results.jsonl"
    with Client(providers=_providers(args)) as client:
        runner = Runner(
            client,
            models,
            items,
            results,
            settings,
            progress=not (args.json or args.no_progress),
        )
        for target, reason in runner.skipped.items():
            _note(f"skipping {target}: {reason}")
        if not runner.targets:
            raise InvalidRequestError(
                "no target can run: " + "; ".join(f"{t}: {r}" for t, r in runner.skipped.items()),
                field="--models",
            )
        if not args.json:
            from llmos.cli.chat import _prepare_embedded

            for target in runner.targets:
                _prepare_embedded(target)  # a progress bar the first time the model is built
        estimate = runner.estimate()
        reasons = estimate.needs_confirmation(threshold)
        if args.dry_run:
            if args.json:
                doc = _estimate_doc(estimate)
                doc["would_ask_confirmation"] = reasons
                print(json.dumps(doc, indent=2))
            else:
                from rich.console import Console

                table, footnotes = _estimate_table(estimate)
                console = Console(emoji=False)
                console.print(table)
                for line in footnotes:
                    console.print(line, markup=False, highlight=False)
                for reason in reasons:
                    _note(
                        f"a real run would ask to confirm: {reason} (--confirm-above {threshold})"
                    )
            return 0
        if reasons and not args.yes and not _confirm(reasons):
            return 1
        try:
            outcome = runner.run()
        except RunInterrupted as stop:
            done = stop.outcome
            _note(
                f"interrupted: {done.new_rows} new row(s) kept in {done.results_path} "
                f"({len(done.rows)} in all); run the same command again to resume"
            )
            return 130
        board = runner.scoreboard(outcome.rows, args.weights)
    for note in outcome.notes:
        _note(note)
    report = build_report(outcome, board, settings)
    written = write_reports(report, out, formats)
    if args.json:
        print(json.dumps(to_json(report), indent=2))
    else:
        print_report(report)
    for fmt, path in written.items():
        _note(f"wrote {fmt.upper()} report: {path}")
    return 0
