"""``llmos compare`` end to end: the embedded local model against an OpenAI-compatible server on
loopback, reports on disk, resume, dry runs, confirmation and bad input."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.servers.base import LoopbackServer
from tests.servers.openai_server import create_app

from llmos.cli import main
from llmos.cli.compare import DEFAULT_MODELS, parse_provider
from llmos.compare.report_html import CHART_IDS
from llmos.errors import InvalidRequestError

LOCAL = "local:gemma-3-270m"
KEY_VARS = ("OPENAI_API_KEY", "AI21_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


@pytest.fixture(scope="module")
def loopback() -> Iterator[LoopbackServer]:
    app = create_app()
    with LoopbackServer(app) as server:
        server.app = app  # type: ignore[attr-defined]
        yield server


@pytest.fixture
def server(loopback: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> LoopbackServer:
    for name in KEY_VARS:
        monkeypatch.delenv(name, raising=False)
    loopback.app.state.requests.clear()  # type: ignore[attr-defined]
    loopback.app.state.failures.clear()  # type: ignore[attr-defined]
    loopback.reset_hits()
    return loopback


def box(server: LoopbackServer) -> list[str]:
    return ["--provider", f"box=openai-compatible,base_url={server.url}/v1"]


def sent(server: LoopbackServer) -> int:
    return server.total_hits("/v1/chat/completions")


# --------------------------------------------------------------------------- acceptance


@pytest.mark.slow
def test_local_model_against_a_loopback_server_fills_every_column_and_writes_reports(
    server: LoopbackServer,
    embedded_model_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    args = [
        "compare",
        "--models",
        f"{LOCAL},box:tiny",
        *box(server),
        "--tasks",
        "qa,translation,code",
        "--limit",
        "2",
        "--max-tokens",
        "12",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    printed = capsys.readouterr()

    for name in ("results.jsonl", "report.json", "report.csv", "report.html"):
        assert (out / name).is_file(), name
    doc = json.loads((out / "report.json").read_text())
    board = doc["scoreboard"]
    assert {s["target"] for s in board["scores"]} == {LOCAL, "box:tiny"}
    assert doc["rows"]["total"] == 2 * 3 * 2  # targets x tasks x items
    for score in board["scores"]:
        for metric in [score["overall"], *score["dimensions"].values()]:
            assert metric["value"] is not None or metric["reason"], score["target"]
    assert "Perplexity was computed on each target's own output" in doc["perplexity_note"]

    with open(out / "report.csv", newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    assert len(body) == 2 * 4  # targets x (3 tasks + all)
    for row in body:
        for column, cell in zip(header, row, strict=True):
            assert cell.strip(), f"{row[1]}/{row[2]}: {column} is empty"
            if cell.startswith("n/a"):
                assert cell.startswith("n/a (") and len(cell) > len("n/a ()"), column
    by = {(r[1], r[2]): dict(zip(header, r, strict=True)) for r in body}
    assert float(by[(LOCAL, "all")]["latency_p50_s"]) > 0
    assert float(by[(LOCAL, "all")]["cost_per_item_usd"]) == 0
    assert by[("box:tiny", "all")]["cost_per_item_usd"].startswith("n/a (")  # unpriced server

    html = (out / "report.html").read_text()
    for chart_id in CHART_IDS:
        assert f'<svg class="chart" id="{chart_id}"' in html

    assert "Scores" in printed.out and "Weights: performance" in printed.out
    assert "Usability rubric" in printed.out
    assert "wrote HTML report" in printed.err

    # The same command again resumes: every row is already there, nothing is sent.
    before = sent(server)
    assert main(args) == 0
    assert sent(server) == before
    assert "resumed: 12 row(s)" in capsys.readouterr().err
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 12


def test_json_mode_prints_only_the_json_report(
    server: LoopbackServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "compare",
            "-m",
            "box:a",
            "-m",
            "box:b",
            *box(server),
            "--tasks",
            "qa",
            "--limit",
            "2",
            "--out",
            str(tmp_path),
            "--json",
        ]
    )
    assert code == 0
    doc = json.loads(capsys.readouterr().out)  # the whole of stdout is one JSON document
    assert [s["target"] for s in doc["scoreboard"]["scores"]] != []
    assert doc["rows"]["total"] == 4
    assert doc["run"]["tasks"] == ["qa"]


# --------------------------------------------------------------------------- cost


def test_dry_run_prints_the_estimate_and_sends_nothing(
    server: LoopbackServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "compare",
            "-m",
            "box:a,openai:gpt-5.4-mini",
            *box(server),
            "--provider",
            f"openai=base_url={server.url}/v1,api_key=sk-test-not-sent",
            "--tasks",
            "qa",
            "--limit",
            "3",
            "--repeats",
            "2",
            "--out",
            str(tmp_path),
            "--dry-run",
            "--json",
        ]
    )
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    by = {t["target"]: t for t in doc["targets"]}
    assert by["openai:gpt-5.4-mini"]["calls"] == 6
    assert float(by["openai:gpt-5.4-mini"]["worst_case_usd"]) > 0
    assert by["box:a"]["worst_case_usd"] is None and by["box:a"]["reason"]
    assert doc["worst_case_usd"] is None  # one price is unknown: no made-up total
    assert server.total_hits() == 0
    assert not (tmp_path / "results.jsonl").exists()


def test_a_run_over_the_threshold_is_refused_without_a_terminal_or_yes(
    server: LoopbackServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    args = [
        "compare",
        "-m",
        "openai:gpt-5.4-mini",
        "--provider",
        f"openai=base_url={server.url}/v1,api_key=sk-test-not-sent",
        "--tasks",
        "qa",
        "--limit",
        "1",
        "--out",
        str(tmp_path),
        "--confirm-above",
        "0",
    ]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "could cost up to $" in err and "--yes" in err
    assert server.total_hits() == 0

    assert main([*args, "--yes"]) == 0
    assert sent(server) >= 1


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "code"), [("y\n", 0), ("\n", 1)])
def test_an_interactive_run_over_the_threshold_asks_first(
    server: LoopbackServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    code: int,
) -> None:
    monkeypatch.setattr("sys.stdin", Terminal(answer))
    result = main(
        [
            "compare",
            "-m",
            "openai:gpt-5.4-mini",
            "--provider",
            f"openai=base_url={server.url}/v1,api_key=sk-test-not-sent",
            "--tasks",
            "qa",
            "--limit",
            "1",
            "--out",
            str(tmp_path),
            "--confirm-above",
            "0",
        ]
    )
    assert result == code
    assert "continue? [y/N]" in capsys.readouterr().err
    assert (sent(server) > 0) == (code == 0)


@pytest.mark.slow
def test_default_models_are_the_local_model_plus_keyed_services(
    server: LoopbackServer,
    embedded_model_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert DEFAULT_MODELS[0] == LOCAL
    code = main(["compare", "--tasks", "qa", "--out", str(tmp_path), "--dry-run", "--json"])
    assert code == 0
    printed = capsys.readouterr()
    assert [t["target"] for t in json.loads(printed.out)["targets"]] == [LOCAL]
    skipped = [line for line in printed.err.splitlines() if "skipping" in line]
    assert len(skipped) == len(DEFAULT_MODELS) - 1
    assert any("OPENAI_API_KEY" in line for line in skipped)


# --------------------------------------------------------------------------- bad input


def test_provider_option_parsing() -> None:
    assert parse_provider("box=openai-compatible,base_url=http://h:1/v1") == (
        "box",
        {"kind": "openai-compatible", "base_url": "http://h:1/v1"},
    )
    assert parse_provider("vllm=base_url=http://gpu:8000/v1,allow_insecure_http=true") == (
        "vllm",
        {"base_url": "http://gpu:8000/v1", "allow_insecure_http": True},
    )
    with pytest.raises(InvalidRequestError) as info:
        parse_provider("box")
    assert info.value.field == "--provider"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--temperature", "hot"], "--temperature"),
        (["--formats", "json,pdf"], "pdf"),
        (["--weights", "speed=1"], "unknown dimension"),
        (["--confirm-above", "lots"], "--confirm-above"),
        (["--tasks", "nonsense"], "unknown task set"),
        (["--limit", "0"], "--limit"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_code_1(
    server: LoopbackServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    args = ["compare", "-m", "box:a", *box(server), "--tasks", "qa", "--out", str(tmp_path)]
    assert main([*args, *extra]) == 1
    err = capsys.readouterr().err
    assert message in err
    assert server.total_hits() == 0


def test_no_usable_target_is_an_error_naming_each_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    args = ["compare", "-m", "nope:x,openai:gpt-5.4-mini", "--tasks", "qa", "--out", str(tmp_path)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "no target can run" in err and "unknown provider 'nope'" in err
    assert "OPENAI_API_KEY" in err


def test_config_file_configures_providers(
    server: LoopbackServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "llmos.json"
    config.write_text(
        json.dumps(
            {"providers": {"box": {"kind": "openai-compatible", "base_url": server.url + "/v1"}}}
        )
    )
    code = main(
        [
            "compare",
            "-m",
            "box:a",
            "--config",
            str(config),
            "--tasks",
            "qa",
            "--limit",
            "1",
            "--out",
            str(tmp_path / "out"),
            "--json",
        ]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["rows"]["ok"] == 1
