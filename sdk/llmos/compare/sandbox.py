"""Generated code: pulling it out of a reply, checking its syntax, and (only when asked) running
its tests in a separate, limited interpreter.

Code runs only with ``execute=True`` (``llmos compare --execute-code``); otherwise it is judged on
syntax alone. When it runs, each solution gets:

* a fresh interpreter, ``python -I -S -B`` (isolated: no PYTHON* variables, user site or
  site-packages; no bytecode written), in a new temporary directory that is its working
  directory and ``HOME``, with a minimal environment (no proxy variables, no keys), no stdin;
* limits set in the child before the code runs: address space (``RLIMIT_AS``), CPU seconds,
  file size (which also caps captured output), no core dumps, no new processes (where the
  system has the limit);
* a wall-clock timeout, after which its whole process group is killed;
* an audit hook that ends the process (status ``blocked``) on a network attempt (socket connect,
  bind, send, name lookups), a process spawn (subprocess, os.system, exec, fork, posix_spawn),
  ``ctypes``, signals to other processes, links, and writes or deletions outside its directory;
* when ``unshare -n`` works for this user, a network namespace without interfaces as well.

This keeps a model's mistakes (endless loops, stray downloads) from harming a comparison run. It
is defence in depth for honest code, not a security boundary for code written to escape.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "SandboxLimits",
    "SandboxResult",
    "SandboxStatus",
    "check_syntax",
    "extract_code",
    "network_namespace_available",
    "run_tests",
]

SandboxStatus = Literal["passed", "failed", "error", "no_function", "timeout", "blocked"]

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_CODE_START = re.compile(r"^(def |class |import |from |@|async def )", re.MULTILINE)
_BLOCKED_EXIT = 86  # the harness's exit status after its audit hook stopped the code


@dataclass(frozen=True)
class SandboxLimits:
    """Limits for one run of generated code against its tests."""

    timeout_s: float = 5.0
    memory_mb: int = 512
    output_bytes: int = 64_000
    #: Also isolate the network with ``unshare -n``: None uses it when it works here.
    network_namespace: bool | None = None


@dataclass(frozen=True)
class SandboxResult:
    """How generated code did against its tests."""

    status: SandboxStatus
    detail: str = ""

    @property
    def passed(self) -> bool:
        """True only when every test ran and passed."""
        return self.status == "passed"


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):  # ValueError: null bytes
        return False
    return True


def _trim_to_parse(code: str, max_drop: int = 20) -> str:
    """``code``, or its longest prefix (dropping at most ``max_drop`` lines) that parses."""
    lines = code.rstrip().splitlines()
    for drop in range(min(max_drop, max(len(lines) - 1, 0)) + 1):
        candidate = "\n".join(lines[: len(lines) - drop])
        if _parses(candidate):
            return candidate
    return code.rstrip()


def extract_code(text: str) -> str:
    """The Python code in a reply: a fenced block (python-tagged first), else the raw text.

    A fence left open (the reply hit max_tokens) runs to the end. Raw text starts at its first
    line that looks like code (``def``, ``import``...); trailing prose that would not parse is
    dropped, a line at a time.
    """
    blocks = [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(text)]
    if blocks:
        tagged = [body for lang, body in blocks if lang in ("python", "py", "python3")]
        candidates = tagged or [body for _, body in blocks]
        with_def = [body for body in candidates if "def " in body]
        return _trim_to_parse((with_def or candidates)[0])
    start = _CODE_START.search(text)
    body = text[start.start() :] if start else text
    return _trim_to_parse(body)


def check_syntax(code: str, entry_point: str | None = None) -> tuple[bool, str]:
    """Whether ``code`` parses and defines ``entry_point`` at top level; the reason when not."""
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        return False, f"syntax error: {exc.msg} (line {exc.lineno})"
    except ValueError as exc:
        return False, f"syntax error: {exc}"
    if entry_point is None:
        return True, "parses"
    defined = {
        node.name
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    }
    defined |= {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    if entry_point not in defined:
        return False, f"parses, but defines no {entry_point!r}"
    return True, f"parses and defines {entry_point!r}"


@functools.lru_cache(maxsize=1)
def _unshare_prefix() -> tuple[str, ...]:
    """The ``unshare`` argv prefix that gives a child an empty network of its own, or ()."""
    tool = shutil.which("unshare")
    if tool is None:
        return ()
    for prefix in ((tool, "-n", "--"), (tool, "-r", "-n", "--")):
        try:
            done = subprocess.run(  # noqa: S603 - fixed argv, no shell
                [*prefix, sys.executable, "-I", "-S", "-c", "pass"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if done.returncode == 0:
            return prefix
    return ()


def network_namespace_available() -> bool:
    """Whether ``unshare -n`` (or ``unshare -r -n``) works for this user here."""
    return bool(_unshare_prefix())


# The child program. It reads its inputs, deletes them, sets its limits, installs the audit hook,
# then runs the solution and the tests; only a run that gets through writes the token to the
# verdict file, so code that exits early with status 0 still counts as failed.
_HARNESS = r"""
import json, os, resource, sys

