"""Task sets: the shipped JSONL files, user files in the same schema, and their problems."""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources
from pathlib import Path

import pytest

from llmos.compare.model import TaskItem
from llmos.compare.tasks import (
    BUILTIN_TASKS,
    item_messages,
    known_tasks,
    load_tasks,
    parse_lines,
)
from llmos.errors import InvalidRequestError


def test_every_task_kind_ships_a_set_of_10_to_30_items() -> None:
    items, problems = load_tasks("all")
    assert problems == []
    counts = Counter(item.task for item in items)
    assert set(counts) == {"generation", "translation", "qa", "summarization", "support", "code"}
    assert all(10 <= n <= 30 for n in counts.values()), counts


def test_shipped_sets_are_package_data_read_through_importlib_resources() -> None:
    data = resources.files("llmos.compare").joinpath("data")
    for name, file in BUILTIN_TASKS.items():
        text = data.joinpath(file).read_text(encoding="utf-8")
        first = json.loads(text.splitlines()[0])
        assert first["task"] == name


def test_shipped_items_fill_what_their_task_needs_and_stay_small() -> None:
    items, _ = load_tasks(known_tasks())
    for item in items:
        assert 16 <= item.max_tokens <= 96, item.id
        if item.task in ("translation", "summarization"):
            assert item.references
        if item.task == "qa":
            assert item.answers
        if item.task == "support":
            assert item.facts
        if item.task == "code":
            assert item.tests and item.entry_point and item.entry_point in item.tests
    assert len({(i.task, i.id) for i in items}) == len(items)


def test_names_may_be_comma_separated_and_repeats_load_once() -> None:
    items, problems = load_tasks("qa, code,qa")
    assert problems == []
    assert {i.task for i in items} == {"qa", "code"}
    assert len(items) == len(load_tasks("qa")[0]) + len(load_tasks("code")[0])


def test_unknown_task_name_lists_the_known_ones() -> None:
    with pytest.raises(InvalidRequestError) as info:
        load_tasks("poetry")
    assert info.value.field == "tasks"
    for name in known_tasks():
        assert name in str(info.value)


def test_missing_task_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match=r"no such task file") as info:
        load_tasks(str(tmp_path / "nope.jsonl"))
    assert info.value.field == "tasks"


def test_empty_task_spec_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="at least one task set"):
        load_tasks(" , ")


def test_a_malformed_line_is_reported_by_line_and_the_rest_still_loads(tmp_path: Path) -> None:
    good = {"id": "q1", "task": "qa", "prompt": "2+2?", "answers": ["4"], "max_tokens": 8}
    lines = [
        json.dumps(good),
        "{not json",
        "",
        json.dumps({"id": "q2", "task": "qa", "prompt": "Sky colour?"}),  # no answers
        json.dumps({**good, "id": "q3", "colour": "blue"}),  # unknown field
        json.dumps({**good, "id": "q4", "task": "poem"}),  # unknown task kind
        json.dumps(good),  # duplicate id
        json.dumps(
            {"id": "c1", "task": "code", "prompt": "f", "tests": "assert (", "entry_point": "f"}
        ),
        json.dumps(
            {
                "id": "c2",
                "task": "code",
                "prompt": "f",
                "tests": "assert f()",
                "entry_point": "no good",
            }
        ),
        json.dumps({**good, "id": "q5", "answers": ["five", "5"]}),
    ]
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    items, problems = load_tasks(str(path))
    assert [i.id for i in items] == ["q1", "q5"]
    by_line = {p.line: p for p in problems}
    assert sorted(by_line) == [2, 4, 5, 6, 7, 8, 9]
    assert all(p.source == str(path) for p in problems)
    assert "not valid JSON" in by_line[2].message
    assert "answers" in by_line[4].message
    assert "colour" in by_line[5].message
    assert "task" in by_line[6].message
    assert "duplicate id 'q1'" in by_line[7].message
    assert "not valid Python" in by_line[8].message
    assert "entry_point" in by_line[9].message
    assert str(by_line[2]).startswith(f"{path}:2: ")


def test_user_file_mixes_with_shipped_sets(tmp_path: Path) -> None:
    path = tmp_path / "extra.jsonl"
    item = {"id": "mine-1", "task": "support", "prompt": "Hi", "facts": ["hello|hi"]}
    path.write_text(json.dumps(item) + "\n", encoding="utf-8")
    items, problems = load_tasks(["qa", str(path)])
    assert problems == []
    assert items[-1].id == "mine-1"
    assert items[0].task == "qa"


def test_parse_lines_tracks_ids_across_calls() -> None:
    seen: set[tuple[str, str]] = set()
    line = json.dumps({"id": "x", "task": "qa", "prompt": "p", "answers": ["a"]})
    first, _ = parse_lines([line], "a.jsonl", seen)
    second, problems = parse_lines([line], "b.jsonl", seen)
    assert len(first) == 1 and second == []
    assert problems[0].source == "b.jsonl" and problems[0].line == 1


def test_item_messages_put_the_system_text_first() -> None:
    item = TaskItem(id="a", task="qa", prompt="Q?", system="Be brief.", answers=["x"])
    assert item_messages(item) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Q?"},
    ]
    bare = TaskItem(id="b", task="generation", prompt="Write.")
    assert item_messages(bare) == [{"role": "user", "content": "Write."}]
