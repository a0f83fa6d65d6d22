"""Task sets: the JSONL files shipped in ``llmos/compare/data`` and your own, in the same schema.

One JSON object per line, validated as a :class:`~llmos.compare.model.TaskItem`::

    {"id": "qa-01", "task": "qa", "system": "Answer briefly.", "prompt": "Capital of France?",
     "answers": ["Paris"], "max_tokens": 16}

What each task needs besides ``id``, ``task`` and ``prompt``: translation and summarization a
non-empty ``references``; qa ``answers``; support ``facts``; code ``tests`` (Python asserts) and
``entry_point`` (the function they call). Generation may list ``facts``: topic words the text
should use. A fact or answer may give alternatives separated by ``|`` ("refund|money back").

A line that is not valid JSON or not a valid item is reported as a :class:`TaskProblem` (file and
line number) and skipped; the other lines still load. Blank lines are ignored.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from llmos.compare.model import TaskItem
from llmos.errors import InvalidRequestError

if TYPE_CHECKING:  # importlib.abc.Traversable moves to importlib.resources.abc in 3.11+
    from importlib.abc import Traversable

__all__ = [
    "BUILTIN_TASKS",
    "TaskProblem",
    "builtin_path",
    "item_messages",
    "known_tasks",
    "load_tasks",
    "parse_lines",
]

#: Shipped task sets: name -> file under llmos/compare/data. Names equal TaskKind values.
BUILTIN_TASKS: dict[str, str] = {
    "generation": "generation.jsonl",
    "translation": "translation.jsonl",
    "qa": "qa.jsonl",
    "summarization": "summarization.jsonl",
    "support": "support.jsonl",
    "code": "code.jsonl",
}
_ALIASES = {"summarisation": "summarization", "summary": "summarization"}
#: Fields each task kind must fill, with what they hold (for the error message).
_REQUIRED: dict[str, tuple[tuple[str, str], ...]] = {
    "translation": (("references", "reference translations"),),
    "summarization": (("references", "reference summaries"),),
    "qa": (("answers", "accepted answers"),),
    "support": (("facts", "facts the reply must contain"),),
    "code": (("tests", "Python asserts"), ("entry_point", "the function name the tests call")),
}


class TaskProblem(BaseModel):
    """A line of a task file that could not be used, and why."""

    source: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.message}"


def known_tasks() -> list[str]:
    """Names of the shipped task sets, in the order ``all`` runs them."""
    return list(BUILTIN_TASKS)


def _unknown(name: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"tasks: unknown task set {name!r}; choose from {', '.join(known_tasks())} or 'all', "
        "or give the path of a .jsonl file in the same schema",
        field="tasks",
    )


def builtin_path(name: str) -> Traversable:
    """The shipped JSONL file of task set ``name``, inside the installed package."""
    key = _ALIASES.get(name, name)
    if key not in BUILTIN_TASKS:
        raise _unknown(name)
    return resources.files("llmos.compare").joinpath("data").joinpath(BUILTIN_TASKS[key])


def _check_item(item: TaskItem) -> str | None:
    """What a task kind needs that the item lacks, or None."""
    for name, meaning in _REQUIRED.get(item.task, ()):
        value = getattr(item, name)
        if not value or (isinstance(value, list) and not any(v.strip() for v in value)):
            return f"{item.task} item {item.id!r} needs {name!r} ({meaning})"
    if item.task == "code":
        assert item.tests is not None and item.entry_point is not None
        if not item.entry_point.isidentifier():
            return f"entry_point {item.entry_point!r} is not a Python function name"
        try:
            ast.parse(item.tests)
        except SyntaxError as exc:
            return f"tests of item {item.id!r} are not valid Python: {exc.msg} (line {exc.lineno})"
    return None


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error["loc"]) or "item"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def parse_lines(
    lines: Iterable[str], source: str, seen: set[tuple[str, str]] | None = None
) -> tuple[list[TaskItem], list[TaskProblem]]:
    """Items from JSONL ``lines``; each bad line becomes a problem naming ``source`` and its line.

    ``seen`` holds (task, id) pairs already loaded; a repeat is a problem, since results are
    keyed by task and id.
    """
    seen = set() if seen is None else seen
    items: list[TaskItem] = []
    problems: list[TaskProblem] = []
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text:
            continue
        message: str | None = None
        try:
            data: Any = json.loads(text)
            item = TaskItem.model_validate(data)
        except json.JSONDecodeError as exc:
            message = f"not valid JSON: {exc.msg} (column {exc.colno})"
        except ValidationError as exc:
            message = _validation_message(exc)
        else:
            message = _check_item(item)
            if message is None and (item.task, item.id) in seen:
                message = f"duplicate id {item.id!r} for task {item.task!r}"
        if message is not None:
            problems.append(TaskProblem(source=source, line=number, message=message))
            continue
        seen.add((item.task, item.id))
        items.append(item)
    return items, problems


def _resolve(spec: str) -> tuple[Traversable, str]:
    """The file a task spec means: a shipped set's name, or a path."""
    looks_like_path = spec.endswith((".jsonl", ".json")) or "/" in spec or "\\" in spec
    if not looks_like_path and (_ALIASES.get(spec, spec) in BUILTIN_TASKS):
        return builtin_path(spec), f"builtin:{_ALIASES.get(spec, spec)}"
    path = Path(spec).expanduser()
    if path.is_file():
        return path, str(path)
    if looks_like_path:
        raise InvalidRequestError(
            f"tasks: no such task file {spec!r}; give an existing .jsonl path", field="tasks"
        )
    raise _unknown(spec)


def load_tasks(
    names_or_paths: str | Sequence[str],
) -> tuple[list[TaskItem], list[TaskProblem]]:
    """Load task sets by name (``qa``, ``all``...) or path; a string may hold several ("qa,code").

    Returns the valid items, in file order, and the problems found (bad lines are skipped, the
    rest still load). Unknown names and missing files raise InvalidRequestError(field="tasks").
    """
    specs = [names_or_paths] if isinstance(names_or_paths, str) else list(names_or_paths)
    parts = [p.strip() for spec in specs for p in spec.split(",") if p.strip()]
    if not parts:
        raise InvalidRequestError(
            f"tasks: give at least one task set ({', '.join(known_tasks())}, all) or a .jsonl path",
            field="tasks",
        )
    expanded: list[str] = []
    for part in parts:
        expanded.extend(known_tasks() if part == "all" else [part])
    files = list(dict.fromkeys(_resolve(part) for part in expanded))
    items: list[TaskItem] = []
    problems: list[TaskProblem] = []
    seen: set[tuple[str, str]] = set()
    for file, source in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidRequestError(
                f"tasks: cannot read {source}: {exc}", field="tasks"
            ) from None
        more, trouble = parse_lines(text.splitlines(), source, seen)
        items.extend(more)
        problems.extend(trouble)
    return items, problems


def item_messages(item: TaskItem) -> list[dict[str, str]]:
    """The conversation sent for ``item``: its system text (if any), then its prompt."""
    messages = [{"role": "system", "content": item.system}] if item.system else []
    messages.append({"role": "user", "content": item.prompt})
    return messages
