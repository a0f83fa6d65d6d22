"""``llmos chat`` and ``llmos models`` as a user runs them: real processes, the real local model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.servers import openai_server
from tests.servers.base import LoopbackServer

KEY = "sk-test-cli-SECRET-0123456789"


def llmos(
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "HF_TOKEN"))}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "llmos", *args],
        check=False,
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
    )


@pytest.mark.usefixtures("embedded_model_path")
def test_chat_answers_with_paris_and_a_summary_line() -> None:
    result = llmos(
        "chat", "What is the capital of France?", "--max-tokens", "24", "--temperature", "0"
    )
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout
    summary = result.stderr.strip().splitlines()[-1]
    assert summary.startswith("local:gemma-3-270m · ")
    for part in (" in / ", " out", " s · ", " tok/s · ", "$0.000000"):
        assert part in summary


@pytest.mark.usefixtures("embedded_model_path")
def test_chat_reads_stdin_and_prints_json() -> None:
    result = llmos(
        "chat",
        "--json",
        "--max-tokens",
        "16",
        "--temperature",
        "0",
        stdin="What is the capital of France?",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["target"] == "local:gemma-3-270m" and "Paris" in data["text"]
    assert data["usage"]["source"] == "tokenizer" and data["usage"]["completion_tokens"] > 0
    assert data["cost"]["total_usd"] == "0"


def test_chat_against_openai_wire_never_prints_the_key() -> None:
    with LoopbackServer(openai_server.create_app()) as server:
        env = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": server.url + "/v1"}
        plain = llmos("chat", "-m", "openai:gpt-4.1-mini", "Hi", env=env)
        as_json = llmos("chat", "-m", "openai:gpt-4.1-mini", "--json", "Hi", env=env)
    assert plain.returncode == 0 and as_json.returncode == 0, plain.stderr + as_json.stderr
    assert "The capital of France is Paris." in plain.stdout
    assert json.loads(as_json.stdout)["provider"] == "openai"
    for output in (plain.stdout, plain.stderr, as_json.stdout, as_json.stderr):
        assert KEY not in output


def test_bad_input_is_one_clear_line_and_exit_code_1() -> None:
    result = llmos("chat", "-m", "gpt-4", "Hi")
    assert result.returncode == 1
    assert result.stderr.startswith("llmos: InvalidRequestError: model 'gpt-4' has no provider")
    assert "Traceback" not in result.stderr
    empty = llmos("chat", "", env={})
    assert empty.returncode == 1 and "prompt" in empty.stderr


def test_models_lists_providers_without_keys(tmp_path: Path) -> None:
    result = llmos("models", "--json", env={"OPENAI_API_KEY": KEY})
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    providers = {row["provider"] for row in rows}
    assert {"openai", "ai21", "huggingface", "local", "ollama", "vllm"} <= providers
    openai_rows = [r for r in rows if r["provider"] == "openai"]
    assert openai_rows and all(r["configured"] for r in openai_rows)
    assert not any(r["configured"] for r in rows if r["provider"] == "ai21")
    assert KEY not in result.stdout and KEY not in result.stderr
    table = llmos("models", env={"OPENAI_API_KEY": KEY, "COLUMNS": "200"})
    assert table.returncode == 0 and "openai:" in table.stdout and KEY not in table.stdout