def main():
    with open("sandbox.json", encoding="utf-8") as f:
        cfg = json.load(f)
    with open("solution.py", encoding="utf-8") as f:
        code = f.read()
    with open("tests.py", encoding="utf-8") as f:
        tests = f.read()
    for name in ("sandbox.json", "solution.py", "tests.py"):
        os.remove(name)
    verdict = os.open("verdict", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    mem, cpu, fsize = cfg["memory"], cfg["cpu"], cfg["fsize"]
    for name, soft, hard in (
        ("RLIMIT_AS", mem, mem), ("RLIMIT_CPU", cpu, cpu + 1), ("RLIMIT_FSIZE", fsize, fsize),
        ("RLIMIT_CORE", 0, 0), ("RLIMIT_NPROC", 0, 0),
    ):
        try:  # some systems lack a limit (macOS: RLIMIT_AS); the wall-clock timeout remains
            resource.setrlimit(getattr(resource, name), (soft, hard))
        except (AttributeError, ValueError, OSError):
            pass
    root = os.getcwd()
    blocked = set(cfg["blocked_events"])
    path_events = set(cfg["path_events"])
    no_import = set(cfg["blocked_imports"])
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def outside(path):
        if isinstance(path, int):
            return False
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        full = os.path.normpath(os.path.join(root, os.fspath(path)))
        return not (full == root or full.startswith(root + os.sep))

    def stop(event):
        os.write(2, ("LLMOS-SANDBOX-BLOCKED " + event + "\n").encode())
        os._exit(cfg["blocked_exit"])

    def hook(event, args):
        if event in blocked:
            stop(event)
        elif event == "import" and args and str(args[0]).split(".")[0] in no_import:
            stop("import " + str(args[0]))
        elif event == "open" and len(args) >= 3:
            mode, flags = args[1], args[2] or 0
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & write_flags
            )
            if writing and args[0] is not None and outside(args[0]):
                stop("open for writing outside the sandbox")
        elif event in path_events and any(
            isinstance(a, (str, bytes, os.PathLike)) and outside(a) for a in args[:2]
        ):
            stop(event + " outside the sandbox")

    sys.addaudithook(hook)
    namespace = {"__name__": "solution", "__builtins__": __builtins__}
    stage = "solution"
    try:
        exec(compile(code, "solution.py", "exec"), namespace)
        if not callable(namespace.get(cfg["entry_point"])):
            sys.stderr.write("the code defines no function " + repr(cfg["entry_point"]) + "\n")
            os._exit(3)
        stage = "tests"
        exec(compile(tests, "tests.py", "exec"), namespace)
    except AssertionError as exc:
        tb, lineno = exc.__traceback__, None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == "tests.py":
                lineno = tb.tb_lineno
            tb = tb.tb_next
        lines = tests.splitlines()
        where = lines[lineno - 1].strip() if lineno and lineno <= len(lines) else "an assert"
        sys.stderr.write("failed: " + where + (": " + str(exc)[:300] if str(exc) else "") + "\n")
        os._exit(1)
    except BaseException as exc:
        sys.stderr.write(stage + ": " + type(exc).__name__ + ": " + str(exc)[:500] + "\n")
        os._exit(2)
    os.write(verdict, cfg["token"].encode())
    os.close(verdict)
    sys.stdout.flush()
    os._exit(0)

