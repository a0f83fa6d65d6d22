"""The llmos loggers: quiet by default, and every record scrubbed of keys."""

from __future__ import annotations

import logging

from llmos._secrets import RedactingFilter

__all__ = ["get_logger", "guard_third_party_loggers"]

_filter = RedactingFilter()
_root = logging.getLogger("llmos")
_root.addHandler(logging.NullHandler())
_guarded: set[str] = set()


def get_logger(name: str) -> logging.Logger:
    """The ``llmos.<name>`` logger, with key redaction on its records."""
    log = logging.getLogger(f"llmos.{name}")
    if _filter not in log.filters:
        log.addFilter(_filter)
    return log


def guard_third_party_loggers(*names: str) -> None:
    """Add key redaction to the loggers of libraries llmos drives (openai, httpx, httpcore).

    Their debug output can include request options; the filter only scrubs, never drops.
    Logger filters do not apply to child loggers, so every existing logger under each name
    (``openai._base_client``, ``httpcore.http11``...) gets the filter too; call this after the
    library is imported, when its module-level loggers exist.
    """
    existing = list(logging.Logger.manager.loggerDict)
    for name in names:
        for logger_name in [name, *(n for n in existing if n.startswith(name + "."))]:
            if logger_name not in _guarded:
                logging.getLogger(logger_name).addFilter(_filter)
                _guarded.add(logger_name)
