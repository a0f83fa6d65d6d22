"""Generated code: extraction, syntax checks, and the sandboxed test run with its limits."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmos.compare.metrics import score_item
from llmos.compare.model import TaskItem
from llmos.compare.sandbox import (
    SandboxLimits,
    check_syntax,
    extract_code,
    network_namespace_available,
    run_tests,
)

FAST = SandboxLimits(timeout_s=2.0)
HOOK_ONLY = SandboxLimits(timeout_s=2.0, network_namespace=False)
TESTS = "assert double(2) == 4\nassert double(-1) == -2"


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP socket listening on loopback: the address generated code will try to reach."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.3)
    yield server
    server.close()


def assert_never_connected(server: socket.socket) -> None:
    with pytest.raises(TimeoutError):
        server.accept()


# --------------------------------------------------------------------------- extraction


def test_extract_prefers_a_python_fence() -> None:
    reply = "Here:\n```text\nnot code\n```\n```python\ndef double(x):\n    return 2 * x\n```\nDone."
    assert extract_code(reply) == "def double(x):\n    return 2 * x"


def test_extract_takes_an_unterminated_fence_to_the_end() -> None:
    reply = "```\ndef double(x):\n    return 2 * x\n"
    assert extract_code(reply) == "def double(x):\n    return 2 * x"


def test_extract_raw_text_drops_prose_around_the_code() -> None:
    reply = "Sure! Here it is:\ndef double(x):\n    return 2 * x\nThis doubles x, as asked."
    assert extract_code(reply) == "def double(x):\n    return 2 * x"


def test_check_syntax_needs_the_entry_point() -> None:
    assert check_syntax("def double(x):\n    return 2 * x", "double") == (
        True,
        "parses and defines 'double'",
    )
    ok, why = check_syntax("def twice(x):\n    return 2 * x", "double")
    assert not ok and "no 'double'" in why
    ok, why = check_syntax("def double(x) return", "double")
    assert not ok and why.startswith("syntax error")


# --------------------------------------------------------------------------- running


def test_a_correct_solution_passes() -> None:
    result = run_tests("def double(x):\n    return 2 * x\n", TESTS, "double", FAST)
    assert result.passed and result.status == "passed"


def test_a_wrong_solution_fails_naming_the_assert() -> None:
    result = run_tests("def double(x):\n    return x + 2\n", TESTS, "double", FAST)
    assert result.status == "failed"
    assert "assert double(-1) == -2" in result.detail


def test_a_missing_function_fails() -> None:
    result = run_tests("def twice(x):\n    return 2 * x\n", TESTS, "double", FAST)
    assert result.status == "no_function" and not result.passed


def test_an_endless_loop_is_killed_at_the_time_limit() -> None:
    code = "def double(x):\n    while True:\n        pass\n"
    result = run_tests(code, TESTS, "double", SandboxLimits(timeout_s=1.0))
    assert result.status == "timeout" and not result.passed


def test_a_network_attempt_is_blocked_by_the_audit_hook(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    code = (
        "import socket\n"
        "def double(x):\n"
        "    s = socket.socket()\n"
        f"    s.connect(('127.0.0.1', {port}))\n"
        "    return 2 * x\n"
    )
    result = run_tests(code, TESTS, "double", HOOK_ONLY)
    assert result.status == "blocked" and "socket.connect" in result.detail
    assert_never_connected(listener)


def test_catching_the_blocked_connect_does_not_save_the_code(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    code = (
        "import socket\n"
        "def double(x):\n"
        "    try:\n"
        f"        socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
        "    except BaseException:\n"
        "        pass\n"
        "    return 2 * x\n"
    )
    result = run_tests(code, TESTS, "double", FAST)
    assert result.status == "blocked" and not result.passed
    assert_never_connected(listener)


@pytest.mark.skipif(not network_namespace_available(), reason="unshare -n does not work here")
def test_with_unshare_the_code_sees_no_network_interface_but_loopback() -> None:
    if [name for _, name in socket.if_nameindex()] == ["lo"]:
        pytest.skip("this host has only loopback, so the check would prove nothing")
    code = (
        "import socket\n"
        "def double(x):\n"
        "    assert [name for _, name in socket.if_nameindex()] == ['lo']\n"
        "    return 2 * x\n"
    )
    on = SandboxLimits(timeout_s=2.0, network_namespace=True)
    assert run_tests(code, TESTS, "double", on).passed
    off = SandboxLimits(timeout_s=2.0, network_namespace=False)
    assert run_tests(code, TESTS, "double", off).status == "failed"


def test_spawning_a_process_is_blocked() -> None:
    code = "import os\ndef double(x):\n    os.system('true')\n    return 2 * x\n"
    assert run_tests(code, TESTS, "double", FAST).status == "blocked"
    code = "import subprocess\ndef double(x):\n    return 2 * x\n"
    assert run_tests(code, TESTS, "double", FAST).status == "blocked"


def test_writing_outside_the_sandbox_is_blocked(tmp_path: Path) -> None:
    target = tmp_path / "escaped.txt"
    code = f"def double(x):\n    open({str(target)!r}, 'w').write('x')\n    return 2 * x\n"
    assert run_tests(code, TESTS, "double", FAST).status == "blocked"
    assert not target.exists()
    inside = "def double(x):\n    open('scratch.txt', 'w').write('x')\n    return 2 * x\n"
    assert run_tests(inside, TESTS, "double", FAST).passed


def test_exiting_early_with_status_zero_is_not_a_pass() -> None:
    code = "import os\ndef double(x):\n    os._exit(0)\n"
    result = run_tests(code, TESTS, "double", FAST)
    assert result.status == "error" and not result.passed


def test_the_memory_limit_stops_a_huge_allocation() -> None:
    code = "def double(x):\n    return len(bytearray(2 * 1024 ** 3))\n"
    result = run_tests(code, TESTS, "double", SandboxLimits(timeout_s=5.0, memory_mb=256))
    assert result.status == "error" and "MemoryError" in result.detail


def test_output_is_capped() -> None:
    code = "def double(x):\n    print('y' * 10_000_000)\n    return 2 * x\n"
    result = run_tests(code, TESTS, "double", SandboxLimits(timeout_s=3.0, output_bytes=8192))
    assert not result.passed and "File too large" in result.detail


def test_the_child_gets_a_minimal_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-leak")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    code = (
        "import os\n"
        "def double(x):\n"
        "    assert 'OPENAI_API_KEY' not in os.environ\n"
        "    assert not any('proxy' in k.lower() for k in os.environ)\n"
        "    return 2 * x\n"
    )
    assert run_tests(code, TESTS, "double", FAST).passed


# --------------------------------------------------------------------------- scored items


def test_code_items_are_scored_failed_when_they_loop_or_use_the_network(
    listener: socket.socket,
) -> None:
    port = listener.getsockname()[1]
    item = TaskItem(id="c", task="code", prompt="double", tests=TESTS, entry_point="double")
    loop = "```python\ndef double(x):\n    while True:\n        pass\n```"
    net = (
        "```python\nimport socket\ndef double(x):\n"
        f"    socket.create_connection(('127.0.0.1', {port}))\n    return 2 * x\n```"
    )
    limits = SandboxLimits(timeout_s=1.0)
    looped = score_item(item, loop, execute_code=True, limits=limits)["tests_passed"]
    assert looped.value == 0.0 and (looped.reason or "").startswith("timeout")
    networked = score_item(item, net, execute_code=True, limits=limits)["tests_passed"]
    assert networked.value == 0.0 and (networked.reason or "").startswith("blocked")
    # and by default nothing runs at all: the network code is only checked for syntax
    default = score_item(item, net)
    assert default["tests_passed"].value is None and default["syntax_ok"].value == 1.0
    assert_never_connected(listener)