main()
"""

_BLOCKED_EVENTS = (
    "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
    "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo",
    "subprocess.Popen", "os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork",
    "os.forkpty", "os.startfile", "os.kill", "os.killpg", "signal.pthread_kill",
    "ctypes.dlopen", "ctypes.dlsym", "ctypes.addressof", "os.symlink", "os.link",
)  # fmt: skip
_PATH_EVENTS = (
    "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.truncate", "os.chmod", "os.chown",
    "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile",
)  # fmt: skip
_BLOCKED_IMPORTS = ("_ctypes", "ctypes", "_posixsubprocess")


def _detail(text: str, limit: int = 600) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-3:])[-limit:]


def run_tests(
    code: str,
    tests: str,
    entry_point: str,
    limits: SandboxLimits | None = None,
) -> SandboxResult:
    """Run ``code`` then ``tests`` (asserts calling ``entry_point``) in a limited child process.

    Passed only when every assert held; a timeout, a blocked action (network, processes...), an
    exception, a missing function or a failed assert all count as failures, with the reason.
    """
    limits = limits or SandboxLimits()
    if os.name != "posix":
        return SandboxResult("error", "running generated code needs a POSIX system (Linux, macOS)")
    use_netns = limits.network_namespace
    prefix = _unshare_prefix() if use_netns in (None, True) else ()
    token = secrets.token_hex(16)
    config = {
        "entry_point": entry_point,
        "memory": limits.memory_mb * 1024 * 1024,
        "cpu": max(1, int(limits.timeout_s) + 1),
        "fsize": max(limits.output_bytes, 4096),
        "token": token,
        "blocked_events": _BLOCKED_EVENTS,
        "path_events": _PATH_EVENTS,
        "blocked_imports": _BLOCKED_IMPORTS,
        "blocked_exit": _BLOCKED_EXIT,
    }
    with tempfile.TemporaryDirectory(prefix="llmos-sandbox-") as tmp:
        root = Path(tmp)
        (root / "harness.py").write_text(_HARNESS, encoding="utf-8")
        (root / "solution.py").write_text(code, encoding="utf-8")
        (root / "tests.py").write_text(tests, encoding="utf-8")
        (root / "sandbox.json").write_text(json.dumps(config), encoding="utf-8")
        env = {"PATH": os.defpath, "HOME": tmp, "TMPDIR": tmp, "LANG": "C.UTF-8"}
        # -B: importing must not write bytecode next to the standard library (the hook would
        # see a write outside the directory and stop honest code).
        argv = [*prefix, sys.executable, "-I", "-S", "-B", "harness.py"]
        with open(root / "stdout", "wb") as out, open(root / "stderr", "wb") as err:
            proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                argv,
                cwd=tmp,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # its own process group, killed as one
                close_fds=True,
            )
            timed_out = False
            try:
                returncode = proc.wait(timeout=limits.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                returncode = -signal.SIGKILL
            finally:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)  # the child and anything it left
                proc.wait()
        with open(root / "stderr", "rb") as f:
            stderr = f.read(limits.output_bytes).decode("utf-8", errors="replace")
        verdict = (root / "verdict").read_bytes() if (root / "verdict").exists() else b""
    return _classify(returncode, timed_out, stderr, verdict == token.encode(), limits)


def _classify(
    returncode: int, timed_out: bool, stderr: str, verified: bool, limits: SandboxLimits
) -> SandboxResult:
    if timed_out:
        return SandboxResult("timeout", f"stopped after the {limits.timeout_s:g} s time limit")
    if returncode == _BLOCKED_EXIT and "LLMOS-SANDBOX-BLOCKED" in stderr:
        what = stderr.split("LLMOS-SANDBOX-BLOCKED", 1)[1].strip().splitlines()[0]
        return SandboxResult("blocked", f"stopped: {what} (not allowed in the sandbox)")
    if returncode == 0 and verified:
        return SandboxResult("passed", "all tests passed")
    if returncode == 0:
        return SandboxResult("error", "the code exited before the tests finished")
    if returncode == 1:
        return SandboxResult("failed", _detail(stderr) or "a test assertion failed")
    if returncode == 3:
        return SandboxResult("no_function", _detail(stderr))
    if returncode == -signal.SIGXCPU:
        return SandboxResult("timeout", f"stopped at the CPU-time limit ({limits.timeout_s:g} s)")
    if returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else ""
        return SandboxResult("error", f"killed by signal {name or -returncode}")
    detail = _detail(stderr) or f"exit status {returncode}"
    if "MemoryError" in detail:
        detail += f" (memory limit {limits.memory_mb} MiB)"
    return SandboxResult("error", detail)
