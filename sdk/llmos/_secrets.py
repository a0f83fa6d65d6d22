"""Keeping API keys out of everything llmos prints, logs, raises or reports.

Keys live in :class:`Secret` values whose ``repr`` and ``str`` are masked. Every key llmos loads is
also remembered here so :func:`redact` can scrub it from provider messages, log records and
reports even when a server echoes it back. Well-known key shapes (``sk-…``, ``hf_…``, bearer
tokens) are scrubbed too.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

__all__ = ["MASK", "RedactingFilter", "Secret", "redact", "redact_data", "remember_secret"]

MASK = "***"

_known: set[str] = set()
_known_lock = threading.Lock()
_pattern: re.Pattern[str] | None = None

# Key shapes worth scrubbing even when we never saw the key itself.
_SHAPES = [
    r"(?i)(?<=bearer )[A-Za-z0-9._~+/=-]{8,}",
    r"\bsk-[A-Za-z0-9_-]{8,}",
    r"\bhf_[A-Za-z0-9]{8,}",
]
_shape_pattern = re.compile("|".join(_SHAPES))


class Secret:
    """A secret string: masked in repr/str; read it only with :meth:`get`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        remember_secret(value)

    def get(self) -> str:
        """The secret value, for sending to its own provider only."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> Any:
        raise TypeError("llmos Secret values cannot be pickled")


def remember_secret(value: str) -> None:
    """Register a key so that :func:`redact` scrubs it wherever it appears."""
    global _pattern
    if len(value) < 4:  # too short to scrub without mangling ordinary text
        return
    with _known_lock:
        if value in _known:
            return
        _known.add(value)
        ordered = sorted(_known, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(v) for v in ordered))


def redact(text: str) -> str:
    """``text`` with every known key and every key-shaped token replaced by ``***``."""
    if not text:
        return text
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    return _shape_pattern.sub(MASK, text)


def redact_data(value: Any) -> Any:
    """A copy of parsed JSON (dicts, lists, strings) with every string passed through redact.

    Error bodies are kept on exceptions for callers to inspect; servers echo keys back in them.
    """
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_data(k): redact_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_data(v) for v in value)
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that scrubs keys from every record passing through the llmos logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True
