"""Compare what runs here on the same tasks, then write JSON, CSV and HTML reports.

    pip install 'llmos[local,compare]'
    python examples/compare_providers.py [OUT_DIR]

With no key set this compares the embedded local model only; each service whose key is set
(OPENAI_API_KEY, AI21_API_KEY, HF_TOKEN) joins in, and the others are skipped with a note. The
paid calls are small (a few short items, 32 tokens at most each); the estimate is printed first.
The same command line tool: ``llmos compare --tasks qa,translation --limit 3``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from llmos import Client
from llmos.compare.report import build_report, print_report, write_reports
from llmos.compare.runner import Runner, RunSettings
from llmos.compare.tasks import load_tasks

CANDIDATES = [
    "local:gemma-3-270m",
    "openai:gpt-5.4-mini",
    "ai21:jamba-mini",
    "huggingface:meta-llama/Llama-3.1-8B-Instruct:nebius",
]
TASKS = ["qa", "translation"]
ITEMS_PER_TASK = 3


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="llmos-"))
    items, problems = load_tasks(TASKS)
    for problem in problems:
        print(f"skipped a task line: {problem}")
    per_task: dict[str, int] = {}
    subset = []
    for item in items:
        per_task[item.task] = per_task.get(item.task, 0) + 1
        if per_task[item.task] <= ITEMS_PER_TASK:
            subset.append(item)

    settings = RunSettings(max_tokens=32, concurrency=4)
    with Client() as client:
        runner = Runner(client, CANDIDATES, subset, out / "results.jsonl", settings, progress=True)
        for target, reason in runner.skipped.items():
            print(f"skipping {target}: {reason}")
        estimate = runner.estimate()
        worst = "unknown" if estimate.worst_case_usd is None else f"${estimate.worst_case_usd}"
        print(f"{len(runner.all_jobs())} calls; worst case {worst}")

        outcome = runner.run()  # rerunning with the same OUT_DIR resumes instead of repeating
        board = runner.scoreboard(outcome.rows)

    report = build_report(outcome, board, settings)
    print_report(report)
    for fmt, path in write_reports(report, out).items():
        print(f"{fmt}: {path}")


if __name__ == "__main__":
    main()
